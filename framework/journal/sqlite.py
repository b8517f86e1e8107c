"""The journal in an SQLite file: the default, so a single bot needs no server.

Rows hold each delivery's state, headers and attempts; its body is appended to a file beside
the database (:mod:`framework.journal.bodies`, written once rather than twice). One thread owns
the connection; the event loop hands it operations and awaits their results,
so no query ever blocks the loop. Deliveries recorded at about the same moment are written
in one transaction (group commit): durable before their 202s, at the cost of one sync for
the lot rather than one each. WAL mode lets the receiver and the handler processes use the
same file at once.

>>> journal = await SQLiteJournal.open("deliveries.sqlite3")  # doctest: +SKIP
>>> await journal.record(delivery)  # doctest: +SKIP
True
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from framework.errors import InvalidPayload
from framework.journal import (
    Attempt,
    ClaimFinisher,
    Counts,
    Entry,
    JournalDamaged,
    JournalUnavailable,
    Recorded,
    Status,
)
from framework.journal.batch import Batcher
from framework.journal.bodies import BodyDamaged, BodyLog, BodyLost, body_checksum
from framework.journal.integrity import (
    check_wal,
    damage_noted,
    is_corruption,
    mark_damaged,
    quick_check,
    refusal,
)
from framework.webhooks.delivery import STORABLE_IDS, Delivery

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    action TEXT,
    installation_id INTEGER,
    headers TEXT NOT NULL,
    body_file TEXT NOT NULL,
    body_offset INTEGER NOT NULL,
    body_length INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    attempts_before INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    consumer TEXT,
    lease_until REAL,
    finished_at REAL,
    last_error TEXT,
    body_crc INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, not_before, received_at);
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (status, finished_at);
CREATE INDEX IF NOT EXISTS deliveries_body_file ON deliveries (body_file);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    consumer TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    error TEXT,
    PRIMARY KEY (delivery_id, number)
);
CREATE TABLE IF NOT EXISTS handlers_done (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    handler TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (delivery_id, handler)
);
"""

SCHEMA_VERSION = 4
# 1: bodies inside the database (before release); 2: bodies unchecked; 3: no handlers_done

TURNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    job TEXT PRIMARY KEY,
    holder TEXT,
    held_until REAL NOT NULL DEFAULT 0,
    succeeded_at REAL
);
"""
"""Periodic jobs' turns (:meth:`SQLiteJournal.take_turn`): created on open, whatever the
version, as a table an older journal simply lacks."""

_COLUMNS = (
    "id, name, action, installation_id, headers, body_file, body_offset, body_length, status,"
    " attempts, received_at, not_before, finished_at, last_error, body_crc"
)

OUTCOME_RESERVE = 0.1
"""The part of ``JOURNAL_MAX_BYTES`` kept for claims and outcomes: new deliveries stop before."""
DISK_RESERVE_BYTES = 4 * 1024 * 1024
"""Free disk kept for claims and outcomes whatever the cap: a journal on a full disk stores no
new delivery, and claims none it could not record the outcome of."""
CLAIM_RESERVE_BYTES = DISK_RESERVE_BYTES // 2

OUTCOME_DELAY = 0.002
"""How long a transaction holding only outcomes (a delivery done, failed or to retry; a handler
done) waits for more operations before it commits. Under a burst, outcomes then share their
commit (its sync, and its write of each page touched) with each other and with the deliveries
being recorded, instead of one commit each. Only the outcome's record waits, never a
delivery's acknowledgement; a process killed in that window runs those deliveries again, as
one killed just before them."""
DAMAGE_CHECK_SECONDS = 0.5
"""How often a running journal looks whether another process of the bot found it damaged."""
_DUE = (
    "SELECT id FROM (SELECT id, received_at FROM (SELECT id, received_at FROM deliveries"
    " WHERE status = 'pending' AND not_before = 0 ORDER BY received_at LIMIT ?)"
    " UNION ALL SELECT id, received_at FROM (SELECT id, received_at FROM deliveries"
    " WHERE status = 'pending' AND not_before > 0 AND not_before <= ? ORDER BY received_at"
    " LIMIT ?)) ORDER BY received_at LIMIT ?"
)
"""The oldest ``?`` deliveries due (parameters: limit, now, limit, limit). A new delivery's
``not_before`` is 0, so the index ``deliveries_due`` gives them oldest first and the search
stops at the limit; only the retries that came due are sorted. Asked in one piece
(``not_before <= now ORDER BY received_at``), SQLite sorted every pending delivery at each
claim: a backlog of n deliveries cost O(n) per claim of 32, 38 to 62 µs per delivery claimed
from 4,000 to 20,000 pending."""
_ROWS_PER_STATEMENT = 70  # 14 values a row: within SQLite's oldest limit of 999 variables
_FULL_TEXT = "database or disk is full"

Sync = Literal["full", "normal"]
_Work = Callable[[sqlite3.Connection], Any]
_Record = tuple[Delivery, str | None, float]
"""A delivery to store; with a consumer and its lease's end, stored as running for it."""


