"""A delivery: one verified webhook, as received, before any handler sees it.

The typed event is built on first use, not on receipt: the acknowledgement to GitHub waits
only for what proves the delivery genuine and well-formed (signature, JSON object).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from framework.events import Event, parse_event


@dataclass(slots=True)
class Delivery:
    """A verified delivery: ``X-GitHub-Delivery``, ``X-GitHub-Event``, payload and headers."""

    id: str
    name: str
    payload: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)
    _event: Event | None = field(default=None, repr=False)

    @property
    def action(self) -> str | None:
        """The payload's ``action``, if it has one."""
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def key(self) -> str:
        """``name.action`` (or ``name``): how handlers name what they subscribe to."""
        action = self.action
        return f"{self.name}.{action}" if action else self.name

    @property
    def installation_id(self) -> int | None:
        """The installation the delivery was sent for, read from the payload."""
        installation = self.payload.get("installation")
        if isinstance(installation, dict):
            installation_id = installation.get("id")
            if isinstance(installation_id, int):
                return installation_id
        return None

    @property
    def event(self) -> Event:
        """The typed event, parsed once on first access and shared by every handler."""
        if self._event is None:
            self._event = parse_event(self.name, self.payload, delivery_id=self.id)
        return self._event
