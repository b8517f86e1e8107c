"""Webhook signatures: ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body) and legacy sha1.

Pure functions and one small class, no I/O. The check runs over the body bytes exactly as
received, before anything parses them, and compares in constant time.

>>> sign(b"Hello, World!", "It's a Secret to Everybody")
'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
>>> SignatureVerifier(["It's a Secret to Everybody"]).verify(
...     b"Hello, World!",
...     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
... )
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from framework.errors import SignatureMismatch


def sign(body: bytes, secret: str, algorithm: str = "sha256") -> str:
    """The signature header value GitHub would send for ``body`` (``"sha256=<hex>"``)."""
    return f"{algorithm}=" + hmac.digest(secret.encode(), body, algorithm).hex()


def _parse(header: str, algorithm: str) -> bytes | None:
    prefix, _, hexdigest = header.strip().partition("=")
    if prefix.lower() != algorithm:
        return None
    try:
        return bytes.fromhex(hexdigest)
    except ValueError:
        return None


class SignatureVerifier:
    """Checks deliveries against one or more secrets.

    Several secrets let a secret be rotated without refusing deliveries: configure the new one
    and the previous one, change the secret on the platform, then drop the previous one.
    ``allow_sha1`` accepts ``X-Hub-Signature`` (HMAC-SHA1) when no sha256 header is present;
    only for senders that cannot sign with sha256.

    Platforms that sign otherwise use :meth:`check` (an HMAC in a header of their own) or
    :meth:`check_token` (the secret itself, sent in plain text).
    """

    def __init__(self, secrets: Sequence[str], *, allow_sha1: bool = False) -> None:
        if not secrets or any(not s for s in secrets):
            raise ValueError("SignatureVerifier needs at least one non-empty secret")
        self._keys = [s.encode() for s in secrets]
        self.allow_sha1 = allow_sha1

    def verify(
        self, body: bytes, signature_256: str | None, signature_1: str | None = None
    ) -> None:
        """Return if the body is signed by one of the secrets, else raise SignatureMismatch."""
        if signature_256:
            self.check(body, signature_256, "sha256", "X-Hub-Signature-256")
        elif signature_1 and self.allow_sha1:
            self.check(body, signature_1, "sha1", "X-Hub-Signature")
        elif signature_1:
            raise SignatureMismatch(
                "only a sha1 signature was sent (X-Hub-Signature) and sha1 is not enabled"
            )
        else:
            raise SignatureMismatch("the X-Hub-Signature-256 header is missing")

    def check(self, body: bytes, header: str | None, algorithm: str, header_name: str) -> None:
        """Raise SignatureMismatch unless ``header`` is ``<algorithm>=<hex HMAC of body>``
        under one of the secrets.

        >>> SignatureVerifier(["s"]).check(b"{}", sign(b"{}", "s", "sha1"), "sha1", "X-Sig")
        """
        if not header:
            raise SignatureMismatch(f"the {header_name} header is missing")
        expected = _parse(header, algorithm)
        if expected is None:
            raise SignatureMismatch(f"the signature header is not of the form {algorithm}=<hex>")
        matched = False
        for key in self._keys:
            # Every key is tried, so the time taken does not reveal which one matched.
            matched |= hmac.compare_digest(hmac.digest(key, body, algorithm), expected)
        if not matched:
            raise SignatureMismatch("the signature does not match the webhook secret")

    def check_token(self, token: str | None, where: str) -> None:
        """Raise SignatureMismatch unless ``token`` is one of the secrets (compared in
        constant time); ``where`` names where it was sent, for the message.

        >>> SignatureVerifier(["s"]).check_token("s", "the X-GitCode-Token header")
        """
        if not token:
            raise SignatureMismatch(f"{where} is missing")
        given = token.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(key, given)
        if not matched:
            raise SignatureMismatch(f"{where} does not match the webhook secret")
