"""The app's JSON Web Token: how a GitHub App proves it is itself.

GitHub's rules: RS256, ``iss`` the app id or client id, ``exp`` no more than ten minutes after
the moment of issue. ``iat`` is backdated 60 s so a server clock slightly ahead of GitHub's is
not refused. A token is reused until shortly before it expires rather than signed per request:
an RSA signature costs more than the request it authorizes.

>>> claims = jwt_claims("12345", now=1_700_000_000)
>>> claims["iat"], claims["exp"] - 1_700_000_000, claims["iss"]
(1699999940, 540, '12345')
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

BACKDATE_SECONDS = 60
LIFETIME_SECONDS = 540  # GitHub refuses exp > 10 min ahead; 9 min leaves room for clock drift.
RENEW_BEFORE_SECONDS = 60


def jwt_claims(issuer: str, now: float, lifetime: int = LIFETIME_SECONDS) -> dict[str, Any]:
    """The claims of an app JWT issued at ``now`` (epoch seconds)."""
    issued = int(now)
    return {"iat": issued - BACKDATE_SECONDS, "exp": issued + lifetime, "iss": issuer}


class AppJWT:
    """Signs app JWTs and hands out the current one until it is about to expire.

    >>> signer = AppJWT("12345", private_key)  # doctest: +SKIP
    >>> headers = {"Authorization": f"Bearer {signer.token()}"}  # doctest: +SKIP
    """

    def __init__(
        self,
        issuer: str,
        private_key: RSAPrivateKey,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self._key = private_key
        self._clock = clock
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        """A valid JWT, signing a new one only when the current one is close to expiry."""
        now = self._clock()
        if now < self._expires - RENEW_BEFORE_SECONDS:
            return self._token
        with self._lock:
            if now >= self._expires - RENEW_BEFORE_SECONDS:
                import jwt  # PyJWT loads all of cryptography's algorithms: when first signing

                claims = jwt_claims(self.issuer, now)
                self._token = jwt.encode(claims, self._key, algorithm="RS256")
                self._expires = float(claims["exp"])
        return self._token

    def key_material(self) -> bytes:
        """The private key's bytes (DER), to derive other keys from; never log them."""
        return self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def invalidate(self) -> None:
        """Forget the current JWT (GitHub refused it, e.g. after a clock jump)."""
        self._expires = 0.0

    def __repr__(self) -> str:
        return f"AppJWT(issuer={self.issuer!r})"
