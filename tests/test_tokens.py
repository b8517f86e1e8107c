"""Installation tokens: expiry parsing, caching, single-flight minting, invalidation."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from framework.auth.installation_tokens import (
    AccessToken,
    InstallationTokens,
    TokenScope,
    parse_expires_at,
)
from framework.errors import AuthenticationError


def test_expires_at_as_github_and_atomgit_send_it() -> None:
    assert parse_expires_at("2016-07-11T22:14:10Z") == datetime(2016, 7, 11, 22, 14, 10, tzinfo=UTC)
    atomgit = parse_expires_at("2023-05-07T04:02:40.758+08:00")
    assert atomgit.utcoffset() == timedelta(hours=8)
    assert atomgit.timestamp() == datetime(2023, 5, 6, 20, 2, 40, 758000, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("value", ["", "tomorrow", "2016-07-11T22:14:10"])
def test_bad_expires_at_is_an_authentication_error(value: str) -> None:
    with pytest.raises(AuthenticationError):
        parse_expires_at(value)


def test_token_repr_hides_the_token() -> None:
    token = AccessToken.from_response({"token": "ghs_SECRET", "expires_at": "2030-01-01T00:00:00Z"})
    assert "ghs_SECRET" not in repr(token)
    assert token.token == "ghs_SECRET"


def test_response_without_a_token_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="no token"):
        AccessToken.from_response({"expires_at": "2030-01-01T00:00:00Z"})


def test_scope_is_normalized_so_equal_scopes_share_a_cache_entry() -> None:
    a = TokenScope.of(["b", "a", "a"], permissions={"issues": "write", "contents": "read"})
    b = TokenScope.of(["a", "b"], permissions={"contents": "read", "issues": "write"})
    assert a == b and hash(a) == hash(b)
    assert a.body() == {
        "repositories": ["a", "b"],
        "permissions": {"contents": "read", "issues": "write"},
    }
    assert TokenScope.of().body() == {}


class Minter:
    """Counts mints; each mint takes a little while so concurrent callers overlap."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.calls: list[tuple[int, TokenScope]] = []
        self.lifetime = lifetime
        self.now = 1_000_000.0
        self.fail_next = False

    async def __call__(self, installation_id: int, scope: TokenScope) -> AccessToken:
        self.calls.append((installation_id, scope))
        name = f"ghs_{len(self.calls)}"
        await asyncio.sleep(0.01)
        if self.fail_next:
            self.fail_next = False
            raise AuthenticationError("refused")
        expires = datetime.fromtimestamp(self.now + self.lifetime, tz=UTC)
        return AccessToken(token=name, expires_at=expires)


async def test_twenty_concurrent_cold_requests_mint_exactly_once() -> None:
    mint = Minter()
    tokens = InstallationTokens(mint, clock=lambda: mint.now)
    got = await asyncio.gather(*(tokens.get(7) for _ in range(20)))
    assert len(mint.calls) == 1
    assert {t.token for t in got} == {"ghs_1"}


async def test_cached_until_the_refresh_margin_then_minted_again() -> None:
    mint = Minter(lifetime=3600)
    tokens = InstallationTokens(mint, margin=300, clock=lambda: mint.now)
    await tokens.get(7)
    mint.now += 3600 - 301
    assert (await tokens.get(7)).token == "ghs_1"
    mint.now += 2
    assert (await tokens.get(7)).token == "ghs_2"


async def test_installations_and_scopes_have_their_own_tokens() -> None:
    mint = Minter()
    tokens = InstallationTokens(mint, clock=lambda: mint.now)
    narrow = TokenScope.of(["hello"])
    a, b, c = await asyncio.gather(tokens.get(1), tokens.get(2), tokens.get(1, narrow))
    assert len({a.token, b.token, c.token}) == 3
    assert (await tokens.get(1, narrow)) == c
    assert sorted(mint.calls, key=str) == sorted(
        [(1, TokenScope()), (2, TokenScope()), (1, narrow)], key=str
    )


async def test_a_failed_mint_reaches_every_waiter_and_the_next_call_retries() -> None:
    mint = Minter()
    mint.fail_next = True
    tokens = InstallationTokens(mint, clock=lambda: mint.now)
    results = await asyncio.gather(*(tokens.get(3) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert len(mint.calls) == 1
    assert (await tokens.get(3)).token == "ghs_2"


async def test_a_cancelled_waiter_does_not_cancel_the_mint_for_others() -> None:
    mint = Minter()
    tokens = InstallationTokens(mint, clock=lambda: mint.now)
    first = asyncio.ensure_future(tokens.get(5))
    second = asyncio.ensure_future(tokens.get(5))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).token == "ghs_1"
    assert len(mint.calls) == 1


async def test_invalidate_drops_only_the_refused_token() -> None:
    mint = Minter()
    tokens = InstallationTokens(mint, clock=lambda: mint.now)
    old = await tokens.get(9)
    tokens.invalidate(9, old)
    new = await tokens.get(9)
    assert new.token == "ghs_2"
    tokens.invalidate(9, old)  # a late 401 for the old token must not drop the new one
    assert (await tokens.get(9)) == new


async def test_forget_installation_drops_all_its_scopes() -> None:
    mint = Minter()
    tokens = InstallationTokens(mint, clock=lambda: mint.now)
    await tokens.get(4)
    await tokens.get(4, TokenScope.of(["x"]))
    await tokens.get(8)
    tokens.forget_installation(4)
    await tokens.get(4)
    await tokens.get(4, TokenScope.of(["x"]))
    await tokens.get(8)
    assert len(mint.calls) == 5
