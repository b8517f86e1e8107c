"""Settings, read from the environment and from a ``.env`` file in the working directory.

The names are Probot's, so a bot moved from Probot keeps its configuration:

===================== ======================================================================
``APP_ID``            The GitHub App's id (or set ``CLIENT_ID``; either is the JWT issuer).
``PRIVATE_KEY``       The app's private key: PEM text, PEM with literal ``\\n``, or base64.
``PRIVATE_KEY_PATH``  A file holding the PEM key, instead of ``PRIVATE_KEY``.
``WEBHOOK_SECRET``    The secret deliveries are signed with.
``WEBHOOK_PATH``      Where deliveries are received (default ``/api/github/webhooks``).
``HOST`` / ``PORT``   Where to listen (default ``0.0.0.0:3000``).
``GITHUB_API_URL``    ``https://api.github.com``, or ``https://HOST/api/v3`` for GHES.
``LOG_LEVEL``         ``trace``, ``debug``, ``info`` (default), ``warn``, ``error``, ``fatal``
                      (Probot's), or ``warning``, ``critical`` (Python's).
``LOG_FORMAT``        ``pretty`` (default) or ``json``.
``METRICS_TOKEN``     The bearer token ``/metrics`` asks of scrapers off loopback.
===================== ======================================================================

The rest are documented on :class:`Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from framework.common.durations import seconds
from framework.common.log_levels import level_name
from framework.errors import ConfigurationError

HANDLER_PROCESS_MIN_CPUS = 4
"""From this many usable CPUs up, handlers run in a separate process by default."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a container's cpuset),
    else every CPU of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_handler_processes(cpus: int) -> int:
    """``HANDLER_PROCESSES``'s default with ``cpus`` usable CPUs: one handler process where
    there are cores to spare for it, none (handlers in the receiver's event loop) below
    :data:`HANDLER_PROCESS_MIN_CPUS`.

    A separate process, at a lower CPU priority, keeps acknowledgements fast while handlers
    burn CPU, best with a core of its own. It costs a second copy of the bot in memory (~60 MiB
    idle, bench/footprint.py) and a hand-over per delivery; on one or two cores, where memory
    is usually what is short, handlers share the receiver's event loop (and a lower
    ``HANDLER_CONCURRENCY_UNDER_LOAD`` holds CPU-heavy ones back during a burst).

    >>> [default_handler_processes(cpus) for cpus in (1, 2, 4)]
    [0, 0, 1]
    """
    return 1 if cpus >= HANDLER_PROCESS_MIN_CPUS else 0


