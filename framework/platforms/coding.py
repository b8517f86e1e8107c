"""CODING (seeds 001, 003): sha1-signed webhooks, a personal-token client and the open API.

Webhooks carry ``X-Coding-Event``, ``X-Coding-Delivery`` and
``X-Coding-Signature: sha1=<hex HMAC-SHA1 of the raw body>``, as JSON or as a form whose
``payload`` field holds the JSON (many independent receivers agree on these). Events keep their
names, but for ``merge_request``, which arrives as ``pull_request``, and ``issue``, as
``issues``; their actions are read onto GitHub's (``create`` → ``opened``...), and the
GitHub-shaped fields portable actions read (``issue.number``, ``pull_request.number``,
``repository.full_name``) are added beside the original ones. Payload shapes are kept loose:
no official schema is published.

The client authenticates with a personal access token (``Authorization: token …``) on the
team's REST API, and speaks the open API (``POST https://e.coding.net/open-api`` with
``{"Action": …}``), whose ``{"Response": {…, "RequestId"}}`` is unwrapped and whose
``Response.Error`` is raised as :class:`~framework.errors.CodingAPIError`.

CODING's service ends on 2028-09-30 (its users are pointed to cnb.cool); it stays in this module
so that removing it is removing a file.

>>> unwrap_open_api("DescribeIssue", {"Response": {"Issue": {"Code": 7}, "RequestId": "r-1"}})
{'Issue': {'Code': 7}, 'RequestId': 'r-1'}
>>> map_event("merge_request", {"action": "create"})
('pull_request', 'opened')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from framework.client.responses import error_from_response as github_error
from framework.client.rest import GitHubClient
from framework.common.encoding import compact_json
from framework.errors import APIError, CodingAPIError
from framework.events.parse import decode_payload
from framework.platforms.base import (
    Headers,
    Incoming,
    Platform,
    derived_delivery_id,
    json_or_form,
    required_header,
)
from framework.platforms.github import not_supported
from framework.webhooks.signature import SignatureVerifier

OPEN_API_URL = "https://e.coding.net/open-api"

EVENTS = frozenset(
    """ping push pull_request issues issue_comment merge_request_comment
    artifact wiki document iteration member project""".split()
)

_NAMES = {"merge_request": "pull_request", "issue": "issues", "mr": "pull_request"}
_ACTIONS = {
    "create": "opened",
    "created": "opened",
    "open": "opened",
    "update": "edited",
    "synchronize": "synchronize",
    "close": "closed",
    "refuse": "closed",
    "merge": "closed",
    "reopen": "reopened",
    "delete": "deleted",
}


def map_event(name: str, payload: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(event, action)`` in GitHub's words for a CODING event and its payload."""
    event = _NAMES.get(name, name)
    raw = payload.get("action")
    if not isinstance(raw, str):
        subject = payload.get("merge_request") or payload.get("issue")
        raw = subject.get("action") if isinstance(subject, Mapping) else None
    if not isinstance(raw, str) or not raw:
        return event, None
    if event in ("pull_request", "issues"):
        lowered = raw.lower()
        if event == "pull_request" and lowered == "update":
            return event, "synchronize"
        return event, _ACTIONS.get(lowered, lowered)
    return event, raw


def _number(subject: Any) -> int | None:
    if not isinstance(subject, Mapping):
        return None
    for key in ("number", "code", "iid", "merge_request_id", "id"):
        value = subject.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def project_name(payload: Mapping[str, Any]) -> str:
    """The CODING project a delivery is about (the open API's ``ProjectName``)."""
    project, repository = payload.get("project"), payload.get("repository")
    candidates = [
        project.get("name") if isinstance(project, Mapping) else None,
        repository.get("project_name") if isinstance(repository, Mapping) else None,
    ]
    for name in candidates:
        if isinstance(name, str) and name:
            return name
    raise ValueError("the payload names no CODING project")


