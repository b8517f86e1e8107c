"""Typed, reliable bots for GitHub Apps, AtomGit apps, CODING and TAPD.

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
    APIError,
    AuthenticationError,
    CodingAPIError,
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
    NotSupported,
    RateLimited,
    ServerError,
    SignatureMismatch,
    TapdAPIError,
    ValidationFailed,
)
from framework.events import Event, parse_event
from framework.server.login import MissingScope, NotSignedIn, SignedIn, SignInRequired
from framework.settings import Settings
from framework.webhooks.delivery import Delivery

__all__ = [
    "APIError",
    "App",
    "AuthenticationError",
    "CodingAPIError",
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
    "MissingScope",
    "NetworkError",
    "NoInstallation",
    "NotFound",
    "NotSignedIn",
    "NotSupported",
    "RateLimited",
    "ServerError",
    "Settings",
    "SignInRequired",
    "SignatureMismatch",
    "SignedIn",
    "TapdAPIError",
    "ValidationFailed",
    "__version__",
    "parse_event",
]
