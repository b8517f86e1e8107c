"""A delivery's typed event builds each field when first read, and the payload's summary.

A handler that reads ``ctx.event.issue`` and ``ctx.repo_full_name`` should pay for the issue
and for two names, not for the whole payload: at a burst of 18 KB deliveries, building the
whole dict and the whole model took about a fifth of the labeler's CPU. Everything that
needs the whole event must still see it whole, as the eagerly parsed event is.
"""

from __future__ import annotations

import copy
import json
import pickle
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from framework.errors import InvalidPayload
from framework.events import Event, IssuesOpened, parse_event
from framework.events.parse import decode_summary, lazy_event
from framework.webhooks.delivery import Delivery
from tests.support import PAYLOADS

FIXTURES = sorted(PAYLOADS.glob("*.json"))


def routed(path: Path) -> tuple[str, str | None, bytes, dict[str, Any]]:
    body = path.read_bytes()
    payload = json.loads(body)
    action = payload.get("action")
    return path.stem.split("~")[0].split(".")[0], action, body, payload


@pytest.mark.parametrize("source", ["json", "dict"])
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_a_lazy_event_reads_every_field_and_dumps_as_the_parsed_one(
    path: Path, source: str
) -> None:
    name, action, body, payload = routed(path)
    eager = parse_event(name, payload, delivery_id="d-1")
    lazy = lazy_event(name, action, body if source == "json" else payload, delivery_id="d-1")

    assert type(lazy) is type(eager)
    for field in type(eager).model_fields:  # one by one, each from the payload
        assert getattr(lazy, field) == getattr(eager, field), field
    assert lazy.model_dump() == eager.model_dump()
    assert lazy.model_extra == eager.model_extra
    assert lazy.model_fields_set == eager.model_fields_set
    assert (lazy.raw, lazy.name, lazy.delivery_id) == (payload, name, "d-1")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_whole_event_operations_build_what_was_not_read(path: Path) -> None:
    name, action, body, payload = routed(path)
    eager = parse_event(name, payload)

    def fresh() -> Event:
        event = lazy_event(name, action, body)
        event.sender  # noqa: B018 - one field read, the others not yet
        return event

    assert fresh().model_dump_json() == eager.model_dump_json()
    assert repr(fresh()) == repr(eager)
    assert dict(fresh()) == dict(eager)
    assert fresh() == eager and eager == fresh()
    assert copy.copy(fresh()).model_dump() == eager.model_dump()
    assert copy.deepcopy(fresh()) == eager
    assert pickle.loads(pickle.dumps(fresh())) == eager

    class Job(BaseModel):  # an event inside another model is dumped whole too
        event: Event

    assert Job(event=fresh()).model_dump() == Job(event=eager).model_dump()
    assert Job(event=fresh()).model_dump(serialize_as_any=True)["event"] == eager.model_dump()


def test_a_field_read_before_the_whole_event_is_built_stays_the_same_object() -> None:
    body = (PAYLOADS / "issues.opened.json").read_bytes()
    event = cast(IssuesOpened, lazy_event("issues", "opened", body))
    issue = event.issue
    issue.title = "edited by the handler"
    event.extra_note = "set by the handler"  # an extra: the rest is built first, then it

    assert event.issue is issue
    dumped = event.model_dump()
    assert dumped["issue"]["title"] == "edited by the handler"
    assert dumped["extra_note"] == "set by the handler"
    assert dumped["repository"]["full_name"] == json.loads(body)["repository"]["full_name"]


def test_only_what_is_read_must_fit_the_model() -> None:
    payload = json.loads((PAYLOADS / "issues.opened.json").read_bytes())
    payload["repository"]["id"] = "not a number"
    event = cast(IssuesOpened, lazy_event("issues", "opened", json.dumps(payload).encode()))

    assert event.issue.number == payload["issue"]["number"]
    with pytest.raises(
        InvalidPayload,
        match=r"^issues\.opened payload does not fit IssuesOpened: repository\.id: Input should "
        r"be a valid integer",
    ):
        event.repository  # noqa: B018
    with pytest.raises(InvalidPayload, match=r"repository\.id"):
        event.model_dump()  # the whole event needs the repository


# --- A bot's own models: what only a whole validation does is done ---------------------


class Noted(IssuesOpened):
    """A bot's model whose validator keeps what it saw, in a field and a private attribute."""

    seen: str = ""
    _seen: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def noted(self) -> Noted:
        self.seen = self._seen = self.issue.title.upper()
        return self


class AfterInit(IssuesOpened):
    _title: str = PrivateAttr(default="")

    def model_post_init(self, context: Any, /) -> None:
        self._title = self.issue.title.upper()


class Stripped(IssuesOpened):
    model_config = ConfigDict(str_strip_whitespace=True)
    note: str = ""


class Frozen(IssuesOpened):
    model_config = ConfigDict(frozen=True)


