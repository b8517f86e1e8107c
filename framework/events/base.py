"""The base classes every webhook event model builds on.

Models are deliberately forgiving: GitHub adds fields, sends new actions, and sends the same
field in different shapes in different events (``installation.created_at`` is an epoch int in
some payloads and an ISO string in others). So every model keeps unknown fields
(``extra="allow"``), every timestamp accepts both shapes, and the untouched payload stays
reachable as ``event.raw``.

>>> from framework.events import parse_event
>>> event = parse_event(
...     "installation",
...     {"action": "created", "installation": {"id": 1, "created_at": 1557933591}, "new": 1},
... )
>>> type(event).__name__, event.installation.created_at.isoformat(), event.new
('InstallationCreated', '2019-05-15T15:19:51+00:00', 1)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import pydantic_core
from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr


def _timestamp(value: Any) -> Any:
    # pydantic reads ints as epoch seconds (or ms past 2e10) and ISO strings natively; GitHub
    # also sends numeric strings in a few places, which pydantic would take as ISO and reject.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""A point in time sent as an ISO-8601 string or as epoch seconds: both are accepted."""


class Model(BaseModel):
    """Base of every object in a payload: unknown fields are kept, never rejected."""

    # defer_build: a model's validator is built when it first parses a payload, so a bot pays
    # for the events it receives (~4 MiB and ~60 ms at start-up for all of them, otherwise).
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class Installation(Model):
    """The installation a delivery was sent for.

    Outside ``installation*`` events GitHub sends only ``{id, node_id}``, so everything but
    ``id`` is optional.
    """

    id: int
    node_id: str | None = None


class User(Model):
    """A user, organization or bot account (``sender``, ``owner``, ``user`` ...)."""

    login: str
    id: int
    node_id: str | None = None
    type: str | None = None
    html_url: str | None = None
    avatar_url: str | None = None
    site_admin: bool | None = None


class Repository(Model):
    """The repository an event happened in."""

    id: int
    name: str
    full_name: str
    owner: User
    node_id: str | None = None
    private: bool | None = None
    html_url: str | None = None
    description: str | None = None
    fork: bool | None = None
    default_branch: str | None = None
    archived: bool | None = None


class Organization(Model):
    """The organization an event happened in, when there is one."""

    login: str
    id: int
    node_id: str | None = None


class Event(Model):
    """A webhook event: the payload plus what the delivery's headers said about it.

    Subclasses set ``event_name`` (the ``X-GitHub-Event`` value) and, per action, narrow
    ``action``.
    Every event has the accessors below whatever its shape, so generic code (logging,
    routing, ``Context``) never needs to know the model.
    """

    event_name: ClassVar[str] = ""

    action: str | None = None
    sender: User | None = None
    repository: Repository | None = None
    installation: Installation | None = None
    organization: Organization | None = None

    _raw: dict[str, Any] | None = PrivateAttr(default=None)
    _raw_json: bytes = PrivateAttr(default=b"{}")
    _delivery_id: str | None = PrivateAttr(default=None)
    _name: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """The event's name as sent in ``X-GitHub-Event`` (``"issues"``, ``"push"`` ...)."""
        return self._name or self.event_name

    @property
    def raw(self) -> dict[str, Any]:
        """The payload exactly as it arrived, for fields no model describes."""
        raw = self._raw
        if raw is None:
            raw = self._raw = pydantic_core.from_json(self._raw_json)
        return raw

    @property
    def delivery_id(self) -> str | None:
        """``X-GitHub-Delivery``: unique per delivery, kept when GitHub redelivers it."""
        return self._delivery_id

    @property
    def installation_id(self) -> int | None:
        """The id of the installation this event was sent for, if any."""
        return self.installation.id if self.installation is not None else None

    @property
    def repository_full_name(self) -> str | None:
        """``owner/name`` of the event's repository, if it has one."""
        return self.repository.full_name if self.repository is not None else None


class GenericEvent(Event):
    """Any event no model describes: the accessors work, the rest is in ``raw`` and extras."""
