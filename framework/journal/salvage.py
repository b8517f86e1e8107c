"""Keeping what is readable of a damaged SQLite journal: ``python -m framework deliveries salvage``.

Run it with the bot stopped (it takes the journal's lock). It never deletes: damaged files are
renamed aside with a ``.damaged-TIME`` suffix.

1. A write-ahead log whose header is garbage is moved aside (what it held is lost; SQLite
   would have dropped it without a word).
2. A database that fails ``PRAGMA quick_check`` is rebuilt: every row that can still be read
   is copied, in rowid order, into a new file; runs of rows on damaged pages are skipped.
3. Deliveries still to run whose body no longer matches its checksum are kept as failed,
   with the reason (redeliver them from the app's settings on GitHub).
4. The damage noted while running (``PATH.damaged``) is cleared: the bot starts again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from framework.journal import JournalUnavailable
from framework.journal.bodies import BodyDamaged, BodyLog, BodyLost
from framework.journal.integrity import check_wal, marker, quick_check
from framework.journal.sqlite import SCHEMA, SCHEMA_VERSION

_DELIVERY_COLUMNS = (
    "id, name, action, installation_id, headers, body_file, body_offset, body_length, status,"
    " attempts, attempts_before, received_at, not_before, consumer, lease_until, finished_at,"
    " last_error, body_crc"
)
_ATTEMPT_COLUMNS = "delivery_id, number, consumer, started_at, finished_at, error"
_HANDLER_COLUMNS = "delivery_id, handler, finished_at"
_STATUSES = ("pending", "running", "done", "failed")
_BATCH = 256
_LARGEST_ROWID = 2**63 - 1
Row = tuple[object, ...]


def readable_rows(conn: sqlite3.Connection, table: str, columns: str) -> Iterator[Row]:
    """Every row of ``table`` that can be read, in rowid order, skipping damaged pages.

    After a read fails at rowid ``after``, the smallest rowid from which reading works again
    is searched for (doubling, then halving): the rows on the damaged page are lost, the
    readable ones after it are not.
    """
    after = -(2**63)
    while True:
        try:
            rows = _rows_after(conn, table, columns, after, _BATCH)
        except sqlite3.DatabaseError:
            try:  # one at a time up to the damage: nothing readable before it is lost
                rows = _rows_after(conn, table, columns, after, 1)
            except sqlite3.DatabaseError:
                resume = _readable_from(conn, table, after)
                if resume is None:
                    return
                after = resume
                continue
        if not rows:
            return
        for row in rows:
            yield row[1:]
        after = int(rows[-1][0])  # type: ignore[call-overload]


def _rows_after(
    conn: sqlite3.Connection, table: str, columns: str, after: int, limit: int
) -> list[Row]:
    return conn.execute(
        f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (after, limit),
    ).fetchall()


def _readable_from(conn: sqlite3.Connection, table: str, failing: int) -> int | None:
    """The smallest rowid past ``failing`` from which a read succeeds, or None."""

    def works(after: int) -> bool:
        try:
            _rows_after(conn, table, "rowid", after, 1)
        except sqlite3.DatabaseError:
            return False
        return True

    step = 1
    good = failing + step
    while not works(good):
        step *= 2
        if failing + step >= _LARGEST_ROWID:
            return None
        good = failing + step
    bad = failing
    while good - bad > 1:  # works(good), not works(bad)
        middle = (good + bad) // 2
        if works(middle):
            good = middle
        else:
            bad = middle
    return good


def _copy(damaged: sqlite3.Connection, target: Path) -> tuple[int, int]:
    """Copy the readable deliveries and attempts into a new journal at ``target``."""
    version = 2
    with contextlib.suppress(sqlite3.DatabaseError):
        version = int(damaged.execute("PRAGMA user_version").fetchone()[0])
    columns = _DELIVERY_COLUMNS if version >= 3 else _DELIVERY_COLUMNS[: -len(", body_crc")]
    out = sqlite3.connect(target, isolation_level=None)
    try:
        out.execute("PRAGMA journal_mode = WAL")
        out.executescript(SCHEMA)
        out.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        out.execute("BEGIN")
        kept: set[str] = set()
        for row in readable_rows(damaged, "deliveries", columns):
            if row[8] not in _STATUSES or not isinstance(row[0], str) or row[0] in kept:
                continue  # a value a damaged page garbled
            values = row if version >= 3 else (*row, None)
            out.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES"
                f" ({', '.join('?' * len(values))})",
                values,
            )
            kept.add(row[0])
        attempts = 0
        for row in readable_rows(damaged, "attempts", _ATTEMPT_COLUMNS):
            if row[0] in kept:
                out.execute(
                    f"INSERT OR IGNORE INTO attempts ({_ATTEMPT_COLUMNS}) VALUES (?,?,?,?,?,?)", row
                )
                attempts += 1
        if version >= 4:  # which handlers finished: lost, they would only run again
            for row in readable_rows(damaged, "handlers_done", _HANDLER_COLUMNS):
                if row[0] in kept:
                    out.execute(
                        f"INSERT OR IGNORE INTO handlers_done ({_HANDLER_COLUMNS}) VALUES (?,?,?)",
                        row,
                    )
        # Nothing runs while the bot is stopped: what was running runs again.
        out.execute(
            "UPDATE deliveries SET status = 'pending', consumer = NULL, lease_until = NULL"
            " WHERE status = 'running'"
        )
        out.execute("COMMIT")
    finally:
        out.close()
    return len(kept), attempts


def _aside(path: Path, stamp: str) -> Path | None:
    if not path.exists():
        return None
    moved = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, moved)
    return moved


def _fail_damaged_bodies(path: Path) -> list[str]:
    """Deliveries still to run whose body is damaged become failed, with the reason."""
    bodies = BodyLog(path.with_name(path.name + "-bodies"), sync=False)
    conn = sqlite3.connect(path, isolation_level=None)
    failed: list[str] = []
    try:
        rows = conn.execute(
            "SELECT id, body_file, body_offset, body_length, body_crc FROM deliveries"
            " WHERE status IN ('pending', 'running') AND body_crc IS NOT NULL"
        ).fetchall()
        for delivery_id, name, offset, length, crc in rows:
            try:
                bodies.read(name, offset, length, crc)
            except BodyDamaged as exc:
                conn.execute(
                    "UPDATE deliveries SET status = 'failed', consumer = NULL,"
                    " lease_until = NULL, finished_at = ?, last_error = ? WHERE id = ?",
                    (time.time(), f"salvage: {exc}; redeliver it from GitHub", delivery_id),
                )
                failed.append(delivery_id)
            except BodyLost:
                pass  # fails with its reason when claimed
    finally:
        conn.close()
        bodies.close()
    return failed


def salvage(path: Path) -> list[str]:
    """Keep what is readable of the journal at ``path``; return what was done, line by line.

    Raises :class:`~framework.journal.JournalUnavailable` while a bot uses the journal.
    """
    lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JournalUnavailable(
                f"the delivery journal {path} is in use by a bot: stop it before salvaging"
            ) from None
        return _salvage_locked(path)
    finally:
        lock.close()


def _salvage_locked(path: Path) -> list[str]:
    done: list[str] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    problem = check_wal(path)
    if problem is not None:
        moved = _aside(wal, stamp)
        shm.unlink(missing_ok=True)
        done.append(f"{problem}; moved aside to {moved} (what it held is lost)")
    if path.exists():
        conn = sqlite3.connect(path)
        rebuilt = path.with_name(f"{path.name}.salvage-{stamp}")
        try:
            problems = quick_check(conn)
            kept = _copy(conn, rebuilt) if problems else (0, 0)
        finally:
            conn.close()
        if problems:
            moved = _aside(path, stamp)
            _aside(wal, stamp)
            shm.unlink(missing_ok=True)
            os.replace(rebuilt, path)
            done.append(
                f"the database failed its integrity check ({problems[0]}); kept "
                f"{kept[0]} readable deliveries and {kept[1]} attempts; the damaged file "
                f"is {moved}"
            )
        failed = _fail_damaged_bodies(path)
        if failed:
            done.append(
                f"{len(failed)} deliveries to run had damaged bodies and are kept as failed: "
                + ", ".join(failed[:20])
                + (" ..." if len(failed) > 20 else "")
            )
    noted = marker(path)
    if noted.exists():
        done.append(f"cleared the damage noted while running ({noted.read_text().strip()})")
        noted.unlink()
    if not done:
        done.append(f"the delivery journal {path} shows no damage: nothing to do")
    return done
