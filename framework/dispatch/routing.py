"""Which handlers a delivery goes to: by event name, by ``name.action``, or every event.

Event names are checked when a handler is registered, so ``@app.on("issue.opened")`` (a typo
for ``issues``) fails at import with a suggestion instead of silently never running.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Every event GitHub sends to apps and webhooks (docs.github.com, "Webhook events and payloads").
GITHUB_EVENTS = frozenset(
    """branch_protection_configuration branch_protection_rule check_run check_suite
    code_scanning_alert commit_comment create custom_property custom_property_values delete
    dependabot_alert deploy_key deployment deployment_protection_rule deployment_review
    deployment_status discussion discussion_comment fork github_app_authorization gollum
    installation installation_repositories installation_target issue_comment
    issue_dependencies issues label marketplace_purchase member membership merge_group meta
    milestone org_block organization package page_build personal_access_token_request ping
    project project_card project_column projects_v2 projects_v2_item projects_v2_status_update
    public pull_request pull_request_review pull_request_review_comment
    pull_request_review_thread push registry_package release repository repository_advisory
    repository_dispatch repository_import repository_ruleset repository_vulnerability_alert
    secret_scanning_alert secret_scanning_alert_location secret_scanning_scan
    security_advisory security_and_analysis sponsorship star status sub_issues team team_add
    watch workflow_dispatch workflow_job workflow_run""".split()
)

ANY = "*"


def check_event_key(key: str, known: frozenset[str] = GITHUB_EVENTS) -> str:
    """Return ``key`` (``"issues"`` or ``"issues.opened"``) or raise ValueError explaining it."""
    name, dot, action = key.partition(".")
    if not name or (dot and not action) or "." in action:
        raise ValueError(f"{key!r} is not an event name: use 'event' or 'event.action'")
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0] + (dot + action)!r}?" if close else ""
        raise ValueError(f"{name!r} is not a GitHub webhook event{hint}")
    return key


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered handler function and how to call it."""

    fn: Callable[..., Any]
    is_async: bool

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Handler:
        """Wrap ``fn``, noting whether it is a coroutine function (else it runs in a thread)."""
        if not callable(fn):
            raise TypeError(f"a handler must be callable, not {type(fn).__name__}")
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        return cls(fn, is_async)

    @property
    def name(self) -> str:
        """The function's qualified name, for logs."""
        return str(getattr(self.fn, "__qualname__", repr(self.fn)))


class Router:
    """Handlers by the key they were registered under."""

    def __init__(self, known_events: frozenset[str] | None = GITHUB_EVENTS) -> None:
        self._known = known_events
        self._by_key: dict[str, list[Handler]] = {}
        self._matches: dict[tuple[str, str | None], tuple[Handler, ...]] = {}
        self.error_handlers: list[Handler] = []

    def add(self, keys: str | Iterable[str], fn: Callable[..., Any]) -> None:
        """Register ``fn`` for one key or several (``"issues"``, ``"issues.opened"``, ``"*"``)."""
        key_list = [keys] if isinstance(keys, str) else list(keys)
        if not key_list:
            raise ValueError("name at least one event")
        for key in key_list:
            if key != ANY and self._known is not None:
                check_event_key(key, self._known)
        handler = Handler.of(fn)
        for key in key_list:
            self._by_key.setdefault(key, []).append(handler)
        self._matches.clear()

    def match(self, name: str, action: str | None) -> tuple[Handler, ...]:
        """Handlers for this event, each once, in registration order within each key."""
        cache_key = (name, action)
        found = self._matches.get(cache_key)
        if found is None:
            keys = [name, f"{name}.{action}", ANY] if action else [name, ANY]
            unique: dict[int, Handler] = {}
            for key in keys:
                for handler in self._by_key.get(key, ()):
                    unique.setdefault(id(handler.fn), handler)
            found = self._matches[cache_key] = tuple(unique.values())
        return found

    @property
    def keys(self) -> list[str]:
        """Every key some handler is registered under."""
        return sorted(self._by_key)
