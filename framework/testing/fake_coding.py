"""A strict fake of CODING's open API, for tests of bots that serve CODING.

``POST /open-api`` takes ``{"Action": …, …}`` with the personal token in
``Authorization: token …`` and answers ``{"Response": {…, "RequestId"}}``; what CODING would
refuse is answered in its envelope, ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``:
a missing or wrong token (``AuthFailure``), an action it does not know, a missing parameter,
an unknown project or issue. Implemented actions: ``DescribeIssue``, ``CreateIssueComment``,
``DescribeProjectLabels``, ``CreateProjectLabel``, ``ModifyIssue``, ``CreateGitMergeReqNote``.

>>> fake = FakeCoding(token="t0ken")
>>> fake.add_issue("demo", 7, title="Crash")
>>> fake.issue_labels("demo", 7)
[]
"""

from __future__ import annotations

import hmac
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["FakeCoding", "OpenApiCall"]


@dataclass(frozen=True)
class OpenApiCall:
    """One request the fake answered: the action and its parameters (no token)."""

    action: str
    params: dict[str, Any]
    error: str | None


@dataclass
class _Issue:
    title: str
    labels: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


_REQUIRED = {
    "DescribeIssue": ("ProjectName", "IssueCode"),
    "CreateIssueComment": ("ProjectName", "IssueCode", "Content"),
    "DescribeProjectLabels": ("ProjectName",),
    "CreateProjectLabel": ("ProjectName", "LabelName"),
    "ModifyIssue": ("ProjectName", "IssueCode"),
    "CreateGitMergeReqNote": ("ProjectName", "MergeId", "Content"),
}


class FakeCoding:
    """CODING's open API for one personal token; serve :attr:`app` with
    :func:`framework.testing.serve` and point ``CODING_OPEN_API_URL`` at ``{url}/open-api``."""

    def __init__(self, *, token: str) -> None:
        self.token = token
        self._lock = threading.RLock()
        self._issues: dict[tuple[str, int], _Issue] = {}
        self._labels: dict[str, dict[int, str]] = {}
        self._merge_notes: dict[tuple[str, int], list[str]] = {}
        self._ids = itertools.count(1001)
        self.calls: list[OpenApiCall] = []
        self.app = Starlette(routes=[Route("/open-api", self._endpoint, methods=["POST"])])

    def add_issue(self, project: str, code: int, *, title: str = "An issue") -> None:
        """Create issue ``code`` in ``project`` (the project is created as needed)."""
        with self._lock:
            self._issues[(project, code)] = _Issue(title)
            self._labels.setdefault(project, {})

    def issue_labels(self, project: str, code: int) -> list[str]:
        """The names of an issue's labels, in the order they were given."""
        with self._lock:
            names = self._labels.get(project, {})
            return [names[i] for i in self._issues[(project, code)].labels]

    def issue_comments(self, project: str, code: int) -> list[str]:
        """The comments on an issue."""
        with self._lock:
            return list(self._issues[(project, code)].comments)

    def merge_request_notes(self, project: str, merge_id: int) -> list[str]:
        """The notes on a merge request."""
        with self._lock:
            return list(self._merge_notes.get((project, merge_id), []))

    async def _endpoint(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        authorization = request.headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(request_id, "InvalidParameter", "the body is not JSON", status=400)
        if not isinstance(body, dict) or not isinstance(body.get("Action"), str):
            return _error(request_id, "InvalidParameter", "the body names no Action", status=400)
        action = str(body.pop("Action"))
        valid = scheme.lower() == "token" and hmac.compare_digest(credential.strip(), self.token)
        if not valid:
            self._record(action, body, "AuthFailure")
            return _error(request_id, "AuthFailure", "the token is missing or not valid")
        if action not in _REQUIRED:
            self._record(action, body, "InvalidAction")
            return _error(request_id, "InvalidAction", f"the action {action} is not supported")
        missing = [name for name in _REQUIRED[action] if body.get(name) in (None, "")]
        if missing:
            self._record(action, body, "MissingParameter")
            return _error(request_id, "MissingParameter", f"missing {', '.join(missing)}")
        with self._lock:
            answer = self._perform(action, body)
        if isinstance(answer, str):
            self._record(action, body, "ResourceNotFound")
            return _error(request_id, "ResourceNotFound", answer)
        self._record(action, body, None)
        return JSONResponse({"Response": {**answer, "RequestId": request_id}})

    def _record(self, action: str, params: dict[str, Any], error: str | None) -> None:
        with self._lock:
            self.calls.append(OpenApiCall(action, dict(params), error))

    def _perform(self, action: str, p: dict[str, Any]) -> dict[str, Any] | str:
        project = str(p["ProjectName"])
        if project not in self._labels:
            return f"no project {project}"
        labels = self._labels[project]
        if action == "DescribeProjectLabels":
            return {"LabelList": [{"Id": i, "Name": n} for i, n in labels.items()]}
        if action == "CreateProjectLabel":
            label_id = next(self._ids)
            labels[label_id] = str(p["LabelName"])
            return {"LabelId": label_id}
        if action == "CreateGitMergeReqNote":
            self._merge_notes.setdefault((project, int(p["MergeId"])), []).append(p["Content"])
            return {"NoteId": next(self._ids)}
        issue = self._issues.get((project, int(p["IssueCode"])))
        if issue is None:
            return f"no issue {p['IssueCode']} in {project}"
        if action == "DescribeIssue":
            named = [{"Id": i, "Name": labels[i]} for i in issue.labels]
            return {"Issue": {"Code": int(p["IssueCode"]), "Name": issue.title, "Labels": named}}
        if action == "CreateIssueComment":
            issue.comments.append(str(p["Content"]))
            return {"CommentId": next(self._ids)}
        wanted = p.get("LabelIds")
        if wanted is not None:  # ModifyIssue
            unknown = [i for i in wanted if i not in labels]
            if unknown:
                return f"no labels {unknown} in {project}"
            issue.labels = list(wanted)
        return {"Issue": {"Code": int(p["IssueCode"])}}


def _error(request_id: str, code: str, message: str, status: int = 200) -> JSONResponse:
    error = {"Code": code, "Message": message}
    return JSONResponse({"Response": {"Error": error, "RequestId": request_id}}, status)
