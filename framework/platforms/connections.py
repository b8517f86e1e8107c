"""A platform as the bot is connected to it: its connection pool, credentials and clients.

- :class:`AppConnection`, for GitHub-shaped apps (GitHub, AtomGit): the app's JWT, installation
  tokens minted once per installation (single-flight, and across replicas through Redis), a
  client per installation;
- :class:`AccountConnection`, for platforms where the bot acts as one account (CODING's
  personal token, TAPD's API user or token): one client for every delivery.

Each platform has its own pool, rate-limit state and token cache: installation ids of two
platforms are different installations even when the numbers are equal.

>>> conn = AppConnection(GITHUB, AppCredentials("12345", key_text=None, key_path=None),
...     ConnectionOptions(api_url="https://api.github.com"))  # doctest: +SKIP
>>> client = conn.installation_client(42)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from framework.auth.app_jwt import AppJWT
from framework.auth.installation_tokens import AccessToken, InstallationTokens, TokenScope
from framework.auth.private_key import load_private_key
from framework.client.limits import ClientPolicy, ClientShared
from framework.client.rest import (
    AppAuth,
    Credential,
    CredentialAuth,
    GitHubClient,
    InstallationAuth,
    new_http_client,
)
from framework.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    NoInstallation,
    NotFound,
)
from framework.platforms.atomgit import ATOMGIT
from framework.platforms.base import Platform
from framework.platforms.coding import CODING, CodingClient
from framework.platforms.github import GITHUB, repository_full_name, revokes_tokens
from framework.platforms.tapd import TAPD, TapdClient
from framework.settings import Settings
from framework.webhooks.delivery import Delivery

logger = logging.getLogger("framework.platforms")

INSTALLATION_LOOKUP_SECONDS = 300.0
"""How long a repository's installation, looked up for a delivery that names none, is kept."""


@dataclass(frozen=True)
class ConnectionOptions:
    """Where and how a platform's API is called."""

    api_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    user_agent: str = "framework"
    policy: ClientPolicy = field(default_factory=ClientPolicy)


class Connection(Protocol):
    """What the App and the context need from any platform's connection."""

    platform: Platform

    def client_for(self, delivery: Delivery) -> GitHubClient:
        """The client a handler of ``delivery`` acts with (``ctx.client``)."""
        ...

    async def prepare(self, delivery: Delivery) -> None:
        """Before the handlers of ``delivery`` run: whatever their client needs looked up."""
        ...

    async def close(self) -> None:
        """Close the connection pool."""
        ...


class _Pooled:
    """A platform's connection pool, built on first use and again after :meth:`close`."""

    platform: Platform
    options: ConnectionOptions
    _http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The connection pool every client of this platform shares."""
        if self._http is None or self._http.is_closed:
            headers = {**self.platform.api_headers, **self.options.headers}
            self._http = new_http_client(self.options.api_url, headers, self.options.user_agent)
        return self._http

    async def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()


@dataclass(frozen=True)
class AppCredentials:
    """A GitHub-shaped app's identity: its JWT issuer and private key (text or file)."""

    issuer: str | None
    key_text: str | None = field(default=None, repr=False)
    key_path: Path | None = None
    setting: str = "APP_ID"
    """The setting that names the app, for messages (``APP_ID``, ``ATOMGIT_APP_ID``)."""
    key_setting: str = "PRIVATE_KEY"


