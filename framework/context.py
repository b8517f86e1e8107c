"""What a handler receives: the event, a client for its installation, a bound logger.

``Context`` is generic in the event model, so an editor completes ``ctx.event.issue.title``
in a handler annotated ``ctx: Context[IssuesOpened]``::

    @app.on("issues.opened")
    async def greet(ctx: Context[IssuesOpened]) -> None:
        await ctx.github.post(f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}"
                              "/comments", json={"body": "Thanks!"})
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, cast, overload

from pydantic import BaseModel
from typing_extensions import TypeVar

from framework.client.rest import GitHubClient
from framework.errors import NotSupported
from framework.events import Event
from framework.observe.log import BoundLogger
from framework.platforms import PLATFORMS
from framework.platforms.base import Actions
from framework.platforms.connections import Connection
from framework.platforms.tapd import workspace_id
from framework.repo_config import RepositoryConfigs
from framework.settings import Settings
from framework.webhooks.delivery import Delivery

E = TypeVar("E", bound=Event, default=Event, covariant=True)
M = TypeVar("M", bound=BaseModel)


class Clients(Protocol):
    """What a context needs from the bot: its clients and its configuration cache.

    The :class:`~framework.app.App` is one; a context never needs the whole App.
    """

    name: str

    @property
    def settings(self) -> Settings:
        """The bot's settings."""
        ...

    @property
    def github(self) -> GitHubClient:
        """The app's own client (JWT), for ``/app/...`` endpoints."""
        ...

    @property
    def configs(self) -> RepositoryConfigs:
        """Repositories' configuration files, cached."""
        ...

    def installation_client(self, installation_id: int) -> GitHubClient:
        """A client acting as the GitHub installation."""
        ...

    def connection(self, platform: str) -> Connection:
        """The bot's connection to a platform (its clients)."""
        ...

    async def user_client(
        self, platform: str, user: str | int, *, scopes: Iterable[str] = ()
    ) -> GitHubClient:
        """A client acting as a signed-in user."""
        ...


