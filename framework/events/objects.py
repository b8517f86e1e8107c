"""The objects webhook payloads are made of: issues, pull requests, check runs, releases ...

Each models the fields a bot reaches for; every other field GitHub sends is kept as an extra
(``obj.model_extra`` or plain attribute access). Anything GitHub sends as ``null`` in some
payload is optional here, and lists GitHub may send as ``null`` read as empty lists.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field

from framework.events.base import Installation, Model, Repository, Timestamp, User

T = TypeVar("T")


def _null_as_empty(value: Any) -> Any:
    return [] if value is None else value


Items = Annotated[list[T], BeforeValidator(_null_as_empty)]
"""A list GitHub sometimes sends as ``null``: read as an empty list."""


class Change(Model):
    """The previous value of an edited field: ``changes.title.from`` is ``change.from_``."""

    from_: Any = Field(default=None, alias="from")


class Enterprise(Model):
    """A GitHub Enterprise account (an installation's ``account`` can be one)."""

    id: int
    slug: str | None = None
    name: str | None = None
    node_id: str | None = None
    html_url: str | None = None


class Team(Model):
    """A team, e.g. one whose review was requested."""

    id: int
    name: str
    slug: str | None = None
    node_id: str | None = None
    html_url: str | None = None


class Label(Model):
    """An issue or pull request label."""

    id: int
    name: str
    node_id: str | None = None
    color: str | None = None
    description: str | None = None
    default: bool | None = None


class Milestone(Model):
    """A milestone issues and pull requests can belong to."""

    id: int
    number: int
    title: str
    node_id: str | None = None
    state: str | None = None
    description: str | None = None
    html_url: str | None = None
    creator: User | None = None
    open_issues: int | None = None
    closed_issues: int | None = None
    due_on: Timestamp | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    closed_at: Timestamp | None = None


class IssueType(Model):
    """An organization-defined issue type (``Bug``, ``Task`` ...)."""

    id: int
    name: str
    node_id: str | None = None
    description: str | None = None
    color: str | None = None


class App(Model):
    """A GitHub App, as the author of a check run or a comment, or the owner of a hook."""

    id: int
    name: str
    slug: str | None = None
    node_id: str | None = None
    owner: User | None = None
    description: str | None = None
    external_url: str | None = None
    html_url: str | None = None
    permissions: dict[str, str] = Field(default_factory=dict)
    events: Items[str] = Field(default_factory=list)
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class Issue(Model):
    """An issue; pull requests are issues too, and then ``pull_request`` is set."""

    id: int
    number: int
    title: str
    node_id: str | None = None
    body: str | None = None
    state: str | None = None
    state_reason: str | None = None
    user: User | None = None
    labels: Items[Label] = Field(default_factory=list)
    assignee: User | None = None
    assignees: Items[User] = Field(default_factory=list)
    milestone: Milestone | None = None
    type: IssueType | None = None
    locked: bool | None = None
    active_lock_reason: str | None = None
    comments: int | None = None
    author_association: str | None = None
    html_url: str | None = None
    url: str | None = None
    pull_request: dict[str, Any] | None = None
    performed_via_github_app: App | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    closed_at: Timestamp | None = None

    @property
    def is_pull_request(self) -> bool:
        """Whether this issue is the issue side of a pull request."""
        return self.pull_request is not None


class Comment(Model):
    """A comment on an issue or a pull request's conversation."""

    id: int
    body: str
    node_id: str | None = None
    user: User | None = None
    author_association: str | None = None
    html_url: str | None = None
    url: str | None = None
    performed_via_github_app: App | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class PullRequestRef(Model):
    """One side of a pull request: ``head`` (the changes) or ``base`` (their target)."""

    ref: str
    sha: str
    label: str | None = None
    user: User | None = None
    repo: Repository | None = None  # None when the head fork was deleted


class AutoMerge(Model):
    """The auto-merge set on a pull request."""

    merge_method: str | None = None
    enabled_by: User | None = None
    commit_title: str | None = None
    commit_message: str | None = None


class PullRequest(Model):
    """A pull request."""

    id: int
    number: int
    title: str
    head: PullRequestRef
    base: PullRequestRef
    node_id: str | None = None
    body: str | None = None
    state: str | None = None
    locked: bool | None = None
    draft: bool | None = None
    merged: bool | None = None
    mergeable: bool | None = None
    mergeable_state: str | None = None
    merge_commit_sha: str | None = None
    merged_by: User | None = None
    user: User | None = None
    labels: Items[Label] = Field(default_factory=list)
    milestone: Milestone | None = None
    assignee: User | None = None
    assignees: Items[User] = Field(default_factory=list)
    requested_reviewers: Items[User] = Field(default_factory=list)
    requested_teams: Items[Team] = Field(default_factory=list)
    auto_merge: AutoMerge | None = None
    author_association: str | None = None
    html_url: str | None = None
    url: str | None = None
    diff_url: str | None = None
    comments: int | None = None
    review_comments: int | None = None
    commits: int | None = None
    additions: int | None = None
    deletions: int | None = None
    changed_files: int | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    closed_at: Timestamp | None = None
    merged_at: Timestamp | None = None


class Review(Model):
    """A pull request review (``state`` is ``approved``, ``commented``, ...)."""

    id: int
    state: str
    node_id: str | None = None
    body: str | None = None
    user: User | None = None
    commit_id: str | None = None
    author_association: str | None = None
    html_url: str | None = None
    submitted_at: Timestamp | None = None


class CommitAuthor(Model):
    """A git author or committer: a name and an email, and a login when GitHub knows it."""

    name: str
    email: str | None = None
    username: str | None = None
    date: Timestamp | None = None


class HeadCommit(Model):
    """A git commit as events summarize it (``check_suite.head_commit`` ...)."""

    id: str
    message: str
    tree_id: str | None = None
    timestamp: Timestamp | None = None
    author: CommitAuthor | None = None
    committer: CommitAuthor | None = None


class PushCommit(HeadCommit):
    """A commit in a push, with the paths it touched."""

    url: str | None = None
    distinct: bool | None = None
    added: Items[str] = Field(default_factory=list)
    removed: Items[str] = Field(default_factory=list)
    modified: Items[str] = Field(default_factory=list)


class GitCommit(Model):
    """The git side of a commit: message, author and committer."""

    message: str
    author: CommitAuthor | None = None
    committer: CommitAuthor | None = None
    url: str | None = None


class Commit(Model):
    """A commit as the REST API shows it (``status.commit``)."""

    sha: str
    commit: GitCommit
    node_id: str | None = None
    url: str | None = None
    html_url: str | None = None
    author: User | None = None
    committer: User | None = None


class Branch(Model):
    """A branch and the commit at its tip."""

    name: str
    commit: dict[str, Any] | None = None
    protected: bool | None = None


class RepositoryRef(Model):
    """The few fields of a repository that a check's pull request reference carries."""

    id: int
    name: str
    url: str | None = None


class BranchRef(Model):
    """A branch of a check's pull request reference."""

    ref: str
    sha: str
    repo: RepositoryRef | None = None


class PullRequestSummary(Model):
    """A pull request as checks and workflow runs reference it: number and both refs."""

    id: int
    number: int
    url: str | None = None
    head: BranchRef | None = None
    base: BranchRef | None = None


class CheckRunOutput(Model):
    """What a check run reports: title, summary, details."""

    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations_count: int | None = None


class CheckSuite(Model):
    """A check suite: the check runs of one app for one commit."""

    id: int
    head_sha: str
    node_id: str | None = None
    head_branch: str | None = None
    status: str | None = None
    conclusion: str | None = None
    before: str | None = None
    after: str | None = None
    app: App | None = None
    head_commit: HeadCommit | None = None
    pull_requests: Items[PullRequestSummary] = Field(default_factory=list)
    latest_check_runs_count: int | None = None
    url: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class CheckRun(Model):
    """A check run: one named check of a commit, its status and conclusion."""

    id: int
    name: str
    head_sha: str
    node_id: str | None = None
    status: str | None = None
    conclusion: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    html_url: str | None = None
    url: str | None = None
    output: CheckRunOutput | None = None
    app: App | None = None
    check_suite: CheckSuite | None = None
    pull_requests: Items[PullRequestSummary] = Field(default_factory=list)
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None


class RequestedAction(Model):
    """The button a user pressed on a check run: its ``identifier``."""

    identifier: str


class Workflow(Model):
    """A GitHub Actions workflow file."""

    id: int
    name: str
    path: str
    node_id: str | None = None
    state: str | None = None
    html_url: str | None = None
    url: str | None = None


class WorkflowRun(Model):
    """One run of a GitHub Actions workflow."""

    id: int
    head_sha: str
    workflow_id: int
    name: str | None = None
    node_id: str | None = None
    display_title: str | None = None
    head_branch: str | None = None
    path: str | None = None
    event: str | None = None
    status: str | None = None
    conclusion: str | None = None
    run_number: int | None = None
    run_attempt: int | None = None
    check_suite_id: int | None = None
    actor: User | None = None
    triggering_actor: User | None = None
    head_commit: HeadCommit | None = None
    head_repository: Repository | None = None
    pull_requests: Items[PullRequestSummary] = Field(default_factory=list)
    html_url: str | None = None
    url: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    run_started_at: Timestamp | None = None


class ReleaseAsset(Model):
    """A file attached to a release."""

    id: int
    name: str
    label: str | None = None
    content_type: str | None = None
    state: str | None = None
    size: int | None = None
    download_count: int | None = None
    browser_download_url: str | None = None
    uploader: User | None = None


class Release(Model):
    """A release and the tag it points at."""

    id: int
    tag_name: str
    node_id: str | None = None
    name: str | None = None
    body: str | None = None
    draft: bool | None = None
    prerelease: bool | None = None
    target_commitish: str | None = None
    author: User | None = None
    assets: Items[ReleaseAsset] = Field(default_factory=list)
    html_url: str | None = None
    url: str | None = None
    tarball_url: str | None = None
    zipball_url: str | None = None
    created_at: Timestamp | None = None
    published_at: Timestamp | None = None


class HookConfig(Model):
    """Where and how a webhook delivers (the secret, when present, is masked)."""

    url: str | None = None
    content_type: str | None = None
    insecure_ssl: str | None = None


class Hook(Model):
    """A webhook: ``type`` is ``"App"``, ``"Repository"``, ``"Organization"`` ..."""

    type: str
    id: int
    name: str | None = None
    active: bool | None = None
    events: Items[str] = Field(default_factory=list)
    config: HookConfig | None = None
    app_id: int | None = None
    url: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class InstallationRepository(Model):
    """A repository as installation events list it: no owner, just names and ids."""

    id: int
    name: str
    full_name: str
    node_id: str | None = None
    private: bool | None = None


class InstallationDetails(Installation):
    """The full installation object that ``installation*`` events carry."""

    account: User | Enterprise | None = None
    app_id: int | None = None
    app_slug: str | None = None
    target_id: int | None = None
    target_type: str | None = None
    repository_selection: str | None = None
    permissions: dict[str, str] = Field(default_factory=dict)
    events: Items[str] = Field(default_factory=list)
    html_url: str | None = None
    suspended_by: User | None = None
    suspended_at: Timestamp | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
