"""Acknowledgement throughput of the running labeler against the floor of honest work.

    .venv/bin/python bench/run.py [--seconds 10] [--rounds 3] [--connections 32]

Starts a fake GitHub (bench/fake_server.py), the labeler (``python -m framework run
sample_bots/labeler.py``) and the floor (bench/floor.py), each a uvicorn process on a free
loopback port; then loads floor and labeler in interleaved rounds with wrk and signed ~18 KB
``issues.opened`` deliveries, each with its own ``X-GitHub-Delivery``. After every labeler
round it waits until the fake has recorded a label for every acknowledged delivery (the
handlers run after the 202), so a backlog never spills into the next round.

Prints, per target, the median deliveries/s and latencies over the rounds, and the ratios
labeler/floor; writes everything to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
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
from dataclasses import asdict, dataclass, field
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
WEBHOOK_PATH = "/api/github/webhooks"
APP_ID = 4242
INSTALLATION_ID = 7654321
STARTUP_TIMEOUT = 30.0
DRAIN_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
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
        self, name: str, argv: Sequence[str], env: dict[str, str], port: int, cpu: int | None
    ) -> Server:
        command = [*pin(cpu), *argv]
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
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
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    drain_seconds: float | None = None
    labels_recorded: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Load:
    """How to load a target: the wrk options shared by every run."""

    body_file: Path
    signature: str
    connections: int
    cpu: int | None
    count_status: bool

    def run(self, target: str, url: str, seconds: float, round_: int) -> LoadResult:
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
            "issues",
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
        return LoadResult(
            target=target,
            round=round_,
            requests=data["requests"],
            seconds=seconds_run,
            per_second=data["requests"] / seconds_run,
            p50_ms=latency["p50"],
            p90_ms=latency["p90"],
            p99_ms=latency["p99"],
            max_ms=latency["max"],
            non2xx=int(counted if counted is not None else data["status_errors"]),
            socket_errors=sum(
                data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            ),
        )


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


def summarize(results: list[LoadResult], target: str) -> dict[str, float]:
    mine = [r for r in results if r.target == target]
    return {
        "rounds": len(mine),
        "per_second": median([r.per_second for r in mine]),
        "per_second_min": min(r.per_second for r in mine),
        "per_second_max": max(r.per_second for r in mine),
        "p50_ms": median([r.p50_ms for r in mine]),
        "p90_ms": median([r.p90_ms for r in mine]),
        "p99_ms": median([r.p99_ms for r in mine]),
        "requests": sum(r.requests for r in mine),
        "non2xx": sum(r.non2xx for r in mine),
        "socket_errors": sum(r.socket_errors for r in mine),
    }


def paired_ratios(results: list[LoadResult]) -> list[float]:
    """labeler/floor throughput per round: each labeler run against the floor run before it."""
    floor = {r.round: r for r in results if r.target == "floor"}
    return [
        r.per_second / floor[r.round].per_second
        for r in results
        if r.target == "labeler" and r.round in floor
    ]


def render(summary: dict[str, Any]) -> str:
    floor, labeler = summary["floor"], summary["labeler"]
    ratios = summary["ratios"]
    rows = [
        f"{'target':<9}{'deliveries/s':>14}{'(min-max)':>18}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'sock err':>9}",
    ]
    for name, s in (("floor", floor), ("labeler", labeler)):
        spread = f"({s['per_second_min']:.0f}-{s['per_second_max']:.0f})"
        rows.append(
            f"{name:<9}{s['per_second']:>14.0f}{spread:>18}{s['p50_ms']:>9.2f}"
            f"{s['p99_ms']:>9.2f}{s['non2xx']:>9}{s['socket_errors']:>9}"
        )
    paired = ", ".join(f"{x:.2f}" for x in ratios["throughput_per_round"])
    rows += [
        "",
        f"labeler/floor throughput {ratios['throughput']:.2f}x "
        f"(per round: {paired}; median {ratios['throughput_paired']:.2f}x)",
        f"labeler/floor latency    p50 {ratios['p50']:.2f}x   p99 {ratios['p99']:.2f}x",
        "",
    ]
    labels = summary["labels"]
    rows.append(
        f"labels recorded by the fake: {labels['recorded']} for {labels['acknowledged']} "
        f"deliveries acknowledged (202) by the labeler, warm-up included "
        f"({labels['failed']} label requests failed; {labels['mints']} token mints)"
    )
    rows.append(
        f"handler backlog after a round: drained in {labels['drain_seconds_median']:.2f} s "
        f"(median); labels/s including the drain: {labels['sustained_per_second']:.0f}"
    )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (10)")
    parser.add_argument("--rounds", type=int, default=3, help="floor+labeler rounds (3)")
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
        default=False,
        help="count every non-2xx in Lua response() (slower wrk); default: wrk's own count of "
        "answers >= 400",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the labeler and the fake with py-spy during the rounds "
        "(bench/results/profile-*.txt); a profiled run's figures are perturbed",
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
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)

    secret = secrets.token_hex(20)
    body = build_payload(INSTALLATION_ID, args.payload_bytes)
    body_file = RESULTS / "payload.json"
    body_file.write_bytes(body)
    repository = repository_of(body)
    private_pem, public_key = generate_app_key()
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    server_cpu, load_cpu = cpus_for(args.pin)
    load = Load(body_file, sign(body, secret), args.connections, load_cpu, args.count_status)
    python = sys.executable
    servers = Servers(log_dir)
    results: list[LoadResult] = []
    warmups: list[LoadResult] = []
    recorders: list[Recorder] = []

    with sigterm_as_exit():
        try:
            fake_port, bot_port, floor_port = free_port(), free_port(), free_port()
            fake = servers.start(
                "fake-github",
                [python, str(BENCH / "fake_server.py")],
                {
                    "BENCH_APP_ID": str(APP_ID),
                    "BENCH_PUBLIC_KEY": public_pem,
                    "BENCH_INSTALLATION_ID": str(INSTALLATION_ID),
                    "BENCH_REPOSITORY": repository,
                    "HOST": "127.0.0.1",
                    "PORT": str(fake_port),
                },
                fake_port,
                load_cpu,
            )
            labeler = servers.start(
                "labeler",
                [python, "-m", "framework", "run", "sample_bots/labeler.py"],
                {
                    "APP_ID": str(APP_ID),
                    "PRIVATE_KEY": private_pem,
                    "WEBHOOK_SECRET": secret,
                    "GITHUB_API_URL": fake.url,
                    "HOST": "127.0.0.1",
                    "PORT": str(bot_port),
                    "LOG_LEVEL": "warning",
                },
                bot_port,
                server_cpu,
            )
            floor = servers.start(
                "floor",
                [python, str(BENCH / "floor.py")],
                {"WEBHOOK_SECRET": secret, "HOST": "127.0.0.1", "PORT": str(floor_port)},
                floor_port,
                server_cpu,
            )
            wait_until_up(fake, "/__bench/stats", {200})
            wait_until_up(labeler, "/healthz", {200})
            wait_until_up(floor, WEBHOOK_PATH, {405})
            targets = {"floor": floor, "labeler": labeler}
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
            for name, server in targets.items():
                print(f"warm-up {name} ({args.warmup:g} s)", flush=True)
                warm = load.run(name, server.url, args.warmup, 0)
                warmups.append(warm)
                if name == "labeler":
                    acknowledged += warm.requests - warm.non2xx
                    warm.drain_seconds, stats = wait_for_labels(fake, acknowledged)
            if args.profile:
                recorders = [
                    Recorder(args.py_spy, s.process.pid, RESULTS / f"profile-{s.name}.txt")
                    for s in (labeler, fake)
                ]
            for round_ in range(1, args.rounds + 1):
                for name, server in targets.items():
                    before = fake_stats(fake)["labels_ok"]
                    result = load.run(name, server.url, args.seconds, round_)
                    if name == "labeler":
                        acknowledged += result.requests - result.non2xx
                        result.drain_seconds, stats = wait_for_labels(fake, acknowledged)
                        result.labels_recorded = stats["labels_ok"] - before
                    results.append(result)
                    drain = (
                        f", drained in {result.drain_seconds:.2f} s"
                        if result.drain_seconds is not None
                        else ""
                    )
                    print(
                        f"round {round_} {name:<8} {result.per_second:8.0f}/s  "
                        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"non-2xx {result.non2xx}{drain}",
                        flush=True,
                    )
            final = fake_stats(fake)
            for recorder in recorders:
                recorder.stop()
            for server in (fake, labeler, floor):
                if server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} died during the run:\n{server.log_tail()}")
        except KeyboardInterrupt:
            print("interrupted; stopping the servers", file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for recorder in recorders:
                recorder.stop()
            servers.stop_all()

    floor_summary = summarize(results, "floor")
    labeler_summary = summarize(results, "labeler")
    paired = paired_ratios(results)
    labeler_runs = [r for r in results if r.target == "labeler"]
    sustained = [
        (r.labels_recorded or 0) / (r.seconds + (r.drain_seconds or 0.0)) for r in labeler_runs
    ]
    summary: dict[str, Any] = {
        "floor": floor_summary,
        "labeler": labeler_summary,
        "ratios": {
            "throughput": labeler_summary["per_second"] / floor_summary["per_second"],
            "throughput_paired": median(paired),
            "throughput_per_round": paired,
            "p50": labeler_summary["p50_ms"] / floor_summary["p50_ms"],
            "p99": labeler_summary["p99_ms"] / floor_summary["p99_ms"],
        },
        "labels": {
            "recorded": final["labels_ok"],
            "failed": final["labels_failed"],
            "mints": final["mints_ok"],
            "acknowledged": acknowledged,
            "drain_seconds_median": median([r.drain_seconds or 0.0 for r in labeler_runs]),
            "sustained_per_second": median(sustained),
            "fake": final,
        },
    }
    print()
    print(render(summary))
    for recorder in recorders:
        if recorder.output.exists():
            print()
            print(top_frames(recorder.output))
    report = {
        "summary": summary,
        "runs": [asdict(r) for r in results],
        "warmups": [asdict(r) for r in warmups],
        "config": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "connections": args.connections,
            "warmup_seconds": args.warmup,
            "payload_bytes": len(body),
            "count_status": args.count_status,
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
