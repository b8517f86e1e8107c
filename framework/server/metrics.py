"""``GET /metrics``: Prometheus's text format, behind ``METRICS_TOKEN`` when it is set.

With a token set, a request that sends ``Authorization: Bearer TOKEN`` is served; one that
sends another token is refused (401) wherever it comes from; one that sends none is served
from loopback only (a sidecar, ``curl`` inside the container) and refused from anywhere else.
Without a token, everyone is served: publish the port to a private network only.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from framework.errors import Unavailable
from framework.journal import Counts
from framework.observe import metrics

logger = logging.getLogger("framework.server.metrics")


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine's own.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("10.0.0.2"), is_loopback(None)
    (True, True, False, False)
    """
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed(token: str | None, authorization: str | None, client: str | None) -> bool:
    """Whether a scrape may read the metrics (the rules above).

    >>> allowed(None, None, "10.0.0.2"), allowed("tok3n", "Bearer tok3n", "10.0.0.2")
    (True, True)
    >>> allowed("tok3n", None, "10.0.0.2"), allowed("tok3n", "Bearer wrong", "127.0.0.1")
    (False, False)
    >>> allowed("tok3n", None, "127.0.0.1")
    True
    """
    if not token:
        return True
    if authorization is None:
        return is_loopback(client)
    scheme, _, given = authorization.partition(" ")
    matches = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and matches


class MetricsEndpoint:
    """Serves :func:`framework.observe.metrics.render`, with the journal's counts if it answers."""

    def __init__(self, token: str | None, counts: Callable[[], Awaitable[Counts]]) -> None:
        self._token = token
        self._counts = counts

    async def serve(self, request: Request) -> Response:
        """The metrics, or 401."""
        client = request.client.host if request.client else None
        if not allowed(self._token, request.headers.get("authorization"), client):
            return JSONResponse(
                {"error": "send the metrics token: Authorization: Bearer METRICS_TOKEN"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        try:
            counts: Counts | None = await self._counts()
        except Unavailable:  # the journal's gauges are left out; /readyz says why
            counts = None
        try:
            text = metrics.render(counts)
        except Exception:
            logger.exception("could not render the metrics")
            return JSONResponse({"error": "the metrics could not be read"}, status_code=500)
        return Response(text, media_type=metrics.CONTENT_TYPE)
