"""CPU per REST request through the client: its lean path, httpx's path, and bare aiohttp.

    .venv/bin/python bench/client_path.py          # --requests 3000 --rounds 5 --concurrency 32

Starts the bench's fake GitHub (``bench/fake_server.py``, as ``bench/run.py`` does) on
127.0.0.1 in a subprocess. In this process, each round sends ``--requests``
``POST /repos/{owner}/{repo}/issues/{n}/labels`` with ``{"labels": ["needs-response"]}``
(``--concurrency`` at a time, after a warm-up of 100) through each of:

- ``lean``: ``GitHubClient.request`` as a handler's ``ctx.github`` has it (an installation
  client from the app's connection, bound to the loop); its lean path;
- ``httpx``: the same client sending through ``httpx.AsyncClient.request`` with the auth
  object, the path every request took before the lean one;
- ``aiohttp``: a bare ``aiohttp.ClientSession`` posting with the cached token and reading the
  answer: the floor, with none of the client's retries, rate-limit bookkeeping or metrics.

The figure is this process's CPU time per request (``time.process_time()`` around a round);
the fake GitHub runs in another process. Rounds interleave the paths, so a machine that slows
down slows them all; the report gives min and median over the rounds and the ratios of the
medians. On a machine shared with others, read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import APP_ID, INSTALLATION_ID, RESULTS, Servers, start_fake_github, wait_until_up

from framework.client.rest import GitHubClient
from framework.platforms.connections import AppConnection, AppCredentials, ConnectionOptions
from framework.platforms.github import GITHUB

REPOSITORY = "Codertocat/Hello-World"
API_VERSION = "2022-11-28"
BODY = {"labels": ["needs-response"]}
WARM_UP = 100
PATHS = ("lean", "httpx", "aiohttp")

Send = Callable[[int], Awaitable[None]]


class HttpxPath(GitHubClient):
    """The client as it was before the lean path: every request through httpx's layers."""

    async def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        return await self.http.request(method, path, auth=self.auth, **kwargs)


def labels_path(number: int) -> str:
    return f"/repos/{REPOSITORY}/issues/{number}/labels"


async def timed(send: Send, requests: int, concurrency: int) -> float:
    """CPU seconds this process spent sending ``requests`` (issue numbers 1..requests)."""
    await asyncio.gather(*(send(n) for n in range(1, WARM_UP + 1)))
    numbers = iter(range(1, requests + 1))

    async def worker() -> None:
        for number in numbers:
            await send(number)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - started


async def one_round(
    path: str, api_url: str, private_pem: str, requests: int, concurrency: int
) -> float:
    """Microseconds of CPU per request through ``path``."""
    connection = AppConnection(
        GITHUB,
        AppCredentials(str(APP_ID), private_pem),
        ConnectionOptions(api_url, {"X-GitHub-Api-Version": API_VERSION}, "client-path-bench"),
    )
    loop = asyncio.get_running_loop()
    log = logging.getLogger("bench")
    session: aiohttp.ClientSession | None = None
    try:
        if path == "aiohttp":
            token = (await connection.tokens.get(INSTALLATION_ID)).token
            headers = {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"token {token}",
            }
            session = aiohttp.ClientSession()
            base = api_url.rstrip("/")

            async def send(number: int) -> None:
                assert session is not None
                url = base + labels_path(number)
                async with session.post(url, json=BODY, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"POST {url} answered {answer.status}")
        else:
            client = connection.installation_client(INSTALLATION_ID).bound(loop, log)
            if path == "httpx":
                client = HttpxPath(client.http, client.auth, loop, shared=client.shared, log=log)

            async def send(number: int) -> None:
                await client.post(labels_path(number), json=BODY)

        cpu = await timed(send, requests, concurrency)
    finally:
        if session is not None:
            await session.close()
        await connection.close()
    return cpu / requests * 1e6


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per path and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - set(PATHS)
    if unknown:
        print(f"unknown path(s): {', '.join(sorted(unknown))}; known: {', '.join(PATHS)}")
        return 2
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    servers = Servers(log_dir)
    figures: dict[str, list[float]] = {path: [] for path in paths}
    try:
        fake, private_pem = start_fake_github(
            servers, REPOSITORY, None, name="client-path-fake-github"
        )
        wait_until_up(fake, "/__bench/stats", {200})
        for number in range(1, args.rounds + 1):
            line = []
            for path in paths:
                us = asyncio.run(
                    one_round(path, fake.url, private_pem, args.requests, args.concurrency)
                )
                figures[path].append(us)
                line.append(f"{path} {us:.0f}")
            print(f"round {number}: " + ", ".join(line) + " µs CPU per request", flush=True)
    finally:
        servers.stop_all()
    print(
        f"\nCPU per request, µs ({args.requests} label POSTs at concurrency {args.concurrency}, "
        f"{args.rounds} rounds)"
    )
    medians = {path: statistics.median(values) for path, values in figures.items()}
    for path, values in figures.items():
        print(f"  {path:8} min {min(values):6.0f}   median {medians[path]:6.0f}")
    names = list(medians)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            print(f"  {a}/{b}: {medians[a] / medians[b]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
