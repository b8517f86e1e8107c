"""Where the framework tells what happened: one call from each place that knows, feeding the
logs, the metrics and (when on) the traces. The places: the receiver's answer
(:func:`observe_deliveries` wraps it), the journal write, a delivery's handlers
(:func:`handling`), each API request (:func:`api_called`), each installation token
(:func:`token_obtained`), the settings' secrets (:func:`remember_secrets`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from framework.observe import metrics, tracing
from framework.observe.log import SECRETS, bind

if TYPE_CHECKING:
    from pydantic import BaseModel

    from framework.webhooks.delivery import Delivery

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                Awaitable[None]]  # fmt: skip

deliveries_log = logging.getLogger("framework.deliveries")

_LEVELS = {"done": logging.INFO, "retried": logging.WARNING, "dead": logging.ERROR}

_troubles: set[str] = set()


def _safely(record: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Record a metric or a span; a failure to is logged once and never fails the delivery
    or the API call it was about (say, the metrics directory was removed under us)."""
    try:
        record(*args, **kwargs)
    except Exception as exc:
        name = getattr(record, "__name__", repr(record))
        if name not in _troubles:
            _troubles.add(name)
            logging.getLogger("framework.observe").error(
                "could not record %s (reported once): %s: %s", name, type(exc).__name__, exc
            )


def remember_secrets(settings: BaseModel) -> None:
    """Redact every secret setting from the logs from now on (a URL's password only)."""
    from pydantic import SecretStr

    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if not isinstance(value, SecretStr):
            continue
        secret = value.get_secret_value()
        if "://" in secret:
            secret = urlsplit(secret).password or ""
        SECRETS.add(secret)


_EVENT_HEADERS = (b"x-github-event", b"x-atomgit-event", b"x-gitcode-event", b"x-coding-event")
"""Where the platforms that name the event in a header put it (TAPD names it in the body)."""


def observe_deliveries(receiver: ASGI, *, platform: str = "github") -> ASGI:
    """A platform's webhook endpoint, counting each answer by event and status and (when
    tracing) starting each delivery's trace, whose ``traceparent`` the journal then stores."""

    async def observed(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        status = 500
        event = None
        for key, value in scope["headers"]:
            if key in _EVENT_HEADERS:
                event = value.decode("latin-1")
                break

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span = None
        if tracing.enabled():
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            span = tracing.receiving(headers)
            scope = {**scope, "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
        try:
            await receiver(scope, receive, sending)
        finally:
            _safely(metrics.delivery_received, platform, event, status)
            if span is not None:
                _safely(span.end, **{"http.response.status_code": status})

    return observed


def journal_written(started_ns: int) -> None:
    """A delivery was just stored in the journal (a span, when tracing)."""
    _safely(tracing.record, "journal record", started_ns)


class Handling:
    """One delivery's handlers, from claim to outcome: the clock, the span, then one log
    line (INFO when done) and the metrics."""

    __slots__ = ("_delivery", "_span", "_started")

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._started = time.perf_counter()
        self._span = tracing.handling(delivery.id, delivery.name, delivery.action, delivery.headers)

    def finished(self, errors: list[BaseException], final: bool) -> str:
        """The handlers returned ``errors`` on the delivery's ``final`` attempt or not:
        log and count the outcome (``done``, ``retried``, ``dead``) and return it."""
        seconds = time.perf_counter() - self._started
        outcome = "done" if not errors else "dead" if final else "retried"
        delivery = self._delivery
        _safely(metrics.delivery_handled, delivery.platform, delivery.name, outcome, seconds)
        level = _LEVELS[outcome]
        logged = deliveries_log.isEnabledFor(level)
        # Nobody reads the repository's name when the line is not written and no span ends.
        repository = delivery.repository if logged or self._span is not None else None
        if logged:
            log = bind(
                deliveries_log,
                delivery=delivery.id,
                platform=delivery.platform,
                event=delivery.name,
                action=delivery.action,
                installation=delivery.installation_id,
                repository=repository,
                duration_ms=round(seconds * 1000, 1),
                outcome=outcome,
            )
            log.log(
                level,
                "%s %s %s in %.0f ms",
                delivery.key,
                repository or "-",
                outcome,
                seconds * 1000,
            )
        if self._span is not None:
            _safely(self._span.end, outcome=outcome, **{"github.repository": repository})
        return outcome


def handling(delivery: Delivery) -> Handling:
    """Start watching a delivery's handlers; call ``.finished(errors, final)`` after."""
    return Handling(delivery)


def api_called(
    method: str, path: str, status: int | None, started_ns: int, remaining: int | None
) -> None:
    """A REST request answered with ``status`` (None: no answer came), reporting ``remaining``
    of its rate limit (``x-ratelimit-remaining``; None: it did not say)."""
    seconds = (time.time_ns() - started_ns) / 1e9
    _safely(metrics.api_request, method, path, status, seconds, remaining)
    if tracing.enabled():
        route = metrics.route_template(path)
        _safely(
            tracing.record,
            f"{method} {route}",
            started_ns,
            **{"http.request.method": method, "url.template": route,
               "http.response.status_code": status},
        )  # fmt: skip


def token_obtained(token: str, *, minted: bool) -> None:
    """An installation token came from GitHub (``minted``) or another process's cache."""
    SECRETS.add(token, expires=True)
    if minted:
        _safely(metrics.token_minted)
    else:
        _safely(metrics.token_reused, "shared")


def token_reused() -> None:
    """A token from this process's cache was used."""
    _safely(metrics.token_reused, "process")
