"""A delivery: one verified webhook, as received, before any handler sees it.

A delivery keeps the payload as the JSON bytes it arrived as. The receiver checks them once: a
JSON object, of which it reads only what routing needs (``action``, the installation id),
without building the rest into Python objects. A backlog of raw bytes costs the garbage
collector nothing, while a backlog of parsed 18 KB payloads made every full collection slower,
and the acknowledgement path with it. Handlers get the typed event built straight from the
bytes, on first use.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from framework.common.encoding import compact_json
from framework.errors import InvalidPayload
from framework.events import Event
from framework.events.parse import (
    decode_payload,
    decode_routing,
    decode_summary,
    lazy_event,
)

GITHUB = "github"


def delivery_key(platform: str, delivery_id: str) -> str:
    """The journal's key of a platform's delivery: keyed by platform and delivery id.

    GitHub's GUID stays alone, as before there were other platforms (a redelivery across an
    upgrade is still a duplicate); the others, and a GitHub id with a colon in it (never a
    real GUID), are ``platform:id``, so no id can pass for another platform's.

    >>> delivery_key("github", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    '72d3162e-cc78-11e3-81ab-4c9367dc0958'
    >>> delivery_key("tapd", "1180173432"), delivery_key("github", "tapd:1")
    ('tapd:1180173432', 'github:tapd:1')
    """
    if platform == GITHUB and ":" not in delivery_id:
        return delivery_id
    return f"{platform}:{delivery_id}"


def split_delivery_key(key: str) -> tuple[str, str]:
    """``(platform, delivery id)`` of a key made by :func:`delivery_key`.

    >>> split_delivery_key("tapd:1180173432"), split_delivery_key("72d3162e")
    (('tapd', '1180173432'), ('github', '72d3162e'))
    >>> split_delivery_key("github:tapd:1")
    ('github', 'tapd:1')
    """
    platform, colon, rest = key.partition(":")
    if colon:
        return platform, rest
    return GITHUB, key


STORABLE_IDS = range(-(2**63), 2**63)
"""The ids a journal can store: SQLite's 64-bit integers (GitHub's ids are far inside)."""


def _routing_fields(payload: Mapping[str, Any]) -> tuple[str | None, int | None]:
    action = payload.get("action")
    installation = payload.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    if isinstance(installation_id, int) and installation_id not in STORABLE_IDS:
        raise InvalidPayload(f"installation.id {installation_id} is not a 64-bit integer")
    return (
        action if isinstance(action, str) else None,
        installation_id if isinstance(installation_id, int) else None,
    )


@dataclass(slots=True, eq=False)
class Delivery:
    """A verified delivery: ``X-GitHub-Delivery``, ``X-GitHub-Event``, the JSON body, headers.

    Build one with :meth:`from_body` (bytes as received) or :meth:`from_payload` (a dict).
    """

    id: str
    name: str
    body: bytes
    action: str | None = None
    installation_id: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)
    attempt: int = 1
    """Which run of its handlers this is (1, then 2... when retried or recovered)."""
    handlers_done: frozenset[str] = frozenset()
    """Handlers (:attr:`~framework.dispatch.routing.Handler.key`) that finished in an earlier
    run: a retry, a recovery or a redelivery runs only the others."""
    _payload: dict[str, Any] | None = field(default=None, repr=False)
    _summary: dict[str, Any] | None = field(default=None, repr=False)
    _event: Event | None = field(default=None, repr=False)

    @classmethod
    def from_body(
        cls, id: str, name: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Delivery:
        """A delivery from its JSON bytes; raises InvalidPayload unless they are an object."""
        action, installation_id = _routing_fields(decode_routing(body))
        return cls(id, name, body, action, installation_id, headers or {})

    @classmethod
    def from_payload(
        cls, id: str, name: str, payload: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> Delivery:
        """A delivery from an already parsed payload (tests, ``receive``, replays)."""
        action, installation_id = _routing_fields(payload)
        body = compact_json(payload)
        return cls(id, name, body, action, installation_id, headers or {}, _payload=payload)

    @property
    def platform(self) -> str:
        """Where the delivery came from: ``github``, ``atomgit``, ``coding`` or ``tapd``."""
        return split_delivery_key(self.id)[0]

    @property
    def key(self) -> str:
        """``name.action`` (or ``name``): how handlers name what they subscribe to."""
        return f"{self.name}.{self.action}" if self.action else self.name

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as a plain dict, parsed on first access."""
        if self._payload is None:
            self._payload = decode_payload(self.body)
        return self._payload

    @property
    def summary(self) -> dict[str, Any]:
        """The payload's repository names and issue, pull request or own ``number``, in its
        shape (:func:`~framework.events.parse.decode_summary`): :attr:`payload` when it is
        parsed already, else read off the JSON alone. The log line of every delivery names
        its repository and ``ctx.repo_full_name`` reads it: a handler that never reads the
        payload should not pay for parsing it.
        """
        if self._payload is not None:
            return self._payload
        if self._summary is None:
            self._summary = decode_summary(self.body)
            if self._summary is None:  # an odd shape: the payload itself says what is there
                return self.payload
        return self._summary

    @property
    def repository(self) -> str | None:
        """``owner/name`` of the payload's repository, or None."""
        repository = self.summary.get("repository")
        name = repository.get("full_name") if isinstance(repository, dict) else None
        return name if isinstance(name, str) else None

    @property
    def event(self) -> Event:
        """The typed event, made on first access and shared by every handler; each of its
        fields is validated from the JSON when first read
        (:func:`~framework.events.parse.lazy_event`). From the bytes as received, not from
        :attr:`payload`: a handler that changes the payload's dict does not change the event.
        """
        if self._event is None:
            self._event = lazy_event(self.name, self.action, self.body, delivery_id=self.id)
        return self._event
