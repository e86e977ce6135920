"""``${path}`` templates and dot paths over JSON data, exactly as SEMANTICS.md rules them.

Pure functions shared by the engine's input selectors and the standard handlers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["get_path", "render_template"]

_WHOLE = re.compile(r"^\$\{([^}]+)\}$")
_PART = re.compile(r"\$\{([^}]+)\}")


def get_path(data: Any, path: str) -> Any:
    """Walk a dot path; numeric segments index lists; ``None`` at the first miss."""
    current = data
    for part in path.split("."):
        if current is None:
            return None
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list | tuple):
            if not part.isdigit():
                return None
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return None
    return current


def _stringify(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def render_template(template: Any, context: Mapping[str, Any]) -> Any:
    """Interpolate ``${path}`` recursively over dicts (values only) and lists."""
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole:
            return get_path(context, whole.group(1))

        def _sub(match: re.Match[str]) -> str:
            value = get_path(context, match.group(1))
            return (
                ""
                if value is None and not _has_path(context, match.group(1))
                else (_stringify(value))
            )

        return _PART.sub(_sub, template)
    if isinstance(template, list):
        return [render_template(item, context) for item in template]
    if isinstance(template, Mapping):
        return {key: render_template(value, context) for key, value in template.items()}
    return template


def _has_path(data: Any, path: str) -> bool:
    # ``None`` renders as "null" when present and "" when missing (SEMANTICS.md).
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return False
            current = current[part]
        elif isinstance(current, list | tuple) and part.isdigit():
            if int(part) >= len(current):
                return False
            current = current[int(part)]
        else:
            return False
    return True
