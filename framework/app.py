"""The ``App``: where a bot registers its handlers, and the ASGI application that serves them.

>>> from framework import App, Context
>>> app = App()
>>> @app.on("issues.opened")
... async def needs_response(ctx: Context) -> None:
...     await ctx.github.post(
...         f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
...         json={"labels": ["needs-response"]},
...     )

Serve it with ``python -m framework run bot.py`` (or any ASGI server: ``App`` is an ASGI
application). Settings come from the environment and ``.env`` (see :mod:`framework.settings`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from starlette.routing import Route

from framework._version import __version__
from framework.auth.app_jwt import AppJWT
from framework.client.limits import ClientShared
from framework.client.rest import GitHubClient
from framework.dispatch.dispatcher import Dispatcher
from framework.dispatch.handler_process import HandlerProcesses
from framework.dispatch.retry import RetryPolicy
from framework.dispatch.routing import ANY, Handler, Router
from framework.dispatch.runner import Runner
from framework.dispatch.typed_on import TypedOn
from framework.errors import ConfigurationError, NoInstallation, Unavailable
from framework.journal import Journal
from framework.observe import hooks, metrics
from framework.platforms import ALL_EVENTS, PLATFORMS
from framework.platforms.connections import AppConnection, Connection, connect
from framework.platforms.github import revokes_tokens
from framework.platforms.redelivery import RedeliverySchedule
from framework.repo_config import RepositoryConfigs, config_change
from framework.server.login import SignIn, revoked_user
from framework.settings import Settings, load_settings
from framework.webhooks.delivery import Delivery, delivery_key
from framework.webhooks.load import ReceiverLoad
from framework.webhooks.receiver import Receive, Scope, Send, WebhookReceiver
from framework.webhooks.signature import SignatureVerifier

if TYPE_CHECKING:
    from starlette.applications import Starlette

F = TypeVar("F", bound=Callable[..., Any])
Outcome = Literal["accepted", "ignored", "duplicate"]
"""What became of a verified delivery: stored for its handlers, wanted by none, seen before."""

PURGE_INTERVAL_SECONDS = 3600.0
JOURNAL_LOCK_WAIT_SECONDS = 10.0

logger = logging.getLogger("framework")


class App(TypedOn):
    """A bot: handlers by event, and the clients they need, on every platform it serves.

    ``settings`` defaults to reading the environment (and ``.env``) when first needed, so a
    bot module can create its ``App()`` at import time.
    """

    def __init__(self, settings: Settings | None = None, *, name: str = "bot") -> None:
        self.name = name
        self.home: Path | None = None
        """The bot's folder (set by the loader): the setup page reads ``app.yml`` there."""
        self.router = Router(known_events=ALL_EVENTS)
        metrics.know_events(ALL_EVENTS)  # labels carry these event names, others as "other"
        self._settings = settings
        self._runner: Runner | None = None
        self._dispatcher: Dispatcher | None = None
        self._handler_processes: HandlerProcesses | None = None
        self._load: ReceiverLoad | None = None  # how busy the receiver is; runners read it
        self._connections: dict[str, Connection] = {}
        self._configs: RepositoryConfigs | None = None
        self._receivers: dict[str, hooks.ASGI] = {}
        self._starlette: Starlette | None = None
        self._journal: Journal | None = None
        self._journal_lock: asyncio.Lock | None = None
        self._redis: Any = None  # the token cache's connection, with REDIS_URL
        self.draining = False
        """True once the bot stops taking work (``/readyz`` answers 503)."""
        self.records_deliveries = True
        """False in a handler process: it only claims deliveries and records their outcome."""
        self.users = SignIn(lambda: self.settings, self.connection)
        """Users' sign-in, tokens and clients (see :mod:`framework.server.login`)."""
        self._routes: list[Route] = []

    # Registering handlers -------------------------------------------------------------

    def _register(self, events: str | Iterable[str], platform: str | None) -> Callable[[F], F]:
        if platform is not None and platform not in PLATFORMS:
            raise ValueError(f"{platform!r} is not a platform: use one of {sorted(PLATFORMS)}")

        def decorator(fn: F) -> F:
            self.router.add(events, fn, platform=platform)
            return fn

        return decorator

    def on_any(self, fn: F) -> F:
        """Decorator: run ``fn`` for every event."""
        self.router.add(ANY, fn)
        return fn

    def on_error(self, fn: F) -> F:
        """Decorator: ``fn(ctx, error)`` runs whenever a handler raises."""
        self.router.error_handlers.append(Handler.of(fn))
        return fn

    # The bot's own web routes, and acting as users ----------------------------------------

    def route(self, path: str, methods: Iterable[str] | None = None) -> Callable[[F], F]:
        """Decorator: serve ``fn(request)`` (a Starlette endpoint, sync or async) at ``path``,
        beside the webhook paths. The bot's routes come before the built-in pages: its own
        ``/`` replaces the status page there.

        >>> from starlette.responses import PlainTextResponse
        >>> bot = App()
        >>> @bot.route("/hello", methods=["GET"])
        ... async def hello(request):
        ...     return PlainTextResponse("hello")
        """

        def decorator(fn: F) -> F:
            self._routes.append(Route(path, fn, methods=list(methods) if methods else None))
            return fn

        return decorator

    def on_login(self, fn: F) -> F:
        """Decorator: ``fn(signed_in)`` runs (sync or async) after each user's sign-in, with a
        :class:`~framework.server.login.SignedIn`."""
        self.users.hooks.append(fn)
        return fn

    async def user_client(
        self, platform: str, user: str | int, *, scopes: Iterable[str] = ()
    ) -> GitHubClient:
        """A client of ``platform`` acting as a signed-in ``user`` (id or login), its token
        refreshed as needed; GitHub ``scopes`` the caller needs are checked.

        >>> repos = await (await app.user_client("github", "octocat")).get("/user/repos")
        ...  # doctest: +SKIP
        """
        return await self.users.client(platform, str(user), scopes)

    # Settings and credentials ---------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The app's settings, read from the environment on first use."""
        if self._settings is None:
            self._settings = load_settings()
            hooks.remember_secrets(self._settings)  # never logged, wherever they turn up
        return self._settings

    def configure(self, settings: Settings) -> None:
        """Use these settings instead of the environment's.

        Call it before the app serves, or once it has stopped (its lifespan ended, or
        :meth:`close` was awaited): a test suite serves one module-level app in test after
        test, each against its own fake GitHub and journal.
        """
        in_use = self._journal is not None or (self._runner is not None and self._runner.started)
        if in_use:
            raise RuntimeError("configure() cannot be called while the app serves requests")
        self._settings = settings
        hooks.remember_secrets(settings)
        # Everything built from the old settings, or bound to the event loop that served
        # with them, is built again on first use.
        self._runner = None
        self._connections = {}
        self._configs = None
        self._load = None
        self._receivers = {}
        self._starlette = None
        self._journal_lock = None
        self.users.reset()
        self.draining = False

    @property
    def runner(self) -> Runner:
        """The queue and workers that run handlers."""
        if self._runner is None:
            s = self.settings
            self._runner = Runner(
                self.dispatcher.run,
                s.handler_concurrency,
                concurrency_under_load=s.handler_concurrency_under_load,
                load=self._receiver_load(),
                retry=RetryPolicy(
                    s.retry_max_attempts, s.retry_backoff_seconds, s.retry_backoff_max_seconds
                ),
                lease=s.journal_lease_seconds,
                finish_backlog=s.redis_url is None,
            )
        return self._runner

    @property
    def dispatcher(self) -> Dispatcher:
        """Runs one delivery's handlers (the runners call it for each claimed delivery)."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(
                self.router, self, name=self.name, before=self._before_handlers
            )
        return self._dispatcher

    async def _before_handlers(self, delivery: Delivery) -> None:
        # Here, in the process that runs handlers, where tokens and configuration are cached:
        # a revoked installation's tokens dropped, the installation of a delivery that names
        # none looked up.
        await self.connection(delivery.platform).prepare(delivery)
        await self.users.revoked(delivery)  # github_app_authorization: the user's tokens go
        change = config_change(delivery)
        if change is not None:  # a push changed configuration files: drop what read them
            self.configs.forget(change)

    def _receiver_load(self) -> ReceiverLoad:
        if self._load is None:
            self._load = ReceiverLoad()  # created in the loop that serves requests
        return self._load

    def connection(self, platform: str = "github") -> Connection:
        """This bot's connection to ``platform``: its pool, credentials and clients."""
        found = self._connections.get(platform)
        if found is None:
            agent = f"{self.name} (framework/{__version__})"
            found = connect(platform, self.settings, agent, author=self.name)
            self._connections[platform] = found
        return found

    def _app_connection(self, platform: str = "github") -> AppConnection:
        found = self.connection(platform)
        if not isinstance(found, AppConnection):
            raise NoInstallation(f"{platform} has no app installations: use ctx.client")
        return found

    @property
    def jwt(self) -> AppJWT:
        """The GitHub App's JWT signer, built from ``APP_ID``/``CLIENT_ID`` and the key."""
        return self._app_connection().jwt

    @property
    def http(self) -> httpx.AsyncClient:
        """The connection pool every GitHub client of this app shares."""
        return self._app_connection().http

    @property
    def github(self) -> GitHubClient:
        """A client authenticated as the GitHub App itself (JWT), for ``/app/...`` endpoints.

        ``app.connection("atomgit").app_client`` is AtomGit's.
        """
        return self._app_connection().app_client

    def installation_client(
        self,
        installation_id: int,
        *,
        repositories: Iterable[str] | None = None,
        repository_ids: Iterable[int] | None = None,
        permissions: Mapping[str, str] | None = None,
        platform: str = "github",
    ) -> GitHubClient:
        """A client acting as an installation, for use outside handlers too.

        Narrow it with ``repositories`` / ``repository_ids`` / ``permissions``; its token is
        then minted for that scope only. No request is made until the client is used.
        ``platform="atomgit"`` for an AtomGit installation.

        >>> gh = app.installation_client(await app.installation_id(repo="octo/hello"))
        ...  # doctest: +SKIP
        """
        return self._app_connection(platform).installation_client(
            installation_id,
            repositories=repositories,
            repository_ids=repository_ids,
            permissions=permissions,
        )

    @property
    def client_shared(self) -> ClientShared:
        """What every GitHub client of this app shares: retry policy, per-installation rate
        state and pacing, the ETag cache (``GITHUB_*`` settings)."""
        return self._app_connection().shared

    @property
    def configs(self) -> RepositoryConfigs:
        """Repositories' configuration files as ``ctx.config`` reads them, cached in this
        process for ``CONFIG_CACHE_SECONDS`` (see :mod:`framework.repo_config`)."""
        if self._configs is None:
            self._configs = RepositoryConfigs(ttl=self.settings.config_cache_seconds)
        return self._configs

    async def installation_id(
        self,
        *,
        repo: str | None = None,
        org: str | None = None,
        user: str | None = None,
        platform: str = "github",
    ) -> int:
        """The id of the app's installation on a repository (``"owner/name"``), org or user."""
        return await self._app_connection(platform).installation_id(repo=repo, org=org, user=user)

    # Receiving and running deliveries --------------------------------------------------

    async def open_journal(self) -> Journal:
        """The delivery journal (``REDIS_URL``'s, or the SQLite file), opened on first use.

        With ``REDIS_URL``, installation tokens are shared through the same server.
        """
        if self._journal is not None:
            return self._journal
        if self._journal_lock is None:
            self._journal_lock = asyncio.Lock()
        async with self._journal_lock:
            if self._journal is None:
                self._journal = await self._open_journal()
        return self._journal

    async def _open_journal(self) -> Journal:
        s = self.settings
        if s.redis_url is None:
            from framework.journal.sqlite import SQLiteJournal

            # What must survive a power cut is that a delivery was accepted: the receiver's
            # commits are synced (JOURNAL_SYNC). A handler process only records claims and
            # outcomes; losing the last of those to a power cut means running a delivery
            # again, which at-least-once allows, so its commits skip the sync.
            sync = s.journal_sync if self.records_deliveries else "normal"
            journal: Journal = await SQLiteJournal.open(
                s.journal_path, sync=sync, max_bytes=s.journal_max_bytes
            )
            if s.handler_processes > 1:  # one mint per installation, not one per process
                from framework.auth.sqlite_token_cache import token_file

                for connection in self._minting_connections():
                    connection.share_tokens_in_file(token_file(s.journal_path))
            return journal
        import redis.asyncio as aioredis

        from framework.journal.redis import RedisJournal

        url = s.redis_url.get_secret_value()
        journal = await RedisJournal.open(url, prefix=s.redis_prefix)
        for connection in self._minting_connections():
            if self._redis is None:
                self._redis = aioredis.Redis.from_url(url)
            connection.share_tokens(self._redis, s.redis_prefix)
        return journal

    def _minting_connections(self) -> list[AppConnection]:
        """The enabled platforms' app connections that mint installation tokens."""
        found = []
        for platform in self.settings.enabled_platforms():
            connection = self.connection(platform)
            if isinstance(connection, AppConnection) and connection.credentials.issuer:
                found.append(connection)
        return found

    async def accept(self, delivery: Delivery) -> Outcome:
        """Store a verified delivery for its handlers and wake them; say what became of it.

        ``"duplicate"``: the journal has seen this delivery id before (pending, running or
        done), and it does not run again. Raises :class:`~framework.errors.Unavailable` (503)
        while stopping, or when the journal cannot store it.
        """
        if (
            not self.router.match(delivery.name, delivery.action, delivery.platform)
            and not revokes_tokens(delivery)
            and revoked_user(delivery) is None
            and config_change(delivery) is None  # the handlers' process drops cached config
        ):
            return "ignored"
        if self.draining:
            raise Unavailable("the bot is shutting down: redeliver later")
        journal = self._journal or await self.open_journal()
        if self._handler_processes is None and not self.runner.started:
            await self.runner.start(journal)  # served without lifespan events (tests)
        started = time.time_ns()
        if self._handler_processes is None:  # run here: handed to the runner as it is stored
            recorded = await self.runner.submit(journal, delivery)
        else:
            recorded = await journal.record(delivery)
            if recorded:
                self._handler_processes.wake()
        hooks.journal_written(started)
        return "accepted" if recorded else "duplicate"

    async def forget_installation(self, installation_id: int) -> None:
        """Drop the cached tokens of an installation (it was deleted or suspended)."""
        await self._app_connection().tokens.forget_installation_everywhere(installation_id)

    async def receive(
        self,
        name: str,
        payload: dict[str, Any],
        *,
        delivery_id: str = "local",
        headers: Mapping[str, str] | None = None,
        platform: str = "github",
    ) -> list[BaseException]:
        """Run the handlers for one event (our name: ``issues``, ``story``) of ``platform`` now
        and wait for them; return their errors.

        No signature is checked: this is for tests and ``python -m framework receive``.
        """
        key = delivery_key(platform, delivery_id)
        delivery = Delivery.from_payload(key, name, payload, headers)
        return await self.dispatcher.run(delivery)

    async def wait_idle(self, within: float = 60.0) -> None:
        """Wait until every delivery stored so far has finished (retries included)."""
        journal = await self.open_journal()
        deadline = time.monotonic() + within
        while await journal.active() or (self._runner is not None and self._runner.running):
            if time.monotonic() > deadline:
                raise TimeoutError(f"deliveries still unfinished after {within:.0f} s")
            await asyncio.sleep(0.01)

    def run_handlers_in_processes(self, target: str, count: int) -> None:
        """Run handlers in ``count`` separate processes, each loading the bot from ``target``.

        ``python -m framework run`` calls this (``HANDLER_PROCESSES``); call it before serving.
        The processes start with the server and are drained and stopped with it.
        """
        self._handler_processes = HandlerProcesses(
            target, count, release=self._release, nice=self.settings.handler_process_nice
        )
        self._receiver_load().listeners.append(self._handler_processes.load_changed)

    async def _release(self, consumer: str) -> list[str]:
        journal = await self.open_journal()
        return await journal.release(consumer)

    @property
    def handler_processes(self) -> HandlerProcesses | None:
        """The handler processes, when handlers run outside the receiver's process."""
        return self._handler_processes

    # Serving ----------------------------------------------------------------------------

    def _verifier(self, platform: str) -> SignatureVerifier | None:
        s = self.settings
        secrets = s.platform_secrets(platform)
        if secrets:
            return SignatureVerifier(secrets, allow_sha1=s.webhook_allow_sha1)
        if s.allow_unsigned_webhooks:
            logger.warning(
                "ALLOW_UNSIGNED_WEBHOOKS is set: %s deliveries are NOT verified", platform
            )
            return None
        variable = (
            "WEBHOOK_SECRET" if platform == "github" else f"{platform.upper()}_WEBHOOK_SECRET"
        )
        raise ConfigurationError(
            f"{variable} is not set: set it to the {platform} webhook secret "
            "(or ALLOW_UNSIGNED_WEBHOOKS=true, for local development only)"
        )

    def webhook_paths(self) -> dict[str, str]:
        """Where each platform this bot serves receives its deliveries, by platform."""
        s = self.settings
        return {
            name: s.webhook_path if name == "github" else PLATFORMS[name].webhook_path
            for name in s.enabled_platforms()
        }

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        """Open the journal and start the handlers; on shutdown, drain and close."""
        # Everything imported so far lives as long as the process: keep the collector from
        # re-scanning it on every full collection.
        gc.freeze()
        journal = await self.open_journal()
        await self._recover(journal)
        processes = self._handler_processes
        if processes is not None:
            await processes.start()
            processes.wake()  # work left from the last run
        else:
            await self.runner.start(journal)
        background = [
            asyncio.create_task(self._purge_periodically(journal)),
            *self._redelivery_sweeps(journal),
        ]
        paths = ", ".join(f"{name} at {path}" for name, path in self.webhook_paths().items())
        logger.info("%s ready: deliveries from %s", self.name, paths)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.drain()
            await self.close()

    async def _recover(self, journal: Journal) -> None:
        """What a killed predecessor left running runs again (SQLite: this bot owns the file;
        Redis: the leases of dead consumers expire, and any replica takes their work)."""
        from framework.journal.sqlite import SQLiteJournal

        if isinstance(journal, SQLiteJournal):
            # Waits for a killed predecessor's handler processes (they hold the lock too) to
            # die: nothing runs here while they could still be running it.
            await asyncio.to_thread(journal.lock, JOURNAL_LOCK_WAIT_SECONDS)
            if self._handler_processes is not None:
                self._handler_processes.lock_fd = journal.lock_fd
            await journal.check()  # a damaged journal is refused, not trusted
            recovered = await journal.recover()
            if recovered:
                logger.warning(
                    "%d deliveries were running when the bot last stopped; they run again: %s",
                    len(recovered),
                    ", ".join(recovered[:20]) + (" ..." if len(recovered) > 20 else ""),
                )

    async def _purge_periodically(self, journal: Journal) -> None:
        retention = self.settings.journal_retention_days * 86400
        while True:
            try:
                purged = await journal.purge(time.time() - retention)
                if purged:
                    logger.info("purged %d finished deliveries older than the retention", purged)
            except Unavailable as exc:
                logger.error("could not purge old deliveries: %s", exc)
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    def _redelivery_sweeps(self, journal: Journal) -> list[asyncio.Task[None]]:
        """What GitHub could not deliver, asked for again every ``REDELIVERY_SYNC_INTERVAL``
        by one replica at a time (see :mod:`framework.platforms.redelivery`)."""
        s = self.settings
        interval = s.redelivery_interval()

        def app_client(platform: str) -> GitHubClient:  # at each sweep: the app's current one
            return self._app_connection(platform).app_client

        return [
            asyncio.create_task(
                RedeliverySchedule(
                    partial(app_client, name),
                    journal,
                    interval=interval,
                    window=s.redelivery_window,
                    platform=name,
                ).run(),
                name=f"redelivery:{name}",
            )
            for name in s.enabled_platforms()
            if interval and PLATFORMS[name].redelivers
        ]

    async def drain(self) -> list[str]:
        """Stop taking work (503 and ``/readyz`` 503), let running handlers finish within
        ``SHUTDOWN_GRACE_SECONDS``; what is left stays in the journal. Returns its ids."""
        if self.draining:
            return []
        self.draining = True
        grace = self.settings.shutdown_grace_seconds
        if self._handler_processes is not None:
            return await self._handler_processes.stop(grace)
        if self._runner is not None and self._runner.started:
            return await self._runner.stop(grace)
        return []

    async def close(self) -> None:
        """Close the journal and the connection pools."""
        if self._journal is not None:
            await self._journal.close()
            self._journal = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        for connection in self._connections.values():
            await connection.close()
        await self.users.close()

    def _build(self) -> None:
        # Here, not at the top: a handler process never serves HTTP, and needs none of these.
        from starlette.applications import Starlette

        from framework.server.health import Health
        from framework.server.metrics import MetricsEndpoint
        from framework.server.pages import page_routes

        self._receivers = self._webhook_receivers()
        s = self.settings
        health = Health(self.open_journal, lambda: self.draining)
        token = s.metrics_token.get_secret_value() if s.metrics_token else None
        self._starlette = Starlette(
            routes=[
                *health.routes(),
                Route("/metrics", MetricsEndpoint(token, health.counts).serve, methods=["GET"]),
                *self._routes,  # the bot's own (@app.route): before the built-in pages
                *page_routes(self),  # the setup and status pages (framework/server/pages.py)
                *self.users.routes(),  # sign-in (framework/server/login.py)
            ],
            lifespan=self.lifespan,
        )

    def _webhook_receivers(self) -> dict[str, hooks.ASGI]:
        from framework.server.setup import awaiting_registration  # serving only, as in _build

        s = self.settings
        return {
            path: hooks.observe_deliveries(
                WebhookReceiver(
                    self.accept,
                    partial(PLATFORMS[name].read_delivery, verifier=self._verifier(name)),
                    s.webhook_max_bytes,
                    self._receiver_load(),
                    id_headers=PLATFORMS[name].id_headers,
                ),
                platform=name,
            )
            for name, path in self.webhook_paths().items()
            # No app yet: GitHub's deliveries get 503 until the setup page registers it.
            if not (name == "github" and awaiting_registration(s))
        }

    async def use_credentials(self, settings: Settings) -> str | None:
        """Serve with ``settings`` (new app credentials, from the setup page) from now on.

        Returns None, or why the bot must be restarted to use them.
        """
        if self._handler_processes is not None:
            return "handlers run in separate processes, which read the settings when they start"
        self._settings = settings
        old = self._connections.pop("github", None)  # rebuilt with the new credentials
        if old is not None:
            await old.close()
        self._receivers = self._webhook_receivers()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._starlette is None:
            self._build()
        receiver = self._receivers.get(scope["path"]) if scope["type"] == "http" else None
        if receiver is not None:
            await receiver(scope, receive, send)
        else:
            assert self._starlette is not None
            await self._starlette(scope, receive, send)
