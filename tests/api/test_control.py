"""Resume, signal, cancel, retry, bulk, tasks and resume-by-token over HTTP."""

from __future__ import annotations

import asyncio

from .conftest import Api
from .test_basics import assert_problem


async def _start(api: Api, flow_id: str, who: str = "acme", **body: object) -> dict:
    response = await api[who].post(
        "/api/v1/executions", json={"flow_id": flow_id, "wait": 5, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _settled(api: Api, execution_id: str) -> dict:
    """The execution once the background run of this app finished."""
    state = api.app.state.flowmonkey
    if state.background:
        await asyncio.gather(*state.background)
    return (await api["admin"].get(f"/api/v1/executions/{execution_id}")).json()


async def test_resume_continues_and_a_second_resume_is_409(api: Api) -> None:
    execution = await _start(api, "approval")
    assert execution["status"] == "waiting"
    url = f"/api/v1/executions/{execution['id']}/resume"
    response = await api["acme"].post(url, json={"data": {"approved": True}})
    assert response.status_code == 200, response.text
    done = await _settled(api, execution["id"])
    assert done["status"] == "completed"
    assert done["context"]["answer"] == {"approved": True}
    body = assert_problem(await api["acme"].post(url, json={}), 409, "EXECUTION_NOT_WAITING")
    assert "completed" in body["detail"]


async def test_signal_and_invalid_signal(api: Api) -> None:
    execution = await _start(api, "approval")
    url = f"/api/v1/executions/{execution['id']}/signal"
    assert_problem(await api["acme"].post(url, json={"step_id": "nope"}), 409, "INVALID_SIGNAL")
    assert_problem(await api["acme"].post(url, json={}), 422)
    ok = await api["acme"].post(url, json={"step_id": "ask", "payload": {"x": 1}})
    assert ok.status_code == 200, ok.text
    assert (await _settled(api, execution["id"]))["status"] == "completed"


async def test_cancel_then_cancel_again_is_409(api: Api) -> None:
    execution = await _start(api, "approval")
    url = f"/api/v1/executions/{execution['id']}/cancel"
    response = await api["acme"].post(url, json={"reason": "not needed"})
    assert response.status_code == 200
    body = response.json()
    assert body["cancelled"] is True
    assert body["execution"]["status"] == "cancelled"
    assert body["execution"]["cancellation"]["reason"] == "not needed"
    assert_problem(await api["acme"].post(url), 409, "EXECUTION_TERMINAL")


async def test_retry_route(api: Api) -> None:
    failed = await _start(api, "gated")
    assert failed["status"] == "failed"
    url = f"/api/v1/executions/{failed['id']}/retry"
    assert_problem(
        await api["acme"].post(f"/api/v1/executions/{(await _start(api, 'three'))['id']}/retry"),
        409,
        "EXECUTION_NOT_FAILED",
    )
    response = await api["acme"].post(url)
    assert response.status_code == 200
    again = await _settled(api, failed["id"])
    assert again["status"] == "failed"  # the gate is still closed
    assert again["run_number"] == failed["run_number"] + 1
    events = (await api["acme"].get(f"/api/v1/executions/{failed['id']}/events")).json()
    assert "execution.retried" in [e["type"] for e in events["items"]]


async def test_bulk_cancel_by_filter_dry_run_then_real(api: Api) -> None:
    waiting = [await _start(api, "approval") for _ in range(3)]
    done = await _start(api, "three")
    other = await _start(api, "approval", who="globex")
    body = {"action": "cancel", "filter": {"flow_id": "approval"}, "dry_run": True}
    dry = (await api["acme"].post("/api/v1/executions/bulk", json=body)).json()
    assert dry == {"matched": 3, "succeeded": 3, "failed": [], "dry_run": True}
    for execution in waiting:
        assert (await _settled(api, execution["id"]))["status"] == "waiting"
    body["dry_run"] = False
    real = (await api["acme"].post("/api/v1/executions/bulk", json=body)).json()
    assert real["succeeded"] == 3
    for execution in waiting:
        assert (await _settled(api, execution["id"]))["status"] == "cancelled"
    assert (await _settled(api, other["id"]))["status"] == "waiting"
    by_ids = {"action": "cancel", "ids": [done["id"], waiting[0]["id"], "ghost"]}
    mixed = (await api["acme"].post("/api/v1/executions/bulk", json=by_ids)).json()
    assert mixed["matched"] == 2
    assert mixed["succeeded"] == 0
    assert sorted(f["code"] for f in mixed["failed"]) == [
        "EXECUTION_NOT_FOUND", "EXECUTION_TERMINAL", "EXECUTION_TERMINAL",
    ]  # fmt: skip
    assert_problem(
        await api["acme"].post("/api/v1/executions/bulk", json={"action": "cancel"}), 422
    )
    assert_problem(
        await api["acme"].post(
            "/api/v1/executions/bulk",
            json={"action": "retry", "filter": {"created_after": "yesterday"}},
        ),
        422,
    )


async def test_bulk_retry(api: Api) -> None:
    failed = [await _start(api, "gated") for _ in range(2)]
    body = {"action": "retry", "filter": {"status": ["failed"]}}
    result = (await api["acme"].post("/api/v1/executions/bulk", json=body)).json()
    assert result["matched"] == 2 and result["succeeded"] == 2
    for execution in failed:
        assert (await _settled(api, execution["id"]))["run_number"] == 2


async def test_task_complete_validates_against_the_form(api: Api) -> None:
    execution = await _start(api, "inbox")
    tasks = (await api["acme"].get("/api/v1/tasks")).json()
    assert tasks["next_cursor"] is None
    task = tasks["items"][0]
    assert task["form"]["required"] == ["ok"]
    one = await api["acme"].get(f"/api/v1/tasks/{task['id']}")
    assert one.json()["execution_id"] == execution["id"]
    url = f"/api/v1/tasks/{task['id']}/complete"
    bad = assert_problem(await api["acme"].post(url, json={"data": {"ok": "yes", "x": 1}}), 422)
    assert len(bad["errors"]) == 2
    assert_problem(await api["acme"].post(url, json={}), 422)
    ok = await api["acme"].post(url, json={"data": {"ok": True}})
    assert ok.status_code == 200, ok.text
    assert (await _settled(api, execution["id"]))["status"] == "completed"
    assert_problem(await api["acme"].post(url, json={"data": {"ok": True}}), 409)


async def test_resume_by_token_needs_no_key(api: Api) -> None:
    execution = await _start(api, "link")
    token = execution["context"]["ticket"]["token"]
    anonymous = api["anonymous"]
    assert_problem(await anonymous.post("/api/v1/resume/fmr_unknown", json={}), 404)
    ok = await anonymous.post(f"/api/v1/resume/{token}", json={"data": {"clicked": True}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["execution_id"] == execution["id"]
    assert (await _settled(api, execution["id"]))["status"] == "completed"
    assert_problem(await anonymous.post(f"/api/v1/resume/{token}", json={}), 404)


async def test_resume_by_expired_token_is_410(api: Api) -> None:
    execution = await _start(api, "link")
    token = execution["context"]["ticket"]["token"]
    api.clock.advance(61)
    assert_problem(await api["anonymous"].post(f"/api/v1/resume/{token}"), 410)


async def test_resume_by_token_takes_a_bare_callback_body_as_the_data(api: Api) -> None:
    execution = await _start(api, "link")
    token = execution["context"]["ticket"]["token"]
    payload = {"decision": "approve", "by": "a webhook"}
    ok = await api["anonymous"].post(f"/api/v1/resume/{token}", json=payload)
    assert ok.status_code == 200, ok.text
    done = await _settled(api, execution["id"])
    assert done["context"]["resumeData"] == payload
    assert_problem(
        await api["anonymous"].post(
            "/api/v1/resume/x", content=b"{nope", headers={"Content-Type": "application/json"}
        ),
        400,
    )
