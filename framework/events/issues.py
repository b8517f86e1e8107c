"""``issues`` and ``issue_comment`` events (comments on pull requests' conversations too)."""

from __future__ import annotations

from typing import Literal

from framework.events.base import Event, Model, Repository, User
from framework.events.objects import Change, Comment, Issue, IssueType, Label, Milestone
from framework.events.parse import event_model


class IssueChanges(Model):
    """What an ``edited`` or ``transferred`` action changed; unchanged fields are None."""

    title: Change | None = None
    body: Change | None = None
    new_issue: Issue | None = None
    new_repository: Repository | None = None


class IssueTransferChanges(IssueChanges):
    """Where a transferred issue went: the new issue and its repository."""

    new_issue: Issue
    new_repository: Repository


@event_model("issues")
class IssuesEvent(Event):
    """Activity on an issue; fields that only some actions send are None otherwise."""

    issue: Issue
    repository: Repository
    label: Label | None = None
    assignee: User | None = None
    milestone: Milestone | None = None
    type: IssueType | None = None
    changes: IssueChanges | None = None


@event_model("issues", "opened")
class IssuesOpened(IssuesEvent):
    """An issue was opened."""

    action: Literal["opened"]


@event_model("issues", "edited")
class IssuesEdited(IssuesEvent):
    """An issue's title or body was edited; ``changes`` has the previous values."""

    action: Literal["edited"]
    changes: IssueChanges


@event_model("issues", "deleted")
class IssuesDeleted(IssuesEvent):
    """An issue was deleted."""

    action: Literal["deleted"]


@event_model("issues", "pinned")
class IssuesPinned(IssuesEvent):
    """An issue was pinned to the repository."""

    action: Literal["pinned"]


@event_model("issues", "unpinned")
class IssuesUnpinned(IssuesEvent):
    """An issue was unpinned."""

    action: Literal["unpinned"]


@event_model("issues", "closed")
class IssuesClosed(IssuesEvent):
    """An issue was closed (``issue.state_reason`` says why)."""

    action: Literal["closed"]


@event_model("issues", "reopened")
class IssuesReopened(IssuesEvent):
    """A closed issue was reopened."""

    action: Literal["reopened"]


@event_model("issues", "assigned")
class IssuesAssigned(IssuesEvent):
    """Someone was assigned to the issue (``assignee``)."""

    action: Literal["assigned"]


@event_model("issues", "unassigned")
class IssuesUnassigned(IssuesEvent):
    """Someone was unassigned from the issue (``assignee``)."""

    action: Literal["unassigned"]


@event_model("issues", "labeled")
class IssuesLabeled(IssuesEvent):
    """A label was added to the issue."""

    action: Literal["labeled"]
    label: Label


@event_model("issues", "unlabeled")
class IssuesUnlabeled(IssuesEvent):
    """A label was removed; ``label`` is None when the label itself was deleted."""

    action: Literal["unlabeled"]


@event_model("issues", "locked")
class IssuesLocked(IssuesEvent):
    """The issue's conversation was locked."""

    action: Literal["locked"]


@event_model("issues", "unlocked")
class IssuesUnlocked(IssuesEvent):
    """The issue's conversation was unlocked."""

    action: Literal["unlocked"]


@event_model("issues", "transferred")
class IssuesTransferred(IssuesEvent):
    """The issue moved to another repository: see ``changes.new_issue``."""

    action: Literal["transferred"]
    changes: IssueTransferChanges


@event_model("issues", "milestoned")
class IssuesMilestoned(IssuesEvent):
    """The issue was added to a milestone: ``issue.milestone``.

    The top-level ``milestone`` is absent from some real payloads (GitHub Enterprise Server).
    """

    action: Literal["milestoned"]


@event_model("issues", "demilestoned")
class IssuesDemilestoned(IssuesEvent):
    """The issue was removed from ``milestone`` (absent from some real payloads)."""

    action: Literal["demilestoned"]


@event_model("issues", "typed")
class IssuesTyped(IssuesEvent):
    """An issue type was set on the issue (``type``)."""

    action: Literal["typed"]


@event_model("issues", "untyped")
class IssuesUntyped(IssuesEvent):
    """The issue's type was removed (``type`` is the removed one)."""

    action: Literal["untyped"]


class CommentChanges(Model):
    """What an edit changed: the previous ``body``."""

    body: Change | None = None


@event_model("issue_comment")
class IssueCommentEvent(Event):
    """Activity on a comment of an issue or of a pull request's conversation.

    ``issue.is_pull_request`` tells the two apart.
    """

    issue: Issue
    comment: Comment
    repository: Repository
    changes: CommentChanges | None = None


@event_model("issue_comment", "created")
class IssueCommentCreated(IssueCommentEvent):
    """A comment was posted."""

    action: Literal["created"]


@event_model("issue_comment", "edited")
class IssueCommentEdited(IssueCommentEvent):
    """A comment was edited; ``changes.body.from_`` is the previous body."""

    action: Literal["edited"]
    changes: CommentChanges


@event_model("issue_comment", "deleted")
class IssueCommentDeleted(IssueCommentEvent):
    """A comment was deleted."""

    action: Literal["deleted"]
