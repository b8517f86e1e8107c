"""Test helpers: a strict fake of GitHub's REST API and a loopback server to run apps on.

>>> from framework.testing import FakeGitHub, generate_app_key, serve
>>> private_pem, public_key = generate_app_key()
>>> fake = FakeGitHub(app_id=1234, public_key=public_key)
>>> fake.add_installation(42, account="octo-org", repositories=["octo-org/hello"])
>>> with serve(fake.app) as github_url:  # doctest: +SKIP
...     ...  # run the bot against github_url, then assert on fake.calls, fake.mint_count(42)
"""

from framework.testing.fake_github import (
    API_VERSIONS,
    ApiRequest,
    AuthKind,
    FakeGitHub,
    RecordedCall,
    Reply,
    RouteHandler,
    TokenMint,
    generate_app_key,
)
from framework.testing.server import serve, serve_async

__all__ = [
    "API_VERSIONS",
    "ApiRequest",
    "AuthKind",
    "FakeGitHub",
    "RecordedCall",
    "Reply",
    "RouteHandler",
    "TokenMint",
    "generate_app_key",
    "serve",
    "serve_async",
]
