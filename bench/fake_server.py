"""The fake GitHub API for the bench, in its own process, with a stats route for the bench.

Wraps :class:`framework.testing.FakeGitHub` (unchanged) in a Starlette app that adds
``GET /__bench/stats``: how many requests the fake answered, by kind and status. The fake
records every call it receives; the wrapper clears that record every few thousand requests so
a long run does not grow the process without bound (the counts live here instead). The
installation's rate limit is raised so a run of many thousand labels is not refused with 403.

    BENCH_APP_ID=1 BENCH_PUBLIC_KEY="$(cat pub.pem)" BENCH_INSTALLATION_ID=42 \\
    BENCH_REPOSITORY=Codertocat/Hello-World PORT=8002 python bench/fake_server.py
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framework.testing import FakeGitHub

STATS_PATH = "/__bench/stats"
LABELS_PATH = "/__bench/labels"
CLEAR_CALLS_EVERY = 2000
_LABELS = re.compile(r"^/repos/[^/]+/[^/]+/issues/(\d+)/labels$")
_MINT = re.compile(r"^/app/installations/\d+/access_tokens$")


def _kind(method: str, path: str) -> str:
    if method == "POST" and _LABELS.match(path):
        return "label"
    if method == "POST" and _MINT.match(path):
        return "mint"
    return "other"


class CountingFake:
    """ASGI wrapper counting the fake's answers by kind (label, mint, other) and status."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        self.app: ASGIApp = fake.app
        self.counts: Counter[tuple[str, int]] = Counter()
        self.label_times: dict[int, list[float]] = {}
        """When each issue got a label (wall clock, 2xx answers only), until :meth:`forget`."""
        self._since_clear = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            kind = _kind(scope["method"], scope["path"])
            self.counts[(kind, status)] += 1
            if kind == "label" and 200 <= status < 300:
                number = int(_LABELS.match(scope["path"]).group(1))  # type: ignore[union-attr]
                self.label_times.setdefault(number, []).append(time.time())
            self._since_clear += 1
            if self._since_clear >= CLEAR_CALLS_EVERY:
                self.fake.clear_calls()
                self._since_clear = 0

    def stats(self) -> dict[str, object]:
        """Counts so far: ``labels_ok`` (2xx label POSTs), failures, mints, and by status."""
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, status), n in sorted(self.counts.items()):
            by_kind.setdefault(kind, {})[str(status)] = n
        ok = {kind: 0 for kind in ("label", "mint", "other")}
        failed = dict(ok)
        for (kind, status), n in self.counts.items():
            (ok if 200 <= status < 300 else failed)[kind] += n
        return {
            "requests": sum(self.counts.values()),
            "labels_ok": ok["label"],
            "labels_failed": failed["label"],
            "mints_ok": ok["mint"],
            "mints_failed": failed["mint"],
            "by_kind": by_kind,
        }


def build() -> Starlette:
    """The fake GitHub of the bench, configured from the environment."""
    app_id = int(os.environ["BENCH_APP_ID"])
    installation_id = int(os.environ["BENCH_INSTALLATION_ID"])
    repository = os.environ["BENCH_REPOSITORY"]
    fake = FakeGitHub(app_id=app_id, public_key=os.environ["BENCH_PUBLIC_KEY"])
    fake.add_installation(
        installation_id, account=repository.split("/")[0], repositories=[repository]
    )
    fake.set_rate_limit(installation_id, remaining=10**12, limit=10**12)
    counting = CountingFake(fake)

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse(counting.stats())

    async def labels(request: Request) -> JSONResponse:
        """When each issue was labelled; ``DELETE`` forgets them (between bursts)."""
        times = counting.label_times
        if request.method == "DELETE":
            counting.label_times = {}
        return JSONResponse({str(number): at for number, at in times.items()})

    return Starlette(
        routes=[
            Route(STATS_PATH, stats, methods=["GET"]),
            Route(LABELS_PATH, labels, methods=["GET", "DELETE"]),
            Mount("/", counting),
        ]
    )


def main() -> None:
    """Serve the fake on ``HOST:PORT`` (loopback)."""
    uvicorn.run(
        build(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
