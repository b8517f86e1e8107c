"""Running handlers in a separate, lower-priority process, so acknowledgements come first.

``python -m framework run`` serves webhooks in one process and runs the handlers in another
(``HANDLER_PROCESSES``, default 1), started as ``python -m framework handle --fd N BOT``
with a lower CPU priority (``HANDLER_PROCESS_NICE``). Inside one event loop nothing can
make an acknowledgement overtake a handler's API call, and an API call costs more CPU than an
acknowledgement; the kernel's scheduler can, and does.

The receiver keeps every delivery until its handler process reports it finished. It sends each
process at most ``window`` deliveries at a time and holds the rest, bounded in bytes. If a
handler process dies (a crash, the OOM killer, SIGKILL), the receiver starts a new one and
sends it again what the dead one had not finished: nothing is lost, and handlers that were
running at the moment of death run again (at-least-once).

Frames on the socket are a 4-byte length and a pickled tuple:
parent → child ``("delivery", id, name, body, action, installation_id, headers, received_at)``
and ``("stop", grace)``;
child → parent ``("done", id)`` and ``("stopped", [unfinished ids])``.
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
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from framework.delivery import Delivery
from framework.errors import Unavailable

if TYPE_CHECKING:
    from framework.app import App

logger = logging.getLogger("framework.handler_process")

_LENGTH = struct.Struct(">I")
RESTART_DELAY_SECONDS = 1.0


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
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.outstanding: dict[str, Delivery] = {}
        self.stopped: asyncio.Future[list[str]] | None = None


class HandlerProcesses:
    """The handler processes of one receiver, and the deliveries they have not finished."""

    def __init__(
        self,
        target: str,
        count: int,
        *,
        window: int,
        max_backlog_bytes: int,
        nice: int = 10,
        command: list[str] | None = None,
    ) -> None:
        self.target = target
        self.window = window
        self.max_backlog_bytes = max_backlog_bytes
        self.nice = nice
        self._command = command or [sys.executable, "-m", "framework", "handle"]
        self._children = [_Child(i) for i in range(count)]
        self._waiting: deque[Delivery] = deque()
        self._backlog_bytes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = False
        self.restarts = 0

    @property
    def pending(self) -> int:
        """Deliveries accepted and not yet finished (waiting or in a handler process)."""
        return len(self._waiting) + sum(len(c.outstanding) for c in self._children)

    @property
    def pids(self) -> list[int]:
        """The process ids of the running handler processes."""
        return [c.process.pid for c in self._children if c.process is not None]

    async def start(self) -> None:
        """Start every handler process."""
        for child in self._children:
            await self._spawn(child)

    async def _spawn(self, child: _Child) -> None:
        ours, theirs = socket.socketpair()
        try:
            child.process = await asyncio.create_subprocess_exec(
                *self._command,
                "--fd",
                str(theirs.fileno()),
                self.target,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        if self.nice:
            # Set from here, so the process is lower priority from its first instruction.
            pid = child.process.pid
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
        reader, child.writer = await asyncio.open_unix_connection(sock=ours)
        child.stopped = asyncio.get_running_loop().create_future()
        child.reader_task = asyncio.create_task(self._read(child, reader))
        logger.info("handler process %d started (pid %d)", child.index, child.process.pid)
        # What a dead predecessor had not finished goes first.
        for delivery in child.outstanding.values():
            child.writer.write(_delivery_frame(delivery))
        self._pump()

    def submit(self, delivery: Delivery) -> None:
        """Accept a delivery for the handler processes; never blocks.

        Raises :class:`~framework.errors.Unavailable` when the backlog is full.
        """
        if self.stopping:
            raise Unavailable("the bot is shutting down: redeliver later")
        size = len(delivery.body)
        if self._backlog_bytes + size > self.max_backlog_bytes:
            raise Unavailable(f"the backlog is full ({self.pending} deliveries): redeliver later")
        self._backlog_bytes += size
        self._waiting.append(delivery)
        self._idle.clear()
        self._pump()

    def _pump(self) -> None:
        for child in self._children:
            if child.writer is None or child.writer.is_closing():
                continue
            while self._waiting and len(child.outstanding) < self.window:
                delivery = self._waiting.popleft()
                child.outstanding[delivery.id] = delivery
                child.writer.write(_delivery_frame(delivery))

    async def _read(self, child: _Child, reader: asyncio.StreamReader) -> None:
        while (message := await read_frame(reader)) is not None:
            if message[0] == "done":
                delivery = child.outstanding.pop(message[1], None)
                if delivery is not None:
                    self._backlog_bytes -= len(delivery.body)
                self._pump()
                if not self.pending:
                    self._idle.set()
            elif message[0] == "stopped" and child.stopped and not child.stopped.done():
                child.stopped.set_result(list(message[1]))
        await self._ended(child)

    async def _ended(self, child: _Child) -> None:
        if child.writer is not None:
            child.writer.close()
        if child.stopped is not None and not child.stopped.done():
            child.stopped.set_result(list(child.outstanding))
        if self.stopping:
            return
        code = await child.process.wait() if child.process is not None else None
        logger.error(
            "handler process %d exited unexpectedly (code %s) with %d deliveries unfinished; "
            "starting a new one, which runs them again",
            child.index,
            code,
            len(child.outstanding),
        )
        self.restarts += 1
        await asyncio.sleep(RESTART_DELAY_SECONDS)  # no tight loop if the bot cannot start
        if not self.stopping:
            await self._spawn(child)

    async def join(self) -> None:
        """Wait until every accepted delivery has been handled."""
        await self._idle.wait()

    async def stop(self, grace: float) -> list[str]:
        """Stop accepting; let the processes finish within ``grace`` seconds; stop them.

        Returns the ids of deliveries that did not finish.
        """
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=grace)
        unfinished = [d.id for d in self._waiting]
        for child in self._children:
            if child.writer is not None and not child.writer.is_closing():
                remaining = max(0.0, deadline - loop.time())
                child.writer.write(encode_frame(("stop", remaining)))
        for child in self._children:
            unfinished += await self._wait_stopped(child, max(0.0, deadline - loop.time()) + 5)
        if unfinished:
            logger.error(
                "stopped with %d deliveries unfinished; redeliver them from the app's settings: %s",
                len(unfinished),
                ", ".join(unfinished),
            )
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
            unfinished = list(child.outstanding)
        if child.reader_task is not None:
            await asyncio.gather(child.reader_task, return_exceptions=True)
        return unfinished


def _delivery_frame(delivery: Delivery) -> bytes:
    return encode_frame(
        (
            "delivery",
            delivery.id,
            delivery.name,
            delivery.body,
            delivery.action,
            delivery.installation_id,
            dict(delivery.headers),
            delivery.received_at,
        )
    )


async def serve_receiver(app: App, sock: socket.socket) -> None:
    """The handler process's side: run what the receiver sends until it says stop."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    runner = app.runner
    runner.on_finished = lambda delivery: writer.write(encode_frame(("done", delivery.id)))
    runner.start()
    unfinished: list[str] = []
    while (message := await read_frame(reader)) is not None:
        if message[0] == "delivery":
            # The receiver has parsed and checked the body: no need to do it twice.
            _, delivery_id, name, body, action, installation_id, headers, received_at = message
            runner.submit(
                Delivery(delivery_id, name, body, action, installation_id, headers, received_at)
            )
        elif message[0] == "stop":
            unfinished = await runner.stop(float(message[1]))
            break
    else:  # the receiver went away without saying stop: finish what we have
        unfinished = await runner.stop(app.settings.shutdown_grace_seconds)
    writer.write(encode_frame(("stopped", unfinished)))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()
    await app.http.aclose()


def ignore_stop_signals() -> None:
    """The receiver decides when a handler process stops (after draining it), not a Ctrl-C
    sent to the whole process group or a SIGTERM sent to every process of a container."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_handler_process(app: App, fd: int) -> None:
    """Entry point of ``python -m framework handle``: serve the receiver on socket ``fd``."""
    sock = socket.socket(fileno=fd)
    _run(serve_receiver(app, sock))


def _run(main: Awaitable[None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner: Callable[[Any], None] = asyncio.run
    else:
        runner = uvloop.run
    runner(main)
