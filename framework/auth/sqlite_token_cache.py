"""Installation tokens shared by a bot's handler processes through a small SQLite file.

With ``HANDLER_PROCESSES`` > 1 and no Redis, each handler process would mint its own token
for an installation. This store, a file beside the journal (``JOURNAL_PATH-tokens``), holds
the sealed tokens and a lock row per token being minted, so one process mints while the others
wait (:class:`~framework.auth.token_cache.SharedTokenCache`). A process killed while minting
holds the lock for at most ``LOCK_SECONDS``.

>>> cache = SQLiteTokenCache(Path("deliveries.sqlite3-tokens"), sealer)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framework.auth.sealing import Sealer
from framework.auth.token_cache import SharedTokenCache

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, sealed BLOB NOT NULL, until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS minting (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL
);
"""


def token_file(journal_path: Path) -> Path:
    """Where the shared tokens of the bot whose journal is at ``journal_path`` are kept.

    >>> token_file(Path("data/deliveries.sqlite3"))
    PosixPath('data/deliveries.sqlite3-tokens')
    """
    return journal_path.with_name(journal_path.name + "-tokens")


class SQLiteTokenCache(SharedTokenCache):
    """Tokens shared through an SQLite file by the processes of one bot on one machine."""

    _failures = (sqlite3.Error, OSError)

    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        *,
        platform: str = "github",
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(sealer, platform=platform, clock=clock)
        self.path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._guard = threading.Lock()  # one connection, used from worker threads in turn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # Sealed, but still nobody else's to read: created for this user only.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # a token lost to a power cut is re-minted
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _do(self, sql: str, args: tuple[Any, ...]) -> tuple[list[Any], int]:
        """Run one statement in a worker thread; its rows and how many it changed."""

        def work() -> tuple[list[Any], int]:
            with self._guard:
                cursor = self._connection().execute(sql, args)
                return cursor.fetchall(), cursor.rowcount

        return await asyncio.to_thread(work)

    async def _load(self, name: str) -> bytes | None:
        rows, _ = await self._do(
            "SELECT sealed FROM tokens WHERE name = ? AND until > ?", (name, self._clock())
        )
        return bytes(rows[0][0]) if rows else None

    async def _store(self, name: str, sealed: bytes, until: float) -> None:
        await self._do("DELETE FROM tokens WHERE until <= ?", (self._clock(),))
        await self._do(
            "INSERT OR REPLACE INTO tokens (name, sealed, until) VALUES (?, ?, ?)",
            (name, sealed, until),
        )

    async def _lock(self, name: str, owner: str, seconds: float) -> bool:
        now = self._clock()
        _, changed = await self._do(
            "INSERT INTO minting (name, owner, until) VALUES (?, ?, ?) ON CONFLICT (name)"
            " DO UPDATE SET owner = excluded.owner, until = excluded.until"
            " WHERE minting.until <= ?",
            (name, owner, now + seconds, now),
        )
        return changed == 1

    async def _unlock(self, name: str, owner: str) -> None:
        await self._do("DELETE FROM minting WHERE name = ? AND owner = ?", (name, owner))

    async def _delete(self, name: str) -> None:
        await self._do("DELETE FROM tokens WHERE name = ?", (name,))

    async def _forget(self, name: str) -> None:
        await self._do(
            "DELETE FROM tokens WHERE name = ? OR substr(name, 1, ?) = ?",
            (name, len(name) + 1, name + ":"),
        )

    def close(self) -> None:
        """Close the file (the next use opens it again)."""
        with self._guard:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
