"""Every platform end to end: a real bot on loopback against each platform's strict fake."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from framework import App, Context
from framework.errors import CodingAPIError, TapdAPIError
from framework.settings import Settings
from framework.testing import (
    FakeAtomGit,
    FakeTapd,
    coding_issue,
    generate_app_key,
    gitlab_issue,
    payloads,
    run_bot,
    serve_async,
    signed_delivery,
    tapd_story,
)
from sample_bots.multi_forge import app as multi_forge
from tests.support import ROOT, RedisServer, start_bot

ALL = ("github", "atomgit", "coding", "tapd")
REPO = "octo-org/hello"


def _one_delivery(platform: str, secret: str, delivery_id: str = "d-1") -> tuple[str, object]:
    """A representative delivery of ``platform``: its event name and payload."""
    if platform == "github":
        return "issues", payloads.issues_opened(number=5)
    if platform == "atomgit":
        return "Issue Hook", gitlab_issue(number=5)
    if platform == "coding":
        return "issue", coding_issue(code=5)
    return "story::create", tapd_story(entry_id="5")


def _prepare(bot_fakes: dict[str, object]) -> None:
    coding = bot_fakes.get("coding")
    if coding is not None:
        coding.add_issue("demo", 5)  # type: ignore[attr-defined]
        coding.add_issue("demo", 6)  # type: ignore[attr-defined]
    tapd = bot_fakes.get("tapd")
    if tapd is not None:
        tapd.add_entry("story", workspace_id=10022001, entry_id="5", name="Login")  # type: ignore[attr-defined]


async def test_the_multi_forge_sample_serves_all_four_platforms() -> None:
    async with run_bot(multi_forge, platforms=ALL) as bot:
        _prepare(bot.fakes)
        github = await bot.receive("issues", payloads.issues_opened(number=7))
        atomgit = await bot.receive("Issue Hook", gitlab_issue(number=3), platform="atomgit")
        coding = await bot.receive("issue", coding_issue(code=5), platform="coding")
        tapd = await bot.receive("story::create", tapd_story(entry_id="5"), platform="tapd")
    for result in (github, atomgit, coding, tapd):
        assert result.status == "done", result
    assert bot.fake.issue_labels(REPO, 7) == ["needs-triage"]
    assert bot.fakes["atomgit"].issue_labels(REPO, 3) == ["needs-triage"]
    assert bot.fakes["coding"].issue_labels("demo", 5) == ["needs-triage"]
    assert bot.fakes["tapd"].comments("story", "5") == ["Thanks! This story is queued for triage."]
    assert bot.fakes["tapd"].comment_authors("story", "5") == ["multi-forge"]
    # AtomGit's token: minted with the app's JWT, ats_, used as Bearer
    assert [m.token[:4] for m in bot.fakes["atomgit"].mints] == ["ats_"]
    assert bot.fakes["atomgit"].expired_token_uses == 0


def _counting_app() -> tuple[App, Counter[str]]:
    app = App(name="counter")
    runs: Counter[str] = Counter()

    @app.on_any
    async def count(ctx: Context) -> None:
        runs[f"{ctx.platform}:{ctx.name}.{ctx.action}"] += 1

    return app, runs


@pytest.mark.parametrize("platform", ALL)
async def test_a_good_delivery_runs_once_and_the_same_delivery_sent_three_times_too(
    platform: str,
) -> None:
    app, runs = _counting_app()
    async with run_bot(app, platforms=(platform,)) as bot:
        name, payload = _one_delivery(platform, bot.secrets[platform])
        results = [
            await bot.receive(name, payload, platform=platform, delivery_id="same")  # type: ignore[arg-type]
            for _ in range(3)
        ]
    assert [r.status for r in results] == ["done", "duplicate", "duplicate"]
    assert sum(runs.values()) == 1, runs
    expected = {
        "github": "github:issues.opened",
        "atomgit": "atomgit:issues.opened",
        "coding": "coding:issues.opened",
        "tapd": "tapd:story.create",
    }[platform]
    assert list(runs) == [expected]


def _tampered(platform: str, secret: str, how: str) -> tuple[dict[str, str], bytes]:
    name, payload = _one_delivery(platform, secret)
    signed = signed_delivery(platform, name, payload, secret)  # type: ignore[arg-type]
    headers, body = dict(signed.headers), signed.body
    if how == "tampered body" and platform == "tapd":
        # TAPD signs nothing: the secret in the body is all there is to check, so a body
        # altered by whoever knows the secret cannot be told from a genuine one (README).
        # What can be tampered with is the secret itself.
        body = body.replace(b"secret=", b"secret=x", 1)
    elif how == "tampered body":
        body = body.replace(b"5", b"6", 1)
    elif how == "wrong secret":
        wrong = signed_delivery(platform, name, payload, secret + "x")  # type: ignore[arg-type]
        headers, body = dict(wrong.headers), wrong.body
    elif how == "missing signature":
        for header in ("X-Hub-Signature-256", "X-GitCode-Signature-256", "X-Coding-Signature"):
            headers.pop(header, None)
        if platform == "tapd":
            body = b"&".join(p for p in body.split(b"&") if not p.startswith(b"secret="))
    return headers, body


REFUSALS = ("tampered body", "wrong secret", "missing signature", "another platform's path")


@pytest.mark.parametrize("platform", ALL)
async def test_a_delivery_that_is_not_genuine_is_refused_with_401_and_runs_nothing(
    platform: str,
) -> None:
    app, runs = _counting_app()
    other = "tapd" if platform != "tapd" else "coding"
    answers: dict[str, tuple[int, str]] = {}
    async with run_bot(app, platforms=(platform, other)) as bot, httpx.AsyncClient() as client:
        for how in REFUSALS:
            headers, body = _tampered(platform, bot.secrets[platform], how)
            path = app.webhook_paths()[other if how == "another platform's path" else platform]
            response = await client.post(bot.base_url + path, content=body, headers=headers)
            answers[how] = (response.status_code, response.text)
        await asyncio.sleep(0.2)
        stored = await (await app.open_journal()).entries()
    for how in REFUSALS:  # on another platform's path, that platform's rules refuse it
        assert answers[how][0] == 401, (how, answers[how])
    assert runs == Counter()
    assert stored == []


async def test_atomgit_gitcode_token_deliveries_are_checked_in_constant_time() -> None:
    app, runs = _counting_app()
    async with run_bot(app, platforms=("atomgit",)) as bot:
        good = await bot.receive(
            "Issue Hook", gitlab_issue(number=2), platform="atomgit", atomgit_auth="token"
        )
        bot.secrets["atomgit"] = "not-the-secret"
        bad = await bot.receive(
            "Issue Hook", gitlab_issue(number=3), platform="atomgit", atomgit_auth="token"
        )
    assert good.status == "done"
    assert (bad.status, bad.status_code) == ("refused", 401)
    assert "X-GitCode-Token" in bad.answer["error"]
    assert sum(runs.values()) == 1


async def test_atomgit_github_shaped_deliveries_carry_their_installation() -> None:
    async with run_bot(multi_forge, platforms=("atomgit",)) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=4), platform="atomgit")
    assert result.status == "done", result.errors
    assert bot.fakes["atomgit"].issue_labels(REPO, 4) == ["needs-triage"]
    # the installation came with the payload: no lookup of the repository's installation
    assert not bot.fakes["atomgit"].calls_to("GET", f"/repos/{REPO}/installation")


async def test_a_gitlab_shaped_kind_without_a_mapping_arrives_under_its_own_name() -> None:
    app = App()
    seen: list[tuple[str, str | None]] = []

    @app.on("pipeline")
    async def pipeline(ctx: Context) -> None:
        seen.append((ctx.name, ctx.payload["object_attributes"]["status"]))

    body = {"object_kind": "pipeline", "object_attributes": {"status": "success"}}
    async with run_bot(app, platforms=("atomgit",)) as bot:
        result = await bot.receive("Pipeline Hook", body, platform="atomgit")
    assert result.status == "done", result.errors
    assert seen == [("pipeline", "success")]


async def test_twenty_concurrent_atomgit_deliveries_for_one_installation_mint_one_token() -> None:
    async with run_bot(multi_forge, platforms=("atomgit",), handler_concurrency=32) as bot:
        results = await asyncio.gather(
            *(
                bot.receive("issues", payloads.issues_opened(number=n), platform="atomgit")
                for n in range(1, 21)
            )
        )
    assert all(r.status == "done" for r in results), [r.errors for r in results]
    assert bot.fakes["atomgit"].mint_count() == 1


async def test_an_atomgit_token_whose_plus_eight_expiry_has_passed_is_never_presented() -> None:
    """The fake writes expiry as ``…+08:00`` with milliseconds. Read as if it had no offset,
    the token would seem good for eight more hours and be presented after it expired."""
    async with run_bot(multi_forge, platforms=("atomgit",)) as bot:
        bot.fakes["atomgit"].token_ttl = timedelta(seconds=1.5)
        first = await bot.receive("issues", payloads.issues_opened(number=1), platform="atomgit")
        await asyncio.sleep(2.0)  # the token has expired
        second = await bot.receive("issues", payloads.issues_opened(number=2), platform="atomgit")
    assert (first.status, second.status) == ("done", "done"), (first.errors, second.errors)
    assert bot.fakes["atomgit"].mint_count() == 2
    assert bot.fakes["atomgit"].expired_token_uses == 0


async def test_the_tapd_secret_is_in_no_journal_log_or_handler_payload(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    app = App()
    payloads_seen: list[dict[str, object]] = []

    @app.on("story")
    async def keep(ctx: Context) -> None:
        payloads_seen.append(ctx.payload)
        ctx.log.info("story %s in workspace %s", ctx.payload["id"], ctx.workspace_id)

    caplog.set_level(logging.DEBUG)
    journal_path = tmp_path / "journal.sqlite3"
    async with run_bot(app, platforms=("tapd",), journal_path=journal_path) as bot:
        secret = bot.secrets["tapd"]
        form = await bot.receive("story::create", tapd_story(entry_id="9"), platform="tapd")
        as_json = await bot.receive(
            "story::update", tapd_story(entry_id="9"), platform="tapd", form=False
        )
        wrong = signed_delivery("tapd", "story::create", tapd_story(), "nope")
        async with httpx.AsyncClient() as client:
            refused = await client.post(
                bot.base_url + "/api/tapd/webhooks", content=wrong.body, headers=wrong.headers
            )
    assert (form.status, as_json.status, refused.status_code) == ("done", "done", 401)
    assert [p["action"] for p in payloads_seen] == ["create", "update"]
    assert all("secret" not in p for p in payloads_seen)
    assert payloads_seen[0]["workspace_id"] == "10022001"
    stored = _all_bytes(tmp_path)
    assert secret.encode() not in stored
    assert b"10022001" in stored  # the journal did store the deliveries
    assert secret not in caplog.text and "nope" not in refused.text
    assert "story 9 in workspace 10022001" in caplog.text


def _all_bytes(directory: Path) -> bytes:
    return b"".join(f.read_bytes() for f in directory.rglob("*") if f.is_file())


async def test_platform_error_envelopes_raise_typed_errors() -> None:
    app = App()
    errors: list[BaseException] = []

    @app.on("issues.opened", platform="coding")
    @app.on("story.create", platform="tapd")
    async def act(ctx: Context) -> None:
        try:
            await ctx.comment("hello")
        except (CodingAPIError, TapdAPIError) as exc:
            errors.append(exc)

    async with run_bot(app, platforms=("coding", "tapd")) as bot:
        bot.fakes["coding"].add_issue("demo", 1)
        # neither issue 404 nor story 404 exists
        await bot.receive("issue", coding_issue(code=404), platform="coding")
        await bot.receive("story::create", tapd_story(entry_id="404"), platform="tapd")
    coding_error, tapd_error = errors
    assert isinstance(coding_error, CodingAPIError)
    assert coding_error.code == "ResourceNotFound" and coding_error.request_id
    assert "CreateIssueComment" in str(coding_error)
    assert isinstance(tapd_error, TapdAPIError) and "no such entry" in str(tapd_error)


async def test_a_handler_for_one_platform_does_not_run_for_another() -> None:
    app = App()
    seen: list[str] = []

    @app.on("issues.opened", platform="atomgit")
    async def only_atomgit(ctx: Context) -> None:
        seen.append(ctx.platform)

    async with run_bot(app, platforms=("github", "atomgit")) as bot:
        ignored = await bot.receive("issues", payloads.issues_opened(number=1))
        done = await bot.receive("Issue Hook", gitlab_issue(number=2), platform="atomgit")
    assert (ignored.status, done.status) == ("ignored", "done")
    assert seen == ["atomgit"]


def test_registering_for_an_unknown_platform_fails_at_import() -> None:
    app = App()
    with pytest.raises(ValueError, match="'gitee' is not a platform"):
        app.on("issues.opened", platform="gitee")


async def test_atomgit_replicas_on_one_redis_mint_one_token_kept_apart_from_githubs(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    private_pem, public_key = generate_app_key()
    fake = FakeAtomGit(app_id=75, public_key=public_key)
    fake.add_installation(43, account="octo-org", repositories=[REPO])
    replicas = [App(name=f"replica-{n}") for n in range(3)]
    async with serve_async(fake.app) as url:
        for replica in replicas:
            replica.configure(
                Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    atomgit_app_id="75",
                    atomgit_private_key=private_pem,
                    atomgit_webhook_secret="s",
                    atomgit_api_url=url,
                    redis_url=redis_server.url,
                    redis_prefix=tmp_path.name,
                )
            )
            await replica.open_journal()
        try:
            answers = await asyncio.gather(
                *(
                    replica.installation_client(43, platform="atomgit").get(f"/repos/{REPO}")
                    for replica in replicas
                    for _ in range(5)
                )
            )
            keys = [
                k async for k in replicas[0]._redis.scan_iter(match=f"{{{tmp_path.name}}}:*token*")
            ]
        finally:
            for replica in replicas:
                await replica.close()
    assert {a.status_code for a in answers} == {200}
    assert fake.mint_count(43) == 1
    assert keys == [f"{{{tmp_path.name}}}:atomgit:token:43".encode()]


async def test_a_served_bot_runs_atomgit_and_tapd_handlers_in_its_handler_process(
    tmp_path: Path,
) -> None:
    """``python -m framework run`` as in production: receiver and handler process, each
    platform's connection built from the environment in the handler process."""
    private_pem, public_key = generate_app_key()
    atomgit = FakeAtomGit(app_id=75, public_key=public_key)
    atomgit.add_installation(43, account="octo-org", repositories=[REPO])
    tapd = FakeTapd(api_user="u", api_password="p")
    tapd.add_entry("story", workspace_id=10022001, entry_id="5", name="Login")
    async with serve_async(atomgit.app) as atomgit_url, serve_async(tapd.app) as tapd_url:
        process, base = await asyncio.to_thread(
            start_bot,
            str(ROOT / "sample_bots" / "multi_forge.py"),
            atomgit_url,  # GitHub's fake is not used: no GitHub delivery is sent
            tmp_path,
            ATOMGIT_APP_ID="75",
            ATOMGIT_PRIVATE_KEY=private_pem,
            ATOMGIT_WEBHOOK_SECRET="a-secret",
            ATOMGIT_API_URL=atomgit_url,
            TAPD_WEBHOOK_SECRET="t-secret",
            TAPD_API_USER="u",
            TAPD_API_PASSWORD="p",
            TAPD_API_URL=tapd_url,
            HANDLER_PROCESSES="1",
        )
        try:
            issue = signed_delivery("atomgit", "Issue Hook", gitlab_issue(number=8), "a-secret")
            story = signed_delivery("tapd", "story::create", tapd_story(entry_id="5"), "t-secret")
            async with httpx.AsyncClient(base_url=base) as client:
                for delivery in (issue, story, issue):  # the second issue: a duplicate
                    answer = await client.post(
                        delivery.path, content=delivery.body, headers=delivery.headers
                    )
                    assert answer.status_code in (200, 202), answer.text
            for _ in range(200):
                if atomgit.issue_labels(REPO, 8) and tapd.comments("story", "5"):
                    break
                await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, output
    assert atomgit.issue_labels(REPO, 8) == ["needs-triage"]
    assert tapd.comments("story", "5") == ["Thanks! This story is queued for triage."]
    assert "t-secret" not in output and "a-secret" not in output


async def test_app_receive_runs_one_platforms_handlers_without_a_server() -> None:
    app = App()
    seen: list[tuple[str, str, int | None]] = []

    @app.on("story.create", platform="tapd")
    async def story(ctx: Context) -> None:
        seen.append((ctx.platform, ctx.delivery_id, ctx.workspace_id))

    payload = {**tapd_story(), "event": "story::create", "action": "create"}
    assert await app.receive("story", payload, delivery_id="9", platform="tapd") == []
    assert await app.receive("story", payload, delivery_id="9") == []  # GitHub's: not for it
    assert seen == [("tapd", "tapd:9", 10022001)]
