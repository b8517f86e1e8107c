"""Handler registration and matching."""

import pytest

from framework.dispatch.routing import Router, check_event_key
from framework.events import EVENT_MODELS
from framework.platforms import ALL_EVENTS


def h1(ctx: object) -> None: ...
async def h2(ctx: object) -> None: ...
async def h3(ctx: object) -> None: ...


def test_event_action_and_any_handlers_all_match_in_order() -> None:
    router = Router(known_events=ALL_EVENTS)
    router.add("issues", h1)
    router.add("issues.opened", h2)
    router.add("*", h3)
    assert [h.fn for h in router.match("issues", "opened")] == [h1, h2, h3]
    assert [h.fn for h in router.match("issues", "closed")] == [h1, h3]
    assert [h.fn for h in router.match("push", None)] == [h3]


def test_a_handler_registered_under_several_keys_runs_once() -> None:
    router = Router(known_events=ALL_EVENTS)
    router.add(["issues.opened", "issues.reopened"], h2)
    router.add("issues", h2)
    assert [h.fn for h in router.match("issues", "opened")] == [h2]
    assert [h.fn for h in router.match("issues", "reopened")] == [h2]
    assert router.match("issues", "closed") == (router.match("issues", "closed")[0],)


def test_async_and_plain_functions_are_told_apart() -> None:
    router = Router(known_events=ALL_EVENTS)
    router.add("push", h1)
    router.add("push", h2)
    assert [h.is_async for h in router.match("push", None)] == [False, True]


def test_registration_after_a_match_is_seen() -> None:
    router = Router(known_events=ALL_EVENTS)
    assert router.match("push", None) == ()
    router.add("push", h1)
    assert len(router.match("push", None)) == 1


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("issue.opened", "did you mean 'issues.opened'"),
        ("pullrequest", "did you mean 'pull_request'"),
        ("issues.", "not an event name"),
        ("issues.opened.now", "not an event name"),
        ("", "not an event name"),
        ("zzzzz", "not a webhook event of any platform"),
    ],
)
def test_typos_fail_at_registration_with_a_hint(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_event_key(key, ALL_EVENTS)


def test_unknown_actions_of_known_events_are_allowed() -> None:
    assert check_event_key("issues.some_future_action", ALL_EVENTS) == "issues.some_future_action"
    assert (
        check_event_key("deployment.anything", ALL_EVENTS) == "deployment.anything"
    )  # no action models


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("pull_request.open", "pull_request.opened"),
        ("issues.close", "issues.closed"),
        ("pull_request.synchronized", "pull_request.synchronize"),
        ("issue_comment.create", "issue_comment.created"),
        ("check_run.complete", "check_run.completed"),
    ],
)
def test_a_mistyped_action_is_caught_with_a_suggestion(key: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        check_event_key(key, ALL_EVENTS)
    with pytest.raises(ValueError, match="did you mean"):
        Router(known_events=ALL_EVENTS).add(key, h1)


def test_every_modelled_action_is_accepted() -> None:
    for key in EVENT_MODELS:
        assert check_event_key(key, ALL_EVENTS) == key


def test_routers_for_other_platforms_can_accept_any_name() -> None:
    router = Router(known_events=None)
    router.add("Merge Request Hook", h1)
    assert len(router.match("Merge Request Hook", None)) == 1


def test_non_callables_are_refused() -> None:
    with pytest.raises(TypeError):
        Router(known_events=ALL_EVENTS).add("push", "not a function")  # type: ignore[arg-type]
