"""to_mermaid: shapes, edge labels, escaping, start/end markers, determinism."""

from __future__ import annotations

import dataclasses

from flowmonkey.definitions import FlowBuilder, to_mermaid
from flowmonkey.model.flow import Flow, Transitions


def sample() -> Flow:
    return (
        FlowBuilder("f")
        .step("validate", "validate-order", on_failure="notify")
        .switch(
            "route", [("order.kind == 'rush' && tags[?@ == \"a|b\"]", "fork")], default="approve"
        )
        .parallel("fork", ["a", "b"])
        .step("a", "t", on_success="j")
        .step("b", "t", on_success="j")
        .join("j", on_success="approve")
        .user_task(
            "approve",
            "Approve",
            ports={"ok": None, "redo": "route"},
            on_timeout="notify",
            on_success="notify",
        )
        .step("notify", "notify-ops", on_success=None)
        .build()
    )


def test_snapshot() -> None:
    assert to_mermaid(sample()) == (
        "flowchart TD\n"
        "    fm_start((start))\n"
        '    s_validate["validate<br/>validate-order"]\n'
        '    s_route{"route<br/>switch"}\n'
        '    s_fork{{"fork<br/>parallel"}}\n'
        '    s_a["a<br/>t"]\n'
        '    s_b["b<br/>t"]\n'
        '    s_j{{"j<br/>join"}}\n'
        '    s_approve(["approve<br/>userTask"])\n'
        '    s_notify["notify<br/>notify-ops"]\n'
        "    fm_end([end])\n"
        "    fm_start --> s_validate\n"
        '    s_validate -->|"success"| s_route\n'
        '    s_validate -->|"failure"| s_notify\n'
        "    s_route -->|\"order.kind == 'rush' &&"
        ' tags[?@ == #quot;a#124;b#quot;]"| s_fork\n'
        '    s_route -->|"default"| s_approve\n'
        '    s_fork -->|"branch"| s_a\n'
        '    s_fork -->|"branch"| s_b\n'
        '    s_a -->|"success"| s_j\n'
        '    s_b -->|"success"| s_j\n'
        '    s_j -->|"success"| s_approve\n'
        '    s_approve -->|"success"| s_notify\n'
        '    s_approve -->|"timeout"| s_notify\n'
        '    s_approve -->|"ok"| fm_end\n'
        '    s_approve -->|"redo"| s_route\n'
        '    s_notify -->|"success"| fm_end\n'
    )


def test_deterministic() -> None:
    assert to_mermaid(sample()) == to_mermaid(sample())


def test_shapes_for_waits_and_subflows() -> None:
    flow = (
        FlowBuilder("f")
        .wait_for_signal("sig")
        .delay("nap", "1h")
        .subflow("kid", "child")
        .for_each("each", "xs", "item")
        .build()
    )
    text = to_mermaid(flow)
    assert '    s_sig(["sig<br/>waitForSignal"])' in text
    assert '    s_nap(["nap<br/>delay"])' in text
    assert '    s_kid[["kid<br/>subflow"]]' in text
    assert '    s_each[["each<br/>forEach"]]' in text


def test_odd_step_ids_get_safe_unique_node_ids() -> None:
    flow = (
        FlowBuilder("f")
        .step("end", "t")
        .step("a-b", "t")
        .step("a_b", "t")
        .step('q"x', "ty<pe>", on_success=None)
        .build()
    )
    text = to_mermaid(flow)
    assert '    s_end["end<br/>t"]' in text
    assert '    s_a_b["a-b<br/>t"]' in text
    assert '    s_a_b_2["a_b<br/>t"]' in text
    assert '    s_q_x["q#quot;x<br/>ty#lt;pe#gt;"]' in text
    assert '    s_a_b -->|"success"| s_a_b_2\n' in text


def test_failure_and_resume_edges_and_no_end_when_nothing_completes() -> None:
    flow = (
        FlowBuilder("f")
        .step("a", "t", on_success="b", on_resume="b", on_failure="a")
        .step("b", "t", on_success="a")
        .build()
    )
    text = to_mermaid(flow)
    assert '    s_a -->|"resume"| s_b\n' in text
    assert '    s_a -->|"failure"| s_a\n' in text
    assert "fm_end" not in text


def test_missing_targets_are_drawn_dashed() -> None:
    flow = FlowBuilder("f").step("a", "t", on_success=None).build()
    broken = dataclasses.replace(
        flow,
        steps={"a": dataclasses.replace(flow.steps["a"], transitions=Transitions(on_success="x"))},
    )
    text = to_mermaid(broken)
    assert '    s_a -->|"success"| missing_1\n' in text
    assert '    missing_1["x (missing)"]' in text
