"""Running handlers in a separate, lower-priority process, so acknowledgements come first.

``python -m framework run`` serves webhooks in one process and runs the handlers in another
(``HANDLER_PROCESSES``; by default one from 4 usable CPUs up, see
:func:`framework.settings.default_handler_processes`), started as
``python -m framework handle --fd N BOT`` with a lower CPU priority (``HANDLER_PROCESS_NICE``).
Inside one event loop nothing can make an acknowledgement overtake a handler's API call, and an
API call costs more CPU than an acknowledgement; the kernel's scheduler can, and does.

Deliveries do not travel between the processes: the receiver records them in the journal, and
each handler process claims its work from the journal itself. The socket between them only
carries wake-ups ("new work is recorded"), the receiver's load (while it takes a burst, a
handler process starts only ``HANDLER_CONCURRENCY_UNDER_LOAD`` deliveries' handlers, as the
in-process runner does) and the order to stop. If a handler process dies (a
crash, the OOM killer, SIGKILL), the receiver gives what it held back to the journal and
starts a new one: nothing is lost, and handlers that were running at the moment of death run
again (at-least-once).

A handler process dies with its receiver: the kernel kills it when the receiver dies (Linux's
parent-death signal), and it watches its parent's pid besides. It inherits the journal's lock
(:meth:`~framework.journal.sqlite.SQLiteJournal.lock`), so a restarted bot waits for every
process of its predecessor to be gone before it runs anything: never two runs of a delivery
at once.

Frames on the socket are a 4-byte length and a pickled tuple:
parent → child ``("wake",)``, ``("load", busy)`` and ``("stop", grace)``;
child → parent ``("stopped", [ids])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from framework.dispatch.runner import Runner
from framework.journal import consumer_name

if TYPE_CHECKING:
    from framework.journal import Journal

logger = logging.getLogger("framework.dispatch.handler_process")

_LENGTH = struct.Struct(">I")
RESTART_DELAY_SECONDS = 1.0
PARENT_CHECK_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def encode_frame(message: tuple[Any, ...]) -> bytes:
    """A frame: length prefix and pickled tuple (both ends are this same program)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next frame, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        data = await reader.readexactly(_LENGTH.unpack(header)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = pickle.loads(data)
    assert isinstance(message, tuple)
    return message


class _Child:
    """The receiver's view of one handler process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.consumer = ""
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.stopped: asyncio.Future[list[str]] | None = None


class HandlerProcesses:
    """The handler processes of one receiver: started, woken, replaced when they die, stopped."""

    def __init__(
        self,
        target: str,
        count: int,
        *,
        release: Callable[[str], Awaitable[list[str]]],
        nice: int = 10,
        command: list[str] | None = None,
    ) -> None:
        self.target = target
        self.nice = nice
        self._release = release
        self._command = command or [sys.executable, "-m", "framework", "handle"]
        self._children = [_Child(i) for i in range(count)]
        self._wake_pending = False
        self._busy = False
        self.stopping = False
        self.restarts = 0
        self.lock_fd: int | None = None
        """The journal's lock, inherited by every handler process (set before :meth:`start`)."""

    @property
    def pids(self) -> list[int]:
        """The process ids of the running handler processes."""
        return [c.process.pid for c in self._children if c.process is not None]

    async def start(self) -> None:
        """Start every handler process."""
        for child in self._children:
            await self._spawn(child)

    async def _spawn(self, child: _Child) -> None:
        child.consumer = f"{consumer_name()}/h{child.index}"
        ours, theirs = socket.socketpair()
        inherited = [theirs.fileno()]
        lock = []
        if self.lock_fd is not None:
            inherited.append(self.lock_fd)
            lock = ["--lock-fd", str(self.lock_fd)]
        try:
            child.process = await asyncio.create_subprocess_exec(
                *self._command,
                "--fd",
                str(theirs.fileno()),
                "--consumer",
                child.consumer,
                "--parent",
                str(os.getpid()),
                *lock,
                self.target,
                pass_fds=inherited,
            )
        finally:
            theirs.close()
        if self.nice:
            # Set from here, so the process is lower priority from its first instruction.
            pid = child.process.pid
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
        reader, child.writer = await asyncio.open_unix_connection(sock=ours)
        if self._busy:
            child.writer.write(encode_frame(("load", True)))
        child.stopped = asyncio.get_running_loop().create_future()
        child.reader_task = asyncio.create_task(self._read(child, reader))
        logger.info("handler process %d started (pid %d)", child.index, child.process.pid)

    def wake(self) -> None:
        """Tell the handler processes new work is recorded (once per loop turn, not per call)."""
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        self._send(encode_frame(("wake",)))

    def load_changed(self, busy: bool) -> None:
        """The receiver became busy (a burst) or idle: while busy, the handler processes start
        only ``HANDLER_CONCURRENCY_UNDER_LOAD`` deliveries' handlers, leaving the CPU to it."""
        self._busy = busy
        self._send(encode_frame(("load", busy)))

    def _send(self, frame: bytes) -> None:
        for child in self._children:
            if child.writer is not None and not child.writer.is_closing():
                child.writer.write(frame)

    async def _read(self, child: _Child, reader: asyncio.StreamReader) -> None:
        while (message := await read_frame(reader)) is not None:
            if message[0] == "stopped" and child.stopped and not child.stopped.done():
                child.stopped.set_result(list(message[1]))
        await self._ended(child)

    async def _ended(self, child: _Child) -> None:
        if child.writer is not None:
            child.writer.close()
        if child.stopped is not None and not child.stopped.done():
            child.stopped.set_result([])
        if self.stopping:
            return
        code = await child.process.wait() if child.process is not None else None
        released = await self._give_back(child)
        logger.error(
            "handler process %d exited unexpectedly (code %s) while running %d deliveries; "
            "starting a new one, which runs them again",
            child.index,
            code,
            len(released),
        )
        self.restarts += 1
        await asyncio.sleep(RESTART_DELAY_SECONDS)  # no tight loop if the bot cannot start
        if not self.stopping:
            await self._spawn(child)
            self.wake()

    async def _give_back(self, child: _Child) -> list[str]:
        try:
            return await self._release(child.consumer)
        except Exception as exc:  # the journal is down: the leases expire instead
            logger.error("could not give handler process %d's work back: %s", child.index, exc)
            return []

    async def stop(self, grace: float) -> list[str]:
        """Let the processes finish running handlers within ``grace`` seconds; stop them.

        Returns the ids of deliveries that did not finish (they stay in the journal).
        """
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for child in self._children:
            if child.writer is not None and not child.writer.is_closing():
                child.writer.write(encode_frame(("stop", grace)))
        unfinished: list[str] = []
        for child in self._children:
            unfinished += await self._wait_stopped(child, max(0.0, deadline - loop.time()) + 5)
        return unfinished

    async def _wait_stopped(self, child: _Child, seconds: float) -> list[str]:
        if child.process is None or child.stopped is None:
            return []
        try:
            unfinished = await asyncio.wait_for(asyncio.shield(child.stopped), seconds)
            await asyncio.wait_for(child.process.wait(), seconds)
        except TimeoutError:
            logger.error("handler process %d did not stop in time; killing it", child.index)
            child.process.kill()
            await child.process.wait()
            unfinished = await self._give_back(child)
        if child.reader_task is not None:
            await asyncio.gather(child.reader_task, return_exceptions=True)
        return unfinished


async def serve_receiver(
    runner: Runner, journal: Journal, sock: socket.socket, parent: int | None = None
) -> None:
    """The handler process's side: claim and run work until the receiver says stop.

    If the receiver goes away without saying stop (it died; its socket closed or ``parent``
    is no longer our parent), stop at once: what was running is given back, and the next
    bot runs it, once this process (which holds the journal's lock) is gone.
    """
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    if parent is not None:
        _watch_parent(parent, writer.transport)
    await runner.start(journal)
    unfinished: list[str] = []
    while (message := await read_frame(reader)) is not None:
        if message[0] == "wake":
            runner.wake()
        elif message[0] == "load":
            runner.load.set_busy(bool(message[1]))
        elif message[0] == "stop":
            unfinished = await runner.stop(float(message[1]))
            break
    else:
        logger.error("the receiver is gone: stopping at once, running handlers included")
        unfinished = await runner.stop(0.0)
    writer.write(encode_frame(("stopped", unfinished)))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


def _watch_parent(parent: int, transport: asyncio.WriteTransport) -> None:
    """Close the receiver's socket once ``parent`` is not our parent any more."""
    if os.getppid() != parent:
        transport.abort()  # the read loop ends: the receiver is gone
        return
    asyncio.get_running_loop().call_later(PARENT_CHECK_SECONDS, _watch_parent, parent, transport)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` dies (Linux), and exit now if it
    is dead already: a handler process must never outlive the bot that started it."""
    if sys.platform == "linux":
        import ctypes  # in handler processes only

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.warning("cannot ask to die with the receiver (errno %d)", ctypes.get_errno())
    if os.getppid() != parent:  # it died before the request above took effect
        os._exit(1)


def ignore_stop_signals() -> None:
    """The receiver decides when a handler process stops (after draining it), not a Ctrl-C
    sent to the whole process group or a SIGTERM sent to every process of a container."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_event_loop(main: Awaitable[None]) -> None:
    """Run ``main`` on uvloop (as uvicorn does), or asyncio's loop without it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner: Callable[[Any], None] = asyncio.run
    else:
        runner = uvloop.run
    runner(main)
