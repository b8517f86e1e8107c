"""Every platform's rules, as pure functions over headers and bytes: table tests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from framework.auth.installation_tokens import parse_expires_at
from framework.common.encoding import compact_json
from framework.errors import (
    AuthenticationError,
    CodingAPIError,
    InvalidPayload,
    MissingHeader,
    NotSupported,
    SignatureMismatch,
    TapdAPIError,
)
from framework.platforms import ALL_EVENTS, PLATFORMS, atomgit, coding, github, tapd
from framework.settings import Settings
from framework.testing import coding_issue, gitlab_issue, signed_delivery, tapd_story
from framework.webhooks.delivery import delivery_key, split_delivery_key
from framework.webhooks.signature import SignatureVerifier, sign
from tests.support import PEM

SECRET = "s3cret"
VERIFIER = SignatureVerifier([SECRET])


@pytest.mark.parametrize(
    ("platform", "native", "key"),
    [
        ("github", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("atomgit", "a-1", "atomgit:a-1"),
        ("coding", "c:1", "coding:c:1"),
        ("tapd", "1180173432", "tapd:1180173432"),
        ("github", "tapd:1", "github:tapd:1"),  # an unsigned header cannot pose as TAPD's
    ],
)
def test_deliveries_are_keyed_by_platform_and_id(platform: str, native: str, key: str) -> None:
    assert delivery_key(platform, native) == key
    assert split_delivery_key(key) == (platform, native)


def _mr(action: str, **attributes: Any) -> dict[str, Any]:
    payload = gitlab_issue(number=4)
    payload["object_kind"] = "merge_request"
    payload["object_attributes"].update(
        action=action, source_branch="fix", target_branch="main", **attributes
    )
    return payload


ZERO = "0" * 40


@pytest.mark.parametrize(
    ("hook", "payload", "event", "action"),
    [
        ("Push Hook", {"object_kind": "push", "ref": "refs/heads/main", "before": "a" * 40,
                       "after": "b" * 40}, "push", None),
        ("Tag Push Hook", {"object_kind": "tag_push", "ref": "refs/tags/v1", "before": ZERO,
                           "after": "b" * 40}, "create", None),
        ("Tag Push Hook", {"object_kind": "tag_push", "ref": "refs/tags/v1", "before": "b" * 40,
                           "after": ZERO}, "delete", None),
        ("Issue Hook", gitlab_issue(action="open"), "issues", "opened"),
        ("Issue Hook", gitlab_issue(action="close"), "issues", "closed"),
        ("Issue Hook", gitlab_issue(action="reopen"), "issues", "reopened"),
        ("Issue Hook", gitlab_issue(action="update"), "issues", "edited"),
        ("Merge Request Hook", _mr("open"), "pull_request", "opened"),
        ("Merge Request Hook", _mr("update", oldrev="c" * 40), "pull_request", "synchronize"),
        ("Merge Request Hook", _mr("update"), "pull_request", "edited"),
        ("Merge Request Hook", _mr("merge", state="merged"), "pull_request", "closed"),
        ("Merge Request Hook", _mr("close", state="closed"), "pull_request", "closed"),
        ("Note Hook", {"object_kind": "note", "object_attributes": {
            "noteable_type": "Issue", "note": "hi"}, "issue": {"iid": 2}},
         "issue_comment", "created"),
        ("Note Hook", {"object_kind": "note", "object_attributes": {
            "noteable_type": "Commit", "note": "hi"}}, "commit_comment", "created"),
        ("Pipeline Hook", {"object_kind": "pipeline", "object_attributes": {"status": "ok"}},
         "pipeline", None),
        ("Release Hook", {"object_kind": "release", "action": "create"}, "release", None),
    ],
)  # fmt: skip
def test_gitlab_shaped_atomgit_events_map_onto_githubs(
    hook: str, payload: dict[str, Any], event: str, action: str | None
) -> None:
    mapped, mapped_action, enriched = atomgit.from_gitlab(hook, payload)
    assert (mapped, mapped_action) == (event, action)
    for key, value in payload.items():  # the original fields stay (GitHub's names extended)
        if key == "ref" and event in ("create", "delete"):
            assert enriched["ref"] == value.removeprefix("refs/tags/")
        elif isinstance(value, dict):
            assert value.items() <= enriched[key].items(), key
        else:
            assert enriched[key] == value, key
    assert event in ALL_EVENTS


def test_a_gitlab_shaped_issue_gains_the_fields_handlers_and_actions_read() -> None:
    _, _, enriched = atomgit.from_gitlab("Issue Hook", gitlab_issue(repo="o/r", number=9))
    assert enriched["issue"]["number"] == 9
    assert enriched["repository"]["full_name"] == "o/r"
    assert enriched["sender"]["login"] == "octocat"
    assert github.labels_call(enriched, ["x"]).path == "/repos/o/r/issues/9/labels"
    merged = atomgit.from_gitlab("Merge Request Hook", _mr("merge", state="merged"))[2]
    assert merged["pull_request"]["merged"] is True
    assert merged["pull_request"]["head"]["ref"] == "fix"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "X-AtomGit-Event or X-GitCode-Event header is missing"),
        ({"x-gitcode-event": "Issue Hook"}, "X-GitCode-Signature-256"),
        ({"x-gitcode-event": "Issue Hook", "x-gitcode-token": "nope"}, "does not match"),
        ({"x-gitcode-event": "Issue Hook", "x-gitcode-signature-256": "sha256=00"},
         "does not match"),
        ({"x-atomgit-event": "issues"}, "X-Hub-Signature-256 header is missing"),
    ],
)  # fmt: skip
def test_atomgit_refuses_what_is_not_genuine(headers: dict[str, str], problem: str) -> None:
    with pytest.raises((SignatureMismatch, MissingHeader), match=problem):
        atomgit.read_webhook(headers, compact_json(gitlab_issue()), VERIFIER)


def test_an_atomgit_delivery_without_an_id_gets_one_from_its_bytes() -> None:
    signed = signed_delivery("atomgit", "Issue Hook", gitlab_issue(), SECRET)
    headers = {k.lower(): v for k, v in signed.headers.items() if k != "X-GitCode-Delivery"}
    first = atomgit.read_webhook(headers, signed.body, VERIFIER)
    again = atomgit.read_webhook(headers, signed.body, VERIFIER)
    other = atomgit.read_webhook(
        {**headers, "x-gitcode-signature-256": sign(signed.body + b" ", SECRET)},
        signed.body + b" ",
        VERIFIER,
    )
    assert first.delivery_id == again.delivery_id != other.delivery_id
    assert first.delivery_id.startswith("sha256-")


@pytest.mark.parametrize(
    ("raw", "events"),
    [
        (["push"], ("push",)),
        (['{"code":"push"', '"desc":"push event"}'], ("push",)),
        (['{"code":"push"', '"desc":"a, b"}', "issues"], ("push", "issues")),
        ([{"code": "merge_request"}], ("merge_request",)),
        (None, ()),
        (["{broken"], ()),
    ],
)
def test_atomgit_installation_events_are_read_despite_their_splitting(
    raw: Any, events: tuple[str, ...]
) -> None:
    assert atomgit.read_events(raw) == events


SEED_INSTALLATION = {
    "access_tokens_url": "https://api.atomgit.com/app/installations/18/access_tokens",
    "account": {"id": 13618, "org_name": "hanshuorg2", "organization_id":
                "6311ec658cfdd5a134b25fd3", "path": "hanshuorg2"},
    "app_id": 75, "app_slug": "car-dove-marketplace-test",
    "created_at": "2023-04-27T16:42:50+08:00",
    "events": ['{"code":"push"', '"desc":"push event"}'],
    "id": 18, "permissions": {"emails": "write", "checks": "write"},
    "repository_selection": "ALL", "target_id": "6311ec658cfdd5a134b25fd3",
    "updated_at": "2023-04-27T16:42:50+08:00",
}  # fmt: skip


def test_the_seeds_installation_shape_is_read() -> None:
    info = atomgit.read_installation(SEED_INSTALLATION)
    assert (info.id, info.account, info.repository_selection) == (18, "hanshuorg2", "all")
    assert info.events == ("push",) and info.target_id == "6311ec658cfdd5a134b25fd3"
    with pytest.raises(InvalidPayload):
        atomgit.read_installation({"id": "18"})


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2023-05-07T04:02:40.758+08:00", datetime(2023, 5, 6, 20, 2, 40, 758000, UTC)),
        ("2016-07-11T22:14:10Z", datetime(2016, 7, 11, 22, 14, 10, tzinfo=UTC)),
        ("2016-07-11T22:14:10+00:00", datetime(2016, 7, 11, 22, 14, 10, tzinfo=UTC)),
    ],
)
def test_token_expiry_formats(text: str, utc: datetime) -> None:
    assert parse_expires_at(text) == utc


@pytest.mark.parametrize("text", ["2023-05-07T04:02:40", "tomorrow", ""])
def test_token_expiries_without_a_zone_or_a_time_are_refused(text: str) -> None:
    with pytest.raises(AuthenticationError):
        parse_expires_at(text)


@pytest.mark.parametrize(
    ("name", "payload", "event", "action"),
    [
        ("merge_request", {"action": "create"}, "pull_request", "opened"),
        ("merge_request", {"action": "update"}, "pull_request", "synchronize"),
        ("merge_request", {"action": "merge"}, "pull_request", "closed"),
        ("merge_request", {"merge_request": {"action": "close"}}, "pull_request", "closed"),
        ("issue", {"action": "create"}, "issues", "opened"),
        ("issue", {"action": "update"}, "issues", "edited"),
        ("push", {"ref": "refs/heads/main"}, "push", None),
        ("ping", {"zen": "hi"}, "ping", None),
        ("artifact", {"action": "upload"}, "artifact", "upload"),
    ],
)
def test_coding_events_map_onto_githubs(
    name: str, payload: dict[str, Any], event: str, action: str | None
) -> None:
    assert coding.map_event(name, payload) == (event, action)


def test_coding_deliveries_are_checked_with_hmac_sha1_in_json_or_form() -> None:
    for form in (False, True):
        signed = signed_delivery("coding", "issue", coding_issue(code=3), SECRET, form=form)
        headers = {k.lower(): v for k, v in signed.headers.items()}
        incoming = coding.read_webhook(headers, signed.body, VERIFIER)
        assert (incoming.event, incoming.delivery_id) == ("issues", signed.delivery_id)
        assert b'"number":3' in incoming.body and b'"action":"opened"' in incoming.body
        with pytest.raises(SignatureMismatch):
            coding.read_webhook(headers, signed.body + b" ", VERIFIER)
    with pytest.raises(SignatureMismatch, match="X-Coding-Signature header is missing"):
        coding.read_webhook({"x-coding-event": "push"}, b"{}", VERIFIER)


@pytest.mark.parametrize(
    ("body", "raised"),
    [
        ({"Response": {"Data": 1, "RequestId": "r"}}, None),
        ({"Response": {"Error": {"Code": "AuthFailure", "Message": "bad"}, "RequestId": "r"}},
         CodingAPIError),
        ({"Data": 1}, Exception),
        ("not json object", Exception),
    ],
)  # fmt: skip
def test_codings_open_api_envelope(body: Any, raised: type[Exception] | None) -> None:
    if raised is None:
        assert coding.unwrap_open_api("DescribeX", body) == body["Response"]
        return
    with pytest.raises(raised) as caught:
        coding.unwrap_open_api("DescribeX", body)
    if raised is CodingAPIError:
        error = caught.value
        assert isinstance(error, CodingAPIError)
        assert (error.code, error.request_id, error.message) == ("AuthFailure", "r", "bad")


async def test_codings_client_retries_reads_not_writes_on_5xx_and_waits_out_rate_limits() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://e.coding.net/open-api"
        assert request.headers["authorization"] == "token t"
        asked.append(json.loads(request.read())["Action"])
        if len(asked) == 1:
            return httpx.Response(503)
        if len(asked) == 2:
            return httpx.Response(429, headers={"retry-after": "0"})
        return httpx.Response(200, json={"Response": {"Ok": True, "RequestId": "r"}})

    from framework.client.limits import ClientPolicy, ClientShared
    from framework.platforms.connections import HeaderAuth

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(base_url="https://team.coding.net", transport=transport) as pool:
        shared = ClientShared(
            ClientPolicy(backoff=0.0), read_error=coding.error_from_response, sleep=_no_sleep
        )
        client = coding.CodingClient(pool, HeaderAuth("token t"), shared=shared)
        assert await client.open_api("DescribeIssue", ProjectName="p") == {
            "Ok": True,
            "RequestId": "r",
        }
        # a 503, then a rate limit waited out, then the answer
        assert asked == ["DescribeIssue"] * 3
        asked.clear()
        from framework.errors import ServerError

        with pytest.raises(ServerError):
            await client.open_api("CreateIssueComment", ProjectName="p")
        assert len(asked) == 1  # a write that may have landed is not sent twice


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded",
         b"event=bug%3A%3Aupdate&workspace_id=1&id=2&event_id=9&secret=s3cret&old_status=new"),
        ("application/json",
         b'{"event":"bug::update","workspace_id":1,"id":"2","event_id":"9","secret":"s3cret"}'),
    ],
)  # fmt: skip
def test_tapd_deliveries_in_either_encoding(content_type: str, body: bytes) -> None:
    incoming = tapd.read_webhook({"content-type": content_type}, body, VERIFIER)
    assert (incoming.event, incoming.delivery_id, incoming.native_event) == (
        "bug",
        "9",
        "bug::update",
    )
    assert b"s3cret" not in incoming.body and b'"action":"update"' in incoming.body
    with pytest.raises(SignatureMismatch, match="secret field does not match"):
        tapd.read_webhook(
            {"content-type": content_type}, body.replace(b"s3cret", b"s3creX"), VERIFIER
        )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"workspace_id=1&secret=s3cret", "no 'event' field"),
        (b"event=story%3A%3Acreate", "secret field is missing"),
        (b'{"event": "story::create"', "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_tapd_bad_input(body: bytes, error: str) -> None:
    with pytest.raises((InvalidPayload, SignatureMismatch), match=error):
        tapd.read_webhook({}, body, VERIFIER)


def test_a_tapd_delivery_without_an_event_id_gets_a_stable_one() -> None:
    body = b"event=story%3A%3Acreate&workspace_id=1&id=2&secret=s3cret"
    first = tapd.read_webhook({}, body, VERIFIER)
    assert first.delivery_id == tapd.read_webhook({}, body, VERIFIER).delivery_id
    assert first.delivery_id.startswith("sha256-")


@pytest.mark.parametrize(
    ("body", "data", "raised"),
    [
        ({"status": 1, "data": [1], "info": "success"}, [1], None),
        ({"status": 0, "data": {}, "info": "workspace not found"}, None, TapdAPIError),
        ({"data": 1}, None, Exception),
    ],
)
def test_tapds_envelope(body: Any, data: Any, raised: type[Exception] | None) -> None:
    if raised is None:
        assert tapd.unwrap(body) == data
    else:
        with pytest.raises(raised):
            tapd.unwrap(body)


def test_tapd_comment_and_label_requests() -> None:
    story = {"event": "story::create", "id": "11", "workspace_id": "22"}
    call = tapd.comment_call(story, "Hi", "bot")
    assert (call.method, call.path, call.data) == (
        "POST",
        "/comments",
        {"workspace_id": "22", "entry_type": "stories", "entry_id": "11", "description": "Hi",
         "author": "bot"},
    )  # fmt: skip
    task = {"event": "task::create", "id": "3", "workspace_id": 22}
    assert tapd.comment_call(task, "x", "b").data["entry_type"] == "tasks"  # type: ignore[index]
    assert tapd.merged_labels("", ["a", "b"]) == "a|b"
    assert tapd.merged_labels("a|b", ["b", "c"]) == "a|b|c"
    with pytest.raises(ValueError, match="not about a TAPD story"):
        tapd.comment_call({"event": "iteration::create", "id": "1", "workspace_id": 1}, "x", "b")


def test_github_action_requests() -> None:
    payload = {"repository": {"full_name": "o/r"}, "pull_request": {"number": 3}}
    assert github.comment_call(payload, "hi").json == {"body": "hi"}
    assert github.labels_call(payload, ["a"]).path == "/repos/o/r/issues/3/labels"
    status = github.status_call(payload, "abc", "failure", "ci", "x" * 200)
    assert status.json == {"state": "failure", "context": "ci", "description": "x" * 140}
    with pytest.raises(ValueError, match="state must be one of"):
        github.status_call(payload, "abc", "green", "ci", None)
    with pytest.raises(ValueError, match="no issue or pull request"):
        github.comment_call({"repository": {"full_name": "o/r"}}, "hi")


@pytest.mark.parametrize("platform", ["coding", "tapd"])
async def test_commit_statuses_where_there_are_none_are_not_supported(platform: str) -> None:
    with pytest.raises(NotSupported, match="commit statuses"):
        await PLATFORMS[platform].actions.set_status(None, {}, "abc", "success", "ci", None)


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


KEY = PEM  # a key that loads: a GitHub App's key is checked before serving


@pytest.mark.parametrize(
    ("values", "enabled", "problems"),
    [
        ({}, ["github"], ["WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY"]),
        ({"webhook_secret": "s", "app_id": "1", "private_key": KEY}, ["github"], []),
        ({"atomgit_webhook_secret": "s"}, ["atomgit"], ["ATOMGIT_APP_ID", "ATOMGIT_PRIVATE_KEY"]),
        ({"atomgit_private_key": KEY}, ["atomgit"],
         ["ATOMGIT_WEBHOOK_SECRET", "ATOMGIT_APP_ID"]),
        ({"atomgit_app_id": "75", "atomgit_private_key": KEY, "atomgit_webhook_secret": "s"},
         ["atomgit"], []),
        ({"coding_webhook_secret": "s"}, ["coding"], ["CODING_TOKEN", "CODING_TEAM"]),
        ({"coding_webhook_secret": "s", "coding_token": "t", "coding_team": "acme"},
         ["coding"], []),
        ({"tapd_webhook_secret": "s", "tapd_api_user": "u"}, ["tapd"], ["TAPD_API_PASSWORD"]),
        ({"tapd_webhook_secret": "s"}, ["tapd"], ["TAPD_API_USER and TAPD_API_PASSWORD"]),
        ({"tapd_token": "t"}, ["tapd"], ["TAPD_WEBHOOK_SECRET"]),
        ({"tapd_webhook_secret": "s", "tapd_token": "t", "coding_token": "t"},
         ["coding", "tapd"], ["CODING_WEBHOOK_SECRET", "CODING_TEAM"]),
    ],
)  # fmt: skip
def test_each_platform_is_enabled_by_its_settings_and_says_what_it_lacks(
    values: dict[str, Any], enabled: list[str], problems: list[str]
) -> None:
    settings = _settings(**values)
    assert settings.enabled_platforms() == enabled
    found = settings.problems_for_serving()
    assert [line.split(" ")[0] for line in found] == [p.split(" ")[0] for p in problems], found
    for line, problem in zip(found, problems, strict=True):
        assert line.startswith(problem)


def test_platform_events_are_known_to_registration() -> None:
    for key in ("story.create", "bug.update", "task.status_change", "pipeline", "issues.opened"):
        assert key.partition(".")[0] in ALL_EVENTS
    assert {p.webhook_path for p in PLATFORMS.values()} == {
        "/api/github/webhooks",
        "/api/atomgit/webhooks",
        "/api/coding/webhooks",
        "/api/tapd/webhooks",
    }


def test_tapd_stories_signed_as_tapd_sends_them() -> None:
    signed = signed_delivery("tapd", "story::create", tapd_story(), SECRET, delivery_id="5")
    incoming = tapd.read_webhook(
        {k.lower(): v for k, v in signed.headers.items()}, signed.body, VERIFIER
    )
    assert (incoming.event, incoming.delivery_id) == ("story", "5")
