"""The GitHub App manifest the setup page registers, as pure functions.

GitHub's manifest flow: a form POSTs the field ``manifest`` (JSON) to
``{web}/settings/apps/new?state=…`` (or ``/organizations/{org}/settings/apps/new``); GitHub
shows the person the app it will create, then redirects to the manifest's ``redirect_url``
with ``code`` and ``state``; ``POST /app-manifests/{code}/conversions`` turns the code into
the app's id, key and secrets.

The manifest is :func:`default_manifest` (the bot's name, the events its handlers want and
the permissions those need) with an optional ``app.yml`` beside the bot merged over it
(:func:`read_app_yml`), and the URLs of this bot: the hook URL is ``WEBHOOK_PROXY_URL`` (a
tunnel) or the bot's public URL, ``redirect_url`` the setup callback.

>>> manifest = build_manifest(
...     default_manifest("labeler", ["issues.opened"]),
...     {"description": "Labels new issues"},
...     hook_url="https://smee.io/abc",
...     redirect_url="http://localhost:3000/setup/callback",
...     homepage="http://localhost:3000",
... )
>>> manifest["default_events"], manifest["default_permissions"]
(['issues'], {'metadata': 'read', 'issues': 'write'})
>>> manifest["hook_attributes"]
{'url': 'https://smee.io/abc', 'active': True}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from framework.errors import ConfigurationError

__all__ = [
    "APP_YML_FIELDS",
    "EVENT_PERMISSIONS",
    "build_manifest",
    "default_manifest",
    "read_app_yml",
    "registration_url",
]

APP_YML_FIELDS = frozenset(
    {"name", "description", "url", "default_permissions", "default_events", "public"}
)
"""What an ``app.yml`` may set; the URLs that point at this bot are set by the bot."""

EVENT_PERMISSIONS: Mapping[str, tuple[str, str]] = {
    "issues": ("issues", "write"),
    "issue_comment": ("issues", "write"),
    "label": ("issues", "read"),
    "milestone": ("issues", "read"),
    "pull_request": ("pull_requests", "write"),
    "pull_request_review": ("pull_requests", "write"),
    "pull_request_review_comment": ("pull_requests", "write"),
    "pull_request_review_thread": ("pull_requests", "write"),
    "push": ("contents", "read"),
    "create": ("contents", "read"),
    "delete": ("contents", "read"),
    "release": ("contents", "read"),
    "commit_comment": ("contents", "read"),
    "check_run": ("checks", "write"),
    "check_suite": ("checks", "write"),
    "status": ("statuses", "write"),
    "workflow_run": ("actions", "read"),
    "workflow_job": ("actions", "read"),
    "discussion": ("discussions", "write"),
    "discussion_comment": ("discussions", "write"),
    "repository": ("metadata", "read"),
    "star": ("metadata", "read"),
    "watch": ("metadata", "read"),
    "fork": ("metadata", "read"),
    "public": ("metadata", "read"),
    "member": ("members", "read"),
}
"""Event → (the permission GitHub requires to subscribe to it, the level a bot reacting to it
usually needs). Events every app gets (``installation``, ``ping``...) are not listed."""

_LEVELS = {"read": 1, "write": 2, "admin": 3}


def default_manifest(name: str, handler_keys: Iterable[str]) -> dict[str, Any]:
    """The manifest a bot gets without ``app.yml``: its name, the events its handlers are
    registered for (``"issues.opened"`` → ``issues``) and the permissions those need.

    >>> default_manifest("ci", ["check_run.completed", "push", "*"])["default_permissions"]
    {'metadata': 'read', 'checks': 'write', 'contents': 'read'}
    """
    events: list[str] = []
    permissions = {"metadata": "read"}
    for key in handler_keys:
        event = key.partition(".")[0]
        if event not in EVENT_PERMISSIONS or event in events:
            continue
        events.append(event)
        permission, level = EVENT_PERMISSIONS[event]
        if _LEVELS[level] > _LEVELS.get(permissions.get(permission, ""), 0):
            permissions[permission] = level
    return {
        "name": name,
        "public": False,
        "default_permissions": permissions,
        "default_events": events,
    }


def read_app_yml(text: str, source: str = "app.yml") -> dict[str, Any]:
    """The fields of an ``app.yml``, checked; :class:`ConfigurationError` names what is wrong.

    >>> read_app_yml("name: my-bot\\ndefault_events: [issues]")
    {'name': 'my-bot', 'default_events': ['issues']}
    >>> read_app_yml("hook_attributes: {}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    framework.errors.ConfigurationError: app.yml: unknown field 'hook_attributes' (allowed: ...)
    """
    import yaml  # only the setup page reads app.yml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigurationError(f"{source} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must be a mapping of manifest fields")
    for key, value in data.items():
        if key not in APP_YML_FIELDS:
            allowed = ", ".join(sorted(APP_YML_FIELDS))
            raise ConfigurationError(f"{source}: unknown field {key!r} (allowed: {allowed})")
        problem = _field_problem(key, value)
        if problem:
            raise ConfigurationError(f"{source}: {key} {problem}")
    return data


def _field_problem(key: str, value: Any) -> str | None:
    if key in ("name", "description", "url"):
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
    if key == "public":
        return None if isinstance(value, bool) else "must be true or false"
    if key == "default_events":
        ok = isinstance(value, list) and all(isinstance(e, str) for e in value)
        return None if ok else "must be a list of event names"
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and v in _LEVELS for k, v in value.items()
    )
    return None if ok else "must map permission names to read, write or admin"


def build_manifest(
    defaults: Mapping[str, Any],
    app_yml: Mapping[str, Any] | None,
    *,
    hook_url: str,
    redirect_url: str,
    homepage: str,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """``app_yml`` over ``defaults``, with this bot's URLs: the manifest to POST to GitHub.

    ``homepage`` is the app's ``url`` unless ``app.yml`` gives one; ``callback_url`` (the
    bot's ``/login/github/callback``) lets users sign in with the new app at once.
    """
    manifest: dict[str, Any] = {"url": homepage, **defaults, **(app_yml or {})}
    manifest["hook_attributes"] = {"url": hook_url, "active": True}
    manifest["redirect_url"] = redirect_url
    if callback_url is not None:
        manifest["callback_urls"] = [callback_url]
    return manifest


def registration_url(web_url: str, state: str, org: str | None = None) -> str:
    """Where the manifest form POSTs: the user's ``settings/apps/new``, or the org's.

    >>> registration_url("https://github.com", "s1")
    'https://github.com/settings/apps/new?state=s1'
    >>> registration_url("https://ghe.example.com", "s1", org="octo org")
    'https://ghe.example.com/organizations/octo%20org/settings/apps/new?state=s1'
    """
    base = web_url.rstrip("/")
    path = "/settings/apps/new"
    if org:
        path = f"/organizations/{quote(org, safe='')}{path}"
    return f"{base}{path}?{urlencode({'state': state})}"
