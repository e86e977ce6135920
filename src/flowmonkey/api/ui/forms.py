"""HTML form fields from a task's JSON Schema, and the typed values of a posted form.

Flat object schemas become one input per property (text, number, checkbox, select for
``enum``); anything else (nested objects, arrays, no schema) becomes one JSON text area
named ``__json__``. The engine validates the result against the schema; this module only
turns form strings into JSON types and reports what it cannot convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["JSON_FIELD", "Field", "form_fields", "form_values"]

JSON_FIELD = "__json__"
_SIMPLE = {"string", "integer", "number", "boolean"}


@dataclass(frozen=True, slots=True)
class Field:
    """One input of the form."""

    name: str
    label: str
    kind: str
    """``text``, ``number``, ``integer``, ``checkbox``, ``select`` or ``json``."""
    required: bool = False
    description: str | None = None
    options: tuple[str, ...] = ()


def _properties(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    for spec in props.values():
        if not isinstance(spec, dict) or spec.get("type") not in _SIMPLE:
            return None
    return props


def form_fields(schema: dict[str, Any] | None) -> list[Field]:
    """The inputs of a form for ``schema``."""
    props = _properties(schema)
    if props is None or schema is None:
        return [Field(JSON_FIELD, "Data (JSON)", "json", required=False)]
    required = set(schema.get("required") or ())
    fields = []
    for name, spec in props.items():
        kind = {"string": "text", "integer": "integer", "number": "number"}.get(
            spec["type"], "checkbox"
        )
        options: tuple[str, ...] = ()
        if isinstance(spec.get("enum"), list):
            kind, options = "select", tuple(str(v) for v in spec["enum"])
        fields.append(
            Field(
                name=name,
                label=str(spec.get("title") or name),
                kind=kind,
                required=name in required and kind != "checkbox",
                description=spec.get("description"),
                options=options,
            )
        )
    return fields


def form_values(
    schema: dict[str, Any] | None, raw: dict[str, str]
) -> tuple[Any, list[dict[str, str]]]:
    """The JSON value of a posted form and the fields it could not convert."""
    props = _properties(schema)
    if props is None:
        text = raw.get(JSON_FIELD, "").strip()
        if not text:
            return {}, []
        try:
            return orjson.loads(text), []
        except orjson.JSONDecodeError as exc:
            return None, [{"path": JSON_FIELD, "message": f"not valid JSON: {exc}"}]
    data: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for name, spec in props.items():
        kind = spec["type"]
        if kind == "boolean":
            data[name] = raw.get(name) in ("on", "true", "1")
            continue
        text = raw.get(name, "").strip()
        if text == "":
            continue  # absent: the schema's "required" decides
        if kind == "string":
            data[name] = raw.get(name, "")
        elif isinstance(spec.get("enum"), list):
            match = [v for v in spec["enum"] if str(v) == text]
            data[name] = match[0] if match else text
        else:
            try:
                data[name] = int(text) if kind == "integer" else float(text)
            except ValueError:
                problems.append(
                    {
                        "path": name,
                        "message": f"not a{'n integer' if kind == 'integer' else ' number'}",
                    }
                )
    return data, problems
