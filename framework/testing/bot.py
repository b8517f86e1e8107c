"""Run a bot in a test: its own fake GitHub, the bot served on loopback, signed deliveries.

:func:`run_bot` makes an app key, starts a :class:`~framework.testing.FakeGitHub` with the
app installed, gives the bot its settings (no environment variables involved) and serves it
with a real uvicorn on 127.0.0.1, journal and handler runner included. A delivery sent with
:meth:`RunningBot.receive` is signed with the webhook secret, goes over HTTP through the
receiver, and is awaited until its handlers have finished::

    from framework.testing import payloads, run_bot
    from sample_bots.labeler import app

    async def test_a_new_issue_is_labelled() -> None:
        async with run_bot(app) as bot:
            result = await bot.receive("issues", payloads.issues_opened(number=7))
        assert result.status == "done", result.errors
        assert bot.fake.issue_labels("octo-org/hello", 7) == ["needs-response"]
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from framework.app import App
from framework.context import Context
from framework.dispatch.routing import Handler
from framework.journal import Entry, Status
from framework.settings import Settings
from framework.testing.deliveries import signed_delivery
from framework.testing.fake_atomgit import FakeAtomGit
from framework.testing.fake_coding import FakeCoding
from framework.testing.fake_github import FakeGitHub, generate_app_key
from framework.testing.fake_tapd import FakeTapd
from framework.testing.payloads import INSTALLATION, REPO
from framework.testing.server import serve_async

__all__ = ["APP_ID", "DeliveryResult", "DeliveryStatus", "RunningBot", "run_bot"]

APP_ID = 1
"""The app id of a bot under :func:`run_bot` (the fake GitHub checks its JWTs against it)."""
ATOMGIT_APP_ID = 2
"""The AtomGit app id of a bot under :func:`run_bot`."""
CODING_TOKEN = "coding-personal-token"
"""The personal token the fake CODING accepts."""
TAPD_API_USER = "tapd-bot"
TAPD_API_PASSWORD = "tapd-password"

DeliveryStatus = Literal["done", "failed", "ignored", "duplicate", "refused"]
"""What became of a delivery: its handlers finished (``done``) or raised (``failed``); no
handler wanted it (``ignored``); its id was seen before (``duplicate``); the receiver refused
it (``refused``: a status code of 300 or more)."""

_POLL_SECONDS = 0.005


@dataclass(frozen=True)
class DeliveryResult:
    """One delivery sent with :meth:`RunningBot.receive`, once its handlers have finished."""

    delivery_id: str
    status_code: int
    """What the bot answered GitHub: ``202``, ``200`` for a duplicate, ``4xx``/``5xx``."""
    status: DeliveryStatus
    errors: list[BaseException] = field(default_factory=list)
    """What the handlers raised (the last attempt's), as the ``on_error`` handlers saw it."""
    attempts: int = 0
    """How many times its handlers ran (``retry_max_attempts`` is 1 unless the test says)."""
    answer: dict[str, Any] = field(default_factory=dict)
    """The receiver's JSON answer, e.g. ``{"error": "..."}`` for a refusal."""


class _OwnSettings(Settings):
    """Settings from the values given only: the environment and ``.env`` are not read, so a
    developer's shell (``REDIS_URL``, ``LOG_LEVEL``...) cannot change what a test does."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class RunningBot:
    """A bot served on loopback for one test, and the fake GitHub it talks to.

    ``app`` is the bot, ``fake`` its :class:`~framework.testing.FakeGitHub` (script answers
    with ``fake.respond``/``fake.route``, read what the bot did with ``fake.calls_to``,
    ``fake.issue_labels``...), ``url`` its webhook URL and ``webhook_secret`` the secret
    deliveries are signed with.
    """

    def __init__(
        self,
        app: App,
        fakes: Mapping[str, Any],
        base_url: str,
        secrets: Mapping[str, str],
        client: httpx.AsyncClient,
        errors: dict[str, list[BaseException]],
    ) -> None:
        self.app = app
        self.fakes = dict(fakes)
        """Each platform's fake: ``FakeGitHub``, ``FakeAtomGit``, ``FakeCoding``, ``FakeTapd``."""
        self.base_url = base_url
        self.secrets = dict(secrets)
        """Each platform's webhook secret."""
        self._client = client
        self._errors = errors

    @property
    def fake(self) -> FakeGitHub:
        """The fake GitHub (when the bot serves GitHub)."""
        fake = self.fakes.get("github")
        if not isinstance(fake, FakeGitHub):
            raise LookupError("this bot does not serve GitHub: see bot.fakes")
        return fake

    @property
    def url(self) -> str:
        """The bot's GitHub webhook URL."""
        return self.base_url + self.app.settings.webhook_path

    @property
    def webhook_secret(self) -> str:
        """The secret GitHub deliveries are signed with."""
        return self.secrets["github"]

    async def receive(
        self,
        name: str,
        payload: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
        within: float = 10.0,
        platform: str = "github",
        **options: Any,
    ) -> DeliveryResult:
        """Deliver event ``name`` as ``platform`` does, then wait until its handlers have
        finished, retries included (``TimeoutError`` after ``within`` seconds).

        ``name`` is the platform's own: ``"issues"`` on GitHub (the action is in the payload),
        ``"Issue Hook"`` for AtomGit's GitLab-shaped webhooks, ``"story::create"`` on TAPD
        (see :func:`~framework.testing.deliveries.signed_delivery`, which takes ``options``).
        ``delivery_id`` defaults to a new UUID; send one twice to see the second answered as a
        duplicate. The result's ``delivery_id`` is the journal's key (``ctx.delivery_id``).
        """
        if "." in name and platform == "github":
            raise ValueError(
                f"{name!r} is not an event name: pass {name.partition('.')[0]!r}; "
                "the action comes from the payload"
            )
        signed = signed_delivery(
            platform, name, payload, self.secrets[platform], delivery_id=delivery_id, **options
        )
        path = self.app.webhook_paths()[platform]
        response = await self._client.post(
            self.base_url + path, content=signed.body, headers=signed.headers
        )
        delivery_id = signed.key
        code = response.status_code
        json_answer = response.headers.get("content-type", "").startswith("application/json")
        answer: dict[str, Any] = response.json() if json_answer else {"error": response.text}
        if code >= 300:
            return DeliveryResult(delivery_id, code, "refused", answer=answer)
        if answer.get("duplicate"):
            return DeliveryResult(delivery_id, code, "duplicate", answer=answer)
        if answer.get("handled") is False:
            return DeliveryResult(delivery_id, code, "ignored", answer=answer)
        entry = await self._finished(delivery_id, within)
        return DeliveryResult(
            delivery_id,
            code,
            "done" if entry.status == Status.DONE else "failed",
            errors=self._errors.pop(delivery_id, []),
            attempts=entry.attempts,
            answer=answer,
        )

    async def _finished(self, delivery_id: str, within: float) -> Entry:
        """The journal's entry for the delivery, once it is done or failed for good."""
        journal = await self.app.open_journal()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            entry = await journal.get(delivery_id)
            if entry is not None and entry.status in (Status.DONE, Status.FAILED):
                return entry
            if loop.time() > deadline:
                state = "not in the journal" if entry is None else entry.status.value
                detail = f"; last error: {entry.last_error}" if entry and entry.last_error else ""
                raise TimeoutError(f"delivery {delivery_id} still {state} after {within} s{detail}")
            await asyncio.sleep(_POLL_SECONDS)


@asynccontextmanager
async def run_bot(
    app: App,
    *,
    repositories: Sequence[str] = (REPO,),
    installation: int = INSTALLATION,
    permissions: Mapping[str, str] | None = None,
    platforms: Sequence[str] = ("github",),
    **settings: Any,
) -> AsyncIterator[RunningBot]:
    """Serve ``app`` for a test against a fresh fake GitHub; yields a :class:`RunningBot`.

    With ``platforms`` (``("github", "atomgit", "coding", "tapd")``), the bot serves each with
    a fake of its own (``bot.fakes``): AtomGit's with the app installed as ``installation`` on
    ``repositories``, CODING's with the personal token :data:`CODING_TOKEN` (add issues with
    ``bot.fakes["coding"].add_issue``), TAPD's with the API user :data:`TAPD_API_USER` (add
    stories with ``bot.fakes["tapd"].add_entry``).

    The fake has the app installed as ``installation`` on ``repositories`` (one owner's;
    by default the repository and installation the :mod:`~framework.testing.payloads`
    builders use), with the fake's default ``permissions`` unless given. The bot gets
    ``APP_ID``, ``PRIVATE_KEY``, a random ``WEBHOOK_SECRET``, ``GITHUB_API_URL`` and a
    journal in a temporary directory of its own; ``settings`` add to or override those (as
    ``Settings`` fields: ``retry_max_attempts=3``; ``port`` serves on that loopback port
    instead of a free one). Only these values count: the environment
    and ``.env`` are not read. A failing handler fails its delivery at once
    (``retry_max_attempts=1``) so its error is in the result without waiting for retries.
    The bot does not sweep for failed deliveries unless the test asks
    (``redelivery_sync_interval=900``: against ``bot.fake.add_hook_delivery``).

    On exit the bot drains and stops (its journal is closed), then the fake stops. The same
    ``app`` can be run again in the next test.
    """
    if not repositories:
        raise ValueError("give the installation at least one repository ('owner/name')")
    unknown = set(platforms) - {"github", "atomgit", "coding", "tapd"}
    if unknown or not platforms:
        raise ValueError(f"platforms are github, atomgit, coding, tapd; not {sorted(unknown)}")
    private_pem, public_key = generate_app_key()
    owner = repositories[0].partition("/")[0]
    fakes: dict[str, Any] = {}
    for name, fake_class in (("github", FakeGitHub), ("atomgit", FakeAtomGit)):
        if name in platforms:
            app_id = APP_ID if name == "github" else ATOMGIT_APP_ID
            app_fake = fake_class(app_id=app_id, public_key=public_key)
            app_fake.add_installation(
                installation, account=owner, repositories=repositories, permissions=permissions
            )
            fakes[name] = app_fake
    if "coding" in platforms:
        fakes["coding"] = FakeCoding(token=CODING_TOKEN)
    if "tapd" in platforms:
        fakes["tapd"] = FakeTapd(api_user=TAPD_API_USER, api_password=TAPD_API_PASSWORD)
    webhook_secrets = {name: secrets.token_hex(16) for name in platforms}
    errors: dict[str, list[BaseException]] = {}

    async def collect(ctx: Context, error: BaseException) -> None:
        errors.setdefault(ctx.delivery_id, []).append(error)

    collector = Handler.of(collect)
    with tempfile.TemporaryDirectory(prefix="framework-bot-") as directory:
        async with AsyncExitStack() as stack:
            urls = {
                name: await stack.enter_async_context(serve_async(fake.app))
                for name, fake in fakes.items()
            }
            values: dict[str, Any] = {
                "journal_path": Path(directory) / "deliveries.sqlite3",
                "journal_sync": "normal",  # a test need not survive a power cut
                "retry_max_attempts": 1,
                "shutdown_grace_seconds": 5,
                "redelivery_sync_interval": 0,  # no sweep to count among the fake's calls
            }
            if "github" in urls:
                values |= {
                    "app_id": str(APP_ID),
                    "private_key": private_pem,
                    "webhook_secret": webhook_secrets["github"],
                    "github_api_url": urls["github"],
                }
            if "atomgit" in urls:
                values |= {
                    "atomgit_app_id": str(ATOMGIT_APP_ID),
                    "atomgit_private_key": private_pem,
                    "atomgit_webhook_secret": webhook_secrets["atomgit"],
                    "atomgit_api_url": urls["atomgit"],
                }
            if "coding" in urls:
                values |= {
                    "coding_webhook_secret": webhook_secrets["coding"],
                    "coding_token": CODING_TOKEN,
                    "coding_team": "demo",
                    "coding_api_url": urls["coding"],
                    "coding_open_api_url": urls["coding"] + "/open-api",
                }
            if "tapd" in urls:
                values |= {
                    "tapd_webhook_secret": webhook_secrets["tapd"],
                    "tapd_api_user": TAPD_API_USER,
                    "tapd_api_password": TAPD_API_PASSWORD,
                    "tapd_api_url": urls["tapd"],
                }
            app.configure(_OwnSettings(**(values | settings)))
            app.router.error_handlers.append(collector)
            stack.callback(app.router.error_handlers.remove, collector)
            port = int(settings.get("port", 0))  # 0: any free port
            base_url = await stack.enter_async_context(serve_async(app, port=port))
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            for name in platforms:  # the test may have set its own secrets
                configured = app.settings.platform_secrets(name)
                webhook_secrets[name] = configured[0] if configured else webhook_secrets[name]
            yield RunningBot(app, fakes, base_url, webhook_secrets, client, errors)
