"""Signed deliveries as each platform sends them, and payloads of the other platforms.

:func:`signed_delivery` builds the headers and body a platform would send for an event, signed
(or carrying its secret) the way that platform does; post them to the bot's webhook path for
that platform (:attr:`SignedDelivery.path`). The payload builders give small, realistic
payloads for the platforms whose examples are not shipped with GitHub's
(:mod:`framework.testing.payloads`).

>>> d = signed_delivery("coding", "merge_request", {"action": "create"}, "s3cret",
...                     delivery_id="c-1")
>>> d.path, d.key, d.headers["X-Coding-Signature"][:5]
('/api/coding/webhooks', 'coding:c-1', 'sha1=')
>>> t = signed_delivery("tapd", "story::create", tapd_story(entry_id="11"), "s3cret",
...                     delivery_id="77")
>>> b"secret=s3cret" in t.body, t.key
(True, 'tapd:77')
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from framework.common.encoding import compact_json
from framework.webhooks.delivery import delivery_key
from framework.webhooks.signature import sign

__all__ = [
    "SignedDelivery",
    "coding_issue",
    "gitlab_issue",
    "signed_delivery",
    "tapd_story",
]


@dataclass(frozen=True)
class SignedDelivery:
    """What a platform sends for one event: where, which headers, which bytes."""

    platform: str
    delivery_id: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The bot's default webhook path for the platform."""
        return f"/api/{self.platform}/webhooks"

    @property
    def key(self) -> str:
        """The delivery's key in the journal (and ``ctx.delivery_id``)."""
        return delivery_key(self.platform, self.delivery_id)


AtomGitAuth = Literal["signature", "token"]


def signed_delivery(
    platform: str,
    event: str,
    payload: Mapping[str, Any],
    secret: str,
    *,
    delivery_id: str | None = None,
    form: bool | None = None,
    atomgit_auth: AtomGitAuth = "signature",
) -> SignedDelivery:
    """The delivery ``platform`` sends for ``event`` (its own name: ``issues`` on GitHub,
    ``Issue Hook`` for AtomGit's GitLab-shaped webhooks, ``merge_request`` on CODING,
    ``story::create`` on TAPD) with ``payload``, authenticated with ``secret``.

    ``form`` chooses the body's encoding; by default each platform's own (a form for TAPD,
    JSON elsewhere). GitHub's and CODING's forms hold the JSON in ``payload``. AtomGit's
    GitLab-shaped deliveries are signed with ``X-GitCode-Signature-256``, or carry the secret
    in ``X-GitCode-Token`` with ``atomgit_auth="token"``.
    """
    delivery_id = delivery_id or str(uuid.uuid4())
    builder = _BUILDERS.get(platform)
    if builder is None:
        raise ValueError(f"no such platform: {platform!r}")
    as_form = form if form is not None else platform == "tapd"
    headers, body = builder(event, dict(payload), secret, delivery_id, as_form, atomgit_auth)
    return SignedDelivery(platform, delivery_id, headers, body)


Built = tuple[dict[str, str], bytes]


def _json_or_form(payload: Mapping[str, Any], form: bool) -> tuple[str, bytes]:
    body = compact_json(payload)
    if form:
        return "application/x-www-form-urlencoded", urlencode({"payload": body}).encode()
    return "application/json", body


def _github(event: str, payload: dict[str, Any], secret: str, delivery_id: str, form: bool,
            _: AtomGitAuth) -> Built:  # fmt: skip
    content_type, body = _json_or_form(payload, form)
    return {
        "Content-Type": content_type,
        "User-Agent": "GitHub-Hookshot/framework-testing",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": sign(body, secret),
    }, body


def _atomgit(event: str, payload: dict[str, Any], secret: str, delivery_id: str, form: bool,
             auth: AtomGitAuth) -> Built:  # fmt: skip
    content_type, body = _json_or_form(payload, form)
    if not event.endswith(" Hook"):  # GitHub-shaped
        return {
            "Content-Type": content_type,
            "User-Agent": "AtomGit-Hookshot",
            "X-AtomGit-Event": event,
            "X-AtomGit-Delivery": delivery_id,
            "X-Hub-Signature-256": sign(body, secret),
        }, body
    headers = {
        "Content-Type": content_type,
        "User-Agent": "git-gitcode-hook",
        "X-GitCode-Event": event,
        "X-GitCode-Delivery": delivery_id,
    }
    if auth == "token":
        headers["X-GitCode-Token"] = secret
    else:
        headers["X-GitCode-Signature-256"] = sign(body, secret)
    return headers, body


def _coding(event: str, payload: dict[str, Any], secret: str, delivery_id: str, form: bool,
            _: AtomGitAuth) -> Built:  # fmt: skip
    content_type, body = _json_or_form(payload, form)
    return {
        "Content-Type": content_type,
        "User-Agent": "Coding.net Hook",
        "X-Coding-Event": event,
        "X-Coding-Delivery": delivery_id,
        "X-Coding-Signature": sign(body, secret, "sha1"),
    }, body


def _tapd(event: str, payload: dict[str, Any], secret: str, delivery_id: str, form: bool,
          _: AtomGitAuth) -> Built:  # fmt: skip
    fields = {**payload, "event": event, "event_id": delivery_id, "secret": secret}
    if not form:
        return {"Content-Type": "application/json"}, compact_json(fields)
    body = urlencode({k: str(v) for k, v in fields.items()}).encode()
    return {"Content-Type": "application/x-www-form-urlencoded"}, body


_BUILDERS = {"github": _github, "atomgit": _atomgit, "coding": _coding, "tapd": _tapd}


def gitlab_issue(
    *,
    repo: str = "octo-org/hello",
    number: int = 1,
    title: str = "Something is broken",
    action: str = "open",
    user: str = "octocat",
) -> dict[str, Any]:
    """An ``Issue Hook`` payload as AtomGit's GitLab-shaped webhooks send it."""
    owner, _, name = repo.rpartition("/")
    return {
        "object_kind": "issue",
        "event_type": "issue",
        "user": {"id": 7, "name": user.title(), "username": user},
        "project": {
            "id": 501,
            "name": name,
            "namespace": owner,
            "path_with_namespace": repo,
            "web_url": f"https://atomgit.com/{repo}",
            "default_branch": "main",
        },
        "object_attributes": {
            "id": 9000 + number,
            "iid": number,
            "title": title,
            "description": "It crashes on start.",
            "state": "opened",
            "action": action,
            "url": f"https://atomgit.com/{repo}/issues/{number}",
        },
        "labels": [],
    }


def coding_issue(
    *, project: str = "demo", code: int = 1, title: str = "Something is broken",
    action: str = "create",
) -> dict[str, Any]:  # fmt: skip
    """An ``issue`` payload as CODING's webhooks send it (loosely: no schema is published)."""
    return {
        "action": action,
        "event": "ISSUE_CREATED",
        "issue": {"code": code, "title": title, "type": "DEFECT", "status": "未处理"},
        "project": {"id": 12, "name": project, "display_name": project.title()},
        "sender": {"id": 3, "name": "Octo Cat", "global_key": "octocat"},
    }


def tapd_story(
    *, workspace_id: int = 10022001, entry_id: str = "1001", name: str = "Login page"
) -> dict[str, Any]:
    """The fields of a ``story::create`` delivery (:func:`signed_delivery` adds ``event``,
    ``event_id`` and ``secret``)."""
    return {
        "workspace_id": workspace_id,
        "id": entry_id,
        "name": name,
        "current_user": "octocat",
        "created": "2026-11-30 10:00:00",
    }
