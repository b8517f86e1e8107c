"""``GET /metrics``: Prometheus's text format, behind ``METRICS_TOKEN`` when it is set.

With a token set, a request that sends ``Authorization: Bearer TOKEN`` is served; one that
sends another token is refused (401) wherever it comes from; one that sends none is served
from loopback only (a sidecar, ``curl`` inside the container; not through a proxy, see
:func:`~framework.server.access.is_local_request`) and refused from anywhere else.
Without a token, everyone is served: publish the port to a private network only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from framework.errors import Unavailable
from framework.journal import Counts
from framework.observe import metrics
from framework.server.access import bearer_matches, is_local_request

logger = logging.getLogger("framework.server.metrics")


def allowed(token: str | None, headers: Mapping[str, str], client: str | None) -> bool:
    """Whether a scrape may read the metrics (the rules above); ``headers`` lower-case.

    >>> allowed(None, {}, "10.0.0.2"), allowed("t0k", {"authorization": "Bearer t0k"}, "10.0.0.2")
    (True, True)
    >>> allowed("tok3n", {}, "10.0.0.2"), allowed("tok3n", {"authorization": "Bearer no"}, "::1")
    (False, False)
    >>> allowed("tok3n", {"host": "localhost:3000"}, "127.0.0.1")
    True
    """
    if not token:
        return True
    authorization = headers.get("authorization")
    if authorization is None:
        return is_local_request(client, headers)
    return bearer_matches(authorization, token)


class MetricsEndpoint:
    """Serves :func:`framework.observe.metrics.render`, with the journal's counts if it answers."""

    def __init__(self, token: str | None, counts: Callable[[], Awaitable[Counts]]) -> None:
        self._token = token
        self._counts = counts

    async def serve(self, request: Request) -> Response:
        """The metrics, or 401."""
        client = request.client.host if request.client else None
        if not allowed(self._token, request.headers, client):
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
