"""The pure decisions behind logs and metrics: what is redacted, what a label may be, who may
scrape."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from framework.journal import Counts
from framework.observe import hooks, metrics
from framework.observe.log import SECRETS, JSONFormatter, PrettyFormatter, Secrets, redact
from framework.server.metrics import allowed
from framework.settings import Settings
from tests.support import PEM


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token ghs_16C7e42F292c6912E7710c838347Ae178B4a", "token [redacted token]"),
        ("gho_abcdefgh ghu_abcdefgh ghr_abcdefgh", "[redacted token] " * 2 + "[redacted token]"),
        ("pat github_pat_11ABCDEFG0123456789_abcdef", "pat [redacted token]"),
        ("atomgit ats_0123456789abcdef", "atomgit [redacted token]"),
        ("Authorization: token abc.def", "Authorization: [redacted]"),
        ("{'authorization': 'Bearer xyz123'}", "{'authorization': '[redacted]'}"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', '{"Authorization": "[redacted]"}'),
        ("GET /x?access_token=abc&page=2", "GET /x?access_token=[redacted]&page=2"),
        (
            "code=1&client_secret=s3cr3t&refresh_token=r",
            "code=1&client_secret=[redacted]&refresh_token=[redacted]",
        ),
        ("jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJl", "jwt [redacted jwt]"),
        ("key " + PEM, "key [redacted private key]\n"),
        ("key " + PEM[:200], "key [redacted private key]"),  # cut short: still redacted
        (
            "nothing secret: issues.opened #7 by octocat",
            "nothing secret: issues.opened #7 by octocat",
        ),
    ],
)
def test_redaction(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_known_secrets_are_redacted_whatever_they_look_like() -> None:
    secrets = Secrets(limit=2)
    secrets.add("plain-webhook-secret")
    secrets.add("short")  # too short to redact safely: ordinary words would go too
    for n in range(3):
        secrets.add(f"token-number-{n}", expires=True)
    text = "plain-webhook-secret short token-number-0 token-number-1 token-number-2"
    # The settings' secret stays; of the expiring tokens only the newest two are kept.
    assert secrets.replace(text) == "[redacted] short token-number-0 [redacted] [redacted]"


def test_settings_secrets_are_remembered_a_urls_password_only() -> None:
    settings = Settings(
        webhook_secret="webhook-secret-77",
        metrics_token="metrics-token-88",
        redis_url="redis://:redis-password-99@redis:6379/0",
        private_key=PEM,
    )
    hooks.remember_secrets(settings)
    line = f"webhook-secret-77 metrics-token-88 redis://:redis-password-99@redis:6379/0 {PEM}"
    out = redact(line)
    assert "webhook-secret-77" not in out and "metrics-token-88" not in out
    assert "redis-password-99" not in out and "@redis:6379/0" in out  # where, not the password
    assert "BEGIN" not in out and PEM.splitlines()[1] not in out


def test_both_formats_redact_messages_fields_and_tracebacks() -> None:
    SECRETS.add("field-secret-123")
    try:
        raise RuntimeError("failed with ghs_abcdefghijklmnop")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "saw %s", ("field-secret-123",),
                                   __import__("sys").exc_info())  # fmt: skip
    record.bound_fields = {"delivery": "d-1", "note": "Authorization: token abcdef"}
    for formatter in (PrettyFormatter(), JSONFormatter()):
        out = formatter.format(record)
        assert "field-secret-123" not in out and "ghs_abcdefghijklmnop" not in out
        assert "token abcdef" not in out and "d-1" in out


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/repos/octo-org/hello/issues/7/labels", "/repos/{owner}/{repo}/issues/{number}/labels"),
        (
            "/repos/o/r/issues/7/labels/needs%20response",
            "/repos/{owner}/{repo}/issues/{number}/labels/{name}",
        ),
        ("/app/installations/42/access_tokens", "/app/installations/{number}/access_tokens"),
        ("/repos/o/r/contents/.github/bot.yml?ref=main", "/repos/{owner}/{repo}/contents/{path}"),
        ("/repos/o/r/statuses/" + "0" * 40, "/repos/{owner}/{repo}/statuses/{sha}"),
        ("/orgs/acme/installation", "/orgs/{org}/installation"),
        ("/users/octocat/installation", "/users/{username}/installation"),
        (
            "/repos/o/r/git/refs/heads/feature/x",
            "/repos/{owner}/{repo}/git/refs/heads/{name}/{name}",
        ),
        ("/a/b/c/d/e/f/g/h/i/j/k", "/{name}/{name}/{name}/{name}/{name}/{name}/{name}/{name}/..."),
        (
            "http://127.0.0.1:9/api/v5/repos/o/r/pulls/3",
            "/api/v5/repos/{owner}/{repo}/pulls/{number}",
        ),
        ("/graphql", "/graphql"),
    ],
)
def test_route_templates(path: str, route: str) -> None:
    assert metrics.route_template(path) == route


def test_events_are_bounded_labels() -> None:
    from framework.platforms import ALL_EVENTS

    metrics.know_events(ALL_EVENTS)  # as every App does
    assert metrics.event_label("pull_request") == "pull_request"
    assert metrics.event_label("story") == "story"  # TAPD's
    assert metrics.event_label("pull_request.opened") == "other"  # an action is never a label
    assert metrics.event_label("x" * 1000) == "other"


LOCAL = {"host": "localhost:3000"}


@pytest.mark.parametrize(
    ("token", "headers", "client", "served"),
    [
        (None, {}, "10.1.2.3", True),  # no token: open (publish the port privately)
        (None, {"authorization": "Bearer anything"}, "10.1.2.3", True),
        ("tok", {"authorization": "Bearer tok"}, "10.1.2.3", True),
        ("tok", {"authorization": "bearer tok"}, "10.1.2.3", True),
        ("tok", {}, "10.1.2.3", False),  # off loopback: the token is required
        ("tok", {"authorization": "Bearer wrong"}, "10.1.2.3", False),
        ("tok", {"authorization": "Bearer wrong", **LOCAL}, "127.0.0.1", False),  # wrong anywhere
        ("tok", {"authorization": "Basic tok"}, "10.1.2.3", False),
        ("tok", LOCAL, "127.0.0.1", True),  # loopback without one: a sidecar, curl in the box
        ("tok", {"host": "[::1]:3000"}, "::1", True),
        ("tok", {**LOCAL, "x-forwarded-for": "1.2.3.4"}, "127.0.0.1", False),  # via a proxy
        ("tok", {}, None, False),
    ],
)
def test_who_may_scrape(token: str | None, headers: dict[str, str], client: str | None,
                        served: bool) -> None:  # fmt: skip
    assert allowed(token, headers, client) is served


def test_the_journal_gauges_in_the_exposition() -> None:
    text = metrics.render(Counts(3, 2, 1, oldest_pending_at=100.0), now=lambda: 160.0).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    depth = {s.labels["status"]: s.value for s in families["framework_journal_deliveries"].samples}
    assert depth == {"pending": 3, "running": 2, "dead": 1}
    [age] = families["framework_journal_oldest_pending_age_seconds"].samples
    assert age.value == 60.0
    assert "framework_deliveries_received" in families  # present before the first delivery


def test_token_hits_and_mints_are_counted() -> None:
    m = metrics.metrics()
    mints = m.token_mints._value.get()
    hits = m.child(m.token_hits, "process")._value.get()
    hooks.token_obtained("counted-token-0000", minted=True)
    hooks.token_reused()
    hooks.token_obtained("ghs_counted1111", minted=False)
    assert m.token_mints._value.get() == mints + 1
    assert m.child(m.token_hits, "process")._value.get() == hits + 1
    assert m.child(m.token_hits, "shared")._value.get() >= 1
    assert redact("counted-token-0000") == "[redacted]"


def test_the_metrics_directory_is_emptied_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics.MULTIPROCESS_ENV, raising=False)
    (tmp_path / "counter_1234.db").write_bytes(b"stale samples of a process long gone")
    (tmp_path / "keep.txt").write_text("not ours")
    assert metrics.use_directory(tmp_path) == tmp_path
    assert os.environ[metrics.MULTIPROCESS_ENV] == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    monkeypatch.delenv(metrics.MULTIPROCESS_ENV)


async def test_a_failure_to_record_a_metric_fails_no_delivery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from framework import App
    from framework.testing import payloads, run_bot

    def broken(name: str) -> object:
        def record(*args: object) -> None:
            raise FileNotFoundError("the metrics directory is gone")

        record.__name__ = name
        return record

    for name in ("delivery_handled", "api_request", "delivery_received"):
        monkeypatch.setattr(metrics, name, broken(name))
    monkeypatch.setattr(hooks, "_troubles", set())
    app = App(name="unmeasured")

    @app.on("issues.opened")
    async def label(ctx: object) -> None:
        await ctx.github.post("/repos/octo-org/hello/issues/1/labels", json={"labels": ["x"]})  # type: ignore[attr-defined]

    async with run_bot(app) as bot:
        first = await bot.receive("issues", payloads.issues_opened(number=1))
        second = await bot.receive("issues", payloads.issues_opened(number=2))
    assert (first.status, second.status) == ("done", "done")
    reported = [r.getMessage() for r in caplog.records if "could not record" in r.getMessage()]
    assert len(reported) == 3  # once each, not once a delivery


def test_a_scrape_adds_up_the_processes_and_passes_over_a_file_being_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    count = (
        "from framework.observe import metrics; metrics.know_events(['push']); "
        "metrics.delivery_received('github', 'push', 202)"
    )
    for _ in range(2):  # two processes, as a receiver and its handler process
        subprocess.run([sys.executable, "-c", count], check=True,
                       env={**os.environ, metrics.MULTIPROCESS_ENV: str(tmp_path)})  # fmt: skip
    (tmp_path / "counter_424242.db").touch()  # a process caught creating its file
    monkeypatch.setenv(metrics.MULTIPROCESS_ENV, str(tmp_path))
    text = metrics.render(None).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    key = (("event", "push"), ("platform", "github"), ("status", "202"))
    assert samples[("framework_deliveries_received_total", key)] == 2
    assert ("process_cpu_seconds_total", ()) in samples
