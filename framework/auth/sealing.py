"""One way to keep secrets in a store: sealed (encrypted and authenticated) with Fernet.

A :class:`Sealer` holds a list of keys: the first seals, every one opens, so a key is rotated by
putting the new one first and keeping the old one after it until everything sealed with it has
been sealed again (or has expired). Sealed data carries the time it was sealed; :meth:`open`
can refuse what is older than a ``ttl``.

>>> sealer = Sealer.from_keys([new_key(), new_key()])
>>> sealer.open(sealer.seal(b"ghu_secret"))
b'ghu_secret'
>>> rotated = Sealer([Fernet(new_key()), *sealer.fernets])
>>> rotated.open(sealer.seal(b"still readable"))
b'still readable'
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from framework.errors import ConfigurationError, FrameworkError

NEW_KEY_COMMAND = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
"""A shell command that prints a new key (also ``python -m framework users new-key``)."""


class Unsealable(FrameworkError):
    """Sealed data that none of the configured keys opens (or that is too old, or damaged)."""


def new_key() -> str:
    """A new random key, as ``TOKEN_ENCRYPTION_KEY`` takes it (URL-safe base64 of 32 bytes).

    >>> len(new_key())
    44
    """
    return Fernet.generate_key().decode()


def derived_fernet(material: bytes, purpose: bytes) -> Fernet:
    """A Fernet key derived (HKDF-SHA256) from secret ``material``, distinct per ``purpose``.

    >>> derived_fernet(b"pem", b"a").encrypt(b"x") != derived_fernet(b"pem", b"b").encrypt(b"x")
    True
    """
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(material)
    return Fernet(base64.urlsafe_b64encode(derived))


def parse_keys(text: str, setting: str = "TOKEN_ENCRYPTION_KEY") -> list[Fernet]:
    """The keys of a comma-separated setting, the sealing key first; a clear error naming the
    setting (never the key) for a value that is not a key.

    >>> len(parse_keys(new_key() + ", " + new_key()))
    2
    >>> parse_keys("not-a-key")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    framework.errors.ConfigurationError: TOKEN_ENCRYPTION_KEY: key 1 is not a Fernet key ...
    """
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise ConfigurationError(f"{setting} is empty; make a key with: {NEW_KEY_COMMAND}")
    fernets = []
    for number, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ConfigurationError(
                f"{setting}: key {number} is not a Fernet key (URL-safe base64 of 32 bytes); "
                f"make one with: {NEW_KEY_COMMAND}"
            ) from None
    return fernets


class Sealer:
    """Seals with the first key, opens with any (Fernet's ``MultiFernet``)."""

    def __init__(self, fernets: Sequence[Fernet]) -> None:
        if not fernets:
            raise ValueError("a Sealer needs at least one key")
        self.fernets = list(fernets)
        self._multi = MultiFernet(self.fernets)

    @classmethod
    def from_keys(cls, keys: Iterable[str], setting: str = "TOKEN_ENCRYPTION_KEY") -> Sealer:
        """A sealer over keys as text (the first seals)."""
        return cls(parse_keys(",".join(keys), setting))

    def seal(self, data: bytes, *, at: float | None = None) -> bytes:
        """``data`` encrypted and authenticated with the first key (stamped with ``at``)."""
        if at is None:
            return self._multi.encrypt(data)
        return self._multi.encrypt_at_time(data, int(at))

    def open(
        self, sealed: bytes | str, *, ttl: float | None = None, at: float | None = None
    ) -> bytes:
        """The data sealed in ``sealed``; :class:`Unsealable` if no key opens it, or it was
        sealed more than ``ttl`` seconds before ``at`` (default: now)."""
        token = sealed.encode() if isinstance(sealed, str) else sealed
        try:
            if ttl is None:
                return self._multi.decrypt(token)
            if at is None:
                return self._multi.decrypt(token, ttl=int(ttl))
            return self._multi.decrypt_at_time(token, int(ttl), int(at))
        except InvalidToken:
            raise Unsealable(
                "sealed data could not be opened: sealed with a key no longer configured, "
                "damaged, or expired"
            ) from None
