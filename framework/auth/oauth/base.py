"""What every platform's OAuth flow shares: its shapes, the signed ``state``, the redirect rules,
and how expiry times are read. Pure functions; the I/O is in :mod:`framework.auth.oauth.flow`.

A sign-in is: send the browser to the platform's authorize URL with a ``state``
(:func:`new_state`), read the callback (:func:`read_state`), exchange the ``code`` for a
:class:`Grant` (one :class:`Call`), ask who the user is (:class:`Identity`), store the grant.
Each platform module (:mod:`~framework.auth.oauth.github`, ``atomgit``, ``coding``, ``tapd``)
says how each step is written on that platform, as a :class:`Provider`.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from framework.auth.sealing import Sealer, Unsealable
from framework.errors import FrameworkError

STATE_SECONDS = 600
"""A ``state`` is good for 10 minutes after the browser was sent to sign in."""


class OAuthError(FrameworkError):
    """A step of a sign-in or refresh failed. ``error`` is the platform's code (such as
    ``bad_verification_code``); ``rejected`` says the platform refused the grant itself (so
    the user must sign in again), as opposed to being unreachable."""

    def __init__(self, message: str, *, error: str = "error", rejected: bool = False) -> None:
        super().__init__(message)
        self.error = error
        self.rejected = rejected


class InvalidState(OAuthError):
    """The callback's ``state`` is missing, forged, expired, replayed or not this browser's."""


class SignInRequired(OAuthError):
    """A user's grant no longer works (refresh token expired or refused, or revoked): the user
    must sign in again at ``login_path``."""

    def __init__(self, platform: str, user: str, why: str) -> None:
        self.platform = platform
        self.user = user
        self.login_path = f"/login/{platform}"
        super().__init__(
            f"{platform} user {user} must sign in again at {self.login_path}: {why}",
            error="sign_in_required",
            rejected=True,
        )


class MissingScope(FrameworkError):
    """The user did not grant a scope the caller needs."""


@dataclass(frozen=True)
class Call:
    """One HTTP request a step makes. Secrets in headers and bodies are kept out of ``repr``."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)
    json: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Answer:
    """A platform's answer to a :class:`Call`: status, lower-case headers, body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def data(self) -> Any:
        """The body as JSON, or as a form (GitHub's default answer); {} when neither.

        >>> Answer(200, {"content-type": "application/x-www-form-urlencoded"},
        ...        b"access_token=x&token_type=bearer").data()
        {'access_token': 'x', 'token_type': 'bearer'}
        """
        content_type = self.headers.get("content-type", "")
        text = self.body.decode("utf-8", "replace")
        if "x-www-form-urlencoded" in content_type:
            return {k: v[0] for k, v in parse_qs(text).items()}
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            return {}


@dataclass(frozen=True)
class Grant:
    """What a platform granted: the tokens, when they expire (epoch seconds; None: never),
    the scopes, and what the grant covers (TAPD's ``resource``, CODING's ``team``)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    refresh_expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "bearer"
    resource: Mapping[str, Any] | None = None
    team: str | None = None

    def fresh(self, now: float, margin: float) -> bool:
        """Whether the access token is good for at least ``margin`` more seconds.

        >>> Grant("t", expires_at=1000.0).fresh(now=600.0, margin=300.0)
        True
        >>> Grant("t", expires_at=1000.0).fresh(now=800.0, margin=300.0)
        False
        """
        return self.expires_at is None or self.expires_at - now > margin

    def refreshable(self, now: float) -> bool:
        """Whether a refresh token is held that has not expired."""
        return self.refresh_token is not None and (
            self.refresh_expires_at is None or self.refresh_expires_at > now
        )


@dataclass(frozen=True)
class Identity:
    """Who signed in: the platform's user id and login (``scopes``: as the API reports them)."""

    user_id: str
    login: str
    scopes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OAuthApp:
    """A platform's OAuth app as configured: its client, where its web and API hosts are."""

    client_id: str
    client_secret: str = field(repr=False)
    web_url: str
    api_url: str
    scopes: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    """Platform-specific: CODING's ``team``, TAPD's ``auth_by``."""


class Provider(Protocol):
    """One platform's OAuth steps, each a pure function of its inputs."""

    @property
    def name(self) -> str:
        """The platform's name."""
        ...

    @property
    def app(self) -> OAuthApp:
        """The OAuth app as configured."""
        ...

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Where the browser is sent to sign in."""
        ...

    def exchange(self, code: str, redirect_uri: str) -> Call:
        """The request that trades the callback's ``code`` for tokens."""
        ...

    def read_grant(self, answer: Answer, now: float, callback: Mapping[str, str]) -> Grant:
        """The grant in a token answer (``callback``: the callback's query, for TAPD's
        ``resource``); :class:`OAuthError` for an error answer."""
        ...

    def refresh(self, grant: Grant) -> Call:
        """The request that trades ``grant``'s refresh token for new tokens."""
        ...

    def identity(self, grant: Grant) -> Call:
        """The request that asks who the token's user is."""
        ...

    def read_identity(self, answer: Answer) -> Identity:
        """The user in an identity answer."""
        ...

    def authorization(self, access_token: str) -> str:
        """The ``Authorization`` header value for API calls as the user."""
        ...


# Expiry --------------------------------------------------------------------------------------

EPOCH_MILLISECONDS_FROM = 1e11  # later than 1973 in ms, or a duration of over 3000 years
EPOCH_SECONDS_FROM = 1e9  # 2001 in seconds, or a duration of over 31 years


def expiry_time(value: Any, now: float) -> float | None:
    """An answer's expiry as epoch seconds, whichever way the platform wrote it; None when the
    answer gives none (a token that does not expire).

    ====================================== ===========================================
    ``"2023-05-07T04:02:40.758+08:00"``     ISO time with its offset (AtomGit's app tokens)
    ``1684166156606``                       absolute epoch milliseconds (AtomGit's OAuth)
    ``"780260"``                            seconds from now, as a string (CODING)
    ``7200`` / ``28800``                    seconds from now (TAPD, GitHub)
    ``1684166156``                          absolute epoch seconds
    ====================================== ===========================================

    >>> expiry_time("780260", now=1000.0), expiry_time(7200, now=1000.0)
    (781260.0, 8200.0)
    >>> expiry_time(1684166156606, now=0.0), expiry_time(None, now=0.0)
    (1684166156.606, None)
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise OAuthError(f"unreadable expiry time {text[:40]!r}") from None
            if moment.tzinfo is None:
                raise OAuthError(f"the expiry time {text[:40]!r} has no UTC offset") from None
            return moment.timestamp()
        return expiry_time(number, now)
    if not isinstance(value, int | float) or value < 0:
        raise OAuthError(f"unreadable expiry {value!r}")
    if value >= EPOCH_MILLISECONDS_FROM:
        return value / 1000.0
    if value >= EPOCH_SECONDS_FROM:
        return float(value)
    return now + float(value)


# Where the browser goes ----------------------------------------------------------------------


def callback_path(platform: str) -> str:
    """The bot's callback path for ``platform``.

    >>> callback_path("tapd")
    '/login/tapd/callback'
    """
    return f"/login/{platform}/callback"


def redirect_uri(public_url: str, platform: str) -> str:
    """The callback URL sent to the platform: ``{PUBLIC_URL}/login/{platform}/callback``.

    >>> redirect_uri("https://bot.example/", "github")
    'https://bot.example/login/github/callback'
    """
    return public_url.rstrip("/") + callback_path(platform)


def safe_next(value: str | None) -> str:
    """Where to send the browser after signing in: only a path of this bot (no open redirect).

    >>> safe_next(None), safe_next("/repos?page=2")
    ('/', '/repos?page=2')
    >>> safe_next("https://evil.example")
    Traceback (most recent call last):
    ...
    ValueError: next must be a path of this bot, such as /dashboard
    """
    if value is None or value == "":
        return "/"
    parts = urlsplit(value)
    if (
        not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or "\\" in value
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        raise ValueError("next must be a path of this bot, such as /dashboard")
    return value


def _port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme)


def redirect_uri_allowed(callback: str, redirect: str) -> bool:
    """GitHub's rule: same scheme, host and port as the registered callback URL, and a path
    equal to the callback's or below it.

    >>> redirect_uri_allowed("http://example.com/path", "http://example.com/path/subdir/other")
    True
    >>> redirect_uri_allowed("http://example.com/path", "http://example.com/pathology")
    False
    """
    registered, asked = urlsplit(callback), urlsplit(redirect)
    if (registered.scheme, (registered.hostname or "").lower()) != (
        asked.scheme,
        (asked.hostname or "").lower(),
    ):
        return False
    try:
        if _port(registered.scheme, registered.port) != _port(asked.scheme, asked.port):
            return False
    except ValueError:  # a port that is not a number
        return False
    base = registered.path.rstrip("/")
    path = asked.path
    if "/../" in path + "/" or "/./" in path + "/":
        return False
    return path == base or path == base + "/" or path.startswith(base + "/")


# The signed state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StateClaims:
    """What a ``state`` carries: the platform, this browser's nonce, where to go after."""

    platform: str
    nonce: str
    next: str


def new_state(sealer: Sealer, platform: str, next_path: str, now: float) -> tuple[str, str]:
    """A ``state`` for one sign-in and the nonce that binds it to the browser (set it in a
    cookie): random, sealed (so it cannot be forged or read), stamped with ``now``."""
    nonce = secrets.token_urlsafe(24)
    body = json.dumps({"p": platform, "n": nonce, "x": next_path}).encode()
    return sealer.seal(body, at=now).decode(), nonce


def read_state(
    sealer: Sealer,
    state: str | None,
    *,
    platform: str,
    cookie_nonce: str | None,
    now: float,
    ttl: float = STATE_SECONDS,
) -> StateClaims:
    """The claims of the callback's ``state``; :class:`InvalidState` saying why it is refused
    (single use is the store's: :meth:`~framework.auth.user_tokens.TokenStore.use_once`)."""
    if not state:
        raise InvalidState("the callback has no state: start signing in again", error="no_state")
    try:
        data = json.loads(sealer.open(state, ttl=ttl, at=now))
        claims = StateClaims(str(data["p"]), str(data["n"]), str(data["x"]))
    except (Unsealable, ValueError, KeyError, TypeError):
        raise InvalidState(
            "the sign-in link is forged, damaged or older than 10 minutes: start signing in again",
            error="bad_state",
        ) from None
    if claims.platform != platform:
        raise InvalidState("the state was made for another platform", error="bad_state")
    if not cookie_nonce or not secrets.compare_digest(cookie_nonce, claims.nonce):
        raise InvalidState(
            "the sign-in was started in another browser (or its cookie is gone): "
            "start signing in again",
            error="foreign_state",
        )
    return claims


# Reading answers -----------------------------------------------------------------------------


def error_in(data: Any) -> tuple[str, str] | None:
    """``(code, description)`` of an OAuth error answer (RFC 6749's ``error``, or a
    ``message``); None when ``data`` is no error.

    >>> error_in({"error": "bad_verification_code", "error_description": "expired"})
    ('bad_verification_code', 'expired')
    """
    if not isinstance(data, Mapping):
        return None
    if data.get("error"):
        code = str(data["error"])
        return code, str(data.get("error_description") or data.get("message") or code)
    return None


REJECTING_ERRORS = frozenset(
    {"invalid_grant", "bad_refresh_token", "bad_verification_code", "unauthorized_client",
     "invalid_client", "incorrect_client_credentials", "redirect_uri_mismatch", "access_denied",
     "invalid_request", "expired_token"}
)  # fmt: skip
"""Error codes that refuse the grant itself (as opposed to the platform being unavailable)."""


def token_answer(platform: str, answer: Answer) -> Mapping[str, Any]:
    """The JSON object of a token answer; :class:`OAuthError` for an error answer (a 4xx or
    an ``error`` field is a refusal, a 5xx is not), naming the platform's error code only."""
    data = answer.data()
    said = error_in(data)
    if said is not None:
        code, description = said
        raise OAuthError(
            f"{platform} refused: {code} ({description[:200]})",
            error=code,
            rejected=code in REJECTING_ERRORS or 400 <= answer.status < 500,
        )
    if answer.status >= 400:
        raise OAuthError(
            f"{platform} answered HTTP {answer.status} to the token request",
            error=f"http_{answer.status}",
            rejected=answer.status < 500,
        )
    if not isinstance(data, Mapping) or not data.get("access_token"):
        raise OAuthError(f"{platform}'s token answer has no access_token", error="no_token")
    return data


def scope_list(value: Any, separator: str | None = None) -> tuple[str, ...]:
    """Scopes from an answer: a list, or a string split on commas and spaces.

    >>> scope_list("repo,gist"), scope_list("story bug"), scope_list(None)
    (('repo', 'gist'), ('story', 'bug'), ())
    """
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if str(v))
    return tuple(part for part in str(value).replace(",", " ").split() if part)


