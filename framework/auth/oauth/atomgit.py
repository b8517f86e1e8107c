"""AtomGit's user tokens (seed 000 §3): ``atu_`` tokens that live 8 hours.

- Authorize at ``{ATOMGIT_WEB_URL}/login/oauth/authorize`` with ``client_id`` and ``state``
  (the callback is the one registered with the app).
- Exchange and refresh at ``{ATOMGIT_API_URL}/login/oauth/access_token`` with **JSON** bodies;
  a refresh adds ``"grant_type": "refresh_token"``.
- ``expires_in`` and ``refresh_token_expires_in`` are **absolute epoch milliseconds**, not
  durations (the seed's samples); the refresh answer may give back the same refresh token.

>>> from framework.auth.oauth.base import OAuthApp
>>> oauth = AtomGitOAuth(OAuthApp("Iv1.4952", "secret", "https://atomgit.com",
...     "https://api.atomgit.com"))
>>> oauth.authorize_url("STATE", "ignored")
'https://atomgit.com/login/oauth/authorize?client_id=Iv1.4952&state=STATE'
>>> grant = oauth.read_grant(Answer(200, {"content-type": "application/json"},
...     b'{"access_token": "atu_f7", "expires_in": 1684166156606, '
...     b'"refresh_token": "refresh_1c", "refresh_token_expires_in": 1700034956606}'), 0.0, {})
>>> grant.expires_at, grant.refresh_expires_at
(1684166156.606, 1700034956.606)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from framework.auth.oauth.base import (
    Answer,
    Call,
    Identity,
    identity_data,
)
from framework.auth.oauth.github import GitHubOAuth

JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@dataclass(frozen=True)
class AtomGitOAuth(GitHubOAuth):
    """AtomGit's OAuth steps for one app: GitHub's, but for the authorize query, JSON token
    requests to the API host and epoch-millisecond expiry (read by
    :func:`~framework.auth.oauth.base.expiry_time` like any other form)."""

    name: str = "atomgit"

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Only ``client_id`` and ``state``: AtomGit calls back the app's registered URL."""
        query = urlencode({"client_id": self.app.client_id, "state": state})
        return f"{self.app.web_url}/login/oauth/authorize?{query}"

    def _token_call(self, form: Mapping[str, str]) -> Call:
        return Call(
            "POST",
            f"{self.app.api_url}/login/oauth/access_token",
            headers=JSON,
            json={"client_id": self.app.client_id, "client_secret": self.app.client_secret, **form},
        )

    def exchange(self, code: str, redirect_uri: str) -> Call:
        """A JSON POST of ``client_id``, ``client_secret`` and ``code``."""
        return self._token_call({"code": code})

    def read_identity(self, answer: Answer) -> Identity:
        """The user's ``id`` and ``login``."""
        data = identity_data(self.name, answer)
        return Identity(str(data["id"]), str(data.get("login") or data.get("username")))
