"""What every platform module says, and the pure helpers they share.

A platform is a :class:`Platform`: how its webhooks are authenticated and read (event name,
action, delivery id), which event names it sends, its API's base URL and default headers, how
its API reports errors, and the portable actions (comment, labels, commit status) written in
its API. Everything here is a pure function over headers and bytes, tested without a server;
the App wires it to the receiver, the journal and the clients.

A delivery is keyed in the journal by platform and delivery id
(:func:`~framework.webhooks.delivery.delivery_key`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from framework.errors import APIError, InvalidPayload, MissingHeader
from framework.webhooks.delivery import Delivery, delivery_key
from framework.webhooks.signature import SignatureVerifier

Headers = Mapping[str, str]
"""Request headers with lower-case names."""


def derived_delivery_id(body: bytes) -> str:
    """A delivery id for a platform that sends none: the same bytes give the same id, so a
    resend is still recognised as a duplicate.

    >>> derived_delivery_id(b'{"a":1}')
    'sha256-015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862'
    """
    return "sha256-" + hashlib.sha256(body).hexdigest()


def json_or_form(headers: Headers, body: bytes, field_name: str = "payload") -> bytes:
    """The JSON bytes of a delivery sent as ``application/json`` or as a form whose
    ``field_name`` holds the JSON (GitHub's and CODING's second content type).

    >>> json_or_form({"content-type": "application/x-www-form-urlencoded"}, b"payload=%7B%7D")
    b'{}'
    """
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        fields = form_fields(body)
        if field_name not in fields:
            raise InvalidPayload(f"the form body has no {field_name!r} field")
        return fields[field_name].encode()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise InvalidPayload(
            f"unsupported content type {content_type!r}: "
            "use application/json or application/x-www-form-urlencoded"
        )
    return body


def form_fields(body: bytes) -> dict[str, str]:
    """A form body's fields (the first value of each); raises InvalidPayload if not UTF-8.

    >>> form_fields(b"event=story%3A%3Acreate&workspace_id=10022001")
    {'event': 'story::create', 'workspace_id': '10022001'}
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidPayload("the form body is not valid UTF-8") from None
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def required_header(headers: Headers, *names: str) -> str:
    """The first of ``names`` (as the platform spells them) present and non-empty in
    ``headers`` (lower-case names); MissingHeader naming them if none is.

    >>> required_header({"x-github-event": "push"}, "X-GitHub-Event")
    'push'
    """
    for name in names:
        value = headers.get(name.lower())
        if value:
            return value
    raise MissingHeader(f"the {' or '.join(names)} header is missing")


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a platform's webhook rules read from one verified request."""

    event: str
    """Our event name (``issues``, ``pull_request``, ``story``): what handlers name."""
    delivery_id: str
    """The platform's own delivery id (or one derived from the bytes)."""
    body: bytes
    """The JSON object to store and hand to handlers (a secret inside it removed)."""
    native_event: str
    """The platform's own name for the event (``Issue Hook``, ``story::create``)."""


ReadWebhook = Callable[[Headers, bytes, SignatureVerifier | None], Incoming]
"""``read(headers, body, verifier)``: verify (``None``: unsigned, development only) and read
one delivery; raise a :class:`~framework.errors.WebhookError` saying what is wrong."""

ErrorReader = Callable[..., APIError]
"""``error_from_response(response, now, *, secondary_wait)``: the typed error for an answer."""


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request a portable action makes: method, path (relative to the API base), body."""

    method: str
    path: str
    json: Any = None
    data: Mapping[str, str] | None = None


class Actions(Protocol):
    """The portable actions, written in one platform's API (see :mod:`framework.context`)."""

    async def comment(self, client: Any, payload: Mapping[str, Any], text: str) -> None:
        """Comment on the issue, pull request or story of the delivery."""
        ...

    async def add_labels(
        self, client: Any, payload: Mapping[str, Any], labels: Sequence[str]
    ) -> None:
        """Add labels to the issue or pull request of the delivery."""
        ...

    async def set_status(
        self,
        client: Any,
        payload: Mapping[str, Any],
        sha: str,
        state: str,
        context: str,
        description: str | None,
    ) -> None:
        """Set a commit status, where the platform has them."""
        ...


@dataclass(frozen=True)
class Platform:
    """One platform's rules. Each module of :mod:`framework.platforms` defines one."""

    name: str
    """``github``, ``atomgit``, ``coding``, ``tapd``: in settings, paths and journal keys."""
    events: frozenset[str]
    """Every event name (ours) its deliveries can carry: registration checks against them."""
    read_webhook: ReadWebhook
    api_url: str
    """The API's default base URL (each has a ``<PLATFORM>_API_URL`` setting)."""
    api_headers: Mapping[str, str]
    error_from_response: ErrorReader
    actions: Actions
    redelivers: bool = False
    """Whether the platform lists and redelivers failed deliveries (GitHub's hook API)."""
    id_headers: tuple[str, ...] = field(default=())
    """Headers that carry the delivery id, for logging a refused delivery."""

    @property
    def webhook_path(self) -> str:
        """Where its deliveries are received: ``/api/<name>/webhooks``."""
        return f"/api/{self.name}/webhooks"

    def read_delivery(
        self, headers: Headers, body: bytes, verifier: SignatureVerifier | None
    ) -> Delivery:
        """Verify and read one delivery into a :class:`Delivery` keyed for the journal."""
        incoming = self.read_webhook(headers, body, verifier)
        return Delivery.from_body(
            delivery_key(self.name, incoming.delivery_id), incoming.event, incoming.body, headers
        )
