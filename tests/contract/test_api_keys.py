"""API keys: stored by hash, found by hash, revoked at once, never deleted."""

from __future__ import annotations

import pytest

from flowmonkey import errors
from flowmonkey.model.keys import ApiKey, generate_key, hash_key
from flowmonkey.stores.base import Store

from .factories import at


def make_key(name: str = "ci", *, created: float = 0, **fields: object) -> tuple[str, ApiKey]:
    secret, digest = generate_key()
    values: dict[str, object] = {
        "name": name,
        "tenant": "acme",
        "scopes": ("read", "write"),
        "key_hash": digest,
        "created_at": at(created),
    }
    values.update(fields)
    return secret, ApiKey(**values)  # type: ignore[arg-type]


async def test_a_key_round_trips_by_id_and_by_hash(store: Store) -> None:
    secret, key = make_key(expires_at=at(3600))
    await store.create_api_key(key)
    by_id = await store.get_api_key(key.id)
    by_hash = await store.find_api_key(hash_key(secret))
    assert by_id == key
    assert by_hash == key
    assert by_id is not None and by_id.expires_at == at(3600)
    assert await store.find_api_key(hash_key(secret + "x")) is None
    assert await store.get_api_key("key_missing") is None


async def test_a_duplicate_id_or_hash_is_refused(store: Store) -> None:
    _, key = make_key()
    await store.create_api_key(key)
    _, other = make_key(id=key.id)
    with pytest.raises(errors.StoreError):
        await store.create_api_key(other)
    _, same_hash = make_key(key_hash=key.key_hash)
    with pytest.raises(errors.StoreError):
        await store.create_api_key(same_hash)
    assert [k.id for k in await store.list_api_keys()] == [key.id]


async def test_list_is_newest_first_and_keeps_revoked_keys(store: Store) -> None:
    _, old = make_key("old", created=1)
    _, new = make_key("new", created=2, tenant="*", scopes=("admin", "read"))
    await store.create_api_key(old)
    await store.create_api_key(new)
    await store.revoke_api_key(old.id, now=at(5))
    listed = await store.list_api_keys()
    assert [k.name for k in listed] == ["new", "old"]
    assert listed[0].scopes == ("read", "admin")
    assert listed[1].revoked_at == at(5)


async def test_revocation_is_seen_by_the_next_lookup_and_keeps_its_first_time(
    store: Store,
) -> None:
    secret, key = make_key()
    await store.create_api_key(key)
    revoked = await store.revoke_api_key(key.id, now=at(10))
    assert revoked is not None and revoked.revoked_at == at(10)
    found = await store.find_api_key(hash_key(secret))
    assert found is not None and not found.usable(at(11))
    again = await store.revoke_api_key(key.id, now=at(20))
    assert again is not None and again.revoked_at == at(10)
    assert await store.revoke_api_key("key_missing", now=at(20)) is None


async def test_touch_records_last_use(store: Store) -> None:
    _, key = make_key()
    await store.create_api_key(key)
    await store.touch_api_key(key.id, now=at(42))
    found = await store.get_api_key(key.id)
    assert found is not None and found.last_used_at == at(42)
    await store.touch_api_key("key_missing", now=at(43))  # no error
