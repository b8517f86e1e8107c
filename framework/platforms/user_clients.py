"""Clients that act as a signed-in user, on each platform (``app.user_client``).

A user client is the platform's own client class (GitHub's REST client, CODING's with the open
API, TAPD's with its envelope) over the platform's connection pool, authenticated with the
user's stored token (:class:`~framework.auth.user_tokens.UserAuth`, which refreshes it).

>>> client = await app.user_client("github", "octocat")  # doctest: +SKIP
>>> repos = (await client.get("/user/repos")).json()  # doctest: +SKIP
"""

from __future__ import annotations

from framework.auth.oauth.base import Provider
from framework.auth.user_tokens import UserAuth, UserGrant, UserTokens
from framework.client.rest import GitHubClient
from framework.platforms.coding import CodingClient
from framework.platforms.connections import AccountConnection, AppConnection, Connection
from framework.platforms.tapd import TapdClient
from framework.settings import Settings


def user_client(
    connection: Connection,
    tokens: UserTokens,
    provider: Provider,
    stored: UserGrant,
    settings: Settings,
) -> GitHubClient:
    """A client of ``connection``'s platform acting as the user of ``stored``."""
    if not isinstance(connection, AppConnection | AccountConnection):
        raise TypeError(f"no user clients for {type(connection).__name__}")
    auth = UserAuth(tokens, stored.platform, stored.user_id, provider)
    if stored.platform == "coding":
        coding = CodingClient(connection.http, auth, shared=connection.shared)
        coding.open_api_url = settings.coding_open_api_url
        return coding
    if stored.platform == "tapd":
        tapd = TapdClient(connection.http, auth, shared=connection.shared)
        tapd.author = stored.login
        return tapd
    return GitHubClient(connection.http, auth, shared=connection.shared)
