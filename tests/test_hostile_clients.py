"""Hostile clients: no unauthenticated connection may slow the bot.

Each test starts the bot as a real process (``python -m framework run``: uvicorn, the guard,
a handler process) on a loopback port and attacks it with raw sockets, as the findings of
issue 15 did: a stalled body, a 64 MB header, more idle connections than the file limit,
an installation id past SQLite's integers.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from framework.server.guard import body_deadline, longest_waiting
from framework.testing import FakeGitHub
from tests.support import ROOT, issue_opened, signed, start_bot
from tests.test_reliability import runs, stop, wait_until

SLOW_BOT = str(ROOT / "tests" / "bots" / "slow_labeler.py")
HOOK = "/api/github/webhooks"


def address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


@contextmanager
def running_bot(fake_url: str, tmp_path: Path, **env: str) -> Iterator[str]:
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **env)
    try:
        yield base
    finally:
        output = stop(bot)
        assert "Traceback" not in output, output


def deliver(base: str, number: int, timeout: float = 10.0) -> httpx.Response:
    body, headers = signed("issues", issue_opened(number), f"d-{number}")
    return httpx.post(base + HOOK, content=body, headers=headers, timeout=timeout)


def stalled_body(base: str) -> socket.socket:
    """A connection that sends a delivery's headers and 10 of its 1000 body bytes."""
    sock = socket.create_connection(address(base), timeout=10)
    sock.sendall(
        b"POST " + HOOK.encode() + b" HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        b"X-GitHub-Event: issues\r\nX-GitHub-Delivery: stalled\r\nContent-Length: 1000\r\n\r\n"
        b'{"action":'
    )
    return sock


def read_until_closed(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes the connection (TimeoutError if it does not)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


# Pure decisions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "deadline"),
    [(0, 10.0), (16_384, 11.0), (163_840, 20.0)],
)
def test_a_body_may_lag_the_grace_period_behind_the_minimum_rate(
    received: int, deadline: float
) -> None:
    assert body_deadline(0.0, received, grace=10.0, min_rate=16_384) == deadline


def test_the_connection_evicted_is_the_one_idle_longest_never_one_mid_request() -> None:
    assert longest_waiting([("a", 3.0), ("b", 1.0), ("busy", None)]) == "b"
    assert longest_waiting([("busy", None), ("busier", None)]) is None
    assert longest_waiting([]) is None


# Finding 1: a stalled body ------------------------------------------------------------