def refresh_fields(platform: str, grant: Grant) -> dict[str, str]:
    """The fields of a refresh request (``grant_type=refresh_token``); :class:`OAuthError` for a
    grant without a refresh token.

    >>> refresh_fields("github", Grant("ghu_a", refresh_token="ghr_b"))["grant_type"]
    'refresh_token'
    """
    if grant.refresh_token is None:
        raise OAuthError(f"this {platform} token has no refresh token", rejected=True)
    return {"grant_type": "refresh_token", "refresh_token": grant.refresh_token}


def basic_auth(app: OAuthApp) -> dict[str, str]:
    """HTTP Basic with the app's ``client_id:client_secret`` (TAPD's token requests, GitHub's
    grant deletion).

    >>> basic_auth(OAuthApp("Aladdin", "open sesame", "", ""))
    {'Authorization': 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=='}
    """
    pair = f"{app.client_id}:{app.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def get_as_user(url: str, authorization: str) -> Call:
    """A ``GET`` of ``url`` with the user's ``Authorization`` header."""
    return Call("GET", url, headers={"Authorization": authorization})


def identity_data(platform: str, answer: Answer) -> Mapping[str, Any]:
    """The JSON object of an identity answer; :class:`OAuthError` when the API refused."""
    data = answer.data()
    if answer.status >= 400 or not isinstance(data, Mapping):
        raise OAuthError(
            f"{platform} refused to say who the user is (HTTP {answer.status})",
            error=f"http_{answer.status}",
            rejected=answer.status in (401, 403),
        )
    return data