class Context(Generic[E]):
    """One delivery as seen by its handlers. Shared by every handler of that delivery."""

    __slots__ = ("_client", "_loop", "app", "delivery", "log")

    def __init__(self, app: Clients, delivery: Delivery, log: BoundLogger) -> None:
        self.app = app
        """The bot's clients: ``ctx.app.github`` is the app's own (JWT) client."""
        self.delivery = delivery
        self.log = log
        """A logger bound to the delivery id, event, action and installation."""
        self._client: GitHubClient | None = None
        # Plain handlers run in a thread; their client's .sync calls come back to this loop.
        self._loop = asyncio.get_running_loop()

    @property
    def event(self) -> E:
        """The typed event: each field is validated from the payload when first read."""
        return cast(E, self.delivery.event)

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as received, a plain dict."""
        return self.delivery.payload

    @property
    def name(self) -> str:
        """The event name (``X-GitHub-Event``), e.g. ``"issues"``."""
        return self.delivery.name

    @property
    def action(self) -> str | None:
        """The payload's ``action``, e.g. ``"opened"``; None for events without one."""
        return self.delivery.action

    @property
    def delivery_id(self) -> str:
        """``X-GitHub-Delivery``: the same on every redelivery of this event.

        Use it as the idempotency key of a handler's side effects.
        """
        return self.delivery.id

    @property
    def installation_id(self) -> int | None:
        """The installation the event was sent for; None for app-level events such as ping."""
        return self.delivery.installation_id

    @property
    def platform(self) -> str:
        """Where the delivery came from: ``github``, ``atomgit``, ``coding`` or ``tapd``."""
        return self.delivery.platform

    @property
    def client(self) -> GitHubClient:
        """The delivery's authenticated client, on every platform: an installation's on
        GitHub and AtomGit, CODING's :class:`~framework.platforms.coding.CodingClient`, TAPD's
        :class:`~framework.platforms.tapd.TapdClient`.

        Raises :class:`~framework.errors.NoInstallation` for GitHub or AtomGit events not sent
        for an installation; use ``ctx.app.github`` (the app's own client) there.
        """
        if self._client is None:
            client = self.app.connection(self.platform).client_for(self.delivery)
            # Bound to this loop (for .sync) and to the delivery's logger (retries name it).
            self._client = client.bound(self._loop, self.log)
        return self._client

    @property
    def github(self) -> GitHubClient:
        """A client authenticated as the event's installation, on GitHub and on AtomGit (whose
        API is GitHub-shaped); ``ctx.client`` is the client on every platform.

        Raises :class:`~framework.errors.NoInstallation` for events not sent for an
        installation, and :class:`~framework.errors.NotSupported` on CODING and TAPD.
        """
        if self.platform not in ("github", "atomgit"):
            raise NotSupported(
                f"ctx.github is GitHub's and AtomGit's client; this delivery came from "
                f"{self.platform}: use ctx.client"
            )
        return self.client

    @property
    def workspace_id(self) -> int | None:
        """TAPD: the workspace (project) of the delivery; None elsewhere."""
        return workspace_id(self.payload) if self.platform == "tapd" else None

    async def comment(self, text: str) -> None:
        """Comment on the issue, pull request or story of the delivery, on any platform.

        >>> await ctx.comment("Thanks for the report!")  # doctest: +SKIP
        """
        await self._actions.comment(self.client, self.payload, text)

    async def add_labels(self, labels: Sequence[str]) -> None:
        """Add labels to the issue, pull request or story of the delivery, on any platform.

        >>> await ctx.add_labels(["needs-triage"])  # doctest: +SKIP
        """
        await self._actions.add_labels(self.client, self.payload, list(labels))

    async def set_status(
        self, sha: str, state: str, context: str, description: str | None = None
    ) -> None:
        """Set a commit status (``error``, ``failure``, ``pending``, ``success``) where the
        platform has them; :class:`~framework.errors.NotSupported` where it has not."""
        await self._actions.set_status(self.client, self.payload, sha, state, context, description)

    async def user_client(self, *, scopes: Iterable[str] = ()) -> GitHubClient:
        """A client acting as the user who caused the delivery (its ``sender``; TAPD's
        ``current_user``), if they signed in to this bot; raises
        :class:`~framework.auth.user_tokens.NotSignedIn` otherwise.

        >>> await (await ctx.user_client()).post(url, json={"body": "as you"})  # doctest: +SKIP
        """
        sender = self.payload.get("sender")
        user = sender.get("id") or sender.get("login") if isinstance(sender, dict) else None
        user = user or self.payload.get("current_user")
        if not user:
            raise NotSupported(f"the {self.delivery.key} event names no user who caused it")
        return (await self.app.user_client(self.platform, user, scopes=scopes)).bound(
            self._loop, self.log
        )

    @property
    def _actions(self) -> Actions:
        return PLATFORMS[self.platform].actions

    @property
    def repo_full_name(self) -> str:
        """``owner/name`` of the event's repository."""
        owner, repo = self._owner_repo()
        return f"{owner}/{repo}"

    @property
    def is_bot(self) -> bool:
        """Whether the event was caused by a bot account (including this app itself)."""
        sender = self.event.sender
        return sender is not None and sender.type == "Bot"

    def _owner_repo(self) -> tuple[str, str]:
        # From the payload's summary, not the typed event: a handler that only needs the
        # repository does not pay for building the whole model, nor for parsing the payload.
        repository = self.delivery.summary.get("repository")
        owner = repository.get("owner") if isinstance(repository, dict) else None
        login = owner.get("login") if isinstance(owner, dict) else None
        name = repository.get("name") if isinstance(repository, dict) else None
        if not isinstance(login, str) or not isinstance(name, str):
            raise ValueError(f"the {self.delivery.key} event has no repository")
        return login, name

    def _number(self, *fields: str) -> Any:
        subject = self.delivery.summary
        for name in fields:
            holder = subject.get(name)
            number = holder.get("number") if isinstance(holder, dict) else None
            if isinstance(number, int):
                return number
        number = subject.get("number")
        return number if isinstance(number, int) else None

    def repo(self, **extra: Any) -> dict[str, Any]:
        """``{"owner": ..., "repo": ...}`` of the event's repository, merged with ``extra``.

        >>> ctx.repo(path="README.md")  # doctest: +SKIP
        {'owner': 'octocat', 'repo': 'hello-world', 'path': 'README.md'}
        """
        owner, repo = self._owner_repo()
        return {"owner": owner, "repo": repo, **extra}

    def issue(self, **extra: Any) -> dict[str, Any]:
        """``{"owner", "repo", "issue_number"}`` of the event's issue or pull request."""
        number = self._number("issue", "pull_request")
        if number is None:
            raise ValueError(f"the {self.delivery.key} event has no issue or pull request")
        return self.repo(issue_number=number, **extra)

    def pull_request(self, **extra: Any) -> dict[str, Any]:
        """``{"owner", "repo", "pull_number"}`` of the event's pull request."""
        number = self._number("pull_request", "issue")
        if number is None:
            raise ValueError(f"the {self.delivery.key} event has no pull request")
        return self.repo(pull_number=number, **extra)

    @overload
    async def config(
        self, name: str, *, default: None = None, model: None = None
    ) -> dict[str, Any] | None: ...
    @overload
    async def config(
        self, name: str, *, default: Mapping[str, Any], model: None = None
    ) -> dict[str, Any]: ...
    @overload
    async def config(self, name: str, *, default: None = None, model: type[M]) -> M | None: ...
    @overload
    async def config(self, name: str, *, default: Mapping[str, Any], model: type[M]) -> M: ...
    async def config(
        self,
        name: str,
        *,
        default: Mapping[str, Any] | None = None,
        model: type[BaseModel] | None = None,
    ) -> Any:
        """The repository's configuration ``.github/<name>``, as Probot's ``context.config``.

        Read from the default branch, else from the owner's ``.github`` repository, following
        ``_extends``; ``default`` lies under it, and ``model`` validates it. None when there is
        no file and no default. Cached; see :mod:`framework.repo_config`. Raises
        :class:`~framework.errors.ConfigError` for a file that cannot be used.

        >>> labeler = await ctx.config("labeler.yml", default={}, model=Labeler)  # doctest: +SKIP
        """
        owner, repo = self._owner_repo()
        configs = self.app.configs
        return await configs.get(self.github, owner, repo, name, default=default, model=model)

    def __repr__(self) -> str:
        return f"<Context {self.delivery.key} delivery={self.delivery.id}>"