@dataclass
class _Op:
    work: _Work
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    urgent: bool = True
    """False for an outcome (:data:`OUTCOME_DELAY`): its transaction may wait for company."""


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(settled: list[tuple[Any, ...]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def unwritable(path: Path) -> str | None:
    """Why a journal cannot be created or written at ``path``, or None if it can: checked
    before serving, so a missing or read-only volume is one clear line, not a traceback.

    >>> print(unwritable(Path("/nonexistent-dir/deliveries.sqlite3")))  # doctest: +ELLIPSIS
    JOURNAL_PATH /nonexistent-dir/deliveries.sqlite3: the directory /nonexistent-dir does not ...
    """
    directory = path.absolute().parent
    try:
        if not directory.is_dir():
            return (
                f"JOURNAL_PATH {path}: the directory {directory} does not exist "
                "(create it, mount a volume there, or set JOURNAL_PATH)"
            )
        target = path if path.exists() else directory
    except PermissionError:  # not even allowed to look inside
        target = directory
    if not os.access(target, os.W_OK):
        return (
            f"JOURNAL_PATH {path}: {target} is read-only or not writable by this user "
            f"(uid {os.getuid()}); mount a writable volume there or set JOURNAL_PATH"
        )
    return None


def explain(path: Path, error: sqlite3.Error | OSError) -> JournalUnavailable:
    """A clear error for what SQLite (or writing a body file) reported, naming the file and
    what to do."""
    text = str(error)
    lowered = text.lower()
    code = error.errno if isinstance(error, OSError) else None
    if "locked" in lowered or "busy" in lowered:
        hint = "another process holds a lock on it; is a second bot using the same file?"
    elif "full" in lowered or code in _FULL:
        hint = "the disk is full (or the journal at its size limit); purge old deliveries"
    elif "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        hint = (
            "it is not a valid SQLite database (damaged?); "
            "run `python -m framework deliveries salvage`"
        )
    elif (
        "unable to open" in lowered
        or "readonly" in lowered
        or "permission" in lowered
        or code in _DENIED
    ):
        hint = "it cannot be opened for writing; check the path and its permissions"
    else:
        hint = "see the error"
    return JournalUnavailable(
        f"the delivery journal {path} is unusable: {hint} ({text})",
        f"the delivery journal is unusable: {hint.split(';')[0]}",
    )


class SQLiteJournal(ClaimFinisher):
    """A :class:`~framework.journal.Journal` in one SQLite file (WAL mode)."""

    def __init__(
        self,
        path: Path | str,
        *,
        sync: Sync = "full",
        busy_timeout: float = 5.0,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
        outcome_delay: float = OUTCOME_DELAY,
    ) -> None:
        self.path = Path(path)
        self.outcome_delay = outcome_delay
        self.sync = sync
        self.busy_timeout = busy_timeout
        self.max_bytes = max_bytes
        self._record_bytes: int | None = None
        self.bodies = BodyLog(self.path.with_name(self.path.name + "-bodies"), sync=sync == "full")
        """Where the deliveries' bodies are (``PATH-bodies/``)."""
        self._clock = clock
        self._lock_handle: Any = None
        self._damage: str | None = None
        self._disk_full_claims = 0
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._recorder: Batcher[_Record, Recorded] = Batcher(self._record_batch, size=512)
        self.transactions = 0
        """How many write transactions were committed (group commit makes it < records)."""
        self._damage_checked = -DAMAGE_CHECK_SECONDS

    @classmethod
    async def open(cls, path: Path | str, **options: Any) -> SQLiteJournal:
        """Open (creating if needed) the journal at ``path``; raise JournalUnavailable.

        A damaged write-ahead log is refused (:class:`JournalDamaged`) before SQLite would
        silently drop it, unless a running bot holds the file (it checked when it started).
        """
        journal = cls(path, **options)
        problem = await asyncio.to_thread(journal._check_wal_unless_in_use)
        if problem is not None:
            raise JournalDamaged(refusal(journal.path, [problem]))
        journal._thread = threading.Thread(
            target=journal._serve, name=f"journal:{journal.path.name}", daemon=True
        )
        journal._thread.start()
        try:
            await journal._call(journal._create_schema)
        except JournalUnavailable:
            await journal.close()
            raise
        return journal

    def _check_wal_unless_in_use(self) -> str | None:
        try:
            handle = open(self._lock_path, "a+")  # noqa: SIM115 - closed below
        except OSError:
            return None  # cannot tell whether a bot writes it now: SQLite will say more
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return None  # a bot runs: it rewrites the log as it goes
            return check_wal(self.path)

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # The thread that owns the connection -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.sync.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        if self.max_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            max_pages = max(10, self.max_bytes // page_size)
            conn.execute(f"PRAGMA max_page_count = {max_pages}")
            # The write-ahead log counts too: checkpointed (and cut back) at 5% of the cap.
            wal_pages = max(16, max_pages // 20)
            conn.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
            conn.execute(f"PRAGMA journal_size_limit = {wal_pages * page_size}")
            # New deliveries stop at 90% (database, write-ahead log and bodies together):
            # the rest is for claiming and recording the outcomes of those stored.
            self._record_bytes = int(self.max_bytes * (1 - OUTCOME_RESERVE))
        return conn

    def _disk_free(self) -> int:
        """Bytes the filesystem holding the journal still has for it."""
        try:
            stats = os.statvfs(self.path.parent)
        except OSError:
            return DISK_RESERVE_BYTES * 2  # cannot tell: let SQLite report a full disk
        return stats.f_bavail * stats.f_frsize

    def _room(self, conn: sqlite3.Connection) -> int:
        """Bytes new deliveries may still take: under the cap, and leaving the disk room
        to record the outcomes of what is stored."""
        room = self._disk_free() - DISK_RESERVE_BYTES
        if self._record_bytes is not None:
            room = min(room, self._record_bytes - self._bytes_used(conn))
        return room

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        while (op := self._ops.get()) is not None:
            batch = [op]
            stop = False
            # Everything already waiting goes into the same transaction (group commit); a
            # transaction of outcomes alone waits up to OUTCOME_DELAY for more.
            wait_until = None if op.urgent else time.monotonic() + self.outcome_delay
            while len(batch) < 512:
                remaining = 0.0 if wait_until is None else wait_until - time.monotonic()
                try:
                    nxt = (
                        self._ops.get(timeout=remaining)
                        if remaining > 0
                        else self._ops.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if nxt.urgent:
                    wait_until = None
                batch.append(nxt)
            try:
                if conn is None:
                    conn = self._connect()
                outcomes = self._transaction(conn, batch)
            except (sqlite3.Error, OSError) as exc:
                error = self._explain(exc)
                outcomes = [(None, error)] * len(batch)
                if conn is not None and "not a database" in str(exc).lower():
                    conn.close()
                    conn = None
            # One wake-up of each waiting loop for the whole batch, not one per operation.
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, ...]]] = {}
            for item, (result, failure) in zip(batch, outcomes, strict=True):
                by_loop.setdefault(item.loop, []).append((item.future, result, failure))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, settled)
            if stop:
                break
        if conn is not None:
            conn.close()
        self.bodies.close()

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Op]
    ) -> list[tuple[Any, BaseException | None]]:
        """Run a batch in one transaction. If an operation fails (a record past the size cap,
        a bug), the batch is rolled back and each operation runs in a transaction of its own,
        so the one that failed takes nothing else down with it."""
        try:
            outcomes = self._run(conn, batch)
        except (sqlite3.Error, OSError) as exc:
            if len(batch) == 1:
                return [(None, self._explain(exc))]
        except Exception as exc:  # a bug in an operation: hand it to its caller
            if len(batch) == 1:
                return [(None, exc)]
        else:
            return outcomes
        return [self._transaction(conn, [item])[0] for item in batch]

    def _explain(self, error: sqlite3.Error | OSError) -> JournalUnavailable:
        if is_corruption(error):
            self._note_damage(f"SQLite: {error}")
        return explain(self.path, error)

    def _note_damage(self, what: str) -> None:
        """Damage found while running: every process of the bot stops accepting (503), and
        the next start refuses until it is salvaged."""
        if self._damage is None:
            self._damage = what
            logger.error("%s", refusal(self.path, [what]))
            with contextlib.suppress(OSError):
                mark_damaged(self.path, what)

    def damaged(self) -> str | None:
        """The damage found in the journal (by any process using it), or None.

        Damage found here counts at once; another process's note (a file beside the journal)
        is looked for at most every :data:`DAMAGE_CHECK_SECONDS`, not once per batch of
        deliveries recorded: the look was a failed ``open()`` per batch, ~2% of the
        receiver's CPU under a burst."""
        if self._damage is None:
            now = time.monotonic()
            if now - self._damage_checked >= DAMAGE_CHECK_SECONDS:
                self._damage_checked = now
                self._damage = damage_noted(self.path)
        return self._damage

    def _run(
        self, conn: sqlite3.Connection, batch: list[_Op]
    ) -> list[tuple[Any, BaseException | None]]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            results: list[tuple[Any, BaseException | None]] = [
                (item.work(conn), None) for item in batch
            ]
            self.bodies.flush()  # on disk before any row that points at them
            conn.execute("COMMIT")
        except BaseException:
            self.bodies.discard()
            if conn.in_transaction:  # SQLite rolls back by itself on some errors (SQLITE_FULL)
                conn.execute("ROLLBACK")
            raise
        self.transactions += 1
        return results

    async def _call(self, work: _Work, *, urgent: bool = True) -> Any:
        if self._thread is None or not self._thread.is_alive():
            raise JournalUnavailable(f"the delivery journal {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._ops.put(_Op(work, future, loop, urgent))
        return await future

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        existing = tables.fetchone()[0]
        if version == 2 and existing:  # its bodies have no checksum: they are not checked
            conn.execute("ALTER TABLE deliveries ADD COLUMN body_crc INTEGER")
        elif version not in (3, SCHEMA_VERSION) and existing:  # 3 only lacks a table
            raise JournalUnavailable(
                f"the delivery journal {self.path} has another layout (version {version}, "
                f"this framework writes {SCHEMA_VERSION}); move it aside to start afresh"
            )
        for statement in (SCHEMA + TURNS_SCHEMA).split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # The journal's operations ------------------------------------------------------------

    async def record(self, delivery: Delivery) -> bool:
        """Store a delivery; True if it is new (or failed before and is redelivered).

        Deliveries recorded while a batch is in the journal's thread go together in the next
        one: one hand-over to the thread and a few statements for a burst, not one each.
        """
        return await self._recorder.submit((delivery, None, 0.0)) != "duplicate"

    async def record_running(self, delivery: Delivery, consumer: str, lease: float) -> Recorded:
        """Store a delivery; a new one as running for ``consumer`` (its first attempt begun),
        so that the receiving process runs it without claiming it back from the file."""
        return await self._recorder.submit((delivery, consumer, self._clock() + lease))

    async def _record_batch(self, batch: list[_Record]) -> list[Recorded | Exception]:
        damage = self.damaged()
        if damage is not None:  # stored in a damaged file, a delivery might never run
            raise JournalUnavailable(
                refusal(self.path, [damage]), "the delivery journal is damaged"
            )
        headers = [json.dumps(dict(delivery.headers)) for delivery, _, _ in batch]
        now = self._clock()
        outcomes: list[Recorded | Exception] = await self._call(
            lambda conn: self._insert(conn, batch, headers, now)
        )
        return outcomes

    def _insert(
        self, conn: sqlite3.Connection, batch: list[_Record], headers: list[str], now: float
    ) -> list[Recorded | Exception]:
        ids = list({delivery.id: None for delivery, _, _ in batch})
        known: dict[str, str] = {}
        for start in range(0, len(ids), _ROWS_PER_STATEMENT):
            some = ids[start : start + _ROWS_PER_STATEMENT]
            known.update(
                conn.execute(
                    f"SELECT id, status FROM deliveries WHERE id IN ({', '.join('?' * len(some))})",
                    some,
                ).fetchall()
            )
        room = self._room(conn)
        outcomes: list[Recorded | Exception] = []
        rows: list[tuple[Any, ...]] = []
        started: list[tuple[str, str, float]] = []
        seen: set[str] = set()
        for (delivery, consumer, lease_until), headers_json in zip(batch, headers, strict=True):
            if delivery.id in seen:  # twice in one batch (a proxy's retry): the first counts
                outcomes.append("duplicate")
                continue
            seen.add(delivery.id)
            status = known.get(delivery.id)
            if status is not None:  # the same id again: run it again only if it had failed
                again = status == "failed" and self._redelivered(conn, delivery.id)
                outcomes.append("pending" if again else "duplicate")
                continue
            installation_id = delivery.installation_id
            if installation_id is not None and installation_id not in STORABLE_IDS:
                outcomes.append(InvalidPayload("installation.id is not a 64-bit integer"))
                continue  # refused alone: the rest of the batch is stored
            body = delivery.body
            if len(body) >= room:
                outcomes.append(explain(self.path, sqlite3.OperationalError(_FULL_TEXT)))
                continue
            room -= len(body)
            body_file, offset = self.bodies.append(body)
            running = consumer is not None
            rows.append(
                (delivery.id, delivery.name, delivery.action, delivery.installation_id,
                 headers_json, body_file, offset, len(body),
                 "running" if running else "pending", delivery.received_at,
                 body_checksum(body), consumer, lease_until if running else None, int(running))
            )  # fmt: skip
            if consumer is not None:
                started.append((delivery.id, consumer, now))
            outcomes.append("running" if running else "pending")
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            conn.execute(
                "INSERT INTO deliveries (id, name, action, installation_id, headers, body_file,"
                " body_offset, body_length, status, received_at, body_crc, consumer,"
                " lease_until, attempts) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
        if started:
            conn.executemany(
                "INSERT INTO attempts (delivery_id, number, consumer, started_at)"
                " VALUES (?, 1, ?, ?)",
                started,
            )
        return outcomes

    @staticmethod
    def _redelivered(conn: sqlite3.Connection, delivery_id: str) -> bool:
        conn.execute(
            "UPDATE deliveries SET status = 'pending', not_before = 0, consumer = NULL,"
            " lease_until = NULL, finished_at = NULL, attempts_before = attempts WHERE id = ?",
            (delivery_id,),
        )
        return True

    def _bytes_used(self, conn: sqlite3.Connection) -> int:
        """Everything the journal occupies: database, write-ahead log and bodies."""
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        try:
            wal = os.stat(self.path.with_name(self.path.name + "-wal")).st_size
        except FileNotFoundError:
            wal = 0
        return int((pages + 2) * page_size + wal + self.bodies.size())

    async def claim(self, consumer: str, limit: int, lease: float) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, oldest first, for ``lease`` seconds.

        None while the disk lacks room to record their outcomes: a delivery run and not
        recorded would run again.
        """
        now = self._clock()

        def work(conn: sqlite3.Connection) -> list[Delivery]:
            if self._disk_free() < CLAIM_RESERVE_BYTES:
                self._disk_full_claims += 1
                if self._disk_full_claims % 1000 == 1:
                    logger.error(
                        "the disk holding %s is nearly full: no delivery is started until "
                        "there is room to record its outcome (purge old deliveries)",
                        self.path,
                    )
                return []
            rows = conn.execute(
                "UPDATE deliveries SET status = 'running', consumer = ?, lease_until = ?,"
                f" attempts = attempts + 1 WHERE id IN ({_DUE})"
                " RETURNING id, name, action, installation_id, headers, body_file, body_offset,"
                " body_length, received_at, attempts, attempts - attempts_before, body_crc",
                (consumer, now + lease, limit, now, limit, limit),
            ).fetchall()
            conn.executemany(
                "INSERT OR REPLACE INTO attempts (delivery_id, number, consumer, started_at)"
                " VALUES (?, ?, ?, ?)",
                [(row[0], row[9], consumer, now) for row in rows],
            )
            rows.sort(key=lambda row: row[8])
            done = self._handlers_done(conn, [row[0] for row in rows if row[9] > 1])
            claimed = []
            for row in rows:
                try:
                    body = self.bodies.read(row[5], row[6], row[7], row[11])
                except BodyLost as exc:
                    self._lost(conn, row[0], consumer, now, str(exc))
                    if isinstance(exc, BodyDamaged):
                        self._note_damage(f"delivery {row[0]}: {exc}")
                    continue
                claimed.append(
                    Delivery(
                        row[0], row[1], body, row[2], row[3], json.loads(row[4]), row[8], row[10],
                        done.get(row[0], frozenset()),
                    )
                )  # fmt: skip
            return claimed

        result: list[Delivery] = await self._call(work)
        return result

    @staticmethod
    def _handlers_done(
        conn: sqlite3.Connection, delivery_ids: list[str]
    ) -> dict[str, frozenset[str]]:
        """The handlers recorded as finished, of deliveries that ran before (a first run has
        none: not asked)."""
        found: dict[str, set[str]] = {}
        for start in range(0, len(delivery_ids), _ROWS_PER_STATEMENT):
            some = delivery_ids[start : start + _ROWS_PER_STATEMENT]
            for delivery_id, handler in conn.execute(
                "SELECT delivery_id, handler FROM handlers_done"
                f" WHERE delivery_id IN ({', '.join('?' * len(some))})",
                some,
            ):
                found.setdefault(delivery_id, set()).add(handler)
        return {delivery_id: frozenset(names) for delivery_id, names in found.items()}

    async def handler_done(self, delivery_id: str, handler: str) -> None:
        """Record that ``handler`` finished its run of the delivery."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO handlers_done (delivery_id, handler, finished_at)"
                " SELECT id, ?, ? FROM deliveries WHERE id = ?",
                (handler, now, delivery_id),
            )

        await self._call(work, urgent=False)

    @staticmethod
    def _lost(
        conn: sqlite3.Connection, delivery_id: str, consumer: str, now: float, why: str
    ) -> None:
        """A delivery whose body cannot be read fails at once: no retry can bring it back."""
        error = f"the delivery cannot run: {why}"
        logger.error("delivery %s: %s", delivery_id, error)
        conn.execute(
            "UPDATE deliveries SET status = 'failed', consumer = NULL, lease_until = NULL,"
            " finished_at = ?, last_error = ? WHERE id = ?",
            (now, error, delivery_id),
        )
        conn.execute(
            "UPDATE attempts SET finished_at = ?, error = ? WHERE delivery_id = ? AND consumer = ?"
            " AND finished_at IS NULL",
            (now, error, delivery_id, consumer),
        )

    async def renew(self, consumer: str, delivery_ids: list[str], lease: float) -> None:
        """Extend the leases ``consumer`` holds on these deliveries."""
        until = self._clock() + lease

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE deliveries SET lease_until = ? WHERE id = ? AND consumer = ?"
                " AND status = 'running'",
                [(until, delivery_id, consumer) for delivery_id in delivery_ids],
            )

        await self._call(work)

    async def _finish(
        self,
        delivery_id: str,
        consumer: str,
        status: Status,
        error: str | None,
        at: float = 0.0,
    ) -> bool:
        now = self._clock()
        finished = now if status in (Status.DONE, Status.FAILED) else None

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE deliveries SET status = ?, consumer = NULL, lease_until = NULL,"
                " finished_at = ?, not_before = ?, last_error = COALESCE(?, last_error)"
                " WHERE id = ? AND consumer = ? AND status = 'running'",
                (status.value, finished, at, error, delivery_id, consumer),
            )
            if cursor.rowcount != 1:
                return False  # the lease ran out and another consumer has it now
            conn.execute(
                "UPDATE attempts SET finished_at = ?, error = ? WHERE delivery_id = ?"
                " AND number = (SELECT attempts FROM deliveries WHERE id = ?)",
                (now, error, delivery_id, delivery_id),
            )
            return True

        return bool(await self._call(work, urgent=False))

    async def requeue_expired(self) -> list[str]:
        """Deliveries whose consumer stopped renewing its lease become pending again."""
        return await self._requeue_running("lease_until < ?", self._clock(), "lease expired")

    async def release(self, consumer: str) -> list[str]:
        """Every delivery ``consumer`` holds becomes pending again now."""
        return await self._requeue_running("consumer = ?", consumer, "released")

    async def recover(self) -> list[str]:
        """Every running delivery becomes pending again: call only while holding the file's
        lock (:meth:`lock`), when no other process can be running them."""
        return await self._requeue_running("1 = ?", 1, "the bot stopped")

    async def _requeue_running(self, condition: str, value: Any, why: str) -> list[str]:
        now = self._clock()

        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "UPDATE deliveries SET status = 'pending', consumer = NULL, lease_until = NULL"
                f" WHERE status = 'running' AND {condition} RETURNING id, attempts",
                (value,),
            ).fetchall()
            conn.executemany(
                "UPDATE attempts SET finished_at = ?, error = ? WHERE delivery_id = ?"
                " AND number = ?",
                [(now, f"its consumer stopped ({why})", r[0], r[1]) for r in rows],
            )
            return [row[0] for row in rows]

        result: list[str] = await self._call(work)
        return result

    async def requeue(self, delivery_id: str) -> bool:
        """A done or failed delivery becomes pending again, due now (a done one runs all its
        handlers again; a failed one, those that had not finished)."""

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM handlers_done WHERE delivery_id = ?"
                " AND (SELECT status FROM deliveries WHERE id = ?) = 'done'",
                (delivery_id, delivery_id),
            )
            cursor = conn.execute(
                "UPDATE deliveries SET status = 'pending', not_before = 0, finished_at = NULL,"
                " attempts_before = attempts WHERE id = ? AND status IN ('done', 'failed')",
                (delivery_id,),
            )
            return cursor.rowcount == 1

        return bool(await self._call(work))

    async def active(self) -> int:
        """How many deliveries are pending or running."""

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'running')"
            ).fetchone()
            return int(row[0])

        return int(await self._call(work))

    async def counts(self) -> Counts:
        """Deliveries pending (due or later), running and failed; the oldest pending one."""

        def work(conn: sqlite3.Connection) -> Counts:
            found = {
                status: (int(count), oldest)
                for status, count, oldest in conn.execute(
                    "SELECT status, count(*), min(received_at) FROM deliveries"
                    " WHERE status IN ('pending', 'running', 'failed') GROUP BY status"
                )
            }
            pending, oldest = found.get("pending", (0, None))
            running = found.get("running", (0, None))[0]
            return Counts(pending, running, found.get("failed", (0, None))[0], oldest)

        result: Counts = await self._call(work)
        return result

    def lock(self, wait: float = 0.0) -> None:
        """Hold an exclusive lock on ``PATH.lock`` for as long as this process lives.

        One bot (one receiver and its handler processes, which inherit the lock) per journal
        file: a second bot started on the same file is refused with a clear error instead of
        sharing it. ``wait``: how long to wait for a previous bot's processes to die first.
        """
        lock_path = self._lock_path
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the process's lifetime
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise JournalUnavailable(
                    f"the delivery journal {self.path} is in use by another bot (pid {holder}, "
                    f"or a handler process of it; locked: {lock_path}); give each bot its own "
                    "JOURNAL_PATH, or use REDIS_URL for replicas"
                ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle

    async def check(self) -> None:
        """The start's integrity check: damage noted while running, ``PRAGMA quick_check``,
        and the checksum of every body still to run. Raise :class:`JournalDamaged` with what
        is wrong and how to salvage."""

        def work(conn: sqlite3.Connection) -> list[str]:
            problems = quick_check(conn)
            if problems:
                return problems
            for row in conn.execute(
                "SELECT id, body_file, body_offset, body_length, body_crc FROM deliveries"
                " WHERE status IN ('pending', 'running') AND body_crc IS NOT NULL"
            ):
                try:
                    self.bodies.read(row[1], row[2], row[3], row[4])
                except BodyDamaged as exc:
                    problems.append(f"delivery {row[0]}: {exc}")
                except BodyLost:
                    pass  # fails with its reason when claimed, as ever
            return problems

        noted = self.damaged()
        problems = [noted] if noted is not None else []
        try:
            problems += await self._call(work)
        except JournalUnavailable as exc:
            problems.append(str(exc))
        if problems:
            raise JournalDamaged(refusal(self.path, problems))

    @property
    def lock_fd(self) -> int | None:
        """The file descriptor holding :meth:`lock` (a handler process inherits it), or None."""
        return None if self._lock_handle is None else int(self._lock_handle.fileno())

    def _entry(
        self, row: tuple[Any, ...], history: list[Attempt], done: frozenset[str] = frozenset()
    ) -> Entry:
        (id_, name, action, installation_id, headers, body_file, offset, length, status,
         attempts, received_at, not_before, finished_at, last_error, crc) = row  # fmt: skip
        try:
            body = self.bodies.read(body_file, offset, length, crc)
        except BodyLost as exc:
            body, last_error = b"", f"{last_error}; {exc}" if last_error else str(exc)
        delivery = Delivery(id_, name, body, action, installation_id, json.loads(headers),
                            received_at)  # fmt: skip
        return Entry(delivery, Status(status), attempts, received_at, not_before, finished_at,
                     last_error, history, done)  # fmt: skip

    async def get(self, delivery_id: str) -> Entry | None:
        """One delivery with its attempts, or None."""

        def work(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                return None
            history = [
                Attempt(*attempt)
                for attempt in conn.execute(
                    "SELECT number, consumer, started_at, finished_at, error FROM attempts"
                    " WHERE delivery_id = ? ORDER BY number",
                    (delivery_id,),
                )
            ]
            done = self._handlers_done(conn, [delivery_id]).get(delivery_id, frozenset())
            return self._entry(row, history, done)

        result: Entry | None = await self._call(work)
        return result

    async def entries(self, status: Status | None = None, limit: int = 100) -> list[Entry]:
        """The newest deliveries first, optionally only those with ``status``."""

        def work(conn: sqlite3.Connection) -> list[Entry]:
            where, args = ("WHERE status = ?", (status.value,)) if status else ("", ())
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries {where} ORDER BY received_at DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [self._entry(row, []) for row in rows]

        result: list[Entry] = await self._call(work)
        return result

    async def purge(self, finished_before: float) -> int:
        """Delete done and failed deliveries that finished before ``finished_before``."""

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM deliveries WHERE status IN ('done', 'failed') AND finished_at < ?",
                (finished_before,),
            )
            return cursor.rowcount

        def remove_bodies(conn: sqlite3.Connection) -> None:
            # After the deletion committed: a failed commit must not leave rows without bodies.
            referenced = {
                row[0] for row in conn.execute("SELECT DISTINCT body_file FROM deliveries")
            }
            self.bodies.remove_unreferenced(referenced)

        deleted = int(await self._call(work))
        await self._call(remove_bodies)
        return deleted

    # Turns -----------------------------------------------------------------------------

    async def take_turn(self, job: str, holder: str, seconds: float) -> bool:
        """Hold ``job`` for ``seconds`` unless another holder's turn is still running."""

        def work(conn: sqlite3.Connection) -> bool:
            now = self._clock()
            conn.execute(
                "INSERT INTO turns (job, holder, held_until) VALUES (?, ?, ?)"
                " ON CONFLICT (job) DO UPDATE SET holder = excluded.holder,"
                " held_until = excluded.held_until"
                " WHERE turns.holder IS NULL OR turns.holder = excluded.holder"
                " OR turns.held_until < ?",
                (job, holder, now + seconds, now),
            )
            row = conn.execute("SELECT holder FROM turns WHERE job = ?", (job,)).fetchone()
            return bool(row is not None and row[0] == holder)

        return bool(await self._call(work))

    async def end_turn(self, job: str, holder: str, succeeded_at: float | None) -> None:
        """Let go of ``job`` (if ``holder`` still holds it); keep ``succeeded_at``."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE turns SET holder = NULL, held_until = 0 WHERE job = ? AND holder = ?",
                (job, holder),
            )
            if succeeded_at is not None:
                conn.execute(
                    "INSERT INTO turns (job, succeeded_at) VALUES (?, ?) ON CONFLICT (job)"
                    " DO UPDATE SET succeeded_at = max(coalesce(turns.succeeded_at, 0),"
                    " excluded.succeeded_at)",
                    (job, succeeded_at),
                )

        await self._call(work)

    async def last_success(self, job: str) -> float | None:
        """When the last successful run of ``job`` began, or None."""

        def work(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT succeeded_at FROM turns WHERE job = ?", (job,)).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        found: float | None = await self._call(work)
        return found

    async def close(self) -> None:
        """Finish queued operations and close the file."""
        if self._thread is not None and self._thread.is_alive():
            self._ops.put(None)
            await asyncio.to_thread(self._thread.join, 10)
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
