"""The minimal honest labeler: the least a correct GitHub App labeler must do per delivery.

Starlette and uvicorn with the bot's options; per delivery: read the body, verify
``X-Hub-Signature-256`` (HMAC-SHA256, constant-time compare), ``json.loads``, answer 202, then,
outside the request, one ``POST /repos/{owner}/{repo}/issues/{number}/labels`` over a shared
aiohttp connection pool with the installation token, minted once (an RS256 app JWT) and cached
until shortly before it expires. No journal, no retries, no rate-limit bookkeeping, no typed
events: a delivery in flight when the process dies is lost. That is what "minimal" costs; the
bench compares the framework's labeler with it to see what the guarantees cost.

    WEBHOOK_SECRET=... APP_ID=1 PRIVATE_KEY="$(cat key.pem)" GITHUB_API_URL=http://127.0.0.1:8002 \\
    HOST=127.0.0.1 PORT=8003 python bench/minimal_bot.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import WEBHOOK_PATH, serve, verified_payload

_API = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class Installation:
    """One installation's token, minted once and shared by every label request."""

    def __init__(self) -> None:
        self.token = ""
        self.expires = 0.0
        self.lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession, installation_id: int) -> str:
        if time.time() < self.expires - 300:
            return self.token
        async with self.lock:
            if time.time() < self.expires - 300:
                return self.token
            now = int(time.time())
            app_jwt = jwt.encode(
                {"iat": now - 60, "exp": now + 540, "iss": os.environ["APP_ID"]},
                os.environ["PRIVATE_KEY"],
                algorithm="RS256",
            )
            url = f"{_API}/app/installations/{installation_id}/access_tokens"
            headers = {**_HEADERS, "Authorization": f"Bearer {app_jwt}"}
            async with session.post(url, headers=headers) as response:
                response.raise_for_status()
                data = await response.json()
            self.token = data["token"]
            self.expires = time.time() + 3000  # GitHub's tokens last an hour
            return self.token


_installations: dict[int, Installation] = {}
_tasks: set[asyncio.Task[None]] = set()
_session: aiohttp.ClientSession | None = None


async def label(payload: dict[str, Any]) -> None:
    """Add ``needs-response`` to the new issue."""
    global _session
    if _session is None:
        _session = aiohttp.ClientSession()
    installation_id = payload["installation"]["id"]
    installation = _installations.setdefault(installation_id, Installation())
    token = await installation.get(_session, installation_id)
    url = (
        f"{_API}/repos/{payload['repository']['full_name']}"
        f"/issues/{payload['issue']['number']}/labels"
    )
    headers = {**_HEADERS, "Authorization": f"token {token}"}
    async with _session.post(url, json={"labels": ["needs-response"]}, headers=headers) as r:
        r.raise_for_status()


async def receive_delivery(request: Request) -> JSONResponse:
    """The floor's work (verify, parse, answer 202); the label is posted by a task after."""
    payload = await verified_payload(request)
    if isinstance(payload, JSONResponse):
        return payload
    if request.headers.get("x-github-event") == "issues" and payload.get("action") == "opened":
        task = asyncio.get_running_loop().create_task(label(payload))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    return JSONResponse({"ok": True}, status_code=202)


app = Starlette(routes=[Route(WEBHOOK_PATH, receive_delivery, methods=["POST"])])


if __name__ == "__main__":
    serve(app, 8003)
