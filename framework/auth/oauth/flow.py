"""The OAuth steps' requests, sent: a thin layer of I/O over the pure steps.

>>> grant, identity = await sign_in(provider, http, code, redirect, callback, now)
...  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx

from framework.auth.oauth.base import Answer, Call, Grant, Identity, OAuthApp, OAuthError, Provider
from framework.auth.oauth.github import (
    DeviceCode,
    device_code_call,
    device_token_call,
    read_device_code,
    read_poll,
)

logger = logging.getLogger("framework.auth.oauth")


async def send(http: httpx.AsyncClient, call: Call) -> Answer:
    """Send one step's request; a network failure is an :class:`OAuthError` (not a refusal)
    that names the host only (an OAuth URL never carries a secret, but keep errors short)."""
    try:
        response = await http.request(
            call.method, call.url, headers=dict(call.headers), data=call.form, json=call.json
        )
    except httpx.HTTPError as exc:
        host = httpx.URL(call.url).host
        raise OAuthError(
            f"could not reach {host}: {type(exc).__name__}", error="unreachable"
        ) from None
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Answer(response.status_code, headers, response.content)


async def sign_in(
    provider: Provider,
    http: httpx.AsyncClient,
    code: str,
    redirect_uri: str,
    callback: Mapping[str, str],
    now: float,
) -> tuple[Grant, Identity]:
    """Exchange the callback's ``code`` and ask who signed in."""
    answer = await send(http, provider.exchange(code, redirect_uri))
    grant = provider.read_grant(answer, now, callback)
    identity = provider.read_identity(await send(http, provider.identity(grant)))
    return grant, identity


async def refresh(provider: Provider, http: httpx.AsyncClient, grant: Grant, now: float) -> Grant:
    """New tokens for ``grant``; its resource and team are kept when the answer omits them."""
    fresh = provider.read_grant(await send(http, provider.refresh(grant)), now, {})
    return Grant(
        access_token=fresh.access_token,
        refresh_token=fresh.refresh_token or grant.refresh_token,
        expires_at=fresh.expires_at,
        refresh_expires_at=fresh.refresh_expires_at
        if fresh.refresh_token
        else grant.refresh_expires_at,
        scopes=fresh.scopes or grant.scopes,
        token_type=fresh.token_type,
        resource=fresh.resource or grant.resource,
        team=fresh.team or grant.team,
    )


MAX_POLLS = 10_000  # a bound on the loop; the code's expiry ends it long before


async def device_flow(
    app: OAuthApp,
    http: httpx.AsyncClient,
    show: Callable[[DeviceCode], None],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> Grant:
    """GitHub's device flow: get a code, ``show`` it to the user, poll until they enter it."""
    device = read_device_code(await send(http, device_code_call(app)), clock())
    show(device)
    interval = device.interval
    for _ in range(MAX_POLLS):
        await sleep(interval)
        answer = await send(http, device_token_call(app, device))
        poll = read_poll(answer, interval, clock(), device.expires_at)
        if poll.grant is not None:
            return poll.grant
        if poll.interval != interval:
            logger.info("GitHub asked to poll more slowly: every %.0f s", poll.interval)
        interval = poll.interval
    raise OAuthError("the device code was polled too often", error="too_many_polls")
