"""Who may open the setup and status pages, as pure functions.

The pages answer a person on the bot's own machine (a loopback client, asking for a loopback
host name: a page fetched through DNS rebinding names another host) and, when
``STATUS_PAGE_TOKEN`` is set, anyone presenting it: ``Authorization: Bearer <token>``, or the
signed session cookie the login form sets. A request that came through a proxy (it carries a
forwarding header) is not a loopback request, whatever address the proxy connects from.

Forms that change something carry a CSRF token: an HMAC of a random cookie the browser holds,
so another site can neither read nor forge it.

>>> key = pages_key(None)
>>> cookie = new_nonce()
>>> csrf_matches(key, cookie, csrf_token(key, cookie))
True
>>> csrf_matches(key, cookie, "forged")
False
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping

__all__ = [
    "SESSION_SECONDS",
    "bearer_matches",
    "csrf_matches",
    "csrf_token",
    "is_local_request",
    "new_nonce",
    "pages_key",
    "session_cookie",
    "session_valid",
    "token_matches",
]

SESSION_SECONDS = 12 * 3600
"""How long a login on the status page lasts."""

_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def pages_key(token: str | None) -> bytes:
    """The key that signs sessions and CSRF tokens: derived from ``STATUS_PAGE_TOKEN`` (a
    login survives a restart), else random for this process."""
    if token is None:
        return secrets.token_bytes(32)
    return hashlib.sha256(b"framework status page\x00" + token.encode()).digest()


def new_nonce() -> str:
    """A random value for a cookie."""
    return secrets.token_urlsafe(24)


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_local_request(client: str | None, headers: Mapping[str, str]) -> bool:
    """A request from this machine's loopback, for a loopback host name, not proxied.

    ``headers`` has lower-case names.

    >>> is_local_request("127.0.0.1", {"host": "localhost:3000"})
    True
    >>> is_local_request("10.0.0.5", {"host": "localhost:3000"})
    False
    >>> is_local_request("127.0.0.1", {"host": "evil.example:3000"})  # DNS rebinding
    False
    >>> is_local_request("127.0.0.1", {"host": "localhost", "x-forwarded-for": "1.2.3.4"})
    False
    """
    if not _is_loopback(client):
        return False
    if any(name in headers for name in _FORWARDING_HEADERS):
        return False
    name = _host_name(headers.get("host", ""))
    return name in _LOCAL_NAMES or name.endswith(".localhost") or _is_loopback(name.strip("[]"))


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant time).

    >>> bearer_matches("Bearer s3cret", "s3cret"), bearer_matches("Bearer nope", "s3cret")
    (True, False)
    """
    scheme, _, value = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and token_matches(value.strip(), token)


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is ``token``, compared in constant time."""
    return hmac.compare_digest(given.encode(), token.encode())


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def session_cookie(key: bytes, now: float) -> str:
    """A login session's cookie value, valid for :data:`SESSION_SECONDS` from ``now``."""
    expires = int(now) + SESSION_SECONDS
    return f"{expires}.{_sign(key, f'session.{expires}')}"


def session_valid(key: bytes, value: str | None, now: float) -> bool:
    """Whether a session cookie was signed with ``key`` and has not expired.

    >>> key = pages_key("t")
    >>> session_valid(key, session_cookie(key, 1000.0), 1000.0 + SESSION_SECONDS - 1)
    True
    >>> session_valid(key, session_cookie(key, 1000.0), 1000.0 + SESSION_SECONDS + 1)
    False
    >>> session_valid(pages_key("other"), session_cookie(key, 1000.0), 1000.0)
    False
    """
    expires, _, signature = (value or "").partition(".")
    if not expires.isdigit() or int(expires) <= now:
        return False
    return hmac.compare_digest(signature, _sign(key, f"session.{expires}"))


def csrf_token(key: bytes, cookie: str) -> str:
    """The token a form carries: bound to the browser's CSRF cookie and this bot's key."""
    return _sign(key, f"csrf.{cookie}")


def csrf_matches(key: bytes, cookie: str | None, token: str | None) -> bool:
    """Whether a form's token belongs to the browser's CSRF cookie."""
    if not cookie or not token:
        return False
    return hmac.compare_digest(token, csrf_token(key, cookie))
