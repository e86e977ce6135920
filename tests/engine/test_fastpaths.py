"""The pipe fast paths never disagree with the libraries they short-cut."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmonkey.engine.fastpaths import compile_map, compile_schema
from flowmonkey.handlers.schema import SchemaValidator

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object"},
    {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 2, "maxLength": 5},
            "n": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
            "x": {"type": "number", "maximum": 2.5, "exclusiveMinimum": -1},
            "ok": {"type": "boolean"},
            "tag": {"type": ["string", "null"], "enum": ["a", "b"]},
            "kind": {"const": "k"},
            "any": {},
            "obj": {"type": "object", "properties": {"y": {"type": "array"}}, "required": ["y"]},
        },
        "required": ["id"],
        "additionalProperties": False,
    },
    {"type": "object", "properties": {"n": {"type": "null"}}, "additionalProperties": True},
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-20, 20), st.floats(-5, 15, allow_nan=False),
    st.text(max_size=6), st.sampled_from(["a", "b", "k", "abc"]),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
rows = st.dictionaries(
    st.sampled_from(["id", "n", "x", "ok", "tag", "kind", "any", "obj", "extra"]),
    json_values | st.fixed_dictionaries({"y": json_values}),
    max_size=6,
)


@pytest.mark.parametrize("schema", SCHEMAS)
@settings(max_examples=300, deadline=None)
@given(instance=st.one_of(rows, json_values))
def test_the_schema_shortcut_accepts_only_what_jsonschema_accepts(
    schema: dict[str, Any], instance: Any
) -> None:
    check = compile_schema(schema)
    assert check is not None
    valid = SchemaValidator(schema).errors(instance) == []
    assert check(instance) == valid


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}},
        {"type": "object", "patternProperties": {"^x": {}}, "additionalProperties": False},
        {"$ref": "#/$defs/x", "$defs": {"x": {}}},
        {"type": "object", "properties": {"n": {"enum": [1, True]}}},
        {"anyOf": [{"type": "string"}]},
    ],
)
def test_schemas_beyond_the_shortcut_go_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_schema(schema) is None


SCOPES = st.fixed_dictionaries(
    {
        "output": json_values | st.fixed_dictionaries({"id": json_values, "a": json_values}),
        "input": json_values,
        "execution": st.fixed_dictionaries({"id": st.text(max_size=3)}),
    }
)


@pytest.mark.parametrize(
    "expression",
    [
        "{id: output.id, a: output.a.b, e: execution.id, lit: 'paid', n: `3`, i: input}",
        "{deep: output.a.b.c, missing: nope.x}",
    ],
)
@settings(max_examples=300, deadline=None)
@given(scope=SCOPES)
def test_the_map_shortcut_agrees_with_jmespath(expression: str, scope: dict[str, Any]) -> None:
    compiled = jmespath.compile(expression)
    fast = compile_map(compiled)
    assert fast is not None
    assert fast(scope) == compiled.search(scope)


@pytest.mark.parametrize(
    "expression",
    [
        "output.id",
        "{a: length(output)}",
        "{a: output[0]}",
        "{a: output || input}",
        "{a: {b: output}}",
    ],
)
def test_maps_beyond_the_shortcut_go_to_jmespath(expression: str) -> None:
    assert compile_map(jmespath.compile(expression)) is None
