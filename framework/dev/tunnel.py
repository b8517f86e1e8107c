"""The development tunnel: read a smee.io channel, forward each delivery to the local bot.

Unlike Node's smee-client it keeps signatures valid (the body GitHub signed is rebuilt, see
:mod:`framework.dev.signed_body`), never gives up (a dropped, refused, garbled or silent
stream is reconnected with capped, jittered backoff), forwards deliveries in order, one at
a time, retrying while the bot is down, and after a reconnect lets the caller recover what
was sent meanwhile (``on_reconnect``: GitHub's redelivery).

>>> tunnel = Tunnel("https://smee.io/abc", "http://127.0.0.1:3000/api/github/webhooks",
...                 secrets=["s3cret"])
>>> await tunnel.run()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from framework.common.backoff import backoff
from framework.common.network import describe_network_error
from framework.dev.signed_body import Rebuilt, rebuild

__all__ = ["Forward", "Tunnel", "forward_from_message"]

logger = logging.getLogger("framework.tunnel")

FORWARD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""GitHub waits 10 s for an answer; a bot slower than 30 s is taken as failing."""

# smee.io adds these to the original headers, or they describe its own connection.
_NOT_FORWARDED = frozenset(
    "host content-length timestamp connection keep-alive transfer-encoding upgrade "
    "accept-encoding te trailer proxy-connection".split()
)


@dataclass(frozen=True, slots=True)
class Forward:
    """One delivery read from the channel, ready to be posted to the bot."""

    headers: dict[str, str]
    query: list[tuple[str, str]]
    rebuilt: Rebuilt

    @property
    def delivery_id(self) -> str:
        """``X-GitHub-Delivery``, or ``-``."""
        return self.headers.get("x-github-delivery", "-")

    @property
    def event(self) -> str:
        """``issues.opened``: the event header and the body's action."""
        name = self.headers.get("x-github-event", "?")
        action = _action(self.rebuilt.body)
        return f"{name}.{action}" if action else name


def _action(body: bytes) -> str | None:
    # The action is near the start of every GitHub payload; no need to parse 900 KB for it.
    head = body[:200]
    if not head.startswith(b'{"action":"'):
        return None
    end = head.find(b'"', 11)
    return head[11:end].decode(errors="replace") if end > 0 else None


def forward_from_message(data: str, secrets: Sequence[str]) -> Forward:
    """A smee.io message (the ``data`` of an SSE message event) as the request to forward.

    Raises ValueError for a message that is not a delivery. Every key but ``body``,
    ``query``, ``timestamp`` and the hop-by-hop headers is an original request header.

    >>> f = forward_from_message('{"x-github-event":"ping","host":"smee.io",'
    ...                          '"body":{"zen":"Keep it simple."},"query":{},"timestamp":1}', [])
    >>> f.headers, f.rebuilt.body
    ({'x-github-event': 'ping'}, b'{"zen":"Keep it simple."}')
    """
    message = json.loads(data)
    if not isinstance(message, dict) or "body" not in message:
        raise ValueError("not a delivery (no body)")
    query = message.get("query")
    headers = {
        name.lower(): value if isinstance(value, str) else ", ".join(map(str, value))
        for name, value in message.items()
        if name not in ("body", "query") and name.lower() not in _NOT_FORWARDED
        and isinstance(value, (str, list))
    }  # fmt: skip
    rebuilt = rebuild(
        message["body"],
        secrets,
        headers.get("x-hub-signature-256"),
        headers.get("x-hub-signature"),
    )
    return Forward(headers, query_items(query) if isinstance(query, dict) else [], rebuilt)


