"""End to end: a burst of ``issues.opened`` deliveries, from the first send to the last label.

    .venv/bin/python bench/burst.py            # --deliveries 3000 --connections 64 --rounds 3

What a bot's user feels is not the acknowledgement but the label on the issue. This bench sends
a burst of signed deliveries (each with its own delivery id and issue number) to each labeler in
turn, all against the same fake GitHub, and records when each label arrives there:

- ``labeler``: ``python -m framework run sample_bots/labeler.py``, defaults (SQLite journal);
- ``minimal``: ``bench/minimal_bot.py``, the least an honest labeler does (HMAC, JSON, 202, one
  label POST over a shared aiohttp pool with a cached token; no journal, no retries);
- ``probot``: Probot 14 from npm (``bench/probot``), its write pacing off, and ``probot-paced``,
  Probot as shipped (writes paced by its throttling plugin), sent a short burst only.

Every bot and every process it starts runs on the first CPU; the sender (this process) and the
fake on the second. For each burst: deliveries acknowledged per second, labels completed per
second (both from the first send), p50/p99 from send to label, CPU per delivery (the bot's whole
process tree, from the first send to the last label), peak RSS, and deliveries lost or labelled
twice. ``--neighbour`` adds rounds of the labeler and the minimal bot with a CPU-bound process
on their core, to see whether the ratio holds. Results also go to ``bench/results/burst.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payload import build_payload, repository_of, sign
from run import (
    APP_ID,
    BENCH,
    INSTALLATION_ID,
    PROBOT,
    RESULTS,
    WEBHOOK_PATH,
    Server,
    Servers,
    code_version,
    cpu_seconds,
    cpus_for,
    free_port,
    peak_rss_mb,
    sigterm_as_exit,
    start_fake_github,
    wait_until_up,
)

LABEL_WAIT_SECONDS = 300.0
POLL_SECONDS = 0.05


@dataclass
class Burst:
    """One burst against one target."""

    target: str
    round: int
    neighbour: bool
    sent: int
    acknowledged: int = 0
    refused: int = 0  # answers outside 2xx
    errors: int = 0  # connection errors and timeouts
    ack_seconds: float = 0.0  # first send to last answer
    label_seconds: float = 0.0  # first send to last label
    labelled: int = 0  # issues with at least one label
    twice: int = 0  # issues labelled more than once
    latencies: list[float] = field(default_factory=list, repr=False)  # send to label, s
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    processes: int = 0

    @property
    def acks_per_second(self) -> float:
        return self.acknowledged / self.ack_seconds if self.ack_seconds else 0.0

    @property
    def labels_per_second(self) -> float:
        return self.labelled / self.label_seconds if self.label_seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    @property
    def cpu_ms_per_delivery(self) -> float:
        return 1e3 * self.cpu_seconds / max(1, self.sent)

    @property
    def lost(self) -> int:
        return self.acknowledged - min(self.acknowledged, self.labelled)

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        del data["latencies"]
        return {
            **data,
            "acks_per_second": self.acks_per_second,
            "labels_per_second": self.labels_per_second,
            "p50_seconds": self.percentile(0.50),
            "p99_seconds": self.percentile(0.99),
            "cpu_ms_per_delivery": self.cpu_ms_per_delivery,
            "lost": self.lost,
        }


class Deliveries:
    """Signed ``issues.opened`` bodies, each with an issue number never used before."""

    def __init__(self, secret: str, payload_bytes: int) -> None:
        self.secret = secret
        self.payload: dict[str, Any] = json.loads(build_payload(INSTALLATION_ID, payload_bytes))
        self.next_number = 1000
        self.node = secrets.randbits(48)
        """The node field of the delivery ids: GitHub's are version-1 UUIDs, a clock first."""

    def make(self, count: int) -> list[tuple[int, bytes, dict[str, str]]]:
        out = []
        for _ in range(count):
            number = self.next_number
            self.next_number += 1
            self.payload["issue"]["number"] = number
            body = json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": str(uuid.uuid1(self.node)),
                "X-GitHub-Hook-ID": "1",
                "X-Hub-Signature-256": sign(body, self.secret),
                "User-Agent": "GitHub-Hookshot/bench",
            }
            out.append((number, body, headers))
        return out


