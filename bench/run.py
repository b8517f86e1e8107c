"""Acknowledgement throughput of the running labeler against the floor of honest work.

    .venv/bin/python bench/run.py [--seconds 10] [--rounds 3] [--connections 32]

Starts a fake GitHub (bench/fake_server.py), the labeler (``python -m framework run
sample_bots/labeler.py``) and the floor (bench/floor.py), each a uvicorn process on a free
loopback port. Then, round after round, loads with wrk and signed ~18 KB deliveries, each with
its own ``X-GitHub-Delivery``: the floor, the labeler with an event it has no handler for (its
acknowledgement path alone), and the labeler with ``issues.opened``. After each labeler run it
waits until the fake has recorded a label for every acknowledged delivery (the handlers run
after the 202), so a backlog never spills into the next run.

Prints, per target, the median deliveries/s, latencies and CPU per delivery over the rounds,
and the ratios to the floor; writes everything to bench/results/latest.json. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization

from framework.testing.fake_github import generate_app_key

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from payload import REPO_ROOT, build_payload, repository_of, sign  # noqa: E402
from spy import Recorder, top_frames  # noqa: E402

RESULTS = BENCH / "results"
LUA_SCRIPT = BENCH / "deliveries.lua"
PROBOT = BENCH / "probot"
WEBHOOK_PATH = "/api/github/webhooks"
APP_ID = 4242
INSTALLATION_ID = 7654321
STARTUP_TIMEOUT = 30.0
DRAIN_TIMEOUT = 600.0
STOP_TIMEOUT = 10.0
CORE_COMMIT = "3000b03"  # the last commit before the delivery journal was wired in
WRK_INSTALL = "apt-get install -y wrk    (Debian/Ubuntu; as root, after apt-get update)"


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 (released before the server binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server subprocess: its name, URL, process and log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Servers:
    """Every subprocess the bench started; :meth:`stop_all` ends them, the newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Server] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        port: int,
        cpu: int | None,
        cwd: Path = REPO_ROOT,
    ) -> Server:
        command = [*pin(cpu), *argv]
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops them in order
        )
        server = Server(name, f"http://127.0.0.1:{port}", process, log_path, log)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.started):
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGINT)  # uvicorn's graceful stop
        deadline = time.monotonic() + STOP_TIMEOUT
        for server in reversed(self.started):
            try:
                server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
            server.log.close()
        self.started.clear()


def start_fake_github(
    servers: Servers, repository: str, cpu: int | None, name: str = "fake-github"
) -> tuple[Server, str]:
    """Start the bench's fake GitHub (``bench/fake_server.py``) for a new app key, with the
    installation ``INSTALLATION_ID`` on ``repository``: the fake (wait until it answers) and the
    app's private key (PEM) that the bots under test sign with."""
    private_pem, public_key = generate_app_key()
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    port = free_port()
    fake = servers.start(
        name,
        [sys.executable, str(BENCH / "fake_server.py")],
        {
            "BENCH_APP_ID": str(APP_ID),
            "BENCH_PUBLIC_KEY": public_pem,
            "BENCH_INSTALLATION_ID": str(INSTALLATION_ID),
            "BENCH_REPOSITORY": repository,
            "HOST": "127.0.0.1",
            "PORT": str(port),
        },
        port,
        cpu,
    )
    return fake, private_pem


