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
from framework.delivery import Delivery
from framework.errors import (
    AuthenticationError,
    ConfigurationError,
    FrameworkError,
    GitHubAPIError,
    InvalidPayload,
    NoInstallation,
    SignatureMismatch,
)
from framework.events import Event, parse_event
from framework.settings import Settings

__all__ = [
    "App",
    "AuthenticationError",
    "ConfigurationError",
    "Context",
    "Delivery",
    "Event",
    "FrameworkError",
    "GitHubAPIError",
    "InvalidPayload",
    "NoInstallation",
    "Settings",
    "SignatureMismatch",
    "__version__",
    "parse_event",
]
