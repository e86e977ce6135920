"""Accessible HTML forms from JSON Schema: the one renderer of public forms and the
dashboard's task inbox (``flowmonkey.api.ui``).

``fields(schema, ui)`` turns an object schema into ``Field`` descriptions (one control per
property: text, ``email``, ``date``, number, integer, checkbox for booleans, a select for
an ``enum``, a textarea (one value per line) or a checkbox group for arrays of strings).
``render_controls`` writes them as HTML with the values kept and each error beside its
field; ``parse_submission`` turns posted strings back into typed values and lists every
problem. Pages work without JavaScript: labels are real ``<label for>``, help and errors
are tied with ``aria-describedby``, invalid fields get ``aria-invalid``, required ones
``required`` + ``aria-required``, and the first error is linked from a summary at the
top (keyboard users land on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jinja2 import Environment, PackageLoader
from jsonschema import Draft202012Validator
from markupsafe import Markup

__all__ = [
    "HONEYPOT",
    "Field",
    "fields",
    "parse_submission",
    "render_controls",
    "render_page",
    "shown_values",
    "unsupported",
]

HONEYPOT = "website_hp"
"""The honeypot's name: a text input hidden from people (and screen readers) that bots
fill in. A submission with it filled is dropped silently."""


@dataclass(frozen=True, slots=True)
class Field:
    """One control."""

    name: str
    label: str
    widget: str
    """``text``, ``email``, ``date``, ``number``, ``integer``, ``checkbox``, ``select``,
    ``lines`` (textarea, one string per line), ``checkboxes``, ``textarea``."""
    required: bool = False
    help: str | None = None
    options: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def unsupported(schema: dict[str, Any]) -> list[dict[str, str]]:
    """Problems that make a schema unusable for a form (listed at form creation)."""
    problems = []
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        return [
            {
                "path": "schema",
                "message": 'a form schema is {"type": "object", "properties": {...}}',
            }
        ]
    for name, prop in schema["properties"].items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        items = prop.get("items", {}) if isinstance(prop, dict) else {}
        if name == HONEYPOT:
            problems.append({"path": f"schema.properties.{name}", "message": "reserved name"})
        elif "enum" in prop:
            continue  # a select, whatever the type of its values
        elif kind not in ("string", "number", "integer", "boolean", "array") or (
            kind == "array" and items.get("type") != "string"
        ):
            problems.append(
                {
                    "path": f"schema.properties.{name}",
                    "message": "forms support string, number, integer, boolean "
                    "and arrays of strings",
                }
            )
    return problems


def fields(schema: dict[str, Any], ui: dict[str, Any] | None = None) -> list[Field]:
    """The controls of ``schema``, in ``ui["order"]`` (then schema) order.

    ``ui`` may give per-field ``{"label", "help", "widget": "textarea"}`` under
    ``ui["fields"][name]``; a property's ``title`` and ``description`` are the defaults.
    """
    ui = ui or {}
    props: dict[str, Any] = schema.get("properties", {})
    order = [n for n in ui.get("order", []) if n in props]
    order += [n for n in props if n not in order]
    required = set(schema.get("required", []))
    out = []
    for name in order:
        prop = props[name]
        own = (ui.get("fields") or {}).get(name, {})
        kind = prop.get("type")
        attrs: dict[str, Any] = {}
        options: tuple[str, ...] = ()
        if "enum" in prop:
            widget, options = "select", tuple(str(v) for v in prop["enum"])
        elif kind == "boolean":
            widget = "checkbox"
        elif kind in ("number", "integer"):
            widget = kind  # bounds are checked on the server (a text input, see template)
        elif kind == "array":
            enum = prop.get("items", {}).get("enum")
            widget, options = ("checkboxes", tuple(map(str, enum))) if enum else ("lines", ())
        else:
            widget = {"email": "email", "date": "date"}.get(prop.get("format", ""), "text")
            if own.get("widget") == "textarea":
                widget = "textarea"
            for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
                if key in prop:
                    attrs[attr] = prop[key]
        out.append(
            Field(
                name=name,
                label=own.get("label") or prop.get("title") or _label(name),
                widget=widget,
                required=name in required and kind != "boolean",
                help=own.get("help") or prop.get("description"),
                options=options,
                attrs=attrs,
            )
        )
    return out


# -- parsing -----------------------------------------------------------------------------


def parse_submission(
    schema: dict[str, Any],
    ui: dict[str, Any] | None,
    posted: dict[str, list[str]] | dict[str, Any],
    *,
    typed: bool = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(values, errors)``: the posted form as typed values, and every problem by field
    (``""`` for the form as a whole). ``typed`` means ``posted`` is already JSON."""
    controls = {f.name: f for f in fields(schema, ui)}
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    unknown = sorted(k for k in posted if k not in controls and k != HONEYPOT)
    if unknown:
        errors[""] = "Unknown fields: " + ", ".join(unknown)
    for name, control in controls.items():
        raw = posted.get(name)
        if typed:
            if raw is not None:
                values[name] = raw
            continue
        items = (
            [str(v) for v in (raw or [])]
            if isinstance(raw, list)
            else ([] if raw is None else [str(raw)])
        )
        try:
            value = _coerce(control, items)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if control.widget == "select" and value is not None:
            # back to the enum's own value (``1``, not ``"1"``)
            choices = {str(v): v for v in schema["properties"][name].get("enum", [])}
            value = choices.get(value, value)
        if value is not None:
            values[name] = value
    if typed:
        errors.update(_schema_errors(schema, values))
    else:
        for name, message in _schema_errors(schema, values).items():
            errors.setdefault(name, message)
    return values, errors


