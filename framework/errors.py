"""Every exception the framework raises on purpose, in one place.

Each one says what failed and what to do about it. None of them ever carries a secret, a key
or a token: messages name the setting or the endpoint instead.
"""

from __future__ import annotations


class FrameworkError(Exception):
    """Base class of every error raised by the framework."""


class ConfigurationError(FrameworkError):
    """A setting is missing or invalid; the message names the variable, never its value."""


class WebhookError(FrameworkError):
    """A delivery was refused. ``status`` is the HTTP status answered to the sender."""

    status = 400

    def public(self) -> str:
        """What the sender is told (the log has the full message)."""
        return str(self)


class SignatureMismatch(WebhookError):
    """The delivery's signature is missing or does not match any configured secret."""

    status = 401


class InvalidPayload(WebhookError):
    """The body is not a JSON object, or does not fit the event's model."""

    status = 400


class PayloadTooLarge(WebhookError):
    """The body is larger than the configured cap."""

    status = 413


class Unavailable(WebhookError):
    """The bot cannot take the delivery now (stopping, or its backlog is full): 503.

    GitHub records the delivery as failed; it can be redelivered once the bot has caught up.
    """

    status = 503


class MissingHeader(WebhookError):
    """A header every delivery must carry is absent."""

    status = 400


class NoInstallation(FrameworkError):
    """An installation client was asked for where there is no installation.

    Events such as ``ping`` or ``github_app_authorization`` are not sent for an installation;
    use ``app.github`` (the app's own client) or ``await app.installation_client(id)``.
    """


class AuthenticationError(FrameworkError):
    """GitHub refused the app's credentials (JWT or installation access token)."""


class GitHubAPIError(FrameworkError):
    """GitHub answered a request with an error status.

    The message names the method, the path, the status and GitHub's own ``message`` and
    ``documentation_url``; it never includes the Authorization header.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        message: str | None = None,
        documentation_url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        """Seconds GitHub asked to wait before trying again (a rate limit), if it said."""
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.documentation_url = documentation_url
        text = f"{method} {path} -> {status}"
        if message:
            text += f": {message}"
        if documentation_url:
            text += f" (see {documentation_url})"
        super().__init__(text)