class Tunnel:
    """Forwards the deliveries of the smee channel ``source`` to ``target`` until cancelled.

    ``secrets``: the webhook secret(s), to check rebuilt bodies (without one a body is sent
    in GitHub's form, unchecked); or a function returning them, asked for each delivery
    (the secret may appear while the tunnel runs: an app registered from the setup page).
    ``ping_interval``: the channel's (smee.io: 30 s); no ping nor message for twice that
    reconnects. ``reconnect_base``/``reconnect_cap``: the backoff
    between connection attempts. A delivery the bot does not take (it is down, or answers
    5xx) is retried for ``give_up_after`` seconds, then logged as given up. ``on_reconnect``
    is called (in the background) with the time the stream was last known to be alive,
    after every reconnect.
    """

    def __init__(
        self,
        source: str,
        target: str,
        *,
        secrets: Sequence[str] | Callable[[], Sequence[str]] = (),
        ping_interval: float = 30.0,
        reconnect_base: float = 1.0,
        reconnect_cap: float = 30.0,
        forward_base: float = 0.5,
        forward_cap: float = 5.0,
        give_up_after: float = 600.0,
        on_reconnect: Callable[[float], Awaitable[None]] | None = None,
        log: logging.Logger = logger,
    ) -> None:
        self.source = source
        self.target = target
        self.secrets = secrets
        self.ping_interval = ping_interval
        self.reconnect_base = reconnect_base
        self.reconnect_cap = reconnect_cap
        self.forward_base = forward_base
        self.forward_cap = forward_cap
        self.give_up_after = give_up_after
        self.on_reconnect = on_reconnect
        self.log = log
        self.connections = 0
        self.forwarded: list[tuple[Forward, int]] = []
        """Every delivery the bot took, with its status code, in order."""
        self.given_up: list[Forward] = []
        self._queue: asyncio.Queue[Forward] = asyncio.Queue()
        self._hinted = False
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Read the channel and forward its deliveries, forever (cancel the task to stop)."""
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client:
            forwarder = asyncio.create_task(self._forward_all(client), name="tunnel-forward")
            try:
                await self._read_forever(client)
            finally:
                forwarder.cancel()
                for task in (forwarder, *self._background):
                    task.cancel()
                await asyncio.gather(forwarder, *self._background, return_exceptions=True)

    # Reading the channel ---------------------------------------------------------------------

    async def _read_forever(self, client: httpx.AsyncClient) -> None:
        failures = 0
        alive_at: float | None = None  # when the last stream last said something
        while True:
            try:
                async with aconnect_sse(client, "GET", self.source) as source:
                    response = source.response
                    if response.status_code != 200:
                        raise _Unusable(f"the channel answered {response.status_code}")
                    media = response.headers.get("content-type", "").partition(";")[0]
                    if media != "text/event-stream":
                        raise _Unusable(
                            f"the channel answered {media or 'no content type'}, not an event "
                            "stream: is the URL a smee channel?"
                        )
                    self.connections += 1
                    if alive_at is None:
                        self.log.info("%s → %s", self.source, self.target)
                    else:
                        self.log.info("reconnected to %s", self.source)
                        self._recover(alive_at)
                    alive_at = time.time()
                    failures = 0
                    alive_at = await self._read(source.aiter_sse(), alive_at)
                why = "the channel closed the stream"
            except _Unusable as exc:
                why = str(exc)
            except TimeoutError:
                why = f"nothing from the channel for {2 * self.ping_interval:.0f} s"
            except (httpx.HTTPError, SSEError) as exc:
                why = f"cannot reach the channel ({describe_network_error(exc)})"
            failures += 1
            delay = backoff(failures, base=self.reconnect_base, cap=self.reconnect_cap)
            self.log.warning("%s; reconnecting in %.1f s", why, delay)
            await asyncio.sleep(delay)

    async def _read(self, events: Any, alive_at: float) -> float:
        """Queue the stream's deliveries until it ends; the watchdog raises TimeoutError."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(2 * self.ping_interval) as watchdog:
            async for event in events:
                alive_at = time.time()
                watchdog.reschedule(loop.time() + 2 * self.ping_interval)
                if event.event in ("ready", "ping"):
                    continue
                if event.event != "message" or not event.data:
                    continue
                try:
                    forward = forward_from_message(event.data, self._current_secrets())
                except ValueError as exc:
                    self.log.warning("skipped a message that is not a delivery (%s)", exc)
                    continue
                self._queue.put_nowait(forward)
        return alive_at

    def _current_secrets(self) -> list[str]:
        found = self.secrets() if callable(self.secrets) else self.secrets
        return [s for s in found if s]

    def _recover(self, since: float) -> None:
        if self.on_reconnect is None:
            return
        task = asyncio.create_task(self._call_recover(since))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _call_recover(self, since: float) -> None:
        assert self.on_reconnect is not None
        try:
            await self.on_reconnect(since)
        except Exception as exc:
            self.log.warning("could not recover missed deliveries: %s: %s", type(exc).__name__, exc)
            self.log.debug("recovery failed", exc_info=True)

    # Forwarding ------------------------------------------------------------------------------

    async def _forward_all(self, client: httpx.AsyncClient) -> None:
        while True:
            forward = await self._queue.get()
            await self._forward(client, forward)

    async def _forward(self, client: httpx.AsyncClient, forward: Forward) -> None:
        started = time.monotonic()
        failures = 0
        while True:
            try:
                response = await client.post(
                    self.target,
                    content=forward.rebuilt.body,
                    headers=forward.headers,
                    params=tuple(forward.query),
                    timeout=FORWARD_TIMEOUT,  # the stream itself waits forever; a post does not
                )
                status: int | None = response.status_code
                why = f"the bot answered {status}"
            except httpx.TransportError as exc:
                status, why = None, f"the bot cannot be reached ({describe_network_error(exc)})"
            if status is not None and status < 500:
                self._report(forward, status)
                return
            failures += 1
            if time.monotonic() - started > self.give_up_after:
                self.given_up.append(forward)
                self.log.error(
                    "gave up on %s delivery=%s after %.0f s: %s; redeliver it from the "
                    "app's settings (Advanced, Recent Deliveries) or `python -m framework "
                    "deliveries sync`", forward.event, forward.delivery_id,
                    time.monotonic() - started, why,
                )  # fmt: skip
                return
            delay = backoff(failures, base=self.forward_base, cap=self.forward_cap)
            if failures == 1:
                self.log.warning(
                    "%s delivery=%s: %s; retrying for up to %.0f s",
                    forward.event, forward.delivery_id, why, self.give_up_after,
                )  # fmt: skip
            await asyncio.sleep(delay)

    def _report(self, forward: Forward, status: int) -> None:
        self.forwarded.append((forward, status))
        rebuilt = forward.rebuilt
        if rebuilt.form is not None:
            signature = f"signature rebuilt ({rebuilt.form.name})"
        elif not rebuilt.checked:
            signature = "signature not checked (no WEBHOOK_SECRET here, or none sent)"
        else:
            signature = "signature NOT rebuilt"
        level = logging.INFO if status < 400 else logging.WARNING
        self.log.log(
            level, "%s delivery=%s → %d, %s",
            forward.event, forward.delivery_id, status, signature,
        )  # fmt: skip
        if rebuilt.checked and rebuilt.form is None and not self._hinted:
            self._hinted = True
            self.log.warning(
                "smee.io re-parses each delivery, and this one's bytes could not be "
                "rebuilt as GitHub signed them (integers beyond 2**53, a number like 1.0 or "
                'keys such as "10" lose their form in smee\'s JavaScript), so the bot refuses '
                "it (401). Check that WEBHOOK_SECRET is the app's, or use a tunnel that "
                "forwards bytes unchanged for such payloads."
            )


class _Unusable(Exception):
    """The channel answered, but not with a stream."""


def query_items(query: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A smee ``query`` object as query-string pairs (lists repeat the key).

    >>> query_items({"a": "1", "b": ["2", "3"]})
    [('a', '1'), ('b', '2'), ('b', '3')]
    """
    return [
        (key, str(value))
        for key, values in query.items()
        for value in (values if isinstance(values, list) else [values])
    ]