def pin(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` to prefix a command with, or nothing."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``url``; the status and body (HTTP errors included), or raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_up(server: Server, path: str, statuses: set[int]) -> None:
    """Wait (bounded) until ``GET path`` answers one of ``statuses``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} while starting; "
                f"its log ({server.log_path}):\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError):
            if http_get(server.url + path, timeout=1.0)[0] in statuses:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} did not answer within {STARTUP_TIMEOUT:.0f} s; its log:\n"
        f"{server.log_tail()}"
    )


# ----------------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    """One wrk run against one target."""

    target: str
    round: int
    requests: int  # answers of any status
    seconds: float
    per_second: float  # 2xx answers (acknowledged deliveries) per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    cpu_seconds: float = 0.0  # the target's CPU time (user + system) while wrk ran
    receiver_cpu_seconds: float = 0.0  # of which in the receiving process itself
    drain_seconds: float | None = None  # labeler: time to finish the handlers after wrk
    drain_cpu_seconds: float | None = None
    labels_recorded: int | None = None  # labeler: labels the fake recorded, load + drain
    fake_cpu_seconds: float | None = None

    @property
    def cpu_us_per_delivery(self) -> float:
        """The target's CPU time per answered delivery while wrk ran, in µs."""
        return 1e6 * self.cpu_seconds / max(1, self.requests)


@dataclass
class Load:
    """How to load a target: the wrk options shared by every run."""

    body_file: Path
    signature: str
    connections: int
    cpu: int | None
    count_status: bool

    def run(
        self, target: str, url: str, seconds: float, round_: int, event: str = "issues"
    ) -> LoadResult:
        run_id = secrets.token_hex(4)
        argv = [
            *pin(self.cpu),
            "wrk",
            "-t1",
            f"-c{self.connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(LUA_SCRIPT),
            url + WEBHOOK_PATH,
            "--",
            str(self.body_file),
            self.signature,
            run_id,
            event,
            *(["count-status"] if self.count_status else []),
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(
                f"wrk failed on {target} ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        data = json.loads(line.removeprefix("BENCH_RESULT "))
        seconds_run = data["duration_us"] / 1e6
        latency = data["latency_ms"]
        counted = data["non2xx"]
        non2xx = int(counted if counted is not None else data["status_errors"])
        return LoadResult(
            target=target,
            round=round_,
            requests=data["requests"],
            seconds=seconds_run,
            per_second=(data["requests"] - non2xx) / seconds_run,
            p50_ms=latency["p50"],
            p90_ms=latency["p90"],
            p99_ms=latency["p99"],
            max_ms=latency["max"],
            non2xx=non2xx,
            socket_errors=sum(
                data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            ),
        )


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...]; [] if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process descended from it (a server may spawn workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the process and its descendants, from /proc.

    Live descendants count with their own time, ended ones through their parent's
    cutime/cstime, so work moved to child processes is not lost from the account.
    """
    ticks = 0
    for member in process_tree(pid):
        fields = _stat(member)
        if fields:
            ticks += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the process itself, without its children."""
    fields = _stat(pid)
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def peak_rss_mb(pid: int) -> tuple[float, int]:
    """The peak resident memory (VmHWM, MiB) summed over the process tree, and its size."""
    total, members = 0.0, process_tree(pid)
    for member in members:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
    return total, len(members)


UNHANDLED_EVENT = "issue_comment"  # the labeler subscribes to issues.opened only


@dataclass(frozen=True)
class Target:
    """What one wrk run loads: a server, and the event name the deliveries carry.

    ``drains`` marks the target whose handlers run after the 202: the bench waits for them.
    """

    name: str
    server: Server
    event: str = "issues"
    drains: bool = False
    labels: bool = False  # labels before it answers (Probot): its labels count, no drain
    settles: bool = False  # runs cheap handlers after the 202: wait until none is left
    journal_env: dict[str, str] | None = None  # its journal, emptied between rounds

    @property
    def counts_labels(self) -> bool:
        """Whether each delivery it acknowledges puts a label on the fake."""
        return self.drains or self.labels

    def purge(self) -> None:
        """Delete the finished deliveries of the last round (outside the measured time), so
        the journal does not grow by a gigabyte a round."""
        if self.journal_env is None:
            return
        subprocess.run(
            [sys.executable, "-m", "framework", "deliveries", "purge", "--older-than", "0s"],
            cwd=REPO_ROOT,
            env={**os.environ, **self.journal_env},
            capture_output=True,
            check=True,
            timeout=600,
        )


def measure(
    load: Load,
    target: Target,
    fake: Server,
    seconds: float,
    round_: int,
    acknowledged: int,
    profile_with: str | None = None,
) -> LoadResult:
    """One wrk run against ``target``; for the labeler, also the drain of its handlers.

    ``acknowledged`` counts the labeler's acknowledged deliveries before this run. With
    ``profile_with`` (py-spy), the labeler is recorded during the load and the drain
    separately, and the fake during both.
    """
    recorders: list[Recorder] = []
    pid = target.server.process.pid
    profiling = profile_with is not None and target.drains
    try:
        if profiling and profile_with is not None:
            recorders = [
                Recorder(profile_with, pid, RESULTS / "profile-labeler-load.txt"),
                Recorder(profile_with, fake.process.pid, RESULTS / "profile-fake.txt"),
            ]
        labels_before = fake_stats(fake)["labels_ok"]
        target_cpu, fake_cpu = cpu_seconds(pid), cpu_seconds(fake.process.pid)
        receiver_cpu = own_cpu_seconds(pid)
        result = load.run(target.name, target.server.url, seconds, round_, target.event)
        target_cpu_loaded = cpu_seconds(pid)
        result.cpu_seconds = target_cpu_loaded - target_cpu
        result.receiver_cpu_seconds = own_cpu_seconds(pid) - receiver_cpu
        if target.settles:
            wait_until_settled(target.server)
            target.purge()
        if not target.drains:
            return result
        if profiling and profile_with is not None:
            recorders[0].stop()
            recorders.append(Recorder(profile_with, pid, RESULTS / "profile-labeler-drain.txt"))
        acknowledged += result.requests - result.non2xx
        result.drain_seconds, stats = wait_for_labels(fake, acknowledged)
        result.drain_cpu_seconds = cpu_seconds(pid) - target_cpu_loaded
        result.fake_cpu_seconds = cpu_seconds(fake.process.pid) - fake_cpu
        result.labels_recorded = stats["labels_ok"] - labels_before
        target.purge()
        return result
    finally:
        for recorder in recorders:
            recorder.stop()


def wait_until_settled(server: Server) -> None:
    """Wait (bounded) until the bot's journal holds no pending or running delivery, read off
    its ``/metrics``, so its handlers do not run into the next target's measurement."""
    busy = re.compile(r'^framework_journal_deliveries\{status="(?:pending|running)"\} (\S+)$', re.M)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        status, body = http_get(server.url + "/metrics")
        if status == 200 and not any(float(x) for x in busy.findall(body.decode())):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} still had deliveries to run after {DRAIN_TIMEOUT:.0f} s")


def fake_stats(fake: Server) -> dict[str, Any]:
    status, body = http_get(fake.url + "/__bench/stats")
    if status != 200:
        raise RuntimeError(f"the fake's stats answered {status}")
    stats: dict[str, Any] = json.loads(body)
    return stats


def wait_for_labels(fake: Server, acknowledged: int) -> tuple[float, dict[str, Any]]:
    """Wait until the fake recorded a label for each acknowledged delivery (or stops moving).

    Returns the seconds waited and the fake's final stats. wrk's count misses the requests
    in flight when it stopped, which the labeler may have accepted too, so more labels than
    acknowledgements is normal; the wait ends once the count reaches ``acknowledged`` and has
    not moved for half a second, or has not moved for ten seconds, or after DRAIN_TIMEOUT.
    """
    start = time.monotonic()
    last_count, last_change = -1, start
    while True:
        stats = fake_stats(fake)
        done = stats["labels_ok"] + stats["labels_failed"]
        now = time.monotonic()
        if done != last_count:
            last_count, last_change = done, now
        still = now - last_change
        if (done >= acknowledged and still >= 0.5) or still >= 10 or now - start > DRAIN_TIMEOUT:
            return max(0.0, last_change - start), stats
        time.sleep(0.05)


# -------------------------------------------------------------------------------- report


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summarize(results: list[LoadResult], target: str) -> dict[str, Any]:
    """Medians over the rounds of one target (sums for the counts)."""
    mine = [r for r in results if r.target == target]
    summary: dict[str, Any] = {
        "rounds": len(mine),
        "per_second": median([r.per_second for r in mine]),
        "per_second_min": min(r.per_second for r in mine),
        "per_second_max": max(r.per_second for r in mine),
        "p50_ms": median([r.p50_ms for r in mine]),
        "p90_ms": median([r.p90_ms for r in mine]),
        "p99_ms": median([r.p99_ms for r in mine]),
        "cpu_us_per_delivery": median([r.cpu_us_per_delivery for r in mine]),
        "requests": sum(r.requests for r in mine),
        "non2xx": sum(r.non2xx for r in mine),
        "socket_errors": sum(r.socket_errors for r in mine),
    }
    drained = [r for r in mine if r.labels_recorded]
    if drained:
        summary["drain_seconds"] = median([r.drain_seconds or 0.0 for r in drained])
        summary["labels_per_second_with_drain"] = median(
            [(r.labels_recorded or 0) / (r.seconds + (r.drain_seconds or 0.0)) for r in drained]
        )
        summary["cpu_us_per_label_end_to_end"] = median(
            [
                1e6 * (r.cpu_seconds + (r.drain_cpu_seconds or 0.0)) / (r.labels_recorded or 1)
                for r in drained
            ]
        )
        summary["fake_cpu_us_per_label"] = median(
            [1e6 * (r.fake_cpu_seconds or 0.0) / (r.labels_recorded or 1) for r in drained]
        )
    return summary


def paired_ratios(
    results: list[LoadResult], target: str = "labeler", baseline: str = "floor"
) -> list[float]:
    """target/baseline throughput per round: each run against the same round's baseline run."""
    floor = {r.round: r for r in results if r.target == baseline}
    return [
        r.per_second / floor[r.round].per_second
        for r in results
        if r.target == target and r.round in floor
    ]


def ratios(
    results: list[LoadResult],
    name: str,
    target: dict[str, Any],
    baseline_name: str,
    baseline: dict[str, Any],
) -> dict[str, Any]:
    """One target's summary against a baseline's: throughput (overall and paired per round),
    latencies and CPU per acknowledgement."""
    per_round = paired_ratios(results, name, baseline_name)
    return {
        "throughput": target["per_second"] / baseline["per_second"],
        "throughput_paired": median(per_round),
        "throughput_per_round": per_round,
        "p50": target["p50_ms"] / baseline["p50_ms"],
        "p99": target["p99_ms"] / baseline["p99_ms"],
        "cpu_per_ack": target["cpu_us_per_delivery"] / baseline["cpu_us_per_delivery"],
    }


def summarize_all(
    results: list[LoadResult], fake: dict[str, Any], acknowledged: int
) -> dict[str, Any]:
    """Every target, the ratios to the floor, and what the fake recorded."""
    floor, labeler = summarize(results, "floor"), summarize(results, "labeler")
    unhandled: dict[str, Any] | None = None
    if any(r.target == "unhandled" for r in results):
        unhandled = summarize(results, "unhandled")
        unhandled["ratios"] = ratios(results, "unhandled", unhandled, "floor", floor)
    counting: dict[str, Any] | None = None
    if any(r.target == "counting" for r in results):
        counting = summarize(results, "counting")
        counting["ratios"] = ratios(results, "counting", counting, "floor", floor)
    probot: dict[str, Any] | None = None
    if any(r.target == "probot" for r in results):
        probot = summarize(results, "probot")
        probot["labeler"] = ratios(results, "labeler", labeler, "probot", probot)
        if unhandled is not None:
            probot["unhandled"] = ratios(results, "unhandled", unhandled, "probot", probot)
        if counting is not None:
            probot["counting"] = ratios(results, "counting", counting, "probot", probot)
    journal: dict[str, Any] = {}
    if any(r.target == "core" for r in results):
        core = summarize(results, "core")
        journal["core"] = core
        for name in ("labeler", "redis"):
            if any(r.target == name for r in results):
                mine = summarize(results, name) if name != "labeler" else labeler
                journal[name] = ratios(results, name, mine, "core", core)
                if name != "labeler":
                    journal[name]["summary"] = mine
    return {
        "floor": floor,
        "labeler": labeler,
        "unhandled": unhandled,
        "counting": counting,
        "probot": probot,
        "journal": journal,
        "ratios": {
            **ratios(results, "labeler", labeler, "floor", floor),
            "cpu_end_to_end": labeler["cpu_us_per_label_end_to_end"] / floor["cpu_us_per_delivery"],
        },
        "labels": {
            "recorded": fake["labels_ok"],
            "failed": fake["labels_failed"],
            "mints": fake["mints_ok"],
            "acknowledged": acknowledged,
            "fake": fake,
        },
    }


def progress_line(r: LoadResult) -> str:
    receiver_us = 1e6 * r.receiver_cpu_seconds / max(1, r.requests)
    line = (
        f"round {r.round} {r.target:<10}{r.per_second:8.0f}/s  p50 {r.p50_ms:6.2f} ms  "
        f"p99 {r.p99_ms:6.2f} ms  CPU {r.cpu_us_per_delivery:5.0f} us/delivery "
        f"({receiver_us:.0f} in the receiver)  "
        f"non-2xx {r.non2xx}"
    )
    if r.drain_seconds is not None:
        line += f"; handlers drained in {r.drain_seconds:.1f} s"
    return line


def ratio_rows(label: str, ratios: dict[str, Any], note: str | None = None) -> list[str]:
    """The lines comparing one target with the floor: throughput, latency, CPU."""
    per_round = ", ".join(f"{x:.2f}" for x in ratios["throughput_per_round"])
    indent = " " * 15
    return [
        f"{label} throughput {ratios['throughput']:.2f}x  (per round {per_round}; "
        f"median {ratios['throughput_paired']:.2f}x)",
        f"{indent}latency p50 {ratios['p50']:.2f}x  p99 {ratios['p99']:.2f}x  "
        f"CPU per acknowledgement {ratios['cpu_per_ack']:.2f}x",
        *([f"{indent}{note}"] if note else []),
    ]


def render(summary: dict[str, Any]) -> str:
    """The table printed at the end of a run."""
    floor, labeler, ratios = summary["floor"], summary["labeler"], summary["ratios"]
    unhandled = summary.get("unhandled")
    shown = [("floor", floor), ("labeler", labeler)]
    counting = summary.get("counting")
    if counting:
        shown.append(("counting", counting))
    if unhandled:
        shown.append(("unhandled", unhandled))
    rows = [
        f"{'target':<10}{'deliveries/s':>13}{'(min-max)':>14}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU us/dlv':>12}{'non-2xx':>9}{'sock err':>9}",
    ]
    for name, s in shown:
        spread = f"({s['per_second_min']:.0f}-{s['per_second_max']:.0f})"
        rows.append(
            f"{name:<10}{s['per_second']:>13.0f}{spread:>14}{s['p50_ms']:>9.2f}"
            f"{s['p99_ms']:>9.2f}{s['cpu_us_per_delivery']:>12.0f}{s['non2xx']:>9}"
            f"{s['socket_errors']:>9}"
        )
    labels = summary["labels"]
    rows += ["", *ratio_rows("labeler/floor ", ratios)]
    if counting:
        rows += ratio_rows(
            "counting/floor",
            counting["ratios"],
            "(counting: bench/count_bot.py, a handler that only counts: journal, run and "
            "finish, no API call)",
        )
    if unhandled:
        rows += ratio_rows(
            "unhandled/floor",
            unhandled["ratios"],
            f"(unhandled: the labeler receiving {UNHANDLED_EVENT} deliveries, which no handler "
            "wants: the acknowledgement path alone)",
        )
    probot = summary.get("probot")
    if probot:
        rows += [
            "",
            f"probot (Probot 14, pacing off; answers after its handler): "
            f"{probot['per_second']:.0f}/s, p99 {probot['p99_ms']:.2f} ms, "
            f"CPU {probot['cpu_us_per_delivery']:.0f} us/delivery",
        ]
        for name in ("labeler", "counting", "unhandled"):
            if name in probot:
                j = probot[name]
                per_round = ", ".join(f"{x:.2f}" for x in j["throughput_per_round"])
                rows.append(
                    f"  {name + '/probot':<16} throughput {j['throughput']:.2f}x (per round "
                    f"{per_round}; median {j['throughput_paired']:.2f}x)  p99 {j['p99']:.2f}x"
                )
    journal = summary.get("journal") or {}
    if journal:
        core = journal["core"]
        rows += [
            "",
            f"the journal, against the core without one (commit {summary.get('core_commit')}): "
            f"core {core['per_second']:.0f}/s, p99 {core['p99_ms']:.2f} ms, "
            f"CPU {core['cpu_us_per_delivery']:.0f} us/delivery",
        ]
        for name, label in (("labeler", "SQLite"), ("redis", "Redis")):
            if name in journal:
                j = journal[name]
                per_round = ", ".join(f"{x:.2f}" for x in j["throughput_per_round"])
                extra = ""
                if "summary" in j:
                    t = j["summary"]
                    extra = f"; {t['per_second']:.0f}/s, p99 {t['p99_ms']:.2f} ms"
                rows.append(
                    f"  {label + '/core':<12} throughput {j['throughput']:.2f}x (per round "
                    f"{per_round}; median {j['throughput_paired']:.2f}x)  p99 {j['p99']:.2f}x  "
                    f"CPU per ack {j['cpu_per_ack']:.2f}x{extra}"
                )
    rows += [
        "",
        f"handlers: the fake recorded {labels['recorded']} labels for {labels['acknowledged']} "
        f"deliveries acknowledged (warm-up included; {labels['failed']} label requests "
        f"failed; {labels['mints']} token mint(s))",
        f"          after each round the labeler needed {labeler['drain_seconds']:.1f} s "
        f"(median) to finish its handlers; labels/s over load + drain: "
        f"{labeler['labels_per_second_with_drain']:.0f}",
        f"          labeler CPU per delivery, acknowledgement + handler: "
        f"{labeler['cpu_us_per_label_end_to_end']:.0f} us ({ratios['cpu_end_to_end']:.1f}x the "
        f"floor's); the fake's: {labeler['fake_cpu_us_per_label']:.0f} us per label",
    ]
    for name, s in shown:
        if s["non2xx"] or s["socket_errors"]:
            log = "floor" if name == "floor" else "labeler"
            rows.append(
                f"WARNING: {name} gave {s['non2xx']} non-2xx answers and {s['socket_errors']} "
                "socket errors: deliveries/s counts 2xx only, latencies include the refusals "
                f"(log: bench/results/logs/{log}.log)"
            )
    peaks = summary.get("peak_rss_mb")
    if peaks:
        rows.append(
            "peak RSS: "
            + ", ".join(
                f"{name} {mb:.0f} MiB" + (f" ({n} processes)" if n > 1 else "")
                for name, (mb, n) in peaks.items()
            )
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (10)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of floor, unhandled, labeler (3)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per target (3)")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin floor and labeler to one CPU, wrk and the fake to another (default: on)",
    )
    parser.add_argument(
        "--count-status",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count every non-2xx answer in the Lua response() hook (default; it cost nothing "
        "measurable here); --no-count-status counts only answers >= 400, with wrk's own counter",
    )
    parser.add_argument(
        "--unhandled",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also load the labeler with {UNHANDLED_EVENT} deliveries, which no handler wants: "
        "its acknowledgement path alone (default: on)",
    )
    parser.add_argument(
        "--journal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the core without a journal (--core-commit, checked out with git "
        "worktree) and the labeler on Redis, to give the journal's cost (default: on)",
    )
    parser.add_argument(
        "--probot",
        action=argparse.BooleanOptionalAction,
        default=(PROBOT / "node_modules").is_dir(),
        help="also load Probot 14's labeler (bench/probot, write pacing off; it answers after "
        "its handler): default on when `npm ci --prefix bench/probot` has installed it",
    )
    parser.add_argument(
        "--core-commit",
        default=CORE_COMMIT,
        help=f"the framework before the journal (default {CORE_COMMIT[:7]}, issue 2's last)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the labeler (load, then drain) and the fake with py-spy during one extra "
        "labeler run left out of the figures (bench/results/profile-*.txt)",
    )
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="the py-spy binary")
    parser.add_argument("--payload-bytes", type=int, default=18 * 1024, help="body size (18432)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="results file")
    return parser.parse_args(argv)


def cpus_for(pin_them: bool) -> tuple[int | None, int | None]:
    """(CPU of the servers under test, CPU of wrk and the fake), or Nones for no pinning."""
    allowed = sorted(os.sched_getaffinity(0))
    if not pin_them or len(allowed) < 2 or shutil.which("taskset") is None:
        return None, None
    return allowed[0], allowed[1]


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop the servers."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


CORE_SRC = RESULTS / "core-src"


def remove_core_checkout() -> None:
    """Remove the baseline's worktree (it would otherwise sit in the tree between runs)."""
    if CORE_SRC.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(CORE_SRC)], cwd=REPO_ROOT,
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(CORE_SRC, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=REPO_ROOT, capture_output=True, check=False)


def core_checkout(commit: str) -> Path:
    """The framework at ``commit``, checked out beside the results (git worktree)."""
    where = CORE_SRC
    remove_core_checkout()
    done = subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), commit],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"cannot check out {commit} for the core baseline: {done.stderr}")
    return where


def start_redis(servers: Servers, cpu: int | None) -> tuple[Server, str]:
    """A redis-server persisting every write (appendonly, fsync every second)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    data = RESULTS / "redis"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    server = servers.start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec"],
        {}, port, cpu,
    )  # fmt: skip
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return server, f"redis://127.0.0.1:{port}/0"
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise RuntimeError(f"redis-server did not start:\n{server.log_tail()}")
        time.sleep(0.05)


def code_version() -> dict[str, Any]:
    """The commit measured and the files changed since (figures belong to a version)."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "framework", "sample_bots").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "changed": [line[3:] for line in changed]}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile and not args.py_spy:
        print("--profile needs py-spy: pip install py-spy, or pass --py-spy PATH", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed; the bench needs it to load the servers. Install it with:\n"
            f"    {WRK_INSTALL}",
            file=sys.stderr,
        )
        return 2
    code = code_version()  # before the run: the tree may change while it runs
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)

    secret = secrets.token_hex(20)
    body = build_payload(INSTALLATION_ID, args.payload_bytes)
    body_file = RESULTS / "payload.json"
    body_file.write_bytes(body)
    repository = repository_of(body)
    server_cpu, load_cpu = cpus_for(args.pin)
    load = Load(body_file, sign(body, secret), args.connections, load_cpu, args.count_status)
    python = sys.executable
    servers = Servers(log_dir)
    results: list[LoadResult] = []
    warmups: list[LoadResult] = []

    with sigterm_as_exit():
        try:
            bot_port, floor_port = free_port(), free_port()
            fake, private_pem = start_fake_github(servers, repository, load_cpu)
            bot_env = {
                "APP_ID": str(APP_ID),
                "PRIVATE_KEY": private_pem,
                "WEBHOOK_SECRET": secret,
                "GITHUB_API_URL": fake.url,
                "HOST": "127.0.0.1",
                "LOG_LEVEL": "warning",
            }
            journal_path = RESULTS / "journal.sqlite3"
            for leftover in RESULTS.glob("journal.sqlite3*"):
                if leftover.is_dir():  # the bodies beside the database
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            sqlite_env = {"JOURNAL_PATH": str(journal_path)}
            labeler = servers.start(
                "labeler",
                [python, "-m", "framework", "run", "sample_bots/labeler.py"],
                {**bot_env, **sqlite_env, "PORT": str(bot_port)},
                bot_port,
                server_cpu,
            )
            extra: list[Target] = []
            if args.journal:
                core_src, core_port = core_checkout(args.core_commit), free_port()
                core = servers.start(
                    "core",
                    [python, "-m", "framework", "run", "sample_bots/labeler.py"],
                    {
                        **bot_env,
                        "PORT": str(core_port),
                        "PYTHONPATH": str(core_src),
                        # A 10 s round at full speed acknowledges ~1 GiB of payloads faster
                        # than its handlers finish them; the core kept them in memory, up to
                        # BACKLOG_MAX_BYTES (1 GiB by default, then 503).
                        "BACKLOG_MAX_BYTES": str(4 * 1024**3),
                    },
                    core_port,
                    server_cpu,
                    cwd=core_src,
                )
                # Beside the fake GitHub, as if on another machine, as Redis would be.
                _, redis_url = start_redis(servers, load_cpu)
                redis_env = {"REDIS_URL": redis_url, "REDIS_PREFIX": "bench"}
                redis_port = free_port()
                on_redis = servers.start(
                    "redis-labeler",
                    [python, "-m", "framework", "run", "sample_bots/labeler.py"],
                    {**bot_env, **redis_env, "PORT": str(redis_port)},
                    redis_port,
                    server_cpu,
                )
                wait_until_up(core, "/healthz", {200})
                wait_until_up(on_redis, "/healthz", {200})
                extra = [
                    Target("core", core, drains=True),
                    Target("redis", on_redis, drains=True, journal_env=redis_env),
                ]
            counting_port = free_port()
            counting_env = {"JOURNAL_PATH": str(RESULTS / "journal-count.sqlite3")}
            for leftover in RESULTS.glob("journal-count.sqlite3*"):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            counting = servers.start(
                "counting",
                [python, "-m", "framework", "run", str(BENCH / "count_bot.py")],
                {**bot_env, **counting_env, "PORT": str(counting_port)},
                counting_port,
                server_cpu,
            )
            floor = servers.start(
                "floor",
                [python, str(BENCH / "floor.py")],
                {"WEBHOOK_SECRET": secret, "HOST": "127.0.0.1", "PORT": str(floor_port)},
                floor_port,
                server_cpu,
            )
            probot = None
            if args.probot:
                key_path = RESULTS / "app-key.pem"
                key_path.write_text(private_pem)
                key_path.chmod(0o600)
                probot_port = free_port()
                probot = servers.start(
                    "probot",
                    ["node", str(PROBOT / "server.mjs")],
                    {**bot_env, "PRIVATE_KEY_PATH": str(key_path), "PROBOT_PACING": "off",
                     "LOG_LEVEL": "warn", "PORT": str(probot_port)},
                    probot_port,
                    server_cpu,
                )  # fmt: skip
            wait_until_up(fake, "/__bench/stats", {200})
            wait_until_up(labeler, "/healthz", {200})
            wait_until_up(floor, WEBHOOK_PATH, {405})
            wait_until_up(counting, "/healthz", {200})
            targets = [Target("floor", floor)]
            if probot is not None:
                wait_until_up(probot, WEBHOOK_PATH, set(range(200, 600)))
                targets.append(Target("probot", probot, labels=True))
            targets.append(Target("counting", counting, settles=True, journal_env=counting_env))
            if args.unhandled:
                targets.append(Target("unhandled", labeler, event=UNHANDLED_EVENT))
            handled = Target("labeler", labeler, drains=True, journal_env=sqlite_env)
            targets += extra
            targets.append(handled)  # last: its handlers drain before the next floor run
            pinning = (
                f"servers on CPU {server_cpu}, wrk and fake on CPU {load_cpu}"
                if server_cpu is not None
                else "no pinning"
            )
            print(
                f"payload {len(body)} bytes; wrk -t1 -c{args.connections} -d{args.seconds:g}s; "
                f"{args.rounds} rounds; {pinning}",
                flush=True,
            )

            acknowledged = 0
            for target in targets:
                print(f"warm-up {target.name} ({args.warmup:g} s)", flush=True)
                warm = measure(load, target, fake, args.warmup, 0, acknowledged)
                acknowledged += warm.requests - warm.non2xx if target.counts_labels else 0
                warmups.append(warm)
            if args.profile:
                print(f"profiling the labeler with py-spy ({args.seconds:g} s)", flush=True)
                profiled = measure(load, handled, fake, args.seconds, 0, acknowledged, args.py_spy)
                acknowledged += profiled.requests - profiled.non2xx
                warmups.append(profiled)
            for round_ in range(1, args.rounds + 1):
                for target in targets:
                    result = measure(load, target, fake, args.seconds, round_, acknowledged)
                    acknowledged += result.requests - result.non2xx if target.counts_labels else 0
                    results.append(result)
                    print(progress_line(result), flush=True)
            final = fake_stats(fake)
            peaks = {s.name: peak_rss_mb(s.process.pid) for s in servers.started}
            for server in servers.started:
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} died during the run:\n{server.log_tail()}")
        except KeyboardInterrupt:
            print("interrupted; stopping the servers", file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            servers.stop_all()
            remove_core_checkout()

    summary = summarize_all(results, final, acknowledged)
    summary["peak_rss_mb"] = peaks
    summary["core_commit"] = args.core_commit if args.journal else None
    print()
    print(render(summary))
    if args.profile:
        for name in ("labeler-load", "labeler-drain", "fake"):
            path = RESULTS / f"profile-{name}.txt"
            if path.exists():
                print()
                print(top_frames(path))
    report = {
        "summary": summary,
        "runs": [asdict(r) for r in results],
        "warmups": [asdict(r) for r in warmups],
        "code": code,
        "config": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "connections": args.connections,
            "warmup_seconds": args.warmup,
            "payload_bytes": len(body),
            "count_status": args.count_status,
            "unhandled_event": UNHANDLED_EVENT if args.unhandled else None,
            "server_cpu": server_cpu,
            "load_cpu": load_cpu,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "allowed_cpus": sorted(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "wrk": subprocess.run(
                ["wrk", "--version"], capture_output=True, text=True, check=False
            ).stdout.splitlines()[:1],
            "loadavg_at_end": os.getloadavg(),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