def test_a_stalled_unsigned_body_does_not_hold_back_the_handlers(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    # Under load only one delivery's handler may start at a time; each takes 1.5 s. If the
    # stalled connection counted as load, ten would take 15 s; they take about 1.5 s.
    env = {
        "SLOW_SECONDS": "1.5",
        "HANDLER_CONCURRENCY_UNDER_LOAD": "1",
        "SERVER_BODY_GRACE_SECONDS": "120",  # the stall is not cut during this test
    }
    with running_bot(fake_url, tmp_path, **env) as base:
        attacker = stalled_body(base)
        try:
            time.sleep(0.2)
            for number in range(1, 11):
                assert deliver(base, number).status_code == 202
            wait_until(lambda: len(runs(fake)) == 10, 8, "all ten handlers beside the stall")
            attacker.settimeout(0.01)
            with pytest.raises(TimeoutError):
                attacker.recv(1)  # still open, still stalled: the handlers ran anyway
        finally:
            attacker.close()


def test_a_stalled_body_is_answered_408_and_closed_after_its_grace(
    fake_url: str, tmp_path: Path
) -> None:
    with running_bot(fake_url, tmp_path, SERVER_BODY_GRACE_SECONDS="1") as base:
        attacker = stalled_body(base)
        started = time.monotonic()
        with attacker:
            answer = read_until_closed(attacker, 10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"too slowly" in answer
        assert time.monotonic() - started < 5
        assert deliver(base, 1).status_code == 202  # and the bot serves on


# Finding 2: huge headers --------------------------------------------------------------


def test_a_64_mb_header_is_cut_and_a_signed_delivery_beside_it_is_answered_at_once(
    fake_url: str, tmp_path: Path
) -> None:
    with running_bot(fake_url, tmp_path) as base:
        sent = [0]
        answer: list[bytes] = []

        def attack() -> None:
            with socket.create_connection(address(base), timeout=30) as sock:
                sock.sendall(b"POST " + HOOK.encode() + b" HTTP/1.1\r\nHost: bot\r\nX-Big: ")
                chunk = b"a" * 65536
                try:
                    for _ in range(1024):  # 64 MB
                        sock.sendall(chunk)
                        sent[0] += len(chunk)
                except OSError:  # the bot closed the connection: what we hoped for
                    pass
                try:
                    answer.append(read_until_closed(sock, 5))
                except OSError:
                    answer.append(b"")

        attacker = threading.Thread(target=attack)
        attacker.start()
        try:
            wait_until(lambda: sent[0] >= 65536, 5, "the attack to start")
            started = time.monotonic()
            response = deliver(base, 1, timeout=20)
            took = time.monotonic() - started
        finally:
            attacker.join(60)
        assert response.status_code == 202
        # GitHub waits 10 s; before the cap, the delivery waited up to 17 s.
        assert took < 2.0, f"the delivery took {took:.2f} s beside the attack"
        assert sent[0] < 64 * 1024 * 1024, "the bot read the whole 64 MB header"
        assert not answer or not answer[0] or answer[0].startswith(b"HTTP/1.1 431 ")


def test_too_many_headers_are_refused(fake_url: str, tmp_path: Path) -> None:
    with running_bot(fake_url, tmp_path, SERVER_MAX_HEADERS="20") as base:
        many = {f"X-Extra-{i}": "1" for i in range(30)}
        response = httpx.get(base + "/healthz", headers=many)
        assert response.status_code == 400
        assert httpx.get(base + "/healthz").status_code == 200


# Finding 3: idle connections ----------------------------------------------------------


def _with_file_limit(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def test_idle_connections_past_the_file_limit_leave_room_for_deliveries_and_healthz(
    fake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bot gets a file limit of 256 (its children inherit it); the attack opens 400 idle
    # connections. Before the cap, accept() failed once the limit was reached and every new
    # connection waited in the backlog until the idle ones went away.
    real_popen = subprocess.Popen

    def popen_with_limit(*args: object, **kwargs: object) -> subprocess.Popen[str]:
        kwargs["preexec_fn"] = lambda: _with_file_limit(256)
        return real_popen(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "Popen", popen_with_limit)
    with running_bot(fake_url, tmp_path, SERVER_HEADER_TIMEOUT_SECONDS="60") as base:
        monkeypatch.setattr(subprocess, "Popen", real_popen)
        with ExitStack() as idle:
            for _ in range(400):
                idle.enter_context(socket.create_connection(address(base), timeout=5))
            time.sleep(0.5)
            assert httpx.get(base + "/healthz", timeout=5).status_code == 200
            assert deliver(base, 1, timeout=5).status_code == 202


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    fake_url: str, tmp_path: Path
) -> None:
    with running_bot(fake_url, tmp_path, SERVER_HEADER_TIMEOUT_SECONDS="1") as base:
        started = time.monotonic()
        with socket.create_connection(address(base)) as idle:
            assert read_until_closed(idle, 10) == b""
        assert time.monotonic() - started < 5
        with socket.create_connection(address(base)) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n")  # and never the end
            assert read_until_closed(slow, 10) == b""


# Finding 5: an id past SQLite's integers ----------------------------------------------


def test_an_installation_id_past_2_63_is_refused_alone_in_a_burst(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    async def burst(base: str) -> dict[int, int]:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:

            async def one(n: int) -> tuple[int, int]:
                payload = issue_opened(n, installation=2**63 if n == 15 else 4242)
                body, headers = signed("issues", payload, f"d-{n}")
                return n, (await client.post(HOOK, content=body, headers=headers)).status_code

            return dict(await asyncio.gather(*(one(n) for n in range(1, 31))))

    with running_bot(fake_url, tmp_path) as base:
        answers = asyncio.run(burst(base))
        assert answers[15] == 400
        assert {n: s for n, s in answers.items() if n != 15} == {
            n: 202 for n in range(1, 31) if n != 15
        }
        wait_until(lambda: len(runs(fake)) == 29, 20, "the 29 good deliveries to run")


async def test_the_journal_refuses_an_unstorable_id_alone_in_its_batch(tmp_path: Path) -> None:
    from framework.errors import InvalidPayload
    from framework.journal.sqlite import SQLiteJournal
    from framework.webhooks.delivery import Delivery

    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3")
    try:
        deliveries = [
            Delivery(f"d-{n}", "issues", b"{}", "opened", 2**63 if n == 15 else n)
            for n in range(1, 31)
        ]
        outcomes = await asyncio.gather(
            *(journal.record(d) for d in deliveries), return_exceptions=True
        )
        assert isinstance(outcomes[14], InvalidPayload)
        assert outcomes[:14] + outcomes[15:] == [True] * 29
        assert await journal.active() == 29
    finally:
        await journal.close()


# Log hygiene ---------------------------------------------------------------------------


def test_a_request_value_cannot_forge_fields_in_the_pretty_log() -> None:
    import logging

    from framework.observe.log import PrettyFormatter

    record = logging.LogRecord("framework", logging.WARNING, __file__, 1, "refused", (), None)
    record.bound_fields = {"delivery": "x event=installation.deleted", "event": "issues.opened"}
    line = PrettyFormatter().format(record)
    assert line.endswith('delivery="x event=installation.deleted" event=issues.opened')


def test_uvicorns_line_per_invalid_request_is_rate_limited(fake_url: str, tmp_path: Path) -> None:
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path)
    try:
        for _ in range(50):
            with socket.create_connection(address(base), timeout=5) as sock:
                sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                read_until_closed(sock, 5)
    finally:
        output = stop(bot)
    lines = [line for line in output.splitlines() if "Invalid HTTP request" in line]
    assert 1 <= len(lines) <= 5, output
