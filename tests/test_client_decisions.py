"""The client's pure choice for an answer: return it, wait, retry or raise."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from framework.client.limits import ClientPolicy, RateLimit, RateState
from framework.client.responses import decide
from framework.errors import GitHubAPIError, NotFound, RateLimited, ServerError


def _limited(wait: float) -> RateLimited:
    return RateLimited("GET", "/x", 403, None, None, wait, reset_at=0.0, secondary=False)


@pytest.mark.parametrize(
    ("status", "error", "repeatable", "failures", "action"),
    [
        (200, None, False, 0, "return"),
        (304, None, True, 0, "return"),
        (403, _limited(30), False, 0, "wait"),  # waiting is safe: nothing was done
        (403, _limited(61), True, 0, "raise"),  # longer than GITHUB_MAX_RATE_LIMIT_WAIT_SECONDS
        (503, ServerError("GET", "/x", 503), True, 0, "retry"),
        (503, ServerError("GET", "/x", 503), True, 3, "raise"),  # retries spent
        (502, ServerError("POST", "/x", 502), False, 0, "raise"),  # may have landed: not twice
        (501, ServerError("GET", "/x", 501), True, 0, "raise"),  # not a passing failure
        (404, NotFound("GET", "/x", 404), True, 0, "raise"),
        (422, GitHubAPIError("POST", "/x", 422), True, 0, "raise"),
    ],
)
def test_decide(
    status: int, error: GitHubAPIError | None, repeatable: bool, failures: int, action: str
) -> None:
    decision = decide(
        status,
        error,
        repeatable=repeatable,
        failures=failures,
        max_retries=3,
        max_rate_limit_wait=60,
    )
    assert decision.action == action
    assert decision.error is error
    if action == "wait":
        assert decision.seconds == error.retry_after  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (  # GitHub's casing; the resource named
            {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999",
             "X-RateLimit-Used": "1", "X-RateLimit-Reset": "1800000000",
             "X-RateLimit-Resource": "search"},
            RateLimit(5000, 4999, 1, 1800000000.0, "search"),
        ),
        (  # lower case, no resource: core; a missing figure reads 0
            {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1800000060"},
            RateLimit(0, 12, 0, 1800000060.0, "core"),
        ),
        ({"x-ratelimit-remaining": "many"}, None),  # not a number: nothing known
        ({"x-ratelimitremaining": "12", "content-type": "application/json"}, None),
    ],
)  # fmt: skip
def test_rate_state_reads_the_budget_from_the_headers(
    headers: dict[str, str], expected: RateLimit | None
) -> None:
    state = RateState(ClientPolicy(), clock=lambda: 0.0, sleep=asyncio.sleep)
    state.observe(httpx.Response(200, headers=headers))
    assert state.rate_limit == expected
    assert state.blocked_for() == 0.0


def test_a_spent_core_budget_blocks_until_its_reset() -> None:
    state = RateState(ClientPolicy(), clock=lambda: 1000.0, sleep=asyncio.sleep)
    state.observe(httpx.Response(200, headers={"X-RateLimit-Remaining": "0",
                                               "X-RateLimit-Reset": "1060"}))  # fmt: skip
    assert state.blocked_for() == 60.0
