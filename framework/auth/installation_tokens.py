"""Installation access tokens: minted on demand, cached until shortly before they expire.

One cache entry per installation and scope (a token narrowed to some repositories or
permissions is a different token). Concurrent requests for a token that is not cached share
one mint: twenty handlers starting at once for a new installation cause one
``POST /app/installations/{id}/access_tokens``, not twenty.

The minting itself is a function given to :class:`InstallationTokens`, so this module does no
I/O and is tested without a server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from framework.common.single_flight import SingleFlight
from framework.errors import AuthenticationError
from framework.observe import hooks

REFRESH_MARGIN_SECONDS = 300.0  # a handler that starts now gets a token good for 5 more minutes


@dataclass(frozen=True)
class TokenScope:
    """What a token is narrowed to; the default (all empty) is the installation's full access.

    >>> TokenScope.of(repositories=["hello"], permissions={"issues": "write"}).body()
    {'repositories': ['hello'], 'permissions': {'issues': 'write'}}
    """

    repositories: tuple[str, ...] = ()
    repository_ids: tuple[int, ...] = ()
    permissions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls,
        repositories: Iterable[str] | None = None,
        repository_ids: Iterable[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> TokenScope:
        """A scope from plain arguments, normalized so equal scopes share a cache entry."""
        return cls(
            tuple(sorted(set(repositories or ()))),
            tuple(sorted(set(repository_ids or ()))),
            tuple(sorted((permissions or {}).items())),
        )

    def body(self) -> dict[str, Any]:
        """The JSON body of the access-token request for this scope."""
        body: dict[str, Any] = {}
        if self.repositories:
            body["repositories"] = list(self.repositories)
        if self.repository_ids:
            body["repository_ids"] = list(self.repository_ids)
        if self.permissions:
            body["permissions"] = dict(self.permissions)
        return body


FULL_ACCESS = TokenScope()


def parse_expires_at(value: str) -> datetime:
    """Parse ``expires_at`` as GitHub (``...Z``) and AtomGit (``...758+08:00``) send it."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise AuthenticationError(f"access token expires_at {value!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise AuthenticationError(f"access token expires_at {value!r} has no time zone")
    return parsed


@dataclass(frozen=True)
class AccessToken:
    """An installation access token. Its ``repr`` never shows the token itself."""

    token: str = field(repr=False)
    expires_at: datetime
    permissions: Mapping[str, str] = field(default_factory=dict)
    repository_selection: str | None = None

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> AccessToken:
        """Read the JSON answer of ``POST /app/installations/{id}/access_tokens``."""
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise AuthenticationError("the access-token response has no token")
        return cls(
            token=token,
            expires_at=parse_expires_at(data.get("expires_at", "")),
            permissions=dict(data.get("permissions") or {}),
            repository_selection=data.get("repository_selection"),
        )

    def fresh(self, now: float, margin: float = REFRESH_MARGIN_SECONDS) -> bool:
        """Whether the token is good for at least ``margin`` more seconds at ``now``."""
        return self.expires_at.timestamp() - margin > now


Mint = Callable[[int, TokenScope], Awaitable[AccessToken]]


class SharedTokens(Protocol):
    """A token cache shared between processes (see :mod:`framework.auth.token_cache`)."""

    async def get_or_mint(
        self,
        installation_id: int,
        scope: TokenScope,
        mint: Callable[[], Awaitable[AccessToken]],
        margin: float,
    ) -> AccessToken: ...

    async def discard(
        self, installation_id: int, scope: TokenScope, token: AccessToken
    ) -> None: ...

    async def forget_installation(self, installation_id: int) -> None: ...


class InstallationTokens:
    """The process's cache of installation tokens, with single-flight minting.

    >>> tokens = InstallationTokens(mint)  # doctest: +SKIP
    >>> token = await tokens.get(42)  # doctest: +SKIP
    """

    def __init__(
        self,
        mint: Mint,
        *,
        margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mint = mint
        self._margin = margin
        self._clock = clock
        self._cache: dict[tuple[int, TokenScope], AccessToken] = {}
        self._minting: SingleFlight[tuple[int, TokenScope], AccessToken] = SingleFlight()
        self.shared: SharedTokens | None = None
        """Set with ``REDIS_URL``: other processes' and replicas' tokens, minted once for all."""

    async def get(self, installation_id: int, scope: TokenScope = FULL_ACCESS) -> AccessToken:
        """A token for the installation that is good for a while yet, minting one if needed."""
        key = (installation_id, scope)
        cached = self._cache.get(key)
        if cached is not None and cached.fresh(self._clock(), self._margin):
            hooks.token_reused()
            return cached
        return await self._minting.run(key, partial(self._mint_and_store, key))

    async def _mint_and_store(self, key: tuple[int, TokenScope]) -> AccessToken:
        minted: list[AccessToken] = []

        async def mint() -> AccessToken:
            minted.append(await self._mint(*key))
            return minted[-1]

        if self.shared is None:
            token = await mint()
        else:  # another process or replica may have minted it already
            token = await self.shared.get_or_mint(*key, mint, self._margin)
        hooks.token_obtained(token.token, minted=bool(minted))
        if token.expires_at.timestamp() <= self._clock():
            # Never present a token known to be expired: the platform would refuse it, and a
            # token that expires as it is minted says this machine's clock is wrong.
            raise AuthenticationError(
                f"the access token minted for installation {key[0]} expired at "
                f"{token.expires_at.isoformat()}, before it could be used: is this machine's "
                "clock right?"
            )
        self._cache[key] = token
        return token

    def invalidate(
        self, installation_id: int, token: AccessToken, scope: TokenScope = FULL_ACCESS
    ) -> None:
        """Drop ``token`` (GitHub refused it) unless a newer one has replaced it already."""
        key = (installation_id, scope)
        if self._cache.get(key) == token:
            del self._cache[key]

    async def replace(
        self, installation_id: int, token: AccessToken, scope: TokenScope = FULL_ACCESS
    ) -> AccessToken:
        """GitHub refused ``token``: drop it here and in the shared cache; get another."""
        self.invalidate(installation_id, token, scope)
        if self.shared is not None:
            await self.shared.discard(installation_id, scope, token)
        return await self.get(installation_id, scope)

    def forget_installation(self, installation_id: int) -> None:
        """Drop every cached token of an installation (it was deleted or suspended)."""
        for key in [k for k in self._cache if k[0] == installation_id]:
            del self._cache[key]

    async def forget_installation_everywhere(self, installation_id: int) -> None:
        """Drop the installation's tokens here and in the shared cache."""
        self.forget_installation(installation_id)
        if self.shared is not None:
            await self.shared.forget_installation(installation_id)
