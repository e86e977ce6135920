"""``purge``: deletes old finished executions; dry run; filters; bad durations."""

from __future__ import annotations

from clitools import Invoke, approval_run, assert_user_error, json_out, run_order


def test_purge_dry_run_filters_and_delete(invoke: Invoke) -> None:
    done = json_out(run_order(invoke, "--json"))["id"]
    waiting = approval_run(invoke)
    # Both commands above have returned, so the completed run finished more than 1ms ago.
    dry = json_out(invoke("--json", "purge", "--older-than", "1ms", "--dry-run"))
    assert (dry["executions"], dry["rows"], dry["dry_run"]) == (1, 0, True)
    assert invoke("status", done).exit_code == 0
    none = invoke("purge", "--older-than", "1ms", "--status", "failed")
    assert none.exit_code == 0, none.output
    assert none.stdout.startswith("purged 0 execution(s)")
    other_flow = json_out(invoke("--json", "purge", "--older-than", "1ms", "--flow", "nope"))
    assert other_flow["executions"] == 0
    kept = json_out(invoke("--json", "purge", "--older-than", "30d"))
    assert kept["executions"] == 0
    result = invoke("purge", "--older-than", "1ms")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("purged 1 execution(s), ")
    assert invoke("status", done).exit_code != 0  # gone
    assert invoke("status", waiting).exit_code == 0  # still waiting: never purged


def test_purge_rejects_bad_durations(invoke: Invoke) -> None:
    assert_user_error(invoke("purge", "--older-than", "soon"), "--older-than")
    assert_user_error(invoke("purge", "--older-than", "0s"), "positive")
    missing = invoke("purge")
    assert missing.exit_code == 2 and "--older-than" in missing.output


def test_worker_rejects_a_non_positive_retention(invoke: Invoke) -> None:
    result = invoke("worker", "--retention", "0s")
    assert result.exit_code == 2 and "--retention must be positive" in result.output
