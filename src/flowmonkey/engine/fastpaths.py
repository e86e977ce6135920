"""Fast paths for the two costs of a pipe: checking a row against its table's schema and
evaluating the JMESPath that builds it.

Both are *shortcuts for the common case, never replacements*: a row schema made only of
the keywords below gets a plain-Python check. The check answers "valid" or "not sure". On
"not sure", the full ``jsonschema`` validator decides and writes the messages. A map
that is a multi-select hash of field paths and literals (``{a: output.id, b: 'paid'}``,
the usual pipe) becomes a direct lookup, with JMESPath's semantics for missing fields
(``null``). Anything else goes through ``jmespath``. ``tests/engine/test_fastpaths.py``
compares both shortcuts with the libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FastMap", "compile_map", "compile_schema"]

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"title", "description", "$schema", "$id", "default", "examples",
                          "$comment", "deprecated", "readOnly", "writeOnly"})  # fmt: skip
_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}
_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda v, b: v >= b,
    "maximum": lambda v, b: v <= b,
    "exclusiveMinimum": lambda v, b: v > b,
    "exclusiveMaximum": lambda v, b: v < b,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compile_schema(schema: Any) -> Check | None:
    """A check that returns True only for instances ``schema`` accepts (False means
    "ask jsonschema"), or None when the schema uses a keyword this shortcut does not
    handle."""
    if schema is True or schema == {}:
        return lambda v: True
    if not isinstance(schema, Mapping):
        return None
    whole = _object_check(schema)
    if whole is not None:
        return whole
    checks: list[Check] = []
    for key, arg in schema.items():
        if key in _ANNOTATIONS:
            continue
        check = _keyword(key, arg, schema)
        if check is None:
            return None
        checks.append(check)
    if len(checks) == 1:
        return checks[0]
    every = tuple(checks)

    def check_all(value: Any) -> bool:
        # A loop, not all(<generator>): this runs for every pipe row.
        for check in every:  # noqa: SIM110
            if not check(value):
                return False
        return True

    return check_all


_CLASSES: dict[str, type] = {
    "string": str, "boolean": bool, "object": dict, "array": list, "null": type(None),
    "integer": int,
}  # fmt: skip
"""JSON types tested inline by ``properties``: one ``isinstance`` each, and ``int`` for
"integer" (an exact ``int`` passes at once, anything else goes to ``_TYPES``: a bool is
no integer, 2.0 is one)."""


def _plain_type(schema: Any) -> type | None:
    """The ``_CLASSES`` entry of a schema that is only ``{"type": <name>}`` (annotations
    aside), else None."""
    if not isinstance(schema, Mapping):
        return None
    kind: type | None = None
    for key, arg in schema.items():
        if key == "type" and isinstance(arg, str) and arg in _CLASSES:
            kind = _CLASSES[arg]
        elif key not in _ANNOTATIONS:
            return None
    return kind


def _keyword(key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
    if key == "type":
        names = [arg] if isinstance(arg, str) else arg
        if not isinstance(names, list) or not all(n in _TYPES for n in names):
            return None
        tests = [_TYPES[n] for n in names]
        return tests[0] if len(tests) == 1 else (lambda v: any(t(v) for t in tests))
    if key in _BOUNDS and _is_number(arg):
        compare = _BOUNDS[key]
        return lambda v: not _is_number(v) or compare(v, arg)
    if key in ("minLength", "maxLength") and isinstance(arg, int) and not isinstance(arg, bool):
        if key == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= arg
        return lambda v: not isinstance(v, str) or len(v) <= arg
    if key == "enum" and isinstance(arg, list) and all(isinstance(e, str) for e in arg):
        allowed = frozenset(arg)
        return lambda v: isinstance(v, str) and v in allowed
    if key == "const" and isinstance(arg, str):
        return lambda v: v == arg
    if key == "required" and isinstance(arg, list) and all(isinstance(k, str) for k in arg):
        names = frozenset(arg)
        return lambda v: not isinstance(v, dict) or v.keys() >= names
    if key == "additionalProperties" and isinstance(arg, bool):
        if arg:
            return lambda v: True
        props = schema.get("properties")
        if "patternProperties" in schema or not isinstance(props, Mapping):
            return None
        known = frozenset(props)
        return lambda v: not isinstance(v, dict) or known.issuperset(v)
    if key == "properties" and isinstance(arg, Mapping):
        parts = _property_parts(arg)
        if parts is None:
            return None
        check_properties = _properties_check(parts)
        return lambda v: not isinstance(v, dict) or check_properties(v)
    return None


_Parts = tuple[tuple[tuple[str, type], ...], tuple[str, ...], tuple[tuple[str, Check], ...]]


def _property_parts(properties: Mapping[str, Any]) -> _Parts | None:
    """``properties`` split for an inline loop: ``(name, class)`` of the plain types,
    the names of the integers, ``(name, check)`` of the rest; None if one is beyond the
    shortcut. A property that is only {"type": "string"} (or boolean, object, array,
    null, integer) costs one test in the loop, not a call: most row schemas are these."""
    classes: list[tuple[str, type]] = []
    integers: list[str] = []
    subs: list[tuple[str, Check]] = []
    for name, sub in properties.items():
        kind = _plain_type(sub)
        if kind is int:
            integers.append(name)
        elif kind is not None:
            classes.append((name, kind))
        else:
            check = compile_schema(sub)
            if check is None:
                return None
            subs.append((name, check))
    return tuple(classes), tuple(integers), tuple(subs)


def _properties_check(parts: _Parts) -> Check:
    """ONE function checking a dict's properties from ``_property_parts``: plain
    ``isinstance`` tests, integers (whole floats count), then any other check."""
    plain, ints, items = parts
    is_integer = _TYPES["integer"]

    def check_properties(value: dict[str, Any]) -> bool:
        for name, kind in plain:
            if name in value and not isinstance(value[name], kind):
                return False
        for name in ints:
            if name in value:
                number = value[name]
                if type(number) is not int and not is_integer(number):
                    return False
        for name, check in items:  # noqa: SIM110 - a loop is cheaper per row
            if name in value and not check(value[name]):
                return False
        return True

    return check_properties


_OBJECT_KEYS = frozenset({"type", "properties", "required", "additionalProperties"})


def _object_check(schema: Mapping[str, Any]) -> Check | None:
    """The usual row schema, ``{"type": "object", "properties", "required",
    "additionalProperties": bool}``, as ONE function (a row is checked once per step,
    with cold caches: every call counts); None for any other schema."""
    if schema.get("type") != "object" or not _OBJECT_KEYS.issuperset(
        key for key in schema if key not in _ANNOTATIONS
    ):
        return None
    properties, required = schema.get("properties", {}), schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if (
        not isinstance(properties, Mapping)
        or not isinstance(required, list)
        or not all(isinstance(k, str) for k in required)
        or not isinstance(extra, bool)
    ):
        return None
    parts = _property_parts(properties)
    if parts is None:
        return None
    names = frozenset(required)
    known = None if extra else frozenset(properties)
    check_properties = _properties_check(parts)

    def check_object(value: Any) -> bool:
        if not isinstance(value, dict) or (names and not value.keys() >= names):
            return False
        if known is not None and not known.issuperset(value):
            return False
        return check_properties(value)

    return check_object


# -- JMESPath ---------------------------------------------------------------------------


class FastMap:
    """What ``compile_map`` builds: ``evaluate(scope)`` (also ``FastMap(scope)``) and
    ``roots``, the top-level scope entries it reads (``output`` for ``output.id``), so
    a caller may build only those: an entry left out reads as ``null``, as in JMESPath.
    """

    __slots__ = ("evaluate", "roots")

    def __init__(self, evaluate: Callable[[Any], Any], roots: frozenset[str]) -> None:
        self.evaluate = evaluate
        self.roots = roots

    def __call__(self, value: Any) -> Any:
        return self.evaluate(value)


def compile_map(parsed: Any) -> FastMap | None:
    """A direct evaluator of a compiled JMESPath (``jmespath.compile(...)``) when it is a
    multi-select hash of field paths and literals, else None."""
    ast = getattr(parsed, "parsed", None)
    if not isinstance(ast, dict) or ast.get("type") != "multi_select_dict":
        return None
    # (key, path, constant): a path of field names, or None for a literal
    entries: list[tuple[str, tuple[str, ...] | None, Any]] = []
    roots: set[str] = set()
    for pair in ast.get("children", ()):
        if pair.get("type") != "key_val_pair" or len(pair.get("children", ())) != 1:
            return None
        node = pair["children"][0]
        if isinstance(node, dict) and node.get("type") == "literal":
            entries.append((pair["value"], None, node["value"]))
            continue
        path = _path(node) if isinstance(node, dict) else None
        if not path:
            return None
        roots.add(path[0])
        entries.append((pair["value"], tuple(path), None))
    fields = tuple(entries)

    def evaluate(value: Any) -> Any:
        # One function, no call per field: a pipe runs this once per step, cold.
        if value is None:
            return None
        out = {}
        for key, path, constant in fields:
            if path is None:
                out[key] = constant
                continue
            found = value
            for name in path:
                try:
                    found = found.get(name)
                except AttributeError:  # JMESPath: a field of a non-object is null
                    found = None
                if found is None:
                    break
            out[key] = found
        return out

    return FastMap(evaluate, frozenset(roots))


def _path(node: Any) -> list[str] | None:
    kind = node.get("type")
    if kind == "field":
        return [node["value"]]
    if kind == "subexpression" and node.get("children"):
        out: list[str] = []
        for child in node["children"]:
            part = _path(child)
            if part is None:
                return None
            out += part
        return out
    return None
