"""Input selectors and ``${path}`` templates, exactly as SEMANTICS.md rules them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmonkey.model.flow import InputSelector
from flowmonkey.model.templates import get_path, render_template

__all__ = ["SelectorError", "get_path", "render_template", "resolve_input"]


class SelectorError(ValueError):
    """A malformed selector; the engine fails the step with ``INPUT_ERROR``."""


def resolve_input(selector: InputSelector, context: Mapping[str, Any]) -> Any:
    """Return the step input the selector picks from ``context``.

    Raises:
        SelectorError: the selector is malformed (unknown type, missing field).
    """
    kind = selector.type
    if kind == "full":
        return dict(context)
    if kind == "key":
        if not isinstance(selector.key, str):
            raise SelectorError("input selector 'key' needs a string 'key'")
        return context.get(selector.key)
    if kind == "path":
        if not isinstance(selector.path, str):
            raise SelectorError("input selector 'path' needs a string 'path'")
        return get_path(context, selector.path)
    if kind == "keys":
        if not isinstance(selector.keys, tuple | list):
            raise SelectorError("input selector 'keys' needs a list 'keys'")
        return {k: context[k] for k in selector.keys if k in context}
    if kind == "static":
        return selector.value
    if kind == "template":
        return render_template(selector.template, context)
    raise SelectorError(f"unknown input selector type {kind!r}")
