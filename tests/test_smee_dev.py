"""``smee_dev.sh`` end to end: a channel made at a local smee (FakeSmee) and saved to .env,
a delivery posted to it reaches the bot's handler, Ctrl-C or a dead child stops both."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from framework.testing import FakeSmee, serve
from framework.webhooks.signature import sign
from tests.support import APP_ID, PEM, ROOT, SECRET, free_port

SCRIPT = ROOT / "smee_dev.sh"
BOT = ROOT / "tests" / "bots" / "recording_bot.py"


def test_the_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck; .ci/run does)")
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


@pytest.fixture
def smee() -> Iterator[tuple[FakeSmee, str]]:
    fake = FakeSmee(ping_interval=1.0)
    with serve(fake.app) as base_url:
        yield fake, base_url


def start(directory: Path, smee_url: str) -> tuple[subprocess.Popen[str], Path]:
    (directory / "app.pem").write_text(PEM)
    environment = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    environment |= {
        "SMEE_URL": smee_url,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "PORT": str(free_port()),
        "RECORD_TO": str(directory / "seen.txt"),
        "HANDLER_PROCESSES": "0",
        "GITHUB_API_URL": "http://127.0.0.1:9",  # never called: the handler only records
    }
    environment.pop("WEBHOOK_PROXY_URL", None)
    log = directory / "smee_dev.log"
    process = subprocess.Popen(
        ["bash", str(SCRIPT), str(BOT)],
        cwd=directory,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # SIGINT goes to the script, as Ctrl-C's would
    )
    return process, log


def children(log: Path) -> list[int]:
    match = re.search(r"\(pid (\d+)\), tunnel \(pid (\d+)\)", log.read_text())
    assert match, log.read_text()
    return [int(match[1]), int(match[2])]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def post_delivery(channel: str) -> str:
    delivery_id = str(uuid.uuid4())
    body = b'{"action":"opened","issue":{"number":1,"title":"\\u001B caf\xc3\xa9 <b> & a/b"}}'
    response = httpx.post(channel, content=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery_id, "X-Hub-Signature-256": sign(body, SECRET),
    })  # fmt: skip
    assert response.status_code == 200
    return delivery_id


def test_a_channel_is_made_saved_and_forwarded_and_ctrl_c_stops_both(
    tmp_path: Path, smee: tuple[FakeSmee, str]
) -> None:
    fake, base_url = smee
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"# my bot\nAPP_ID={APP_ID}\nPRIVATE_KEY_PATH=app.pem\nWEBHOOK_SECRET={SECRET}\n"
        "WEBHOOK_PROXY_URL=\nLOG_LEVEL=info"  # no newline at the end
    )
    process, log = start(tmp_path, base_url)
    try:
        until(lambda: fake.open_streams == 1 and "webhook URL" in log.read_text())
        saved = env_file.read_text()
        channel = re.search(r"^WEBHOOK_PROXY_URL=(\S+)$", saved, re.MULTILINE)
        assert channel and channel[1].startswith(base_url + "/"), saved
        assert saved.replace(channel[0], "WEBHOOK_PROXY_URL=") == (
            f"# my bot\nAPP_ID={APP_ID}\nPRIVATE_KEY_PATH=app.pem\nWEBHOOK_SECRET={SECRET}\n"
            "WEBHOOK_PROXY_URL=\nLOG_LEVEL=info\n"
        )
        assert channel[1] in log.read_text()  # printed, to paste into the app's settings
        seen = tmp_path / "seen.txt"
        until(lambda: fake.open_streams == 1)
        delivery_id = post_delivery(channel[1])
        until(lambda: seen.exists() and delivery_id in seen.read_text())
        pids = children(log)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert all(gone(pid) for pid in pids), log.read_text()
    assert "stopping" in log.read_text()


def test_a_saved_channel_is_reused_and_a_dead_tunnel_stops_the_bot(
    tmp_path: Path, smee: tuple[FakeSmee, str]
) -> None:
    fake, base_url = smee
    channel = f"{base_url}/{fake.new_channel()}"
    (tmp_path / ".env").write_text(
        f"APP_ID={APP_ID}\nPRIVATE_KEY_PATH=app.pem\nWEBHOOK_SECRET={SECRET}\n"
        f"WEBHOOK_PROXY_URL='{channel}'\n"
    )
    process, log = start(tmp_path, base_url + "/unused")
    try:
        until(lambda: fake.open_streams == 1 and "webhook URL" in log.read_text())
        assert f"webhook URL for your GitHub App: {channel}" in log.read_text()
        bot, tunnel = children(log)
        os.kill(tunnel, signal.SIGKILL)
        assert process.wait(timeout=60) == 128 + signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert gone(bot) and gone(tunnel)
    assert "the tunnel stopped" in log.read_text()
