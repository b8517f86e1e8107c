"""The user-token store: sealed at rest, refreshed before expiry once per user everywhere,
a dead refresh token turned into a clear "sign in again", on SQLite and on a real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis

from framework.auth.oauth import flow, provider
from framework.auth.oauth.base import Grant, Identity, SignInRequired
from framework.auth.sealing import Sealer, new_key
from framework.auth.user_tokens import (
    NotSignedIn,
    RedisTokenStore,
    SQLiteTokenStore,
    StoredUser,
    TokenStore,
    UserTokens,
    sealer_from,
)
from framework.errors import ConfigurationError
from framework.settings import Settings
from framework.testing import FakeOAuth, ManualClock
from tests.signin_support import KEY, fake_for, served, settings_for
from tests.support import ROOT, RedisServer

CALLBACK = "http://127.0.0.1:9/login/github/callback"


@pytest.fixture(params=["sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[TokenStore]:
    """Each store kind: an SQLite file, or a real redis-server (keys kept apart by prefix)."""
    made: TokenStore
    if request.param == "sqlite":
        made = SQLiteTokenStore(tmp_path / "user_tokens.sqlite3")
    else:
        made = RedisTokenStore(aioredis.Redis.from_url(redis_server.url), prefix=tmp_path.name)
    yield made
    await made.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeOAuth]:
    with served(fake_for("github", callback_url=CALLBACK, clock=clock)) as served_fake:
        yield served_fake


def settings_of(fake: FakeOAuth, tmp_path: Path) -> Settings:
    return settings_for({"github": fake}, tmp_path)


async def signed_in(fake: FakeOAuth, tokens: UserTokens) -> Grant:
    """Sign octocat in as the routes would: authorize at the fake, exchange, store."""
    oauth = tokens.providers("github")
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(oauth.authorize_url("state", CALLBACK))
    code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
    grant, identity = await flow.sign_in(oauth, tokens.http, code, CALLBACK, {}, tokens.clock())
    await tokens.save("github", identity, grant)
    return grant


@pytest.fixture
async def tokens(
    store: TokenStore, fake: FakeOAuth, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[UserTokens]:
    settings = settings_of(fake, tmp_path)
    async with httpx.AsyncClient() as http:
        yield UserTokens(store, sealer_from(settings), lambda p: provider(p, settings), http,
                         clock=clock)  # fmt: skip


async def test_the_store_finds_a_user_by_id_or_login(store: TokenStore) -> None:
    row = StoredUser("github", "583231", "Octocat", b"sealed", False, None, 1.0)
    await store.put(row)
    assert await store.get("github", "583231") == row
    assert await store.get("github", "octocat") == row
    assert await store.get("atomgit", "583231") is None
    assert await store.rows() == [row]
    assert await store.delete("github", "octocat") is True
    assert await store.get("github", "583231") is None
    assert await store.delete("github", "octocat") is False


async def test_a_key_is_used_once(store: TokenStore) -> None:
    assert await store.use_once("state:abc", 600) is True
    assert await store.use_once("state:abc", 600) is False
    assert await store.use_once("state:def", 600) is True


async def test_a_lock_has_one_holder(store: TokenStore) -> None:
    assert await store.lock("refresh:github:1", "a", 30)
    assert not await store.lock("refresh:github:1", "b", 30)
    await store.unlock("refresh:github:1", "b")  # not b's to free
    assert not await store.lock("refresh:github:1", "b", 30)
    await store.unlock("refresh:github:1", "a")
    assert await store.lock("refresh:github:1", "b", 30)


async def test_tokens_are_sealed_at_rest(
    tokens: UserTokens, fake: FakeOAuth, tmp_path: Path
) -> None:
    grant = await signed_in(fake, tokens)
    row = await tokens.store.get("github", "octocat")
    assert row is not None and grant.access_token.encode() not in row.sealed
    assert grant.refresh_token is not None and grant.refresh_token.encode() not in row.sealed
    files = await asyncio.to_thread(lambda: [p.read_bytes() for p in tmp_path.glob("user*")])
    for content in files:
        assert grant.access_token.encode() not in content
    stored = await tokens.current("github", "octocat")
    assert stored.grant.access_token == grant.access_token and stored.login == "octocat"


async def test_a_token_is_refreshed_shortly_before_it_expires(
    tokens: UserTokens, fake: FakeOAuth, clock: ManualClock
) -> None:
    first = await signed_in(fake, tokens)
    clock.advance(8 * 3600 - 301)  # still more than 5 minutes left
    assert (await tokens.current("github", "583231")).grant == first
    assert fake.refreshes == 0
    clock.advance(2)  # now less
    second = (await tokens.current("github", "583231")).grant
    assert fake.refreshes == 1
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # GitHub rotates both
    assert second.expires_at == clock() + 8 * 3600
    assert (await tokens.current("github", "octocat")).grant == second  # stored, not refreshed
    assert fake.refreshes == 1


async def test_many_callers_in_one_process_refresh_once(
    tokens: UserTokens, fake: FakeOAuth, clock: ManualClock
) -> None:
    await signed_in(fake, tokens)
    clock.advance(9 * 3600)
    got = await asyncio.gather(*(tokens.current("github", "octocat") for _ in range(10)))
    assert len({g.grant.access_token for g in got}) == 1
    assert fake.refreshes == 1 and fake.refused == []


async def test_an_expired_refresh_token_means_signing_in_again(
    tokens: UserTokens, fake: FakeOAuth, clock: ManualClock
) -> None:
    await signed_in(fake, tokens)
    clock.advance(184 * 86400)  # past the refresh token's six months
    with pytest.raises(SignInRequired, match="octocat must sign in again at /login/github"):
        await tokens.current("github", "octocat")
    assert fake.calls[-1] != ("POST", "/login/oauth/access_token")  # not even asked
    with pytest.raises(SignInRequired):
        await tokens.read("github", "octocat")  # marked in the store


async def test_a_refused_refresh_token_marks_the_grant(
    tokens: UserTokens, fake: FakeOAuth, clock: ManualClock
) -> None:
    await signed_in(fake, tokens)
    fake.expire_refresh_tokens()  # the platform no longer accepts it
    clock.advance(8 * 3600)
    with pytest.raises(SignInRequired, match=r"refused \(bad_refresh_token\)"):
        await tokens.current("github", "octocat")
    assert fake.refused == ["bad_refresh_token"]
    row = await tokens.store.get("github", "octocat")
    assert row is not None and row.needs_sign_in
    with pytest.raises(SignInRequired):
        await tokens.current("github", "octocat")
    assert fake.refused == ["bad_refresh_token"]  # not asked twice


async def test_a_rotated_out_refresh_token_is_refused_by_the_fake(
    tokens: UserTokens, fake: FakeOAuth, clock: ManualClock
) -> None:
    first = await signed_in(fake, tokens)
    clock.advance(8 * 3600)
    await tokens.current("github", "octocat")
    again = await flow.send(tokens.http, tokens.providers("github").refresh(first))
    assert again.data()["error"] == "bad_refresh_token"


async def test_a_classic_token_is_used_without_refresh(
    tokens: UserTokens, clock: ManualClock
) -> None:
    await tokens.save("github", Identity("7", "hubot"), Grant("gho_classic"))
    clock.advance(365 * 86400)
    assert (await tokens.current("github", "hubot")).grant.access_token == "gho_classic"


async def test_no_grant_is_a_clear_error(tokens: UserTokens) -> None:
    with pytest.raises(NotSignedIn, match="github user nobody has not signed in"):
        await tokens.current("github", "nobody")


async def test_keys_rotate_and_a_lost_key_is_a_clear_error(
    tokens: UserTokens, fake: FakeOAuth
) -> None:
    grant = await signed_in(fake, tokens)
    newer = new_key()
    tokens.sealer = Sealer.from_keys([newer, KEY])  # the new key first, the old one after
    assert (await tokens.read("github", "octocat")).grant == grant
    tokens.sealer = Sealer.from_keys([newer])  # the old key dropped too soon
    with pytest.raises(SignInRequired, match="sealed with a key TOKEN_ENCRYPTION_KEY no longer"):
        await tokens.read("github", "octocat")


def test_without_a_key_nothing_is_stored_and_the_error_says_how_to_make_one() -> None:
    with pytest.raises(ConfigurationError, match=r"TOKEN_ENCRYPTION_KEY is not set.*new-key"):
        sealer_from(Settings(_env_file=None))
    with pytest.raises(ConfigurationError, match="key 2 is not a Fernet key"):
        sealer_from(Settings(_env_file=None, token_encryption_key=f"{KEY},oops"))


REFRESHER = textwrap.dedent(
    """
    import asyncio, hashlib, sys, time
    import httpx
    from framework.auth.oauth import provider
    from framework.auth.user_tokens import UserTokens, open_store, sealer_from
    from framework.settings import load_settings

    async def main() -> None:
        settings = load_settings()
        async with httpx.AsyncClient() as http:
            store = await open_store(settings)
            tokens = UserTokens(store, sealer_from(settings), lambda p: provider(p, settings), http)
            while time.time() < float(sys.argv[1]):  # start together
                await asyncio.sleep(0.001)
            stored = await tokens.current("github", "octocat")
            print(hashlib.sha256(stored.grant.access_token.encode()).hexdigest(), tokens.refreshes)
            await store.close()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_two_processes_refreshing_the_same_user_refresh_once(
    kind: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    with served(fake_for("github", callback_url=CALLBACK)) as fake:
        extra = (
            {"redis_url": redis_server.url, "redis_prefix": tmp_path.name}
            if kind == "redis"
            else {}
        )
        settings = settings_for({"github": fake}, tmp_path, **extra)
        store: TokenStore = (
            SQLiteTokenStore(settings.user_tokens_file()) if kind == "sqlite"
            else RedisTokenStore(aioredis.Redis.from_url(redis_server.url), prefix=tmp_path.name)
        )  # fmt: skip
        async with httpx.AsyncClient() as http:
            tokens = UserTokens(store, sealer_from(settings), lambda p: provider(p, settings), http)
            grant = await signed_in(fake, tokens)
            # Due for refresh now: 10 s left, under the 5-minute margin.
            stale = replace(grant, expires_at=time.time() + 10)
            await tokens.save("github", Identity("583231", "octocat"), stale)
        await store.close()
        fake.latency = 0.5  # both processes are inside their refresh at once
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKEN_ENCRYPTION_KEY": KEY,
               "GITHUB_CLIENT_ID": fake.client_id, "GITHUB_CLIENT_SECRET": fake.client_secret,
               "GITHUB_WEB_URL": fake.base_url, "GITHUB_API_URL": fake.base_url,
               "JOURNAL_PATH": str(settings.journal_path)}  # fmt: skip
        if kind == "redis":
            env |= {"REDIS_URL": redis_server.url, "REDIS_PREFIX": tmp_path.name}
        start = str(time.time() + 1.5)
        runs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", REFRESHER, start, env=env, cwd=tmp_path,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]  # fmt: skip
        outputs = []
        for run in runs:
            out, err = await asyncio.wait_for(run.communicate(), 60)
            assert run.returncode == 0, err.decode()
            outputs.append(out.decode().split())
    assert fake.refreshes == 1 and fake.refused == []
    assert outputs[0][0] == outputs[1][0]  # the same new token in both
    assert sorted(int(o[1]) for o in outputs) == [0, 1]  # one of them refreshed it
    assert outputs[0][0] != hashlib.sha256(grant.access_token.encode()).hexdigest()


async def test_a_user_clients_rate_limits_are_the_users_own() -> None:
    """A user waiting out a rate limit must not hold back the app's or another user's calls."""
    from framework.auth.user_tokens import UserAuth
    from framework.client.rest import GitHubClient

    async with httpx.AsyncClient() as pool:
        first = GitHubClient(pool, UserAuth(None, "github", "42", None))  # type: ignore[arg-type]
        other = GitHubClient(pool, UserAuth(None, "atomgit", "42", None))  # type: ignore[arg-type]
        app = GitHubClient(pool, httpx.BasicAuth("u", "p"))
        assert (first._key, other._key, app._key) == ("user:github:42", "user:atomgit:42", "app")
