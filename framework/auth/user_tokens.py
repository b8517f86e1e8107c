"""Users' tokens, kept sealed and refreshed before they expire.

Where: an SQLite file beside the journal (``USER_TOKENS_PATH``), or Redis with ``REDIS_URL``.
What: per platform and user, the access and refresh tokens, their expiry, the scopes and what
the grant covers, sealed (:mod:`framework.auth.sealing`) with ``TOKEN_ENCRYPTION_KEY``; the
user's id, login and whether they must sign in again stay readable, for ``users list``.

Refresh: a token expiring within :data:`REFRESH_MARGIN_SECONDS` is refreshed on its next use.
One refresh per user at a time, everywhere: in a process through
:class:`~framework.common.single_flight.SingleFlight`, across processes and replicas through a
lock in the store; the others wait and read what it wrote. (GitHub's refresh tokens are single
use: two replicas refreshing at once would leave one holding a dead token, and the user locked
out.) A refresh token that expired or that the platform refuses marks the grant as needing a new
sign-in and raises :class:`~framework.auth.oauth.base.SignInRequired`.

>>> tokens = UserTokens(await open_store(settings), sealer, providers, http)  # doctest: +SKIP
>>> stored = await tokens.current("github", "octocat")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from framework.auth.oauth import flow
from framework.auth.oauth.base import Grant, Identity, OAuthError, Provider, SignInRequired
from framework.auth.sealing import NEW_KEY_COMMAND, Sealer, Unsealable, parse_keys
from framework.common.single_flight import SingleFlight
from framework.errors import ConfigurationError, FrameworkError
from framework.settings import Settings

logger = logging.getLogger("framework.auth.user_tokens")

REFRESH_MARGIN_SECONDS = 300.0
"""A token is refreshed when it has less than this left."""
LOCK_SECONDS = 30.0
"""A refreshing process that dies frees the user's lock after this."""
POLL_SECONDS = 0.05
T = TypeVar("T")


class NotSignedIn(FrameworkError):
    """No token is stored for that user on that platform."""


def sealer_from(settings: Settings) -> Sealer:
    """The sealer of ``TOKEN_ENCRYPTION_KEY``; without one, a clear refusal saying how to make
    a key (user tokens are never stored in the clear)."""
    key = settings.token_encryption_key
    if key is None or not key.get_secret_value().strip():
        raise ConfigurationError(
            "TOKEN_ENCRYPTION_KEY is not set: the bot stores user tokens only encrypted. "
            f"Make a key with `python -m framework users new-key` (or {NEW_KEY_COMMAND}) and "
            "set TOKEN_ENCRYPTION_KEY to it; to rotate, put the new key first, then the old: "
            "NEW,OLD"
        )
    return Sealer(parse_keys(key.get_secret_value()))


@dataclass(frozen=True)
class StoredUser:
    """One row of the store: who, and the sealed grant."""

    platform: str
    user_id: str
    login: str
    sealed: bytes
    needs_sign_in: bool
    expires_at: float | None
    updated_at: float


@dataclass(frozen=True)
class UserGrant:
    """A user's grant on a platform, unsealed."""

    platform: str
    user_id: str
    login: str
    grant: Grant
    needs_sign_in: bool = False


def seal_grant(sealer: Sealer, grant: Grant) -> bytes:
    """The grant as sealed bytes."""
    data = {
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "expires_at": grant.expires_at,
        "refresh_expires_at": grant.refresh_expires_at,
        "scopes": list(grant.scopes),
        "token_type": grant.token_type,
        "resource": dict(grant.resource) if grant.resource is not None else None,
        "team": grant.team,
    }
    return sealer.seal(json.dumps(data).encode())


def open_grant(sealer: Sealer, row: StoredUser) -> UserGrant:
    """The row's grant; :class:`SignInRequired` when no configured key opens it."""
    try:
        data = json.loads(sealer.open(row.sealed))
    except Unsealable:
        raise SignInRequired(
            row.platform,
            row.login,
            "its tokens were sealed with a key TOKEN_ENCRYPTION_KEY no longer holds (put the "
            "old key after the new one: NEW,OLD)",
        ) from None
    grant = Grant(
        access_token=data["access_token"],
        refresh_token=data.get("refresh_token"),
        expires_at=data.get("expires_at"),
        refresh_expires_at=data.get("refresh_expires_at"),
        scopes=tuple(data.get("scopes") or ()),
        token_type=data.get("token_type") or "bearer",
        resource=data.get("resource"),
        team=data.get("team"),
    )
    return UserGrant(row.platform, row.user_id, row.login, grant, row.needs_sign_in)


