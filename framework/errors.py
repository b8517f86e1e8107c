"""Every exception the framework raises on purpose, in one place.

Each one says what failed and what to do about it. None of them ever carries a secret, a key
or a token: messages name the setting or the endpoint instead.
"""

from __future__ import annotations


class FrameworkError(Exception):
    """Base class of every error raised by the framework."""


class ConfigurationError(FrameworkError):
    """A setting is missing or invalid; the message names the variable, never its value."""


class ConfigError(FrameworkError):
    """A repository's configuration file (``ctx.config``) cannot be used: invalid YAML, not a
    mapping, a bad ``_extends``, or values its model refuses. The message names the repository,
    the file, and the line or the field."""


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


class APIError(FrameworkError):
    """A platform's API answered a request with an error status (or an error envelope).

    ``GitHubAPIError`` is the same class, by its older name.

    The message names the method, the path, the status and GitHub's own ``message`` and
    ``documentation_url``; it never includes the Authorization header. The subclasses say what
    kind of error it was: :class:`NotFound`, :class:`Forbidden`, :class:`ValidationFailed`,
    :class:`RateLimited`, :class:`ServerError`; catch this class for any of them.
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
        detail = self._detail()
        if detail:
            text += f" ({detail})"
        if documentation_url:
            text += f" (see {documentation_url})"
        super().__init__(text)

    def _detail(self) -> str:
        return ""


GitHubAPIError = APIError
"""The name :class:`APIError` had when the framework spoke only to GitHub."""


class NotFound(GitHubAPIError):
    """404: no such resource, or the token cannot see it (GitHub hides what it forbids)."""


class Forbidden(GitHubAPIError):
    """403 that is not a rate limit: the token lacks a permission, or the action is blocked."""


class ValidationFailed(GitHubAPIError):
    """422: GitHub refused the request's content. ``errors`` is GitHub's list of what and why
    (``resource``, ``field``, ``code``, ``message``)."""

    def __init__(self, *args: object, errors: list[dict[str, object]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(*args)  # type: ignore[arg-type]

    def _detail(self) -> str:
        parts = []
        for error in self.errors[:5]:
            fields = [str(error[k]) for k in ("resource", "field", "code") if error.get(k)]
            said = error.get("message")
            parts.append(" ".join(fields) + (f": {said}" if said else ""))
        return "; ".join(p for p in parts if p)


class RateLimited(GitHubAPIError):
    """403 or 429 for a rate limit that the client would not wait out (longer than
    ``GITHUB_MAX_RATE_LIMIT_WAIT_SECONDS``). ``retry_after`` says how long to wait,
    ``reset_at`` when (epoch seconds); ``secondary`` tells a secondary limit from the hourly one.
    A handler that lets it propagate is retried by the runner at that time."""

    def __init__(self, *args: object, reset_at: float, secondary: bool) -> None:
        self.reset_at = reset_at
        self.secondary = secondary
        super().__init__(*args)  # type: ignore[arg-type]

    def _detail(self) -> str:
        kind = "secondary rate limit" if self.secondary else "rate limit"
        return f"{kind}; try again in {self.retry_after or 0:.0f} s"


class ServerError(GitHubAPIError):
    """5xx: GitHub failed (after the client's retries, where retrying was safe)."""


class GraphQLError(FrameworkError):
    """A GraphQL query answered with ``errors``. ``errors`` is GitHub's list; ``data`` the
    partial result, if any."""

    def __init__(self, query_name: str, errors: list[dict[str, object]], data: object) -> None:
        self.errors = errors
        self.data = data
        said = "; ".join(str(e.get("message", e)) for e in errors[:5])
        types = sorted({str(e["type"]) for e in errors if e.get("type")})
        kind = f" [{', '.join(types)}]" if types else ""
        super().__init__(f"GraphQL {query_name}: {said}{kind}")


class CodingAPIError(APIError):
    """CODING's open API answered with ``Response.Error``: ``code`` is CODING's error code,
    ``request_id`` the ``RequestId`` to quote to CODING's support."""

    def __init__(self, *args: object, code: str, request_id: str | None) -> None:
        self.code = code
        self.request_id = request_id
        super().__init__(*args)  # type: ignore[arg-type]

    def _detail(self) -> str:
        return f"code {self.code}" + (f", request {self.request_id}" if self.request_id else "")


class TapdAPIError(APIError):
    """TAPD answered ``{"status": <not 1>, "info": ...}``; ``info`` says why."""


class NotSupported(FrameworkError):
    """The platform of the delivery has no such thing (commit statuses on TAPD, say)."""


class NetworkError(FrameworkError):
    """GitHub could not be reached (connection refused, reset, timed out), after the client's
    retries where retrying was safe."""
