"""``ping``: sent when a webhook is created, for an App's webhook as for a repository's."""

from __future__ import annotations

from framework.events.base import Event
from framework.events.objects import Hook
from framework.events.parse import event_model


@event_model("ping")
class PingEvent(Event):
    """The first delivery to a new webhook: ``hook.type`` is ``"App"`` for a GitHub App's.

    An App's ping carries ``hook.app_id`` and no installation; a repository or organization
    hook's ping carries the ``repository`` or ``organization``.
    """

    zen: str | None = None
    hook_id: int | None = None
    hook: Hook | None = None
