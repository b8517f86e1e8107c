"""Pure decisions over an API response: (status, headers, body) in, a decision out.

No I/O: the REST client (:mod:`framework.client.rest`) calls these, and they are tested
with plain ``httpx.Response`` objects built in memory.

>>> import httpx
>>> limited = httpx.Response(403, headers={"retry-after": "30"},
...     request=httpx.Request("POST", "https://api.github.com/repos/o/r/issues"))
>>> error_from_response(limited)
RateLimited('POST /repos/o/r/issues -> 403 (rate limit; try again in 30 s)')
>>> safe_to_repeat("POST", "/repos/o/r/issues/1/labels")
True
>>> safe_to_repeat("POST", "/repos/o/r/issues")
False
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from framework.client.limits import SECONDARY_MINIMUM
from framework.errors import (
    Forbidden,
    GitHubAPIError,
    NotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
)


def error_from_response(
    response: httpx.Response,
    now: float | None = None,
    *,
    secondary_wait: float = SECONDARY_MINIMUM,
) -> GitHubAPIError:
    """The typed :class:`GitHubAPIError` for an error response, from its status and body.

    ``secondary_wait``: the wait after a secondary limit that gave no ``retry-after``."""
    message = documentation_url = None
    errors: list[dict[str, object]] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") if isinstance(body.get("message"), str) else None
        doc = body.get("documentation_url")
        documentation_url = doc if isinstance(doc, str) else None
        listed = body.get("errors")
        if isinstance(listed, list):
            errors = [e if isinstance(e, dict) else {"message": str(e)} for e in listed]
    status = response.status_code
    secondary = bool(message and "secondary rate limit" in message.lower())
    wait = retry_after(response, now, secondary=secondary, secondary_wait=secondary_wait)
    args = (response.request.method, response.request.url.path, status, message, documentation_url)
    if wait is not None:
        moment = time.time() if now is None else now
        return RateLimited(*args, wait, reset_at=moment + wait, secondary=secondary)
    if status == 404:
        return NotFound(*args)
    if status == 403:
        return Forbidden(*args)
    if status == 422:
        return ValidationFailed(*args, errors=errors)
    if status >= 500:
        return ServerError(*args)
    return GitHubAPIError(*args)


def retry_after(
    response: httpx.Response,
    now: float | None = None,
    *,
    secondary: bool = False,
    secondary_wait: float = SECONDARY_MINIMUM,
) -> float | None:
    """How long a rate-limited response asks the client to wait, in seconds; None if it is
    not rate-limited. ``retry-after`` first, then an exhausted primary limit's reset time, then
    a minute for a secondary limit that gave neither (GitHub's rule)."""
    if response.status_code not in (403, 429):
        return None
    header = response.headers.get("retry-after")
    if header is not None and header.strip().isdigit():
        return float(header)
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(0.0, int(reset) - (time.time() if now is None else now))
    if secondary:
        return secondary_wait
    return 60.0 if response.status_code == 429 else None


# Requests that may have reached GitHub are retried only when doing them twice is harmless.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# POSTs that add to a set (labels, assignees, reviewers) or mint a token: twice is once.
_IDEMPOTENT_POST = re.compile(
    r"/(labels|assignees|requested_reviewers|access_tokens|markdown|markdown/raw)$"
)
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
"""Server errors worth one more try, where repeating the request is safe."""


def safe_to_repeat(method: str, path: str) -> bool:
    """Whether sending this request twice has the effect of sending it once."""
    return method in _IDEMPOTENT_METHODS or (
        method == "POST" and _IDEMPOTENT_POST.search(path) is not None
    )


_LIST_WRAPPERS = {"total_count", "incomplete_results", "repository_selection"}


def page_items(body: Any, path: str) -> list[Any]:
    """The items of one page: the list itself, or the one list an object wraps them in."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if isinstance(body.get("items"), list):
            return list(body["items"])
        lists = [v for k, v in body.items() if k not in _LIST_WRAPPERS and isinstance(v, list)]
        if len(lists) == 1:
            return list(lists[0])
    raise ValueError(f"GET {path} did not answer with a list (or an object wrapping one)")


@dataclass(frozen=True)
class Decision:
    """What the client does with an answer: ``return`` it, ``wait`` (a rate limit, ``seconds``)
    then send again, ``retry`` after a backoff (a server error), or ``raise`` ``error``."""

    action: Literal["return", "wait", "retry", "raise"]
    error: GitHubAPIError | None = None
    seconds: float = 0.0


RETURN = Decision("return")


def decide(
    status: int,
    error: GitHubAPIError | None,
    *,
    repeatable: bool,
    failures: int,
    max_retries: int,
    max_rate_limit_wait: float,
) -> Decision:
    """The client's choice for an answer with ``status`` and, for an error status, its typed
    ``error`` (:func:`error_from_response`, or the platform's reader).

    >>> decide(200, None, repeatable=False, failures=0, max_retries=3, max_rate_limit_wait=60)
    Decision(action='return', error=None, seconds=0.0)
    >>> limited = RateLimited("GET", "/x", 429, None, None, 30.0, reset_at=0.0, secondary=False)
    >>> decide(429, limited, repeatable=True, failures=0, max_retries=3,
    ...        max_rate_limit_wait=60).action
    'wait'
    """
    if error is None:
        return RETURN
    if isinstance(error, RateLimited):
        wait = error.retry_after or 0.0
        if wait > max_rate_limit_wait:
            return Decision("raise", error)
        return Decision("wait", error, wait)
    if status in RETRYABLE_STATUS and repeatable and failures < max_retries:
        return Decision("retry", error)
    return Decision("raise", error)
