"""Signing users in: ``GET /login/{platform}`` and ``GET /login/{platform}/callback``.

``/login/github?next=/dashboard`` sends the browser to GitHub's authorize page with a ``state``
that is random, sealed, bound to this browser by a cookie, single use and good for 10 minutes.
The callback checks it, exchanges the code, asks who signed in, stores the grant sealed
(:mod:`framework.auth.user_tokens`), runs the ``@app.on_login`` hooks, sets a sealed session
cookie naming the signed-in user per platform, and redirects to ``next`` (a path of this bot
only). Anything wrong answers 400 with a short page saying what, and stores nothing.

A platform's routes are on when its client id and secret are set (``GITHUB_CLIENT_ID`` and
``GITHUB_CLIENT_SECRET``, ``ATOMGIT_...``, ``CODING_...``, ``TAPD_...``), with
``TOKEN_ENCRYPTION_KEY``.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from framework.auth.oauth import flow, provider
from framework.auth.oauth.base import (
    STATE_SECONDS,
    InvalidState,
    MissingScope,
    OAuthError,
    Provider,
    SignInRequired,
    new_state,
    read_state,
    redirect_uri,
    redirect_uri_allowed,
    safe_next,
)
from framework.auth.oauth.github import require_scopes
from framework.auth.sealing import Sealer, Unsealable
from framework.auth.user_tokens import (
    NotSignedIn,
    UserGrant,
    UserTokens,
    open_store,
    sealer_from,
)
from framework.client.rest import GitHubClient
from framework.errors import ConfigurationError
from framework.platforms.connections import Connection
from framework.platforms.user_clients import user_client
from framework.settings import Settings
from framework.webhooks.delivery import Delivery

logger = logging.getLogger("framework.login")

__all__ = ["MissingScope", "NotSignedIn", "SignIn", "SignInRequired", "SignedIn"]

SESSION_COOKIE = "framework_session"
SESSION_SECONDS = 30 * 86400
STATE_COOKIE = "framework_oauth_{platform}"


@dataclass(frozen=True)
class SignedIn:
    """What an ``@app.on_login`` hook receives: who signed in where, and the request."""

    platform: str
    user_id: str
    login: str
    scopes: tuple[str, ...]
    resource: dict[str, Any] | None = None
    request: Request | None = field(default=None, repr=False)


def revoked_user(delivery: Delivery) -> tuple[str, str] | None:
    """``(platform, user id)`` whose tokens a delivery revokes: GitHub's
    ``github_app_authorization`` ``revoked``; None for any other delivery."""
    if delivery.name != "github_app_authorization" or delivery.action != "revoked":
        return None
    sender = delivery.payload.get("sender")
    if not isinstance(sender, dict) or sender.get("id") is None:
        return None
    return delivery.platform, str(sender["id"])


def check_callback_url(settings: Settings) -> None:
    """At start-up: GitHub must accept our redirect URI for ``GITHUB_OAUTH_CALLBACK_URL``."""
    registered, public = settings.github_oauth_callback_url, settings.public_url
    if registered is None or public is None or "github" not in settings.sign_in_platforms():
        return
    ours = redirect_uri(public, "github")
    if not redirect_uri_allowed(registered, ours):
        raise ConfigurationError(
            f"GitHub would refuse the redirect URI {ours}: it must have the host and port of "
            f"GITHUB_OAUTH_CALLBACK_URL ({registered}) and a path equal to or below its path; "
            "fix PUBLIC_URL or the app's callback URL"
        )


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f'<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p><p><a href="/">Back</a></p>'
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


class SignIn:
    """The bot's sign-in: routes, the token store, ``on_login`` hooks, user clients."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        connection: Callable[[str], Connection],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._connection = connection
        self.clock = clock
        self.hooks: list[Callable[[SignedIn], Any]] = []
        self._tokens: UserTokens | None = None
        self._opening: asyncio.Lock | None = None
        self._providers: dict[str, Provider] = {}

    @property
    def settings(self) -> Settings:
        """The bot's settings."""
        return self._settings()

    @property
    def sealer(self) -> Sealer:
        """The sealer of ``TOKEN_ENCRYPTION_KEY`` (a clear error when it is not set)."""
        return sealer_from(self.settings)

    def provider(self, platform: str) -> Provider:
        """The platform's OAuth steps as configured."""
        if platform not in self._providers:
            self._providers[platform] = provider(platform, self.settings)
        return self._providers[platform]

    async def tokens(self) -> UserTokens:
        """The user-token store, opened on first use."""
        if self._tokens is not None:
            return self._tokens
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._tokens is None:
                sealer = self.sealer
                http = httpx.AsyncClient(
                    timeout=httpx.Timeout(30.0, connect=10.0),
                    headers={"User-Agent": "framework-sign-in"},
                )
                store = await open_store(self.settings)
                self._tokens = UserTokens(store, sealer, self.provider, http, clock=self.clock)
        return self._tokens

    def reset(self) -> None:
        """Forget what was built from old settings (``App.configure``)."""
        self._tokens = None
        self._opening = None
        self._providers = {}

    async def close(self) -> None:
        """Close the store and the HTTP client."""
        if self._tokens is not None:
            tokens, self._tokens = self._tokens, None
            await tokens.http.aclose()
            await tokens.store.close()

    # The routes ---------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The sign-in routes. A platform whose sign-in is not configured answers 404 (until
        it is: the setup page may add GitHub's client without a restart)."""
        routes = [
            Route("/login/{platform}", self.start, methods=["GET"]),
            Route("/login/{platform}/callback", self.callback, methods=["GET"]),
        ]
        platforms = self.settings.sign_in_platforms()
        if not platforms:
            return routes
        check_callback_url(self.settings)
        if self.settings.token_encryption_key is None:
            logger.warning(
                "sign-in is configured for %s, but TOKEN_ENCRYPTION_KEY is not set: nobody can "
                "sign in until it is (python -m framework users new-key makes one)",
                ", ".join(platforms),
            )
        return routes

    def _redirect_uri(self, request: Request, platform: str) -> str:
        return redirect_uri(self.settings.public_url or str(request.base_url), platform)

    def _platform(self, request: Request) -> str | None:
        platform = str(request.path_params["platform"])
        return platform if platform in self.settings.sign_in_platforms() else None

    async def start(self, request: Request) -> Response:
        """Redirect to the platform's authorize page with a fresh state."""
        platform = self._platform(request)
        if platform is None:
            return _page(404, "No such sign-in", "This bot has no sign-in for that platform.")
        try:
            next_path = safe_next(request.query_params.get("next"))
        except ValueError as exc:
            return _page(400, "Sign-in refused", str(exc))
        try:
            sealer = self.sealer
            oauth = self.provider(platform)
        except ConfigurationError as exc:
            logger.error("sign-in is not configured: %s", exc)
            return _page(500, "Sign-in is not configured", str(exc))
        ours = self._redirect_uri(request, platform)
        registered = self.settings.github_oauth_callback_url
        if platform == "github" and registered and not redirect_uri_allowed(registered, ours):
            message = f"GitHub would refuse {ours} for the app's callback URL: set PUBLIC_URL"
            logger.error("%s", message)
            return _page(500, "Sign-in is not configured", message)
        state, nonce = new_state(sealer, platform, next_path, self.clock())
        response = RedirectResponse(oauth.authorize_url(state, ours), status_code=302)
        response.set_cookie(
            STATE_COOKIE.format(platform=platform), nonce, max_age=STATE_SECONDS,
            path=f"/login/{platform}", httponly=True, samesite="lax",
            secure=ours.startswith("https://"),
        )  # fmt: skip
        return response

    async def callback(self, request: Request) -> Response:
        """Check the state, exchange the code, store the grant, redirect to ``next``."""
        platform = self._platform(request)
        if platform is None:
            return _page(404, "No such sign-in", "This bot has no sign-in for that platform.")
        cookie = STATE_COOKIE.format(platform=platform)
        response = await self._callback(request, platform)
        response.delete_cookie(cookie, path=f"/login/{platform}")
        return response

    async def _callback(self, request: Request, platform: str) -> Response:
        query = dict(request.query_params)
        try:
            sealer = self.sealer
            claims = read_state(
                sealer, query.get("state"), platform=platform,
                cookie_nonce=request.cookies.get(STATE_COOKIE.format(platform=platform)),
                now=self.clock(),
            )  # fmt: skip
            tokens = await self.tokens()
            if not await tokens.store.use_once(f"state:{claims.nonce}", STATE_SECONDS):
                raise InvalidState("this sign-in link was already used", error="replayed_state")
        except InvalidState as exc:
            logger.warning("%s sign-in refused: %s", platform, exc.error)
            return _page(400, "Sign-in failed", str(exc))
        except ConfigurationError as exc:
            logger.error("sign-in is not configured: %s", exc)
            return _page(500, "Sign-in is not configured", str(exc))
        if "error" in query:
            error = query["error"][:100]
            logger.info("%s sign-in declined: %s", platform, error)
            described = query.get("error_description", "")[:200]
            return _page(400, "Sign-in failed", f"{platform} said: {error}. {described}".strip())
        code = query.get("code")
        if not code:
            return _page(400, "Sign-in failed", f"{platform} sent no code: start again")
        oauth = self.provider(platform)
        try:
            grant, identity = await flow.sign_in(
                oauth, tokens.http, code, self._redirect_uri(request, platform), query, self.clock()
            )
        except (OAuthError, KeyError, TypeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, OAuthError) else "an unreadable answer"
            logger.warning("%s sign-in failed: %s", platform, reason)
            return _page(400, "Sign-in failed", f"Could not complete the sign-in: {reason}")
        stored = await tokens.save(platform, identity, grant)
        logger.info("%s user %s signed in", platform, stored.login)
        await self._run_hooks(
            SignedIn(platform, stored.user_id, stored.login, stored.grant.scopes,
                     dict(grant.resource) if grant.resource else None, request)
        )  # fmt: skip
        response = RedirectResponse(claims.next, status_code=303)
        session = self.signed_in(request) | {platform: stored.user_id}
        response.set_cookie(
            SESSION_COOKIE, sealer.seal(json.dumps(session).encode()).decode(),
            max_age=SESSION_SECONDS, path="/", httponly=True, samesite="lax",
            secure=self._redirect_uri(request, platform).startswith("https://"),
        )  # fmt: skip
        return response

    async def _run_hooks(self, signed_in: SignedIn) -> None:
        for hook in self.hooks:
            try:
                if inspect.iscoroutinefunction(hook):
                    await hook(signed_in)
                else:
                    await run_in_threadpool(hook, signed_in)
            except Exception:
                logger.exception("an on_login hook failed for %s user", signed_in.platform)

    def signed_in(self, request: Request) -> dict[str, str]:
        """The users this browser signed in as, by platform (from the sealed session cookie).

        >>> app.users.signed_in(request)  # doctest: +SKIP
        {'github': '583231'}
        """
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return {}
        try:
            data = json.loads(self.sealer.open(raw, ttl=SESSION_SECONDS, at=self.clock()))
        except (Unsealable, ValueError, ConfigurationError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items()}

    # Acting as the user --------------------------------------------------------------------

    async def client(self, platform: str, user: str, scopes: Iterable[str] = ()) -> GitHubClient:
        """A client of ``platform`` acting as ``user`` (id or login); GitHub ``scopes`` it needs."""
        tokens = await self.tokens()
        stored = await tokens.read(platform, str(user))
        needed = list(scopes)
        if needed and platform == "github":
            require_scopes(stored.login, stored.grant.scopes, needed)
        return user_client(
            self._connection(platform), tokens, self.provider(platform), stored, self.settings
        )

    async def grant(self, platform: str, user: str) -> UserGrant:
        """A user's stored grant (its scopes, TAPD's ``resource``, CODING's ``team``)."""
        return await (await self.tokens()).read(platform, str(user))

    async def revoked(self, delivery: Delivery) -> None:
        """Delete the tokens of a user who revoked the app (``github_app_authorization``)."""
        found = revoked_user(delivery)
        if found is None or self.settings.token_encryption_key is None:
            return
        platform, user_id = found
        tokens = await self.tokens()
        if await tokens.forget(platform, user_id):
            logger.info("%s user %s revoked the app: their tokens are deleted", platform, user_id)
