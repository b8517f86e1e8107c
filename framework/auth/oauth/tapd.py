"""TAPD's user tokens (seed 002): workspace grants.

- Authorize at ``{TAPD_WEB_URL}/oauth/`` with ``response_type=code``, ``client_id``,
  ``redirect_uri``, **space-separated** ``scope``, ``state`` and ``auth_by`` (``workspace``, the
  default, or ``take_park_workspace``).
- The callback carries ``resource``, JSON such as ``{"type":"workspace","workspace_id":1}``
  (the seed's sample spells it ``resouce``): the grant's scope, kept with the token.
- Exchange at ``{TAPD_API_URL}/tokens/request_token`` with HTTP **Basic**
  ``client_id:client_secret`` and a **form** body; answers come in TAPD's
  ``{"status", "data", "info"}`` envelope (``status`` other than 1 is an error, told by
  ``info``). Tokens live 7200 s; the code lives 5 minutes.

>>> oauth = TapdOAuth(OAuthApp("demo", "open sesame", "https://www.tapd.cn",
...     "https://api.tapd.cn", scopes=("bug", "story")))
>>> oauth.authorize_url("S", "https://bot.example/login/tapd/callback")
'https://www.tapd.cn/oauth/?response_type=code&client_id=demo&redirect_uri=https%3A%2F%2Fbot.example%2Flogin%2Ftapd%2Fcallback&scope=bug+story&state=S&auth_by=workspace'
>>> oauth.exchange("82a6", "https://bot.example/cb").headers["Authorization"]
'Basic ZGVtbzpvcGVuIHNlc2FtZQ=='
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from framework.auth.oauth.base import (
    Answer,
    Call,
    Grant,
    Identity,
    OAuthApp,
    OAuthError,
    basic_auth,
    expiry_time,
    get_as_user,
    identity_data,
    refresh_fields,
    scope_list,
)

AUTH_BY = ("workspace", "take_park_workspace")


def unwrap(answer: Answer, what: str) -> Any:
    """The ``data`` of an enveloped answer; :class:`OAuthError` with ``info`` otherwise.

    >>> unwrap(Answer(200, {}, b'{"status": 0, "data": null, "info": "invalid code"}'), "token")
    Traceback (most recent call last):
    ...
    framework.auth.oauth.base.OAuthError: tapd refused the token request: invalid code
    """
    body = answer.data()
    if not isinstance(body, Mapping) or "status" not in body:
        raise OAuthError(
            f"tapd's {what} answer (HTTP {answer.status}) is not its {{status, data, info}}",
            error=f"http_{answer.status}",
            rejected=400 <= answer.status < 500,
        )
    if body["status"] != 1:
        info = str(body.get("info") or "error")
        raise OAuthError(
            f"tapd refused the {what} request: {info[:200]}",
            error=info,
            rejected=answer.status < 500,
        )
    return body.get("data")


def read_resource(callback: Mapping[str, str]) -> dict[str, Any] | None:
    """The callback's ``resource`` (or the seed's ``resouce``) JSON; None when absent.

    >>> read_resource({"resource": '{"type":"workspace","workspace_id":10022001}'})
    {'type': 'workspace', 'workspace_id': 10022001}
    """
    raw = callback.get("resource") or callback.get("resouce")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise OAuthError("the callback's resource is not JSON", error="bad_resource") from None
    if not isinstance(value, dict):
        raise OAuthError("the callback's resource is not a JSON object", error="bad_resource")
    return value


@dataclass(frozen=True)
class TapdOAuth:
    """TAPD's OAuth steps for one app."""

    app: OAuthApp
    name: str = "tapd"

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Scopes space-separated, ``auth_by`` from ``TAPD_AUTH_BY``."""
        auth_by = self.app.options.get("auth_by", "workspace")
        if auth_by not in AUTH_BY:
            raise ValueError(f"auth_by must be one of {AUTH_BY}, not {auth_by!r}")
        query = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.app.scopes),
            "state": state,
            "auth_by": auth_by,
        }
        return f"{self.app.web_url}/oauth/?{urlencode(query)}"

    def _token_call(self, form: Mapping[str, str]) -> Call:
        return Call(
            "POST",
            f"{self.app.api_url}/tokens/request_token",
            headers=basic_auth(self.app),
            form=dict(form),
        )

    def exchange(self, code: str, redirect_uri: str) -> Call:
        """Basic ``client_id:client_secret``; form ``grant_type``, ``redirect_uri``, ``code``."""
        return self._token_call(
            {"grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code}
        )

    def read_grant(self, answer: Answer, now: float, callback: Mapping[str, str]) -> Grant:
        """The envelope unwrapped; the resource from the answer, else from the callback."""
        data = unwrap(answer, "token")
        if not isinstance(data, Mapping) or not data.get("access_token"):
            raise OAuthError("tapd's token answer has no access_token", error="no_token")
        resource = data.get("resource")
        refresh = data.get("refresh_token")
        return Grant(
            access_token=str(data["access_token"]),
            refresh_token=str(refresh) if refresh else None,
            expires_at=expiry_time(data.get("expires_in"), now),
            scopes=scope_list(data.get("scope")),
            token_type=str(data.get("token_type") or "Bearer"),
            resource=dict(resource) if isinstance(resource, Mapping) else read_resource(callback),
        )

    def refresh(self, grant: Grant) -> Call:
        """For apps that renew with refresh tokens: ``grant_type=refresh_token``."""
        return self._token_call(refresh_fields(self.name, grant))

    def identity(self, grant: Grant) -> Call:
        """``GET /users/info`` as the user."""
        return get_as_user(f"{self.app.api_url}/users/info", self.authorization(grant.access_token))

    def read_identity(self, answer: Answer) -> Identity:
        """The user's ``id`` and ``nick`` from the envelope's ``data``."""
        identity_data(self.name, answer)
        data = unwrap(answer, "user")
        if not isinstance(data, Mapping):
            raise OAuthError("tapd's user answer has no data")
        user = data.get("User", data)
        return Identity(str(user["id"]), str(user.get("nick") or user.get("name")))

    def authorization(self, access_token: str) -> str:
        """``Bearer ...``."""
        return f"Bearer {access_token}"
