"""``python -m framework users``: the users who signed in, and their stored tokens.

python -m framework users list
python -m framework users revoke github octocat
python -m framework users new-key

``revoke`` deletes the stored tokens here (the user signs in again to use the bot as
themselves); on GitHub it also deletes the user's grant of the app (``--here-only`` keeps it).
On the other platforms the user withdraws the grant on the platform's own settings page.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from framework.auth.oauth import oauth_app
from framework.auth.oauth.base import OAuthError, SignInRequired
from framework.auth.oauth.flow import send
from framework.auth.oauth.github import delete_grant_call
from framework.auth.sealing import Sealer, new_key
from framework.auth.user_tokens import StoredUser, open_grant, open_store, sealer_from
from framework.errors import ConfigurationError
from framework.settings import Settings, load_settings


def state_of(row: StoredUser, sealer: Sealer | None, now: float) -> str:
    """What a row's grant is good for, in a word or two (never its tokens)."""
    if row.needs_sign_in:
        return "needs sign-in"
    if sealer is None:
        return "sealed"
    try:
        grant = open_grant(sealer, row).grant
    except SignInRequired:
        return "unreadable (key)"
    if grant.expires_at is not None and grant.expires_at <= now and not grant.refreshable(now):
        return "expired"
    return "ok"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


async def list_users(args: argparse.Namespace) -> int:
    """Every stored user: platform, id, login, when the access token expires, state."""
    settings = load_settings()
    try:
        sealer: Sealer | None = sealer_from(settings)
    except ConfigurationError:
        sealer = None  # the list still shows who is stored
    store = await open_store(settings)
    try:
        rows = await store.rows()
    finally:
        await store.close()
    print(f"{'PLATFORM':<9} {'USER ID':<14} {'LOGIN':<24} {'EXPIRES (UTC)':<17} STATE")
    now = time.time()
    for row in rows:
        print(
            f"{row.platform:<9} {row.user_id:<14} {row.login:<24} "
            f"{_when(row.expires_at):<17} {state_of(row, sealer, now)}"
        )
    if not rows:
        print("(nobody has signed in)")
    return 0


async def revoke(args: argparse.Namespace) -> int:
    """Delete a user's stored tokens (by user id or login); on GitHub, withdraw the user's
    authorization of the app too."""
    settings = load_settings()
    store = await open_store(settings)
    try:
        row = await store.get(args.platform, args.user)
        if row is None:
            print(f"error: no {args.platform} user {args.user} is stored", file=sys.stderr)
            return 1
        if args.platform == "github" and not args.here_only:
            print(await _withdraw_on_github(settings, row))
        await store.delete(args.platform, row.user_id)
    finally:
        await store.close()
    print(f"Deleted the {args.platform} tokens of {row.login} here.")
    return 0


async def _withdraw_on_github(settings: Settings, row: StoredUser) -> str:
    """Ask GitHub to delete the user's grant; say what came of it (never the token)."""
    try:
        grant = open_grant(sealer_from(settings), row).grant
        app = oauth_app("github", settings)
    except (ConfigurationError, SignInRequired) as exc:
        return f"Not withdrawn on GitHub ({exc})."
    async with httpx.AsyncClient(timeout=30.0) as http:
        try:
            answer = await send(http, delete_grant_call(app, grant.access_token))
        except OAuthError as exc:
            return f"Not withdrawn on GitHub: {exc}."
    if answer.status == 204:
        return f"GitHub withdrew {row.login}'s authorization of the app."
    return f"Not withdrawn on GitHub: it answered HTTP {answer.status} (the token may be dead)."


async def make_key(args: argparse.Namespace) -> int:
    """Print a new TOKEN_ENCRYPTION_KEY (to rotate: NEW,OLD)."""
    print(new_key())
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one ``users`` command."""
    return int(asyncio.run(args.command(args)))


def add_parser(commands: Any) -> None:
    """``users`` and its sub-commands, on the top-level parser."""
    top = commands.add_parser(
        "users", help="list or revoke signed-in users' tokens", description=__doc__.split("\n")[0]
    )
    top.set_defaults(func=run, host=None, port=None)
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help=list_users.__doc__)
    listing.set_defaults(command=list_users)
    gone = actions.add_parser("revoke", help=revoke.__doc__)
    gone.add_argument("platform", choices=["github", "atomgit", "coding", "tapd"])
    gone.add_argument("user", help="the user's id or login")
    gone.add_argument(
        "--here-only", action="store_true", help="keep the grant on GitHub; delete it here only"
    )
    gone.set_defaults(command=revoke)
    key = actions.add_parser("new-key", help=make_key.__doc__)
    key.set_defaults(command=make_key)
