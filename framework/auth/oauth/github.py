"""GitHub's user tokens (seed 004 §4.3): the web flow, refresh, scopes, and the device flow.

- Authorize at ``{GITHUB_WEB_URL}/login/oauth/authorize`` with ``client_id``, ``redirect_uri``,
  space-separated ``scope``, ``state``, ``allow_signup``.
- Exchange and refresh at ``/login/oauth/access_token`` with a form body and
  ``Accept: application/json`` (without it GitHub answers form-encoded).
- A GitHub App's user tokens expire (``ghu_``, 8 h) and come with a refresh token (``ghr_``,
  6 months) that is used once: each refresh rotates both. An OAuth app's tokens never expire.
- Granted scopes arrive in the ``X-OAuth-Scopes`` header, normalised (``user`` implies
  ``user:email``).
- The device flow for command-line tools: ``/login/device/code``, then poll the token endpoint
  every ``interval`` seconds; ``slow_down`` adds 5 s; the code dies after ``expires_in``.

>>> oauth = GitHubOAuth(OAuthApp("Iv1.abc", "secret", "https://github.com",
...     "https://api.github.com", scopes=("repo", "user")))
>>> oauth.authorize_url("STATE", "https://bot.example/login/github/callback")
'https://github.com/login/oauth/authorize?client_id=Iv1.abc&redirect_uri=https%3A%2F%2Fbot.example%2Flogin%2Fgithub%2Fcallback&scope=repo+user&state=STATE&allow_signup=true'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from framework.auth.oauth.base import (
    Answer,
    Call,
    Grant,
    Identity,
    MissingScope,
    OAuthApp,
    OAuthError,
    basic_auth,
    error_in,
    expiry_time,
    get_as_user,
    identity_data,
    refresh_fields,
    scope_list,
    token_answer,
)

ACCEPT_JSON = {"Accept": "application/json"}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_SECONDS = 5.0

IMPLIED_SCOPES: Mapping[str, frozenset[str]] = {
    "repo": frozenset(
        {"repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events"}
    ),
    "user": frozenset({"read:user", "user:email", "user:follow"}),
    "admin:org": frozenset({"write:org", "read:org", "manage_runners:org"}),
    "write:org": frozenset({"read:org"}),
    "admin:public_key": frozenset({"write:public_key", "read:public_key"}),
    "write:public_key": frozenset({"read:public_key"}),
    "admin:repo_hook": frozenset({"write:repo_hook", "read:repo_hook"}),
    "write:repo_hook": frozenset({"read:repo_hook"}),
    "admin:gpg_key": frozenset({"write:gpg_key", "read:gpg_key"}),
    "write:gpg_key": frozenset({"read:gpg_key"}),
    "admin:ssh_signing_key": frozenset({"write:ssh_signing_key", "read:ssh_signing_key"}),
    "write:ssh_signing_key": frozenset({"read:ssh_signing_key"}),
    "write:packages": frozenset({"read:packages"}),
    "project": frozenset({"read:project"}),
    "admin:enterprise": frozenset(
        {"manage_runners:enterprise", "manage_billing:enterprise", "read:enterprise"}
    ),
    "manage_billing:enterprise": frozenset({"read:enterprise"}),
}
"""Scopes that a broader scope includes (GitHub's "understanding scopes" table)."""


def _implied(scope: str) -> frozenset[str]:
    found: set[str] = set()
    todo = [scope]
    while todo:
        for narrower in IMPLIED_SCOPES.get(todo.pop(), frozenset()):
            if narrower not in found:
                found.add(narrower)
                todo.append(narrower)
    return frozenset(found)


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes as GitHub stores them: each implied by another dropped, sorted, once each.

    >>> normalize_scopes(["user", "gist", "user:email"])
    ('gist', 'user')
    >>> normalize_scopes(["repo:status", "read:org", "admin:org", "repo"])
    ('admin:org', 'repo')
    """
    given = {s.strip() for s in scopes if s.strip()}
    covered: set[str] = set()
    for scope in given:
        covered |= _implied(scope)
    return tuple(sorted(given - covered))


def granted_scopes(header: str | None) -> tuple[str, ...] | None:
    """The ``X-OAuth-Scopes`` header as scopes; None when the header is absent (a GitHub App's
    user token, whose access is the app's permissions, not scopes).

    >>> granted_scopes("repo, user"), granted_scopes(""), granted_scopes(None)
    (('repo', 'user'), (), None)
    """
    if header is None:
        return None
    return tuple(s.strip() for s in header.split(",") if s.strip())


def missing_scopes(granted: Iterable[str], needed: Iterable[str]) -> tuple[str, ...]:
    """The ``needed`` scopes that ``granted`` neither holds nor implies.

    >>> missing_scopes(["repo", "user"], ["repo:status", "user:email", "gist"])
    ('gist',)
    """
    have: set[str] = set(granted)
    for scope in list(have):
        have |= _implied(scope)
    return tuple(s for s in needed if s not in have)


def require_scopes(user: str, granted: Iterable[str], needed: Iterable[str]) -> None:
    """Raise :class:`MissingScope` naming what ``user`` did not grant."""
    missing = missing_scopes(granted, needed)
    if missing:
        raise MissingScope(
            f"github user {user} did not grant the scope(s) {', '.join(missing)}: "
            "ask them to sign in again at /login/github"
        )


def read_token(platform: str, answer: Answer, now: float) -> Grant:
    """A token answer of GitHub's shape (also the device flow's and AtomGit's)."""
    data = token_answer(platform, answer)
    refresh = data.get("refresh_token")
    return Grant(
        access_token=str(data["access_token"]),
        refresh_token=str(refresh) if refresh else None,
        expires_at=expiry_time(data.get("expires_in"), now),
        refresh_expires_at=expiry_time(data.get("refresh_token_expires_in"), now),
        scopes=normalize_scopes(scope_list(data.get("scope"))),
        token_type=str(data.get("token_type") or "bearer"),
    )


@dataclass(frozen=True)
class GitHubOAuth:
    """GitHub's OAuth steps for one app (a GitHub App's client, or an OAuth app's)."""

    app: OAuthApp
    name: str = "github"
    allow_signup: bool = True

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """The authorize URL (scopes space-separated; ``allow_signup`` as ``true``/``false``)."""
        query = {"client_id": self.app.client_id, "redirect_uri": redirect_uri}
        if self.app.scopes:
            query["scope"] = " ".join(self.app.scopes)
        query |= {"state": state, "allow_signup": "true" if self.allow_signup else "false"}
        return f"{self.app.web_url}/login/oauth/authorize?{urlencode(query)}"

    def _token_call(self, form: Mapping[str, str]) -> Call:
        return Call(
            "POST",
            f"{self.app.web_url}/login/oauth/access_token",
            headers=ACCEPT_JSON,
            form={"client_id": self.app.client_id, "client_secret": self.app.client_secret, **form},
        )

    def exchange(self, code: str, redirect_uri: str) -> Call:
        """A form POST with ``Accept: application/json``."""
        return self._token_call({"code": code, "redirect_uri": redirect_uri})

    def read_grant(self, answer: Answer, now: float, callback: Mapping[str, str]) -> Grant:
        """``expires_in`` and ``refresh_token_expires_in`` are durations in seconds."""
        return read_token(self.name, answer, now)

    def refresh(self, grant: Grant) -> Call:
        """``grant_type=refresh_token``: GitHub answers with a new access and refresh token."""
        return self._token_call(refresh_fields(self.name, grant))

    def identity(self, grant: Grant) -> Call:
        """``GET /user`` as the user."""
        return get_as_user(f"{self.app.api_url}/user", self.authorization(grant.access_token))

    def read_identity(self, answer: Answer) -> Identity:
        """The user's id and login; the granted scopes from ``X-OAuth-Scopes``."""
        data = identity_data(self.name, answer)
        return Identity(
            str(data["id"]),
            str(data["login"]),
            granted_scopes(answer.headers.get("x-oauth-scopes")),
        )

    def authorization(self, access_token: str) -> str:
        """``Bearer`` (GitHub accepts it for every kind of token)."""
        return f"Bearer {access_token}"


def delete_grant_call(app: OAuthApp, access_token: str) -> Call:
    """``DELETE /applications/{client_id}/grant`` (Basic ``client_id:client_secret``): the user's
    authorization of the app withdrawn, every token of it with it. GitHub answers 204."""
    return Call(
        "DELETE",
        f"{app.api_url}/applications/{app.client_id}/grant",
        headers={**basic_auth(app), "Accept": "application/vnd.github+json"},
        json={"access_token": access_token},
    )


# The device flow -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCode:
    """What the user is shown (``user_code`` at ``verification_uri``) and what is polled."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_at: float
    interval: float


def device_code_call(app: OAuthApp) -> Call:
    """``POST /login/device/code`` with the client id and scopes (no secret)."""
    form = {"client_id": app.client_id}
    if app.scopes:
        form["scope"] = " ".join(app.scopes)
    return Call("POST", f"{app.web_url}/login/device/code", headers=ACCEPT_JSON, form=form)


def read_device_code(answer: Answer, now: float) -> DeviceCode:
    """The device code answer; :class:`OAuthError` if GitHub refused (device flow disabled)."""
    data = answer.data()
    said = error_in(data)
    if said is not None or answer.status >= 400 or not isinstance(data, Mapping):
        code, description = said or (f"http_{answer.status}", "no device code")
        raise OAuthError(f"github refused a device code: {code} ({description})", error=code)
    return DeviceCode(
        str(data["device_code"]),
        str(data["user_code"]),
        str(data["verification_uri"]),
        now + float(data.get("expires_in", 900)),
        float(data.get("interval", 5)),
    )


def device_token_call(app: OAuthApp, device: DeviceCode) -> Call:
    """One poll of the token endpoint for the device code."""
    return Call(
        "POST",
        f"{app.web_url}/login/oauth/access_token",
        headers=ACCEPT_JSON,
        form={"client_id": app.client_id, "device_code": device.device_code,
              "grant_type": DEVICE_GRANT},
    )  # fmt: skip


@dataclass(frozen=True)
class Poll:
    """What to do after one poll: ``grant`` (done), or wait ``interval`` seconds and poll again."""

    grant: Grant | None
    interval: float


def read_poll(answer: Answer, interval: float, now: float, expires_at: float) -> Poll:
    """The next step of the device flow after one poll's answer.

    ``authorization_pending``: poll again after ``interval``; ``slow_down``: after the interval
    GitHub gives (or ``interval`` + 5 s); ``expired_token``, ``access_denied`` and the code's
    ``expires_in`` passing: :class:`OAuthError`.

    >>> def answer(error): return Answer(200, {"content-type": "application/json"},
    ...                                   ('{"error": "%s"}' % error).encode())
    >>> read_poll(answer("authorization_pending"), 5, now=0, expires_at=900).interval
    5
    >>> read_poll(answer("slow_down"), 5, now=0, expires_at=900).interval
    10.0
    """
    data = answer.data()
    said = error_in(data)
    if said is None:
        return Poll(read_token("github", answer, now), interval)
    code, description = said
    if code == "authorization_pending" and now < expires_at:
        return Poll(None, interval)
    if code == "slow_down" and now < expires_at:
        given = data.get("interval") if isinstance(data, Mapping) else None
        return Poll(None, float(given) if given is not None else interval + SLOW_DOWN_SECONDS)
    if code in ("authorization_pending", "slow_down", "expired_token"):
        raise OAuthError(
            "the device code expired before the user entered it: run the command again",
            error="expired_token",
        )
    if code == "access_denied":
        raise OAuthError("the user denied access", error=code, rejected=True)
    raise OAuthError(f"github refused the device code: {code} ({description})", error=code)
