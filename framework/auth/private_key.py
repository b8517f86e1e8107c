"""Load the app's RSA private key from the forms operators really use.

``PRIVATE_KEY`` may hold the PEM text, the PEM with its newlines written as a literal ``\\n``
(common in ``.env`` files and CI secrets), or the PEM encoded in base64 (common in container
platforms). ``PRIVATE_KEY_PATH`` names a file instead. Errors name the variable, never the key.
"""

from __future__ import annotations

import base64
import binascii
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from framework.errors import ConfigurationError

_PEM_BEGIN = b"-----BEGIN"


def _pem_bytes(text: str, source: str) -> bytes:
    raw = text.strip()
    if "\\n" in raw and "\n" not in raw:
        raw = raw.replace("\\n", "\n")
    data = raw.encode()
    if _PEM_BEGIN in data:
        return data
    try:
        decoded = base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if _PEM_BEGIN in decoded:
        return decoded
    raise ConfigurationError(
        f"{source} does not hold a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----', "
        "the same with literal \\n, or its base64 encoding)"
    )


@functools.lru_cache(maxsize=4)
def _load_pem(pem: bytes) -> PrivateKeyTypes:
    # Loading checks the RSA key's consistency, ~27 ms for 2048 bits on the bench VM; the
    # start-up check, the redelivery schedule and the JWT signer each load the same key.
    return load_pem_private_key(pem, password=None)


def parse_private_key(text: str, source: str = "PRIVATE_KEY") -> RSAPrivateKey:
    """Parse an RSA private key given in any accepted form; ``source`` names it in errors."""
    pem = _pem_bytes(text, source)
    if b"-----END" not in pem:
        # What a PEM pasted unquoted over several lines into .env leaves: its first line.
        raise ConfigurationError(
            f"{source} holds only the first line of a PEM key: in .env, put a key that spans "
            'several lines in double quotes (PRIVATE_KEY="-----BEGIN ...", the lines, '
            '"...-----END ... KEY-----"), or write its line breaks as \\n, or save it to a '
            "file and set PRIVATE_KEY_PATH to it instead"
        )
    try:
        key = _load_pem(pem)
    except (ValueError, TypeError) as exc:
        # cryptography's messages describe the structure, never the key material.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigurationError(f"{source} is not a valid PEM private key ({reason})") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigurationError(f"{source} must be an RSA key (GitHub Apps sign JWTs with RS256)")
    return key


def load_private_key(
    text: str | None, path: Path | None, setting: str = "PRIVATE_KEY"
) -> RSAPrivateKey:
    """The key from ``PRIVATE_KEY`` if set, else from the file named by ``PRIVATE_KEY_PATH``
    (``setting`` names them: ``ATOMGIT_PRIVATE_KEY``...)."""
    if text:
        return parse_private_key(text, setting)
    if path is not None:
        try:
            content = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{setting}_PATH: cannot read {path} ({exc.strerror})"
            ) from None
        return parse_private_key(content, f"{setting}_PATH ({path})")
    raise ConfigurationError(f"{setting} is not set: set it (or {setting}_PATH)")
