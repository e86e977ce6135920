"""Trigger/form documents, and form submissions checked and recorded in one transaction."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey import errors
from flowmonkey.model.documents import FormSubmission, TriggerDocument
from flowmonkey.stores.base import Store

from .factories import at


def doc(kind: str = "trigger", did: str = "orders", **spec: object) -> TriggerDocument:
    return TriggerDocument(
        kind=kind,
        id=did,
        tenant_id="acme",
        spec={"flow_id": "o", **spec},
        created_at=at(0),
        updated_at=at(0),
    )


def sub(form: str = "signup", key: str | None = None, when: float = 0) -> FormSubmission:
    return FormSubmission(
        form_id=form,
        data={"email": "a@b.c"},
        created_at=at(when),
        dedupe_key=key,
        execution_id="ex-1",
        client="127.0.0.1",
    )


async def test_documents_round_trip_by_kind(store: Store) -> None:
    trigger = doc(secret="s3cr3t", nested={"a": [1, 2]})
    await store.create_document(trigger)
    await store.create_document(doc("form", "orders"))  # same id, other kind
    assert await store.get_document("trigger", "orders") == trigger
    with pytest.raises(errors.AlreadyExists):
        await store.create_document(doc())
    trigger.spec["enabled"] = False
    trigger.updated_at = at(5)
    assert await store.update_document(trigger) is True
    assert await store.get_document("trigger", "orders") == trigger
    assert await store.update_document(doc(did="missing")) is False
    await store.create_document(
        TriggerDocument(
            kind="trigger", id="a", tenant_id="x", spec={}, created_at=at(0), updated_at=at(0)
        )
    )
    assert [d.id for d in await store.list_documents("trigger")] == ["a", "orders"]
    assert [d.id for d in await store.list_documents("trigger", tenant_id="x")] == ["a"]
    assert await store.delete_document("trigger", "orders") is True
    assert await store.get_document("trigger", "orders") is None
    assert await store.get_document("form", "orders") is not None


async def test_submissions_dedupe_and_limit(store: Store) -> None:
    first = sub(key="a@b.c", when=1)
    assert await store.add_form_submission(first) == "ok"
    assert await store.add_form_submission(sub(key="a@b.c", when=2)) == "duplicate"
    assert await store.add_form_submission(sub(key="x@y.z", when=3), max_submissions=2) == "ok"
    assert await store.add_form_submission(sub(key="q@y.z", when=4), max_submissions=2) == "full"
    assert await store.add_form_submission(sub(form="other", key="a@b.c")) == "ok"
    listed = await store.list_form_submissions("signup")
    assert [s.dedupe_key for s in listed] == ["x@y.z", "a@b.c"]
    assert listed[1] == first
    await store.delete_form_submission(first.id)
    assert [s.dedupe_key for s in await store.list_form_submissions("signup")] == ["x@y.z"]


async def test_racing_equal_submissions_record_one(store: Store) -> None:
    outcomes = await asyncio.gather(*(store.add_form_submission(sub(key="same")) for _ in range(8)))
    assert sorted(outcomes) == ["duplicate"] * 7 + ["ok"]
    outcomes = await asyncio.gather(
        *(store.add_form_submission(sub("capped", key=str(n)), max_submissions=3) for n in range(8))
    )
    assert outcomes.count("ok") == 3 and outcomes.count("full") == 5


async def test_documents_page_by_id_within_a_tenant(store: Store) -> None:
    from dataclasses import replace

    for n in range(7):
        tenant = "acme" if n % 3 else "other"
        await store.create_document(replace(doc(did=f"t{n:02d}"), tenant_id=tenant))
    await store.create_document(doc(kind="form", did="t99"))  # another kind: never listed
    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.list_documents("trigger", tenant_id="acme", after=after, limit=2)
        pages.append([d.id for d in page])
        if len(page) < 2:
            break
        after = page[-1].id
    assert pages == [["t01", "t02"], ["t04", "t05"], []]
    every = await store.list_documents("trigger", after="t02", limit=3)
    assert [d.id for d in every] == ["t03", "t04", "t05"]
    assert len(await store.list_documents("trigger")) == 7


async def test_submissions_page_newest_first(store: Store) -> None:
    for n in range(5):
        await store.add_form_submission(sub(when=n // 2))  # equal times: id breaks the tie
    await store.add_form_submission(sub(form="other", when=9))
    seen: list[FormSubmission] = []
    before = None
    while True:
        page = await store.list_form_submissions("signup", limit=2, before=before)
        seen.extend(page)
        if len(page) < 2:
            break
        before = (page[-1].created_at, page[-1].id)
    assert len(seen) == 5 and len({s.id for s in seen}) == 5
    keys = [(s.created_at, s.id) for s in seen]
    assert keys == sorted(keys, reverse=True)
    assert seen == await store.list_form_submissions("signup", limit=10)
