"""Delivery bodies in append-only files beside the SQLite journal.

A delivery's body is most of its bytes (GitHub's run to tens of kilobytes). Stored in SQLite
it is written twice (to the WAL, then to the database at the checkpoint) across several
overflow pages; appended to a plain file it is written once, and the journal's row keeps only
where it is (file, offset, length). Measured on the bench machine: ~70 µs of CPU per 18 KB
delivery inside SQLite, ~15 µs appended here.

The files live in ``<journal>-bodies/``. Each process that records deliveries appends to a
file of its own, named for it and held under an exclusive ``flock`` while it is the one being
appended to, and starts a new file past ``segment_bytes``. A file that no row refers to and
that nobody appends to is deleted by :meth:`BodyLog.remove_unreferenced` (the journal calls it
when it purges). The bodies of one transaction are written with one ``writev`` and, with
``sync``, made durable with one ``fdatasync`` before the transaction commits: a row never
points at bytes that are not on disk. A crash between the two leaves unreferenced bytes,
which cost space until their file is deleted, and nothing else.

Every method is called from the journal's own thread only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import zlib
from collections import OrderedDict
from pathlib import Path

SEGMENT_BYTES = 64 * 1024 * 1024
_SUFFIX = ".bodies"
_OPEN_READERS = 16


class BodyLost(Exception):
    """A stored body cannot be read back: its file is gone or shorter than recorded."""


class BodyDamaged(BodyLost):
    """A stored body reads back with other bytes than were written (its checksum differs)."""


def body_checksum(body: bytes) -> int:
    """The CRC-32 stored beside a body, to notice a flipped byte when it is read back.

    >>> body_checksum(b'{"action":"opened"}')
    2931584626
    """
    return zlib.crc32(body)


class BodyLog:
    """Append-only body files in ``directory`` (created on first append)."""

    def __init__(
        self, directory: Path, *, sync: bool = True, segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        self.directory = directory
        self.sync = sync
        self.segment_bytes = segment_bytes
        self._fd: int | None = None  # the file appended to, flocked
        self._name = ""
        self._written = 0  # its size: where the next body goes
        self._pending_bytes = 0
        self._pending_at: dict[int, bytes] = {}  # by offset: readable before the flush
        self._readers: OrderedDict[str, int] = OrderedDict()
        self._sequence = 0
        self._total: int | None = None  # bytes in the directory's files, once counted

    @property
    def current(self) -> str:
        """The name of the file appended to now ("" before the first append)."""
        return self._name

    # Appending --------------------------------------------------------------------------

    def append(self, body: bytes) -> tuple[str, int]:
        """Queue ``body`` for the next :meth:`flush`; return (file name, offset)."""
        if self._fd is None or (not self._pending_at and self._written >= self.segment_bytes):
            self._start_segment()
        offset = self._written + self._pending_bytes
        self._pending_at[offset] = body
        self._pending_bytes += len(body)
        return self._name, offset

    def flush(self) -> None:
        """Write what :meth:`append` queued, and sync it; on failure, undo the partial write
        (the caller rolls back the rows that would have pointed at it)."""
        if not self._pending_at:
            return
        assert self._fd is not None
        try:
            chunks, written = list(self._pending_at.values()), 0  # in offset order
            while written < self._pending_bytes:  # writev may write less than asked
                n = os.pwritev(self._fd, chunks, self._written + written)
                written += n
                chunks = _after(chunks, n)
            if self.sync:
                os.fdatasync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._written)
            self.discard()
            raise
        self._written += self._pending_bytes
        if self._total is not None:
            self._total += self._pending_bytes
        self.discard()

    def discard(self) -> None:
        """Forget what was queued and not flushed (its transaction rolled back)."""
        self._pending_bytes, self._pending_at = 0, {}

    def _start_segment(self) -> None:
        self.directory.mkdir(exist_ok=True)
        for _ in range(100):  # bounded: a collision needs the same pid, clock and sequence
            self._sequence += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._sequence}{_SUFFIX}"
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not _same_file(fd, path):  # removed as unreferenced before we locked it
                os.close(fd)
                continue
            if self.sync:
                _sync_directory(self.directory)
            self._close_segment()
            self._fd, self._name, self._written = fd, name, 0
            return
        raise OSError(errno.EEXIST, "could not create a new body file", str(self.directory))

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock: the file may be deleted once unreferenced
            self._fd = None

    # Reading ----------------------------------------------------------------------------

    def read(self, name: str, offset: int, length: int, checksum: int | None = None) -> bytes:
        """The body stored at ``offset`` of file ``name``; raise :class:`BodyLost`, or
        :class:`BodyDamaged` if it does not match ``checksum`` (:func:`body_checksum`)."""
        data = self._read(name, offset, length)
        if checksum is not None and body_checksum(data) != checksum:
            raise BodyDamaged(
                f"its body in {self.directory / name} at offset {offset} is damaged "
                "(its checksum does not match)"
            )
        return data

    def _read(self, name: str, offset: int, length: int) -> bytes:
        if name == self._name and offset >= self._written:  # appended in this transaction
            pending = self._pending_at.get(offset)
            if pending is not None and len(pending) == length:
                return pending
        try:
            fd = self._reader(name)
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise BodyLost(
                f"its body file {self.directory / name} cannot be read ({exc})"
            ) from None
        if len(data) != length:
            raise BodyLost(
                f"its body file {self.directory / name} is shorter than recorded "
                f"({offset + len(data)} of {offset + length} bytes)"
            )
        return data

    def _reader(self, name: str) -> int:
        if name == self._name and self._fd is not None:
            return self._fd
        fd = self._readers.pop(name, None)
        if fd is None:
            if "/" in name or not name.endswith(_SUFFIX):
                raise OSError(errno.EINVAL, "not a body file name", name)
            fd = os.open(self.directory / name, os.O_RDONLY)
            while len(self._readers) >= _OPEN_READERS:
                os.close(self._readers.popitem(last=False)[1])
        self._readers[name] = fd
        return fd

    # Space ------------------------------------------------------------------------------

    def size(self) -> int:
        """Bytes in the directory's body files, plus what is queued. Counted once, then kept
        up to date with this process's appends and deletions (only the receiver appends)."""
        if self._total is None:
            self._total = 0
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(self.directory):
                    if entry.name.endswith(_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            self._total += entry.stat().st_size
        return self._total + self._pending_bytes

    def remove_unreferenced(self, referenced: set[str]) -> list[str]:
        """Delete body files no row refers to and no process appends to; return their names.

        Call while holding the journal's write lock, after the rows are gone, so no row can
        come to refer to a file between this check and its deletion.
        """
        removed: list[str] = []
        with contextlib.suppress(FileNotFoundError):
            names = [e.name for e in os.scandir(self.directory) if e.name.endswith(_SUFFIX)]
            for name in names:
                if name in referenced or name == self._name:
                    continue
                if self._remove_if_unlocked(name):
                    removed.append(name)
        return removed

    def _remove_if_unlocked(self, name: str) -> bool:
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process appends to it
            os.close(fd)
            return False
        try:
            size = os.fstat(fd).st_size
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        if self._total is not None:
            self._total -= size
        stale = self._readers.pop(name, None)
        if stale is not None:
            os.close(stale)
        return True

    def close(self) -> None:
        """Close every file (the one appended to last: its lock is released)."""
        self._close_segment()
        self._name = ""
        while self._readers:
            os.close(self._readers.popitem()[1])


def _after(chunks: list[bytes], n: int) -> list[bytes]:
    """``chunks`` without their first ``n`` bytes."""
    rest = list(chunks)
    while n and rest:
        if n >= len(rest[0]):
            n -= len(rest.pop(0))
        else:
            rest[0] = rest[0][n:]
            n = 0
    return rest


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
