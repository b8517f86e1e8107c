"""A damaged journal is reported, not trusted; a full disk never makes work run twice.

Findings 6 and 7 of issue 15: a damaged page passed for healthy (the bot started, /readyz
said 200, deliveries got 202 and never ran); a garbage write-ahead log was dropped silently
with what it held; the size cap did not count the write-ahead log, so the disk filled and
deliveries whose outcome could not be stored ran again.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from framework import Context
from framework.journal import JournalDamaged, JournalUnavailable, Status
from framework.journal.integrity import is_corruption, wal_problem
from framework.journal.sqlite import SQLiteJournal
from framework.testing import FakeGitHub, serve_async
from framework.webhooks.delivery import Delivery
from tests.support import APP_ID, PEM, ROOT, SECRET, issue_opened, signed, start_bot
from tests.test_reliability import new_app, runs, stop, wait_until

SLOW_BOT = str(ROOT / "tests" / "bots" / "slow_labeler.py")
HOOK = "/api/github/webhooks"


def record(path: Path, numbers: range) -> None:
    async def go() -> None:
        journal = await SQLiteJournal.open(path)
        try:
            for n in numbers:
                assert await journal.record(
                    Delivery.from_payload(f"d-{n}", "issues", issue_opened(n))
                )
        finally:
            await journal.close()

    asyncio.run(go())


def bot_env(path: Path, fake_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    return environment | {
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": PEM,
        "WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": fake_url,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "PYTHONPATH": str(ROOT),
        "JOURNAL_PATH": str(path),
    }


def refused_start(path: Path) -> str:
    """Start the bot on the journal at ``path``; return its output once it refuses."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "framework", "run", SLOW_BOT],
            env=bot_env(path),
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the bot started on a damaged journal:\n{exc.output}") from None
    assert done.returncode != 0
    return done.stdout + done.stderr


def salvage(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "framework", "deliveries", "salvage"],
        env=bot_env(path),
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


# The write-ahead log's header -----------------------------------------------------------


def test_a_wal_header_is_checked_before_sqlite_would_drop_it(tmp_path: Path) -> None:
    record(tmp_path / "j.sqlite3", range(1, 2))
    script = "import sqlite3; c = sqlite3.connect('w.db'); c.execute('PRAGMA journal_mode=WAL')\n"
    script += "c.execute('CREATE TABLE t (x)'); c.commit(); import os; os._exit(0)"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)
    header = (tmp_path / "w.db-wal").read_bytes()[:32]
    assert wal_problem(header, 4096) is None
    damaged = header[:28] + bytes([header[28] ^ 1]) + header[29:]
    assert wal_problem(damaged, 4096) == "its header's checksum does not match"
    assert wal_problem(b"\0" * 32, 4096) == "its header is not a SQLite write-ahead log header"
    assert wal_problem(b"\0" * 10, 10) is None  # too short to hold a committed transaction


# Finding 6: damage at start -------------------------------------------------------------


def test_a_flipped_byte_in_the_last_page_is_refused_at_start_and_salvaged(
    tmp_path: Path, fake: FakeGitHub, fake_url: str
) -> None:
    path = tmp_path / "journal.sqlite3"
    record(path, range(1, 11))
    size = path.stat().st_size
    flip_byte(path, size - 4096)  # the last page's type: a b-tree page no longer
    output = refused_start(path)
    assert "is damaged" in output and "deliveries salvage" in output, output
    report = salvage(path)
    assert "failed its integrity check" in report, report
    assert list(tmp_path.glob("journal.sqlite3.damaged-*")), "the damaged file was not kept"
    bot, _ = start_bot(SLOW_BOT, fake_url, tmp_path, JOURNAL_PATH=str(path))
    stop(bot)


