"""What the setup and status pages share: the bot they show, templates, access and CSRF.

Pages are rendered on the server by Jinja2 with autoescaping on (a payload's text shows as
text), need no JavaScript, are never cached, and may not be framed. Every page answers only
as :mod:`framework.server.access` allows.
"""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from framework.client.rest import GitHubClient
from framework.dispatch.routing import Router
from framework.journal import Journal
from framework.server.access import (
    SESSION_SECONDS,
    bearer_matches,
    csrf_matches,
    csrf_token,
    is_local_request,
    new_nonce,
    pages_key,
    session_cookie,
    session_valid,
    token_matches,
)
from framework.settings import Settings

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

CSRF_COOKIE = "framework_csrf"
SESSION_COOKIE = "framework_session"


class PagesHost(Protocol):
    """What the pages need from the bot (the :class:`~framework.App` provides it)."""

    name: str
    home: Path | None
    """The bot's folder, where ``app.yml`` is looked for (the working directory if None)."""
    router: Router

    @property
    def settings(self) -> Settings: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    @property
    def github(self) -> GitHubClient: ...

    async def open_journal(self) -> Journal: ...

    async def use_credentials(self, settings: Settings) -> str | None:
        """Serve with these settings from now on; None, or why a restart is needed."""
        ...


def _templates() -> Jinja2Templates:
    # Jinja2 is loaded with the first page shown: a bot that only takes deliveries never needs it.
    import jinja2
    from starlette.templating import Jinja2Templates

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("framework.server", "templates"),
        autoescape=True,  # every template: what came from a payload is shown as text
    )
    return Jinja2Templates(env=environment)


class Pages:
    """Rendering and access control for one bot's pages."""

    def __init__(self, host: PagesHost) -> None:
        self.host = host
        token = host.settings.status_page_token
        self.key = pages_key(token.get_secret_value() if token else None)

    @cached_property
    def templates(self) -> Jinja2Templates:
        """The pages' templates, loaded when the first page is rendered."""
        return _templates()

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """``template`` with ``context``, the bot's name and a CSRF token for its forms."""
        cookie = request.cookies.get(CSRF_COOKIE) or new_nonce()
        context.update(bot_name=self.host.name, csrf=csrf_token(self.key, cookie))
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        if request.cookies.get(CSRF_COOKIE) != cookie:
            self._set_cookie(request, response, CSRF_COOKIE, cookie, None)
        web = urlsplit(self.host.settings.github_web_url)
        response.headers.update(
            {
                "cache-control": "no-store",
                "x-frame-options": "DENY",
                "referrer-policy": "no-referrer",
                "content-security-policy": (
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                    f"form-action 'self' {web.scheme}://{web.netloc}; frame-ancestors 'none'"
                ),
            }
        )
        return response

    def message(self, request: Request, status: int, title: str, text: str) -> HTMLResponse:
        """A page that says one thing: a refusal or an error, and what to do."""
        return self.render(request, "message.html", status, title=title, text=text)

    def _set_cookie(
        self,
        request: Request,
        response: Response,
        name: str,
        value: str,
        max_age: int | None,
        samesite: Literal["strict", "lax"] = "strict",
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite=samesite,
            secure=request.url.scheme == "https",
        )

    def refusal(self, request: Request) -> Response | None:
        """None if the request may see the pages; else the page that says why not."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        client = request.client.host if request.client else None
        if is_local_request(client, headers):
            return None
        token = self.host.settings.status_page_token
        if token is None:
            return self.message(
                request,
                403,
                "Only on this machine",
                "This page answers only on the bot's own machine (http://localhost). "
                "Set STATUS_PAGE_TOKEN to open it from elsewhere.",
            )
        if bearer_matches(headers.get("authorization"), token.get_secret_value()):
            return None
        if session_valid(self.key, request.cookies.get(SESSION_COOKIE), time.time()):
            return None
        return self.render(request, "login.html", 401, wrong=False)

    async def form(self, request: Request) -> dict[str, Any] | Response:
        """The POSTed form, if its CSRF token matches the browser's cookie; else a 403 page."""
        form = await request.form()
        fields = {key: form.get(key) for key in form}
        token = fields.get("csrf")
        if not csrf_matches(
            self.key, request.cookies.get(CSRF_COOKIE), token if isinstance(token, str) else None
        ):
            return self.message(
                request,
                403,
                "Form expired",
                "This form was not sent from this bot's page, or the page is too old. "
                "Reload the page and try again.",
            )
        return fields

    async def login(self, request: Request) -> Response:
        """``GET /login`` shows the form; ``POST /login`` with the token sets the session."""
        token = self.host.settings.status_page_token
        if token is None:
            return self.message(
                request, 404, "No login", "STATUS_PAGE_TOKEN is not set: open the page locally."
            )
        if request.method == "GET":
            return self.render(request, "login.html", wrong=False)
        form = await request.form()
        given = form.get("token")
        if not isinstance(given, str) or not token_matches(given, token.get_secret_value()):
            return self.render(request, "login.html", 401, wrong=True)
        response = Response(status_code=303, headers={"location": "/"})
        session = session_cookie(self.key, time.time())
        # Lax: GitHub's redirect back to the setup callback (a top-level GET from another
        # site) must still carry the login; nothing a GET does needs more than the login.
        self._set_cookie(request, response, SESSION_COOKIE, session, SESSION_SECONDS, "lax")
        return response
