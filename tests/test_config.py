"""``ctx.config``: repository configuration as Probot reads it, against the strict fake GitHub."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from framework import App, ConfigError, Context
from framework.observe.log import bind
from framework.repo_config import (
    MAX_EXTENDS,
    ConfigChange,
    ConfigFile,
    RepositoryConfigs,
    config_path,
    merge,
    parse_extends,
    push_change,
)
from framework.testing import FakeGitHub, serve_async
from framework.webhooks.delivery import Delivery
from tests.support import APP_ID, PAYLOADS, PUBLIC, issue_opened
from tests.test_dispatch import deliver, new_app

INSTALLATION = 42
LABELER = ".github/labeler.yml"
CHAIN = [f"octo-org/c{i}" for i in range(1, MAX_EXTENDS + 2)]


class Labeler(BaseModel):
    labels: list[str] = []
    threshold: int = 3


@pytest.fixture
def fake() -> FakeGitHub:
    """The app on octo-org, with its shared ``.github`` repository; conftest serves it."""
    fake = FakeGitHub(app_id=APP_ID, public_key=PUBLIC)
    repositories = ["hello", "world", ".github", "base", "other"]
    fake.add_installation(
        INSTALLATION,
        account="octo-org",
        repositories=[f"octo-org/{r}" for r in repositories] + CHAIN,
    )
    return fake


@pytest.fixture
async def app(fake_url: str) -> AsyncIterator[App]:
    app = new_app(fake_url)
    yield app
    await app.close()


def context_in(app: App, repository: str) -> Context:
    """A handler's context for an issue opened in ``repository``."""
    payload = issue_opened(installation=INSTALLATION)
    owner, name = repository.split("/")
    payload["repository"] |= {
        "name": name,
        "full_name": repository,
        "owner": payload["repository"]["owner"] | {"login": owner},
    }
    delivery = Delivery.from_payload("d-config", "issues", payload)
    return Context(app, delivery, bind(logging.getLogger("test"), delivery="d-config"))


async def config(app: App, repository: str = "octo-org/hello", **options: Any) -> Any:
    return await context_in(app, repository).config("labeler.yml", **options)


def contents_calls(fake: FakeGitHub, repository: str = "octo-org/hello") -> int:
    return len(fake.calls_to("GET", f"/repos/{repository}/contents/{LABELER}"))


