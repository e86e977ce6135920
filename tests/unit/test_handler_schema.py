"""Type hints -> JSON Schema, validation messages and conversion (handlers/schema.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict

import pytest

from flowmonkey.handlers.schema import (
    SchemaValidator,
    converter_for,
    json_schema_for,
    validate,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Item:
    sku: str
    qty: int = 1


@dataclass
class Order:
    id: str
    amount: float
    items: list[Item]
    note: str | None = None
    color: Color = Color.RED
    tags: list[str] = field(default_factory=list)
    ref: str = field(default="x", metadata={"description": "external reference"})


@dataclass
class Wrapper:
    order: Order
    extra: Optional[Item] = None  # noqa: UP045 - Optional spelling is part of the contract
    by_name: dict[str, Item] = field(default_factory=dict)


class Address(TypedDict):
    street: str
    zip: NotRequired[int]


@dataclass
class Node:
    child: Node | None = None


@dataclass
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must not be negative")


# -- json_schema_for ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (type(None), {"type": "null"}),
        (Any, {}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (Optional[str], {"type": ["string", "null"]}),  # noqa: UP045
        (int | None, {"type": ["integer", "null"]}),
        (Literal["a", "b"], {"enum": ["a", "b"], "type": "string"}),
        (Literal[1, "a"], {"enum": [1, "a"]}),
        (Color, {"enum": ["red", "green"], "type": "string"}),
        (Level, {"enum": [1, 2], "type": "integer"}),
        (Literal["a"] | None, {"enum": ["a", None]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (set[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (Annotated[int, {"minimum": 0}], {"type": "integer", "minimum": 0}),
    ],
)
def test_schema_of_simple_types(tp: Any, expected: dict[str, Any]) -> None:
    assert json_schema_for(tp) == expected


def test_schema_of_dataclass_required_defaults_and_nesting() -> None:
    schema = json_schema_for(Order)
    assert schema["type"] == "object"
    assert schema["title"] == "Order"
    assert schema["required"] == ["id", "amount", "items"]
    props = schema["properties"]
    assert list(props) == ["id", "amount", "items", "note", "color", "tags", "ref"]
    assert props["amount"] == {"type": "number"}
    assert props["items"] == {
        "type": "array",
        "items": {
            "type": "object",
            "title": "Item",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "default": 1}},
            "required": ["sku"],
        },
    }
    assert props["note"] == {"type": ["string", "null"], "default": None}
    # Enum defaults are shown by value so the schema stays JSON.
    assert props["color"] == {"enum": ["red", "green"], "type": "string", "default": "red"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["ref"] == {"type": "string", "description": "external reference", "default": "x"}


def test_schema_of_optional_dataclass_uses_any_of() -> None:
    extra = json_schema_for(Wrapper)["properties"]["extra"]
    assert extra["anyOf"][1] == {"type": "null"}
    assert extra["anyOf"][0]["title"] == "Item"
    assert extra["default"] is None


def test_schema_of_typeddict() -> None:
    assert json_schema_for(Address) == {
        "type": "object",
        "title": "Address",
        "properties": {"street": {"type": "string"}, "zip": {"type": "integer"}},
        "required": ["street"],
    }


def test_unsupported_and_recursive_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="cannot make a JSON Schema"):
        json_schema_for(complex)
    with pytest.raises(TypeError, match="keys must be str"):
        json_schema_for(dict[int, str])
    with pytest.raises(TypeError, match="recursive type Node"):
        json_schema_for(Node)


def test_unresolvable_local_type_hint_is_a_clear_error() -> None:
    @dataclass
    class Local:
        inner: Item

    @dataclass
    class Outer:
        local: Local  # a name only visible inside this function

    with pytest.raises(TypeError, match=r"cannot resolve the type hints of .*Outer"):
        json_schema_for(Outer)
    # ...unless the caller supplies the names.
    assert json_schema_for(Outer, localns={"Local": Local})["required"] == ["local"]


# -- validate -----------------------------------------------------------------------------


def test_valid_instance_has_no_errors() -> None:
    schema = json_schema_for(Order)
    assert validate({"id": "o1", "amount": 3, "items": [{"sku": "a"}]}, schema) == []


def test_missing_required_fields_each_reported() -> None:
    errors = validate({}, json_schema_for(Order))
    assert errors == [
        {"path": "id", "message": "is required"},
        {"path": "amount", "message": "is required"},
        {"path": "items", "message": "is required"},
    ]


def test_type_errors_with_nested_paths_all_at_once() -> None:
    errors = validate(
        {
            "id": 7,
            "amount": "ten",
            "items": [{"sku": "a"}, {"qty": "2"}],
            "color": "blue",
            "note": 3,
        },
        json_schema_for(Order),
    )
    assert errors == [
        {"path": "id", "message": "must be a string"},
        {"path": "amount", "message": "must be a number"},
        {"path": "items[1].qty", "message": "must be an integer"},
        {"path": "items[1].sku", "message": "is required"},
        {"path": "note", "message": "must be a string or null"},
        {"path": "color", "message": 'must be one of: "red", "green"'},
    ]


def test_optional_nested_object_reports_inner_field_not_any_of() -> None:
    order = {"id": "o", "amount": 1, "items": []}
    errors = validate({"order": order, "extra": {"qty": 1}}, json_schema_for(Wrapper))
    assert errors == [{"path": "extra.sku", "message": "is required"}]
    errors = validate({"order": order, "extra": 5}, json_schema_for(Wrapper))
    assert errors == [{"path": "extra", "message": "must be an object or null"}]


def test_dict_values_and_root_paths() -> None:
    schema = json_schema_for(Wrapper)
    errors = validate(
        {"order": {"id": "o", "amount": 1, "items": []}, "by_name": {"x": {"sku": 1}}}, schema
    )
    assert errors == [{"path": "by_name.x.sku", "message": "must be a string"}]
    assert validate([1], schema) == [{"path": "$", "message": "must be an object"}]


@pytest.mark.parametrize(
    ("schema", "instance", "message"),
    [
        ({"type": "integer", "minimum": 5}, 1, "must be at least 5"),
        ({"type": "integer", "maximum": 5}, 9, "must be at most 5"),
        ({"type": "integer", "exclusiveMinimum": 5}, 5, "must be greater than 5"),
        ({"type": "string", "minLength": 2}, "a", "must be at least 2 characters long"),
        ({"type": "string", "maxLength": 1}, "ab", "must be at most 1 characters long"),
        ({"type": "string", "pattern": "^a+$"}, "b", "must match pattern /^a+$/"),
        ({"type": "array", "minItems": 1}, [], "must have at least 1 items"),
        ({"type": "array", "uniqueItems": True}, [1, 1], "must not contain duplicate items"),
        ({"const": "x"}, "y", 'must be "x"'),
        ({"type": "string", "format": "email"}, "nope", "must be a valid email"),
        ({"type": ["integer", "string"]}, 1.5, "must be an integer or a string"),
    ],
)
def test_keyword_messages(schema: dict[str, Any], instance: Any, message: str) -> None:
    assert validate(instance, schema) == [{"path": "$", "message": message}]


def test_additional_properties_named_per_key() -> None:
    schema = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
    assert validate({"a": 1, "b": 2, "c": 3}, schema) == [
        {"path": "b", "message": "is not allowed"},
        {"path": "c", "message": "is not allowed"},
    ]


def test_mappings_and_tuples_count_as_objects_and_arrays() -> None:
    from types import MappingProxyType

    schema = json_schema_for(Order)
    data = MappingProxyType({"id": "o", "amount": 1.5, "items": ({"sku": "a"},)})
    assert validate(data, schema) == []


def test_invalid_schema_is_rejected_when_compiled() -> None:
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        SchemaValidator({"type": "no-such-type"})


def test_schema_validator_is_reusable() -> None:
    validator = SchemaValidator({"type": "object", "required": ["a"]})
    assert validator.errors({}) == [{"path": "a", "message": "is required"}]
    assert validator.errors({"a": 1}) == []
    assert validator.errors({}) == [{"path": "a", "message": "is required"}]


# -- converter_for ------------------------------------------------------------------------


def test_converts_nested_dataclasses_enums_and_floats() -> None:
    convert = converter_for(Wrapper)
    result = convert(
        {
            "order": {"id": "o", "amount": 3, "items": [{"sku": "a", "qty": 2}], "color": "green"},
            "extra": {"sku": "e"},
            "by_name": {"k": {"sku": "k"}},
        }
    )
    assert result == Wrapper(
        order=Order(id="o", amount=3.0, items=[Item("a", 2)], color=Color.GREEN),
        extra=Item("e"),
        by_name={"k": Item("k")},
    )
    assert isinstance(result.order.amount, float)
    assert result.order.tags == []  # default_factory applied for a missing field


def test_converts_none_for_optional_and_keeps_typeddict_a_dict() -> None:
    assert converter_for(Wrapper)({"order": {"id": "o", "amount": 1, "items": []}}).extra is None
    assert converter_for(Address)({"street": "s", "zip": 1}) == {"street": "s", "zip": 1}
    assert converter_for(list[Color])(["red"]) == [Color.RED]


def test_post_init_errors_propagate() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        converter_for(Checked)({"n": -1})
