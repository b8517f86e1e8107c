"""The setup page: register the bot's GitHub App from a manifest, or import an existing one.

Served at ``GET /`` while the bot has no app credentials (no ``APP_ID``/``CLIENT_ID`` and no
private key) and ``ENVIRONMENT`` is not ``production``. Meanwhile deliveries are answered 503.

1. The page's "Register GitHub App" button POSTs the manifest
   (:mod:`framework.server.manifest`) to GitHub with a ``state`` that is random, single-use
   and lives :data:`STATE_SECONDS` (:class:`RegistrationStates`).
2. GitHub creates the app and sends the browser to ``/setup/callback?code=…&state=…``. The
   state is checked and spent, the code exchanged (``POST /app-manifests/{code}/conversions``,
   unauthenticated), and ``APP_ID``, ``PRIVATE_KEY``, ``WEBHOOK_SECRET``, ``GITHUB_CLIENT_ID``
   and ``GITHUB_CLIENT_SECRET`` merged into ``.env`` (mode 600).
3. The bot takes the new credentials at once (no restart), and the page links to the app's
   install page.

An app made by hand is imported with the form below the button (app id, key file, secret),
checked against GitHub (``GET /app`` with the key) before it is saved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from framework.auth.app_jwt import AppJWT
from framework.auth.private_key import parse_private_key
from framework.client.rest import AppAuth, GitHubClient
from framework.common.encoding import compact_json
from framework.errors import ConfigurationError, GitHubAPIError, NetworkError, NotFound
from framework.server.dotenv_file import EnvFileError, write_env
from framework.server.manifest import (
    build_manifest,
    default_manifest,
    read_app_yml,
    registration_url,
)
from framework.server.web import Pages
from framework.settings import Settings

__all__ = [
    "CALLBACK_PATH",
    "IMPORT_PATH",
    "STATE_SECONDS",
    "RegistrationStates",
    "SetupPages",
    "awaiting_registration",
    "credentials_from_conversion",
]

CALLBACK_PATH = "/setup/callback"
IMPORT_PATH = "/setup/import"
STATE_SECONDS = 900.0
"""How long a registration ``state`` stays valid (GitHub's code then lives an hour)."""
GITHUB_TIMEOUT_SECONDS = 20.0


def awaiting_registration(settings: Settings) -> bool:
    """Whether the bot has no app credentials yet and may offer the setup page.

    >>> none = {"app_id": None, "client_id": None, "private_key": None, "private_key_path": None}
    >>> awaiting_registration(Settings(_env_file=None, **none))
    True
    >>> awaiting_registration(Settings(_env_file=None, **none, environment="production"))
    False
    >>> awaiting_registration(Settings(_env_file=None, **(none | {"app_id": "12"})))
    False
    >>> awaiting_registration(Settings(_env_file=None, **none, tapd_webhook_secret="s"))
    False
    """
    key = settings.private_key.get_secret_value().strip() if settings.private_key else ""
    return (
        settings.environment.strip().lower() != "production"
        and "github" in settings.enabled_platforms()  # not a bot of another platform only
        and not settings.app_id
        and not settings.client_id
        and not key
        and settings.private_key_path is None
    )


class RegistrationStates:
    """Registration ``state`` values: random, single-use, short-lived, and few at once.

    >>> now = [0.0]
    >>> states = RegistrationStates(ttl=60, clock=lambda: now[0])
    >>> state = states.issue()
    >>> states.consume(state), states.consume(state)
    (True, False)
    >>> late = states.issue(); now[0] = 61.0
    >>> states.consume(late)
    False
    """

    def __init__(
        self,
        ttl: float = STATE_SECONDS,
        limit: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._issued: OrderedDict[str, float] = OrderedDict()  # state -> expiry

    def issue(self) -> str:
        """A new state; the oldest is forgotten once ``limit`` are outstanding."""
        state = secrets.token_urlsafe(32)
        self._issued[state] = self._clock() + self.ttl
        while len(self._issued) > self.limit:
            self._issued.popitem(last=False)
        return state

    def consume(self, state: str) -> bool:
        """True once for a state this bot issued that has not expired; False otherwise."""
        expiry = self._issued.pop(state, None)
        return expiry is not None and self._clock() < expiry


_CONVERSION_FIELDS = {
    "APP_ID": "id",
    "PRIVATE_KEY": "pem",
    "WEBHOOK_SECRET": "webhook_secret",
    "GITHUB_CLIENT_ID": "client_id",
    "GITHUB_CLIENT_SECRET": "client_secret",
}


def credentials_from_conversion(answer: Mapping[str, Any]) -> dict[str, str]:
    """The ``.env`` entries from GitHub's answer to a manifest conversion.

    >>> credentials_from_conversion({"id": 7, "pem": "K", "webhook_secret": "w",
    ...     "client_id": "Iv1.x", "client_secret": "c"})["APP_ID"]
    '7'
    >>> credentials_from_conversion({"id": 7})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    framework.errors.ConfigurationError: GitHub's answer lacks pem, webhook_secret, ...
    """
    missing = [field for field in _CONVERSION_FIELDS.values() if not answer.get(field)]
    if missing:
        raise ConfigurationError(f"GitHub's answer lacks {', '.join(missing)}")
    return {name: str(answer[field]) for name, field in _CONVERSION_FIELDS.items()}


def with_credentials(settings: Settings, entries: Mapping[str, str]) -> Settings:
    """``settings`` with the app credentials of ``entries`` (``.env`` names) in place."""
    return settings.model_copy(
        update={
            "app_id": entries["APP_ID"],
            "private_key": SecretStr(entries["PRIVATE_KEY"]),
            "private_key_path": None,
            "webhook_secret": SecretStr(entries["WEBHOOK_SECRET"]),
        }
    )


def _is_local_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


class SetupPages:
    """The setup page, the manifest callback and the import form."""

    def __init__(self, pages: Pages, states: RegistrationStates | None = None) -> None:
        self.pages = pages
        self.host = pages.host
        self.states = states or RegistrationStates()

    # The page -----------------------------------------------------------------------

    def _app_yml(self) -> tuple[Path, dict[str, Any] | None]:
        path = (self.host.home or Path.cwd()) / "app.yml"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return path, None
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
        return path, read_app_yml(text, str(path))

    def manifest(self, request: Request) -> dict[str, Any]:
        """The manifest for this bot, with URLs as the browser reaches it."""
        s = self.host.settings
        base = str(request.base_url).rstrip("/")
        public = s.public_url or base
        _, app_yml = self._app_yml()
        return build_manifest(
            default_manifest(self.host.name, self.host.router.keys),
            app_yml,
            hook_url=s.webhook_proxy_url or public + s.webhook_path,
            redirect_url=base + CALLBACK_PATH,
            homepage=public,
            callback_url=public + "/login/github/callback",  # sign-in works at once
        )

    async def index(self, request: Request, import_error: str | None = None) -> Response:
        """``GET /`` without credentials: the register button and the import form."""
        s = self.host.settings
        try:
            manifest = self.manifest(request)
            app_yml_path, app_yml = self._app_yml()
        except ConfigurationError as exc:
            return self.pages.message(request, 500, "app.yml cannot be used", str(exc))
        hook_url = manifest["hook_attributes"]["url"]
        state = self.states.issue()
        return self.pages.render(
            request,
            "setup.html",
            400 if import_error else 200,
            manifest=manifest,
            manifest_json=compact_json(manifest).decode(),
            action=registration_url(s.github_web_url, state, s.gh_org),
            github_web_url=s.github_web_url,
            org=s.gh_org,
            app_yml=str(app_yml_path) if app_yml is not None else None,
            hook_unreachable=_is_local_url(hook_url),
            import_error=import_error,
            import_path=IMPORT_PATH,
        )

    def _set_up_already(self, request: Request) -> Response | None:
        if awaiting_registration(self.host.settings):
            return None
        return self.pages.message(
            request, 409, "Already set up", "This bot has app credentials already."
        )

    # The callback ---------------------------------------------------------------------

    async def callback(self, request: Request) -> Response:
        """``GET /setup/callback?code&state``: GitHub sends the browser here with the code."""
        if (refused := self._set_up_already(request)) is not None:
            return refused
        state = request.query_params.get("state")
        code = request.query_params.get("code")
        if not state:
            return self._restart(request, "GitHub's answer has no state.")
        if not self.states.consume(state):
            return self._restart(
                request,
                "This registration is unknown, already used or expired "
                f"(a registration must finish within {STATE_SECONDS / 60:.0f} minutes).",
            )
        if not code:
            return self._restart(request, "GitHub's answer has no code.")
        client = GitHubClient(self.host.http, httpx.Auth())  # the conversion is unauthenticated
        try:
            response = await asyncio.wait_for(
                client.post(f"/app-manifests/{quote(code, safe='')}/conversions"),
                GITHUB_TIMEOUT_SECONDS,
            )
            answer = response.json()
            entries = credentials_from_conversion(answer)
        except NotFound:
            return self._restart(
                request,
                "GitHub does not know this code: it works once and for an hour only. "
                "If the app was created, delete it on GitHub or import it below.",
            )
        except (GitHubAPIError, ConfigurationError, ValueError) as exc:
            return self._restart(request, f"GitHub could not convert the code: {exc}", 502)
        except (NetworkError, TimeoutError) as exc:
            return self._restart(
                request,
                f"GitHub ({self.host.settings.github_api_url}) could not be reached: "
                f"{exc or 'no answer'}",
                502,
            )
        return await self._registered(request, entries, answer)

    def _restart(self, request: Request, why: str, status: int = 400) -> Response:
        return self.pages.render(request, "setup_failed.html", status, why=why)

    async def _registered(
        self, request: Request, entries: Mapping[str, str], app: Mapping[str, Any]
    ) -> Response:
        settings = self.host.settings
        env_file = settings.setup_env_file
        try:
            write_env(env_file, entries)
            env_error = None
        except EnvFileError as exc:
            env_error = str(exc)
        restart = await self.host.use_credentials(with_credentials(settings, entries))
        html_url = str(app.get("html_url") or "")
        return self.pages.render(
            request,
            "registered.html",
            name=app.get("name") or app.get("slug") or f"app {entries['APP_ID']}",
            app_id=entries["APP_ID"],
            html_url=html_url,
            install_url=f"{html_url}/installations/new" if html_url else None,
            env_file=str(env_file),
            env_keys=sorted(entries),
            env_error=env_error,
            restart=restart,
        )

    # Importing an app made by hand -----------------------------------------------------

    async def import_app(self, request: Request) -> Response:
        """``POST /setup/import``: app id, private key (a file or pasted) and webhook secret."""
        if (refused := self._set_up_already(request)) is not None:
            return refused
        form = await self.pages.form(request)
        if isinstance(form, Response):
            return form
        app_id = str(form.get("app_id") or "").strip()
        secret = str(form.get("webhook_secret") or "").strip()
        key_text = await _key_text(form.get("private_key"), form.get("private_key_text"))
        if not app_id.isdigit():
            return await self.index(request, "The app id is a number (on the app's settings page).")
        if not secret:
            return await self.index(request, "The webhook secret is empty.")
        try:
            key = parse_private_key(key_text, "the private key")
        except ConfigurationError as exc:
            return await self.index(request, str(exc))
        client = GitHubClient(self.host.http, AppAuth(AppJWT(app_id, key)))
        try:
            response = await asyncio.wait_for(client.get("/app"), GITHUB_TIMEOUT_SECONDS)
            app = response.json()
        except GitHubAPIError as exc:
            return await self.index(
                request, f"GitHub refused this app id and key ({exc.status}: {exc.message})."
            )
        except (NetworkError, TimeoutError) as exc:
            return await self.index(request, f"GitHub could not be reached: {exc or 'no answer'}")
        entries = {"APP_ID": app_id, "PRIVATE_KEY": key_text.strip() + "\n"}
        entries["WEBHOOK_SECRET"] = secret
        return await self._registered(request, entries, app)


async def _key_text(upload: Any, pasted: Any) -> str:
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(64 * 1024)
        return data.decode("utf-8", errors="replace")
    return pasted if isinstance(pasted, str) else ""
