"""The bot's pages: ``GET /`` is the setup page until the app is registered, then the status
page. Every route answers only as :mod:`framework.server.access` allows (loopback, or
``STATUS_PAGE_TOKEN``).

======================================  =============================================
``GET /``                               setup page (no credentials) or status page
``GET /setup/callback``                 GitHub's redirect after registering the app
``POST /setup/import``                  import an app made by hand
``POST /deliveries/{id}/replay``        run a failed delivery again
``GET/POST /login``                     the token login (``STATUS_PAGE_TOKEN``)
======================================  =============================================

>>> from framework import App
>>> [route.path for route in page_routes(App())][:2]
['/', '/setup/callback']
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from framework.server.setup import (
    CALLBACK_PATH,
    IMPORT_PATH,
    SetupPages,
    awaiting_registration,
)
from framework.server.status import StatusPages
from framework.server.web import Pages, PagesHost

__all__ = ["page_routes"]

Endpoint = Callable[[Request], Awaitable[Response]]


def page_routes(host: PagesHost) -> list[BaseRoute]:
    """The routes of the setup and status pages for ``host`` (the App mounts them)."""
    pages = Pages(host)
    setup = SetupPages(pages)
    status = StatusPages(pages)

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def guard(request: Request) -> Response:
            refused = pages.refusal(request)
            return refused if refused is not None else await endpoint(request)

        return guard

    async def index(request: Request) -> Response:
        if awaiting_registration(host.settings):
            return await setup.index(request)
        return await status.index(request)

    async def not_registered(request: Request) -> Response:
        # The webhook path while the app has no credentials: GitHub may redeliver later.
        if awaiting_registration(host.settings):
            error = "the app is not registered yet: open the bot's page (GET /) to register it"
            return JSONResponse({"error": error}, status_code=503)
        return JSONResponse({"error": "not found"}, status_code=404)

    return [
        Route("/", guarded(index), methods=["GET", "HEAD"]),
        Route(CALLBACK_PATH, guarded(setup.callback), methods=["GET"]),
        Route(IMPORT_PATH, guarded(setup.import_app), methods=["POST"]),
        Route("/deliveries/{delivery_id}/replay", guarded(status.replay), methods=["POST"]),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route(host.settings.webhook_path, not_registered, methods=["GET", "POST"]),
    ]
