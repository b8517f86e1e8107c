"""Typed webhook events, checked against real payloads (tests/fixtures/payloads/README.md).

A fixture is named ``<event>.<action>.json`` (``<event>.json`` for events without actions,
``~variant`` for a second payload of the same key). Payloads that GitHub could send but the
example set lacks are derived in the tests below from a real one, and say so.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from framework.errors import InvalidPayload
from framework.events import (
    EVENT_MODELS,
    CheckRunCompleted,
    CheckRunCreated,
    CheckRunEvent,
    CheckRunRequestedAction,
    CheckRunRerequested,
    CheckSuiteCompleted,
    CheckSuiteEvent,
    CheckSuiteRequested,
    CheckSuiteRerequested,
    CreateEvent,
    DeleteEvent,
    Event,
    GenericEvent,
    GithubAppAuthorizationEvent,
    GithubAppAuthorizationRevoked,
    Installation,
    InstallationCreated,
    InstallationDeleted,
    InstallationDetails,
    InstallationEvent,
    InstallationNewPermissionsAccepted,
    InstallationRepositoriesAdded,
    InstallationRepositoriesEvent,
    InstallationRepositoriesRemoved,
    InstallationSuspend,
    InstallationTargetEvent,
    InstallationTargetRenamed,
    InstallationUnsuspend,
    IssueCommentCreated,
    IssueCommentDeleted,
    IssueCommentEdited,
    IssueCommentEvent,
    IssuesAssigned,
    IssuesClosed,
    IssuesDeleted,
    IssuesDemilestoned,
    IssuesEdited,
    IssuesEvent,
    IssuesLabeled,
    IssuesLocked,
    IssuesMilestoned,
    IssuesOpened,
    IssuesPinned,
    IssuesReopened,
    IssuesTransferred,
    IssuesTyped,
    IssuesUnassigned,
    IssuesUnlabeled,
    IssuesUnlocked,
    IssuesUnpinned,
    IssuesUntyped,
    PingEvent,
    PullRequestAssigned,
    PullRequestAutoMergeDisabled,
    PullRequestAutoMergeEnabled,
    PullRequestClosed,
    PullRequestConvertedToDraft,
    PullRequestDemilestoned,
    PullRequestDequeued,
    PullRequestEdited,
    PullRequestEnqueued,
    PullRequestEvent,
    PullRequestLabeled,
    PullRequestLocked,
    PullRequestMilestoned,
    PullRequestOpened,
    PullRequestReadyForReview,
    PullRequestReopened,
    PullRequestReviewDismissed,
    PullRequestReviewEdited,
    PullRequestReviewEvent,
    PullRequestReviewRequested,
    PullRequestReviewRequestRemoved,
    PullRequestReviewSubmitted,
    PullRequestSynchronize,
    PullRequestUnassigned,
    PullRequestUnlabeled,
    PullRequestUnlocked,
    PushEvent,
    ReleaseCreated,
    ReleaseDeleted,
    ReleaseEdited,
    ReleaseEvent,
    ReleasePrereleased,
    ReleasePublished,
    ReleaseReleased,
    ReleaseUnpublished,
    RepositoryArchived,
    RepositoryCreated,
    RepositoryDeleted,
    RepositoryEdited,
    RepositoryEvent,
    RepositoryPrivatized,
    RepositoryPublicized,
    RepositoryRenamed,
    RepositoryTransferred,
    RepositoryUnarchived,
    StatusEvent,
    WorkflowRunCompleted,
    WorkflowRunEvent,
    WorkflowRunInProgress,
    WorkflowRunRequested,
    parse_event,
)

PAYLOADS = Path(__file__).parent / "fixtures" / "payloads"
FIXTURES = sorted(PAYLOADS.glob("*.json"))

# Every key a handler can name, and the model it gets: the contract typed handlers rely on.
EXPECTED_MODELS: dict[str, type[Event]] = {
    "ping": PingEvent,
    "push": PushEvent,
    "create": CreateEvent,
    "delete": DeleteEvent,
    "status": StatusEvent,
    "installation": InstallationEvent,
    "installation.created": InstallationCreated,
    "installation.deleted": InstallationDeleted,
    "installation.suspend": InstallationSuspend,
    "installation.unsuspend": InstallationUnsuspend,
    "installation.new_permissions_accepted": InstallationNewPermissionsAccepted,
    "installation_repositories": InstallationRepositoriesEvent,
    "installation_repositories.added": InstallationRepositoriesAdded,
    "installation_repositories.removed": InstallationRepositoriesRemoved,
    "installation_target": InstallationTargetEvent,
    "installation_target.renamed": InstallationTargetRenamed,
    "github_app_authorization": GithubAppAuthorizationEvent,
    "github_app_authorization.revoked": GithubAppAuthorizationRevoked,
    "issues": IssuesEvent,
    "issues.opened": IssuesOpened,
    "issues.edited": IssuesEdited,
    "issues.deleted": IssuesDeleted,
    "issues.pinned": IssuesPinned,
    "issues.unpinned": IssuesUnpinned,
    "issues.closed": IssuesClosed,
    "issues.reopened": IssuesReopened,
    "issues.assigned": IssuesAssigned,
    "issues.unassigned": IssuesUnassigned,
    "issues.labeled": IssuesLabeled,
    "issues.unlabeled": IssuesUnlabeled,
    "issues.locked": IssuesLocked,
    "issues.unlocked": IssuesUnlocked,
    "issues.transferred": IssuesTransferred,
    "issues.milestoned": IssuesMilestoned,
    "issues.demilestoned": IssuesDemilestoned,
    "issues.typed": IssuesTyped,
    "issues.untyped": IssuesUntyped,
    "issue_comment": IssueCommentEvent,
    "issue_comment.created": IssueCommentCreated,
    "issue_comment.edited": IssueCommentEdited,
    "issue_comment.deleted": IssueCommentDeleted,
    "pull_request": PullRequestEvent,
    "pull_request.opened": PullRequestOpened,
    "pull_request.edited": PullRequestEdited,
    "pull_request.closed": PullRequestClosed,
    "pull_request.reopened": PullRequestReopened,
    "pull_request.assigned": PullRequestAssigned,
    "pull_request.unassigned": PullRequestUnassigned,
    "pull_request.review_requested": PullRequestReviewRequested,
    "pull_request.review_request_removed": PullRequestReviewRequestRemoved,
    "pull_request.labeled": PullRequestLabeled,
    "pull_request.unlabeled": PullRequestUnlabeled,
    "pull_request.synchronize": PullRequestSynchronize,
    "pull_request.ready_for_review": PullRequestReadyForReview,
    "pull_request.converted_to_draft": PullRequestConvertedToDraft,
    "pull_request.locked": PullRequestLocked,
    "pull_request.unlocked": PullRequestUnlocked,
    "pull_request.auto_merge_enabled": PullRequestAutoMergeEnabled,
    "pull_request.auto_merge_disabled": PullRequestAutoMergeDisabled,
    "pull_request.enqueued": PullRequestEnqueued,
    "pull_request.dequeued": PullRequestDequeued,
    "pull_request.milestoned": PullRequestMilestoned,
    "pull_request.demilestoned": PullRequestDemilestoned,
    "pull_request_review": PullRequestReviewEvent,
    "pull_request_review.submitted": PullRequestReviewSubmitted,
    "pull_request_review.edited": PullRequestReviewEdited,
    "pull_request_review.dismissed": PullRequestReviewDismissed,
    "check_run": CheckRunEvent,
    "check_run.created": CheckRunCreated,
    "check_run.completed": CheckRunCompleted,
    "check_run.rerequested": CheckRunRerequested,
    "check_run.requested_action": CheckRunRequestedAction,
    "check_suite": CheckSuiteEvent,
    "check_suite.completed": CheckSuiteCompleted,
    "check_suite.requested": CheckSuiteRequested,
    "check_suite.rerequested": CheckSuiteRerequested,
    "workflow_run": WorkflowRunEvent,
    "workflow_run.requested": WorkflowRunRequested,
    "workflow_run.in_progress": WorkflowRunInProgress,
    "workflow_run.completed": WorkflowRunCompleted,
    "release": ReleaseEvent,
    "release.published": ReleasePublished,
    "release.unpublished": ReleaseUnpublished,
    "release.created": ReleaseCreated,
    "release.edited": ReleaseEdited,
    "release.deleted": ReleaseDeleted,
    "release.prereleased": ReleasePrereleased,
    "release.released": ReleaseReleased,
    "repository": RepositoryEvent,
    "repository.created": RepositoryCreated,
    "repository.deleted": RepositoryDeleted,
    "repository.archived": RepositoryArchived,
    "repository.unarchived": RepositoryUnarchived,
    "repository.edited": RepositoryEdited,
    "repository.renamed": RepositoryRenamed,
    "repository.transferred": RepositoryTransferred,
    "repository.publicized": RepositoryPublicized,
    "repository.privatized": RepositoryPrivatized,
}

# Modelled actions for which @octokit/webhooks-examples has no real payload, so no fixture.
NO_REAL_PAYLOAD = {
    "installation_target.renamed",
    "issues.closed",
    "issues.typed",
    "issues.untyped",
    "pull_request.auto_merge_disabled",
    "pull_request.auto_merge_enabled",
    "pull_request.demilestoned",
    "pull_request.dequeued",
    "pull_request.edited",
    "pull_request.enqueued",
    "pull_request.milestoned",
    "pull_request_review.edited",
    "release.unpublished",
    "repository.archived",
    "repository.unarchived",
    "workflow_run.in_progress",
}


def fixture_key(path: Path) -> str:
    """``issues.opened`` for ``issues.opened.json`` and ``ping`` for ``ping~organization.json``."""
    return path.stem.split("~")[0]


def load(key: str) -> dict[str, Any]:
    """A real payload, freshly parsed (tests may modify it)."""
    payload: dict[str, Any] = json.loads((PAYLOADS / f"{key}.json").read_bytes())
    return payload


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# --- The registry ------------------------------------------------------------------------


def test_event_models_maps_every_event_and_action_to_its_model() -> None:
    assert EVENT_MODELS == EXPECTED_MODELS


@pytest.mark.parametrize("key", [k for k in EXPECTED_MODELS if "." in k])
def test_every_action_model_pins_its_action_and_extends_its_event_model(key: str) -> None:
    name, action = key.split(".", 1)
    model = EVENT_MODELS[key]
    assert typing.get_args(model.model_fields["action"].annotation) == (action,)
    assert issubclass(model, EVENT_MODELS[name])
    assert model.event_name == name


def test_events_without_actions_are_a_single_model() -> None:
    for name in ("push", "status", "create", "delete", "ping"):
        assert not [key for key in EVENT_MODELS if key.startswith(f"{name}.")]


# --- Every real payload --------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_real_payload_parses_into_its_model(path: Path) -> None:
    body = path.read_bytes()
    raw = json.loads(body)
    key = fixture_key(path)
    name = key.split(".")[0]

    event = parse_event(name, body, delivery_id="d-1")

    assert type(event) is EVENT_MODELS[key]
    assert event.name == name
    assert event.action == raw.get("action")
    assert event.raw == raw
    assert event.delivery_id == "d-1"
    assert event.installation_id == (raw.get("installation") or {}).get("id")
    assert event.repository_full_name == (raw.get("repository") or {}).get("full_name")
    if raw.get("sender") is None:
        assert event.sender is None
    else:
        assert event.sender is not None
        assert (event.sender.login, event.sender.id) == (
            raw["sender"]["login"],
            raw["sender"]["id"],
        )


def test_fixtures_cover_every_modelled_action_but_the_known_gaps() -> None:
    with_fixture = {fixture_key(path) for path in FIXTURES}
    # One payload per action, and one per event that has no actions (push, status ...).
    wanted = {
        key
        for key in EVENT_MODELS
        if "." in key or not any(other.startswith(f"{key}.") for other in EVENT_MODELS)
    }
    assert with_fixture <= wanted
    assert wanted - with_fixture == NO_REAL_PAYLOAD


# What a bot author reaches for, as JSON paths into real payloads ("*" maps over a list).
# Each must be a typed field of the model (not an extra) and equal the raw JSON.
TYPED_FIELDS = [
    ("issues.opened", "issue.number"),
    ("issues.opened", "issue.title"),
    ("issues.opened", "issue.body"),
    ("issues.opened", "issue.state"),
    ("issues.opened", "issue.user.login"),
    ("issues.labeled", "label.name"),
    ("issues.labeled", "issue.labels.*.name"),
    ("issues.unlabeled", "label.name"),
    ("issues.assigned", "assignee.login"),
    ("issues.assigned", "issue.assignees.*.login"),
    ("issues.milestoned", "milestone.title"),
    ("issues.milestoned", "issue.milestone.number"),
    ("issues.edited", "issue.title"),
    ("issues.transferred", "changes.new_issue.number"),
    ("issues.transferred", "changes.new_repository.full_name"),
    ("issue_comment.created", "comment.body"),
    ("issue_comment.created", "comment.user.login"),
    ("issue_comment.created", "issue.number"),
    ("issue_comment.edited", "changes.body.from"),
    ("pull_request.opened", "number"),
    ("pull_request.opened", "pull_request.title"),
    ("pull_request.opened", "pull_request.draft"),
    ("pull_request.opened", "pull_request.head.sha"),
    ("pull_request.opened", "pull_request.head.ref"),
    ("pull_request.opened", "pull_request.head.repo.full_name"),
    ("pull_request.opened", "pull_request.base.ref"),
    ("pull_request.opened", "pull_request.user.login"),
    ("pull_request.closed", "pull_request.merged"),
    ("pull_request.closed", "pull_request.merge_commit_sha"),
    ("pull_request.labeled", "label.name"),
    ("pull_request.synchronize", "before"),
    ("pull_request.synchronize", "after"),
    ("pull_request.review_requested", "requested_reviewer.login"),
    ("pull_request.review_requested", "pull_request.requested_reviewers.*.login"),
    ("pull_request_review.submitted", "review.state"),
    ("pull_request_review.submitted", "review.body"),
    ("pull_request_review.submitted", "review.user.login"),
    ("pull_request_review.submitted", "pull_request.number"),
    ("push", "ref"),
    ("push", "before"),
    ("push", "after"),
    ("push", "created"),
    ("push", "deleted"),
    ("push", "forced"),
    ("push", "commits.*.id"),
    ("push", "commits.*.message"),
    ("push", "commits.*.author.name"),
    ("push", "commits.*.modified"),
    ("push", "head_commit.id"),
    ("push", "pusher.name"),
    ("create", "ref"),
    ("create", "ref_type"),
    ("delete", "ref"),
    ("delete", "ref_type"),
    ("status", "sha"),
    ("status", "state"),
    ("status", "context"),
    ("status", "commit.commit.message"),
    ("check_run.completed", "check_run.status"),
    ("check_run.completed", "check_run.conclusion"),
    ("check_run.completed", "check_run.head_sha"),
    ("check_run.completed", "check_run.app.id"),
    ("check_run.completed", "check_run.check_suite.id"),
    ("check_run.requested_action", "requested_action.identifier"),
    ("check_suite.requested", "check_suite.head_sha"),
    ("check_suite.requested", "check_suite.head_branch"),
    ("check_suite.completed", "check_suite.conclusion"),
    ("check_suite.completed", "check_suite.pull_requests.*.number"),
    ("workflow_run.completed", "workflow_run.conclusion"),
    ("workflow_run.completed", "workflow_run.head_sha"),
    ("workflow_run.completed", "workflow.name"),
    ("release.published", "release.tag_name"),
    ("release.published", "release.name"),
    ("release.edited", "changes.name.from"),
    ("repository.renamed", "changes.repository.name.from"),
    ("repository.transferred", "changes.owner.from"),
    ("installation.created", "installation.account.login"),
    ("installation.created", "installation.app_id"),
    ("installation.created", "repositories.*.full_name"),
    ("installation.suspend", "installation.suspended_by.login"),
    ("installation_repositories.added", "repositories_added.*.full_name"),
    ("installation_repositories.removed", "repositories_removed.*.full_name"),
    ("github_app_authorization.revoked", "sender.login"),
]


def typed_field(value: Any, path: list[str]) -> Any:
    """Follow ``path`` through model attributes, failing on anything that is only an extra."""
    if not path:
        return value
    head, *rest = path
    if head == "*":
        return [typed_field(item, rest) for item in value]
    name = "from_" if head == "from" else head
    assert name in type(value).model_fields, f"{head!r} is not a typed field of {type(value)}"
    return typed_field(getattr(value, name), rest)


def json_field(value: Any, path: list[str]) -> Any:
    if not path:
        return value
    head, *rest = path
    if head == "*":
        return [json_field(item, rest) for item in value]
    return json_field(value[head], rest)


@pytest.mark.parametrize(("key", "path"), TYPED_FIELDS, ids=[f"{k}:{p}" for k, p in TYPED_FIELDS])
def test_typed_fields_match_the_raw_payload(key: str, path: str) -> None:
    raw = load(key)
    event = parse_event(key.split(".")[0], dumps(raw))
    assert typed_field(event, path.split(".")) == json_field(raw, path.split("."))


def test_an_issue_comment_says_whether_it_is_on_a_pull_request() -> None:
    raw = load("issue_comment.created")
    event = parse_event("issue_comment", dumps(raw))
    assert isinstance(event, IssueCommentCreated)
    assert event.issue.is_pull_request == ("pull_request" in raw["issue"])


def test_timestamps_are_aware_datetimes() -> None:
    event = parse_event("issues", dumps(load("issues.opened")))
    assert isinstance(event, IssuesOpened)
    created_at = datetime.fromisoformat(load("issues.opened")["issue"]["created_at"])
    assert event.issue.created_at == created_at
    assert event.issue.created_at is not None and event.issue.created_at.tzinfo is not None


# --- ping ------------------------------------------------------------------------------------


def test_app_ping_names_the_app() -> None:
    # Derived from the real ping of a hook an App created: an App's own webhook says
    # hook.type == "App" and comes with no repository.
    payload = load("ping")
    payload["hook"]["type"] = "App"
    del payload["repository"]

    event = parse_event("ping", dumps(payload))

    assert isinstance(event, PingEvent)
    assert event.hook is not None
    assert event.hook.type == "App"
    assert event.hook.app_id == payload["hook"]["app_id"] == 29310
    assert event.zen == payload["zen"]
    assert event.installation_id is None
    assert event.repository_full_name is None


def test_repository_hook_ping() -> None:
    event = parse_event("ping", dumps(load("ping")))
    assert isinstance(event, PingEvent)
    assert event.hook is not None and event.hook.type == "Repository"
    assert event.hook_id == event.hook.id
    assert event.repository_full_name == "Octocoders/Hello-World"


def test_organization_hook_ping() -> None:
    event = parse_event("ping", (PAYLOADS / "ping~organization.json").read_bytes())
    assert isinstance(event, PingEvent)
    assert event.hook is not None and event.hook.type == "Organization"
    assert event.organization is not None and event.organization.login == "Octocoders"
    assert event.repository_full_name is None


# --- Drift: payloads as GitHub may send them tomorrow ------------------------------------------


def test_installation_created_at_as_epoch_or_iso_is_the_same_instant() -> None:
    epoch = load("installation.created")
    assert epoch["installation"]["created_at"] == 1557933591  # as GitHub sends it here
    iso = copy.deepcopy(epoch)
    iso["installation"]["created_at"] = "2019-05-15T15:19:51Z"
    numeric_string = copy.deepcopy(epoch)
    numeric_string["installation"]["created_at"] = "1557933591"

    def created_at(payload: dict[str, Any]) -> datetime | None:
        event = parse_event("installation", dumps(payload))
        assert isinstance(event, InstallationCreated)
        return event.installation.created_at

    instants = {created_at(payload) for payload in (epoch, iso, numeric_string)}

    assert instants == {datetime(2019, 5, 15, 15, 19, 51, tzinfo=UTC)}


def test_installation_created_at_as_iso_with_offset_in_a_real_payload() -> None:
    event = parse_event("installation", dumps(load("installation.suspend")))
    assert isinstance(event, InstallationSuspend)
    assert event.installation.created_at == datetime(2021, 4, 29, 2, 32, 21, tzinfo=UTC)


def test_unknown_action_parses_as_the_event_base_model() -> None:
    payload = load("issues.opened")
    payload["action"] = "frobnicated"

    event = parse_event("issues", dumps(payload))

    assert type(event) is IssuesEvent
    assert event.action == "frobnicated"
    assert event.issue.number == payload["issue"]["number"]


def test_unknown_fields_are_kept() -> None:
    payload = load("pull_request.opened")
    payload["brand_new_field"] = {"nested": [1, 2]}
    payload["pull_request"]["shiny"] = True

    event = parse_event("pull_request", dumps(payload))

    assert isinstance(event, PullRequestOpened)
    assert event.model_extra is not None
    assert event.model_extra["brand_new_field"] == {"nested": [1, 2]}
    assert event.pull_request.shiny is True  # type: ignore[attr-defined]
    # Fields no model names are extras too, wherever they are.
    head_repo = event.pull_request.head.repo
    assert head_repo is not None
    clone_url = head_repo.clone_url  # type: ignore[attr-defined]
    assert clone_url == payload["pull_request"]["head"]["repo"]["clone_url"]


def test_missing_sender_is_none() -> None:
    payload = load("issues.opened")
    del payload["sender"]
    event = parse_event("issues", dumps(payload))
    assert event.sender is None


def test_installation_outside_installation_events_is_id_and_node_id_only() -> None:
    raw = load("issues.pinned")
    assert set(raw["installation"]) == {"id", "node_id"}  # as GitHub sends it

    event = parse_event("issues", dumps(raw))

    assert type(event.installation) is Installation
    assert event.installation_id == raw["installation"]["id"]
    assert event.installation.node_id == raw["installation"]["node_id"]


def test_installation_events_carry_the_full_installation() -> None:
    event = parse_event("installation", dumps(load("installation.created")))
    assert isinstance(event, InstallationCreated)
    assert type(event.installation) is InstallationDetails
    raw = load("installation.created")["installation"]
    assert event.installation.permissions == raw["permissions"]
    assert event.installation.target_type == raw["target_type"]
    assert event.installation.repository_selection == raw["repository_selection"]


def test_unknown_event_is_a_generic_event_with_working_accessors() -> None:
    raw = load("issues.pinned")

    event = parse_event("some_future_event", dumps(raw), delivery_id="d-2")

    assert type(event) is GenericEvent
    assert event.name == "some_future_event"
    assert event.action == "pinned"
    assert event.delivery_id == "d-2"
    assert event.installation_id == raw["installation"]["id"]
    assert event.repository_full_name == raw["repository"]["full_name"]
    assert event.sender is not None and event.sender.login == raw["sender"]["login"]
    assert event.raw == raw
    assert event.model_extra is not None and event.model_extra["issue"] == raw["issue"]


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"[1, 2]", b"[]", b'"issues"', b"42"])
def test_a_body_that_is_not_a_json_object_is_an_invalid_payload(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse_event("issues", body)


def test_a_broken_required_field_is_an_invalid_payload_naming_field_and_event() -> None:
    payload = load("issues.opened")
    payload["issue"]["number"] = "not a number"

    with pytest.raises(InvalidPayload) as caught:
        parse_event("issues", dumps(payload))

    message = str(caught.value)
    assert "issues.opened" in message
    assert "IssuesOpened" in message
    assert "issue.number" in message
    assert caught.value.status == 400


def test_a_missing_required_field_is_an_invalid_payload_naming_it() -> None:
    payload = load("issues.labeled")
    del payload["label"]

    with pytest.raises(InvalidPayload, match=r"issues\.labeled.*label"):
        parse_event("issues", dumps(payload))


def test_unlabeled_without_label_parses() -> None:
    # Derived: when a label is deleted, GitHub sends issues.unlabeled with no `label`.
    payload = load("issues.unlabeled")
    del payload["label"]
    event = parse_event("issues", dumps(payload))
    assert isinstance(event, IssuesUnlabeled)
    assert event.label is None


def test_lists_sent_as_null_read_as_empty() -> None:
    payload = load("pull_request.opened")
    payload["pull_request"]["requested_reviewers"] = None
    payload["pull_request"]["labels"] = None
    event = parse_event("pull_request", dumps(payload))
    assert isinstance(event, PullRequestOpened)
    assert event.pull_request.requested_reviewers == []
    assert event.pull_request.labels == []


def test_deleted_head_fork_is_a_null_head_repo() -> None:
    payload = load("pull_request.closed")
    payload["pull_request"]["head"]["repo"] = None
    event = parse_event("pull_request", dumps(payload))
    assert isinstance(event, PullRequestClosed)
    assert event.pull_request.head.repo is None


def test_status_event_name_is_the_event_not_the_payload_field() -> None:
    raw = load("status")
    event = parse_event("status", dumps(raw))
    assert event.name == "status"
    assert event.raw["name"] == raw["name"] == event.repository_full_name


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_payload_may_be_bytes_bytearray_memoryview_str_or_dict(
    wrap: Callable[[bytes], Any],
) -> None:
    body = (PAYLOADS / "push.json").read_bytes()
    assert isinstance(parse_event("push", wrap(body)), PushEvent)
    assert isinstance(parse_event("push", json.loads(body)), PushEvent)
