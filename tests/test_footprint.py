"""A bot loads only what it uses: the libraries of pages, sign-in, Redis, tracing and the HTTP
client's pool wait until first needed (issue 14's footprint; bench/footprint.py measures it).

Each check runs in a fresh interpreter, since the test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT

LOADED_LATER = (
    "aiohttp",  # the connection pool, made for the first request
    "httpx_aiohttp",
    "jwt",  # the first app JWT
    "jinja2",  # the first page shown
    "yaml",  # the first configuration file or app.yml read
    "ctypes",  # handler processes only
    "websockets",  # never: a bot serves no WebSocket
    "redis",  # REDIS_URL only
    "opentelemetry",  # OTEL_* only
)
IMPORT_BUDGET_MIB = 65
"""Resident memory after ``import framework``: 57 MiB measured (73.5 before the imports above
were deferred; aiohttp alone is ~10). A guard against heavy imports coming back, not a
measurement: bench/footprint.py measures."""


def run_python(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter from the repository; the JSON it printed last."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_importing_the_framework_loads_none_of_what_waits_for_first_use() -> None:
    found = run_python(
        "import json, sys\n"
        "import framework, framework.app, framework.cli\n"
        f"names = {LOADED_LATER!r}\n"
        "print(json.dumps({'loaded': [n for n in names if n in sys.modules]}))\n"
    )
    assert found == {"loaded": []}


def test_importing_the_framework_stays_within_its_memory_budget() -> None:
    found = run_python(
        "import json\n"
        "import framework\n"
        "status = open('/proc/self/status').read()\n"
        "kib = int(next(l for l in status.splitlines() if l.startswith('VmRSS:')).split()[1])\n"
        "print(json.dumps({'rss_mib': kib / 1024}))\n"
    )
    rss = found["rss_mib"]
    assert isinstance(rss, float) and rss <= IMPORT_BUDGET_MIB, found


def test_a_served_bot_handles_a_delivery_without_the_pages_and_loads_them_for_the_first() -> None:
    found = run_python(
        """
import asyncio, json, sys
import httpx
from framework.testing import payloads, run_bot
from sample_bots.labeler import app

async def main():
    async with run_bot(app) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=7))
        async with httpx.AsyncClient() as client:
            healthz = await client.get(bot.base_url + "/healthz")
            before = [name for name in ("jinja2", "yaml") if name in sys.modules]
            page = await client.get(bot.base_url + "/")
        print(json.dumps({
            "delivery": result.status,
            "labels": bot.fake.issue_labels("octo-org/hello", 7),
            "healthz": healthz.status_code,
            "loaded before the page": before,
            "page": page.status_code,
            "jinja2 after the page": "jinja2" in sys.modules,
        }))

asyncio.run(main())
"""
    )
    assert found == {
        "delivery": "done",
        "labels": ["needs-response"],
        "healthz": 200,
        "loaded before the page": [],
        "page": 200,
        "jinja2 after the page": True,
    }
