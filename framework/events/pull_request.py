"""``pull_request`` and ``pull_request_review`` events."""

from __future__ import annotations

from typing import Literal

from framework.events.base import Event, Model, Repository, User
from framework.events.objects import Change, Label, Milestone, PullRequest, Review, Team
from framework.events.parse import event_model


class BaseChanges(Model):
    """The previous base branch of a pull request whose base was changed."""

    ref: Change | None = None
    sha: Change | None = None


class PullRequestChanges(Model):
    """What an ``edited`` action changed; unchanged fields are None."""

    title: Change | None = None
    body: Change | None = None
    base: BaseChanges | None = None


@event_model("pull_request")
class PullRequestEvent(Event):
    """Activity on a pull request; fields that only some actions send are None otherwise."""

    number: int
    pull_request: PullRequest
    repository: Repository
    label: Label | None = None
    assignee: User | None = None
    milestone: Milestone | None = None
    requested_reviewer: User | None = None
    requested_team: Team | None = None
    changes: PullRequestChanges | None = None
    before: str | None = None
    after: str | None = None
    reason: str | None = None


@event_model("pull_request", "opened")
class PullRequestOpened(PullRequestEvent):
    """A pull request was opened."""

    action: Literal["opened"]


@event_model("pull_request", "edited")
class PullRequestEdited(PullRequestEvent):
    """A pull request's title, body or base branch was edited: see ``changes``."""

    action: Literal["edited"]
    changes: PullRequestChanges


@event_model("pull_request", "closed")
class PullRequestClosed(PullRequestEvent):
    """A pull request was closed: merged if ``pull_request.merged``, else abandoned."""

    action: Literal["closed"]


@event_model("pull_request", "reopened")
class PullRequestReopened(PullRequestEvent):
    """A closed pull request was reopened."""

    action: Literal["reopened"]


@event_model("pull_request", "assigned")
class PullRequestAssigned(PullRequestEvent):
    """Someone was assigned to the pull request (``assignee``)."""

    action: Literal["assigned"]


@event_model("pull_request", "unassigned")
class PullRequestUnassigned(PullRequestEvent):
    """Someone was unassigned from the pull request (``assignee``)."""

    action: Literal["unassigned"]


@event_model("pull_request", "review_requested")
class PullRequestReviewRequested(PullRequestEvent):
    """A review was requested from ``requested_reviewer`` or ``requested_team``."""

    action: Literal["review_requested"]


@event_model("pull_request", "review_request_removed")
class PullRequestReviewRequestRemoved(PullRequestEvent):
    """A review request to ``requested_reviewer`` or ``requested_team`` was withdrawn."""

    action: Literal["review_request_removed"]


@event_model("pull_request", "labeled")
class PullRequestLabeled(PullRequestEvent):
    """A label was added to the pull request."""

    action: Literal["labeled"]
    label: Label


@event_model("pull_request", "unlabeled")
class PullRequestUnlabeled(PullRequestEvent):
    """A label was removed; ``label`` is None when the label itself was deleted."""

    action: Literal["unlabeled"]


@event_model("pull_request", "synchronize")
class PullRequestSynchronize(PullRequestEvent):
    """The head branch moved (new commits, force-push): from ``before`` to ``after``."""

    action: Literal["synchronize"]
    before: str
    after: str


@event_model("pull_request", "ready_for_review")
class PullRequestReadyForReview(PullRequestEvent):
    """A draft pull request was marked ready for review."""

    action: Literal["ready_for_review"]


@event_model("pull_request", "converted_to_draft")
class PullRequestConvertedToDraft(PullRequestEvent):
    """A pull request was converted to a draft."""

    action: Literal["converted_to_draft"]


@event_model("pull_request", "locked")
class PullRequestLocked(PullRequestEvent):
    """The pull request's conversation was locked."""

    action: Literal["locked"]


@event_model("pull_request", "unlocked")
class PullRequestUnlocked(PullRequestEvent):
    """The pull request's conversation was unlocked."""

    action: Literal["unlocked"]


@event_model("pull_request", "auto_merge_enabled")
class PullRequestAutoMergeEnabled(PullRequestEvent):
    """Auto-merge was enabled (``pull_request.auto_merge``)."""

    action: Literal["auto_merge_enabled"]


@event_model("pull_request", "auto_merge_disabled")
class PullRequestAutoMergeDisabled(PullRequestEvent):
    """Auto-merge was disabled; ``reason`` may say why."""

    action: Literal["auto_merge_disabled"]


@event_model("pull_request", "enqueued")
class PullRequestEnqueued(PullRequestEvent):
    """The pull request was added to the merge queue."""

    action: Literal["enqueued"]


@event_model("pull_request", "dequeued")
class PullRequestDequeued(PullRequestEvent):
    """The pull request left the merge queue; ``reason`` says why."""

    action: Literal["dequeued"]


@event_model("pull_request", "milestoned")
class PullRequestMilestoned(PullRequestEvent):
    """The pull request was added to ``milestone``."""

    action: Literal["milestoned"]


@event_model("pull_request", "demilestoned")
class PullRequestDemilestoned(PullRequestEvent):
    """The pull request was removed from ``milestone``."""

    action: Literal["demilestoned"]


class ReviewChanges(Model):
    """What an edit of a review changed: the previous ``body``."""

    body: Change | None = None


@event_model("pull_request_review")
class PullRequestReviewEvent(Event):
    """Activity on a pull request review."""

    review: Review
    pull_request: PullRequest
    repository: Repository
    changes: ReviewChanges | None = None


@event_model("pull_request_review", "submitted")
class PullRequestReviewSubmitted(PullRequestReviewEvent):
    """A review was submitted; ``review.state`` is ``approved``, ``changes_requested`` ..."""

    action: Literal["submitted"]


@event_model("pull_request_review", "edited")
class PullRequestReviewEdited(PullRequestReviewEvent):
    """A review's body was edited; ``changes.body.from_`` is the previous body."""

    action: Literal["edited"]
    changes: ReviewChanges


@event_model("pull_request_review", "dismissed")
class PullRequestReviewDismissed(PullRequestReviewEvent):
    """A review was dismissed."""

    action: Literal["dismissed"]
