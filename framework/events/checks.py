"""CI events: ``check_run``, ``check_suite``, ``workflow_run`` and ``status``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from framework.events.base import Event, Repository, Timestamp
from framework.events.objects import (
    Branch,
    CheckRun,
    CheckSuite,
    Commit,
    Items,
    RequestedAction,
    Workflow,
    WorkflowRun,
)
from framework.events.parse import event_model


@event_model("check_run")
class CheckRunEvent(Event):
    """Activity on a check run."""

    check_run: CheckRun
    repository: Repository
    requested_action: RequestedAction | None = None


@event_model("check_run", "created")
class CheckRunCreated(CheckRunEvent):
    """A check run was created."""

    action: Literal["created"]


@event_model("check_run", "completed")
class CheckRunCompleted(CheckRunEvent):
    """A check run finished: ``check_run.conclusion`` tells how."""

    action: Literal["completed"]


@event_model("check_run", "rerequested")
class CheckRunRerequested(CheckRunEvent):
    """Someone asked to re-run the check: the App that owns it should run it again."""

    action: Literal["rerequested"]


@event_model("check_run", "requested_action")
class CheckRunRequestedAction(CheckRunEvent):
    """Someone pressed one of the check run's buttons: ``requested_action.identifier``."""

    action: Literal["requested_action"]
    requested_action: RequestedAction


@event_model("check_suite")
class CheckSuiteEvent(Event):
    """Activity on a check suite."""

    check_suite: CheckSuite
    repository: Repository


@event_model("check_suite", "completed")
class CheckSuiteCompleted(CheckSuiteEvent):
    """All check runs of the suite finished."""

    action: Literal["completed"]


@event_model("check_suite", "requested")
class CheckSuiteRequested(CheckSuiteEvent):
    """New code was pushed: the App should create its check runs for ``head_sha``."""

    action: Literal["requested"]


@event_model("check_suite", "rerequested")
class CheckSuiteRerequested(CheckSuiteEvent):
    """Someone asked to re-run the whole suite."""

    action: Literal["rerequested"]


@event_model("workflow_run")
class WorkflowRunEvent(Event):
    """A GitHub Actions workflow run was requested, started or finished."""

    workflow_run: WorkflowRun
    repository: Repository
    workflow: Workflow | None = None


@event_model("workflow_run", "requested")
class WorkflowRunRequested(WorkflowRunEvent):
    """A workflow run was requested."""

    action: Literal["requested"]


@event_model("workflow_run", "in_progress")
class WorkflowRunInProgress(WorkflowRunEvent):
    """A workflow run started."""

    action: Literal["in_progress"]


@event_model("workflow_run", "completed")
class WorkflowRunCompleted(WorkflowRunEvent):
    """A workflow run finished: ``workflow_run.conclusion`` tells how."""

    action: Literal["completed"]


@event_model("status")
class StatusEvent(Event):
    """A commit status changed (the older API beside checks); there is no action.

    The payload's own ``name`` field (the repository's full name) is shadowed by the
    :attr:`Event.name` accessor: use ``repository.full_name`` (or ``raw["name"]``).
    """

    id: int
    sha: str
    state: str
    repository: Repository
    context: str | None = None
    description: str | None = None
    target_url: str | None = None
    commit: Commit | None = None
    branches: Items[Branch] = Field(default_factory=list)
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
