"""The GitHub REST client handed to handlers (``ctx.github``) and to the app (``app.github``).

Every client of a process shares one ``httpx.AsyncClient``, so one connection pool serves
every installation; a client is only the pairing of that pool with a way to authenticate
(:class:`AppAuth` for the app's JWT, :class:`InstallationAuth` for an installation token).

>>> response = await ctx.github.get(f"/repos/{ctx.repo_full_name}")  # doctest: +SKIP
>>> response.json()["default_branch"]  # doctest: +SKIP
'main'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Coroutine, Generator
from typing import Any, TypeVar

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from framework.app_jwt import AppJWT
from framework.errors import GitHubAPIError
from framework.tokens import FULL_ACCESS, InstallationTokens, TokenScope

T = TypeVar("T")


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: GitHub's REST API sets no cookie a bot needs, and
    reading ``Set-Cookie`` through ``http.cookiejar`` cost about a tenth of a request's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def new_http_client(base_url: str, api_version: str, user_agent: str) -> httpx.AsyncClient:
    """The process's shared connection pool with GitHub's recommended default headers.

    httpx's API over aiohttp's connection pool: httpx's own transport cost 1 to 1.7 ms of CPU
    per request here (more as concurrency rose), aiohttp's about 0.4 ms.
    """
    client = HttpxAiohttpClient(
        base_url=base_url,
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": api_version,
            "User-Agent": user_agent,
        },
        timeout=httpx.Timeout(30.0, connect=10.0),
        # GitHub allows at most 100 concurrent requests; stay below it.
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
    client._cookies = _NoCookies()  # httpx's setter would copy it into a plain Cookies
    return client


def error_from_response(response: httpx.Response) -> GitHubAPIError:
    """A :class:`GitHubAPIError` describing an error response, from its status and body."""
    message = documentation_url = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") if isinstance(body.get("message"), str) else None
        doc = body.get("documentation_url")
        documentation_url = doc if isinstance(doc, str) else None
    return GitHubAPIError(
        response.request.method,
        response.request.url.path,
        response.status_code,
        message,
        documentation_url,
        retry_after(response, secondary=bool(message and "secondary rate limit" in message)),
    )


def retry_after(
    response: httpx.Response, now: float | None = None, *, secondary: bool = False
) -> float | None:
    """How long a rate-limited response asks the client to wait, in seconds; None if it is
    not rate-limited. ``retry-after`` first, then an exhausted primary limit's reset time, then
    a minute for a secondary limit that gave neither (GitHub's rule)."""
    if response.status_code not in (403, 429):
        return None
    header = response.headers.get("retry-after")
    if header is not None and header.strip().isdigit():
        return float(header)
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(0.0, int(reset) - (time.time() if now is None else now))
    return 60.0 if secondary else None


class AppAuth(httpx.Auth):
    """Authenticates as the app itself with its JWT (for ``/app/...`` endpoints)."""

    def __init__(self, jwt: AppJWT) -> None:
        self._jwt = jwt

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._jwt.token()}"
        yield request


class InstallationAuth(httpx.Auth):
    """Authenticates as an installation with a cached access token.

    A 401 means GitHub no longer accepts the token (revoked, or expired early): the token is
    dropped and the request sent once more with a fresh one.
    """

    def __init__(
        self, tokens: InstallationTokens, installation_id: int, scope: TokenScope = FULL_ACCESS
    ) -> None:
        self._tokens = tokens
        self.installation_id = installation_id
        self.scope = scope

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("installation clients are async; from a plain function use .sync")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.get(self.installation_id, self.scope)
        request.headers["Authorization"] = f"token {token.token}"
        response = yield request
        if response.status_code == 401:
            token = await self._tokens.replace(self.installation_id, token, self.scope)
            request.headers["Authorization"] = f"token {token.token}"
            yield request


class GitHubClient:
    """An authenticated REST client. Errors (status >= 400) raise :class:`GitHubAPIError`.

    Paths are relative to ``GITHUB_API_URL``; the answer is an ``httpx.Response``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: httpx.Auth,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.http = http
        self.auth = auth
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop

    @property
    def installation_id(self) -> int | None:
        """The installation this client acts for; None for the app's own client."""
        return self.auth.installation_id if isinstance(self.auth, InstallationAuth) else None

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; keyword arguments are httpx's (``json``, ``params``, ``headers``)."""
        response = await self.http.request(method, path, auth=self.auth, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """``GET path``."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """``POST path``; pass the body as ``json=...``."""
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PUT path``."""
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """``PATCH path``."""
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """``DELETE path``."""
        return await self.request("DELETE", path, **kwargs)

    @property
    def sync(self) -> BlockingClient:
        """The same client for plain (non-async) handlers, which run in a worker thread."""
        if self._loop is None:
            raise RuntimeError("this client was created outside an event loop")
        return BlockingClient(self, self._loop)


class BlockingClient:
    """Blocking calls for plain handlers: each runs on the bot's event loop and waits."""

    def __init__(self, client: GitHubClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Blocking :meth:`GitHubClient.request`."""
        return self._run(self._client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """Blocking ``GET``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """Blocking ``POST``."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        """Blocking ``PUT``."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """Blocking ``PATCH``."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """Blocking ``DELETE``."""
        return self.request("DELETE", path, **kwargs)
