"""The flowmonkey HTTP service: ``create_app(engine)`` gives a FastAPI app.

Needs the ``api`` extra (``pip install 'flowmonkey[api]'``). See docs/api.md.
"""

from __future__ import annotations

from flowmonkey.api.app import ApiSettings, create_app

__all__ = ["ApiSettings", "create_app"]
