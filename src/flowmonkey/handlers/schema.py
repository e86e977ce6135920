"""Type hints to JSON Schema, schema validation with per-field messages, and conversion.

Three jobs, all done once per handler at registration (nothing is cached globally):

- ``json_schema_for(tp)`` turns a Python type (dataclass, TypedDict, ``list[int]``, ...)
  into a JSON Schema (Draft 2020-12) dict.
- ``SchemaValidator(schema)`` compiles a schema once; ``errors(instance)`` returns
  ``[{"path": "items[0].sku", "message": "is required"}, ...]``.
- ``converter_for(tp)`` builds a function that turns validated JSON data into instances
  of the declared dataclasses (recursively).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "SchemaValidator",
    "converter_for",
    "is_schema_type",
    "json_schema_for",
    "validate",
]

JsonSchema = dict[str, Any]
Issue = dict[str, str]

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_JSON_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def is_schema_type(tp: object) -> bool:
    """True for the classes accepted in place of a schema dict: dataclasses and TypedDicts."""
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or typing.is_typeddict(tp))


def _hints(cls: type[Any], localns: Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        return typing.get_type_hints(
            cls, localns=dict(localns) if localns else None, include_extras=True
        )
    except NameError as exc:
        # String annotations (``from __future__ import annotations``) are resolved in the
        # class's module; types local to a function cannot be seen from there.
        raise TypeError(
            f"cannot resolve the type hints of {cls.__qualname__}: {exc} "
            "(define the referenced types at module level)"
        ) from exc


def _is_none(tp: object) -> bool:
    return tp is None or tp is type(None)


def _json_default(value: Any) -> tuple[bool, Any]:
    """``(True, json_value)`` when a field default can be shown in the schema."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False, None
    return True, value


class _SchemaBuilder:
    def __init__(self, localns: Mapping[str, Any] | None) -> None:
        self.localns = localns
        self.active: list[type[Any]] = []

    def build(self, tp: Any) -> JsonSchema:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            annotated = self.build(args[0])
            # ``Annotated[int, {"minimum": 0}]`` adds constraints to the generated schema.
            for extra in args[1:]:
                if isinstance(extra, Mapping):
                    annotated = {**annotated, **extra}
            return annotated
        if origin in (typing.Required, typing.NotRequired):
            return self.build(args[0])
        if tp is Any or tp is object:
            return {}
        if _is_none(tp):
            return {"type": "null"}
        if tp in _SIMPLE:
            return {"type": _SIMPLE[tp]}
        if origin is typing.Literal:
            return self._enum_schema([a.value if isinstance(a, enum.Enum) else a for a in args])
        if origin is typing.Union or origin is types.UnionType:
            return self._union(args)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum_schema([m.value for m in tp])
        if tp in (list, tuple, set, frozenset) or origin in (
            list,
            set,
            frozenset,
            Sequence,
            Iterable,
        ):
            schema: JsonSchema = {"type": "array"}
            if args:
                schema["items"] = self.build(args[0])
            if tp in (set, frozenset) or origin in (set, frozenset):
                schema["uniqueItems"] = True
            return schema
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.build(args[0])}
            prefix = [self.build(a) for a in args]
            return {
                "type": "array",
                "prefixItems": prefix,
                "items": False,
                "minItems": len(prefix),
            }
        if tp is dict or origin in (dict, Mapping):
            obj: JsonSchema = {"type": "object"}
            if args:
                if args[0] is not str:
                    raise TypeError(f"JSON object keys must be str, not {args[0]!r} in {tp!r}")
                obj["additionalProperties"] = self.build(args[1])
            return obj
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self._dataclass(tp)
        if isinstance(tp, type) and typing.is_typeddict(tp):
            return self._typeddict(tp)
        raise TypeError(f"cannot make a JSON Schema for {tp!r}")

    @staticmethod
    def _enum_schema(values: list[Any]) -> JsonSchema:
        schema: JsonSchema = {"enum": values}
        kinds = {_SIMPLE.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema

    def _union(self, args: tuple[Any, ...]) -> JsonSchema:
        arms = [a for a in args if not _is_none(a)]
        nullable = len(arms) < len(args)
        schemas = [self.build(a) for a in arms]
        if nullable and len(schemas) == 1:
            inner = schemas[0]
            # ``str | None`` becomes ``{"type": ["string", "null"]}``, which gives a
            # clearer message ("must be a string or null") than an ``anyOf``.
            if set(inner) <= {"type"} and isinstance(inner.get("type"), str):
                return {"type": [inner["type"], "null"]}
            if set(inner) == {"enum", "type"}:
                return {"enum": [*inner["enum"], None]}
            if not inner:
                return {}
        if nullable:
            schemas.append({"type": "null"})
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}

    def _enter(self, cls: type[Any]) -> None:
        if cls in self.active:
            raise TypeError(f"recursive type {cls.__qualname__} is not supported in schemas")
        self.active.append(cls)

    def _dataclass(self, cls: type[Any]) -> JsonSchema:
        self._enter(cls)
        hints = _hints(cls, self.localns)
        props: dict[str, JsonSchema] = {}
        required: list[str] = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            prop = self.build(hints.get(f.name, Any))
            if f.metadata.get("description"):
                prop = {**prop, "description": f.metadata["description"]}
            if f.default is not dataclasses.MISSING:
                ok, value = _json_default(f.default)
                if ok:
                    prop = {**prop, "default": value}
            elif f.default_factory is dataclasses.MISSING:
                required.append(f.name)
            props[f.name] = prop
        self.active.pop()
        schema: JsonSchema = {"type": "object", "title": cls.__name__, "properties": props}
        if required:
            schema["required"] = required
        return schema

    def _typeddict(self, cls: type[Any]) -> JsonSchema:
        self._enter(cls)
        hints = _hints(cls, self.localns)
        props = {name: self.build(hint) for name, hint in hints.items()}
        self.active.pop()
        schema: JsonSchema = {"type": "object", "title": cls.__name__, "properties": props}
        # With string annotations, Python 3.11 cannot see ``NotRequired`` when building
        # ``__required_keys__``; the resolved hints can.
        required = [
            k
            for k, hint in hints.items()
            if typing.get_origin(hint) is typing.Required
            or (typing.get_origin(hint) is not typing.NotRequired and k in cls.__required_keys__)
        ]
        if required:
            schema["required"] = required
        return schema