class TokenStore(Protocol):
    """Where sealed grants live (SQLite or Redis), with the locks and one-time keys of sign-in."""

    async def put(self, row: StoredUser) -> None:
        """Store (or replace) a user's row."""
        ...

    async def get(self, platform: str, user: str) -> StoredUser | None:
        """The row of a user, by id or login."""
        ...

    async def rows(self) -> list[StoredUser]:
        """Every row, by platform and login."""
        ...

    async def delete(self, platform: str, user: str) -> bool:
        """Delete a user's row (by id or login); whether there was one."""
        ...

    async def use_once(self, key: str, seconds: float) -> bool:
        """True the first time ``key`` is used within ``seconds`` (a sign-in's state)."""
        ...

    async def lock(self, name: str, owner: str, seconds: float) -> bool:
        """Take the lock ``name`` for ``seconds`` unless someone else holds it."""
        ...

    async def unlock(self, name: str, owner: str) -> None:
        """Free the lock if ``owner`` still holds it."""
        ...

    async def close(self) -> None:
        """Close the store."""
        ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS user_tokens (
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    login TEXT NOT NULL,
    sealed BLOB NOT NULL,
    needs_sign_in INTEGER NOT NULL DEFAULT 0,
    expires_at REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (platform, user_id)
);
CREATE INDEX IF NOT EXISTS user_tokens_login ON user_tokens (platform, login);
CREATE TABLE IF NOT EXISTS used_once (key TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
"""


def _row(values: Any) -> StoredUser:
    platform, user_id, login, sealed, needs, expires_at, updated_at = values
    return StoredUser(platform, user_id, login, bytes(sealed), bool(needs), expires_at, updated_at)


class SQLiteTokenStore:
    """The store in an SQLite file (created readable by its owner only). Each operation runs
    in a worker thread; WAL and a busy timeout let several processes share the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._mutex = threading.Lock()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._mutex:
                return work(self._db)

        return await asyncio.to_thread(locked)

    async def put(self, row: StoredUser) -> None:
        """Store (or replace) a user's row."""
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO user_tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.platform, row.user_id, row.login, row.sealed, int(row.needs_sign_in),
                 row.expires_at, row.updated_at),
            )
        )  # fmt: skip

    async def get(self, platform: str, user: str) -> StoredUser | None:
        """The row of a user, by id, else by login (case-insensitive)."""

        def find(db: sqlite3.Connection) -> Any:
            return db.execute(
                "SELECT * FROM user_tokens WHERE platform = ? AND (user_id = ? OR lower(login) = ?)"
                " ORDER BY user_id = ? DESC LIMIT 1",
                (platform, user, user.lower(), user),
            ).fetchone()

        found = await self._run(find)
        return _row(found) if found else None

    async def rows(self) -> list[StoredUser]:
        """Every row, by platform and login."""
        found = await self._run(
            lambda db: db.execute("SELECT * FROM user_tokens ORDER BY platform, login").fetchall()
        )
        return [_row(values) for values in found]

    async def delete(self, platform: str, user: str) -> bool:
        """Delete a user's row (by id or login); whether there was one."""
        row = await self.get(platform, user)
        if row is None:
            return False
        await self._run(
            lambda db: db.execute(
                "DELETE FROM user_tokens WHERE platform = ? AND user_id = ?",
                (platform, row.user_id),
            )
        )
        return True

    async def use_once(self, key: str, seconds: float) -> bool:
        """True the first time ``key`` is used (kept ``seconds``, then forgotten)."""
        now = time.time()

        def use(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM used_once WHERE until < ?", (now,))
            cursor = db.execute(
                "INSERT OR IGNORE INTO used_once VALUES (?, ?)", (key, now + seconds)
            )
            return cursor.rowcount == 1

        return await self._run(use)

    async def lock(self, name: str, owner: str, seconds: float) -> bool:
        """Take the lock unless another owner holds it and it has not expired."""
        now = time.time()

        def take(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                held = db.execute(
                    "SELECT owner, until FROM locks WHERE name = ?", (name,)
                ).fetchone()
                if held is not None and held[0] != owner and held[1] > now:
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO locks VALUES (?, ?, ?)", (name, owner, now + seconds)
                )
                return True
            finally:
                db.execute("COMMIT")

        return await self._run(take)

    async def unlock(self, name: str, owner: str) -> None:
        """Free the lock if ``owner`` still holds it."""
        await self._run(
            lambda db: db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))
        )

    async def close(self) -> None:
        """Close the file."""
        await self._run(lambda db: db.close())


