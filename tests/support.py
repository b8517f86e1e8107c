"""What the end-to-end tests share: real payloads, signing, and starting a bot process."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from framework import App
from framework.testing import FakeGitHub, serve_async
from framework.testing.bot import _OwnSettings
from framework.testing.fake_github import generate_app_key
from framework.webhooks.signature import sign
from sample_bots.labeler import needs_response

ROOT = Path(__file__).parent.parent
PAYLOADS = ROOT / "tests" / "fixtures" / "payloads"
SECRET = "e2e-secret"
APP_ID = 123
INSTALLATION = 4242
REPO = "Codertocat/Hello-World"
PEM, PUBLIC = generate_app_key("e2e")


def issue_opened(number: int = 1, installation: int | None = INSTALLATION) -> dict[str, Any]:
    """The real issues.opened payload, as an app receives it (with its installation)."""
    payload: dict[str, Any] = json.loads((PAYLOADS / "issues.opened.json").read_text())
    payload["issue"]["number"] = number
    if installation is not None:
        payload["installation"] = {"id": installation, "node_id": "MDIzOkludGVncmF0aW9u"}
    return payload


def signed(
    event: str, payload: dict[str, Any], delivery: str, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    """A delivery's body and headers, signed as GitHub signs them."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, secret),
        "User-Agent": "GitHub-Hookshot/e2e",
    }


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STARTED: list[subprocess.Popen[str]] = []
"""Every bot :func:`start_bot` started: the conftest kills those still running after each test,
so a test that fails half-way leaves no bot behind (to load the machine or hold a port)."""


def stop_leftover_bots() -> int:
    """Kill the process group of each started bot still running; return how many there were."""
    left = 0
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            left += 1
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    return left


def start_bot(bot: str, fake_url: str, cwd: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m framework run BOT`` against the fake; returns it once /healthz answers."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    environment |= {
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": PEM,
        "WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": fake_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "framework", "run", bot],
        env=environment,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a test can kill bot and children
    )
    STARTED.append(process)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise AssertionError("the bot did not start:\n" + (process.communicate()[0] or ""))
        time.sleep(0.05)


class RedisServer:
    """A real redis-server on a free loopback port, in a directory of the test's."""

    def __init__(self, directory: Path, port: int, appendonly: bool) -> None:
        self.directory = directory
        self.port = port
        self.appendonly = appendonly
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, directory: Path, appendonly: bool = False) -> RedisServer:
        """Start one; fails with the reason if redis-server is missing or does not answer."""
        server = cls(directory, free_port(), appendonly)
        server.restart()
        return server

    def restart(self) -> None:
        """(Re)start the server on the same port and directory."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly",
             "yes" if self.appendonly else "no", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class UnregisteredBot:
    """A bot served without app credentials (the setup page), and the fake GitHub."""

    app: App
    fake: FakeGitHub
    github_url: str
    url: str
    env_file: Path


@asynccontextmanager
async def unregistered_bot(directory: Path, **settings: Any) -> AsyncIterator[UnregisteredBot]:
    """The labeler, served on loopback with no app yet, against a fake GitHub (web and API)
    that has installation 42 on octo-org/hello for whichever app registers."""
    fake = FakeGitHub(app_id=999, public_key=generate_app_key("not-registered")[1])
    fake.add_installation(42, account="octo-org", repositories=["octo-org/hello"])
    app = App(name="labeler")
    app.on("issues.opened")(needs_response)  # the sample labeler's handler, on an App of its own

    env_file = directory / ".env"
    async with serve_async(fake.app) as github_url:
        values = {
            "github_api_url": github_url,
            "github_web_url": github_url,
            "setup_env_file": env_file,
            "journal_path": directory / "deliveries.sqlite3",
            "journal_sync": "normal",
            "retry_max_attempts": 1,
            "shutdown_grace_seconds": 5,
        }
        app.configure(_OwnSettings(**(values | settings)))
        async with serve_async(app) as url:
            yield UnregisteredBot(app, fake, github_url, url, env_file)


def form_of(page: str) -> tuple[str, str]:
    """The register form's action and manifest in a setup page's HTML."""
    action = re.search(r'<form method="post" action="([^"]+/settings/apps/new[^"]*)"', page)
    manifest = re.search(r'name="manifest" value="([^"]+)"', page)
    assert action is not None and manifest is not None, page
    return html.unescape(action[1]), html.unescape(manifest[1])
