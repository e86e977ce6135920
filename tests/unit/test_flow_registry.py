"""FlowRegistry: validation on register, semver "latest", duplicates, callbacks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from flowmonkey.definitions import FlowBuilder, FlowRegistry
from flowmonkey.errors import FlowValidationError
from flowmonkey.model.flow import Flow


def flow(version: str = "1.0.0", flow_id: str = "f", handler: str = "t") -> Flow:
    return FlowBuilder(flow_id, version).step("a", handler).build()


def test_register_and_get() -> None:
    reg = FlowRegistry()
    f = flow()
    assert reg.register(f) is f
    assert reg.get("f") is f
    assert reg.get("f", "1.0.0") is f
    assert reg.get("f", "2.0.0") is None
    assert reg.get("nope") is None
    assert reg.has("f") and not reg.has("nope")
    assert reg.has("f", "1.0.0") and not reg.has("f", "9.9.9")


def test_latest_is_by_semver_not_string_order() -> None:
    reg = FlowRegistry([flow("9.0.0"), flow("10.0.0"), flow("2.5.0")])
    latest = reg.get("f")
    assert latest is not None and latest.version == "10.0.0"
    assert reg.versions("f") == ["10.0.0", "9.0.0", "2.5.0"]


def test_prerelease_sorts_before_its_release() -> None:
    reg = FlowRegistry([flow("2.0.0-rc.1"), flow("1.9.9")])
    assert reg.get("f").version == "2.0.0-rc.1"  # type: ignore[union-attr]
    reg.register(flow("2.0.0"))
    assert reg.versions("f") == ["2.0.0", "2.0.0-rc.1", "1.9.9"]
    reg.register(flow("2.0.0-rc.10"))
    assert reg.versions("f")[:3] == ["2.0.0", "2.0.0-rc.10", "2.0.0-rc.1"]


def test_versions_of_unknown_flow_is_empty() -> None:
    assert FlowRegistry().versions("nope") == []


def test_flow_ids_in_registration_order_and_len_contains_iter() -> None:
    reg = FlowRegistry([flow(flow_id="b"), flow(flow_id="a"), flow("2.0.0", flow_id="b")])
    assert reg.flow_ids() == ["b", "a"]
    assert len(reg) == 3
    assert "a" in reg and "zzz" not in reg
    assert flow("2.0.0", flow_id="b") in reg
    assert flow("3.0.0", flow_id="b") not in reg
    assert [f.key for f in reg] == ["b@2.0.0", "b@1.0.0", "a@1.0.0"]


def test_register_invalid_flow_raises_with_issues() -> None:
    bad = dataclasses.replace(flow(), initial_step_id="ghost")
    reg = FlowRegistry()
    with pytest.raises(FlowValidationError) as info:
        reg.register(bad)
    assert info.value.code == "INVALID_FLOW"
    assert [i.path for i in info.value.issues if i.severity == "error"] == ["initialStepId"]
    assert len(reg) == 0


def test_duplicate_with_different_definition_is_rejected() -> None:
    reg = FlowRegistry([flow()])
    with pytest.raises(FlowValidationError) as info:
        reg.register(flow(handler="other"))
    assert [i.path for i in info.value.issues] == ["version"]
    assert "already registered" in info.value.issues[0].message
    assert reg.get("f").steps["a"].type == "t"  # type: ignore[union-attr]


def test_reregistering_identical_flow_is_a_noop() -> None:
    calls: list[str] = []
    reg = FlowRegistry()
    reg.on_register.append(lambda f: calls.append(f.key))
    first = flow()
    reg.register(first)
    again = flow()
    assert again is not first
    assert reg.register(again) is first
    assert calls == ["f@1.0.0"]
    assert len(reg) == 1


def test_on_register_callbacks_receive_each_new_flow() -> None:
    seen: list[Flow] = []
    reg = FlowRegistry()
    reg.on_register.append(seen.append)
    reg.register(flow("1.0.0"))
    reg.register(flow("1.1.0"))
    assert [f.version for f in seen] == ["1.0.0", "1.1.0"]


class FakeHandlers:
    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)

    def types(self) -> list[str]:
        return self.names


def test_validate_with_handlers_object_or_names() -> None:
    reg = FlowRegistry()
    f = flow(handler="custom")
    assert reg.validate(f) == []
    assert [i.path for i in reg.validate(f, handlers=FakeHandlers(["other"]))] == ["steps.a.type"]
    assert reg.validate(f, handlers=FakeHandlers(["custom"])) == []
    assert [i.path for i in reg.validate(f, handlers={"x"})] == ["steps.a.type"]
    assert reg.validate(f, handlers=["custom"]) == []
    assert len(reg) == 0  # validate does not register


def test_registry_with_handlers_rejects_unknown_types_at_register() -> None:
    handlers = FakeHandlers(["t"])
    reg = FlowRegistry(handlers=handlers)
    reg.register(flow())
    with pytest.raises(FlowValidationError, match="No handler registered"):
        reg.register(flow("2.0.0", handler="later"))
    handlers.names.append("later")  # read at each register call
    reg.register(flow("2.0.0", handler="later"))
    assert reg.versions("f") == ["2.0.0", "1.0.0"]


def test_builtin_types_need_no_handler() -> None:
    f = FlowBuilder("w").delay("nap", "1h").build()
    FlowRegistry(handlers=[]).register(f)
