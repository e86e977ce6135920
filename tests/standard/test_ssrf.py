"""The SSRF guard: resolved addresses, redirects, IPv6, custom resolvers, TLS names."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowmonkey.handlers.standard.ssrf import (
    AddressBlocked,
    GuardedBackend,
    blocked_reason,
    guarded_transport,
    parse_http_allow,
)
from flowmonkey.model.execution import ExecutionStatus

from .conftest import MakeEngine
from .servers import DemoApp, Served, serve
from .test_http import run_one


def resolver_for(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_blocked_reasons(address: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


async def test_loopback_is_blocked_by_default(make: MakeEngine, server: Served) -> None:
    result = await run_one(make, {"url": server.url("/json")}, http_allow=())
    assert result.status is ExecutionStatus.FAILED
    assert result.error.code == "HTTP_BLOCKED"
    assert "loopback" in result.error.message
    assert result.execution.history[-1].error["retryable"] is False
    assert server.app.hits == {}  # nothing reached the server


async def test_ipv6_loopback(make: MakeEngine) -> None:
    app = DemoApp()
    with serve(app, "::1") as (_host, port):
        url = f"http://[::1]:{port}/json"
        blocked = await run_one(make, {"url": url}, http_allow=("127.0.0.1",))
        assert blocked.error.code == "HTTP_BLOCKED"
        allowed = await run_one(make, {"url": url}, http_allow=("::1/128",))
        assert allowed.status is ExecutionStatus.COMPLETED, allowed.error
        assert allowed.context["resp"]["body"]["hello"] == "world"


async def test_a_name_resolving_to_a_private_address_is_blocked(
    make: MakeEngine, server: Served
) -> None:
    resolver = resolver_for({"innocent.example": ["127.0.0.1"]})
    url = f"http://innocent.example:{server.port}/json"
    result = await run_one(make, {"url": url}, http_allow=(), http_resolver=resolver)
    assert result.error.code == "HTTP_BLOCKED"
    assert "innocent.example (127.0.0.1)" in result.error.message
    assert server.app.hits == {}


async def test_every_resolved_address_is_checked() -> None:
    backend = GuardedBackend(
        parse_http_allow([]),
        resolver_for({"mixed.example": ["93.184.216.34", "10.0.0.7"]}),
    )
    with pytest.raises(AddressBlocked, match=r"10\.0\.0\.7"):
        await backend.checked_addresses("mixed.example", 80)
    assert await GuardedBackend(
        parse_http_allow([]), resolver_for({"pub.example": ["93.184.216.34"]})
    ).checked_addresses("pub.example", 80) == ["93.184.216.34"]


async def test_the_checked_address_is_the_one_connected_to(
    make: MakeEngine, server: Served
) -> None:
    # "svc.test" exists only in the test resolver: the request can only succeed if the
    # transport connects to the address it checked instead of resolving the name again.
    calls: list[str] = []
    resolver = resolver_for({"svc.test": ["127.0.0.1"]}, calls)
    url = f"http://svc.test:{server.port}/echo"
    result = await run_one(make, {"url": url}, http_allow=("127.0.0.1",), http_resolver=resolver)
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert calls == ["svc.test"]  # resolved once
    assert result.context["resp"]["body"]["headers"]["host"] == f"svc.test:{server.port}"


async def test_an_allowed_host_name(make: MakeEngine, server: Served) -> None:
    resolver = resolver_for({"api.internal": ["127.0.0.1"]})
    url = f"http://api.internal:{server.port}/json"
    result = await run_one(make, {"url": url}, http_allow=("API.internal",), http_resolver=resolver)
    assert result.status is ExecutionStatus.COMPLETED, result.error


async def test_redirect_to_a_blocked_address_is_refused(make: MakeEngine, server: Served) -> None:
    # 127.0.0.1 is allowed, 127.0.0.2 (also loopback) is not: the redirect is re-checked.
    target = f"http://127.0.0.2:{server.port}/json"
    result = await run_one(
        make,
        {"url": server.url(f"/redirect?to={target}"), "follow_redirects": True},
        http_allow=("127.0.0.1/32",),
    )
    assert result.error.code == "HTTP_BLOCKED"
    assert "127.0.0.2" in result.error.message
    assert server.app.hits == {"/redirect": 1}


async def test_redirect_to_another_scheme_is_refused(make: MakeEngine, server: Served) -> None:
    result = await run_one(
        make,
        {"url": server.url("/redirect?to=ftp://127.0.0.1/x"), "follow_redirects": True},
    )
    assert result.error.code == "HTTP_BLOCKED"


async def test_metadata_address_is_blocked_before_connecting(make: MakeEngine) -> None:
    result = await run_one(make, {"url": "http://169.254.169.254/latest/meta-data/"})
    assert result.error.code == "HTTP_BLOCKED"
    assert "link-local" in result.error.message


def test_http_allow_parsing() -> None:
    allow = parse_http_allow(["10.0.0.0/8", "Api.Internal.", "[::1]", "127.0.0.1"])
    assert allow.host_allowed("api.internal")
    assert allow.address_allowed(ipaddress.ip_address("10.9.9.9"))
    assert allow.address_allowed(ipaddress.ip_address("::1"))
    assert not allow.address_allowed(ipaddress.ip_address("127.0.0.2"))
    with pytest.raises(ValueError):
        parse_http_allow([" "])


# -- TLS: the server name is the URL's host, not the address connected to ---------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=svc.test", "-addext", "subjectAltName=DNS:svc.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_tls_keeps_server_name_checks(tls_files: tuple[Path, Path]) -> None:
    import uvicorn

    key, cert = tls_files
    app = DemoApp()
    # A TLS server on 127.0.0.1 whose certificate names svc.test only.
    original = uvicorn.Config.__init__

    def with_tls(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(ssl_keyfile=str(key), ssl_certfile=str(cert))
        original(self, *args, **kwargs)

    uvicorn.Config.__init__ = with_tls  # type: ignore[method-assign]
    try:
        context = serve(app, "127.0.0.1")
        _host, port = context.__enter__()
    finally:
        uvicorn.Config.__init__ = original  # type: ignore[method-assign]
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        table = {"svc.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
        transport = guarded_transport(
            parse_http_allow(["127.0.0.1"]), resolver_for(table), verify=trust
        )
        async with httpx.AsyncClient(transport=transport) as client:
            ok = await client.get(f"https://svc.test:{port}/json")
            assert ok.json()["hello"] == "world"
            with pytest.raises(httpx.ConnectError, match=r"hostname|match"):
                await client.get(f"https://other.test:{port}/json")
    finally:
        context.__exit__(None, None, None)
