"""Installation tokens shared between processes, through a real Redis and through an SQLite
file: one mint for every process, stored encrypted. Each behaviour on both stores."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from framework.auth.installation_tokens import AccessToken, InstallationTokens, TokenScope
from framework.auth.sqlite_token_cache import SQLiteTokenCache
from framework.auth.token_cache import RedisTokenCache, SharedTokenCache, cache_key
from tests.support import RedisServer

Store = Callable[..., SharedTokenCache]
"""``store(key_material=..., platform=...)``: a process's handle on the shared store."""


@pytest.fixture(params=["redis", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: list[SharedTokenCache] = []
    client: aioredis.Redis | None = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client = aioredis.Redis.from_url(server.url)

    def make(key_material: bytes = b"the app's private key", platform: str = "github") -> Any:
        sealer = cache_key(key_material)
        cache: SharedTokenCache
        if client is not None:
            cache = RedisTokenCache(client, sealer, prefix=tmp_path.name, platform=platform)
        else:
            cache = SQLiteTokenCache(tmp_path / "journal.sqlite3-tokens", sealer, platform=platform)
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        if isinstance(cache, SQLiteTokenCache):
            cache.close()
    if client is not None:
        await client.aclose()


def processes(
    store: Store, count: int, platform: str = "github"
) -> tuple[list[InstallationTokens], list[int]]:
    """``count`` token caches as separate processes would have them, sharing one store."""
    minted: list[int] = []

    async def mint(installation_id: int, scope: TokenScope) -> AccessToken:
        minted.append(installation_id)
        await asyncio.sleep(0.05)  # the others arrive while this mint is in flight
        expires = datetime.now(UTC) + timedelta(hours=1)
        return AccessToken(f"ghs_secret{len(minted)}", expires)

    caches = []
    for _ in range(count):
        tokens = InstallationTokens(mint)
        tokens.shared = store(platform=platform)
        caches.append(tokens)
    return caches, minted


async def test_many_processes_asking_at_once_cause_one_mint(store: Store) -> None:
    caches, minted = processes(store, 5)
    tokens = await asyncio.gather(*(c.get(42) for c in caches for _ in range(4)))
    assert minted == [42]
    assert {t.token for t in tokens} == {"ghs_secret1"}
    # Another installation and another scope are other tokens.
    await caches[0].get(43)
    await caches[1].get(42, TokenScope.of(repositories=["hello"]))
    assert minted == [42, 43, 42]


async def test_another_platforms_installation_with_the_same_id_is_another_token(
    store: Store,
) -> None:
    [github], on_github = processes(store, 1)
    [atomgit], on_atomgit = processes(store, 1, platform="atomgit")
    first, second = await github.get(42), await atomgit.get(42)
    assert on_github == [42] and on_atomgit == [42]
    assert first.token == second.token == "ghs_secret1"  # each minted its own: two counters
    await github.forget_installation_everywhere(42)
    [atomgit_again], more = processes(store, 1, platform="atomgit")
    await atomgit_again.get(42)
    assert more == []  # forgetting GitHub's installation 42 left AtomGit's alone


async def test_tokens_are_stored_encrypted_and_expire_with_the_token(
    store: Store, tmp_path: Path
) -> None:
    [cache], _ = processes(store, 1)
    await cache.get(42)
    shared = cache.shared
    if isinstance(shared, RedisTokenCache):
        key = f"{{{tmp_path.name}}}:token:42"
        stored = await shared._redis.get(key)
        lasts = await shared._redis.pttl(key) / 1000
    else:
        assert isinstance(shared, SQLiteTokenCache)
        assert shared.path.stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(shared.path) as conn:
            stored, until = conn.execute("SELECT sealed, until FROM tokens").fetchone()
        lasts = until - datetime.now(UTC).timestamp()
    assert stored is not None and b"ghs_secret" not in stored
    assert 3000 < lasts <= 3300  # an hour, less the 5-minute refresh margin


async def test_a_refused_token_is_dropped_for_every_process(store: Store) -> None:
    (first, second), minted = processes(store, 2)
    old = await first.get(42)
    assert (await second.get(42)).token == old.token
    new = await second.replace(42, old)  # GitHub answered 401 to the second process
    assert new.token != old.token and len(minted) == 2
    first.invalidate(42, old)
    assert (await first.get(42)).token == new.token  # from the store, no third mint
    assert len(minted) == 2


async def test_a_cache_written_with_another_key_is_ignored_not_trusted(store: Store) -> None:
    [cache], minted = processes(store, 1)
    await cache.get(42)
    rotated = InstallationTokens(cache._mint)
    rotated.shared = store(key_material=b"a new private key")
    await rotated.get(42)
    assert len(minted) == 2


async def test_a_process_that_died_minting_holds_the_others_up_only_so_long(
    store: Store,
) -> None:
    [cache], minted = processes(store, 1)
    shared = cache.shared
    assert isinstance(shared, SharedTokenCache)
    # A lock taken by a process that then died, never released.
    assert await shared._lock(shared._name(42, TokenScope()) + ":minting", "dead", 30)

    async def mint() -> AccessToken:
        minted.append(42)
        return AccessToken("ghs_here", datetime.now(UTC) + timedelta(hours=1))

    token = await shared.get_or_mint(42, TokenScope(), mint, 300, wait=0.3)
    assert token.token == "ghs_here" and minted == [42]  # waited 0.3 s, then minted itself
    # Once the dead process's lock expires, the next to come takes it.
    assert await shared._lock("other:minting", "dead", 0.01)
    await asyncio.sleep(0.05)
    assert await shared._lock("other:minting", "alive", 30)


class _FlakyStore(SharedTokenCache):
    """An in-memory store whose reads fail ``read_failures`` times, and whose writes fail
    when ``writes_fail``: what a busy or broken store does to a process minting."""

    _failures = (OSError,)

    def __init__(self, read_failures: int = 0, writes_fail: bool = False) -> None:
        super().__init__(cache_key(b"key"))
        self.read_failures, self.writes_fail = read_failures, writes_fail
        self.values: dict[str, bytes] = {}
        self.locks: dict[str, str] = {}

    async def _load(self, name: str) -> bytes | None:
        if self.read_failures:
            self.read_failures -= 1
            raise OSError("database is locked")
        return self.values.get(name)

    async def _store(self, name: str, sealed: bytes, until: float) -> None:
        if self.writes_fail:
            raise OSError("disk full")
        self.values[name] = sealed

    async def _lock(self, name: str, owner: str, seconds: float) -> bool:
        return self.locks.setdefault(name, owner) == owner

    async def _unlock(self, name: str, owner: str) -> None:
        if self.locks.get(name) == owner:
            del self.locks[name]

    async def _delete(self, name: str) -> None:
        self.values.pop(name, None)

    async def _forget(self, name: str) -> None:
        self.values.clear()


@pytest.mark.parametrize(
    ("read_failures", "writes_fail", "mints", "shared"),
    [
        (0, False, 1, True),  # the ordinary case
        (3, False, 1, True),  # busy for a moment: asked again, not minted twice
        (99, False, 1, False),  # unusable: minted here, once
        (0, True, 1, False),  # minted, then the sharing failed: the token is kept, not re-minted
    ],
)
async def test_a_store_that_fails_costs_at_most_one_mint(
    read_failures: int, writes_fail: bool, mints: int, shared: bool
) -> None:
    store = _FlakyStore(read_failures, writes_fail)
    minted: list[str] = []

    async def mint() -> AccessToken:
        minted.append("ghs_new")
        return AccessToken("ghs_new", datetime.now(UTC) + timedelta(hours=1))

    token = await store.get_or_mint(42, TokenScope.of(), mint, margin=60)
    assert token.token == "ghs_new" and len(minted) == mints
    assert bool(store.values) is shared
