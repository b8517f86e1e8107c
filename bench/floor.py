"""The floor of honest work: a bare Starlette receiver that verifies the HMAC and parses JSON.

Nothing else: no delivery headers, no queue, no handlers. Whatever receives GitHub webhooks
must at least do this much per delivery, so its throughput is the ceiling the labeler is
compared against. Served by uvicorn with the bot's options: one worker, loop and HTTP
implementation auto-selected (uvloop/httptools when installed), access log off, log level
warning.

    WEBHOOK_SECRET=... HOST=127.0.0.1 PORT=8001 python bench/floor.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

WEBHOOK_PATH = "/api/github/webhooks"
_SECRET = os.environ.get("WEBHOOK_SECRET", "").encode()


async def verified_payload(request: Request) -> dict[str, Any] | JSONResponse:
    """The delivery's payload, once ``X-Hub-Signature-256`` is verified over the raw body and
    the body parsed; or the answer refusing it (401, 400)."""
    body = await request.body()
    expected = "sha256=" + hmac.new(_SECRET, body, hashlib.sha256).hexdigest()
    given = request.headers.get("x-hub-signature-256", "")
    if not hmac.compare_digest(expected.encode(), given.encode("latin-1")):
        return JSONResponse({"error": "the signature does not match"}, status_code=401)
    try:
        payload = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(payload, dict):
        return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
    return payload


async def receive_delivery(request: Request) -> JSONResponse:
    """Verify, parse, answer 202."""
    payload = await verified_payload(request)
    if isinstance(payload, JSONResponse):
        return payload
    return JSONResponse({"ok": True}, status_code=202)


app = Starlette(routes=[Route(WEBHOOK_PATH, receive_delivery, methods=["POST"])])


def serve(served: Starlette, default_port: int) -> None:
    """Serve ``served`` on ``HOST:PORT`` with the options ``python -m framework run`` uses."""
    if not _SECRET:
        raise SystemExit("WEBHOOK_SECRET is not set")
    uvicorn.run(
        served,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", str(default_port))),
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    serve(app, 8001)
