"""Signing users in with OAuth, one module per platform; each step a pure function.

:mod:`~framework.auth.oauth.base` holds the shapes and the rules every platform shares (the
signed ``state``, redirect URIs, expiry formats); :mod:`~framework.auth.oauth.flow` sends the
steps' requests. :func:`provider` builds a platform's steps from the settings.

>>> from framework.settings import Settings
>>> provider("tapd", Settings(tapd_client_id="demo", tapd_client_secret="s", _env_file=None)).name
'tapd'
"""

from __future__ import annotations

from framework.auth.oauth.atomgit import AtomGitOAuth
from framework.auth.oauth.base import OAuthApp, Provider
from framework.auth.oauth.coding import DEFAULT_WEB_URL, CodingOAuth
from framework.auth.oauth.github import GitHubOAuth
from framework.auth.oauth.tapd import TapdOAuth
from framework.errors import ConfigurationError
from framework.settings import Settings

PLATFORMS = ("github", "atomgit", "coding", "tapd")


def _scopes(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(",", " ").split() if part)


def oauth_app(platform: str, settings: Settings, *, secret_needed: bool = True) -> OAuthApp:
    """A platform's OAuth app from the settings; a clear error naming what is not set."""
    s = settings
    if platform not in PLATFORMS:
        raise ConfigurationError(f"{platform!r} has no sign-in: use one of {', '.join(PLATFORMS)}")
    client = s.oauth_client(platform)
    if client is None:
        client_id = s.github_client_id or s.client_id if platform == "github" else None
        if secret_needed or not client_id:
            name = platform.upper()
            raise ConfigurationError(
                f"{name}_CLIENT_ID and {name}_CLIENT_SECRET are not set: {platform} sign-in "
                "needs the OAuth client of the app"
            )
        client = (client_id, "")
    client_id, secret = client
    if platform == "github":
        return OAuthApp(client_id, secret, s.github_web_url, s.github_api_url,
                        _scopes(s.github_oauth_scopes))  # fmt: skip
    if platform == "atomgit":
        return OAuthApp(client_id, secret, s.atomgit_web_url, s.atomgit_api_url)
    if platform == "coding":
        return OAuthApp(
            client_id,
            secret,
            s.coding_web_url or DEFAULT_WEB_URL,
            s.coding_open_api_url,
            _scopes(s.coding_oauth_scopes),
            {"team": s.coding_team} if s.coding_team else {},
        )
    return OAuthApp(client_id, secret, s.tapd_web_url, s.tapd_api_url,
                    _scopes(s.tapd_oauth_scopes), {"auth_by": s.tapd_auth_by})  # fmt: skip


def provider(platform: str, settings: Settings) -> Provider:
    """The OAuth steps of ``platform`` as configured."""
    app = oauth_app(platform, settings)
    if platform == "github":
        return GitHubOAuth(app)
    if platform == "atomgit":
        return AtomGitOAuth(app)
    if platform == "coding":
        return CodingOAuth(app)
    return TapdOAuth(app)


__all__ = ["PLATFORMS", "OAuthApp", "Provider", "oauth_app", "provider"]
