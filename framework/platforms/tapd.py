"""TAPD (seed 002): webhooks that carry their secret in the body, and an enveloped API.

A TAPD delivery has no signature header. Its body, form-encoded by default or JSON, carries
the ``event`` (``story::create``, ``bug::update``, ``task::status_change``...), the
``workspace_id``, the ``event_id`` (the delivery id here) and the plaintext ``secret``, which is
compared in constant time and **removed** before the payload is stored, logged or handed to a
handler. ``story::create`` is routed as ``@app.on("story.create")``: the event is ``story``,
the action ``create`` (added to the payload as ``action``).

The API (``https://api.tapd.cn``, HTTP Basic with ``TAPD_API_USER``/``TAPD_API_PASSWORD``, or a
bearer token) answers in the ``{"status": 1, "data": …, "info": "success"}`` envelope; a
status other than 1 raises :class:`~framework.errors.TapdAPIError` with ``info``.

>>> from framework.webhooks.signature import SignatureVerifier
>>> incoming = read_webhook({"content-type": "application/x-www-form-urlencoded"},
...     b"event=story%3A%3Acreate&workspace_id=10022001&id=1&event_id=77&secret=s3cret",
...     SignatureVerifier(["s3cret"]))
>>> incoming.event, incoming.delivery_id, b"s3cret" in incoming.body
('story', '77', False)
>>> unwrap({"status": 1, "data": {"Story": {"id": "1"}}, "info": "success"})
{'Story': {'id': '1'}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from framework.client.responses import error_from_response as http_error
from framework.client.rest import GitHubClient
from framework.common.encoding import compact_json
from framework.errors import APIError, InvalidPayload, TapdAPIError
from framework.events.parse import decode_payload
from framework.platforms.base import (
    ApiCall,
    Headers,
    Incoming,
    Platform,
    derived_delivery_id,
    form_fields,
)
from framework.platforms.github import not_supported, send
from framework.webhooks.signature import SignatureVerifier

ENTITIES = {"story": "stories", "bug": "bug", "task": "tasks"}
"""Event (entity) names and the ``entry_type`` TAPD's comments API names them by."""
_COLLECTIONS = {"story": "/stories", "bug": "/bugs", "task": "/tasks"}

EVENTS = frozenset(
    "story bug task launchform iteration release tcase wiki comment test_plan".split()
)


def split_event(value: str) -> tuple[str, str | None]:
    """``story::create`` → ``("story", "create")``.

    >>> split_event("task::status_change"), split_event("ping")
    (('task', 'status_change'), ('ping', None))
    """
    name, sep, action = value.partition("::")
    return name, (action or None) if sep else None


def read_webhook(headers: Headers, body: bytes, verifier: SignatureVerifier | None) -> Incoming:
    """Check the body's ``secret``, remove it, and read one TAPD delivery."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", "text/json") or body.lstrip()[:1] == b"{":
        fields: dict[str, Any] = decode_payload(body)
    else:
        fields = dict(form_fields(body))
    secret = fields.pop("secret", None)
    if verifier is not None:
        verifier.check_token(secret if isinstance(secret, str) else None, "the body's secret field")
    native = fields.get("event")
    if not isinstance(native, str) or not native:
        raise InvalidPayload("the TAPD delivery has no 'event' field")
    event, action = split_event(native)
    if action is not None:
        fields["action"] = action
    cleaned = compact_json(fields)
    event_id = fields.get("event_id")
    delivery_id = str(event_id) if event_id not in (None, "") else derived_delivery_id(cleaned)
    return Incoming(event, delivery_id, cleaned, native)


def unwrap(body: Any, method: str = "GET", path: str = "", status: int = 200) -> Any:
    """The ``data`` of a TAPD answer; ``status != 1`` raises TapdAPIError with ``info``."""
    if not isinstance(body, Mapping) or "status" not in body:
        raise APIError(method, path, status, "the answer is not TAPD's {status, data, info}")
    if body.get("status") != 1:
        raise TapdAPIError(method, path, status, str(body.get("info") or "error"))
    return body.get("data")


def error_from_response(response: httpx.Response, now: float | None = None, **kw: Any) -> APIError:
    """TAPD's HTTP errors, with the envelope's ``info`` as the message where there is one."""
    error = http_error(response, now, **kw)
    try:
        body = response.json()
    except ValueError:
        return error
    if isinstance(body, Mapping) and error.message is None and body.get("info"):
        request = response.request
        return type(error)(request.method, request.url.path, error.status, str(body["info"]))
    return error


class TapdClient(GitHubClient):
    """A client for TAPD's API whose answers are unwrapped: ``await client.data(...)``.

    ``author`` is the name comments are posted under.

    >>> stories = await ctx.client.data("GET", "/stories", params={"workspace_id": 1})
    ...  # doctest: +SKIP
    """

    author: str = "bot"

    async def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request; an answer whose envelope says ``status != 1`` raises."""
        response = await super().request(method, path, idempotent=idempotent, **kwargs)
        try:
            body = response.json()
        except ValueError:
            return response
        unwrap(body, method, path, response.status_code)
        return response

    async def data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of a request's answer."""
        response = await self.request(method, path, **kwargs)
        return unwrap(response.json(), method, path, response.status_code)


