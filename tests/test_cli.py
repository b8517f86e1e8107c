"""The command line: start-up refusals, `receive` on a saved payload, `run` with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from framework.testing import FakeGitHub, serve
from framework.testing.fake_github import generate_app_key
from tests.test_end_to_end import INSTALLATION, REPO, SECRET, issue_opened, signed

ROOT = Path(__file__).parent.parent
LABELER = str(ROOT / "sample_bots" / "labeler.py")
PEM, PUBLIC = generate_app_key("e2e")
SETTINGS = [
    "APP_ID",
    "CLIENT_ID",
    "PRIVATE_KEY",
    "PRIVATE_KEY_PATH",
    "WEBHOOK_SECRET",
    "GITHUB_API_URL",
    "PORT",
    "HOST",
    "LOG_LEVEL",
    "LOG_FORMAT",
]


def cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    clean["PYTHONPATH"] = str(ROOT)
    return clean


@pytest.fixture
def fake() -> FakeGitHub:
    fake = FakeGitHub(app_id=123, public_key=PUBLIC)
    fake.add_installation(INSTALLATION, account="Codertocat", repositories=[REPO])
    return fake


@pytest.fixture
def fake_url(fake: FakeGitHub) -> Iterator[str]:
    with serve(fake.app) as url:
        yield url


def test_help_everywhere(env: dict[str, str], tmp_path: Path) -> None:
    for args in ([], ["run"], ["receive"]):
        result = cli(*args, "--help", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_run_refuses_to_start_with_one_line_per_missing_setting(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = cli("run", LABELER, env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: cannot start:"
    assert [line.split()[0] for line in lines[1:]] == ["WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY"]


def test_run_names_a_malformed_key_and_never_prints_it(env: dict[str, str], tmp_path: Path) -> None:
    body = PEM.strip().splitlines()
    broken = "\n".join([body[0], *body[1:5], "!!!!", *body[6:]])
    env |= {"APP_ID": "1", "WEBHOOK_SECRET": "s", "PRIVATE_KEY": broken}
    result = cli("run", LABELER, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "PRIVATE_KEY is not a valid PEM private key" in result.stderr
    for line in body[1:-1]:
        assert line not in result.stderr + result.stdout


def test_invalid_values_are_reported_by_name(env: dict[str, str], tmp_path: Path) -> None:
    result = cli("run", LABELER, env=env | {"PORT": "http"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "PORT:" in result.stderr


def test_a_missing_bot_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    env |= {"APP_ID": "1", "WEBHOOK_SECRET": "s", "PRIVATE_KEY": PEM}
    assert "no bot file at nope.py" in cli("run", "nope.py", env=env, cwd=tmp_path).stderr
    assert "no module named 'nope_mod'" in cli("run", "nope_mod", env=env, cwd=tmp_path).stderr


def test_receive_runs_the_labeler_once_on_a_saved_payload(
    env: dict[str, str], tmp_path: Path, fake: FakeGitHub, fake_url: str
) -> None:
    payload = tmp_path / "issue.json"
    payload.write_text(json.dumps(issue_opened(11)))
    env |= {"APP_ID": "123", "PRIVATE_KEY": PEM, "GITHUB_API_URL": fake_url}
    result = cli(
        "receive",
        "--event",
        "issues",
        "--payload",
        str(payload),
        "sample_bots.labeler",
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert fake.issue_labels(REPO, 11) == ["needs-response"]


def test_receive_exits_non_zero_when_a_handler_fails(
    env: dict[str, str], tmp_path: Path, fake_url: str
) -> None:
    payload = tmp_path / "issue.json"
    payload.write_text(json.dumps(issue_opened(11, installation=999)))  # not installed
    env |= {"APP_ID": "123", "PRIVATE_KEY": PEM, "GITHUB_API_URL": fake_url, "LOG_FORMAT": "json"}
    result = cli("receive", "-e", "issues", "-p", str(payload), LABELER, env=env, cwd=tmp_path)
    assert result.returncode == 1
    [entry] = [json.loads(line) for line in result.stderr.splitlines() if "failed" in line]
    assert entry["level"] == "error" and entry["handler"] == "needs_response"
    assert "access_tokens -> 404" in entry["error"]
    assert PEM.splitlines()[1] not in result.stderr


def test_run_serves_and_drains_on_sigterm(
    env: dict[str, str], tmp_path: Path, fake: FakeGitHub, fake_url: str
) -> None:
    port = _free_port()
    env |= {
        "APP_ID": "123",
        "PRIVATE_KEY": PEM,
        "WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": fake_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    bot = subprocess.Popen(
        [sys.executable, "-m", "framework", "run", LABELER],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the bot did not start"
            time.sleep(0.05)
        body, headers = signed("issues", issue_opened(21), "d-cli")
        assert (
            httpx.post(base + "/api/github/webhooks", content=body, headers=headers).status_code
            == 202
        )
        bot.send_signal(signal.SIGTERM)
        output, _ = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit says "SIGTERM".
    assert bot.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert fake.issue_labels(REPO, 21) == ["needs-response"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
