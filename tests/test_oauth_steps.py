"""The OAuth steps as pure functions: tables of inputs and what each platform expects."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from framework.auth.oauth.atomgit import AtomGitOAuth
from framework.auth.oauth.base import (
    Answer,
    Grant,
    InvalidState,
    MissingScope,
    OAuthApp,
    OAuthError,
    expiry_time,
    new_state,
    read_state,
    redirect_uri_allowed,
    safe_next,
)
from framework.auth.oauth.coding import CodingOAuth
from framework.auth.oauth.github import (
    DeviceCode,
    GitHubOAuth,
    granted_scopes,
    normalize_scopes,
    read_poll,
    require_scopes,
)
from framework.auth.oauth.tapd import TapdOAuth, read_resource
from framework.auth.sealing import Sealer, new_key

NOW = 1_700_000_000.0


def json_answer(data: Any, status: int = 200, **headers: str) -> Answer:
    return Answer(
        status, {"content-type": "application/json", **headers}, json.dumps(data).encode()
    )


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# Expiry formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-05-07T04:02:40.758+08:00", 1683403360.758),  # ISO with its offset
        ("2023-05-06T20:02:40Z", 1683403360.0),
        (1684166156606, 1684166156.606),  # epoch milliseconds (AtomGit)
        ("1684166156606", 1684166156.606),
        ("780260", NOW + 780260),  # seconds as a string (CODING)
        (7200, NOW + 7200),  # seconds as a number (TAPD)
        (28800.0, NOW + 28800),
        (1700003600, 1700003600.0),  # epoch seconds
        (None, None),
        ("", None),
    ],
)
def test_expiry_formats(value: Any, expected: float | None) -> None:
    found = expiry_time(value, NOW)
    if expected is None:
        assert found is None
    else:
        assert found == pytest.approx(expected)


@pytest.mark.parametrize("value", ["tomorrow", "2023-05-07T04:02:40", -5, [1], True])
def test_unreadable_expiry_is_a_clear_error(value: Any) -> None:
    if value is True:
        assert expiry_time(value, NOW) is None
        return
    with pytest.raises(OAuthError):
        expiry_time(value, NOW)


# GitHub's redirect rule (seed 004's table) -------------------------------------------------

CALLBACK = "http://example.com/path"


@pytest.mark.parametrize(
    ("redirect", "good"),
    [
        ("http://example.com/path", True),
        ("http://example.com/path/subdir/other", True),
        ("http://example.com/bar", False),
        ("http://example.com/", False),
        ("http://example.com:8080/path", False),
        ("http://oauth.example.com:8080/path", False),
        ("http://example.org", False),
        ("http://example.com/pathology", False),
        ("https://example.com/path", False),
        ("http://example.com/path/../bar", False),
    ],
)
def test_the_seeds_redirect_table(redirect: str, good: bool) -> None:
    assert redirect_uri_allowed(CALLBACK, redirect) is good


# next= ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "evil",
        "javascript:alert(1)",
        "/ok\r\nSet-Cookie: x",
    ],
)
def test_next_refuses_anything_but_a_path(value: str) -> None:
    with pytest.raises(ValueError):
        safe_next(value)


@pytest.mark.parametrize("value", ["/", "/dashboard", "/repos?page=2#top"])
def test_next_accepts_a_path(value: str) -> None:
    assert safe_next(value) == value


# The state ------------------------------------------------------------------------------------

SEALER = Sealer.from_keys([new_key()])


def test_a_state_round_trips_for_its_browser() -> None:
    state, nonce = new_state(SEALER, "github", "/after", NOW)
    claims = read_state(SEALER, state, platform="github", cookie_nonce=nonce, now=NOW + 599)
    assert (claims.platform, claims.next) == ("github", "/after")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"now": NOW + 601}, "bad_state"),  # expired
        ({"cookie_nonce": "another-browser"}, "foreign_state"),
        ({"cookie_nonce": None}, "foreign_state"),
        ({"platform": "tapd"}, "bad_state"),
        ({"sealer": Sealer.from_keys([new_key()])}, "bad_state"),  # forged with another key
        ({"state": ""}, "no_state"),
        ({"state": "gAAAAABnot-a-state"}, "bad_state"),
    ],
)
def test_a_bad_state_is_refused(change: dict[str, Any], error: str) -> None:
    state, nonce = new_state(SEALER, "github", "/", NOW)
    given: dict[str, Any] = {
        "sealer": SEALER,
        "state": state,
        "platform": "github",
        "cookie_nonce": nonce,
        "now": NOW,
    } | change
    with pytest.raises(InvalidState) as caught:
        read_state(given.pop("sealer"), given.pop("state"), **given)
    assert caught.value.error == error


def test_states_are_random() -> None:
    assert new_state(SEALER, "github", "/", NOW) != new_state(SEALER, "github", "/", NOW)


# GitHub -----------------------------------------------------------------------------------

GITHUB = GitHubOAuth(
    OAuthApp(
        "Iv1.abc", "s3cret", "https://github.com", "https://api.github.com", scopes=("repo", "user")
    )
)


def test_github_authorize_url() -> None:
    url = GITHUB.authorize_url("S", "https://bot.example/login/github/callback")
    assert url.startswith("https://github.com/login/oauth/authorize?")
    assert query(url) == {
        "client_id": "Iv1.abc",
        "scope": "repo user",
        "state": "S",
        "redirect_uri": "https://bot.example/login/github/callback",
        "allow_signup": "true",
    }


def test_github_exchange_is_a_form_asking_for_json() -> None:
    call = GITHUB.exchange("code1", "https://bot.example/cb")
    assert (call.method, call.url) == ("POST", "https://github.com/login/oauth/access_token")
    assert call.headers["Accept"] == "application/json" and call.json is None
    assert call.form == {
        "client_id": "Iv1.abc",
        "client_secret": "s3cret",
        "code": "code1",
        "redirect_uri": "https://bot.example/cb",
    }
    assert "s3cret" not in repr(call)


def test_github_expiring_token_answer() -> None:
    answer = json_answer(
        {
            "access_token": "ghu_x",
            "expires_in": 28800,
            "refresh_token": "ghr_y",
            "refresh_token_expires_in": 15897600,
            "scope": "",
            "token_type": "bearer",
        }
    )
    grant = GITHUB.read_grant(answer, NOW, {})
    assert (grant.expires_at, grant.refresh_expires_at) == (NOW + 28800, NOW + 15897600)
    assert grant.refresh_token == "ghr_y" and "ghu_x" not in repr(grant)


def test_github_classic_token_never_expires_and_its_form_answer_is_read() -> None:
    answer = Answer(
        200,
        {"content-type": "application/x-www-form-urlencoded"},
        b"access_token=e72e16c7&scope=user%2Cgist%2Cuser%3Aemail&token_type=bearer",
    )
    grant = GITHUB.read_grant(answer, NOW, {})
    assert (grant.expires_at, grant.refresh_token) == (None, None)
    assert grant.scopes == ("gist", "user")


@pytest.mark.parametrize(
    ("data", "error", "rejected"),
    [
        (
            {"error": "bad_verification_code", "error_description": "expired"},
            "bad_verification_code",
            True,
        ),
        ({"error": "incorrect_client_credentials"}, "incorrect_client_credentials", True),
        ({"error": "redirect_uri_mismatch"}, "redirect_uri_mismatch", True),
        ({"token_type": "bearer"}, "no_token", False),
    ],
)
def test_github_error_answers(data: dict[str, str], error: str, rejected: bool) -> None:
    with pytest.raises(OAuthError) as caught:
        GITHUB.read_grant(json_answer(data), NOW, {})
    assert (caught.value.error, caught.value.rejected) == (error, rejected)


def test_a_server_error_is_not_a_refusal() -> None:
    with pytest.raises(OAuthError) as caught:
        GITHUB.read_grant(Answer(502, {}, b"bad gateway"), NOW, {})
    assert not caught.value.rejected


def test_github_refresh_call() -> None:
    call = GITHUB.refresh(Grant("ghu_old", refresh_token="ghr_old"))
    assert call.form is not None
    assert call.form["grant_type"] == "refresh_token" and call.form["refresh_token"] == "ghr_old"


def test_github_identity_reads_the_granted_scopes() -> None:
    answer = json_answer({"id": 1, "login": "octocat"}, **{"x-oauth-scopes": "repo, user"})
    assert GITHUB.read_identity(answer).scopes == ("repo", "user")
    assert GITHUB.identity(Grant("ghu_x")).url == "https://api.github.com/user"


@pytest.mark.parametrize(
    ("asked", "stored"),
    [
        (["user", "gist", "user:email"], ("gist", "user")),
        (["repo", "repo:status", "public_repo"], ("repo",)),
        (["admin:org", "read:org", "write:org"], ("admin:org",)),
        (["read:org", "write:org"], ("write:org",)),
        (["workflow", "gist"], ("gist", "workflow")),
        ([], ()),
    ],
)
def test_scope_normalization(asked: list[str], stored: tuple[str, ...]) -> None:
    assert normalize_scopes(asked) == stored


def test_x_oauth_scopes() -> None:
    assert granted_scopes("repo, user") == ("repo", "user")
    assert granted_scopes(None) is None


def test_a_scope_not_granted_is_a_clear_error() -> None:
    require_scopes("octocat", ["repo", "user"], ["repo:status", "user:email"])
    with pytest.raises(MissingScope, match=r"octocat did not grant the scope\(s\) gist"):
        require_scopes("octocat", ["repo", "user"], ["gist"])


DEVICE = DeviceCode("dc", "WDJB-MJHT", "https://github.com/login/device", NOW + 900, 5)


@pytest.mark.parametrize(
    ("answer", "now", "interval"),
    [
        ({"error": "authorization_pending"}, NOW, 5),
        ({"error": "slow_down"}, NOW, 10),
        ({"error": "slow_down", "interval": 15}, NOW, 15),
    ],
)
def test_device_polls_go_on(answer: dict[str, Any], now: float, interval: float) -> None:
    poll = read_poll(json_answer(answer), 5, now, DEVICE.expires_at)
    assert (poll.grant, poll.interval) == (None, interval)


@pytest.mark.parametrize(
    ("answer", "now", "error"),
    [
        ({"error": "expired_token"}, NOW, "expired_token"),
        ({"error": "authorization_pending"}, NOW + 901, "expired_token"),
        ({"error": "access_denied"}, NOW, "access_denied"),
        ({"error": "unsupported_grant_type"}, NOW, "unsupported_grant_type"),
    ],
)
def test_device_polls_that_end(answer: dict[str, Any], now: float, error: str) -> None:
    with pytest.raises(OAuthError) as caught:
        read_poll(json_answer(answer), 5, now, DEVICE.expires_at)
    assert caught.value.error == error


def test_a_device_poll_with_a_token_is_done() -> None:
    poll = read_poll(json_answer({"access_token": "ghu_x", "expires_in": 28800}), 5, NOW, NOW + 9)
    assert poll.grant is not None and poll.grant.expires_at == NOW + 28800


# AtomGit ----------------------------------------------------------------------------------

ATOMGIT = AtomGitOAuth(
    OAuthApp("Iv1.4952", "fc58", "https://atomgit.com", "https://api.atomgit.com")
)


def test_atomgit_authorize_has_only_client_id_and_state() -> None:
    assert query(ATOMGIT.authorize_url("S", "ignored")) == {"client_id": "Iv1.4952", "state": "S"}


def test_atomgit_exchange_and_refresh_are_json() -> None:
    call = ATOMGIT.exchange("acdc", "ignored")
    assert call.url == "https://api.atomgit.com/login/oauth/access_token"
    assert call.form is None and call.headers["Content-Type"] == "application/json"
    assert call.json == {"client_id": "Iv1.4952", "client_secret": "fc58", "code": "acdc"}
    refresh = ATOMGIT.refresh(Grant("atu_x", refresh_token="refresh_2f"))
    assert refresh.json == {
        "client_id": "Iv1.4952",
        "client_secret": "fc58",
        "grant_type": "refresh_token",
        "refresh_token": "refresh_2f",
    }


def test_atomgit_expiry_is_epoch_milliseconds() -> None:
    answer = json_answer(
        {
            "access_token": "atu_f737",
            "expires_in": 1684506494639,
            "refresh_token": "refresh_2ff4",
            "refresh_token_expires_in": 1700375294639,
        }
    )
    grant = ATOMGIT.read_grant(answer, NOW, {})
    assert (grant.expires_at, grant.refresh_expires_at) == (1684506494.639, 1700375294.639)


# CODING -----------------------------------------------------------------------------------

CODING = CodingOAuth(
    OAuthApp(
        "cid",
        "csecret",
        "https://{team}.coding.net",
        "",
        scopes=("user", "project:depot"),
        options={"team": "anywhere"},
    )
)


def test_coding_authorize_on_the_team_host_with_comma_scopes() -> None:
    url = CODING.authorize_url("S", "https://bot.example/cb")
    assert url.startswith("https://anywhere.coding.net/oauth_authorize.html?")
    assert query(url) == {
        "client_id": "cid",
        "redirect_uri": "https://bot.example/cb",
        "response_type": "code",
        "scope": "user,project:depot",
        "state": "S",
    }


def test_coding_exchange_and_answer() -> None:
    call = CODING.exchange("7923", "https://bot.example/cb")
    assert call.url == "https://anywhere.coding.net/api/oauth/access_token"
    assert call.form == {
        "client_id": "cid",
        "client_secret": "csecret",
        "code": "7923",
        "grant_type": "authorization_code",
    }
    answer = json_answer(
        {
            "access_token": "8883",
            "refresh_token": "6663",
            "team": "elsewhere",
            "expires_in": "780260",
            "token_type": "bearer",
        }
    )
    grant = CODING.read_grant(answer, NOW, {})
    assert (grant.expires_at, grant.team) == (NOW + 780260, "elsewhere")
    assert CODING.identity(grant).url == "https://elsewhere.coding.net/api/me"
    assert CODING.identity(grant).headers["Authorization"] == "token 8883"


def test_coding_identity_both_shapes() -> None:
    bare = json_answer({"id": 183478, "global_key": "KMRnIKgzbV", "name": "sink"})
    wrapped = json_answer({"code": 0, "data": {"id": 183478, "global_key": "KMRnIKgzbV"}})
    assert CODING.read_identity(bare) == CODING.read_identity(wrapped)
    assert CODING.read_identity(bare).login == "KMRnIKgzbV"


# TAPD -------------------------------------------------------------------------------------

TAPD = TapdOAuth(
    OAuthApp(
        "Aladdin",
        "open sesame",
        "https://www.tapd.cn",
        "https://api.tapd.cn",
        scopes=("story", "bug"),
        options={"auth_by": "take_park_workspace"},
    )
)


def test_tapd_authorize() -> None:
    url = TAPD.authorize_url("S", "https://bot.example/cb")
    assert url.startswith("https://www.tapd.cn/oauth/?")
    assert query(url) == {
        "response_type": "code",
        "client_id": "Aladdin",
        "scope": "story bug",
        "redirect_uri": "https://bot.example/cb",
        "state": "S",
        "auth_by": "take_park_workspace",
    }


def test_tapd_exchange_is_basic_and_form() -> None:
    call = TAPD.exchange("82a6", "https://bot.example/cb")
    assert call.headers["Authorization"] == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="  # the seed's
    assert base64.b64decode(call.headers["Authorization"][6:]) == b"Aladdin:open sesame"
    assert call.form == {
        "grant_type": "authorization_code",
        "redirect_uri": "https://bot.example/cb",
        "code": "82a6",
    }
    assert call.url == "https://api.tapd.cn/tokens/request_token"


def test_tapd_envelope_and_resource() -> None:
    answer = json_answer(
        {
            "status": 1,
            "info": "success",
            "data": {
                "access_token": "7152e30d",
                "expires_in": 7200,
                "token_type": "Bearer",
                "scope": "bug story",
                "resource": {"type": "workspace", "workspace_id": 10104801},
                "now": "2019-06-04 16:07:51",
            },
        }
    )
    grant = TAPD.read_grant(answer, NOW, {})
    assert (grant.expires_at, grant.scopes) == (NOW + 7200, ("bug", "story"))
    assert grant.resource == {"type": "workspace", "workspace_id": 10104801}
    with pytest.raises(OAuthError, match="invalid code"):
        TAPD.read_grant(json_answer({"status": 0, "data": None, "info": "invalid code"}), NOW, {})


@pytest.mark.parametrize("name", ["resource", "resouce"])  # the seed's sample misspells it
def test_tapd_callback_resource(name: str) -> None:
    assert read_resource({name: '{"type":"workspace","workspace_id":10022001}'}) == {
        "type": "workspace",
        "workspace_id": 10022001,
    }
    with pytest.raises(OAuthError):
        read_resource({name: "not json"})
