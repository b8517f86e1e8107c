"""Receiving a webhook: from an HTTP request to a verified :class:`Delivery`, or a refusal.

:class:`WebhookReceiver` is the ASGI endpoint of one platform's webhook path: it streams the
body up to a cap, hands (headers, body) to the platform's pure ``read`` (which verifies and
reads it: :meth:`framework.platforms.base.Platform.read_delivery`), answers 202 as soon as the
delivery is stored in the journal, and leaves running the handlers to the runners.

It is a bare ASGI callable rather than a Starlette route because it is the hot path: every
delivery passes through it and GitHub's 10 s deadline is measured against it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from framework.common.encoding import compact_json
from framework.common.throttle import Throttle
from framework.errors import PayloadTooLarge, WebhookError
from framework.webhooks.delivery import Delivery
from framework.webhooks.load import ReceiverLoad

logger = logging.getLogger("framework.webhooks.receiver")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RefusalLog:
    """Logs refusals at most once a second per status, counting the ones it held back.

    A flood of forged or oversized deliveries, or a full backlog, must not flood the logs too.
    """

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._throttle = Throttle(interval, clock)

    def refused(self, error: WebhookError, delivery_id: str | None) -> None:
        """Note one refusal; log it unless one of the same status was logged just now."""
        status = error.status
        held = self._throttle.let_through(status)
        if held is None:
            return
        logger.warning(
            "refused a delivery (%d): %s%s",
            status,
            error,
            f" (and {held} more with this status since the last such line)" if held else "",
            extra={"bound_fields": {"delivery": delivery_id}},
        )


_ACCEPTED = compact_json({"ok": True})
_IGNORED = compact_json({"ok": True, "handled": False})
_DUPLICATE = compact_json({"ok": True, "duplicate": True})


class WebhookReceiver:
    """The ASGI endpoint for webhook deliveries."""

    def __init__(
        self,
        accept: Callable[[Delivery], Awaitable[str]],
        read: Callable[[Mapping[str, str], bytes], Delivery],
        max_bytes: int,
        load: ReceiverLoad | None = None,
        *,
        id_headers: tuple[str, ...] = ("x-github-delivery",),
    ) -> None:
        self._accept = accept
        self._read = read
        self._max_bytes = max_bytes
        self._load = load or ReceiverLoad()
        self._refusals = RefusalLog()
        self._id_headers = id_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _respond(send, 405, compact_json({"error": "use POST"}), [(b"allow", b"POST")])
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._read_body(headers, receive)
            delivery = self._read(headers, body)
            # Only a verified delivery counts as load: an unsigned sender stalling its body
            # must not hold the handlers back.
            self._load.enter()
            try:
                # Stored durably before the answer. Raises Unavailable (503) while stopping or
                # when the journal cannot store it: GitHub then records a failure, not a lie.
                outcome = await self._accept(delivery)
            finally:
                self._load.leave()
        except WebhookError as exc:
            said = (headers.get(name) for name in self._id_headers)
            self._refusals.refused(exc, next((v for v in said if v), None))
            await _respond(send, exc.status, compact_json({"error": exc.public()}))
            return
        if outcome == "accepted":
            await _respond(send, 202, _ACCEPTED)
        elif outcome == "duplicate":  # seen before: acknowledged, and not run again
            await _respond(send, 200, _DUPLICATE)
        else:
            await _respond(send, 202, _IGNORED)

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        limit = self._max_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than the {limit}-byte limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise WebhookError("the sender disconnected before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is larger than the {limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
