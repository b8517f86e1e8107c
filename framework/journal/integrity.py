"""Telling a damaged SQLite journal from a healthy one, so damage is reported, never trusted.

SQLite itself stays silent about two kinds of damage: a write-ahead log whose header is
garbage is ignored (and the deliveries recorded in it are dropped without a word), and a
damaged page is only noticed by the query that reads it. So the journal checks, at start,
:func:`wal_problem` (before SQLite opens the file) and ``PRAGMA quick_check``; bodies carry a
CRC-32 (:func:`~framework.journal.bodies.body_checksum`), checked whenever one is read for its
handlers. Damage found while running is written to ``PATH.damaged`` (:func:`mark_damaged`):
every process of the bot then refuses new deliveries (503) and ``/readyz`` answers 503,
until ``python -m framework deliveries salvage`` has kept what is readable.

The checks are here; :mod:`framework.journal.salvage` repairs.
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

WAL_MAGIC = (0x377F0682, 0x377F0683)
WAL_HEADER_BYTES = 32
_WAL_VERSION = 3007000
_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
SALVAGE_COMMAND = "python -m framework deliveries salvage"


def wal_checksum(data: bytes, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum over ``data`` (a multiple of 8 bytes)."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    s0 = s1 = 0
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_problem(header: bytes, size: int) -> str | None:
    """What is wrong with a write-ahead log starting with ``header`` (``size`` bytes long), or
    None when SQLite will read it. An empty log is fine; one too short for a header holds no
    committed transaction either.

    >>> wal_problem(b"", 0) is None
    True
    >>> wal_problem(b"garbage" * 5, 4096)
    'its header is not a SQLite write-ahead log header'
    """
    if size < WAL_HEADER_BYTES:
        return None
    magic, version = struct.unpack(">II", header[:8])
    if magic not in WAL_MAGIC or version != _WAL_VERSION:
        return "its header is not a SQLite write-ahead log header"
    if wal_checksum(header[:24], big_endian=bool(magic & 1)) != struct.unpack(">II", header[24:32]):
        return "its header's checksum does not match"
    return None


def check_wal(path: Path) -> str | None:
    """:func:`wal_problem` for the journal at ``path`` (its ``PATH-wal`` file)."""
    wal = path.with_name(path.name + "-wal")
    try:
        with open(wal, "rb") as file:
            header = file.read(WAL_HEADER_BYTES)
            size = file.seek(0, 2)
    except FileNotFoundError:
        return None
    problem = wal_problem(header, size)
    return None if problem is None else f"its write-ahead log {wal} is damaged: {problem}"


def is_corruption(error: BaseException) -> bool:
    """Whether SQLite reported damage (rather than a full disk, a lock or a bug)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _CORRUPT:
        return True
    text = str(error).lower()
    return isinstance(error, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text
    )


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA quick_check``'s complaints (empty when the file's structure is sound)."""
    try:
        rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(20)")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def marker(path: Path) -> Path:
    """Where damage found at run time is noted: ``PATH.damaged``."""
    return path.with_name(path.name + ".damaged")


def mark_damaged(path: Path, what: str) -> None:
    """Note damage for every process of the bot (and the next start) to see."""
    with open(marker(path), "a") as file:
        file.write(what.replace("\n", " ") + "\n")


def damage_noted(path: Path) -> str | None:
    """The damage noted for the journal at ``path`` (its first line), or None."""
    try:
        text = marker(path).read_text()
    except FileNotFoundError:
        return None
    return text.splitlines()[0] if text.strip() else "damage was noted"


def refusal(path: Path, problems: list[str]) -> str:
    """The message a bot stops with when its journal is damaged."""
    listed = "\n  ".join(problems[:10])
    return (
        f"the delivery journal {path} is damaged:\n  {listed}\n"
        f"Stop every process using it, then keep what is readable with `{SALVAGE_COMMAND}` "
        "(it moves the damaged files aside, keeping them), and start the bot again. "
        "Deliveries that are lost can be redelivered from the app's settings on GitHub."
    )
