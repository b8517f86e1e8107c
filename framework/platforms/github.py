"""GitHub: Apps and their webhooks (``X-GitHub-Event``, ``X-Hub-Signature-256``).

The reference platform: every other module says how it differs from this one. Deliveries are
signed with HMAC-SHA256 of the raw body (legacy sha1 on request), sent as JSON or as a form
whose ``payload`` field holds the JSON; the event name and the delivery id come from headers,
the action from the body. GitHub lists failed deliveries and redelivers them on request
(:mod:`framework.platforms.redelivery`: the bot's own sweep, ``deliveries sync``).

>>> from framework.webhooks.signature import SignatureVerifier, sign
>>> body = b'{"action":"opened","issue":{"number":7}}'
>>> headers = {"x-github-event": "issues", "x-github-delivery": "d-1",
...            "x-hub-signature-256": sign(body, "s3cret")}
>>> GITHUB.read_delivery(headers, body, SignatureVerifier(["s3cret"])).key
'issues.opened'
>>> call = comment_call({"repository": {"full_name": "octo/app"}, "issue": {"number": 7}}, "Hi")
>>> call.method, call.path, call.json
('POST', '/repos/octo/app/issues/7/comments', {'body': 'Hi'})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from framework.client.responses import error_from_response
from framework.errors import NotSupported
from framework.platforms.base import (
    ApiCall,
    Headers,
    Incoming,
    Platform,
    json_or_form,
    required_header,
)
from framework.webhooks.delivery import Delivery
from framework.webhooks.signature import SignatureVerifier

# Every event GitHub sends to apps and webhooks (docs.github.com, "Webhook events and payloads").
EVENTS = frozenset(
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


def read_webhook(headers: Headers, body: bytes, verifier: SignatureVerifier | None) -> Incoming:
    """Verify and read one GitHub delivery; checks in this order: the signature over the raw
    bytes, the event and delivery headers, the content type."""
    if verifier is not None:
        verifier.verify(body, headers.get("x-hub-signature-256"), headers.get("x-hub-signature"))
    name = required_header(headers, "X-GitHub-Event")
    delivery_id = required_header(headers, "X-GitHub-Delivery")
    return Incoming(name, delivery_id, json_or_form(headers, body), name)


def revokes_tokens(delivery: Delivery) -> bool:
    """Whether the delivery says the installation's tokens stopped working."""
    return delivery.name == "installation" and delivery.action in ("deleted", "suspend")


def repository_full_name(payload: Mapping[str, Any]) -> str:
    """``owner/name`` of the payload's repository; ValueError if it has none.

    >>> repository_full_name({"repository": {"name": "app", "owner": {"login": "octo"}}})
    'octo/app'
    """
    repository = payload.get("repository")
    if isinstance(repository, Mapping):
        full_name = repository.get("full_name")
        if isinstance(full_name, str) and "/" in full_name:
            return full_name
        owner = repository.get("owner")
        login = owner.get("login") if isinstance(owner, Mapping) else None
        name = repository.get("name")
        if isinstance(login, str) and isinstance(name, str):
            return f"{login}/{name}"
    raise ValueError("the payload names no repository")


def issue_number(payload: Mapping[str, Any]) -> int:
    """The number of the payload's issue or pull request; ValueError if it has none.

    >>> issue_number({"pull_request": {"number": 3}}), issue_number({"number": 4})
    (3, 4)
    """
    for key in ("issue", "pull_request"):
        subject = payload.get(key)
        if isinstance(subject, Mapping) and isinstance(subject.get("number"), int):
            return int(subject["number"])
    if isinstance(payload.get("number"), int):
        return int(payload["number"])
    raise ValueError("the payload has no issue or pull request")


def comment_call(payload: Mapping[str, Any], text: str) -> ApiCall:
    """The request that comments on the payload's issue or pull request."""
    path = f"/repos/{repository_full_name(payload)}/issues/{issue_number(payload)}/comments"
    return ApiCall("POST", path, json={"body": text})


def labels_call(payload: Mapping[str, Any], labels: Sequence[str]) -> ApiCall:
    """The request that adds labels to the payload's issue or pull request.

    >>> labels_call({"repository": {"full_name": "o/r"}, "issue": {"number": 1}}, ["bug"]).json
    {'labels': ['bug']}
    """
    path = f"/repos/{repository_full_name(payload)}/issues/{issue_number(payload)}/labels"
    return ApiCall("POST", path, json={"labels": list(labels)})


STATUS_STATES = frozenset({"error", "failure", "pending", "success"})


def status_call(
    payload: Mapping[str, Any], sha: str, state: str, context: str, description: str | None
) -> ApiCall:
    """The request that sets a commit status on the payload's repository.

    >>> status_call({"repository": {"full_name": "o/r"}}, "abc", "success", "ci", None).path
    '/repos/o/r/statuses/abc'
    """
    if state not in STATUS_STATES:
        raise ValueError(f"state must be one of {sorted(STATUS_STATES)}, not {state!r}")
    body: dict[str, Any] = {"state": state, "context": context}
    if description is not None:
        body["description"] = description[:140]  # GitHub refuses longer descriptions
    return ApiCall("POST", f"/repos/{repository_full_name(payload)}/statuses/{sha}", json=body)


class RestActions:
    """The portable actions over GitHub's REST paths (GitHub, and AtomGit's GitHub-shaped API)."""

    async def comment(self, client: Any, payload: Mapping[str, Any], text: str) -> None:
        """Comment on the issue or pull request."""
        await send(client, comment_call(payload, text))

    async def add_labels(
        self, client: Any, payload: Mapping[str, Any], labels: Sequence[str]
    ) -> None:
        """Add labels to the issue or pull request."""
        await send(client, labels_call(payload, labels))

    async def set_status(
        self,
        client: Any,
        payload: Mapping[str, Any],
        sha: str,
        state: str,
        context: str,
        description: str | None,
    ) -> None:
        """Set a commit status."""
        await send(client, status_call(payload, sha, state, context, description))


async def send(client: Any, call: ApiCall) -> Any:
    """Send one :class:`ApiCall` with a REST client (``client.request``)."""
    if call.json is not None:
        return await client.request(call.method, call.path, json=call.json)
    if call.data is not None:
        return await client.request(call.method, call.path, data=dict(call.data))
    return await client.request(call.method, call.path)


def not_supported(platform: str, what: str) -> NotSupported:
    """The error for a portable action a platform has no counterpart of."""
    return NotSupported(f"{platform} has no {what}: this action cannot run for its deliveries")


GITHUB = Platform(
    name="github",
    events=EVENTS,
    read_webhook=read_webhook,
    api_url="https://api.github.com",
    api_headers={"Accept": "application/vnd.github+json"},
    error_from_response=error_from_response,
    actions=RestActions(),
    redelivers=True,
    id_headers=("x-github-delivery",),
)
