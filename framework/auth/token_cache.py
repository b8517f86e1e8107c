"""Installation tokens shared by every process and replica of a bot, in Redis (``REDIS_URL``).

One mint per installation across all replicas: a process that needs a token reads Redis
first; if none is cached, it takes a short lock and mints, while the others wait for the
token to appear (single-flight across processes). Tokens are stored sealed
(:mod:`framework.auth.sealing`, with a key derived from the app's private key, which every
replica has and Redis never sees), so a copy of the Redis data is no copy of the tokens.
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

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def cache_key(secret_material: bytes) -> Sealer:
    """The sealer of cached tokens, its key derived from material only the app holds."""
    return Sealer([derived_fernet(secret_material, b"framework token cache")])


class RedisTokenCache:
    """The shared half of :class:`~framework.auth.installation_tokens.InstallationTokens`."""

    def __init__(
        self,
        client: Any,
        sealer: Sealer,
        *,
        prefix: str = "framework",
        platform: str = "github",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._sealer = sealer
        # GitHub's keys as before; another platform's installation 42 is another installation.
        kind = "token" if platform == "github" else f"{platform}:token"
        self._prefix = f"{{{prefix}}}:{kind}:"
        self._clock = clock
        self._unlock = client.register_script(_UNLOCK)

    def _name(self, installation_id: int, scope: TokenScope) -> str:
        if scope == TokenScope():
            return f"{self._prefix}{installation_id}"
        body = json.dumps(scope.body(), sort_keys=True).encode()
        return f"{self._prefix}{installation_id}:{hashlib.sha256(body).hexdigest()[:16]}"

    async def _read(self, name: str) -> AccessToken | None:
        raw = await self._redis.get(name)
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
        ttl = token.expires_at.timestamp() - margin - self._clock()
        if ttl < 1:
            return
        data = json.dumps(
            {
                "token": token.token,
                "expires_at": token.expires_at.isoformat(),
                "permissions": dict(token.permissions),
                "repository_selection": token.repository_selection,
            }
        ).encode()
        await self._redis.set(name, self._sealer.seal(data), px=int(ttl * 1000))

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
        try:
            for _ in range(int(wait / POLL_SECONDS) + 1):
                cached = await self._read(name)
                if cached is not None and cached.fresh(self._clock(), margin):
                    return cached
                if await self._redis.set(lock, owner, nx=True, px=int(LOCK_SECONDS * 1000)):
                    try:
                        cached = await self._read(name)  # minted while we took the lock?
                        if cached is not None and cached.fresh(self._clock(), margin):
                            return cached
                        token = await mint()
                        await self._write(name, token, margin)
                        return token
                    finally:
                        await self._unlock(keys=[lock], args=[owner])
                await asyncio.sleep(POLL_SECONDS)
        except RedisError as exc:
            logger.warning("the shared token cache is unreachable (%s); minting here", exc)
            return await mint()
        logger.warning("no token appeared in the shared cache within %.0f s; minting here", wait)
        return await mint()

    async def discard(self, installation_id: int, scope: TokenScope, token: AccessToken) -> None:
        """Drop ``token`` from the shared cache if it is still the one there (GitHub refused it)."""
        name = self._name(installation_id, scope)
        try:
            cached = await self._read(name)
            if cached is not None and cached.token == token.token:
                await self._redis.delete(name)
        except RedisError as exc:
            logger.warning("could not drop a refused token from the shared cache: %s", exc)

    async def forget_installation(self, installation_id: int) -> None:
        """Drop every shared token of an installation (deleted or suspended)."""
        try:
            full = f"{self._prefix}{installation_id}"
            names = [full] + [key async for key in self._redis.scan_iter(match=f"{full}:*")]
            if names:
                await self._redis.delete(*names)
        except RedisError as exc:
            logger.warning("could not drop the installation's shared tokens: %s", exc)