def push(repository: str, *paths: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    """A push to ``repository`` whose one commit modified ``paths``."""
    payload: dict[str, Any] = json.loads((PAYLOADS / "push.json").read_text())
    owner, name = repository.split("/")
    payload["repository"] |= {
        "name": name,
        "full_name": repository,
        "default_branch": "main",
        "owner": payload["repository"]["owner"] | {"login": owner, "name": owner},
    }
    payload |= {"ref": ref, "created": False, "installation": {"id": INSTALLATION}}
    payload["commits"] = [
        payload["commits"][0] | {"added": [], "removed": [], "modified": list(paths)}
    ]
    return payload


# --------------------------------------------------------------------------- where it looks


async def test_reads_the_repository_file_from_the_default_branch_as_raw_text(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/hello", LABELER, "labels: [bug]\nthreshold: 2\n")
    fake.add_file("octo-org/hello", LABELER, "labels: [from-a-branch]\n", branch="dev")

    assert await config(app) == {"labels": ["bug"], "threshold": 2}

    (call,) = fake.calls_to("GET", f"/repos/octo-org/hello/contents/{LABELER}")
    assert call.headers["accept"] == "application/vnd.github.raw+json"
    assert "ref" not in call.query  # GitHub's default: the default branch
    assert call.installation_id == INSTALLATION


async def test_falls_back_to_the_owners_github_repository(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/.github", LABELER, "labels: [org-wide]\n")

    assert await config(app) == {"labels": ["org-wide"]}
    assert [c.status for c in fake.calls if "/contents/" in c.path] == [404, 200]
    assert contents_calls(fake, "octo-org/.github") == 1


async def test_the_github_repository_is_read_only_if_the_installation_reaches_it(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_installation(77, account="solo", repositories=["solo/app"])
    fake.add_file("solo/.github", LABELER, "labels: [unreachable]\n")  # not installed there
    payload = issue_opened(installation=77)
    payload["repository"] |= {"name": "app", "full_name": "solo/app"}
    payload["repository"]["owner"]["login"] = "solo"
    ctx = Context(app, Delivery.from_payload("d", "issues", payload), bind(logging.getLogger("t")))

    assert await ctx.config("labeler.yml") is None
    assert await ctx.config("labeler.yml", default={"labels": []}) == {"labels": []}
    assert [c.status for c in fake.calls if "/contents/" in c.path] == [404, 404]


# ------------------------------------------------------------------------------- _extends


async def test_extends_a_repository_of_the_same_owner_and_overrides_it_deeply(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file(
        "octo-org/base",
        LABELER,
        "labels: [bug, docs]\nthreshold: 5\npaths: {src: code, docs: prose}\n",
    )
    fake.add_file(
        "octo-org/hello", LABELER, "_extends: base\nlabels: [feature]\npaths: {docs: words}\n"
    )

    assert await config(app) == {
        "labels": ["feature"],  # a list replaces the base's list
        "threshold": 5,
        "paths": {"src": "code", "docs": "words"},  # a mapping merges key by key
    }


async def test_extends_owner_repo_and_path_and_chains(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/hello", LABELER, "_extends: octo-org/other:shared/labels.yml\na: 1\n")
    fake.add_file("octo-org/other", "shared/labels.yml", "_extends: base\nb: 2\na: 0\n")
    fake.add_file("octo-org/base", "shared/labels.yml", "c: 3\nb: 0\n")

    assert await config(app) == {"a": 1, "b": 2, "c": 3}
    assert contents_calls(fake, "octo-org/other") == 0  # its .github/labeler.yml is not read
    assert len(fake.calls_to("GET", "/repos/octo-org/base/contents/shared/labels.yml")) == 1


async def test_an_extends_cycle_is_a_config_error_naming_the_chain(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/hello", LABELER, "_extends: base\n")
    fake.add_file("octo-org/base", LABELER, "_extends: octo-org/hello\n")

    with pytest.raises(ConfigError, match="cycle") as raised:
        await config(app)
    assert str(raised.value).endswith(
        "octo-org/hello:.github/labeler.yml → octo-org/base:.github/labeler.yml → "
        "octo-org/hello:.github/labeler.yml"
    )


async def test_a_chain_longer_than_the_limit_is_refused(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/hello", LABELER, "_extends: c1\n")
    for i, repository in enumerate(CHAIN, 1):
        fake.add_file(repository, LABELER, f"_extends: c{i + 1}\n")

    with pytest.raises(ConfigError, match=f"deeper than {MAX_EXTENDS} files"):
        await config(app)
    assert contents_calls(fake, CHAIN[-1]) == 0  # refused before reading on

    fake.add_file(CHAIN[MAX_EXTENDS - 1], LABELER, "last: true\n")  # five _extends: allowed
    app.configs.clear()
    assert await config(app) == {"last": True}


async def test_a_missing_or_malformed_base_is_a_config_error(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/hello", LABELER, "_extends: nowhere\n")
    with pytest.raises(ConfigError, match=r"extends octo-org/nowhere:\.github/labeler\.yml"):
        await config(app)

    fake.add_file("octo-org/world", LABELER, "_extends: [not, a, name]\n")
    with pytest.raises(ConfigError, match="_extends must be 'repo'"):
        await config(app, "octo-org/world")


# ------------------------------------------------------------------- defaults and models


async def test_the_default_lies_under_the_files(fake: FakeGitHub, app: App) -> None:
    default = {"labels": ["triage"], "threshold": 3, "paths": {"src": "code"}}
    fake.add_file("octo-org/hello", LABELER, "threshold: 1\npaths: {docs: prose}\n")

    assert await config(app, default=default) == {
        "labels": ["triage"],
        "threshold": 1,
        "paths": {"src": "code", "docs": "prose"},
    }
    assert default == {"labels": ["triage"], "threshold": 3, "paths": {"src": "code"}}


async def test_without_any_file_the_result_is_the_default_or_none(app: App) -> None:
    assert await config(app) is None
    assert await config(app, model=Labeler) is None
    first = await config(app, default={"labels": ["triage"]})
    assert first == {"labels": ["triage"]}
    first["labels"].append("mutated")  # the caller's copy
    assert await config(app, default={"labels": ["triage"]}) == {"labels": ["triage"]}
    assert await config(app, default={}, model=Labeler) == Labeler()


async def test_a_model_validates_the_merged_configuration(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/hello", LABELER, "labels: [bug]\n")

    result = await config(app, default={"threshold": 7}, model=Labeler)

    assert result == Labeler(labels=["bug"], threshold=7)


async def test_a_validation_error_names_repository_file_and_field(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/base", LABELER, "threshold: many\n")
    fake.add_file("octo-org/hello", LABELER, "_extends: base\nlabels: [bug, {name: x}]\n")

    with pytest.raises(ConfigError) as raised:
        await config(app, model=Labeler)

    message = str(raised.value)
    assert message.startswith(
        "invalid configuration for octo-org/hello in octo-org/hello:.github/labeler.yml "
        "extending octo-org/base:.github/labeler.yml: "
    )
    assert "labels.1: Input should be a valid string" in message
    assert "threshold: Input should be a valid integer" in message
    assert not any(mint.token in message for mint in fake.mints)


async def test_invalid_yaml_is_a_config_error_naming_the_file_and_line(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/hello", LABELER, "labels: [bug\nthreshold: 2\n")
    with pytest.raises(ConfigError, match=r"^octo-org/hello:\.github/labeler\.yml is not valid "):
        await config(app)
    with pytest.raises(ConfigError, match=r"line 2, column \d+"):
        await config(app)  # the same answer again, from the cache
    assert contents_calls(fake) == 1

    fake.add_file("octo-org/world", LABELER, "# labels\n- bug\n- docs\n")
    with pytest.raises(ConfigError, match=r"labeler\.yml, line 2: the top level must be a mapp"):
        await config(app, "octo-org/world")


async def test_aliases_cannot_blow_a_small_file_up(fake: FakeGitHub, app: App) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    fake.add_file("octo-org/hello", LABELER, "\n".join(lines) + "\n")  # 10 * 4**11 strings
    with pytest.raises(ConfigError, match=r"holds more than \d+ values"):
        await config(app)


# -------------------------------------------------------------------------------- caching


async def test_two_reads_make_one_request_even_at_once(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/hello", LABELER, "labels: [bug]\n")

    together = await asyncio.gather(*(config(app) for _ in range(3)))
    again = await config(app, default={"threshold": 1})

    assert together == [{"labels": ["bug"]}] * 3
    assert again == {"labels": ["bug"], "threshold": 1}
    assert contents_calls(fake) == 1


async def test_entries_expire_after_their_time_to_live(fake: FakeGitHub, app: App) -> None:
    fake.add_file("octo-org/hello", LABELER, "threshold: 1\n")
    now = [1000.0]
    configs = RepositoryConfigs(ttl=300, clock=lambda: now[0])
    client = app.installation_client(INSTALLATION)

    assert await configs.get(client, "octo-org", "hello", "labeler.yml") == {"threshold": 1}
    fake.add_file("octo-org/hello", LABELER, "threshold: 2\n")
    now[0] += 299
    assert await configs.get(client, "octo-org", "hello", "labeler.yml") == {"threshold": 1}
    now[0] += 2
    assert await configs.get(client, "octo-org", "hello", "labeler.yml") == {"threshold": 2}
    assert contents_calls(fake) == 2


async def test_the_cache_keeps_at_most_its_size(fake: FakeGitHub, app: App) -> None:
    configs = RepositoryConfigs(max_entries=2)
    client = app.installation_client(INSTALLATION)
    for repository in ("hello", "world", "base", "hello"):
        await configs.get(client, "octo-org", repository, "labeler.yml")
    assert len(configs) == 2
    assert contents_calls(fake) == 2  # hello was read again after it was evicted


async def test_a_push_changing_the_file_drops_the_entry_and_others_do_not(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/hello", LABELER, "threshold: 1\n")
    assert await config(app) == {"threshold": 1}
    fake.add_file("octo-org/hello", LABELER, "threshold: 2\n")

    await app.receive("push", push("octo-org/hello", "README.md", ".github/other.yml"))
    await app.receive("push", push("octo-org/hello", LABELER, ref="refs/heads/dev"))
    await app.receive("push", push("octo-org/world", LABELER))
    assert await config(app) == {"threshold": 1}
    assert contents_calls(fake) == 1

    await app.receive("push", push("octo-org/hello", "src/app.py", LABELER))
    assert await config(app) == {"threshold": 2}
    assert contents_calls(fake) == 2


async def test_a_push_to_a_shared_file_drops_every_repository_that_used_it(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/.github", LABELER, "threshold: 1\n")
    fake.add_file("octo-org/base", LABELER, "labels: [a]\n")
    fake.add_file("octo-org/other", LABELER, "_extends: base\n")
    for repository in ("octo-org/hello", "octo-org/world", "octo-org/other"):
        await config(app, repository)
    assert len(app.configs) == 3

    await app.receive("push", push("octo-org/.github", LABELER))
    assert len(app.configs) == 1  # hello and world fell back to octo-org/.github
    assert await config(app, "octo-org/hello") == {"threshold": 1}
    assert contents_calls(fake, "octo-org/hello") == 2  # looked for its own file again

    await app.receive("push", push("octo-org/base", LABELER))
    assert await config(app, "octo-org/other") == {"labels": ["a"]}
    assert contents_calls(fake, "octo-org/other") == 2


async def test_adding_the_repositorys_own_file_ends_the_fallback(
    fake: FakeGitHub, app: App
) -> None:
    fake.add_file("octo-org/.github", LABELER, "threshold: 1\n")
    assert await config(app) == {"threshold": 1}
    fake.add_file("octo-org/hello", LABELER, "threshold: 9\n")
    added = push("octo-org/hello")
    added["commits"][0]["added"] = [LABELER]
    await app.receive("push", added)
    assert await config(app) == {"threshold": 9}


async def test_pushes_touching_configuration_are_stored_without_a_push_handler(
    fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(fake_url)
    seen: list[Any] = []

    @app.on("issues.opened")
    async def read(ctx: Context) -> None:
        seen.append(await ctx.config("labeler.yml", model=Labeler))

    fake.add_file("octo-org/hello", LABELER, "threshold: 1\n")
    payload = context_in(app, "octo-org/hello").payload
    async with serve_async(app) as url:
        await deliver(url, "issues", payload, "d-1")
        await app.wait_idle()
        fake.add_file("octo-org/hello", LABELER, "threshold: 2\n")
        other = await deliver(url, "push", push("octo-org/hello", "README.md"), "d-2")
        assert other.json() == {"ok": True, "handled": False}
        changed = await deliver(url, "push", push("octo-org/hello", LABELER), "d-3")
        assert changed.json() == {"ok": True}
        await app.wait_idle()
        await deliver(url, "issues", payload, "d-4")
        await app.wait_idle()
    assert seen == [Labeler(threshold=1), Labeler(threshold=2)]


# ------------------------------------------------------------------------- pure functions


def test_config_names_stay_inside_the_github_directory() -> None:
    assert config_path("bots/labeler.yaml") == ".github/bots/labeler.yaml"
    for bad in ("", "/etc/x.yml", "../x.yml", "a//b.yml", "labeler.toml"):
        with pytest.raises(ValueError):
            config_path(bad)


def test_extends_values() -> None:
    here = ConfigFile("octo-org", "hello", LABELER)
    assert parse_extends("base", here) == ConfigFile("octo-org", "base", LABELER)
    assert parse_extends("other/base", here) == ConfigFile("other", "base", LABELER)
    assert parse_extends(" .github:conf/x.yaml ", here) == ConfigFile(
        "octo-org", ".github", "conf/x.yaml"
    )
    for bad in ("", "a/b/c", "base:x.txt", "base:../x.yml", "..", 3, None):
        with pytest.raises(ConfigError, match=r"octo-org/hello:\.github/labeler\.yml"):
            parse_extends(bad, here)


def test_merge_shares_nothing_with_its_inputs() -> None:
    base = {"a": {"list": [1]}, "b": 1}
    over = {"a": {"more": {"x": [2]}}}
    merged = merge(base, over)
    assert merged == {"a": {"list": [1], "more": {"x": [2]}}, "b": 1}
    merged["a"]["list"].append(9)
    merged["a"]["more"]["x"].append(9)
    assert base == {"a": {"list": [1]}, "b": 1} and over == {"a": {"more": {"x": [2]}}}


def test_which_pushes_change_configuration() -> None:
    assert push_change(push("o/r", ".github/x.yml")) == ConfigChange(
        "o/r", frozenset({".github/x.yml"})
    )
    assert push_change(push("o/r", "conf/base.yaml")) == ConfigChange(
        "o/r", frozenset({"conf/base.yaml"})
    )
    assert push_change(push("o/r", "README.md")) is None
    assert push_change(push("o/r", ".github/x.yml", ref="refs/heads/dev")) is None
    assert push_change(push("o/r", ".github/x.yml", ref="refs/tags/main")) is None
    assert push_change(push("O/R", "README.md") | {"forced": True}) == ConfigChange("o/r", None)
