"""Bodies beside the SQLite journal: written once, read back byte for byte, removed with
their rows, and a write that fails leaves no row pointing at nothing."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from framework.journal import JournalUnavailable, Status
from framework.journal.bodies import BodyLog
from framework.journal.sqlite import SQLiteJournal
from tests.test_journal import Clock, delivery


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=Clock())
    yield journal
    await journal.close()


def body_files(journal: SQLiteJournal) -> list[str]:
    return sorted(p.name for p in journal.bodies.directory.glob("*.bodies"))


async def test_bodies_are_in_files_beside_the_database_not_in_it(
    tmp_path: Path, journal: SQLiteJournal
) -> None:
    await journal.record(delivery(1))
    assert journal.bodies.directory == tmp_path / "journal.sqlite3-bodies"
    assert len(body_files(journal)) == 1
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
    assert "body" not in columns
    (claimed,) = await journal.claim("c", 5, lease=30)
    assert claimed.body == delivery(1).body


async def test_purge_deletes_body_files_once_no_row_needs_them(journal: SQLiteJournal) -> None:
    journal.bodies.segment_bytes = 1  # a new file for every transaction
    for n in range(4):
        await journal.record(delivery(n))
    assert len(body_files(journal)) == 4
    claimed = await journal.claim("c", 3, lease=30)  # d-0 .. d-2
    for d in claimed[:2]:
        await journal.complete(d.id, "c")
    assert await journal.purge(finished_before=float("inf")) == 2
    # d-0's and d-1's files are gone; d-2 (running) and d-3 (pending) keep theirs.
    assert len(body_files(journal)) == 2
    (last,) = await journal.claim("c", 5, lease=30)
    assert last.body == delivery(3).body
    await journal.complete(claimed[2].id, "c")
    await journal.complete(last.id, "c")
    assert await journal.purge(finished_before=float("inf")) == 2
    # The file still being appended to stays, even with no row in it.
    assert body_files(journal) == [journal.bodies.current]


async def test_a_body_file_another_process_appends_to_is_never_deleted(
    tmp_path: Path, journal: SQLiteJournal
) -> None:
    other = BodyLog(journal.bodies.directory)
    other.append(b"written, its row not committed yet")
    other.flush()  # holds the file's flock, as a receiver does while appending to it
    name = other.current
    try:
        await journal.purge(finished_before=float("inf"))
        assert name in body_files(journal)
    finally:
        other.close()
    await journal.purge(finished_before=float("inf"))
    assert name not in body_files(journal)


async def test_a_lost_body_fails_its_delivery_with_a_clear_error_and_spares_the_rest(
    journal: SQLiteJournal,
) -> None:
    journal.bodies.segment_bytes = 1
    await journal.record(delivery(1))
    await journal.record(delivery(2))
    first = journal.bodies.directory / body_files(journal)[0]
    first.write_bytes(b"")  # truncated behind the journal's back
    (claimed,) = await journal.claim("c", 5, lease=30)
    assert claimed.id == "d-2"
    entry = await journal.get("d-1")
    assert entry is not None and entry.status is Status.FAILED
    assert entry.last_error is not None
    assert "shorter than recorded" in entry.last_error and first.name in entry.last_error


async def test_a_failed_body_write_stores_nothing_and_the_next_one_works(
    journal: SQLiteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwritev

    def disk_full(fd: int, buffers: list[bytes], offset: int) -> int:
        real(fd, [bytes(buffers[0])[:100]], offset)  # a partial write, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    await journal.record(delivery(1))
    monkeypatch.setattr(os, "pwritev", disk_full)
    with pytest.raises(JournalUnavailable, match="the disk is full") as err:
        await journal.record(delivery(2))
    assert err.value.status == 503
    monkeypatch.setattr(os, "pwritev", real)
    assert [e.delivery.id for e in await journal.entries()] == ["d-1"]
    assert await journal.record(delivery(3))
    bodies = {d.id: d.body for d in await journal.claim("c", 5, lease=30)}
    assert bodies == {"d-1": delivery(1).body, "d-3": delivery(3).body}


async def test_a_journal_of_another_layout_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE deliveries (id TEXT PRIMARY KEY, body BLOB)")
    with pytest.raises(JournalUnavailable, match=r"another layout .* move it aside") as err:
        await SQLiteJournal.open(path)
    assert str(path) in str(err.value)
