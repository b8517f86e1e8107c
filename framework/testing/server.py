"""Run an ASGI app on a real loopback socket for the length of a ``with`` block.

Tests talk to the app over real HTTP (uvicorn, keep-alive, lifespan and all), so what passes
here passes for the same reasons in production. The port is picked by the kernel, so tests
never collide; only loopback addresses are accepted, so nothing is exposed to the network.

>>> with serve(fake.app) as base_url:  # doctest: +SKIP
...     httpx.get(f"{base_url}/rate_limit", headers={"User-Agent": "test"})

>>> async with serve_async(bot) as base_url:  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0
_POLL_SECONDS = 0.01


class _TestServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone.

    uvicorn installs SIGINT/SIGTERM handlers when it runs on the main thread; under a test
    runner that would swallow Ctrl-C. The owner of the ``with`` block stops the server instead,
    and the server notices it sooner than uvicorn's default.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        # uvicorn checks should_exit every 100 ms; tests start and stop many servers, so check
        # ten times as often (on_tick still refreshes the Date header every tenth tick).
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            await asyncio.sleep(_POLL_SECONDS)


def _bind_loopback(host: str, port: int = 0) -> socket.socket:
    """A socket bound to ``port`` (0: a free one) of the loopback address ``host``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"host must be a loopback IP address such as 127.0.0.1, not {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"host must be a loopback address, not {host!r}: tests stay off the network"
        )
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _new_server(app: ASGIApp, host: str, shutdown_timeout: float) -> _TestServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=0,
        lifespan="on",
        log_level="warning",
        log_config=None,  # don't reconfigure the process's logging; records go to the root logger
        access_log=False,
        # Requests still running at shutdown get half the budget, lifespan shutdown the rest.
        timeout_graceful_shutdown=max(1, int(shutdown_timeout / 2)),
    )
    return _TestServer(config)


def _startup_failed(host: str) -> RuntimeError:
    return RuntimeError(
        f"the test server on {host} stopped during startup: the app's lifespan startup failed "
        "or the socket could not be served (see the 'uvicorn.error' log records)"
    )


@contextlib.contextmanager
def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = STARTUP_TIMEOUT,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL.

    Waits until the app's lifespan startup has finished and the socket accepts connections
    (``TimeoutError`` after ``startup_timeout`` seconds, ``RuntimeError`` if startup failed).
    On exit, stops the server and waits for it (``TimeoutError`` after ``shutdown_timeout``).

    >>> with serve(fake.app) as base_url:  # doctest: +SKIP
    ...     base_url
    'http://127.0.0.1:43121'
    """
    sock = _bind_loopback(host)
    server = _new_server(app, host, shutdown_timeout)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # uvicorn reports a failed startup with SystemExit
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"test-server-{_base_url(sock, host)}", daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise _startup_failed(host) from (errors[0] if errors else None)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the test server on {host} did not start within {startup_timeout} s"
                )
            time.sleep(_POLL_SECONDS)
        yield _base_url(sock, host)
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
        sock.close()
        if thread.is_alive():
            raise TimeoutError(
                f"the test server on {host} did not stop within {shutdown_timeout} s"
            )


@contextlib.asynccontextmanager
async def serve_async(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = STARTUP_TIMEOUT,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn as a task of the running event loop; yields its base URL.

    The same guarantees as :func:`serve`, for async tests: the app then shares the test's
    event loop, so the test must ``await`` for the server to make progress. ``port`` 0 (the
    default) lets the kernel pick a free one; give one to bring a server back where a client
    expects it (a bot restarting behind a tunnel).

    >>> async with serve_async(fake.app) as base_url:  # doctest: +SKIP
    ...     response = await client.get(f"{base_url}/app")
    """
    sock = _bind_loopback(host, port)
    server = _new_server(app, host, shutdown_timeout)

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # a SystemExit escaping a task would stop the event loop
            raise _startup_failed(host) from exc

    task = asyncio.create_task(run(), name=f"test-server-{_base_url(sock, host)}")
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_timeout
        while not server.started:
            if task.done():
                task.result()  # raises the startup failure
                raise _startup_failed(host)
            if loop.time() > deadline:
                raise TimeoutError(
                    f"the test server on {host} did not start within {startup_timeout} s"
                )
            await asyncio.sleep(_POLL_SECONDS)
        yield _base_url(sock, host)
    finally:
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=shutdown_timeout)
        if not done:
            server.force_exit = True
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        sock.close()
        if not task.done():
            raise TimeoutError(
                f"the test server on {host} did not stop within {shutdown_timeout} s"
            )
        if not task.cancelled() and task.exception() is not None and server.started:
            raise RuntimeError(f"the test server on {host} failed") from task.exception()
