"""Fixtures shared by the test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import framework.platforms.connections
from framework.testing import FakeGitHub, serve
from tests.support import APP_ID, INSTALLATION, PUBLIC, REPO, RedisServer, stop_leftover_bots


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in a directory of its own: the default journal (``deliveries.sqlite3`` in
    the working directory) never leaks from one test into another, or into the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _no_bot_outlives_its_test() -> Iterator[None]:
    """A bot process a test started (``start_bot``) and did not stop, because the test failed
    before its ``stop``, is killed with its handler processes when the test ends."""
    yield
    stop_leftover_bots()


@pytest.fixture(autouse=True)
def _no_redelivery_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bot with app credentials sweeps GitHub's failed deliveries at start-up; in tests
    only where a test turns it on (tests/test_redelivery.py), so no other test's fake sees
    calls it did not expect, and no bot reaches for api.github.com."""
    monkeypatch.setenv("REDELIVERY_SYNC_INTERVAL", "0")


@pytest.fixture(autouse=True)
def _connection_pools_are_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every connection pool an App opens in a test is closed by the test's end (the app's
    lifespan, ``await app.close()``), else aiohttp warns "Unclosed client session" later."""
    opened: list[httpx.AsyncClient] = []
    real = framework.platforms.connections.new_http_client

    def tracked(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        client = real(*args, **kwargs)
        opened.append(client)
        return client

    monkeypatch.setattr(framework.platforms.connections, "new_http_client", tracked)
    yield
    left = sum(not client.is_closed for client in opened)
    if left:
        pytest.fail(f"{left} connection pool(s) left open: await app.close() in the test")


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA key for the whole run: generating one costs tens of milliseconds."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def private_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    """The session key as PEM text, as GitHub hands it out."""
    return rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def fake() -> FakeGitHub:
    """A strict fake GitHub with the app installed on Codertocat/Hello-World."""
    fake = FakeGitHub(app_id=APP_ID, public_key=PUBLIC)
    fake.add_installation(INSTALLATION, account="Codertocat", repositories=[REPO])
    return fake


@pytest.fixture
def fake_url(fake: FakeGitHub) -> Iterator[str]:
    """The fake, served by a real uvicorn on a loopback port."""
    with serve(fake.app) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; tests keep apart by key prefix."""
    server = RedisServer.start(Path(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()
