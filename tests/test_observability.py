"""Logs, metrics and redaction, seen from outside: a real bot process with its handler process,
deliveries signed as GitHub signs them, the output read as an operator's collector reads it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from framework.testing import FakeGitHub
from tests.support import PEM, ROOT, SECRET, issue_opened, signed, start_bot

BOT = str(ROOT / "tests" / "bots" / "observed.py")
HOOK = "/api/github/webhooks"
LABELS_ROUTE = "/repos/{owner}/{repo}/issues/{number}/labels"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str, **headers: str) -> Samples:
    """``/metrics``, parsed by prometheus-client's own parser: (name, labels) -> value."""
    response = httpx.get(base + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(base: str, name: str, expected: float, **labels: str) -> Samples:
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(base)
        if value(samples, name, **labels) >= expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def wait_handled(base: str, outcome: str, count: int = 1) -> Samples:
    """Wait until ``count`` issues deliveries were handled with ``outcome``; the samples."""
    name = "framework_deliveries_handled_total"
    return wait_for(base, name, count, platform="github", event="issues", outcome=outcome)


def closed(number: int) -> dict[str, Any]:
    payload = issue_opened(number)
    payload["action"] = "closed"
    payload["issue"]["state"] = "closed"
    return payload


def post(
    base: str, event: str, payload: dict[str, Any], delivery: str, secret: str = SECRET
) -> int:
    body, headers = signed(event, payload, delivery, secret)
    return httpx.post(base + HOOK, content=body, headers=headers).status_code


def stop(bot: subprocess.Popen[str]) -> str:
    """SIGTERM, then the bot's whole output; it must drain and exit 0."""
    bot.send_signal(signal.SIGTERM)
    output, _ = bot.communicate(timeout=30)
    assert bot.returncode == 0, output
    return output


def run_json_bot(fake_url: str, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    return start_bot(BOT, fake_url, tmp_path, LOG_FORMAT="json", HANDLER_PROCESSES="1",
                     RETRY_MAX_ATTEMPTS="1", **env)  # fmt: skip


def test_json_lines_for_a_handled_a_failed_and_a_refused_delivery(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = run_json_bot(fake_url, tmp_path)
    try:
        assert post(base, "issues", issue_opened(7), "d-handled") == 202
        assert post(base, "issues", closed(8), "d-failed") == 202
        assert post(base, "issues", issue_opened(9), "d-forged", secret="not-the-secret") == 401
        wait_handled(base, "dead")
        wait_handled(base, "done")
    finally:
        output = stop(bot)
    entries = []
    for line in output.splitlines():
        entry = json.loads(line)  # every line, uvicorn's included, is one JSON object
        assert {"time", "level", "message", "logger"} <= entry.keys(), entry
        entries.append(entry)

    [done] = [e for e in entries if e.get("delivery_id") == "d-handled" and "outcome" in e]
    assert done["level"] == "info" and done["logger"] == "framework.deliveries"
    assert (done["event"], done["action"], done["installation"]) == ("issues", "opened", 4242)
    assert done["platform"] == "github"
    assert done["repository"] == "Codertocat/Hello-World" and done["outcome"] == "done"
    assert isinstance(done["duration_ms"], float) and done["duration_ms"] >= 0
    assert done["time"].endswith("Z")

    [dead] = [e for e in entries if e.get("delivery_id") == "d-failed" and "outcome" in e]
    assert (dead["level"], dead["outcome"], dead["action"]) == ("error", "dead", "closed")
    [raised] = [e for e in entries if e.get("delivery_id") == "d-failed" and "error" in e]
    assert "ValueError: cannot handle issue 8" in raised["error"]
    assert raised["handler"] == "fail" and raised["event"] == "issues"

    [refused] = [e for e in entries if e.get("delivery_id") == "d-forged"]
    assert refused["level"] == "warning" and "refused a delivery (401)" in refused["message"]
    assert any(e["logger"].startswith("uvicorn") for e in entries)
    assert fake.issue_labels("Codertocat/Hello-World", 7) == ["seen"]


def test_the_pretty_default_gives_one_info_line_per_delivery(fake_url: str, tmp_path: Path) -> None:
    bot, base = start_bot(BOT, fake_url, tmp_path)
    try:
        assert post(base, "issues", issue_opened(3), "d-pretty") == 202
        wait_handled(base, "done")
    finally:
        output = stop(bot)
    [line] = [line for line in output.splitlines() if "delivery=d-pretty" in line]
    assert " INFO  framework.deliveries: issues.opened Codertocat/Hello-World done in " in line
    assert " ms  " in line and "outcome=done" in line


@pytest.mark.parametrize("log_format", ["pretty", "json"])
def test_no_secret_token_or_key_reaches_the_logs_at_debug(
    fake: FakeGitHub, fake_url: str, tmp_path: Path, log_format: str
) -> None:
    metrics_token = "metrics-token-5b1e0c"
    bot, base = start_bot(BOT, fake_url, tmp_path, LOG_FORMAT=log_format, LOG_LEVEL="debug",
                          LEAK="1", RETRY_MAX_ATTEMPTS="2", RETRY_BACKOFF_SECONDS="0",
                          METRICS_TOKEN=metrics_token)  # fmt: skip
    try:
        assert post(base, "issues", issue_opened(5), "d-leak") == 202
        assert post(base, "issues", issue_opened(6), "d-forged", secret="forged") == 401
        wait_handled(base, "dead")
    finally:
        output = stop(bot)
    tokens = [mint.token for mint in fake.mints]
    assert tokens, "the bot minted no token: the leak was not exercised"
    key_lines = [line for line in PEM.splitlines() if "-----" not in line]
    for secret in [*tokens, SECRET, metrics_token, *key_lines]:
        assert secret not in output
    # The leaking lines were logged, and redacted, at each attempt: the test saw them.
    assert output.count("the token is [redacted token] and the secret is [redacted]") == 2
    assert output.count("access_token=[redacted]&page=2") == 2
    assert output.count("metrics token: [redacted]") == 2
    assert (
        output.count("RuntimeError: leaking '[redacted token]' [redacted] token [redacted token]")
        == 2
    )


def test_metrics_count_every_delivery_across_the_handler_processes(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = start_bot(BOT, fake_url, tmp_path, HANDLER_PROCESSES="2", RETRY_MAX_ATTEMPTS="1")
    try:
        for n in range(1, 6):
            assert post(base, "issues", issue_opened(n), f"d-{n}") == 202
        assert post(base, "issues", closed(6), "d-6") == 202
        assert post(base, "issues", issue_opened(7), "d-forged", secret="forged") == 401
        assert post(base, "issues", issue_opened(1), "d-1") == 200  # a duplicate
        # An event name no GitHub sends, and a payload value chosen by the sender: neither
        # may become a label (one series per value would grow without bound).
        evil = issue_opened(8)
        evil["action"] = "label-from-payload-7f3a"
        assert post(base, "x-label-from-header-9c2d", evil, "d-evil") == 202
        wait_handled(base, "done", 5)
        samples = wait_handled(base, "dead")
        text = httpx.get(base + "/metrics").text
    finally:
        stop(bot)
    received = "framework_deliveries_received_total"
    assert value(samples, received, platform="github", event="issues", status="202") == 6
    assert value(samples, received, platform="github", event="issues", status="401") == 1
    assert value(samples, received, platform="github", event="issues", status="200") == 1
    assert value(samples, received, platform="github", event="other", status="202") == 1
    handled = "framework_deliveries_handled_total"
    assert value(samples, handled, platform="github", event="issues", outcome="done") == 5
    assert value(samples, handled, platform="github", event="issues", outcome="dead") == 1
    assert value(samples, handled, platform="github", event="issues", outcome="retried") == 0
    assert (
        value(
            samples, "framework_handler_duration_seconds_count", platform="github", event="issues"
        )
        == 6
    )
    # Received is counted in the receiver, handled in the handler processes: one scrape sees
    # both. Each handler process mints its own token (no Redis to share it through).
    assert value(samples, "framework_installation_token_mints_total") in (1, 2)
    api = "framework_api_requests_total"
    assert value(samples, api, method="POST", route=LABELS_ROUTE, status="200") == 5
    mint_route = "/app/installations/{number}/access_tokens"
    assert value(samples, api, method="POST", route=mint_route, status="201") >= 1
    assert value(samples, "framework_api_request_duration_seconds_count", method="POST",
                 route=LABELS_ROUTE) == 5  # fmt: skip
    assert value(samples, "framework_api_rate_limit_remaining_count") >= 5
    assert value(samples, "framework_journal_deliveries", status="pending") == 0
    assert value(samples, "framework_journal_deliveries", status="running") == 0
    assert value(samples, "framework_journal_deliveries", status="dead") == 1
    assert value(samples, "framework_journal_oldest_pending_age_seconds") == 0
    assert value(samples, "process_cpu_seconds_total") > 0
    assert "label-from-payload-7f3a" not in text and "x-label-from-header-9c2d" not in text


def test_metrics_ask_for_the_token_when_one_is_set(fake_url: str, tmp_path: Path) -> None:
    bot, base = start_bot(BOT, fake_url, tmp_path, METRICS_TOKEN="scrape-token-31d9")
    try:
        wrong = httpx.get(base + "/metrics", headers={"Authorization": "Bearer nope"})
        right = scrape(base, Authorization="Bearer scrape-token-31d9")
        local = httpx.get(base + "/metrics")  # from loopback, without a token
    finally:
        stop(bot)
    assert wrong.status_code == 401 and "scrape-token" not in wrong.text
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert ("framework_deliveries_received_total", frozenset()) not in right
    assert local.status_code == 200