class Settings(BaseSettings):
    """Every setting the framework reads. Pass values directly to override the environment.

    >>> Settings(webhook_secret="s3cret", port=8080).port
    8080
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    app_id: str | None = None
    client_id: str | None = None
    private_key: SecretStr | None = None
    private_key_path: Path | None = None

    webhook_secret: SecretStr | None = None
    webhook_secret_previous: SecretStr | None = Field(
        default=None, description="The secret being rotated out; accepted alongside the new one."
    )
    webhook_path: str = "/api/github/webhooks"
    webhook_allow_sha1: bool = Field(
        default=False, description="Accept legacy X-Hub-Signature (sha1) when no sha256 is sent."
    )
    webhook_max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    allow_unsigned_webhooks: bool = Field(
        default=False,
        description="Development only: accept deliveries without checking any signature.",
    )

    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)
    github_api_url: str = "https://api.github.com"
    github_api_version: str = "2022-11-28"
    github_max_retries: int = Field(
        default=3, ge=0, description="Retries of a network error or 5xx, where safe to repeat."
    )
    github_retry_backoff_seconds: float = Field(
        default=0.5, ge=0, description="The first such retry's delay (doubled each time)."
    )
    github_max_rate_limit_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Wait out a rate limit this long at most; longer raises RateLimited.",
    )
    github_concurrency_per_installation: int = Field(
        default=20, gt=0, le=100, description="Requests in flight per installation (GitHub: 100)."
    )
    github_points_per_minute: float = Field(
        default=0.0,
        ge=0,
        description="Pace each installation under GitHub's secondary limit (900; 0: off).",
    )
    github_etag_cache_entries: int = Field(
        default=512, ge=0, description="GET responses kept for revalidation with their ETag."
    )

    handler_concurrency: int = Field(
        default=32, gt=0, description="How many deliveries' handlers run at once."
    )
    handler_concurrency_under_load: int = Field(
        default=32,
        gt=0,
        description="How many deliveries' handlers run while a burst is being received; lower "
        "it to let acknowledgements overtake handlers that burn CPU.",
    )
    handler_processes: int = Field(
        default_factory=lambda: default_handler_processes(usable_cpus()),
        ge=0,
        description="Processes running handlers beside the receiver (`run` only); 0: in the "
        f"receiver's event loop. Default: 1 with {HANDLER_PROCESS_MIN_CPUS} usable CPUs or more, "
        "else 0 (see default_handler_processes).",
    )
    handler_process_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much lower the handler processes' CPU priority is than the receiver's.",
    )
    shutdown_grace_seconds: float = Field(
        default=25.0, ge=0, description="How long a stopping bot waits for running handlers."
    )

    journal_path: Path = Field(
        default=Path("deliveries.sqlite3"),
        description="The SQLite delivery journal (relative to the working directory).",
    )
    journal_sync: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite's synchronous mode: full survives power loss; normal, a crash.",
    )
    journal_max_bytes: int | None = Field(
        default=None, gt=0, description="Cap on the SQLite journal's size (503 near it)."
    )
    journal_retention_days: float = Field(
        default=7.0, gt=0, description="Finished deliveries are deleted after this many days."
    )
    journal_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a dead replica's running deliveries wait before others take them.",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://...: journal, work queue and token cache in Redis (replicas).",
    )
    redis_prefix: str = Field(default="framework", description="Prefix of every Redis key.")
    retry_max_attempts: int = Field(
        default=5, ge=1, description="Runs of a failing delivery before it is kept as failed."
    )
    retry_backoff_seconds: float = Field(
        default=10.0, ge=0, description="Wait after the first failure; doubles each time."
    )
    retry_backoff_max_seconds: float = Field(
        default=3600.0, ge=0, description="The longest wait between two attempts."
    )
    config_cache_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long ctx.config keeps a repository's configuration (0: not kept).",
    )

    # AtomGit apps (seed 000): enabled when any of these is set. ---------------------------
    atomgit_app_id: str | None = None
    atomgit_private_key: SecretStr | None = None
    atomgit_private_key_path: Path | None = None
    atomgit_webhook_secret: SecretStr | None = None
    atomgit_api_url: str = "https://api.atomgit.com"

    # CODING (seeds 001, 003): enabled when any of these is set. ------------------------------
    coding_webhook_secret: SecretStr | None = None
    coding_token: SecretStr | None = Field(
        default=None, description="A personal access token (sent as 'Authorization: token')."
    )
    coding_team: str | None = Field(default=None, description="The team: {team}.coding.net.")
    coding_api_url: str | None = Field(
        default=None, description="The team's REST API (default https://{team}.coding.net)."
    )
    coding_open_api_url: str = "https://e.coding.net/open-api"

    # TAPD (seed 002): enabled when any of these is set. -------------------------------------
    tapd_webhook_secret: SecretStr | None = None
    tapd_api_user: str | None = None
    tapd_api_password: SecretStr | None = None
    tapd_token: SecretStr | None = Field(default=None, description="A bearer token instead.")
    tapd_api_url: str = "https://api.tapd.cn"
    tapd_author: str | None = Field(
        default=None, description="Who comments are posted as (default: the bot's name)."
    )

    # Setup and status pages (framework/server/pages.py) ---------------------------------
    environment: str = Field(
        default="development",
        description="`production` switches the setup page (app registration) off.",
    )
    github_web_url: str = Field(
        default="https://github.com", description="Where apps are registered (GHE_HOST sets it)."
    )
    ghe_host: str | None = Field(
        default=None,
        description="GitHub Enterprise Server's host: sets GITHUB_WEB_URL and GITHUB_API_URL.",
    )
    gh_org: str | None = Field(
        default=None, description="Register the app under this organization, not the user."
    )
    webhook_proxy_url: str | None = Field(
        default=None, description="The tunnel's channel (smee), the registered app's hook URL."
    )
    public_url: str | None = Field(
        default=None, description="Where GitHub reaches the bot (default: the page's own URL)."
    )
    status_page_token: SecretStr | None = Field(
        default=None, description="Opens the setup and status pages beyond loopback."
    )
    setup_env_file: Path = Field(
        default=Path(".env"), description="Where the setup page writes the app's credentials."
    )

    # Hostile clients: limits on every byte sent before a delivery proves its signature.
    server_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's headers must arrive within this long."
    )
    server_max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Cap on a request's header block (431 beyond)."
    )
    server_max_headers: int = Field(
        default=100, gt=0, description="Cap on the number of a request's headers."
    )
    server_body_grace_seconds: float = Field(
        default=10.0, gt=0, description="A body's first bytes may take this long to arrive..."
    )
    server_body_min_bytes_per_second: int = Field(
        default=16 * 1024, gt=0, description="...then it must keep up this rate (408 if not)."
    )
    server_keep_alive_seconds: float = Field(
        default=5.0, gt=0, description="An idle kept-alive connection is closed after this."
    )
    server_max_connections: int | None = Field(
        default=None,
        gt=0,
        description="Open connections at most (default: the file limit less 128); past it, "
        "the longest-idle connection is closed to make room.",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token /metrics asks of scrapers off loopback (unset: open to all).",
    )

    log_level: Literal["trace", "debug", "info", "warning", "error", "critical"] = Field(
        default="info",
        description="Probot's trace, debug, info, warn, error, fatal, or Python's warning, "
        "critical.",
    )
    log_format: Literal["pretty", "json"] = "pretty"

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        return level_name(value) if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    # Redelivering what GitHub could not deliver (framework/platforms/redelivery.py) --------
    redelivery_sync_interval: float | None = Field(
        default=None,
        ge=0,
        description="How often the bot asks GitHub to redeliver what failed (15m, 1h; "
        "default 15m with the app's credentials; 0: never).",
    )
    redelivery_window: float = Field(
        default=3 * 86400.0,
        gt=0,
        description="How far back the first sweep reaches (GitHub keeps deliveries 3d; GHES 7d).",
    )

    @field_validator("redelivery_sync_interval", "redelivery_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return seconds(value) if isinstance(value, str) and value.strip() else value

    def redelivery_interval(self) -> float:
        """Seconds between the bot's redelivery sweeps; 0 when it does not sweep (off, or
        no app credentials to list deliveries with).

        >>> Settings(redelivery_sync_interval="0", _env_file=None).redelivery_interval()
        0.0
        """
        if self.redelivery_sync_interval == 0 or self.app_credential_problems():
            return 0.0
        if self.redelivery_sync_interval is None:
            return 15 * 60.0
        return self.redelivery_sync_interval

    @field_validator("app_id")
    @classmethod
    def _numeric_app_id(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and not value.strip().isdigit():
            raise ValueError(
                "must be the app's numeric id (its settings page shows 'App ID'); "
                "a client id such as Iv1.abc goes in CLIENT_ID"
            )
        return value.strip() if value is not None else None

    @field_validator("webhook_secret", "webhook_secret_previous")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().strip():
            raise ValueError("is only whitespace: copy the secret itself")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator(
        "github_api_url", "atomgit_api_url", "coding_api_url", "coding_open_api_url", "tapd_api_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("github_web_url", "public_url", "webhook_proxy_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @model_validator(mode="after")
    def _enterprise_host(self) -> Settings:
        # GHE_HOST is a shorthand for both URLs; either one given explicitly wins.
        if self.ghe_host:
            host = self.ghe_host.strip().removeprefix("https://").rstrip("/")
            if "github_web_url" not in self.model_fields_set:
                self.github_web_url = f"https://{host}"
            if "github_api_url" not in self.model_fields_set:
                self.github_api_url = f"https://{host}/api/v3"
        return self

    def webhook_secrets(self) -> list[str]:
        """The secrets a delivery may be signed with, the current one first."""
        return [
            s.get_secret_value()
            for s in (self.webhook_secret, self.webhook_secret_previous)
            if s is not None and s.get_secret_value()
        ]

    def platform_secrets(self, platform: str) -> list[str]:
        """The webhook secrets of a platform (GitHub's: :meth:`webhook_secrets`)."""
        if platform == "github":
            return self.webhook_secrets()
        secret = getattr(self, f"{platform}_webhook_secret")
        value = secret.get_secret_value() if secret is not None else ""
        return [value] if value else []

    def enabled_platforms(self) -> list[str]:
        """The platforms this bot serves: each whose settings are present.

        GitHub's are ``APP_ID``/``CLIENT_ID``, ``PRIVATE_KEY(_PATH)`` and ``WEBHOOK_SECRET``; a
        bot with none of any platform's serves GitHub (and says what GitHub needs).

        >>> Settings(tapd_webhook_secret="s", _env_file=None).enabled_platforms()
        ['tapd']
        """
        present = {
            "github": (
                self.app_id, self.client_id, self.private_key, self.private_key_path,
                self.webhook_secret,
            ),
            "atomgit": (
                self.atomgit_app_id, self.atomgit_private_key, self.atomgit_private_key_path,
                self.atomgit_webhook_secret,
            ),
            "coding": (self.coding_webhook_secret, self.coding_token, self.coding_team),
            "tapd": (
                self.tapd_webhook_secret, self.tapd_api_user, self.tapd_api_password,
                self.tapd_token,
            ),
        }  # fmt: skip
        enabled = [name for name, values in present.items() if any(v for v in values)]
        return enabled or ["github"]

    def problems_for_serving(self) -> list[str]:
        """What stops this configuration from serving webhooks, one line per problem."""
        problems: list[str] = []
        for platform in self.enabled_platforms():
            problems += getattr(self, f"_{platform}_problems")()
        return problems

    def _secret_problem(self, platform: str, variable: str, what: str) -> list[str]:
        if self.platform_secrets(platform) or self.allow_unsigned_webhooks:
            return []
        return [
            f"{variable} is not set: set it to the {what} webhook secret "
            "(or ALLOW_UNSIGNED_WEBHOOKS=true, for local development only)"
        ]

    def _github_problems(self) -> list[str]:
        return self._secret_problem("github", "WEBHOOK_SECRET", "app's") + (
            self.app_credential_problems()
        )

    def app_credential_problems(self) -> list[str]:
        """What stops the GitHub App from authenticating (its id, its key), one per line."""
        from framework.auth.private_key import load_private_key

        problems: list[str] = []
        if not self.app_id and not self.client_id:
            problems.append("APP_ID is not set: set it to the GitHub App's id (or set CLIENT_ID)")
        key_text = self.private_key.get_secret_value().strip() if self.private_key else None
        if not key_text and self.private_key_path is None:
            problems.append(
                "PRIVATE_KEY is not set: set it to the app's PEM private key "
                "(or PRIVATE_KEY_PATH to a file holding it)"
            )
        elif key_text and self.private_key_path is not None:
            problems.append(
                "PRIVATE_KEY and PRIVATE_KEY_PATH are both set: keep one (PRIVATE_KEY would be "
                "used and the file ignored)"
            )
        else:
            try:
                load_private_key(key_text, self.private_key_path)
            except ConfigurationError as exc:
                problems.append(str(exc))
        return problems

    def _atomgit_problems(self) -> list[str]:
        problems = self._secret_problem("atomgit", "ATOMGIT_WEBHOOK_SECRET", "AtomGit app's")
        if not self.atomgit_app_id:
            problems.append("ATOMGIT_APP_ID is not set: set it to the AtomGit app's id")
        if self.atomgit_private_key is None and self.atomgit_private_key_path is None:
            problems.append(
                "ATOMGIT_PRIVATE_KEY is not set: set it to the AtomGit app's PEM private key "
                "(or ATOMGIT_PRIVATE_KEY_PATH to a file holding it)"
            )
        return problems

    def _coding_problems(self) -> list[str]:
        problems = self._secret_problem("coding", "CODING_WEBHOOK_SECRET", "CODING")
        if self.coding_token is None:
            problems.append("CODING_TOKEN is not set: set it to a CODING personal access token")
        if not self.coding_team and not self.coding_api_url:
            problems.append(
                "CODING_TEAM is not set: set it to the team name of {team}.coding.net "
                "(or CODING_API_URL)"
            )
        return problems

    def _tapd_problems(self) -> list[str]:
        problems = self._secret_problem("tapd", "TAPD_WEBHOOK_SECRET", "TAPD")
        has_basic = self.tapd_api_user is not None or self.tapd_api_password is not None
        if has_basic and (self.tapd_api_user is None or self.tapd_api_password is None):
            missing = "TAPD_API_PASSWORD" if self.tapd_api_user else "TAPD_API_USER"
            problems.append(f"{missing} is not set: TAPD's API takes both user and password")
        elif not has_basic and self.tapd_token is None:
            problems.append(
                "TAPD_API_USER and TAPD_API_PASSWORD are not set: set them (or TAPD_TOKEN) "
                "for TAPD's API"
            )
        return problems

    # Signing users in (OAuth): a platform's sign-in is on when its client id and secret are
    # set. -------------------------------------------------------------------------------------
    github_client_id: str | None = Field(
        default=None, description="The OAuth client id (default: CLIENT_ID, the app's)."
    )
    github_client_secret: SecretStr | None = None
    github_oauth_callback_url: str | None = Field(
        default=None, description="The app's registered callback URL, checked at start-up."
    )
    github_oauth_scopes: str = Field(
        default="", description="Scopes an OAuth app asks for, space-separated (GitHub Apps: none)."
    )
    atomgit_client_id: str | None = None
    atomgit_client_secret: SecretStr | None = None
    atomgit_web_url: str = "https://atomgit.com"
    coding_client_id: str | None = None
    coding_client_secret: SecretStr | None = None
    coding_web_url: str | None = Field(
        default=None, description="OAuth and REST host (default https://{team}.coding.net)."
    )
    coding_oauth_scopes: str = Field(default="user,project", description="Comma-separated.")
    tapd_client_id: str | None = None
    tapd_client_secret: SecretStr | None = None
    tapd_web_url: str = Field(
        default="https://www.tapd.cn", description="Users authorize at {TAPD_WEB_URL}/oauth/."
    )
    tapd_oauth_scopes: str = Field(default="story bug", description="Space-separated.")
    tapd_auth_by: Literal["workspace", "take_park_workspace"] = "workspace"
    token_encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys sealing stored user tokens, comma-separated, the newest first.",
    )
    user_tokens_path: Path | None = Field(
        default=None, description="The SQLite user-token store (default: beside the journal)."
    )

    @field_validator(
        "atomgit_web_url", "tapd_web_url", "coding_web_url", "github_oauth_callback_url"
    )
    @classmethod
    def _oauth_url(cls, value: str | None) -> str | None:
        return cls._http_url(value)

    def sign_in_platforms(self) -> list[str]:
        """The platforms whose sign-in is configured (client id and secret set).

        >>> Settings(tapd_client_id="c", tapd_client_secret="s", _env_file=None).sign_in_platforms()
        ['tapd']
        """
        return [
            name
            for name in ("github", "atomgit", "coding", "tapd")
            if self.oauth_client(name) is not None
        ]

    def oauth_client(self, platform: str) -> tuple[str, str] | None:
        """``(client_id, client_secret)`` of a platform's OAuth app; None when not configured."""
        client_id = getattr(self, f"{platform}_client_id")
        if platform == "github":
            client_id = client_id or self.client_id
        secret = getattr(self, f"{platform}_client_secret")
        if not client_id or secret is None or not secret.get_secret_value():
            return None
        return client_id, secret.get_secret_value()

    def user_tokens_file(self) -> Path:
        """The SQLite user-token store: ``USER_TOKENS_PATH``, else beside the journal."""
        return self.user_tokens_path or self.journal_path.with_name("user_tokens.sqlite3")

    def coding_rest_url(self) -> str:
        """CODING's REST API: ``CODING_API_URL``, else ``https://{CODING_TEAM}.coding.net``."""
        if self.coding_api_url:
            return self.coding_api_url
        return f"https://{self.coding_team or 'team'}.coding.net"


def load_settings(
    *, problems: Callable[[Settings], list[str]] | None = None, **overrides: Any
) -> Settings:
    """Read settings from the environment and ``.env``; one clear line per invalid value.

    ``problems`` (e.g. ``Settings.problems_for_serving``) adds what stops the caller from
    using the settings, and every problem is reported at once: an invalid ``PORT`` does not
    hide a missing ``APP_ID``.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines, invalid = [], set()
        for err in exc.errors(include_url=False, include_input=False):
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"{name}: {err['msg']}")
            invalid.add(str(err["loc"][0]) if err["loc"] else "")
        if problems is None or not invalid <= set(Settings.model_fields):
            raise ConfigurationError("invalid settings:\n  " + "\n  ".join(lines)) from None
        # The invalid values at their defaults, to find the other problems too.
        defaults = {name: Settings.model_fields[name].default for name in invalid}
        found = problems(Settings(**(overrides | defaults)))
        lines += [p for p in found if p.split(" ")[0].rstrip(":").lower() not in invalid]
        raise ConfigurationError("cannot start:\n  " + "\n  ".join(lines)) from None
    found = problems(settings) if problems is not None else []
    if found:
        raise ConfigurationError("cannot start:\n  " + "\n  ".join(found))
    return settings