def test_a_garbage_wal_is_refused_at_start_not_dropped_with_what_it_holds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    record(path, range(1, 2))  # the database exists, checkpointed
    # Ten more recorded by a process that dies before any checkpoint: they are in the WAL.
    script = textwrap.dedent(f"""
        import asyncio, os
        from framework.journal.sqlite import SQLiteJournal
        from framework.webhooks.delivery import Delivery
        from tests.support import issue_opened
        async def go():
            journal = await SQLiteJournal.open({str(path)!r})
            for n in range(2, 12):
                await journal.record(Delivery.from_payload(f"d-{{n}}", "issues", issue_opened(n)))
            os._exit(0)
        asyncio.run(go())
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=30)
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 4096
    wal.write_bytes(os.urandom(wal.stat().st_size))
    output = refused_start(path)
    assert "write-ahead log" in output and "deliveries salvage" in output, output
    report = salvage(path)
    assert "what it held is lost" in report, report


async def test_a_journal_of_the_previous_layout_gains_body_checksums(tmp_path: Path) -> None:
    from framework.journal.sqlite import SCHEMA

    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.replace(",\n    body_crc INTEGER", ""))
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    journal = await SQLiteJournal.open(path)
    try:
        assert await journal.record(Delivery.from_payload("d-1", "issues", issue_opened(1)))
        assert [d.id for d in await journal.claim("c", 10, 30)] == ["d-1"]
    finally:
        await journal.close()


# Finding 6: damage at run time ----------------------------------------------------------


async def test_a_damaged_body_found_while_running_turns_readyz_and_deliveries_to_503(
    tmp_path: Path, fake_url: str
) -> None:
    backend = {"JOURNAL_PATH": str(tmp_path / "journal.sqlite3")}
    app = new_app(backend, fake_url, retry_backoff_seconds=0.3, retry_backoff_max_seconds=0.3)
    runs: list[str] = []

    @app.on("issues.opened")
    async def fails_once(ctx: Context) -> None:
        runs.append(ctx.delivery_id)
        if len(runs) == 1:
            raise RuntimeError("the first run fails: the delivery is claimed again later")

    async with serve_async(app) as url, httpx.AsyncClient(base_url=url) as client:
        body, headers = signed("issues", issue_opened(1), "d-1")
        assert (await client.post(HOOK, content=body, headers=headers)).status_code == 202
        for _ in range(200):
            if runs:
                break
            await asyncio.sleep(0.01)
        bodies = tmp_path / "journal.sqlite3-bodies"
        flip_byte(next(bodies.iterdir()), 10)  # before its second claim
        for _ in range(500):
            if (await client.get("/readyz")).status_code == 503:
                break
            await asyncio.sleep(0.01)
        ready = await client.get("/readyz")
        body, headers = signed("issues", issue_opened(2), "d-2")
        late = await client.post(HOOK, content=body, headers=headers)
        journal = await app.open_journal()
        entry = await journal.get("d-1")
    assert ready.status_code == 503 and ready.json() == {"status": "journal damaged"}
    assert late.status_code == 503 and "damaged" in late.json()["error"]
    assert runs == ["d-1"]  # never run on a damaged body
    assert entry is not None and entry.status is Status.FAILED
    assert "checksum" in (entry.last_error or "")
    # The next start refuses until salvaged.
    with pytest.raises(JournalDamaged, match="deliveries salvage"):
        restarted = await SQLiteJournal.open(tmp_path / "journal.sqlite3")
        try:
            await restarted.check()
        finally:
            await restarted.close()


async def test_a_damaged_body_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = await SQLiteJournal.open(path)
    await journal.record(Delivery.from_payload("d-1", "issues", issue_opened(1)))
    await journal.close()
    flip_byte(next((tmp_path / "journal.sqlite3-bodies").iterdir()), 10)
    journal = await SQLiteJournal.open(path)
    try:
        with pytest.raises(JournalDamaged, match=r"d-1.*checksum"):
            await journal.check()
    finally:
        await journal.close()
    with pytest.raises(JournalUnavailable):  # nothing else changed: still refused
        journal = await SQLiteJournal.open(path)
        try:
            await journal.check()
        finally:
            await journal.close()


def test_salvage_reads_past_a_damaged_page_in_the_middle(tmp_path: Path) -> None:
    from framework.journal.salvage import readable_rows

    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"{n:04d}" + "x" * 200,) for n in range(2000)])
    conn.commit()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    flip_byte(path, (pages // 2) * 4096)  # a leaf in the middle of the table
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("SELECT count(*) FROM t").fetchone()
    kept = [str(row[0])[:4] for row in readable_rows(conn, "t", "x")]
    conn.close()
    assert 1900 < len(kept) < 2000  # one page's rows lost, the rest kept
    assert kept[0] == "0000" and kept[-1] == "1999"


# Finding 7: the size cap counts everything the journal writes ---------------------------


def journal_bytes(path: Path) -> int:
    files = [path, path.with_name(path.name + "-wal")]
    files += list(path.with_name(path.name + "-bodies").glob("*"))
    return sum(f.stat().st_size for f in files if f.exists())


async def test_the_size_cap_counts_the_wal_and_leaves_room_for_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    cap = 2 * 1024 * 1024
    journal = await SQLiteJournal.open(path, max_bytes=cap)
    stored = 0
    try:
        for n in range(1, 500):
            payload = issue_opened(n) | {"padding": "x" * 20_000}
            try:
                await journal.record(Delivery.from_payload(f"d-{n}", "issues", payload))
            except JournalUnavailable as exc:
                assert "full" in str(exc)
                break
            stored += 1
            assert journal_bytes(path) <= cap, f"over the cap after {stored} deliveries"
        assert 20 < stored < 100
        claimed = await journal.claim("c", 1000, 30)
        assert len(claimed) == stored
        for delivery in claimed:  # every outcome is recorded: none would run again
            assert await journal.complete(delivery.id, "c")
        assert journal_bytes(path) <= cap
    finally:
        await journal.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs, as a small disk that fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_small_disk_with_the_cap_set_runs_nothing_twice(
    small_disk: Path, fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    env = {
        "JOURNAL_PATH": str(small_disk / "journal.sqlite3"),
        "JOURNAL_MAX_BYTES": str(8 * 1024 * 1024),
        "SLOW_SECONDS": "0.05",
    }

    async def fill(base: str) -> set[int]:
        accepted: set[int] = set()
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:

            async def one(n: int) -> None:
                payload = issue_opened(n) | {"padding": "x" * 60_000}
                body, headers = signed("issues", payload, f"d-{n}")
                response = await client.post(HOOK, content=body, headers=headers)
                assert response.status_code in (202, 503), response.text
                if response.status_code == 202:
                    accepted.add(n)

            for start in range(1, 400, 10):
                await asyncio.gather(*(one(n) for n in range(start, start + 10)))
        return accepted

    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **env)
    try:
        accepted = asyncio.run(fill(base))
        assert 10 < len(accepted) < 390, "the disk never filled, or nothing was stored"
        wait_until(lambda: set(runs(fake)) >= accepted, 60, "every accepted delivery to run")
    finally:
        output = stop(bot)
    bot, _ = start_bot(SLOW_BOT, fake_url, tmp_path, **env)  # what was not recorded runs now
    time.sleep(3)
    output += stop(bot)
    counts = runs(fake)
    assert set(counts) == accepted, output
    assert {n: c for n, c in counts.items() if c > 1} == {}, output


@pytest.mark.parametrize(
    ("error", "damage"),
    [
        (sqlite3.DatabaseError("database disk image is malformed"), True),
        (sqlite3.DatabaseError("file is not a database"), True),
        (sqlite3.OperationalError("database or disk is full"), False),
        (sqlite3.OperationalError("database is locked"), False),
        (OSError(28, "No space left on device"), False),
    ],
)
def test_only_damage_reported_by_sqlite_counts_as_damage(error: Exception, damage: bool) -> None:
    assert is_corruption(error) is damage
