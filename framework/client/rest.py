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
import copy
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import httpx

from framework.auth.app_jwt import AppJWT
from framework.auth.installation_tokens import (
    FULL_ACCESS,
    AccessToken,
    InstallationTokens,
    TokenScope,
)
from framework.client.lean import LeanPool, join_url
from framework.client.limits import ClientShared, RateLimit
from framework.client.responses import (
    decide,
    error_from_response,
    page_items,
    safe_to_repeat,
)
from framework.common.backoff import backoff
from framework.common.network import describe_network_error
from framework.errors import (
    GraphQLError,
    NetworkError,
    RateLimited,
)
from framework.observe import hooks

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: GitHub's REST API sets no cookie a bot needs, and
    reading ``Set-Cookie`` through ``http.cookiejar`` cost about a tenth of a request's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def new_http_client(
    base_url: str, headers: Mapping[str, str], user_agent: str
) -> httpx.AsyncClient:
    """A connection pool for one platform's API, with its default headers.

    httpx's API over aiohttp's connection pool: httpx's own transport cost 1 to 1.7 ms of CPU
    per request here (more as concurrency rose), aiohttp's about 0.4 ms.
    """
    from httpx_aiohttp import HttpxAiohttpClient  # aiohttp: ~10 MiB, only once a pool is made

    client = HttpxAiohttpClient(
        base_url=base_url,
        headers={**headers, "User-Agent": user_agent},
        timeout=httpx.Timeout(30.0, connect=10.0),
        # GitHub allows at most 100 concurrent requests; stay below it.
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
    client._cookies = _NoCookies()  # httpx's setter would copy it into a plain Cookies
    LeanPool.enable(client)
    return client


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Credential:
    """What a request is authorized with: its ``Authorization`` header and, for an
    installation, the access token in it (to replace if GitHub refuses it)."""

    authorization: str = field(repr=False)
    token: AccessToken | None = field(default=None, repr=False)


class CredentialAuth(httpx.Auth):
    """An auth that is one ``Authorization`` header, renewed at most once after a 401.

    The client's lean path asks for the header itself (:meth:`credential`, :meth:`renewed`)
    instead of running httpx's auth flow; as an ``httpx.Auth`` it behaves the same.
    """

    async def credential(self) -> Credential:
        """The credential to send the next request with."""
        raise NotImplementedError

    async def renewed(self, refused: Credential) -> Credential | None:
        """GitHub answered 401 to ``refused``: the credential to send the request once more
        with, or None to let the 401 stand."""
        return None

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError(f"{type(self).__name__} is async; from a plain function use .sync")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credential = await self.credential()
        request.headers["Authorization"] = credential.authorization
        response = yield request
        if response.status_code == 401:
            renewed = await self.renewed(credential)
            if renewed is not None:
                request.headers["Authorization"] = renewed.authorization
                yield request


class AppAuth(CredentialAuth):
    """Authenticates as the app itself with its JWT (for ``/app/...`` endpoints)."""

    def __init__(self, jwt: AppJWT) -> None:
        self._jwt = jwt

    async def credential(self) -> Credential:
        """``Bearer`` and the app's JWT."""
        return Credential(self._authorization())

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._authorization()  # a plain httpx.Client's
        yield request

    def _authorization(self) -> str:
        return f"Bearer {self._jwt.token()}"


class InstallationAuth(CredentialAuth):
    """Authenticates as an installation with a cached access token.

    A 401 means GitHub no longer accepts the token (revoked, or expired early): the token is
    dropped and the request sent once more with a fresh one.
    """

    def __init__(
        self,
        tokens: InstallationTokens,
        installation_id: int,
        scope: TokenScope = FULL_ACCESS,
        *,
        scheme: str = "token",
    ) -> None:
        self.tokens = tokens
        self.installation_id = installation_id
        self.scope = scope
        self.scheme = scheme
        """``token`` for GitHub, ``Bearer`` for AtomGit's ``ats_`` tokens."""

    async def credential(self) -> Credential:
        """The installation's cached token (minted if needed)."""
        token = await self.tokens.get(self.installation_id, self.scope)
        return Credential(f"{self.scheme} {token.token}", token)

    async def renewed(self, refused: Credential) -> Credential | None:
        """The refused token dropped (here and in the shared cache); a fresh one."""
        if refused.token is None:
            return None
        token = await self.tokens.replace(self.installation_id, refused.token, self.scope)
        return Credential(f"{self.scheme} {token.token}", token)


class GitHubClient:
    """An authenticated REST client. Errors (status >= 400) raise typed
    :class:`~framework.errors.GitHubAPIError` subclasses.

    Paths are relative to ``GITHUB_API_URL``; the answer is an ``httpx.Response``. Network
    errors and 500/502/503/504 are retried with backoff where that is safe
    (:func:`safe_to_repeat`, or ``idempotent=True``); rate limits are waited out per
    installation (up to ``GITHUB_MAX_RATE_LIMIT_WAIT_SECONDS``, then :class:`RateLimited`);
    GET responses are revalidated with their ETag. What the pool, the auth and the arguments
    allow goes the lean path (:mod:`framework.client.lean`), the rest through httpx; the
    answer is the same.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: httpx.Auth,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        shared: ClientShared | None = None,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.http = http
        self.auth = auth
        self.shared = shared or ClientShared()
        self.log = log or logger
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop

    def bound(
        self,
        loop: asyncio.AbstractEventLoop,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> Self:
        """This client, bound to ``loop`` (for :attr:`sync`) and logging to ``log``."""
        clone = copy.copy(self)
        clone._loop = loop
        clone.log = log
        return clone

    @property
    def installation_id(self) -> int | None:
        """The installation this client acts for; None for the app's own client."""
        return self.auth.installation_id if isinstance(self.auth, InstallationAuth) else None

    @property
    def _key(self) -> str:
        """Whose limits apply: the installation's, a user's (an auth with a ``rate_key``), or
        the app's."""
        installation = self.installation_id
        if installation is not None:
            return f"installation:{installation}"
        rate_key = getattr(self.auth, "rate_key", None)
        return rate_key if isinstance(rate_key, str) else "app"

    @property
    def rate_limit(self) -> RateLimit | None:
        """The installation's REST budget as of its last response (None before any)."""
        return self.shared.state(self._key).rate_limit

    def scoped(
        self,
        *,
        repositories: Iterable[str] | None = None,
        repository_ids: Iterable[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> GitHubClient:
        """This installation's client with a token narrowed to some repositories (names
        without the owner, or ids) and permissions; its rate limits are the installation's.

        >>> readonly = ctx.github.scoped(repositories=["hello"], permissions={"issues": "read"})
        ...  # doctest: +SKIP
        """
        if not isinstance(self.auth, InstallationAuth):
            raise TypeError("only an installation client can be scoped")
        scope = TokenScope.of(repositories, repository_ids, permissions)
        auth = InstallationAuth(
            self.auth.tokens, self.auth.installation_id, scope, scheme=self.auth.scheme
        )
        return GitHubClient(self.http, auth, self._loop, shared=self.shared, log=self.log)

    async def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; keyword arguments are httpx's (``json``, ``params``, ``headers``).

        ``idempotent=True`` allows retrying a POST the client does not know to be safe to
        repeat; ``False`` forbids retrying anything that may have reached GitHub.
        """
        method = method.upper()
        policy, state = self.shared.policy, self.shared.state(self._key)
        repeatable = safe_to_repeat(method, path) if idempotent is None else idempotent
        cache_key = self._cache_key(method, path, kwargs)
        points = 1 if method in ("GET", "HEAD", "OPTIONS") else 5
        failures = 0
        for _ in range(policy.max_retries + 20):  # bounded: retries and rate-limit waits
            blocked = state.blocked_for()
            if blocked > policy.max_rate_limit_wait:  # an earlier answer said: not for a while
                raise RateLimited(
                    method, path, 429 if state.blocked_secondary else 403,
                    "this installation is rate limited (an earlier response said so)", None,
                    blocked, reset_at=state.blocked_until, secondary=state.blocked_secondary,
                )  # fmt: skip
            await state.ready(points)
            if cache_key is not None:
                kwargs["headers"] = self._conditional(cache_key, kwargs.get("headers"))
            try:
                async with state.slots:
                    started = time.time_ns()
                    response = await self._send(method, path, kwargs)
            except httpx.TransportError as exc:
                hooks.api_called(method, path, None, started, None)
                failures += 1
                cause = describe_network_error(exc)  # a failed DNS lookup says so
                if failures > policy.max_retries or not (repeatable or isinstance(exc, _NOT_SENT)):
                    raise NetworkError(
                        f"{method} {path}: GitHub could not be reached ({cause}) after "
                        f"{failures} attempt(s)"
                    ) from None
                await self._back_off(method, path, failures, cause)
                continue
            budget = state.observe(response)
            remaining = None if budget is None else budget.remaining
            hooks.api_called(method, path, response.status_code, started, remaining)
            if response.status_code == 304 and cache_key is not None:
                return self.shared.etags.revalidated(cache_key, response)
            if response.status_code < 400:
                if cache_key is not None:
                    self.shared.etags.keep(cache_key, response)
                return response
            read_error = self.shared.read_error or error_from_response
            error = read_error(response, self.shared.clock())
            secondary = isinstance(error, RateLimited) and error.secondary
            if secondary and "retry-after" not in response.headers:
                # 60 s, doubling while they keep coming: this installation's count.
                error = read_error(
                    response, self.shared.clock(), secondary_wait=state.secondary_wait()
                )
            decision = decide(
                response.status_code,
                error,
                repeatable=repeatable,
                failures=failures,
                max_retries=policy.max_retries,
                max_rate_limit_wait=policy.max_rate_limit_wait,
            )
            if isinstance(error, RateLimited):  # every request of the installation waits
                state.block(error.retry_after or 0.0, secondary=secondary)
            if decision.action == "wait":
                self.log.warning(
                    "%s %s: %s; waiting %.0f s (this installation only)",
                    method, path, "secondary rate limit" if secondary else "rate limited",
                    decision.seconds,
                )  # fmt: skip
                continue
            if decision.action == "retry":
                failures += 1
                await self._back_off(method, path, failures, str(response.status_code))
                continue
            raise error
        raise NetworkError(f"{method} {path}: gave up after too many attempts")

    async def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        """One request, and its resend with a renewed credential after a 401; read.

        The lean path (:mod:`framework.client.lean`) where the pool, the auth and the
        arguments allow it; httpx's own otherwise (another auth, ``data=``, ``timeout=``...).
        """
        auth = self.auth
        pool = LeanPool.of(self.http)
        lean = pool.prepare(method, path, kwargs) if pool is not None else None
        if lean is None or not isinstance(auth, CredentialAuth):
            return await self.http.request(method, path, auth=auth, **kwargs)
        credential = await auth.credential()
        response = await lean.send(credential.authorization)
        if response.status_code == 401:
            renewed = await auth.renewed(credential)
            if renewed is not None:
                response = await lean.send(renewed.authorization)
        return response

    def _cache_key(self, method: str, path: str, kwargs: dict[str, Any]) -> tuple[str, str] | None:
        if method != "GET" or self.shared.etags.entries <= 0:
            return None
        headers = kwargs.get("headers") or {}
        if any(k.lower() in ("if-none-match", "if-modified-since") for k in headers):
            return None  # the caller revalidates for itself
        # The base URL is the same for all. A plain path is its own key (no URL to parse);
        # otherwise the URL as httpx builds it (with params, they replace the path's query).
        params = kwargs.get("params")
        url = join_url("/", path, params) or str(
            httpx.URL(path) if params is None else httpx.URL(path, params=params)
        )
        scope = getattr(self.auth, "scope", None)
        return (f"{self._key}:{scope!r}", url)

    def _conditional(self, key: tuple[str, str], headers: Any) -> dict[str, str]:
        merged = dict(headers or {})
        etag = self.shared.etags.etag(key)
        if etag is not None:
            merged["If-None-Match"] = etag
        return merged

    async def _back_off(self, method: str, path: str, failures: int, why: str) -> None:
        policy = self.shared.policy
        delay = backoff(failures, base=policy.backoff, cap=policy.backoff_max)
        self.log.warning(
            "%s %s failed (%s); retry %d of %d in %.2f s",
            method, path, why, failures, policy.max_retries, delay,
        )  # fmt: skip
        await self.shared.sleep(delay)

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

    async def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit: int | None = None,
        max_pages: int = 1000,
    ) -> AsyncIterator[Any]:
        """Every item of a list endpoint, page after page (``Link: rel="next"``).

        Lists wrapped in an object (search's ``items``, ``repositories``, ``check_runs``...)
        are unwrapped. ``limit`` stops after that many items; ``max_pages`` bounds the walk.

        >>> async for issue in ctx.github.paginate("/repos/o/r/issues", params={"state": "all"}):
        ...     print(issue["number"])  # doctest: +SKIP
        """
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        url = path
        yielded = 0
        for _ in range(max_pages):
            response = await self.get(url, params=query)
            for item in page_items(response.json(), path):
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            if httpx.URL(following).host != self.http.base_url.host:
                raise NetworkError(f"GET {path}: the next page is on another host; not followed")
            url, query = following, None  # the link carries the query
        raise NetworkError(f"GET {path}: more than {max_pages} pages; pass a larger max_pages")

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """Run a GraphQL query (or mutation) as this client; return its ``data``.

        Errors GitHub reports in the answer raise :class:`~framework.errors.GraphQLError`.

        >>> data = await ctx.github.graphql("query($id: ID!) { node(id: $id) { id } }", id=x)
        ...  # doctest: +SKIP
        """
        base = self.http.base_url
        endpoint = "/api/graphql" if base.path.rstrip("/").endswith("/api/v3") else "/graphql"
        url = base.copy_with(path=endpoint) if endpoint == "/api/graphql" else endpoint
        is_query = not query.lstrip().startswith("mutation")
        response = await self.request(
            "POST", str(url), json={"query": query, "variables": variables}, idempotent=is_query
        )
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            raise GraphQLError(_operation(query), list(errors), body.get("data"))
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    @property
    def sync(self) -> BlockingClient:
        """The same client for plain (non-async) handlers, which run in a worker thread."""
        if self._loop is None:
            raise RuntimeError("this client was created outside an event loop")
        return BlockingClient(self, self._loop)


def _operation(query: str) -> str:
    match = re.match(r"\s*(query|mutation|subscription)\s+(\w+)", query)
    return match.group(2) if match else "query"


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
