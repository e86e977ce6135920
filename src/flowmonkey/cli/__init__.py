"""The ``flowmonkey`` command line (needs the ``cli`` extra: click and rich).

``flowmonkey.cli.main:main`` is the console script; ``cli`` is the click group, for
``click.testing.CliRunner`` and for adding commands.
"""

from __future__ import annotations

from flowmonkey.cli.main import cli as cli

__all__ = ["cli"]
