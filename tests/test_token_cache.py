"""Installation tokens shared through a real Redis: one mint for every process, stored encrypted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from framework.auth.installation_tokens import AccessToken, InstallationTokens, TokenScope
from framework.auth.token_cache import RedisTokenCache, cache_key
from tests.support import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def processes(
    client: aioredis.Redis, prefix: str, count: int
) -> tuple[list[InstallationTokens], list[int]]:
    """``count`` token caches as separate processes would have them, sharing one Redis."""
    minted: list[int] = []

    async def mint(installation_id: int, scope: TokenScope) -> AccessToken:
        minted.append(installation_id)
        await asyncio.sleep(0.05)  # the others arrive while this mint is in flight
        expires = datetime.now(UTC) + timedelta(hours=1)
        return AccessToken(f"ghs_secret{len(minted)}", expires)

    caches = []
    for _ in range(count):
        tokens = InstallationTokens(mint)
        tokens.shared = RedisTokenCache(client, cache_key(b"the app's private key"), prefix=prefix)
        caches.append(tokens)
    return caches, minted


async def test_many_processes_asking_at_once_cause_one_mint(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    caches, minted = processes(client, tmp_path.name, 5)
    tokens = await asyncio.gather(*(c.get(42) for c in caches for _ in range(4)))
    assert minted == [42]
    assert {t.token for t in tokens} == {"ghs_secret1"}
    # Another installation and another scope are other tokens.
    await caches[0].get(43)
    await caches[1].get(42, TokenScope.of(repositories=["hello"]))
    assert minted == [42, 43, 42]


async def test_tokens_are_stored_encrypted_and_expire_with_the_token(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    [cache], _ = processes(client, tmp_path.name, 1)
    await cache.get(42)
    key = f"{{{tmp_path.name}}}:token:42"
    stored = await client.get(key)
    assert stored is not None and b"ghs_secret" not in stored
    ttl = await client.pttl(key)
    assert 3000_000 < ttl <= 3300_000  # an hour, less the 5-minute refresh margin


async def test_a_refused_token_is_dropped_for_every_process(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    (first, second), minted = processes(client, tmp_path.name, 2)
    old = await first.get(42)
    assert (await second.get(42)).token == old.token
    new = await second.replace(42, old)  # GitHub answered 401 to the second process
    assert new.token != old.token and len(minted) == 2
    first.invalidate(42, old)
    assert (await first.get(42)).token == new.token  # from Redis, no third mint
    assert len(minted) == 2


async def test_a_cache_written_with_another_key_is_ignored_not_trusted(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    [cache], minted = processes(client, tmp_path.name, 1)
    await cache.get(42)
    rotated = InstallationTokens(cache._mint)
    rotated.shared = RedisTokenCache(client, cache_key(b"a new private key"), prefix=tmp_path.name)
    await rotated.get(42)
    assert len(minted) == 2
