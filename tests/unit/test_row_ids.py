"""Row ids: drawn from os.urandom in batches, never handed out twice, nor by a fork."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

from flowmonkey.model import tables
from flowmonkey.model.tables import TableRow, new_row_id


def test_row_ids_are_random_hex_and_unique_across_batches() -> None:
    ids = [new_row_id() for _ in range(3 * tables._ID_BATCH + 7)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"row_[0-9a-f]{32}", i) for i in ids)
    now = datetime.now(UTC)
    assert TableRow(table="t", data={}, created_at=now).id.startswith("row_")


def test_a_forked_child_draws_its_own_ids() -> None:
    new_row_id()
    if not tables._row_ids:
        new_row_id()
    upcoming = list(tables._row_ids)  # drawn by the parent, not handed out yet
    assert upcoming
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        try:
            os.write(write, new_row_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_id = os.read(read, 100).decode()
    os.close(read)
    assert re.fullmatch(r"row_[0-9a-f]{32}", child_id)
    assert child_id not in upcoming
