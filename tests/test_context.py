"""Context helpers, as Probot's: repo(), issue(), pull_request(), is_bot, the bound logger."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from framework import App, Context, Settings
from framework.events import IssueCommentCreated, PullRequestOpened, PushEvent
from framework.observe.log import JSONFormatter, PrettyFormatter, bind
from framework.webhooks.delivery import Delivery

PAYLOADS = Path(__file__).parent / "fixtures" / "payloads"


def context_for(name: str, fixture: str, **changes: Any) -> Context:
    payload = json.loads((PAYLOADS / fixture).read_text())
    payload.update(changes)
    app = App(Settings(webhook_secret="x"))
    delivery = Delivery.from_body("d-1", name, json.dumps(payload).encode())
    return Context(app, delivery, bind(logging.getLogger("t"), delivery="d-1"))


async def test_repo_and_issue_on_an_issue_comment() -> None:
    ctx = context_for("issue_comment", "issue_comment.created.json")
    assert isinstance(ctx.event, IssueCommentCreated)
    assert ctx.repo() == {"owner": "Codertocat", "repo": "Hello-World"}
    assert ctx.repo(path="README.md")["path"] == "README.md"
    assert ctx.issue(body="hi") == {
        "owner": "Codertocat",
        "repo": "Hello-World",
        "issue_number": 1,
        "body": "hi",
    }
    assert ctx.repo_full_name == "Codertocat/Hello-World"


async def test_pull_request_numbers() -> None:
    ctx = context_for("pull_request", "pull_request.opened.json")
    assert isinstance(ctx.event, PullRequestOpened)
    number = ctx.payload["pull_request"]["number"]
    assert ctx.pull_request() == {
        "owner": "Codertocat",
        "repo": "Hello-World",
        "pull_number": number,
    }
    assert ctx.issue()["issue_number"] == number


async def test_events_without_an_issue_say_so() -> None:
    ctx = context_for("push", "push.json")
    assert isinstance(ctx.event, PushEvent)
    assert ctx.repo()["repo"] == "Hello-World"
    with pytest.raises(ValueError, match="push event has no issue"):
        ctx.issue()


async def test_events_without_a_repository_say_so() -> None:
    ctx = context_for("installation", "installation.created.json")
    with pytest.raises(ValueError, match=r"installation\.created event has no repository"):
        ctx.repo()


async def test_is_bot_follows_the_sender_type() -> None:
    human = context_for("issues", "issues.opened.json")
    assert not human.is_bot
    bot_sender = dict(human.payload["sender"], type="Bot", login="labeler[bot]")
    assert context_for("issues", "issues.opened.json", sender=bot_sender).is_bot


def test_bound_fields_reach_both_formats() -> None:
    logger = logging.getLogger("bound")
    log = bind(logger, delivery="d-9", event="issues.opened", installation=42)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    log.bind(handler="greet").info("labelled %s", "it", extra={"label": "x"})
    [record] = records
    entry = json.loads(JSONFormatter().format(record))
    assert entry["message"] == "labelled it"
    assert (entry["delivery_id"], entry["event"], entry["installation"]) == (
        "d-9",
        "issues.opened",
        42,
    )
    assert (entry["handler"], entry["label"]) == ("greet", "x")
    pretty = PrettyFormatter().format(record)
    assert "labelled it" in pretty and "delivery=d-9" in pretty and "installation=42" in pretty


async def test_the_repository_and_number_are_read_without_building_the_typed_event() -> None:
    ctx = context_for("issue_comment", "issue_comment.created.json")
    assert ctx.repo_full_name == "Codertocat/Hello-World"
    assert ctx.issue()["issue_number"] == 1
    assert ctx.delivery._event is None  # the model was never built
    assert isinstance(ctx.event, IssueCommentCreated)


async def test_a_payload_whose_repository_is_odd_has_no_repository() -> None:
    app = App(Settings(webhook_secret="x"))
    delivery = Delivery.from_body("d-2", "issues", b'{"repository": {"name": 5}, "issue": {}}')
    ctx = Context(app, delivery, bind(logging.getLogger("t"), delivery="d-2"))
    with pytest.raises(ValueError, match="has no repository"):
        _ = ctx.repo_full_name
    with pytest.raises(ValueError, match="no issue or pull request"):
        ctx.issue()
