"""``bench/results/`` keeps the latest run of each suite; older runs live in git history."""

from __future__ import annotations

from pathlib import Path

__all__ = ["keep_latest"]


def keep_latest(path: Path) -> list[Path]:
    """Delete the other results of ``path``'s suite (``<suite>-<timestamp>.<ext>``).

    Called after a run that refreshes the docs, so the docs and the one file left agree.
    Returns the deleted paths.
    """
    suite = path.name.split("-", 1)[0]
    removed = []
    for other in path.parent.glob(f"{suite}-*{path.suffix}"):
        if other != path:
            other.unlink()
            removed.append(other)
    return removed
