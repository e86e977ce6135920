"""``flowmonkey keys create|list|revoke``: API keys of the HTTP service.

A key is printed once, when it is created; the store keeps only its SHA-256.
"""

from __future__ import annotations

import typing as t

import click

from flowmonkey.cli.errors import CliError
from flowmonkey.cli.options import common_options
from flowmonkey.cli.output import Output, format_time
from flowmonkey.cli.state import get_state, open_engine, run_async
from flowmonkey.durations import parse_duration
from flowmonkey.model.keys import SCOPES, ApiKey, new_api_key

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """Manage the API keys of `flowmonkey serve`."""


@keys.command("create")
@click.option("--name", required=True, metavar="N", help="What the key is for.")
@click.option(
    "--tenant", required=True, metavar="T", help="Tenant id the key acts for, or * for all."
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="read, write or admin; repeatable.",
)
@click.option("--expires", metavar="DURATION", help="Lifetime, as in flow files: 90d, 12h, 3s.")
@common_options
def create(name: str, tenant: str, scopes: tuple[str, ...], expires: str | None) -> None:
    """Create a key and print it (once: it cannot be shown again)."""
    state = get_state()
    out = Output(json_mode=state.json_output)
    try:
        expires_in = parse_duration(expires, field="--expires") if expires else None
    except ValueError as exc:
        raise CliError(str(exc), code="BAD_DURATION")

    async def go() -> tuple[str, ApiKey]:
        async with open_engine(state) as engine:
            try:
                secret, record = new_api_key(
                    name=name, tenant=tenant, scopes=scopes, now=engine.clock.now(),
                    expires_in=expires_in,
                )  # fmt: skip
            except ValueError as exc:
                raise CliError(str(exc), code="BAD_KEY")
            await engine.store.create_api_key(record)
            return secret, record

    secret, record = run_async(go())
    if out.json_mode:
        out.document({"id": record.id, "key": secret, **_public(record)})
        return
    out.line(secret, "bold")
    out.line(
        f"key {record.id} ({record.name}) for tenant {record.tenant}, "
        f"scopes {' '.join(record.scopes)}"
        + (f", expires {format_time(record.expires_at)}" if record.expires_at else ""),
        "dim",
    )
    out.line("store it now: it is not shown again. Send it as: Authorization: Bearer <key>", "dim")


def _public(record: ApiKey) -> dict[str, t.Any]:
    out = record.to_dict()
    out.pop("id", None)
    return out


@keys.command("list")
@common_options
def list_keys() -> None:
    """Every key: id, name, tenant, scopes, times (never the secret)."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> list[ApiKey]:
        async with open_engine(state) as engine:
            return await engine.store.list_api_keys()

    records = run_async(go())
    if out.json_mode:
        out.document({"items": [r.to_dict() for r in records]})
        return
    if not records:
        out.line("no API keys (`flowmonkey serve` creates an admin key on first start)")
        return
    for record in records:
        state_word = "revoked" if record.revoked_at else "active"
        expires = format_time(record.expires_at) if record.expires_at else "never"
        used = format_time(record.last_used_at) if record.last_used_at else "never"
        out.line(
            f"{record.id}  {record.name}  tenant={record.tenant}  "
            f"scopes={','.join(record.scopes)}  {state_word}  expires={expires}  used={used}"
        )


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@common_options
def revoke(key_id: str) -> None:
    """Revoke key ID at once (requests with it get 401 from now on)."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> ApiKey | None:
        async with open_engine(state) as engine:
            return await engine.store.revoke_api_key(key_id, now=engine.clock.now())

    record = run_async(go())
    if record is None:
        raise CliError(f'no API key "{key_id}" (see `flowmonkey keys list`)', code="KEY_NOT_FOUND")
    if out.json_mode:
        out.document(record.to_dict())
        return
    out.line(f"revoked {record.id} ({record.name})")
