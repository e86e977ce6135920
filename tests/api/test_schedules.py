"""``/api/v1/schedules``: every route, tenancy, and each bad input a 4xx creating nothing."""

from __future__ import annotations

from datetime import timedelta

from .conftest import Api


async def test_create_get_list_patch_delete(api: Api) -> None:
    created = await api["acme"].post(
        "/api/v1/schedules",
        json={
            "id": "nightly",
            "flow_id": "three",
            "cron": "0 2 * * *",
            "timezone": "Europe/Berlin",
            "input": {"day": "{{ schedule.scheduled_for }}"},
            "catchup_window": "2h",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tenant_id"] == "acme" and body["catchup_window"] == "2h"
    assert created.headers["location"] == "/api/v1/schedules/nightly"
    assert len(body["next_fire_times"]) == 5 and body["next_fire_at"] == body["next_fire_times"][0]
    one = (await api["acme"].get("/api/v1/schedules/nightly")).json()
    assert one["next_fire_times"] == body["next_fire_times"]
    listed = (await api["acme"].get("/api/v1/schedules")).json()
    assert [s["id"] for s in listed["items"]] == ["nightly"] and "next_fire_times" not in listed[
        "items"
    ][0]
    # another tenant sees nothing and gets 404, never 403
    assert (await api["globex"].get("/api/v1/schedules")).json()["items"] == []
    assert (await api["globex"].get("/api/v1/schedules/nightly")).status_code == 404
    assert (await api["globex"].delete("/api/v1/schedules/nightly")).status_code == 404
    patched = await api["acme"].patch("/api/v1/schedules/nightly", json={"cron": "@hourly"})
    assert patched.status_code == 200 and patched.json()["cron"] == "@hourly"
    bad = await api["acme"].patch("/api/v1/schedules/nightly", json={"id": "x", "jitter": "soon"})
    assert bad.status_code == 422
    assert sorted(e["path"] for e in bad.json()["errors"]) == ["id", "jitter"]
    assert (await api["reader"].delete("/api/v1/schedules/nightly")).status_code == 403
    assert (await api["acme"].delete("/api/v1/schedules/nightly")).status_code == 204
    assert (await api["acme"].get("/api/v1/schedules/nightly")).status_code == 404


async def test_bad_input_is_a_4xx_naming_the_problem_and_creates_nothing(api: Api) -> None:
    cases = [
        ({"flow_id": "three", "cron": "99 * * * *"}, 422, ["cron"]),
        ({"flow_id": "three", "cron": "0 * * * *", "timezone": "Nowhere/City"}, 422, ["timezone"]),
        ({"flow_id": "ghost", "cron": "0 * * * *"}, 422, ["flow_id"]),
        (
            {
                "flow_id": "three",
                "cron": "0 * * * *",
                "start_at": "2026-05-01T00:00:00Z",
                "end_at": "2026-04-01T00:00:00Z",
            },
            422,
            ["end_at"],
        ),
        (
            {"flow_id": "three", "cron": "0 * * * *", "overlap": "both", "catchup": "some"},
            422,
            ["catchup", "overlap"],
        ),
    ]
    for body, status, paths in cases:
        answer = await api["acme"].post("/api/v1/schedules", json=body)
        assert answer.status_code == status, (body, answer.text)
        problem = answer.json()
        assert problem["code"] == "INVALID_SCHEDULE"
        assert sorted(e["path"] for e in problem["errors"]) == paths
        assert body.get("cron", "x")[:2] in problem["detail"] or paths != ["cron"]
    raw = await api["acme"].post(
        "/api/v1/schedules", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert raw.status_code == 400 and raw.json()["code"] == "MALFORMED_JSON"
    form = await api["acme"].post(
        "/api/v1/schedules",
        content=b"a=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert (await api["acme"].get("/api/v1/schedules")).json()["items"] == []
    ok = {"id": "s", "flow_id": "three", "cron": "0 * * * *"}
    assert (await api["acme"].post("/api/v1/schedules", json=ok)).status_code == 201
    again = await api["acme"].post("/api/v1/schedules", json=ok)
    assert again.status_code == 409 and again.json()["code"] == "ALREADY_EXISTS"


async def test_pause_trigger_backfill_and_runs(api: Api) -> None:
    await api["acme"].post(
        "/api/v1/schedules",
        json={"id": "r", "flow_id": "approval", "cron": "0 0 * * *", "overlap": "skip"},
    )
    paused = await api["acme"].post("/api/v1/schedules/r/pause")
    assert paused.json()["paused"] is True
    first = await api["acme"].post("/api/v1/schedules/r/trigger")
    assert first.status_code == 201 and first.json()["outcome"] == "started"
    await api.engine.run_until_idle()  # the approval flow now waits
    api.clock.advance(1)
    skipped = await api["acme"].post("/api/v1/schedules/r/trigger", json={})
    assert skipped.status_code == 200 and skipped.json()["outcome"] == "skipped"
    api.clock.advance(1)
    forced = await api["acme"].post("/api/v1/schedules/r/trigger", json={"overlap": "allow"})
    assert forced.json()["outcome"] == "started"
    bad = await api["acme"].post("/api/v1/schedules/r/trigger", json={"overlap": "maybe"})
    assert bad.status_code == 422
    now = api.clock.now()
    window = {"start": (now - timedelta(days=2)).isoformat(), "end": now.isoformat()}
    filled = await api["acme"].post("/api/v1/schedules/r/backfill", json=window)
    assert filled.status_code == 200 and len(filled.json()["items"]) == 2
    again = await api["acme"].post("/api/v1/schedules/r/backfill", json=window)
    assert [r["execution_id"] for r in again.json()["items"]] == [
        r["execution_id"] for r in filled.json()["items"]
    ]
    wrong = await api["acme"].post("/api/v1/schedules/r/backfill", json={"start": "yesterday"})
    assert wrong.status_code == 422 and {e["path"] for e in wrong.json()["errors"]} == {
        "start",
        "end",
    }
    runs = (await api["acme"].get("/api/v1/schedules/r/runs")).json()["items"]
    # The fake clock starts at midnight: the backfill's last time is the first run-now's
    # time, which keeps its first run (exactly once), so 3 run-now rows + 1 backfilled.
    assert filled.json()["items"][1]["execution_id"] == first.json()["execution_id"]
    assert sorted(r["outcome"] for r in runs) == ["skipped"] + ["started"] * 3
    unpaused = await api["acme"].post("/api/v1/schedules/r/unpause")
    assert unpaused.json()["paused"] is False and unpaused.json()["next_fire_at"]


async def test_fires_are_counted_in_metrics_by_outcome(api: Api) -> None:
    await api["acme"].post(
        "/api/v1/schedules",
        json={"id": "m", "flow_id": "approval", "cron": "* * * * *", "overlap": "skip"},
    )
    for _ in range(3):
        api.clock.advance(60)
        await api.engine.fire_schedules()
        await api.engine.run_until_idle()
    text = (await api["anonymous"].get("/metrics")).text
    assert 'flowmonkey_schedule_fires_total{outcome="started"} 1.0' in text
    assert 'flowmonkey_schedule_fires_total{outcome="skipped"} 2.0' in text
    assert "flowmonkey_schedule_fire_lag_seconds_count 1.0" in text