def json_schema_for(tp: Any, *, localns: Mapping[str, Any] | None = None) -> JsonSchema:
    """Return the JSON Schema (Draft 2020-12) of a Python type.

    Supports ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``, ``list[T]``,
    ``tuple``, ``set[T]``, ``dict[str, T]``, ``Optional[T]``/``T | None``, unions,
    ``Literal[...]``, ``Enum``, dataclasses (required = fields without defaults;
    ``field(metadata={"description": ...})`` is kept), ``TypedDict`` and
    ``Annotated[T, {extra schema keywords}]``. ``localns`` resolves string annotations
    that name types not visible from the class's module (e.g. siblings in a class body).

    Raises:
        TypeError: the type (or a type inside it) has no JSON Schema equivalent.
    """
    return _SchemaBuilder(localns).build(tp)


# -- validation ---------------------------------------------------------------------------


@functools.cache
def _validator_class() -> Any:
    """The Draft 2020-12 validator, with object/array widened to ``Mapping``/tuples
    (handlers see read-only views). Built on first use: importing jsonschema costs
    more than the rest of flowmonkey, and most processes never validate a schema."""
    import jsonschema

    type_checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "object": lambda _checker, inst: isinstance(inst, Mapping),
            "array": lambda _checker, inst: isinstance(inst, list | tuple),
        }
    )
    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, type_checker=type_checker
    )


def _format_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _type_phrase(types_: Any) -> str:
    names = [types_] if isinstance(types_, str) else list(types_)
    return " or ".join(_JSON_TYPE_NAMES.get(n, n) for n in names)


def _child_path(error: ValidationError, name: str) -> list[str | int]:
    return [*error.absolute_path, name]


_LIMITS = {
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}",
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "minProperties": "must have at least {} properties",
    "maxProperties": "must have at most {} properties",
    "format": "must be a valid {}",
}


def _describe(error: ValidationError) -> list[tuple[list[str | int], str]]:
    """Turn one jsonschema error into ``(path, message)`` pairs a person can act on."""
    kind = error.validator
    value: Any = error.validator_value
    path: list[str | int] = list(error.absolute_path)
    if kind == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        return [(_child_path(error, p), "is required") for p in value if p not in instance]
    if kind == "type":
        return [(path, f"must be {_type_phrase(value)}")]
    if kind in _LIMITS:
        return [(path, _LIMITS[str(kind)].format(value))]
    if kind == "enum":
        return [(path, "must be one of: " + ", ".join(_show(v) for v in value))]
    if kind == "const":
        return [(path, f"must be {_show(value)}")]
    if kind == "pattern":
        return [(path, f"must match pattern /{value}/")]
    if kind == "uniqueItems":
        return [(path, "must not contain duplicate items")]
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(
        error.instance, Mapping
    ):
        parent = error.schema if isinstance(error.schema, Mapping) else {}
        known = parent.get("properties", {})
        patterns = parent.get("patternProperties", {})
        extra = [
            k
            for k in error.instance
            if k not in known and not any(re.search(p, str(k)) for p in patterns)
        ]
        if extra:
            return [(_child_path(error, str(k)), "is not allowed") for k in extra]
    if kind in ("anyOf", "oneOf") and error.context:
        return _describe_alternatives(error, path)
    return [(path, error.message)]


