"""CODING's user tokens (seeds 001, 003): team OAuth.

- Authorize at ``https://{team}.coding.net/oauth_authorize.html`` with ``client_id``,
  ``redirect_uri``, ``response_type=code``, **comma-separated** ``scope`` and ``state``.
- Exchange at ``https://{team}.coding.net/api/oauth/access_token`` (a form POST of
  ``client_id``, ``client_secret``, ``code``, ``grant_type=authorization_code``).
- The answer's ``expires_in`` is a **string** of seconds (``"780260"``), and it names the
  ``team``: later calls go to that team's host.
- Who signed in: ``GET https://{team}.coding.net/api/me``.

``CODING_WEB_URL`` may hold ``{team}``: its default is ``https://{team}.coding.net``.

>>> oauth = CodingOAuth(OAuthApp("cid", "secret", "https://{team}.coding.net", "",
...     scopes=("user", "project"), options={"team": "anywhere"}))
>>> oauth.authorize_url("S", "https://bot.example/login/coding/callback")
'https://anywhere.coding.net/oauth_authorize.html?client_id=cid&redirect_uri=https%3A%2F%2Fbot.example%2Flogin%2Fcoding%2Fcallback&response_type=code&scope=user%2Cproject&state=S'
>>> oauth.read_grant(Answer(200, {"content-type": "application/json"},
...     b'{"access_token": "888", "refresh_token": "666", "team": "anywhere",'
...     b' "expires_in": "780260", "token_type": "bearer"}'), 1000.0, {}).expires_at
781260.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from framework.auth.oauth.base import (
    Answer,
    Call,
    Grant,
    Identity,
    OAuthApp,
    OAuthError,
    expiry_time,
    get_as_user,
    identity_data,
    refresh_fields,
    token_answer,
)

DEFAULT_WEB_URL = "https://{team}.coding.net"


def team_url(web_url: str, team: str | None) -> str:
    """The team's host: ``{team}`` filled in.

    >>> team_url("https://{team}.coding.net", "anywhere")
    'https://anywhere.coding.net'
    """
    if "{team}" not in web_url:
        return web_url
    if not team:
        raise OAuthError("CODING_TEAM is not set: CODING's sign-in is per team")
    return web_url.replace("{team}", team)


@dataclass(frozen=True)
class CodingOAuth:
    """CODING's OAuth steps for one app and team."""

    app: OAuthApp
    name: str = "coding"

    def _url(self, team: str | None = None) -> str:
        return team_url(self.app.web_url, team or self.app.options.get("team"))

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Scopes comma-separated, ``response_type=code``."""
        query = {
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": ",".join(self.app.scopes),
            "state": state,
        }
        return f"{self._url()}/oauth_authorize.html?{urlencode(query)}"

    def _token_call(self, form: Mapping[str, str], team: str | None = None) -> Call:
        return Call(
            "POST",
            f"{self._url(team)}/api/oauth/access_token",
            headers={"Accept": "application/json"},
            form={"client_id": self.app.client_id, "client_secret": self.app.client_secret, **form},
        )

    def exchange(self, code: str, redirect_uri: str) -> Call:
        """A form POST with ``grant_type=authorization_code``."""
        return self._token_call({"code": code, "grant_type": "authorization_code"})

    def read_grant(self, answer: Answer, now: float, callback: Mapping[str, str]) -> Grant:
        """``expires_in`` is a string of seconds; ``team`` names the user's team."""
        data = token_answer(self.name, answer)
        refresh = data.get("refresh_token")
        return Grant(
            access_token=str(data["access_token"]),
            refresh_token=str(refresh) if refresh else None,
            expires_at=expiry_time(data.get("expires_in"), now),
            token_type=str(data.get("token_type") or "bearer"),
            scopes=self.app.scopes,
            team=str(data["team"]) if data.get("team") else self.app.options.get("team"),
        )

    def refresh(self, grant: Grant) -> Call:
        """``grant_type=refresh_token`` at the grant's team."""
        return self._token_call(refresh_fields(self.name, grant), grant.team)

    def identity(self, grant: Grant) -> Call:
        """``GET /api/me`` at the team the answer named."""
        return get_as_user(
            f"{self._url(grant.team)}/api/me", self.authorization(grant.access_token)
        )

    def read_identity(self, answer: Answer) -> Identity:
        """``id`` and ``global_key`` (the login); the older ``{code, data}`` wrapping too."""
        data = identity_data(self.name, answer)
        if "data" in data and "code" in data:
            if data["code"] != 0:
                raise OAuthError(f"coding refused to say who the user is: {data.get('msg')}")
            data = data["data"]
        return Identity(str(data["id"]), str(data.get("global_key") or data.get("name")))

    def authorization(self, access_token: str) -> str:
        """``token ...``, as CODING takes its tokens in a header."""
        return f"token {access_token}"
