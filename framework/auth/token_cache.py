"""Installation tokens shared by every process and replica of a bot: one mint per installation.

A process that needs a token reads the shared store first; if none is cached, it takes a short
lock and mints, while the others wait for the token to appear (single-flight across
processes, the wait bounded). Tokens are stored sealed (:mod:`framework.auth.sealing`, with a
key derived from the app's private key, which every process has and the store never sees), so
a copy of the store is no copy of the tokens.

Two stores: Redis (:class:`RedisTokenCache`, with ``REDIS_URL``: every replica) and a small
SQLite file beside the journal (:class:`~framework.auth.sqlite_token_cache.SQLiteTokenCache`:
the handler processes of one bot, ``HANDLER_PROCESSES`` > 1).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from framework.auth.installation_tokens import AccessToken, TokenScope
from framework.auth.sealing import Sealer, Unsealable, derived_fernet

logger = logging.getLogger("framework.auth.token_cache")

LOCK_SECONDS = 30.0  # a minting process that dies frees the lock after this
POLL_SECONDS = 0.05
STORE_RETRIES = 3  # failures of the store in a row before a process mints on its own

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def cache_key(secret_material: bytes) -> Sealer:
    """The sealer of cached tokens, its key derived from material only the app holds."""
    return Sealer([derived_fernet(secret_material, b"framework token cache")])


def token_name(prefix: str, installation_id: int, scope: TokenScope) -> str:
    """A token's name in a shared store: the installation's, and a digest of a narrower scope.

    >>> token_name("t:", 42, TokenScope())
    't:42'
    >>> token_name("t:", 42, TokenScope.of(repositories=["hello"]))
    't:42:ea079e145bbf8c01'
    """
    if scope == TokenScope():
        return f"{prefix}{installation_id}"
    body = json.dumps(scope.body(), sort_keys=True).encode()
    return f"{prefix}{installation_id}:{hashlib.sha256(body).hexdigest()[:16]}"


class SharedTokenCache:
    """The shared half of :class:`~framework.auth.installation_tokens.InstallationTokens`,
    over a store's few operations (a subclass's ``_load``, ``_store``, ``_lock``,
    ``_unlock``, ``_delete`` and ``_forget``; ``_failures``: the store's own errors)."""

    _failures: tuple[type[Exception], ...] = ()

    def __init__(
        self,
        sealer: Sealer,
        *,
        platform: str = "github",
        prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sealer = sealer
        # GitHub's names as before; another platform's installation 42 is another installation.
        kind = "token" if platform == "github" else f"{platform}:token"
        self._prefix = f"{prefix}{kind}:"
        self._clock = clock

    async def _load(self, name: str) -> bytes | None:
        raise NotImplementedError

    async def _store(self, name: str, sealed: bytes, until: float) -> None:
        raise NotImplementedError

    async def _lock(self, name: str, owner: str, seconds: float) -> bool:
        raise NotImplementedError

    async def _unlock(self, name: str, owner: str) -> None:
        raise NotImplementedError

    async def _delete(self, name: str) -> None:
        raise NotImplementedError

    async def _forget(self, name: str) -> None:
        """Delete ``name`` and every narrower token under it."""
        raise NotImplementedError

    def _name(self, installation_id: int, scope: TokenScope) -> str:
        return token_name(self._prefix, installation_id, scope)

    async def _read(self, name: str) -> AccessToken | None:
        raw = await self._load(name)
        if raw is None:
            return None
        try:
            data = json.loads(self._sealer.open(raw))
        except (Unsealable, ValueError):
            return None  # written with another key (the app's key was rotated): mint anew
        return AccessToken(
            data["token"],
            datetime.fromisoformat(data["expires_at"]),
            data.get("permissions") or {},
            data.get("repository_selection"),
        )

    async def _write(self, name: str, token: AccessToken, margin: float) -> None:
        until = token.expires_at.timestamp() - margin
        if until - self._clock() < 1:
            return
        data = json.dumps(
            {
                "token": token.token,
                "expires_at": token.expires_at.isoformat(),
                "permissions": dict(token.permissions),
                "repository_selection": token.repository_selection,
            }
        ).encode()
        await self._store(name, self._sealer.seal(data), until)

    async def get_or_mint(
        self,
        installation_id: int,
        scope: TokenScope,
        mint: Callable[[], Awaitable[AccessToken]],
        margin: float,
        wait: float = LOCK_SECONDS,
    ) -> AccessToken:
        """The shared token, or one minted by whichever process takes the lock first."""
        name = self._name(installation_id, scope)
        lock = name + ":minting"
        owner = secrets.token_hex(8)
        minted: AccessToken | None = None
        failures = 0
        for _ in range(int(wait / POLL_SECONDS) + 1):
            try:
                cached = await self._read(name)
                if cached is not None and cached.fresh(self._clock(), margin):
                    return cached
                if await self._lock(lock, owner, LOCK_SECONDS):
                    try:
                        cached = await self._read(name)  # minted while we took the lock?
                        if cached is not None and cached.fresh(self._clock(), margin):
                            return cached
                        minted = await mint()
                        await self._write(name, minted, margin)
                        return minted
                    finally:
                        await self._unlock(lock, owner)
            except self._failures as exc:
                if minted is not None:  # minted, and only the sharing failed: keep it
                    logger.warning("could not share a minted token (%s)", exc)
                    return minted
                failures += 1
                if failures > STORE_RETRIES:
                    logger.warning("the shared token cache is unusable (%s); minting here", exc)
                    return await mint()
                # A store busy for a moment (processes opening the file at once) is no reason
                # for a second mint: ask again shortly.
            await asyncio.sleep(POLL_SECONDS)
        logger.warning("no token appeared in the shared cache within %.0f s; minting here", wait)
        return await mint()

    async def discard(self, installation_id: int, scope: TokenScope, token: AccessToken) -> None:
        """Drop ``token`` from the shared cache if it is still the one there (GitHub refused it)."""
        name = self._name(installation_id, scope)
        try:
            cached = await self._read(name)
            if cached is not None and cached.token == token.token:
                await self._delete(name)
        except self._failures as exc:
            logger.warning("could not drop a refused token from the shared cache: %s", exc)

    async def forget_installation(self, installation_id: int) -> None:
        """Drop every shared token of an installation (deleted or suspended)."""
        try:
            await self._forget(f"{self._prefix}{installation_id}")
        except self._failures as exc:
            logger.warning("could not drop the installation's shared tokens: %s", exc)


class RedisTokenCache(SharedTokenCache):
    """Tokens shared through Redis (``REDIS_URL``): one mint per installation for every replica."""

    _failures = (RedisError,)

    def __init__(
        self,
        client: Any,
        sealer: Sealer,
        *,
        prefix: str = "framework",
        platform: str = "github",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(sealer, platform=platform, prefix=f"{{{prefix}}}:", clock=clock)
        self._redis = client
        self._unlock_script = client.register_script(_UNLOCK)

    async def _load(self, name: str) -> bytes | None:
        raw: bytes | None = await self._redis.get(name)
        return raw

    async def _store(self, name: str, sealed: bytes, until: float) -> None:
        await self._redis.set(name, sealed, px=int((until - self._clock()) * 1000))

    async def _lock(self, name: str, owner: str, seconds: float) -> bool:
        return bool(await self._redis.set(name, owner, nx=True, px=int(seconds * 1000)))

    async def _unlock(self, name: str, owner: str) -> None:
        await self._unlock_script(keys=[name], args=[owner])

    async def _delete(self, name: str) -> None:
        await self._redis.delete(name)

    async def _forget(self, name: str) -> None:
        names = [name] + [key async for key in self._redis.scan_iter(match=f"{name}:*")]
        await self._redis.delete(*names)