def _describe_alternatives(
    error: ValidationError, path: list[str | int]
) -> list[tuple[list[str | int], str]]:
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        index = sub.relative_schema_path[0]
        branches.setdefault(int(index), []).append(sub)
    # A branch whose own type matched but that failed deeper (e.g. the object arm of
    # ``Item | None`` with a missing field) says the most; report its errors.
    for subs in branches.values():
        if not any(s.validator == "type" and list(s.absolute_path) == path for s in subs):
            out: list[tuple[list[str | int], str]] = []
            for sub in subs:
                out.extend(_describe(sub))
            return out
    arms: Any = error.validator_value
    wanted: list[Any] = [s["type"] for s in arms if isinstance(s, Mapping) and "type" in s]
    if len(wanted) == len(arms):
        flat: list[str] = []
        for w in wanted:
            flat.extend([w] if isinstance(w, str) else w)
        return [(path, f"must be {_type_phrase(dict.fromkeys(flat))}")]
    return [(path, "does not match any of the allowed shapes")]


class SchemaValidator:
    """A JSON Schema compiled once; ``errors(instance)`` lists every problem by path."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: Mapping[str, Any], *, check: bool = True) -> None:
        """Check and compile ``schema``; ``check=False`` skips the metaschema check (for
        constant schemas already checked elsewhere: it is most of the cost).

        Raises:
            ValueError: the schema itself is not a valid Draft 2020-12 schema.
        """
        import jsonschema

        self.schema = dict(schema)
        validator_class = _validator_class()
        if check:
            try:
                validator_class.check_schema(self.schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
        self._validator: Validator = validator_class(
            self.schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def errors(self, instance: Any) -> list[Issue]:
        """Return ``[{"path", "message"}, ...]`` (empty when ``instance`` is valid)."""
        out: list[Issue] = []
        seen: set[tuple[str, str]] = set()
        for error in self._validator.iter_errors(instance):
            for parts, message in _describe(error):
                key = (_format_path(parts), message)
                if key not in seen:
                    seen.add(key)
                    out.append({"path": key[0], "message": message})
        return out


def validate(instance: Any, schema: Mapping[str, Any]) -> list[Issue]:
    """Validate ``instance`` against ``schema``; one ``{"path", "message"}`` per problem.

    Paths look like ``amount`` or ``items[0].sku`` (``$`` is the value itself). This
    compiles the schema on each call; keep a ``SchemaValidator`` to validate repeatedly.
    """
    return SchemaValidator(schema).errors(instance)


# -- conversion ---------------------------------------------------------------------------

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _ConverterBuilder:
    def __init__(self, localns: Mapping[str, Any] | None) -> None:
        self.localns = localns
        self.done: dict[type[Any], Converter] = {}

    def build(self, tp: Any) -> Converter:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Annotated, typing.Required, typing.NotRequired):
            return self.build(args[0])
        if tp is float:
            return _to_float
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            enum_cls = tp
            return lambda v: v if isinstance(v, enum_cls) else enum_cls(v)
        if origin is typing.Union or origin is types.UnionType:
            return self._union([a for a in args if not _is_none(a)])
        if origin in (list, Sequence, set, frozenset, tuple) and args:
            item = self.build(args[0])
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                convs = [self.build(a) for a in args]
                return lambda v: tuple(c(x) for c, x in zip(convs, v, strict=False))
            kind: Any = list if origin is Sequence else origin
            if item is _identity and kind is list:
                return _identity
            return lambda v: kind(item(x) for x in v)
        if origin in (dict, Mapping) and args:
            val = self.build(args[1])
            if val is _identity:
                return _identity
            return lambda v: {k: val(x) for k, x in v.items()}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self._dataclass(tp)
        if isinstance(tp, type) and typing.is_typeddict(tp):
            return self._typeddict(tp)
        return _identity

    def _union(self, arms: list[Any]) -> Converter:
        convs = [(a, self.build(a)) for a in arms]
        if len(convs) == 1:
            only = convs[0][1]
            return lambda v: None if v is None else only(v)
        structured = [c for a, c in convs if is_schema_type(a)]

        def convert(value: Any) -> Any:
            # Only objects are converted in a multi-type union: the first dataclass or
            # TypedDict arm takes them; everything else is already the right value.
            if isinstance(value, Mapping) and structured:
                return structured[0](value)
            return value

        return convert

    def _dataclass(self, cls: type[Any]) -> Converter:
        if cls in self.done:
            return self.done[cls]
        fields: list[tuple[str, Converter]] = []

        def convert(value: Any) -> Any:
            if isinstance(value, cls):
                return value
            return cls(**{name: c(value[name]) for name, c in fields if name in value})

        self.done[cls] = convert
        hints = _hints(cls, self.localns)
        fields.extend(
            (f.name, self.build(hints.get(f.name, Any))) for f in dataclasses.fields(cls) if f.init
        )
        return convert

    def _typeddict(self, cls: type[Any]) -> Converter:
        hints = _hints(cls, self.localns)
        convs = {k: self.build(h) for k, h in hints.items()}
        return lambda v: {k: convs.get(k, _identity)(x) for k, x in v.items()}


def converter_for(tp: Any, *, localns: Mapping[str, Any] | None = None) -> Converter:
    """Return a function turning data valid for ``json_schema_for(tp)`` into ``tp`` values.

    Dataclasses are built recursively (missing optional fields take their defaults),
    enums from their values, ``float`` fields from ints; other values pass through.
    Meant for data already validated against the type's schema.
    """
    return _ConverterBuilder(localns).build(tp)