async def send_all(
    url: str, batch: list[tuple[int, bytes, dict[str, str]]], connections: int
) -> tuple[dict[int, float], float, float, int, int, int]:
    """POST every delivery over ``connections`` connections; (send times, first send, last
    answer, acknowledged, refused, errors)."""
    sent_at: dict[int, float] = {}
    counts = {"ok": 0, "refused": 0, "errors": 0}
    last = 0.0
    queue = iter(batch)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal last
            for number, body, headers in queue:
                sent_at[number] = time.time()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = 200 <= response.status < 300
                        counts["ok" if ok else "refused"] += 1
                except (TimeoutError, aiohttp.ClientError):
                    counts["errors"] += 1
                last = max(last, time.time())

        first = time.time()
        await asyncio.gather(*(worker() for _ in range(connections)))
    return sent_at, first, last, counts["ok"], counts["refused"], counts["errors"]


def fake_labels(fake: Server, method: str = "GET") -> dict[int, list[float]]:
    """When each issue was labelled (``DELETE``: and forget them)."""
    request = urllib.request.Request(fake.url + "/__bench/labels", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return {int(k): v for k, v in json.loads(response.read()).items()}


def burst(
    target: str,
    bot: Server,
    fake: Server,
    deliveries: Deliveries,
    count: int,
    connections: int,
    round_: int,
    neighbour: bool,
    wait_seconds: float = LABEL_WAIT_SECONDS,
) -> Burst:
    """Send one burst and wait (bounded) for its labels."""
    batch = deliveries.make(count)
    numbers = {number for number, _, _ in batch}
    fake_labels(fake, "DELETE")
    cpu_before = cpu_seconds(bot.process.pid)
    sent_at, first, last_ack, ok, refused, errors = asyncio.run(
        send_all(bot.url + WEBHOOK_PATH, batch, connections)
    )
    result = Burst(target, round_, neighbour, count, ok, refused, errors, last_ack - first)
    deadline = time.monotonic() + wait_seconds
    labels: dict[int, list[float]] = {}
    while time.monotonic() < deadline:
        labels = fake_labels(fake)
        if numbers <= labels.keys():
            break
        if bot.process.poll() is not None:
            raise RuntimeError(f"{target} died during a burst:\n{bot.log_tail()}")
        time.sleep(POLL_SECONDS)
    result.cpu_seconds = cpu_seconds(bot.process.pid) - cpu_before
    result.peak_rss_mib, result.processes = peak_rss_mb(bot.process.pid)
    ours = {n: times for n, times in labels.items() if n in numbers}
    result.labelled = len(ours)
    result.twice = sum(1 for times in ours.values() if len(times) > 1)
    if ours:
        result.label_seconds = max(min(times) for times in ours.values()) - first
    result.latencies = [min(times) - sent_at[n] for n, times in ours.items()]
    return result


def summarize(bursts: list[Burst], target: str, neighbour: bool) -> dict[str, Any] | None:
    mine = [b for b in bursts if b.target == target and b.neighbour == neighbour]
    if not mine:
        return None

    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    return {
        "target": target,
        "neighbour": neighbour,
        "rounds": len(mine),
        "sent": sum(b.sent for b in mine),
        "acks_per_second": med([b.acks_per_second for b in mine]),
        "labels_per_second": med([b.labels_per_second for b in mine]),
        "p50_seconds": med([b.percentile(0.5) for b in mine]),
        "p99_seconds": med([b.percentile(0.99) for b in mine]),
        "cpu_ms_per_delivery": med([b.cpu_ms_per_delivery for b in mine]),
        "peak_rss_mib": max(b.peak_rss_mib for b in mine),
        "processes": max(b.processes for b in mine),
        "lost": sum(b.lost for b in mine),
        "twice": sum(b.twice for b in mine),
        "refused": sum(b.refused for b in mine),
        "errors": sum(b.errors for b in mine),
        "per_round_labels_per_second": [round(b.labels_per_second) for b in mine],
    }


def paired(bursts: list[Burst], a: str, b: str, neighbour: bool, key: str) -> list[float]:
    """Per-round ratios a/b of one figure (``key`` a Burst property), rounds matched."""
    mine = {x.round: x for x in bursts if x.target == a and x.neighbour == neighbour}
    theirs = {x.round: x for x in bursts if x.target == b and x.neighbour == neighbour}
    out = []
    for round_, x in sorted(mine.items()):
        if round_ in theirs:
            denominator = getattr(theirs[round_], key)
            if denominator:
                out.append(getattr(x, key) / denominator)
    return out


def render(rows: list[dict[str, Any]], bursts: list[Burst]) -> str:
    lines = [
        f"{'target':<22}{'acks/s':>8}{'labels/s':>10}{'p50 s':>8}{'p99 s':>8}"
        f"{'CPU ms/dlv':>12}{'peak RSS MiB':>14}{'lost':>6}{'twice':>6}{'refused':>8}"
    ]
    for r in rows:
        name = r["target"] + (" +neighbour" if r["neighbour"] else "")
        lines.append(
            f"{name:<22}{r['acks_per_second']:>8.0f}{r['labels_per_second']:>10.0f}"
            f"{r['p50_seconds']:>8.2f}{r['p99_seconds']:>8.2f}{r['cpu_ms_per_delivery']:>12.2f}"
            f"{r['peak_rss_mib']:>10.0f} ({r['processes']}){r['lost']:>6}{r['twice']:>6}"
            f"{r['refused'] + r['errors']:>8}"
        )
    lines.append("")
    for other in ("minimal", "probot"):
        for neighbour in (False, True):
            labels = paired(bursts, "labeler", other, neighbour, "labels_per_second")
            if not labels:
                continue
            p99 = paired(bursts, "labeler", other, neighbour, "p99")
            acks = paired(bursts, "labeler", other, neighbour, "acks_per_second")
            tag = " (neighbour)" if neighbour else ""
            lines.append(
                f"labeler/{other}{tag}: labels/s {statistics.median(labels):.2f}x "
                f"(rounds {', '.join(f'{x:.2f}' for x in labels)}); "
                f"p99 {statistics.median(p99):.2f}x; acks/s {statistics.median(acks):.2f}x"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="per burst (3000)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up burst per target (200)")
    parser.add_argument("--connections", type=int, default=64, help="sender connections (64)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--targets",
        default="labeler,minimal,probot,probot-paced",
        help="comma-separated: labeler, minimal, probot, probot-paced",
    )
    parser.add_argument(
        "--paced-deliveries", type=int, default=20, help="burst size for probot-paced (20)"
    )
    parser.add_argument(
        "--neighbour",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run labeler and minimal with a CPU-bound process on their core",
    )
    parser.add_argument(
        "--labeler-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the labeler (repeatable), e.g. HANDLER_PROCESSES=0",
    )
    parser.add_argument("--payload-bytes", type=int, default=18 * 1024, help="body size (18432)")
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True, help="pin (default on)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "burst.json")
    return parser.parse_args(argv)


def start_targets(
    servers: Servers,
    names: list[str],
    env: dict[str, str],
    key_path: Path,
    labeler_env: dict[str, str],
    cpu: int | None,
) -> dict[str, Server]:
    """Start every target on ``cpu``; wait until each answers."""
    python = sys.executable
    started: dict[str, Server] = {}
    for name in names:
        port = free_port()
        if name == "labeler":
            journal = RESULTS / "burst-journal.sqlite3"
            for leftover in RESULTS.glob("burst-journal.sqlite3*"):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            argv = [python, "-m", "framework", "run", "sample_bots/labeler.py"]
            extra = {"JOURNAL_PATH": str(journal), "LOG_LEVEL": "warning", **labeler_env}
        elif name == "minimal":
            argv, extra = [python, str(BENCH / "minimal_bot.py")], {}
        else:
            argv = ["node", str(PROBOT / "server.mjs")]
            extra = {
                "PRIVATE_KEY_PATH": str(key_path),
                "PROBOT_PACING": "on" if name == "probot-paced" else "off",
                "LOG_LEVEL": "warn",
            }
        started[name] = servers.start(name, argv, {**env, **extra, "PORT": str(port)}, port, cpu)
    for name, server in started.items():
        path, ok = (
            ("/healthz", {200}) if name == "labeler" else (WEBHOOK_PATH, set(range(200, 600)))
        )
        wait_until_up(server, path, ok)
    return started


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    if any(n.startswith("probot") for n in names) and not (PROBOT / "node_modules").is_dir():
        print(
            f"Probot is not installed; run: npm ci --prefix {PROBOT.relative_to(Path.cwd())}",
            file=sys.stderr,
        )
        return 2
    code = code_version()
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)
    secret = secrets.token_hex(20)
    deliveries = Deliveries(secret, args.payload_bytes)
    repository = repository_of(build_payload(INSTALLATION_ID, 1000))
    bot_cpu, load_cpu = cpus_for(args.pin)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    labeler_env = dict(item.split("=", 1) for item in args.labeler_env)
    servers = Servers(log_dir)
    bursts: list[Burst] = []
    with sigterm_as_exit():
        try:
            fake, private_pem = start_fake_github(servers, repository, load_cpu)
            key_path = RESULTS / "burst-app-key.pem"
            key_path.write_text(private_pem)
            key_path.chmod(0o600)
            wait_until_up(fake, "/__bench/stats", {200})
            env = {
                "APP_ID": str(APP_ID),
                "PRIVATE_KEY": private_pem,
                "WEBHOOK_SECRET": secret,
                "GITHUB_API_URL": fake.url,
                "HOST": "127.0.0.1",
            }
            bots = start_targets(servers, names, env, key_path, labeler_env, bot_cpu)
            for name, bot in bots.items():
                size = (
                    min(args.warmup, args.paced_deliveries)
                    if name == "probot-paced"
                    else args.warmup
                )
                warm = burst(name, bot, fake, deliveries, size, args.connections, 0, False)
                print(f"warm-up {name}: {warm.labelled}/{warm.sent} labelled", flush=True)
            passes = [False, True] if args.neighbour else [False]
            for round_ in range(1, args.rounds + 1):
                for neighbour in passes:
                    hog = None
                    if neighbour:
                        hog = subprocess.Popen(
                            [
                                *(["taskset", "-c", str(bot_cpu)] if bot_cpu is not None else []),
                                sys.executable,
                                "-c",
                                "while True: pass",
                            ]
                        )
                    try:
                        for name, bot in bots.items():
                            if neighbour and name not in ("labeler", "minimal"):
                                continue
                            paced = name == "probot-paced"
                            result = burst(
                                name,
                                bot,
                                fake,
                                deliveries,
                                args.paced_deliveries if paced else args.deliveries,
                                args.connections,
                                round_,
                                neighbour,
                                wait_seconds=args.paced_deliveries * 3
                                if paced
                                else LABEL_WAIT_SECONDS,
                            )
                            bursts.append(result)
                            print(
                                f"round {round_} {name}{' +neighbour' if neighbour else ''}: "
                                f"{result.acks_per_second:.0f} acks/s, "
                                f"{result.labels_per_second:.0f} labels/s, "
                                f"p50 {result.percentile(0.5):.2f} s, "
                                f"p99 {result.percentile(0.99):.2f} s, "
                                f"{result.cpu_ms_per_delivery:.2f} ms CPU/dlv, "
                                f"{result.labelled}/{result.sent} labelled",
                                flush=True,
                            )
                    finally:
                        if hog is not None:
                            hog.kill()
                            hog.wait()
        except RuntimeError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            servers.stop_all()
    rows = [
        row
        for neighbour in (False, True)
        for name in names
        if (row := summarize(bursts, name, neighbour)) is not None
    ]
    print()
    print(render(rows, bursts))
    args.output.write_text(
        json.dumps(
            {
                "code": code,
                "arguments": {k: str(v) for k, v in vars(args).items()},
                "loadavg_at_end": os.getloadavg(),
                "summary": rows,
                "bursts": [b.row() for b in bursts],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