def enrich(event: str, action: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with the GitHub-shaped fields added (nothing of the original removed)."""
    enriched = dict(payload)
    if action is not None:
        enriched["action"] = action
    repository = payload.get("repository")
    if isinstance(repository, Mapping) and "full_name" not in repository:
        owner = repository.get("owner")
        login = owner.get("global_key") or owner.get("name") if isinstance(owner, Mapping) else None
        project = payload.get("project")
        login = login or (project.get("name") if isinstance(project, Mapping) else None)
        if isinstance(login, str) and isinstance(repository.get("name"), str):
            enriched["repository"] = {
                **repository,
                "full_name": f"{login}/{repository['name']}",
                "owner": {**(owner if isinstance(owner, Mapping) else {}), "login": login},
            }
    if event == "pull_request" and "pull_request" not in payload:
        pull = payload.get("merge_request")
        if isinstance(pull, Mapping):
            enriched["pull_request"] = {**pull, "number": _number(pull)}
    if event == "issues":
        issue = payload.get("issue")
        if isinstance(issue, Mapping):
            enriched["issue"] = {**issue, "number": _number(issue)}
    return enriched


def read_webhook(headers: Headers, body: bytes, verifier: SignatureVerifier | None) -> Incoming:
    """Verify (HMAC-SHA1 in ``X-Coding-Signature``) and read one CODING delivery."""
    if verifier is not None:
        verifier.check(body, headers.get("x-coding-signature"), "sha1", "X-Coding-Signature")
    name = required_header(headers, "X-Coding-Event")
    delivery_id = headers.get("x-coding-delivery") or derived_delivery_id(body)
    payload = decode_payload(json_or_form(headers, body))
    event, action = map_event(name, payload)
    return Incoming(event, delivery_id, compact_json(enrich(event, action, payload)), name)


def unwrap_open_api(action: str, body: Any, status: int = 200) -> dict[str, Any]:
    """The ``Response`` of an open-API answer; ``Response.Error`` raised as CodingAPIError."""
    response = body.get("Response") if isinstance(body, Mapping) else None
    if not isinstance(response, Mapping):
        raise APIError("POST", f"open-api {action}", status, "the answer has no 'Response'")
    error = response.get("Error")
    if isinstance(error, Mapping):
        request_id = response.get("RequestId")
        raise CodingAPIError(
            "POST",
            f"open-api {action}",
            status,
            str(error.get("Message") or "error"),
            code=str(error.get("Code") or "unknown"),
            request_id=str(request_id) if request_id is not None else None,
        )
    return dict(response)


def error_from_response(response: httpx.Response, now: float | None = None, **kw: Any) -> APIError:
    """CODING's REST errors: ``{"code": n, "msg": {...}}`` as the message; else GitHub's rules."""
    error = github_error(response, now, **kw)
    try:
        body = response.json()
    except ValueError:
        return error
    if isinstance(body, Mapping) and error.message is None and "msg" in body:
        said = body["msg"]
        text = "; ".join(f"{v}" for v in said.values()) if isinstance(said, Mapping) else str(said)
        return type(error)(response.request.method, response.request.url.path, error.status, text)
    return error


class CodingClient(GitHubClient):
    """A client for CODING: the team's REST API (``CODING_API_URL``) and the open API.

    >>> data = await ctx.client.open_api("DescribeIssue", ProjectName="p", IssueCode=7)
    ...  # doctest: +SKIP
    """

    open_api_url: str = OPEN_API_URL

    async def open_api(self, action: str, **params: Any) -> dict[str, Any]:
        """Call an open-API ``action`` with ``params``; return its unwrapped ``Response``."""
        response = await self.request(
            "POST",
            self.open_api_url,
            json={"Action": action, **params},
            idempotent=action.startswith("Describe"),  # reads may be repeated; writes not
        )
        return unwrap_open_api(action, response.json(), response.status_code)


class CodingActions:
    """Comments and labels through the open API (CODING has no commit statuses)."""

    async def comment(self, client: Any, payload: Mapping[str, Any], text: str) -> None:
        """Comment on the delivery's issue or merge request."""
        pull = payload.get("pull_request")
        if isinstance(pull, Mapping) and _number(pull) is not None:
            await client.open_api(
                "CreateGitMergeReqNote",
                ProjectName=project_name(payload),
                MergeId=_number(pull),
                Content=text,
            )
            return
        await client.open_api(
            "CreateIssueComment",
            ProjectName=project_name(payload),
            IssueCode=_issue_code(payload),
            Content=text,
        )

    async def add_labels(
        self, client: Any, payload: Mapping[str, Any], labels: Sequence[str]
    ) -> None:
        """Add labels to the delivery's issue (labels are named; CODING wants their ids)."""
        project, code = project_name(payload), _issue_code(payload)
        known = await client.open_api("DescribeProjectLabels", ProjectName=project)
        ids = {str(label["Name"]): int(label["Id"]) for label in known.get("LabelList") or []}
        for name in labels:
            if name not in ids:
                made = await client.open_api(
                    "CreateProjectLabel", ProjectName=project, LabelName=name, Color="#0066FF"
                )
                ids[name] = int(made["LabelId"])
        issue = await client.open_api("DescribeIssue", ProjectName=project, IssueCode=code)
        current = [int(label["Id"]) for label in issue.get("Issue", {}).get("Labels") or []]
        wanted = current + [ids[name] for name in labels if ids[name] not in current]
        await client.open_api("ModifyIssue", ProjectName=project, IssueCode=code, LabelIds=wanted)

    async def set_status(
        self,
        client: Any,
        payload: Mapping[str, Any],
        sha: str,
        state: str,
        context: str,
        description: str | None,
    ) -> None:
        """CODING has no commit statuses."""
        raise not_supported("CODING", "commit statuses")


def _issue_code(payload: Mapping[str, Any]) -> int:
    code = _number(payload.get("issue"))
    if code is None:
        raise ValueError("the payload has no CODING issue")
    return code


CODING = Platform(
    name="coding",
    events=EVENTS,
    read_webhook=read_webhook,
    api_url="https://{team}.coding.net",
    api_headers={"Accept": "application/json"},
    error_from_response=error_from_response,
    actions=CodingActions(),
    id_headers=("x-coding-delivery",),
)