class OwnSerializer(IssuesOpened):
    @model_serializer(mode="wrap")
    def counted(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {**dumped, "fields": len(dumped)}


class DefinedLater(IssuesOpened):
    thing: Thing | None = None  # a class defined below this one, as a bot may write it


class Thing(BaseModel):
    x: int


def body_with(**extra: Any) -> bytes:
    payload = json.loads((PAYLOADS / "issues.opened.json").read_bytes())
    return json.dumps({**payload, **extra}).encode()


@pytest.mark.parametrize(
    "model", [Noted, AfterInit, Stripped, Frozen, OwnSerializer, DefinedLater], ids=repr
)
def test_a_bots_own_model_reads_as_the_parsed_one(model: type[Event]) -> None:
    body = body_with(note="  padded  ", thing={"x": 1})
    eager = model.of(body, name="issues", label="issues.opened", by_field=False)
    lazy = model.of(body, name="issues", label="issues.opened")
    if model is Frozen:  # a frozen model's hash reads every field: it is built whole at once
        assert set(vars(lazy)) == set(model.model_fields)

    for field in model.model_fields:
        assert getattr(lazy, field) == getattr(eager, field), field
    assert lazy.model_dump() == eager.model_dump()
    assert lazy.__pydantic_private__ == eager.__pydantic_private__  # what validators set
    if model is Stripped:
        assert lazy.note == "padded"  # type: ignore[attr-defined]
    if model is DefinedLater:
        assert lazy.thing == Thing(x=1)  # type: ignore[attr-defined]


def test_threads_reading_a_field_at_once_get_one_and_the_same_object() -> None:
    # Plain handlers run in threads and share the delivery's event: a field read by two of
    # them at once must be one object, or one handler's change to it is lost.
    body = (PAYLOADS / "issues.opened.json").read_bytes()
    for _ in range(100):  # the race is a few microseconds wide: give it many chances
        event = cast(IssuesOpened, lazy_event("issues", "opened", body))
        start = threading.Barrier(4)

        def read(event: IssuesOpened = event, start: threading.Barrier = start) -> object:
            start.wait(timeout=10)
            return event.issue if random.random() < 0.75 else event.model_dump()["issue"]

        with ThreadPoolExecutor(4) as pool:
            seen = list(pool.map(lambda _: read(), range(4)))
        issues = [item for item in seen if not isinstance(item, dict)]
        assert all(item is event.issue for item in issues)


def test_a_change_to_the_payload_dict_does_not_change_the_event() -> None:
    payload = json.loads((PAYLOADS / "issues.opened.json").read_bytes())
    title = payload["issue"]["title"]
    delivery = Delivery.from_payload("d-1", "issues", payload)
    event = cast(IssuesOpened, delivery.event)

    delivery.payload["issue"]["title"] = "changed by a handler"

    assert event.issue.title == title


def test_dir_names_the_fields_not_read_yet() -> None:
    event = lazy_event("issues", "opened", (PAYLOADS / "issues.opened.json").read_bytes())
    assert {"issue", "repository", "sender"} <= set(dir(event))


def test_a_body_that_is_not_json_fails_where_a_field_is_read() -> None:
    event = cast(IssuesOpened, lazy_event("issues", "opened", b'{"issue": '))
    with pytest.raises(InvalidPayload, match=r"^payload is not valid JSON$"):
        event.issue  # noqa: B018


def test_the_json_schema_of_an_event_is_its_models_in_both_modes() -> None:
    # The serializer that builds a lazy event whole must not hide the model from a schema.
    modes: tuple[Literal["validation", "serialization"], ...] = ("validation", "serialization")
    for mode in modes:
        schema = IssuesOpened.model_json_schema(mode=mode)
        assert {"issue", "repository", "sender"} <= set(schema["properties"]), mode


# --- The summary: what ctx.repo_full_name, ctx.repo() and ctx.issue() read ---------------


def test_the_summary_holds_the_repository_names_and_the_numbers_only() -> None:
    payload = json.loads((PAYLOADS / "pull_request.opened.json").read_bytes())
    summary = decode_summary(json.dumps(payload).encode())
    repository = payload["repository"]
    assert summary == {
        "repository": {
            "full_name": repository["full_name"],
            "name": repository["name"],
            "owner": {"login": repository["owner"]["login"]},
        },
        "pull_request": {"number": payload["pull_request"]["number"]},
        "number": payload["number"],
    }


def test_a_delivery_names_its_repository_and_issue_without_parsing_its_payload() -> None:
    body = (PAYLOADS / "issues.opened.json").read_bytes()
    payload = json.loads(body)
    delivery = Delivery.from_body("d-1", "issues", body)

    assert delivery.repository == payload["repository"]["full_name"]
    assert cast(IssuesOpened, delivery.event).issue.number == payload["issue"]["number"]
    assert delivery._payload is None  # neither read needed the whole payload


def test_a_summary_of_an_odd_shape_falls_back_to_the_payload() -> None:
    body = json.dumps({"action": "opened", "repository": "octo/app", "issue": 7}).encode()
    delivery = Delivery.from_body("d-1", "issues", body)

    assert decode_summary(body) is None
    assert delivery.repository is None
    assert delivery.summary == json.loads(body)  # the payload itself, parsed