_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """The store in Redis (``REDIS_URL``): a hash per user, a login index, a set of all users."""

    def __init__(self, client: Any, prefix: str = "framework") -> None:
        self._redis = client
        self._prefix = f"{{{prefix}}}:users"
        self._unlock = client.register_script(_UNLOCK)

    def _key(self, platform: str, user_id: str) -> str:
        return f"{self._prefix}:{platform}:{user_id}"

    def _login_key(self, platform: str, login: str) -> str:
        return f"{self._prefix}:login:{platform}:{login.lower()}"

    async def put(self, row: StoredUser) -> None:
        """Store (or replace) a user's row and index its login."""
        fields = {
            "platform": row.platform,
            "user_id": row.user_id,
            "login": row.login,
            "sealed": row.sealed,
            "needs_sign_in": int(row.needs_sign_in),
            "expires_at": "" if row.expires_at is None else repr(row.expires_at),
            "updated_at": repr(row.updated_at),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(row.platform, row.user_id), mapping=fields)
            pipe.set(self._login_key(row.platform, row.login), row.user_id)
            pipe.sadd(self._prefix, f"{row.platform}:{row.user_id}")
            await pipe.execute()

    async def _by_id(self, platform: str, user_id: str) -> StoredUser | None:
        found = await self._redis.hgetall(self._key(platform, user_id))
        if not found:
            return None
        text = {k.decode(): v for k, v in found.items()}
        expires = text["expires_at"].decode()
        return StoredUser(
            text["platform"].decode(), text["user_id"].decode(), text["login"].decode(),
            bytes(text["sealed"]), text["needs_sign_in"] == b"1",
            float(expires) if expires else None, float(text["updated_at"]),
        )  # fmt: skip

    async def get(self, platform: str, user: str) -> StoredUser | None:
        """The row of a user, by id, else by login."""
        row = await self._by_id(platform, user)
        if row is not None:
            return row
        user_id = await self._redis.get(self._login_key(platform, user))
        return await self._by_id(platform, user_id.decode()) if user_id else None

    async def rows(self) -> list[StoredUser]:
        """Every row, by platform and login."""
        members = sorted(m.decode() for m in await self._redis.smembers(self._prefix))
        found = [await self._by_id(*member.split(":", 1)) for member in members]
        return sorted((r for r in found if r is not None), key=lambda r: (r.platform, r.login))

    async def delete(self, platform: str, user: str) -> bool:
        """Delete a user's row and its login index."""
        row = await self.get(platform, user)
        if row is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(platform, row.user_id), self._login_key(platform, row.login))
            pipe.srem(self._prefix, f"{platform}:{row.user_id}")
            await pipe.execute()
        return True

    async def use_once(self, key: str, seconds: float) -> bool:
        """``SET NX`` with an expiry."""
        done = await self._redis.set(
            f"{self._prefix}:once:{key}", b"1", nx=True, px=max(1, int(seconds * 1000))
        )
        return bool(done)

    async def lock(self, name: str, owner: str, seconds: float) -> bool:
        """``SET NX PX``."""
        done = await self._redis.set(
            f"{self._prefix}:lock:{name}", owner, nx=True, px=int(seconds * 1000)
        )
        return bool(done)

    async def unlock(self, name: str, owner: str) -> None:
        """Delete the lock if ``owner`` still holds it (a script: check and delete at once)."""
        await self._unlock(keys=[f"{self._prefix}:lock:{name}"], args=[owner])

    async def close(self) -> None:
        """Close the connection."""
        await self._redis.aclose()


async def open_store(settings: Settings) -> TokenStore:
    """The store the settings name: Redis with ``REDIS_URL``, else the SQLite file."""
    if settings.redis_url is None:
        return SQLiteTokenStore(settings.user_tokens_file())
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    return RedisTokenStore(client, settings.redis_prefix)