def shown_values(
    posted: dict[str, list[str]] | dict[str, Any], values: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """What to show in the controls again: the typed values, and for a field that could
    not be read, exactly what was typed (nobody retypes a whole form)."""
    shown = dict(values)
    for name in errors:
        raw = posted.get(name)
        if name and name not in shown and raw not in (None, []):
            shown[name] = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
    return shown


def _coerce(control: Field, items: list[str]) -> Any:
    first = items[0].strip() if items else ""
    widget = control.widget
    if widget == "checkbox":
        return bool(items) and first.lower() in ("on", "true", "1", "yes")
    if widget == "checkboxes":
        return [v for v in items if v]
    if widget == "lines":
        return [line.strip() for line in "\n".join(items).splitlines() if line.strip()]
    if not first:
        return None
    if widget == "integer":
        try:
            return int(first)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if widget == "number":
        try:
            number = float(first)
        except ValueError:
            raise ValueError("Enter a number.") from None
        if not math.isfinite(number):
            raise ValueError("Enter a number.")
        return int(number) if number.is_integer() and "." not in first else number
    if widget == "date":
        try:
            date.fromisoformat(first)
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD.") from None
    return items[0] if widget == "textarea" else first


def _schema_errors(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    checker = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for error in sorted(checker.iter_errors(values), key=lambda e: list(map(str, e.path))):
        if error.validator == "required" and not error.path:
            missing = error.message.split("'")[1] if "'" in error.message else ""
            out.setdefault(missing, "This field is required.")
        elif error.validator == "additionalProperties" and not error.path:
            out.setdefault("", error.message)
        else:
            name = str(error.path[0]) if error.path else ""
            out.setdefault(name, _friendly(error.validator, error.message))
    return out


def _friendly(validator: Any, message: str) -> str:
    return {
        "format": "Enter a valid value (" + message.split("is not a ")[-1].strip("'") + ").",
        "minLength": "Too short.",
        "maxLength": "Too long.",
        "minimum": "Too small.",
        "maximum": "Too large.",
    }.get(str(validator), message)


# -- rendering ---------------------------------------------------------------------------

_ENV = Environment(
    loader=PackageLoader("flowmonkey.api", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
"""Autoescaping everywhere: labels, help, values and errors come from users."""

_CONTROLS = _ENV.get_template("form_controls.html")


_PAGE = _ENV.get_template("form_page.html")


def render_controls(
    controls: list[Field], values: dict[str, Any], errors: dict[str, str], *, prefix: str = "f-"
) -> str:
    """The HTML of the controls (no ``<form>``), values kept, errors beside fields."""
    return _CONTROLS.render(fields=controls, values=values, errors=errors, prefix=prefix)


def render_page(
    *,
    title: str,
    description: str | None = None,
    controls: list[Field] | None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    action: str = "",
    submit_label: str = "Submit",
    captcha: dict[str, str] | None = None,
) -> str:
    """A whole page: the form (``controls`` None: a message page, e.g. success)."""
    # The summary lists problems in the order of the fields (the whole-form ones first).
    order = {"": -1} | {f.name: i for i, f in enumerate(controls or [])}
    errors = dict(sorted((errors or {}).items(), key=lambda item: order.get(item[0], 1 << 30)))
    body = None if controls is None else Markup(render_controls(controls, values or {}, errors))
    captcha = captcha or {}
    return _PAGE.render(
        title=title,
        description=description,
        fields=controls,
        controls=body or "",
        errors=errors,
        labels={f.name: f.label for f in controls or []},
        message=message,
        action=action,
        submit_label=submit_label,
        honeypot=HONEYPOT,
        captcha_script=captcha.get("script"),
        captcha_widget=captcha.get("widget"),
        captcha_site_key=captcha.get("site_key"),
    )
