"""Semantic-version ordering: "latest" is the highest semver, never string order."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["is_semver", "latest", "semver_key", "sort_versions"]

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)


def is_semver(version: str) -> bool:
    """True when ``version`` looks like ``MAJOR[.MINOR[.PATCH]][-pre][+build]``."""
    return bool(_SEMVER.match(version))


def semver_key(version: str) -> tuple[object, ...]:
    """Sort key: numeric major/minor/patch; a pre-release sorts before its release.

    Versions that are not semver sort before every semver version, by string.
    """
    match = _SEMVER.match(version)
    if not match:
        return (0, version)
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key: tuple[object, ...] = (1,)
    else:
        parts: list[tuple[int, int | str]] = []
        for part in pre.split("."):
            parts.append((0, int(part)) if part.isdigit() else (1, part))
        pre_key = (0, tuple(parts))
    return (1, int(major), int(minor or 0), int(patch or 0), pre_key)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Versions newest first."""
    return sorted(versions, key=semver_key, reverse=True)


def latest(versions: Iterable[str]) -> str | None:
    """The highest version, or ``None`` for an empty input."""
    ordered = sort_versions(versions)
    return ordered[0] if ordered else None
