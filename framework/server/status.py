"""The status page: the app, its installations and the recent deliveries; replay a failed one.

Served at ``GET /`` once the bot has its credentials. The app and its installations come from
GitHub (``GET /app``, ``GET /app/installations``, as the app); the deliveries from the
journal, newest first, each with its event, action, installation, outcome, runs and how long
it took from receipt to its last outcome. A delivery that failed for good shows its error and
a "Replay" button: a POST with a CSRF token that queues it to run again, as
``python -m framework deliveries replay`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from framework.errors import FrameworkError
from framework.journal import Entry, Status
from framework.server.web import Pages

__all__ = ["DeliveryRow", "StatusPages", "delivery_rows", "format_duration"]

RECENT_DELIVERIES = 50
GITHUB_TIMEOUT_SECONDS = 10.0


def format_duration(seconds: float | None) -> str:
    """A duration for people: ``850 ms``, ``2.4 s``, ``3 min``; ``-`` when unknown.

    >>> format_duration(0.0123), format_duration(2.44), format_duration(200), format_duration(None)
    ('12 ms', '2.4 s', '3 min', '-')
    """
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as the status page lists it."""

    id: str
    received: str
    event: str
    action: str
    installation: str
    outcome: str
    attempts: int
    duration: str
    error: str | None
    replayable: bool


def delivery_rows(entries: Iterable[Entry]) -> list[DeliveryRow]:
    """The journal's entries as rows of the page (pure; the template escapes them)."""
    rows = []
    for entry in entries:
        d = entry.delivery
        finished = entry.finished_at
        outcome = entry.status.value
        if entry.status is Status.PENDING and entry.last_error:
            outcome = "retrying"
        rows.append(
            DeliveryRow(
                id=d.id,
                received=datetime.fromtimestamp(entry.received_at, UTC).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                event=d.name,
                action=d.action or "",
                installation=str(d.installation_id) if d.installation_id is not None else "-",
                outcome=outcome,
                attempts=entry.attempts,
                duration=format_duration(
                    finished - entry.received_at if finished is not None else None
                ),
                error=entry.last_error if entry.status is not Status.DONE else None,
                replayable=entry.status is Status.FAILED,
            )
        )
    return rows


class StatusPages:
    """The status page and the replay action."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.host = pages.host

    async def _github(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
        """The app and its installations, or why GitHub could not say."""
        try:
            app = await asyncio.wait_for(self.host.github.get("/app"), GITHUB_TIMEOUT_SECONDS)
            installations = await asyncio.wait_for(
                self.host.github.get("/app/installations?per_page=100"), GITHUB_TIMEOUT_SECONDS
            )
        except (FrameworkError, TimeoutError) as exc:
            return None, [], f"GitHub could not be asked: {exc or 'no answer in time'}"
        return app.json(), installations.json(), None

    async def index(self, request: Request) -> Response:
        """``GET /`` once configured."""
        app, installations, github_error = await self._github()
        journal = await self.host.open_journal()
        try:
            rows = delivery_rows(await journal.entries(limit=RECENT_DELIVERIES))
            journal_error = None
        except FrameworkError as exc:
            rows, journal_error = [], str(exc)
        return self.pages.render(
            request,
            "status.html",
            app=app,
            installations=installations,
            github_error=github_error,
            rows=rows,
            journal_error=journal_error,
            replayed=request.query_params.get("replayed"),
        )

    async def replay(self, request: Request) -> Response:
        """``POST /deliveries/{id}/replay``: run a failed delivery's handlers again."""
        form = await self.pages.form(request)
        if isinstance(form, Response):
            return form
        delivery_id = request.path_params["delivery_id"]
        journal = await self.host.open_journal()
        entry = await journal.get(delivery_id)
        if entry is None:
            return self.pages.message(
                request, 404, "No such delivery", f"The journal has no delivery {delivery_id}."
            )
        if entry.status is not Status.FAILED or not await journal.requeue(delivery_id):
            return self.pages.message(
                request,
                409,
                "Not replayed",
                f"Delivery {delivery_id} is {entry.status.value}: only a failed one is replayed.",
            )
        return RedirectResponse(f"/?replayed={quote(delivery_id, safe='')}", status_code=303)
