"""Handlers for the process tests (loaded by ``flowmonkey run``/``worker --handlers``):
handler code that tries to end the process."""

from __future__ import annotations

import sys
from typing import Any

from flowmonkey import Result, handler


@handler("exit.sys_exit")
async def sys_exit(ctx: Any) -> Result:
    """``sys.exit()`` (code 0: a worker used to stop "successfully")."""
    sys.exit()


@handler("exit.keyboard")
def keyboard(ctx: Any) -> Result:
    """``KeyboardInterrupt`` from a sync handler's thread."""
    raise KeyboardInterrupt


@handler("exit.ok")
async def ok(ctx: Any) -> Result:
    """An ordinary step."""
    return Result.success({"ok": True})
