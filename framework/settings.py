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
``LOG_LEVEL``         ``debug``, ``info`` (default), ``warning``, ``error``.
``LOG_FORMAT``        ``pretty`` (default) or ``json``.
===================== ======================================================================

The rest are documented on :class:`Settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from framework.errors import ConfigurationError


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
        default=2,
        gt=0,
        description="How many deliveries' handlers start while a burst is being received.",
    )
    handler_processes: int = Field(
        default=1,
        ge=0,
        description="Processes running handlers beside the receiver (`run` only); 0: in-process.",
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

    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["pretty", "json"] = "pretty"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("webhook_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("github_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    def webhook_secrets(self) -> list[str]:
        """The secrets a delivery may be signed with, the current one first."""
        return [
            s.get_secret_value()
            for s in (self.webhook_secret, self.webhook_secret_previous)
            if s is not None and s.get_secret_value()
        ]

    def problems_for_serving(self) -> list[str]:
        """What stops this configuration from serving webhooks, one line per problem."""
        problems = []
        if not self.webhook_secrets() and not self.allow_unsigned_webhooks:
            problems.append(
                "WEBHOOK_SECRET is not set: set it to the app's webhook secret "
                "(or ALLOW_UNSIGNED_WEBHOOKS=true, for local development only)"
            )
        if not self.app_id and not self.client_id:
            problems.append("APP_ID is not set: set it to the GitHub App's id (or set CLIENT_ID)")
        if self.private_key is None and self.private_key_path is None:
            problems.append(
                "PRIVATE_KEY is not set: set it to the app's PEM private key "
                "(or PRIVATE_KEY_PATH to a file holding it)"
            )
        return problems


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; one clear line per invalid value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"{name}: {err['msg']}")
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(lines)) from None
