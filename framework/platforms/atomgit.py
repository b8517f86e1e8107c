"""AtomGit (seed 000): GitHub-shaped apps with their own token formats, and two webhook flavours.

Apps work as GitHub's do (an RS256 JWT with ``iss`` = the app id, ``GET /app/installations``,
``POST /app/installations/{id}/access_tokens``), with these differences, all read here:

- installation tokens start ``ats_`` and their ``expires_at`` carries a ``+08:00`` offset and
  milliseconds (``2023-05-07T04:02:40.758+08:00``); they are sent as ``Bearer``;
- installations have an upper-case ``repository_selection``, an ``account`` of
  ``{id, org_name, organization_id, path}``, a hex ``target_id``, and ``events`` sometimes split
  into odd strings (``['{"code":"push"', '"desc":"push event"}']``): :func:`read_installation`;
- the REST API wants ``X-Api-Version: 2023-02-21``.

Webhooks come in the two flavours public integrations show (neither confirmed by official
documentation):

- GitHub-shaped: ``X-AtomGit-Event`` with GitHub's event names, ``X-AtomGit-Delivery``,
  ``X-Hub-Signature-256``;
- GitLab-shaped: ``X-AtomGit-Event`` or ``X-GitCode-Event`` = ``Push Hook``, ``Issue Hook``...,
  bodies with ``object_kind``, signed by ``X-GitCode-Signature-256: sha256=<hex>`` or carrying
  the secret itself in ``X-GitCode-Token``. :func:`from_gitlab` maps them onto GitHub's event
  names and actions, and adds the GitHub-shaped fields handlers and portable actions read
  (``issue.number``, ``repository.full_name``, ``sender.login``...) beside the original ones,
  which all stay, but for the few GitHub names a GitLab payload also uses (``repository``,
  ``issue`` and ``user`` are extended; a tag's ``ref`` is the tag's name, as in GitHub's
  ``create`` event). An ``object_kind`` with no mapping arrives under its own name.

A delivery without a delivery-id header gets an id derived from its bytes, so a resend is still
recognised as a duplicate.

>>> from_gitlab("Issue Hook", {"object_kind": "issue", "object_attributes":
...     {"iid": 3, "id": 90, "title": "Crash", "action": "open"},
...     "project": {"id": 5, "name": "app", "path_with_namespace": "octo/app"}})[:2]
('issues', 'opened')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framework.client.responses import error_from_response
from framework.common.encoding import compact_json
from framework.errors import InvalidPayload
from framework.events.parse import decode_payload
from framework.platforms import github
from framework.platforms.base import (
    Headers,
    Incoming,
    Platform,
    derived_delivery_id,
    json_or_form,
    required_header,
)
from framework.webhooks.signature import SignatureVerifier

API_VERSION = "2023-02-21"

HOOKS = {
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Issue Hook": "issue",
    "Merge Request Hook": "merge_request",
    "Note Hook": "note",
}
"""GitLab-shaped event headers and the ``object_kind`` each carries."""

ISSUE_ACTIONS = {"open": "opened", "close": "closed", "reopen": "reopened", "update": "edited"}
MERGE_REQUEST_ACTIONS = {
    "open": "opened",
    "close": "closed",
    "reopen": "reopened",
    "merge": "closed",
    "update": "edited",
    "approved": "approved",
    "unapproved": "unapproved",
}
ZERO_SHA = "0" * 40

GITLAB_KINDS = frozenset(
    "pipeline build job wiki_page release deployment feature_flag emoji tag_push".split()
)
"""GitLab-shaped kinds without a GitHub counterpart: they arrive under these names."""

EVENTS = github.EVENTS | GITLAB_KINDS


def _user(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    user = payload.get("user")
    if isinstance(user, Mapping) and user.get("username"):
        return {
            "login": user["username"],
            "id": user.get("id") if isinstance(user.get("id"), int) else 0,
            "name": user.get("name"),
            "avatar_url": user.get("avatar_url"),
            "type": "Bot" if str(user["username"]).endswith("[bot]") else "User",
        }
    username = payload.get("user_username")
    if isinstance(username, str) and username:
        user_id = payload.get("user_id")
        return {
            "login": username,
            "id": user_id if isinstance(user_id, int) else 0,
            "name": payload.get("user_name"),
            "type": "User",
        }
    return None


def _repository(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    project = payload.get("project")
    if not isinstance(project, Mapping):
        return None
    full_name = project.get("path_with_namespace")
    if not isinstance(full_name, str) or "/" not in full_name:
        return None
    owner, _, name = full_name.rpartition("/")
    original = payload.get("repository")
    return {
        **(dict(original) if isinstance(original, Mapping) else {}),
        "id": project.get("id") if isinstance(project.get("id"), int) else 0,
        "name": project.get("name") or name,
        "full_name": full_name,
        "owner": {"login": owner, "id": 0},
        "html_url": project.get("web_url"),
        "default_branch": project.get("default_branch"),
    }


def _issue(attributes: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    state = attributes.get("state")
    labels = payload.get("labels") or attributes.get("labels") or []
    return {
        "id": attributes.get("id") if isinstance(attributes.get("id"), int) else 0,
        "number": attributes.get("iid"),
        "title": attributes.get("title") or "",
        "body": attributes.get("description"),
        "state": "open" if state in ("opened", "reopened", None) else "closed",
        "html_url": attributes.get("url"),
        "user": _user(payload),
        "labels": [
            {"name": label.get("title") or label.get("name"), "id": label.get("id") or 0}
            for label in labels
            if isinstance(label, Mapping)
        ],
    }


def _pull_request(attributes: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    pull = _issue(attributes, payload)
    last_commit = attributes.get("last_commit")
    head_sha = last_commit.get("id") if isinstance(last_commit, Mapping) else None
    pull.update(
        merged=attributes.get("state") == "merged",
        head={"ref": attributes.get("source_branch"), "sha": head_sha},
        base={"ref": attributes.get("target_branch")},
    )
    return pull


def from_gitlab(hook: str, payload: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """``(event, action, payload)`` of a GitLab-shaped delivery in GitHub's words.

    The payload keeps every original field; the GitHub-shaped ones are added beside them.
    """
    kind = payload.get("object_kind")
    if not isinstance(kind, str) or not kind:
        kind = HOOKS.get(hook, hook.lower().removesuffix(" hook").replace(" ", "_"))
    attributes = payload.get("object_attributes")
    attributes = attributes if isinstance(attributes, Mapping) else {}
    native_action = attributes.get("action")
    enriched = dict(payload)
    repository = _repository(payload)
    if repository is not None:
        enriched["repository"] = repository
    sender = _user(payload)
    if sender is not None:
        enriched["sender"] = sender
    event: str = kind
    action: str | None = native_action if isinstance(native_action, str) else None
    if kind == "push":
        event, action = "push", None
        enriched["created"] = payload.get("before") == ZERO_SHA
        enriched["deleted"] = payload.get("after") == ZERO_SHA
    elif kind == "tag_push":
        event = "delete" if payload.get("after") == ZERO_SHA else "create"
        action = None
        enriched["ref"] = str(payload.get("ref", "")).removeprefix("refs/tags/")
        enriched["ref_type"] = "tag"
    elif kind == "issue":
        event = "issues"
        action = ISSUE_ACTIONS.get(str(native_action), action)
        enriched["issue"] = _issue(attributes, payload)
    elif kind == "merge_request":
        event = "pull_request"
        if native_action == "update" and "oldrev" in attributes:
            action = "synchronize"  # new commits, as GitHub says it
        else:
            action = MERGE_REQUEST_ACTIONS.get(str(native_action), action)
        enriched["pull_request"] = _pull_request(attributes, payload)
        enriched["number"] = attributes.get("iid")
    elif kind == "note":
        noteable = attributes.get("noteable_type")
        event, action = ("commit_comment" if noteable == "Commit" else "issue_comment"), "created"
        enriched["comment"] = {
            "id": attributes.get("id") if isinstance(attributes.get("id"), int) else 0,
            "body": attributes.get("note") or "",
            "html_url": attributes.get("url"),
            "user": sender,
        }
        subject = payload.get("merge_request") or payload.get("issue")
        if isinstance(subject, Mapping):
            issue = {**subject, **_issue(subject, payload)}
            if noteable == "MergeRequest":
                issue["pull_request"] = {"url": subject.get("url")}
            enriched["issue"] = issue
    if action is not None:
        enriched["action"] = action
    return event, action, enriched


def read_webhook(headers: Headers, body: bytes, verifier: SignatureVerifier | None) -> Incoming:
    """Verify and read one AtomGit delivery, in either flavour."""
    name = required_header(headers, "X-AtomGit-Event", "X-GitCode-Event")
    delivery_id = headers.get("x-atomgit-delivery") or headers.get("x-gitcode-delivery")
    gitlab_shaped = name.endswith(" Hook")
    if verifier is not None:
        if not gitlab_shaped:
            verifier.verify(body, headers.get("x-hub-signature-256"), None)
        elif headers.get("x-gitcode-signature-256"):
            verifier.check(
                body, headers["x-gitcode-signature-256"], "sha256", "X-GitCode-Signature-256"
            )
        elif headers.get("x-gitcode-token"):
            verifier.check_token(headers["x-gitcode-token"], "the X-GitCode-Token header")
        else:
            verifier.check(body, headers.get("x-hub-signature-256"), "sha256", _SIGNED_BY)
    json_body = json_or_form(headers, body)
    if not gitlab_shaped:
        return Incoming(name, delivery_id or derived_delivery_id(body), json_body, name)
    event, _, payload = from_gitlab(name, decode_payload(json_body))
    return Incoming(event, delivery_id or derived_delivery_id(body), compact_json(payload), name)


_SIGNED_BY = "X-GitCode-Signature-256 (or X-GitCode-Token)"


@dataclass(frozen=True)
class InstallationInfo:
    """An installation as AtomGit lists it, read without tripping on its shapes."""

    id: int
    account: str
    repository_selection: str
    """``all`` or ``selected``, lower-cased as GitHub writes it."""
    events: tuple[str, ...]
    target_id: str | None = None


def read_events(raw: Any) -> tuple[str, ...]:
    """Event names from an installation's ``events``, also when AtomGit split a JSON object
    into several strings at its commas.

    >>> read_events(["push"]), read_events(['{"code":"push"', '"desc":"push event"}'])
    (('push',), ('push',))
    """
    if not isinstance(raw, list):
        return ()
    names: list[str] = []
    pending: list[str] = []
    for item in raw:
        if isinstance(item, Mapping) and isinstance(item.get("code"), str):
            names.append(item["code"])
            continue
        if not isinstance(item, str):
            continue
        if pending or item.lstrip().startswith("{"):
            pending.append(item)
            try:
                joined = json.loads(",".join(pending))
            except ValueError:
                continue
            pending = []
            if isinstance(joined, Mapping) and isinstance(joined.get("code"), str):
                names.append(joined["code"])
        else:
            names.append(item)
    return tuple(names)


def read_installation(data: Mapping[str, Any]) -> InstallationInfo:
    """An installation object of ``GET /app/installations`` (AtomGit's or GitHub's shape).

    >>> read_installation({"id": 14, "repository_selection": "ALL", "target_id": "62c3ea55",
    ...     "account": {"id": 10912, "org_name": "yanqianyu", "path": "yanqianyu"},
    ...     "events": ['{"code":"push"', '"desc":"push event"}']})
    InstallationInfo(id=14, account='yanqianyu', repository_selection='all', events=('push',), target_id='62c3ea55')
    """  # noqa: E501
    installation_id = data.get("id")
    if not isinstance(installation_id, int):
        raise InvalidPayload("the installation has no numeric id")
    account = data.get("account")
    account = account if isinstance(account, Mapping) else {}
    login = account.get("login") or account.get("path") or account.get("org_name") or ""
    target = data.get("target_id")
    return InstallationInfo(
        id=installation_id,
        account=str(login),
        repository_selection=str(data.get("repository_selection") or "all").lower(),
        events=read_events(data.get("events")),
        target_id=None if target is None else str(target),
    )


ATOMGIT = Platform(
    name="atomgit",
    events=EVENTS,
    read_webhook=read_webhook,
    api_url="https://api.atomgit.com",
    api_headers={"Accept": "application/json", "X-Api-Version": API_VERSION},
    error_from_response=error_from_response,
    actions=github.RestActions(),
    id_headers=("x-atomgit-delivery", "x-gitcode-delivery"),
)
