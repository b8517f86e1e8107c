"""Events about the App's installations: ``installation``, ``installation_repositories``,
``installation_target`` and ``github_app_authorization``.

Here ``installation`` is the full object (:class:`InstallationDetails`), not just ``{id}``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from framework.events.base import Event, Installation, Model, User
from framework.events.objects import (
    Change,
    Enterprise,
    InstallationDetails,
    InstallationRepository,
    Items,
)
from framework.events.parse import event_model


@event_model("installation")
class InstallationEvent(Event):
    """Someone installed, uninstalled, suspended or re-permissioned the App."""

    installation: InstallationDetails
    repositories: Items[InstallationRepository] = Field(default_factory=list)
    requester: User | None = None


@event_model("installation", "created")
class InstallationCreated(InstallationEvent):
    """The App was installed; ``repositories`` lists what it was given access to."""

    action: Literal["created"]


@event_model("installation", "deleted")
class InstallationDeleted(InstallationEvent):
    """The App was uninstalled: its installation tokens no longer work."""

    action: Literal["deleted"]


@event_model("installation", "suspend")
class InstallationSuspend(InstallationEvent):
    """The installation was suspended: no more tokens until it is unsuspended."""

    action: Literal["suspend"]


@event_model("installation", "unsuspend")
class InstallationUnsuspend(InstallationEvent):
    """The installation was unsuspended."""

    action: Literal["unsuspend"]


@event_model("installation", "new_permissions_accepted")
class InstallationNewPermissionsAccepted(InstallationEvent):
    """The account accepted the permissions the App newly asked for."""

    action: Literal["new_permissions_accepted"]


@event_model("installation_repositories")
class InstallationRepositoriesEvent(Event):
    """Repositories were added to or removed from an installation."""

    installation: InstallationDetails
    repository_selection: str | None = None
    repositories_added: Items[InstallationRepository] = Field(default_factory=list)
    repositories_removed: Items[InstallationRepository] = Field(default_factory=list)
    requester: User | None = None


@event_model("installation_repositories", "added")
class InstallationRepositoriesAdded(InstallationRepositoriesEvent):
    """Repositories were added to the installation (``repositories_added``)."""

    action: Literal["added"]


@event_model("installation_repositories", "removed")
class InstallationRepositoriesRemoved(InstallationRepositoriesEvent):
    """Repositories were removed from the installation (``repositories_removed``)."""

    action: Literal["removed"]


class InstallationTargetChanges(Model):
    """What changed about the account: its previous ``login`` or ``slug``."""

    login: Change | None = None
    slug: Change | None = None


@event_model("installation_target")
class InstallationTargetEvent(Event):
    """The account the App is installed on changed."""

    installation: Installation
    account: User | Enterprise | None = None
    target_type: str | None = None
    changes: InstallationTargetChanges | None = None


@event_model("installation_target", "renamed")
class InstallationTargetRenamed(InstallationTargetEvent):
    """The account was renamed; ``changes.login.from_`` is the old login."""

    action: Literal["renamed"]
    changes: InstallationTargetChanges


@event_model("github_app_authorization")
class GithubAppAuthorizationEvent(Event):
    """A user's authorization of the App (user-to-server tokens) changed."""


@event_model("github_app_authorization", "revoked")
class GithubAppAuthorizationRevoked(GithubAppAuthorizationEvent):
    """``sender`` revoked their authorization: drop the user tokens you hold for them."""

    action: Literal["revoked"]
