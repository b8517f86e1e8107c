"""Limits on every byte a client sends before its delivery proves its signature.

The webhook endpoint is public: anyone can open connections, send headers slowly, send huge
headers or a body that never ends. None of that may slow the bot, so:

- **Headers** must arrive within ``SERVER_HEADER_TIMEOUT_SECONDS`` of the moment the connection
  starts waiting for a request, in at most ``SERVER_MAX_HEADER_BYTES`` (431 beyond) and
  ``SERVER_MAX_HEADERS`` lines (400). httptools, uvicorn's fast parser, joins a header value
  chunk by chunk (quadratic: a 64 MB header blocked the event loop for 10 s) and has no size cap
  of its own, so the cap is counted here, before the parser sees the bytes past it.
- **Bodies** must keep up a minimum rate after a grace period (:func:`body_deadline`): a
  stalled body is answered 408 and its connection closed.
- **Idle connections** are closed: after ``SERVER_KEEP_ALIVE_SECONDS`` between requests (uvicorn),
  and after the header timeout on a connection that never sends a request (here).
- **Connections** are capped below the file limit (``SERVER_MAX_CONNECTIONS``): past the cap, the
  connection that has waited longest without a request is closed to make room, so a new
  delivery and ``/healthz`` are answered however many idle connections someone opens.

:func:`guarded_protocol` builds them into a subclass of uvicorn's httptools protocol, which
:func:`framework.server.serving.uvicorn_config` gives uvicorn. They live there rather than in
ASGI middleware because that is where the bytes arrive, before any request exists; and one
sweep over the connections twice a second replaces a timeout around every ``receive()``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from framework.common.encoding import compact_json
from framework.common.throttle import Throttle, held_note

logger = logging.getLogger("framework.server.guard")

SWEEP_SECONDS = 0.5
"""How often the connections' deadlines are checked: each holds to within this."""

FILES_KEPT_FREE = 128
"""File descriptors left for the journal, body files, handler processes and the API client."""

K = TypeVar("K")


def default_max_connections(files_kept_free: int = FILES_KEPT_FREE) -> int:
    """The open-file limit less what the bot needs besides connections (at least 16)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65536
    return max(16, soft - files_kept_free)


@dataclass(frozen=True)
class ServerLimits:
    """The limits, from ``SERVER_*`` settings (these defaults are theirs)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    body_grace: float = 10.0
    body_min_rate: int = 16 * 1024
    keep_alive: float = 5.0
    max_connections: int = field(default_factory=default_max_connections)


def body_deadline(started: float, received: int, grace: float, min_rate: float) -> float:
    """When the next body bytes must have arrived: the body may lag ``grace`` seconds behind
    ``min_rate`` bytes per second, never more.

    >>> body_deadline(100.0, 0, grace=10, min_rate=1000)
    110.0
    >>> body_deadline(100.0, 50_000, grace=10, min_rate=1000)
    160.0
    """
    return started + grace + received / min_rate


def longest_waiting(waiting: Iterable[tuple[K, float | None]]) -> K | None:
    """Of (connection, waiting since or None if busy with a request), the one waiting longest.

    >>> longest_waiting([("a", 5.0), ("b", None), ("c", 2.0)])
    'c'
    >>> longest_waiting([("b", None)]) is None
    True
    """
    best: tuple[float, K] | None = None
    for key, since in waiting:
        if since is not None and (best is None or since < best[0]):
            best = (since, key)
    return None if best is None else best[1]


class _TooManyHeaders(Exception):
    pass


_refusals = Throttle()


def _log_refusal(reason: str, client: Any) -> None:
    held = _refusals.let_through(reason)
    if held is not None:
        logger.warning("closed a connection from %s: %s%s", client, reason, held_note(held))


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of this module.

    The deadlines are checked by one sweep over the server's connections every
    :data:`SWEEP_SECONDS` (so they hold to within that), not by a timer per request: a
    request pays for a timestamp, not for a timer set and cancelled.
    """

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since: float | None = None  # waiting for a request's headers since then
        self._header_bytes = 0
        self._header_count = 0
        self._uncounted_chunk = False
        self._body_started: float | None = None  # a request's body is being read since then
        self._body_received = 0

    @property
    def idle_since(self) -> float | None:
        """Since when the connection waits for a request with none in progress, or None."""
        if self.cycle is not None and not self.cycle.response_complete:
            return None
        return self.waiting_since

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_headers()
        if not getattr(self.server_state, "guard_sweeping", False):
            self.server_state.guard_sweeping = True  # type: ignore[attr-defined]
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.server_state)
        self._make_room()

    def _make_room(self) -> None:
        if len(self.connections) <= self.limits.max_connections:
            return
        idle = longest_waiting(
            (c, c.idle_since)
            for c in self.connections
            if isinstance(c, GuardedProtocol) and c is not self and not c.transport.is_closing()
        )
        victim = idle if idle is not None else self
        _log_refusal(f"over {self.limits.max_connections} connections", victim.client)
        victim.transport.close()

    def _wait_for_headers(self) -> None:
        self.waiting_since = self.loop.time()
        self._header_bytes = 0

    def check_deadlines(self, now: float) -> None:
        """Close the connection if its headers or its body are late (the sweep calls it)."""
        if self.transport.is_closing():
            return
        idle = self.idle_since
        if idle is not None and now - idle > self.limits.header_timeout:
            if self._header_bytes:  # an idle connection closes silently, as keep-alive does
                _log_refusal("its request headers took too long", self.client)
            self.transport.close()
        elif self._body_started is not None and now > self._body_deadline(self._body_started):
            _log_refusal("its body arrived too slowly", self.client)
            if self.cycle is not None and self.cycle.response_started:
                self.transport.close()
            else:  # the app, waiting for the rest, hears of a disconnect
                self._refuse(b"408 Request Timeout", "the body arrived too slowly")

    def _body_deadline(self, started: float) -> float:
        limits = self.limits
        return body_deadline(started, self._body_received, limits.body_grace, limits.body_min_rate)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self.waiting_since is None or self.transport.is_closing():
            return
        if self._uncounted_chunk:  # it also held the end of the request before
            self._uncounted_chunk = False
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.limits.max_header_bytes:
            _log_refusal(f"headers over {self.limits.max_header_bytes} bytes", self.client)
            self._refuse(b"431 Request Header Fields Too Large", "request headers too large")

    def _refuse(self, status: bytes, reason: str) -> None:
        body = compact_json({"error": reason})
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()

    def on_message_begin(self) -> None:
        self._header_count = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            # Raised through the parser: uvicorn answers 400 and closes the connection.
            raise _TooManyHeaders(f"more than {self.limits.max_headers} headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.waiting_since = None
        # Until the message is complete (at once, for a request without a body).
        self._body_started = self.loop.time()
        self._body_received = 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_started = None
        super().on_message_complete()
        # What follows is the next request's headers; the response's own wait is not timed.
        self.waiting_since = self.loop.time()
        self._header_bytes = 0
        self._uncounted_chunk = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # no pipelined request waits
            self._wait_for_headers()


def _sweep(server_state: Any) -> None:
    """Check every connection's deadlines; again in a moment while there are connections."""
    connections = [c for c in server_state.connections if isinstance(c, GuardedProtocol)]
    if not connections:
        server_state.guard_sweeping = False  # the next connection starts it again
        return
    loop = connections[0].loop
    now = loop.time()
    for connection in connections:
        connection.check_deadlines(now)
    loop.call_later(SWEEP_SECONDS, _sweep, server_state)


def guarded_protocol(limits: ServerLimits) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``http=``), with these limits."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})
