"""The command line: start-up refusals, `receive` on a saved payload, `run` with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from framework.testing import FakeGitHub
from tests.support import PEM, REPO, ROOT, issue_opened, signed, start_bot

LABELER = str(ROOT / "sample_bots" / "labeler.py")
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


def test_help_everywhere(env: dict[str, str], tmp_path: Path) -> None:
    for args in ([], ["run"], ["receive"]):
        result = cli(*args, "--help", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_run_refuses_to_start_with_one_line_per_missing_setting(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = cli("run", LABELER, env=env | {"ENVIRONMENT": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: cannot start:"
    assert [line.split()[0] for line in lines[1:]] == ["WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY"]


def test_run_reports_an_invalid_port_together_with_the_missing_settings(
    env: dict[str, str], tmp_path: Path
) -> None:
    wrong = {"PORT": "abc", "APP_ID": "abc", "WEBHOOK_SECRET": "  ", "PRIVATE_KEY_PATH": "no.pem"}
    result = cli("run", LABELER, env=env | wrong, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: cannot start:"
    named = [line.split()[0].rstrip(":") for line in lines[1:]]
    assert sorted(named) == ["APP_ID", "PORT", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET"]
    assert "cannot read no.pem" in result.stderr


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
    logged = [json.loads(line) for line in result.stderr.splitlines()]
    [entry] = [e for e in logged if "failed" in e["message"] and "handler" in e]
    assert any(e["message"] == "issues.opened: 1 handler(s) ran, 1 failed" for e in logged)
    assert entry["level"] == "error" and entry["handler"] == "needs_response"
    assert "access_tokens -> 404" in entry["error"]
    assert PEM.splitlines()[1] not in result.stderr


def test_run_serves_and_drains_on_sigterm(tmp_path: Path, fake: FakeGitHub, fake_url: str) -> None:
    bot, base = start_bot(LABELER, fake_url, tmp_path)
    try:
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
    assert bot.returncode == 0, output  # a clean drain is a clean exit
    assert "Application shutdown complete" in output
    assert fake.issue_labels(REPO, 21) == ["needs-response"]


def test_the_framework_console_script_is_installed(env: dict[str, str], tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("framework")
    assert script.exists(), "pip install should have installed the `framework` command"
    result = subprocess.run(
        [str(script), "--help"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "run" in result.stdout and "receive" in result.stdout


def test_run_without_an_app_serves_the_setup_page(fake_url: str, tmp_path: Path) -> None:
    blank = {"APP_ID": "", "PRIVATE_KEY": "", "WEBHOOK_SECRET": ""}
    process, base = start_bot(LABELER, fake_url, tmp_path, **blank)
    try:
        page = httpx.get(base + "/")
        assert page.status_code == 200 and "Register GitHub App" in page.text
        delivery = httpx.post(base + "/api/github/webhooks", content=b"{}")
        assert delivery.status_code == 503
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "open http://localhost:" in output


def test_keys_and_dot_env_are_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [".env", "my-app.2026-01-01.private-key.pem", "sub/dir/key.pem"]
    result = subprocess.run(
        ["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert result.stdout.split() == paths


def test_help_shows_no_hidden_command_and_no_markup(env: dict[str, str], tmp_path: Path) -> None:
    commands = [[], ["run"], ["receive"], ["tunnel"], ["deliveries"]]
    commands += [["deliveries", a] for a in ("list", "show", "replay", "purge", "sync")]
    for args in commands:
        result = cli(*args, "--help", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "SUPPRESS" not in text and not re.search(r"^\s+handle\b", text, re.M), args
        assert "``" not in text and ":func:" not in text, (args, text)


def test_receive_reports_a_mistyped_event_and_an_event_no_handler_wants(
    env: dict[str, str], tmp_path: Path
) -> None:
    payload = tmp_path / "issue.json"
    payload.write_text(json.dumps(issue_opened(11) | {"action": "closed"}))
    typo = cli("receive", "-e", "issue", "-p", str(payload), LABELER, env=env, cwd=tmp_path)
    assert typo.returncode == 2
    assert "did you mean 'issues'?" in typo.stderr
    dotted = cli("receive", "-e", "issues.closed", "-p", str(payload), LABELER, env=env,
                 cwd=tmp_path)  # fmt: skip
    assert dotted.returncode == 2 and "the action comes from the payload" in dotted.stderr
    unwanted = cli("receive", "-e", "issues", "-p", str(payload), LABELER, env=env, cwd=tmp_path)
    assert unwanted.returncode == 3
    assert "nothing ran: no handler" in unwanted.stderr and "wants issues.closed" in unwanted.stderr
    assert "it handles: issues.opened" in unwanted.stderr
