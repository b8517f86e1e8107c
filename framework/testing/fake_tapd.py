"""A strict fake of TAPD's API (``https://api.tapd.cn``), for tests of bots that serve TAPD.

Every answer is in TAPD's envelope, ``{"status": 1, "data": …, "info": "success"}``; what TAPD
refuses is ``{"status": 0, "data": …, "info": <why>}`` (with HTTP 401 for credentials): HTTP
Basic with the API user and password (or ``Bearer`` with the token) on every request, form
bodies on writes, the required fields of each endpoint. Implemented: ``GET /stories|bugs|tasks``
(by ``workspace_id`` and ``id``), ``POST /stories|bugs|tasks`` (update ``label``), and
``POST /comments``.

>>> fake = FakeTapd(api_user="bot", api_password="pw")
>>> fake.add_entry("story", workspace_id=10022001, entry_id="1001", name="Login page")
>>> fake.labels("story", "1001"), fake.comments("story", "1001")
([], [])
"""

from __future__ import annotations

import base64
import hmac
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from framework.errors import InvalidPayload
from framework.platforms.base import form_fields

__all__ = ["FakeTapd", "TapdCall"]

_ENTITIES = {"/stories": "story", "/bugs": "bug", "/tasks": "task"}
_ENTRY_TYPES = {"stories": "story", "bug": "bug", "tasks": "task"}
_RECORDS = {"story": "Story", "bug": "Bug", "task": "Task"}


@dataclass(frozen=True)
class TapdCall:
    """One request the fake answered: method, path, its query or form fields, the outcome."""

    method: str
    path: str
    fields: dict[str, str]
    info: str


@dataclass
class _Entry:
    workspace_id: int
    name: str
    label: str = ""
    comments: list[dict[str, str]] = field(default_factory=list)


class FakeTapd:
    """TAPD's API for one API user (or one token); serve :attr:`app` with
    :func:`framework.testing.serve` and point ``TAPD_API_URL`` at it."""

    def __init__(
        self,
        *,
        api_user: str | None = None,
        api_password: str | None = None,
        token: str | None = None,
    ) -> None:
        expected = []
        if api_user is not None and api_password is not None:
            pair = f"{api_user}:{api_password}".encode()
            expected.append("Basic " + base64.b64encode(pair).decode())
        if token is not None:
            expected.append(f"Bearer {token}")
        if not expected:
            raise ValueError("give api_user and api_password, or token")
        self._expected = expected
        self._lock = threading.RLock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.calls: list[TapdCall] = []
        paths = [Route(p, self._entity, methods=["GET", "POST"]) for p in _ENTITIES]
        self.app = Starlette(routes=[*paths, Route("/comments", self._comment, methods=["POST"])])

    def add_entry(self, entity: str, *, workspace_id: int, entry_id: str, name: str) -> None:
        """Create a story, bug or task ``entry_id`` in a workspace."""
        with self._lock:
            self._entries[(entity, entry_id)] = _Entry(workspace_id, name)

    def labels(self, entity: str, entry_id: str) -> list[str]:
        """An entry's labels."""
        with self._lock:
            return [n for n in self._entries[(entity, entry_id)].label.split("|") if n]

    def comments(self, entity: str, entry_id: str) -> list[str]:
        """The text of an entry's comments."""
        with self._lock:
            return [c["description"] for c in self._entries[(entity, entry_id)].comments]

    def comment_authors(self, entity: str, entry_id: str) -> list[str]:
        """Who each comment was posted as."""
        with self._lock:
            return [c["author"] for c in self._entries[(entity, entry_id)].comments]

    async def _fields(self, request: Request) -> dict[str, str] | JSONResponse:
        if request.method == "GET":
            return dict(request.query_params)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            return _refuse(f"send a form body, not {media or 'nothing'}", 400)
        try:
            return form_fields(await request.body())
        except InvalidPayload as exc:
            return _refuse(str(exc), 400)

    async def _checked(
        self, request: Request, required: tuple[str, ...]
    ) -> dict[str, str] | JSONResponse:
        """The request's fields, or the refusal TAPD gives: bad body, credentials or fields."""
        fields = await self._fields(request)
        if isinstance(fields, JSONResponse):
            return fields
        given = request.headers.get("authorization", "").strip()
        if not any(hmac.compare_digest(given, e) for e in self._expected):
            return self._record(
                request, fields, _refuse("Unauthorized: check the credentials", 401)
            )
        missing = [k for k in required if not fields.get(k)]
        if missing:
            return self._record(request, fields, _refuse(f"missing {', '.join(missing)}"))
        return fields

    async def _entity(self, request: Request) -> JSONResponse:
        fields = await self._checked(request, ("workspace_id", "id"))
        if isinstance(fields, JSONResponse):
            return fields
        entity = _ENTITIES[request.url.path]
        with self._lock:
            entry = self._entries.get((entity, fields["id"]))
            if entry is None or str(entry.workspace_id) != fields["workspace_id"]:
                return self._record(request, fields, _refuse(f"no {entity} {fields['id']}"))
            if request.method == "POST" and "label" in fields:
                entry.label = fields["label"]
            record = {"id": fields["id"], "name": entry.name, "label": entry.label}
            record["workspace_id"] = str(entry.workspace_id)
        data: Any = {_RECORDS[entity]: record}
        return self._record(request, fields, _ok([data] if request.method == "GET" else data))

    async def _comment(self, request: Request) -> JSONResponse:
        required = ("workspace_id", "entry_type", "entry_id", "description", "author")
        fields = await self._checked(request, required)
        if isinstance(fields, JSONResponse):
            return fields
        entity = _ENTRY_TYPES.get(fields["entry_type"])
        with self._lock:
            entry = self._entries.get((entity or "", fields["entry_id"]))
            if entity is None or entry is None:
                return self._record(request, fields, _refuse("no such entry"))
            entry.comments.append(fields)
        return self._record(request, fields, _ok({"Comment": {"id": str(len(entry.comments))}}))

    def _record(
        self, request: Request, fields: dict[str, str], reply: JSONResponse
    ) -> JSONResponse:
        info = str(_json(reply).get("info", ""))
        with self._lock:
            self.calls.append(TapdCall(request.method, request.url.path, dict(fields), info))
        return reply


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"status": 1, "data": data, "info": "success"})


def _refuse(info: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"status": 0, "data": {}, "info": info}, status)


def _json(reply: JSONResponse) -> dict[str, Any]:
    import json

    loaded = json.loads(bytes(reply.body))
    return loaded if isinstance(loaded, dict) else {}