class UserTokens:
    """Users' grants: saved at sign-in, read (and refreshed when due) by the user clients."""

    def __init__(
        self,
        store: TokenStore,
        sealer: Sealer,
        providers: Callable[[str], Provider],
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN_SECONDS,
        lock_wait: float = LOCK_SECONDS,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.providers = providers
        self.http = http
        self.clock = clock
        self.margin = margin
        self.lock_wait = lock_wait
        self.refreshes = 0
        """How many refreshes this process made (for tests and metrics)."""
        self._flight: SingleFlight[tuple[str, str], UserGrant] = SingleFlight()

    async def save(self, platform: str, identity: Identity, grant: Grant) -> UserGrant:
        """Store a new sign-in's grant (replacing the user's previous one)."""
        if identity.scopes is not None and platform == "github":
            grant = replace(grant, scopes=identity.scopes)
        stored = UserGrant(platform, identity.user_id, identity.login, grant)
        await self._write(stored)
        return stored

    async def _write(self, stored: UserGrant) -> None:
        await self.store.put(
            StoredUser(
                stored.platform, stored.user_id, stored.login,
                seal_grant(self.sealer, stored.grant), stored.needs_sign_in,
                stored.grant.expires_at, self.clock(),
            )
        )  # fmt: skip

    async def read(self, platform: str, user: str) -> UserGrant:
        """The stored grant of a user (by id or login), as it is; :class:`NotSignedIn` when
        there is none, :class:`SignInRequired` when it no longer works."""
        row = await self.store.get(platform, str(user))
        if row is None:
            raise NotSignedIn(f"{platform} user {user} has not signed in (at /login/{platform})")
        stored = open_grant(self.sealer, row)
        if stored.needs_sign_in:
            raise SignInRequired(platform, stored.login, "the platform refused their grant")
        return stored

    async def current(self, platform: str, user: str, *, stale: str | None = None) -> UserGrant:
        """The user's grant with an access token good for a while: refreshed first when it
        expires within the margin, or when it is ``stale`` (the API refused that token)."""
        stored = await self.read(platform, user)
        if stale is None and stored.grant.fresh(self.clock(), self.margin):
            return stored
        spent = stale or stored.grant.access_token
        key = (platform, stored.user_id)
        return await self._flight.run(key, lambda: self._refresh_once(stored, spent))

    async def _refresh_once(self, stored: UserGrant, spent: str) -> UserGrant:
        """Refresh unless another process already did; hold the user's lock while refreshing."""
        name = f"refresh:{stored.platform}:{stored.user_id}"
        owner = secrets.token_hex(8)
        for _ in range(int(self.lock_wait / POLL_SECONDS) + 1):
            latest = await self.read(stored.platform, stored.user_id)
            if latest.grant.access_token != spent:
                return latest  # refreshed elsewhere meanwhile
            if await self.store.lock(name, owner, LOCK_SECONDS):
                try:
                    latest = await self.read(stored.platform, stored.user_id)
                    if latest.grant.access_token != spent:
                        return latest
                    return await self._refresh(latest)
                finally:
                    await self.store.unlock(name, owner)
            await asyncio.sleep(POLL_SECONDS)
        raise OAuthError(
            f"another process held {stored.platform} user {stored.login}'s refresh for over "
            f"{self.lock_wait:.0f} s",
            error="refresh_timeout",
        )

    async def _refresh(self, stored: UserGrant) -> UserGrant:
        now = self.clock()
        if not stored.grant.refreshable(now):
            if stored.grant.expires_at is not None and stored.grant.expires_at > now:
                return stored  # not refreshable, but still good for a little while
            why = (
                "the refresh token expired"
                if stored.grant.refresh_token
                else "the token expired and cannot be refreshed"
            )
            raise await self._needs_sign_in(stored, why)
        try:
            oauth = self.providers(stored.platform)
            grant = await flow.refresh(oauth, self.http, stored.grant, now)
        except OAuthError as exc:
            if exc.rejected:
                why = f"the refresh was refused ({exc.error})"
                raise await self._needs_sign_in(stored, why) from None
            if stored.grant.expires_at is not None and stored.grant.expires_at > now:
                logger.warning(
                    "could not refresh %s user %s's token (%s); using it until it expires",
                    stored.platform, stored.login, exc,
                )  # fmt: skip
                return stored
            raise
        self.refreshes += 1
        fresh = replace(stored, grant=grant)
        await self._write(fresh)
        logger.info("refreshed %s user %s's token", stored.platform, stored.login)
        return fresh

    async def _needs_sign_in(self, stored: UserGrant, why: str) -> SignInRequired:
        await self._write(replace(stored, needs_sign_in=True))
        logger.warning("%s user %s must sign in again: %s", stored.platform, stored.login, why)
        return SignInRequired(stored.platform, stored.login, why)

    async def forget(self, platform: str, user: str) -> bool:
        """Delete a user's tokens (signed out, or the app's authorization was revoked)."""
        return await self.store.delete(platform, str(user))


class UserAuth(httpx.Auth):
    """Authenticates as a user with their stored token; on a 401, refreshes once and retries."""

    def __init__(self, tokens: UserTokens, platform: str, user: str, provider: Provider) -> None:
        self.tokens = tokens
        self.platform = platform
        self.user = user
        self.provider = provider
        self.rate_key = f"user:{platform}:{user}"
        """Whose rate limits a request spends: the user's own (the client reads it)."""

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("user clients are async")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        stored = await self.tokens.current(self.platform, self.user)
        request.headers["Authorization"] = self.provider.authorization(stored.grant.access_token)
        response = yield request
        if response.status_code == 401 and stored.grant.refresh_token is not None:
            spent = stored.grant.access_token
            stored = await self.tokens.current(self.platform, self.user, stale=spent)
            request.headers["Authorization"] = self.provider.authorization(
                stored.grant.access_token
            )
            yield request

    def __repr__(self) -> str:
        return f"UserAuth({self.platform}, {self.user})"
