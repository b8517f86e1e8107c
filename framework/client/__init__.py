"""Calling a platform's API: the REST client, its pure response decisions, its limits.

- :mod:`~framework.client.rest`: the client handed to handlers (``ctx.github``) over one
  shared connection pool, with retries, rate-limit waits and ETag revalidation;
- :mod:`~framework.client.lean`: the lean request path under it, straight to the pool's
  aiohttp session for what the client sends most;
- :mod:`~framework.client.responses`: pure functions over (status, headers, body): the typed
  error, how long to wait, whether a request may be repeated, a page's items;
- :mod:`~framework.client.limits`: what the client keeps between requests, per installation.
"""

from framework.client.rest import (
    AppAuth,
    BlockingClient,
    Credential,
    CredentialAuth,
    GitHubClient,
    InstallationAuth,
)

__all__ = [
    "AppAuth",
    "BlockingClient",
    "Credential",
    "CredentialAuth",
    "GitHubClient",
    "InstallationAuth",
]
