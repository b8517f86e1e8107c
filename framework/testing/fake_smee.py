"""A local smee.io for tests: channels, an SSE stream per subscriber, deliveries re-serialized
the way smee.io's JavaScript does it, and trouble on demand.

What smee.io does, and so this does: ``GET /new`` redirects to a fresh channel; ``GET
/{channel}`` with ``Accept: text/event-stream`` (exactly; anything else gets the channel's
web page) streams ``event: ready``, then ``event: ping`` every ``ping_interval`` seconds and a
message per delivery; ``POST /{channel}`` takes a JSON delivery (form-encoded bodies are
refused, bodies over 1 MiB too) and sends every subscriber ``{...headers, "body": <the
parsed JSON>, "query": {...}, "timestamp": <ms>}``, as ``JSON.stringify`` writes it after
``JSON.parse``: numbers as float64, integer-like keys first, lower-case ``\\u`` escapes.

>>> smee = FakeSmee(ping_interval=0.5)
>>> async with serve_async(smee.app) as base_url:  # doctest: +SKIP
...     channel = f"{base_url}/{smee.new_channel()}"

Trouble: :meth:`FakeSmee.drop_streams`, :meth:`FakeSmee.refuse_connections` (503s),
:meth:`FakeSmee.send_garbage`, :meth:`FakeSmee.go_silent`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from framework.dev.signed_body import JAVASCRIPT, serialize

__all__ = ["FakeSmee", "javascript_parse"]

MAX_BODY_BYTES = 1024 * 1024
_DROP = object()
_ARRAY_INDEX_LIMIT = 2**32 - 1


def _is_array_index(key: str) -> bool:
    return key.isdigit() and str(int(key)) == key and int(key) < _ARRAY_INDEX_LIMIT


def _javascript_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key keeps its first place and its last value, as in JavaScript.
    merged = dict(pairs)
    indexes = sorted((k for k in merged if _is_array_index(k)), key=int)
    return {k: merged[k] for k in [*indexes, *(k for k in merged if not _is_array_index(k))]}


def javascript_parse(body: bytes) -> Any:
    """``JSON.parse`` as smee.io's JavaScript does it: every number a float64, integer-like
    keys moved first in ascending order.

    >>> javascript_parse(b'{"b":1,"10":2,"a":12345678901234567890}')
    {'10': 2.0, 'b': 1.0, 'a': 1.2345678901234567e+19}
    """
    return json.loads(body, parse_int=float, object_pairs_hook=_javascript_object)


@dataclass(eq=False)
class _Subscriber:
    channel: str
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    silent: bool = False


class FakeSmee:
    """smee.io on loopback. ``app`` is its ASGI application; serve it with
    :func:`~framework.testing.serve_async`.

    ``connections`` counts stream requests answered with a stream, ``accept_headers`` lists
    the ``Accept`` header of every stream request, ``posted`` the deliveries taken per
    channel (their raw bodies).
    """

    def __init__(self, *, ping_interval: float = 30.0) -> None:
        self.ping_interval = ping_interval
        self.connections = 0
        self.accept_headers: list[str] = []
        self.posted: dict[str, list[bytes]] = {}
        self._subscribers: set[_Subscriber] = set()
        self._refusals: list[int] = []
        self._event_ids = 0
        self.app = Starlette(
            routes=[
                Route("/new", self._new, methods=["GET", "HEAD"]),
                Route("/{channel}", self._channel_page, methods=["GET", "HEAD"]),
                Route("/{channel}", self._post, methods=["POST"]),
            ]
        )

    # The channel ---------------------------------------------------------------------------

    @staticmethod
    def new_channel() -> str:
        """A fresh channel name, as ``GET /new`` would redirect to."""
        return secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")

    async def _new(self, request: Request) -> Response:
        return RedirectResponse(f"{str(request.base_url).rstrip('/')}/{self.new_channel()}", 307)

    async def _channel_page(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        accept = request.headers.get("accept", "")
        if accept != "text/event-stream":
            return HTMLResponse(f"<h1>Webhook channel {channel}</h1><p>Subscribe with "
                                "<code>Accept: text/event-stream</code>.</p>")  # fmt: skip
        self.accept_headers.append(accept)
        if self._refusals:
            status = self._refusals.pop(0)
            return PlainTextResponse("Service Unavailable", status_code=status)
        self.connections += 1
        subscriber = _Subscriber(channel)
        self._subscribers.add(subscriber)
        return StreamingResponse(
            self._stream(subscriber),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _frame(self, data: str, event: str | None = None) -> str:
        self._event_ids += 1
        kind = f"event: {event}\n" if event else ""
        return f"id: {self._event_ids}\n{kind}data: {data}\n\n"

    async def _stream(self, subscriber: _Subscriber) -> AsyncIterator[str]:
        try:
            yield self._frame("{}", "ready")
            while True:
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), self.ping_interval)
                except TimeoutError:
                    if not subscriber.silent:
                        yield self._frame(json.dumps({"timestamp": _now_ms()}), "ping")
                    continue
                if item is _DROP:
                    return
                if not subscriber.silent:
                    yield str(item)
        finally:
            self._subscribers.discard(subscriber)

    async def _post(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return PlainTextResponse("Payload Too Large", status_code=413)
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return PlainTextResponse("smee accepts JSON deliveries only", status_code=400)
        try:
            parsed = javascript_parse(body)
        except ValueError:
            return PlainTextResponse("Bad Request: invalid JSON", status_code=400)
        self.posted.setdefault(channel, []).append(body)
        message: dict[str, Any] = {k.lower(): v for k, v in request.headers.items()}
        query: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            previous = query.get(key)
            query[key] = value if previous is None else [*_as_list(previous), value]
        message |= {"body": parsed, "query": query, "timestamp": float(_now_ms())}
        frame = self._frame(serialize(message, JAVASCRIPT).decode())
        for subscriber in list(self._subscribers):
            if subscriber.channel == channel:
                subscriber.queue.put_nowait(frame)
        return Response(status_code=200)

    # Trouble -------------------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """How many subscribers are connected now."""
        return len(self._subscribers)

    def drop_streams(self) -> None:
        """End every open stream now, as a restarting smee.io or a lost connection does."""
        for subscriber in list(self._subscribers):
            subscriber.queue.put_nowait(_DROP)

    def refuse_connections(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` stream requests with ``status`` instead of a stream."""
        self._refusals.extend([status] * count)

    def send_garbage(self) -> None:
        """Write lines no SSE client expects into every open stream: a line without a field,
        invalid UTF-8, and a message whose data is not JSON."""
        junk = "\x00\ufffd garbage without a colon\n\n:comment\ndata: {not json\n\nretry: x\n\n"
        for subscriber in list(self._subscribers):
            subscriber.queue.put_nowait(junk)

    def go_silent(self) -> None:
        """Open streams stay open but send nothing more (no ping, no message), as a
        half-dead connection does; new streams are normal."""
        for subscriber in self._subscribers:
            subscriber.silent = True


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _now_ms() -> int:
    return int(time.time() * 1000)
