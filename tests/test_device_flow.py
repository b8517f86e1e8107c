"""GitHub's device flow against the strict fake, and the ``login`` and ``users`` commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from framework.auth.oauth import oauth_app
from framework.auth.oauth.base import Grant, OAuthError
from framework.auth.oauth.flow import device_flow
from framework.auth.oauth.github import DeviceCode
from framework.auth.sealing import Sealer
from framework.auth.user_tokens import SQLiteTokenStore, StoredUser, seal_grant
from framework.cli import main
from framework.testing import FakeOAuth, ManualClock
from tests.signin_support import KEY, fake_for, served, settings_for
from tests.support import ROOT


async def run_flow(
    fake: FakeOAuth, clock: ManualClock, tmp_path: Path, approve: bool
) -> tuple[list[float], Grant | OAuthError]:
    """The device flow with a sleep that moves the shared clock instead of waiting."""
    app = oauth_app("github", settings_for({"github": fake}, tmp_path), secret_needed=False)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    def show(device: DeviceCode) -> None:
        if approve:
            fake.approve_device(device.user_code)

    async with httpx.AsyncClient() as http:
        try:
            return slept, await device_flow(app, http, show, sleep=sleep, clock=clock)
        except OAuthError as exc:
            return slept, exc


async def test_pending_then_slow_down_then_a_token(tmp_path: Path) -> None:
    clock = ManualClock()
    with served(fake_for("github", clock=clock)) as fake:
        fake.script_device(["authorization_pending", "slow_down"])
        slept, grant = await run_flow(fake, clock, tmp_path, approve=True)
    assert slept == [5, 5, 10]  # the interval, again, then 5 s more after slow_down
    assert isinstance(grant, Grant) and grant.access_token.startswith("ghu_")
    assert fake.refused == ["authorization_pending", "slow_down"]


async def test_a_code_nobody_enters_expires(tmp_path: Path) -> None:
    clock = ManualClock()
    with served(fake_for("github", clock=clock)) as fake:
        slept, error = await run_flow(fake, clock, tmp_path, approve=False)
    assert isinstance(error, OAuthError) and error.error == "expired_token"
    assert sum(slept) == pytest.approx(900, abs=5)  # polled at the interval until expires_in
    assert set(fake.refused) == {"authorization_pending", "expired_token"}


async def test_a_denied_device_code_says_so(tmp_path: Path) -> None:
    clock = ManualClock()
    with served(fake_for("github", clock=clock)) as fake:
        fake.script_device(["access_denied"])
        _, error = await run_flow(fake, clock, tmp_path, approve=False)
    assert isinstance(error, OAuthError) and error.error == "access_denied"


def command_env(fake: FakeOAuth, tmp_path: Path) -> dict[str, str]:
    return {
        "GITHUB_CLIENT_ID": fake.client_id, "GITHUB_CLIENT_SECRET": fake.client_secret,
        "GITHUB_WEB_URL": fake.base_url, "GITHUB_API_URL": fake.base_url,
        "TOKEN_ENCRYPTION_KEY": KEY, "USER_TOKENS_PATH": str(tmp_path / "users.sqlite3"),
    }  # fmt: skip


async def test_login_github_prints_the_code_and_stores_the_token(tmp_path: Path) -> None:
    with served(fake_for("github", device_interval=0.1)) as fake:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **command_env(fake, tmp_path)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "framework", "login", "github", env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        user_code = first.split()[-1]
        assert f"Open {fake.base_url}/login/device and enter the code" in first
        fake.approve_device(user_code)
        rest, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "Signed in as octocat (GitHub user 583231)" in rest.decode()
    store = SQLiteTokenStore(tmp_path / "users.sqlite3")
    rows = await store.rows()
    await store.close()
    assert [(r.platform, r.login) for r in rows] == [("github", "octocat")]
    output = first + rest.decode() + err.decode()
    for secret in fake.issued_secrets() - {fake.client_secret}:
        assert secret not in output


def test_login_without_a_key_refuses_before_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_CLIENT_ID", "Iv1.abc")
    monkeypatch.setenv("GITHUB_WEB_URL", "http://127.0.0.1:9")  # never contacted
    assert main(["login", "github"]) == 2
    assert "TOKEN_ENCRYPTION_KEY is not set" in capsys.readouterr().err


async def stored_octocat(fake: FakeOAuth, tmp_path: Path) -> Grant:
    """octocat signed in through the device flow, the grant stored as ``login`` stores it."""
    _, grant = await run_flow(fake, ManualClock(), tmp_path, approve=True)
    assert isinstance(grant, Grant)
    store = SQLiteTokenStore(tmp_path / "users.sqlite3")
    sealed = seal_grant(Sealer.from_keys([KEY]), grant)
    await store.put(StoredUser("github", "583231", "octocat", sealed, False, None, 0.0))
    await store.close()
    return grant


async def test_users_list_and_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(fake_for("github", device_interval=0)) as fake:
        for name, value in command_env(fake, tmp_path).items():
            monkeypatch.setenv(name, value)
        grant = await stored_octocat(fake, tmp_path)
        assert await asyncio.to_thread(main, ["users", "list"]) == 0
        listed = capsys.readouterr().out
        assert "github    583231         octocat" in listed and listed.rstrip().endswith("ok")
        assert grant.access_token not in listed
        assert await asyncio.to_thread(main, ["users", "revoke", "github", "octocat"]) == 0
        said = capsys.readouterr().out
        assert "GitHub withdrew octocat's authorization" in said and "deleted" in said.lower()
        assert ("DELETE", f"/applications/{fake.client_id}/grant") in fake.calls
        async with httpx.AsyncClient() as client:  # the token is dead on GitHub's side too
            answer = await client.get(
                f"{fake.base_url}/user", headers={"Authorization": f"Bearer {grant.access_token}"}
            )
        assert answer.status_code == 401
        assert await asyncio.to_thread(main, ["users", "revoke", "github", "octocat"]) == 1
        assert "no github user octocat" in capsys.readouterr().err


async def test_a_store_sealed_with_a_lost_key_is_listed_and_deleted_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(fake_for("github", device_interval=0)) as fake:
        for name, value in command_env(fake, tmp_path).items():
            monkeypatch.setenv(name, value)
        await stored_octocat(fake, tmp_path)
        monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", KEY.replace(KEY[:4], "AAAA", 1))
        await asyncio.to_thread(main, ["users", "list"])
        assert "unreadable (key)" in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["users", "revoke", "github", "583231"]) == 0
        said = capsys.readouterr().out
    assert "Not withdrawn on GitHub" in said and "no longer holds" in said
    assert "Deleted the github tokens of octocat here." in said
    assert ("DELETE", f"/applications/{fake.client_id}/grant") not in fake.calls


def test_users_new_key_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "new-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert Sealer.from_keys([key]).open(Sealer.from_keys([key]).seal(b"x")) == b"x"


def test_login_elsewhere_than_github_points_to_the_web_sign_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["login", "tapd"]) == 2
    assert "sign in to tapd in a browser at /login/tapd" in capsys.readouterr().err
