"""The SSRF guard: which addresses an ``http``/``webhook`` step may connect to.

Checking a URL's host name is not enough (a public name can resolve to 127.0.0.1, and
resolve differently a second later: DNS rebinding). So the check happens where the
connection is made: ``GuardedBackend`` resolves the host once, refuses it when ANY of
its addresses is internal, and connects to one of the addresses it checked. TLS still
verifies the certificate against the URL's host name, because httpcore passes that
name (not the address) as the server name. Redirects open new connections through the
same backend, so every hop is checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HTTP_BLOCKED",
    "AddressBlocked",
    "HttpAllow",
    "Resolver",
    "blocked_reason",
    "parse_http_allow",
    "system_resolver",
]

HTTP_BLOCKED = "HTTP_BLOCKED"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [address, ...]``: every A/AAAA address of ``host``."""


class AddressBlocked(Exception):
    """A request was refused by the SSRF guard (the step fails with ``HTTP_BLOCKED``)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (IPv4 and IPv6), in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True, slots=True)
class HttpAllow:
    """Hosts and networks exempt from the guard (``EngineOptions.http_allow``)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def host_allowed(self, host: str) -> bool:
        """True when ``host`` is listed by name (case-insensitive)."""
        return host.lower().rstrip(".") in self.hosts

    def address_allowed(self, address: IPAddress) -> bool:
        """True when ``address`` is inside a listed network."""
        return any(address.version == n.version and address in n for n in self.networks)


def parse_http_allow(entries: Iterable[str]) -> HttpAllow:
    """Parse ``["api.internal", "10.0.0.0/8", "127.0.0.1", ...]``.

    Raises:
        ValueError: an entry is empty.
    """
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            raise ValueError("http_allow: empty entry")
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return HttpAllow(frozenset(hosts), tuple(networks))


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is off limits, or ``None`` when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return blocked_reason(mapped)
    checks = (
        # Most specific first: 0.0.0.0 and 169.254.x.x are also "private" to Python.
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


class GuardedBackend:
    """An httpcore network backend that checks every address before connecting."""

    def __init__(self, allow: HttpAllow, resolver: Resolver | None = None) -> None:
        import httpcore

        self.allow = allow
        self.resolver: Resolver = resolver or system_resolver
        self._auto = httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to; raises ``AddressBlocked`` if any is internal."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = list(await self.resolver(host, port))
            except OSError as exc:
                import httpcore

                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            if not addresses:
                import httpcore

                raise httpcore.ConnectError(f"{host} has no address")
        if literal is None and self.allow.host_allowed(host):
            return addresses
        for address in addresses:
            ip = ipaddress.ip_address(address)
            reason = blocked_reason(ip)
            if reason is not None and not self.allow.address_allowed(ip):
                shown = host if literal is not None else f"{host} ({address})"
                raise AddressBlocked(
                    f"{shown} is a {reason} address; "
                    "add it to http_allow (--http-allow) to allow it"
                )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        """Resolve once, check, then connect to the checked addresses in turn."""
        import httpcore

        addresses = await self.checked_addresses(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._auto.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        """Unix sockets are never used by the standard handlers."""
        raise AddressBlocked("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the asyncio/anyio backend."""
        await self._auto.sleep(seconds)


def guarded_transport(
    allow: HttpAllow, resolver: Resolver | None = None, *, verify: Any = True
) -> Any:
    """An ``httpx.AsyncHTTPTransport`` whose connections go through ``GuardedBackend``.

    ``verify`` is httpx's (``True``, or an ``ssl.SSLContext`` trusting other CAs).
    """
    import httpx

    transport = httpx.AsyncHTTPTransport(verify=verify, http1=True, http2=False, trust_env=False)
    backend = GuardedBackend(allow, resolver)
    # httpx does not take a network backend; its pool (httpcore) does. Set it on the pool
    # it built so that TLS, limits and keep-alive stay httpx's defaults.
    pool: Any = transport._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore version has no pluggable network backend")
    pool._network_backend = backend
    return transport
