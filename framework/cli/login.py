"""``python -m framework login github``: sign in on the command line (GitHub's device flow).

It prints a code and the page to enter it at, polls GitHub every ``interval`` seconds (5 more
after a ``slow_down``) until the user has entered it or the code expires, then stores the
user's token sealed, as the web sign-in does. It needs ``GITHUB_CLIENT_ID`` (or ``CLIENT_ID``),
the app's "Enable Device Flow" setting, and ``TOKEN_ENCRYPTION_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx

from framework.auth.oauth import oauth_app, provider
from framework.auth.oauth.flow import device_flow, send
from framework.auth.oauth.github import DeviceCode, GitHubOAuth
from framework.auth.user_tokens import UserTokens, open_store, sealer_from
from framework.errors import ConfigurationError
from framework.settings import load_settings


def _show(device: DeviceCode) -> None:
    print(f"Open {device.verification_uri} and enter the code {device.user_code}", flush=True)
    print("Waiting for you to enter it...", flush=True)


def run(args: argparse.Namespace) -> int:
    """Sign a user in with GitHub's device flow and store their token."""
    if args.platform != "github":
        raise ConfigurationError(
            f"the device flow is GitHub's: sign in to {args.platform} in a browser at "
            f"/login/{args.platform} of the running bot"
        )
    settings = load_settings()
    sealer = sealer_from(settings)  # refuse before the user types anything
    app = oauth_app("github", settings, secret_needed=False)
    if args.scope:
        app = type(app)(app.client_id, app.client_secret, app.web_url, app.api_url,
                        tuple(args.scope))  # fmt: skip

    async def go() -> int:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
            grant = await device_flow(app, http, _show)
            oauth = GitHubOAuth(app)
            identity = oauth.read_identity(await send(http, oauth.identity(grant)))
            store = await open_store(settings)
            try:
                tokens = UserTokens(store, sealer, lambda p: provider(p, settings), http)
                await tokens.save("github", identity, grant)
            finally:
                await store.close()
        print(f"Signed in as {identity.login} (GitHub user {identity.user_id}).")
        return 0

    return asyncio.run(go())


def add_parser(commands: Any) -> None:
    """``login`` on the top-level parser."""
    login = commands.add_parser("login", help="sign in on the command line", description=__doc__)
    login.add_argument("platform", help="github (its device flow; elsewhere, the web sign-in)")
    login.add_argument("--scope", action="append", help="a scope to ask for (OAuth apps)")
    login.set_defaults(func=run, host=None, port=None)