def workspace_id(payload: Mapping[str, Any]) -> int | None:
    """The TAPD workspace (project) a delivery belongs to.

    >>> workspace_id({"workspace_id": "10022001"}), workspace_id({})
    (10022001, None)
    """
    value = payload.get("workspace_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _entity(payload: Mapping[str, Any]) -> tuple[str, str, int]:
    event = payload.get("event")
    entity, _ = split_event(event if isinstance(event, str) else "")
    entry_id = payload.get("id")
    workspace = workspace_id(payload)
    if entity not in ENTITIES or entry_id in (None, "") or workspace is None:
        raise ValueError("the payload is not about a TAPD story, bug or task")
    return entity, str(entry_id), workspace


def comment_call(payload: Mapping[str, Any], text: str, author: str) -> ApiCall:
    """The request that comments on the delivery's story, bug or task.

    >>> comment_call({"event": "story::create", "id": "11", "workspace_id": "22"}, "Hi", "bot")
    ApiCall(method='POST', path='/comments', json=None, data={'workspace_id': '22', 'entry_type': 'stories', 'entry_id': '11', 'description': 'Hi', 'author': 'bot'})
    """  # noqa: E501
    entity, entry_id, workspace = _entity(payload)
    data = {
        "workspace_id": str(workspace),
        "entry_type": ENTITIES[entity],
        "entry_id": entry_id,
        "description": text,
        "author": author,
    }
    return ApiCall("POST", "/comments", data=data)


def merged_labels(current: str | None, labels: Sequence[str]) -> str:
    """TAPD keeps labels as one ``|``-separated string; add to it without repeating.

    >>> merged_labels("bug|ui", ["ui", "triage"])
    'bug|ui|triage'
    """
    names = [n for n in (current or "").split("|") if n]
    names += [n for n in labels if n not in names]
    return "|".join(names)


class TapdActions:
    """Comments and labels on stories, bugs and tasks (TAPD has no commit statuses)."""

    async def comment(self, client: Any, payload: Mapping[str, Any], text: str) -> None:
        """Comment on the delivery's story, bug or task."""
        await send(client, comment_call(payload, text, getattr(client, "author", "bot")))

    async def add_labels(
        self, client: Any, payload: Mapping[str, Any], labels: Sequence[str]
    ) -> None:
        """Add labels to the delivery's story, bug or task."""
        entity, entry_id, workspace = _entity(payload)
        path = _COLLECTIONS[entity]
        found = await client.data(
            "GET", path, params={"workspace_id": workspace, "id": entry_id, "fields": "label"}
        )
        items = found if isinstance(found, list) else [found]
        current = None
        for item in items:
            record = next(iter(item.values()), None) if isinstance(item, Mapping) else None
            if isinstance(record, Mapping):
                current = record.get("label")
        label = merged_labels(current if isinstance(current, str) else None, labels)
        await send(
            client,
            ApiCall(
                "POST", path, data={"workspace_id": str(workspace), "id": entry_id, "label": label}
            ),
        )

    async def set_status(
        self,
        client: Any,
        payload: Mapping[str, Any],
        sha: str,
        state: str,
        context: str,
        description: str | None,
    ) -> None:
        """TAPD has no commits, so no commit statuses."""
        raise not_supported("TAPD", "commit statuses")


TAPD = Platform(
    name="tapd",
    events=EVENTS,
    read_webhook=read_webhook,
    api_url="https://api.tapd.cn",
    api_headers={"Accept": "application/json"},
    error_from_response=error_from_response,
    actions=TapdActions(),
)
