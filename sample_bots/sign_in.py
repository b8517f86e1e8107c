"""Sign in with GitHub, AtomGit, CODING or TAPD, and see your own data, fetched with your token.

``/`` links to each platform whose sign-in is configured; once this browser has signed in to
one, the page shows the user's login and a few of their repositories (CODING: projects; TAPD:
the granted workspace's stories), fetched as that user at that moment.

Run it with ``python -m framework run sample_bots/sign_in.py``, with in ``.env`` a key for the
token store (``python -m framework users new-key``) and the OAuth client of at least one
platform::

    TOKEN_ENCRYPTION_KEY=...
    GITHUB_CLIENT_ID=Iv1.0123456789abcdef
    GITHUB_CLIENT_SECRET=...
    PUBLIC_URL=http://localhost:3000

and register ``{PUBLIC_URL}/login/github/callback`` as the app's callback URL.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from framework import App, NotSignedIn, SignedIn, SignInRequired
from framework.errors import APIError

app = App(name="sign-in")
log = logging.getLogger("sign-in")

NAMES = {"github": "GitHub", "atomgit": "AtomGit", "coding": "CODING", "tapd": "TAPD"}
SHOWN = 5
STYLE = "body { font-family: sans-serif; max-width: 40em; margin: 2em auto } li { margin: .3em 0 }"


@app.on_login
async def welcome(signed_in: SignedIn) -> None:
    """Each new sign-in, in the log."""
    log.info("%s signed in with %s", signed_in.login, NAMES[signed_in.platform])


async def their_data(platform: str, user: str) -> tuple[str, list[str]]:
    """The user's login and a few of their things, asked for with their own token."""
    client: Any = await app.user_client(platform, user)
    if platform == "coding":
        login = (await client.get("/api/me")).json()["global_key"]
        answer = await client.open_api("DescribeCodingProjects", PageNumber=1, PageSize=SHOWN)
        return login, [p["Name"] for p in answer["Data"]["ProjectList"]][:SHOWN]
    if platform == "tapd":
        login = (await client.data("GET", "/users/info"))["nick"]
        grant = await app.users.grant(platform, user)
        workspace = (grant.grant.resource or {}).get("workspace_id")
        stories = await client.data(
            "GET", "/stories", params={"workspace_id": workspace, "limit": SHOWN}
        )
        return login, [s["Story"]["name"] for s in stories][:SHOWN]
    login = (await client.get("/user")).json()["login"]
    repos = (await client.get("/user/repos", params={"per_page": SHOWN})).json()
    return login, [r["full_name"] for r in repos][:SHOWN]


def _link(platform: str, text: str) -> str:
    return f'<a href="/login/{platform}?next=/">{html.escape(text)}</a>'


async def _section(platform: str, user: str | None) -> str:
    name = NAMES[platform]
    if user is None:
        return f"<li>{_link(platform, f'Sign in with {name}')}</li>"
    try:
        login, items = await their_data(platform, user)
    except (SignInRequired, NotSignedIn):
        return f"<li>{name}: {_link(platform, 'sign in again')}</li>"
    except APIError as exc:
        return f"<li>{name}: could not fetch your data ({html.escape(str(exc))})</li>"
    listed = "".join(f"<li>{html.escape(item)}</li>" for item in items) or "<li>(none)</li>"
    return f"<li>{name}: signed in as <b>{html.escape(login)}</b><ul>{listed}</ul></li>"


@app.route("/", methods=["GET"])
async def home(request: Request) -> HTMLResponse:
    """The sign-in links, and what each signed-in platform shows of the user."""
    signed_in = app.users.signed_in(request)
    sections = [await _section(p, signed_in.get(p)) for p in app.settings.sign_in_platforms()]
    body = "".join(sections) or "<li>No sign-in is configured.</li>"
    page = (
        "<!doctype html><meta charset=utf-8><title>Sign in</title>"
        f"<style>{STYLE}</style><h1>Sign in</h1><ul>{body}</ul>"
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