class AppConnection(_Pooled):
    """A GitHub-shaped app: JWT → installation tokens → clients (GitHub, AtomGit)."""

    def __init__(
        self,
        platform: Platform,
        credentials: AppCredentials,
        options: ConnectionOptions,
        *,
        token_scheme: str = "token",
    ) -> None:
        self.platform = platform
        self.credentials = credentials
        self.options = options
        self.token_scheme = token_scheme
        self.tokens = InstallationTokens(self._mint_token)
        self.shared = ClientShared(options.policy, read_error=platform.error_from_response)
        self._jwt: AppJWT | None = None
        self._repo_installations: dict[str, tuple[int, float]] = {}

    @property
    def jwt(self) -> AppJWT:
        """The app's JWT signer, built on first use (a bad key fails here, clearly)."""
        if self._jwt is None:
            c = self.credentials
            if not c.issuer:
                raise ConfigurationError(f"{c.setting} is not set: the app cannot authenticate")
            key_path = c.key_path
            self._jwt = AppJWT(c.issuer, load_private_key(c.key_text, key_path, c.key_setting))
        return self._jwt

    @property
    def app_client(self) -> GitHubClient:
        """A client authenticated as the app itself (JWT), for ``/app/...`` endpoints."""
        return GitHubClient(self.http, AppAuth(self.jwt), shared=self.shared)

    def installation_client(
        self,
        installation_id: int,
        *,
        repositories: Iterable[str] | None = None,
        repository_ids: Iterable[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> GitHubClient:
        """A client acting as an installation (narrowed to a scope, if one is given)."""
        scope = TokenScope.of(repositories, repository_ids, permissions)
        auth = InstallationAuth(self.tokens, installation_id, scope, scheme=self.token_scheme)
        return GitHubClient(self.http, auth, shared=self.shared)

    def client_for(self, delivery: Delivery) -> GitHubClient:
        """The installation client of the delivery."""
        if delivery.installation_id is None:
            raise NoInstallation(
                f"the {delivery.key} event was not sent for an installation, so there is no "
                "installation client; use ctx.app.github for app-level calls"
            )
        return self.installation_client(delivery.installation_id)

    async def prepare(self, delivery: Delivery) -> None:
        """Drop the tokens of a revoked installation; find the installation of a delivery that
        names none (AtomGit's GitLab-shaped deliveries) from its repository."""
        if delivery.installation_id is not None:
            if revokes_tokens(delivery):
                await self.tokens.forget_installation_everywhere(delivery.installation_id)
            return
        try:
            full_name = repository_full_name(delivery.payload)
        except ValueError:
            return  # an app-level event: handlers use the app's client
        delivery.installation_id = await self.installation_id(repo=full_name)

    async def installation_id(
        self, *, repo: str | None = None, org: str | None = None, user: str | None = None
    ) -> int:
        """The id of the app's installation on a repository (``owner/name``), org or user."""
        given = [(k, v) for k, v in (("repo", repo), ("org", org), ("user", user)) if v]
        if len(given) != 1:
            raise ValueError("name exactly one of repo=, org= or user=")
        kind, value = given[0]
        key = f"{kind}:{value.lower()}"
        kept = self._repo_installations.get(key)
        if kept is not None and kept[1] > time.monotonic():
            return kept[0]
        path = {"repo": "/repos/{}/installation", "org": "/orgs/{}/installation"}.get(
            kind, "/users/{}/installation"
        )
        try:
            response = await self.app_client.get(path.format(value))
        except NotFound:
            raise NoInstallation(
                f"the app is not installed on {value} ({self.platform.name})"
            ) from None
        found = int(response.json()["id"])
        self._repo_installations[key] = (found, time.monotonic() + INSTALLATION_LOOKUP_SECONDS)
        return found

    async def _mint_token(self, installation_id: int, scope: TokenScope) -> AccessToken:
        body = scope.body()
        try:
            response = await self.app_client.post(
                f"/app/installations/{installation_id}/access_tokens",
                json=body if body else None,
            )
        except APIError as exc:
            if exc.status == 401:
                c = self.credentials
                raise AuthenticationError(
                    f"{self.platform.name} refused the app's JWT while minting a token for "
                    f"installation {installation_id} ({exc.message}): check {c.setting} and "
                    f"{c.key_setting}"
                ) from None
            raise
        logger.debug(
            "minted an access token for %s installation %s", self.platform.name, installation_id
        )
        return AccessToken.from_response(response.json())

    def share_tokens(self, redis: Any, prefix: str) -> None:
        """Share installation tokens with every process and replica through Redis."""
        from framework.auth.token_cache import RedisTokenCache, cache_key

        self.tokens.shared = RedisTokenCache(
            redis, cache_key(self.jwt.key_material()), prefix=prefix, platform=self.platform.name
        )

    def share_tokens_in_file(self, path: Path) -> None:
        """Share installation tokens with the bot's other handler processes through an SQLite
        file (``HANDLER_PROCESSES`` > 1 without Redis): one mint per installation."""
        from framework.auth.sqlite_token_cache import SQLiteTokenCache
        from framework.auth.token_cache import cache_key

        self.tokens.shared = SQLiteTokenCache(
            path, cache_key(self.jwt.key_material()), platform=self.platform.name
        )


class AccountConnection(_Pooled):
    """A platform where the bot acts as one account: one client for every delivery."""

    def __init__(
        self,
        platform: Platform,
        options: ConnectionOptions,
        auth: httpx.Auth,
        client_class: type[GitHubClient] = GitHubClient,
        **client_attributes: Any,
    ) -> None:
        self.platform = platform
        self.options = options
        self.shared = ClientShared(options.policy, read_error=platform.error_from_response)
        self._auth = auth
        self._client_class = client_class
        self._attributes = client_attributes

    @property
    def client(self) -> GitHubClient:
        """The account's client."""
        client = self._client_class(self.http, self._auth, shared=self.shared)
        for name, value in self._attributes.items():
            setattr(client, name, value)
        return client

    def client_for(self, delivery: Delivery) -> GitHubClient:
        """The account's client: the same for every delivery."""
        return self.client

    async def prepare(self, delivery: Delivery) -> None:
        """Nothing to look up."""


class HeaderAuth(CredentialAuth):
    """Sends one fixed ``Authorization`` header (a personal token, HTTP Basic, a bearer); as a
    :class:`~framework.client.rest.CredentialAuth`, its requests take the client's lean path."""

    def __init__(self, value: str) -> None:
        self._credential = Credential(value)

    async def credential(self) -> Credential:
        return self._credential

    def __repr__(self) -> str:
        return "HeaderAuth(<hidden>)"


def _policy(settings: Settings) -> ClientPolicy:
    s = settings
    return ClientPolicy(
        max_retries=s.github_max_retries,
        backoff=s.github_retry_backoff_seconds,
        max_rate_limit_wait=s.github_max_rate_limit_wait_seconds,
        concurrency=s.github_concurrency_per_installation,
        points_per_minute=s.github_points_per_minute,
        etag_entries=s.github_etag_cache_entries,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def connect(name: str, settings: Settings, user_agent: str, *, author: str = "bot") -> Connection:
    """The connection to platform ``name`` described by ``settings``.

    The client settings (``GITHUB_MAX_RETRIES``...) apply to every platform's client.
    """
    s = settings
    policy = _policy(s)
    if name == "github":
        return AppConnection(
            GITHUB,
            AppCredentials(s.client_id or s.app_id, _secret(s.private_key), s.private_key_path),
            ConnectionOptions(
                s.github_api_url, {"X-GitHub-Api-Version": s.github_api_version}, user_agent, policy
            ),
        )
    if name == "atomgit":
        return AppConnection(
            ATOMGIT,
            AppCredentials(
                s.atomgit_app_id,
                _secret(s.atomgit_private_key),
                s.atomgit_private_key_path,
                setting="ATOMGIT_APP_ID",
                key_setting="ATOMGIT_PRIVATE_KEY",
            ),
            ConnectionOptions(s.atomgit_api_url, {}, user_agent, policy),
            token_scheme="Bearer",
        )
    if name == "coding":
        token = _secret(s.coding_token)
        connection = AccountConnection(
            CODING,
            ConnectionOptions(s.coding_rest_url(), {}, user_agent, policy),
            _required_auth("CODING_TOKEN", f"token {token}" if token else None),
            CodingClient,
            open_api_url=s.coding_open_api_url,
        )
        return connection
    if name == "tapd":
        if s.tapd_api_user is not None and s.tapd_api_password is not None:
            pair = f"{s.tapd_api_user}:{s.tapd_api_password.get_secret_value()}".encode()
            value: str | None = "Basic " + base64.b64encode(pair).decode()
        else:
            token = _secret(s.tapd_token)
            value = f"Bearer {token}" if token else None
        return AccountConnection(
            TAPD,
            ConnectionOptions(s.tapd_api_url, {}, user_agent, policy),
            _required_auth("TAPD_API_USER/TAPD_API_PASSWORD or TAPD_TOKEN", value),
            TapdClient,
            author=s.tapd_author or author,
        )
    raise ValueError(f"no such platform: {name!r}")


def _required_auth(setting: str, value: str | None) -> httpx.Auth:
    if value is None:
        return _Missing(setting)
    return HeaderAuth(value)


class _Missing(httpx.Auth):
    """Credentials that were not configured: a request says which setting to set."""

    def __init__(self, setting: str) -> None:
        self._setting = setting

    def auth_flow(self, request: httpx.Request) -> Any:
        raise ConfigurationError(f"{self._setting} is not set: the bot cannot call this API")
        yield request  # pragma: no cover - makes this a generator, as httpx expects
