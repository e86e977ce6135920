"""The OpenAPI 3.1 document, checked against a running ``flowmonkey serve`` by
schemathesis: bounded examples, a fixed seed, no 5xx, every response as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

# A dev tool: `make test-min` (the package's lowest bounds) runs without it.
schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .serving import Server, serve  # noqa: E402

FLOW = """
id: three
version: 1.0.0
initialStepId: a
steps:
  a: {type: noop, transitions: {onSuccess: null}}
"""

HANDLERS = """
from flowmonkey import Result, handler

@handler("noop")
async def noop(ctx):
    return Result.success({"ok": True})
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    (folder / "flow.yaml").write_text(FLOW)
    (folder / "handlers.py").write_text(HANDLERS)
    args = ["--store", f"sqlite:///{folder / 'o.db'}", "--flows", "flow.yaml",
            "--handlers", "handlers.py", "--no-access-log", "--rate-limit", "100000"]  # fmt: skip
    with serve(args, folder) as running:
        yield running


def test_the_document_is_openapi_3_1_with_every_route(server: Server) -> None:
    doc = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path in (
        "/api/v1/flows", "/api/v1/flows/{flow_id}", "/api/v1/flows/{flow_id}/graph",
        "/api/v1/executions", "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/history", "/api/v1/executions/{execution_id}/events",
        "/api/v1/executions/{execution_id}/resume", "/api/v1/executions/{execution_id}/signal",
        "/api/v1/executions/{execution_id}/cancel", "/api/v1/executions/{execution_id}/retry",
        "/api/v1/executions/bulk", "/api/v1/resume/{token}", "/api/v1/tasks",
        "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/complete",
        "/healthz", "/readyz", "/metrics",
    ):  # fmt: skip
        assert path in paths, path
    assert httpx.get(f"{server.url}/api/docs").status_code == 200


@pytest.mark.slow
def test_every_route_keeps_its_contract(server: Server) -> None:
    """Per operation: 15 generated requests (derandomized: the same every run), each
    answered without a 5xx and exactly as the document says (status, type, schema).

    Driven through schemathesis's Python API rather than its pytest plugin, whose lazy
    loader does not run under pytest 9."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {server.key}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        check()
        tested.append(operation.label)
    assert len(tested) >= 19
