"""``flowmonkey.jsonvalues``: NaN and Infinity are found (with their path), nothing else."""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson
import pytest

from flowmonkey.jsonvalues import find_non_finite, non_finite_message


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (math.nan, ""),
        ({"a": [1, {"b": math.inf}]}, "a[1].b"),
        ([None, -math.inf], "[1]"),
        ((1.0, math.nan), "[1]"),
        ({"id": uuid.UUID(int=1), "x": {"y": math.nan}}, "x.y"),  # a type json cannot encode
    ],
)
def test_finds_the_path_of_a_non_finite_float(value: Any, path: str) -> None:
    assert find_non_finite(value) == path
    assert find_non_finite(value, orjson.dumps(value)) == path


@pytest.mark.parametrize(
    "value", [None, {"a": None, "b": [None, 1.5, -0.0]}, {"id": uuid.UUID(int=1), "n": None},
              1e308, {"s": "NaN", "t": "Infinity"}]
)  # fmt: skip
def test_finite_values_and_nulls_pass(value: Any) -> None:
    assert find_non_finite(value) is None
    assert find_non_finite(value, orjson.dumps(value)) is None


def test_message_names_the_path() -> None:
    assert "'a.b'" in non_finite_message("output", "a.b")
    assert "NaN or Infinity" in non_finite_message("output", "")
