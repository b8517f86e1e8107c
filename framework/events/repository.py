"""Repository events: ``push``, ``create``, ``delete``, ``release`` and ``repository``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from framework.events.base import Event, Model, Repository
from framework.events.objects import Change, CommitAuthor, Items, PushCommit, Release
from framework.events.parse import event_model


@event_model("push")
class PushEvent(Event):
    """Commits were pushed to a branch or a tag (or the ref was created or deleted).

    ``ref`` is the full ref (``refs/heads/main``); ``before`` and ``after`` are the shas
    the ref moved between (all zeros when it was created or deleted).
    """

    ref: str
    before: str
    after: str
    repository: Repository
    created: bool
    deleted: bool
    forced: bool
    base_ref: str | None = None
    compare: str | None = None
    commits: Items[PushCommit] = Field(default_factory=list)
    head_commit: PushCommit | None = None
    pusher: CommitAuthor | None = None


@event_model("create")
class CreateEvent(Event):
    """A branch or a tag was created (``ref_type``); ``ref`` is its short name."""

    ref: str
    ref_type: str
    repository: Repository
    master_branch: str | None = None
    description: str | None = None
    pusher_type: str | None = None


@event_model("delete")
class DeleteEvent(Event):
    """A branch or a tag was deleted (``ref_type``); ``ref`` is its short name."""

    ref: str
    ref_type: str
    repository: Repository
    pusher_type: str | None = None


class ReleaseChanges(Model):
    """What an edit of a release changed; unchanged fields are None."""

    name: Change | None = None
    body: Change | None = None
    tag_name: Change | None = None


@event_model("release")
class ReleaseEvent(Event):
    """Activity on a release."""

    release: Release
    repository: Repository
    changes: ReleaseChanges | None = None


@event_model("release", "published")
class ReleasePublished(ReleaseEvent):
    """A release (or pre-release) was published."""

    action: Literal["published"]


@event_model("release", "unpublished")
class ReleaseUnpublished(ReleaseEvent):
    """A published release went back to draft."""

    action: Literal["unpublished"]


@event_model("release", "created")
class ReleaseCreated(ReleaseEvent):
    """A release was created, as a draft or published at once."""

    action: Literal["created"]


@event_model("release", "edited")
class ReleaseEdited(ReleaseEvent):
    """A release was edited: see ``changes``."""

    action: Literal["edited"]
    changes: ReleaseChanges


@event_model("release", "deleted")
class ReleaseDeleted(ReleaseEvent):
    """A release was deleted."""

    action: Literal["deleted"]


@event_model("release", "prereleased")
class ReleasePrereleased(ReleaseEvent):
    """A pre-release was published."""

    action: Literal["prereleased"]


@event_model("release", "released")
class ReleaseReleased(ReleaseEvent):
    """A release was published, or a pre-release became a full release."""

    action: Literal["released"]


class RepositoryNameChange(Model):
    """The previous name of a renamed repository: ``name.from_``."""

    name: Change | None = None


class RepositoryChanges(Model):
    """What a ``renamed``, ``transferred`` or ``edited`` action changed.

    ``repository.name.from_`` is the old name; ``owner.from_`` the previous owner (a dict
    holding a ``user`` or an ``organization``); the rest are the previous settings.
    """

    repository: RepositoryNameChange | None = None
    owner: Change | None = None
    default_branch: Change | None = None
    description: Change | None = None
    homepage: Change | None = None
    topics: Change | None = None


@event_model("repository")
class RepositoryEvent(Event):
    """A repository was created, deleted, renamed, archived, transferred, edited ..."""

    repository: Repository
    changes: RepositoryChanges | None = None


@event_model("repository", "created")
class RepositoryCreated(RepositoryEvent):
    """A repository was created."""

    action: Literal["created"]


@event_model("repository", "deleted")
class RepositoryDeleted(RepositoryEvent):
    """A repository was deleted."""

    action: Literal["deleted"]


@event_model("repository", "archived")
class RepositoryArchived(RepositoryEvent):
    """A repository was archived."""

    action: Literal["archived"]


@event_model("repository", "unarchived")
class RepositoryUnarchived(RepositoryEvent):
    """A repository was unarchived."""

    action: Literal["unarchived"]


@event_model("repository", "edited")
class RepositoryEdited(RepositoryEvent):
    """A repository's settings were edited: see ``changes``."""

    action: Literal["edited"]
    changes: RepositoryChanges


@event_model("repository", "renamed")
class RepositoryRenamed(RepositoryEvent):
    """A repository was renamed; ``changes.repository.name.from_`` is the old name."""

    action: Literal["renamed"]
    changes: RepositoryChanges


@event_model("repository", "transferred")
class RepositoryTransferred(RepositoryEvent):
    """A repository moved to another owner; ``changes.owner.from_`` is the previous one."""

    action: Literal["transferred"]
    changes: RepositoryChanges


@event_model("repository", "publicized")
class RepositoryPublicized(RepositoryEvent):
    """A private repository was made public."""

    action: Literal["publicized"]


@event_model("repository", "privatized")
class RepositoryPrivatized(RepositoryEvent):
    """A public repository was made private."""

    action: Literal["privatized"]
