"""Typed, reliable GitHub App bots.

>>> from framework import App, Context
>>> app = App()
>>> @app.on("issues.opened")
... async def needs_response(ctx: Context) -> None:
...     await ctx.github.post(
...         f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
...         json={"labels": ["needs-response"]},
...     )
"""

from framework._version import __version__
from framework.app import App
from framework.context import Context
from framework.errors import (
    AuthenticationError,
    ConfigError,
    ConfigurationError,
    Forbidden,
    FrameworkError,
    GitHubAPIError,
    GraphQLError,
    InvalidPayload,
    NetworkError,
    NoInstallation,
    NotFound,
    RateLimited,
    ServerError,
    SignatureMismatch,
    ValidationFailed,
)
from framework.events import Event, parse_event
from framework.settings import Settings
from framework.webhooks.delivery import Delivery

__all__ = [
    "App",
    "AuthenticationError",
    "ConfigError",
    "ConfigurationError",
    "Context",
    "Delivery",
    "Event",
    "Forbidden",
    "FrameworkError",
    "GitHubAPIError",
    "GraphQLError",
    "InvalidPayload",
    "NetworkError",
    "NoInstallation",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Settings",
    "SignatureMismatch",
    "ValidationFailed",
    "__version__",
    "parse_event",
]
