"""The OAuth fakes refuse what each platform refuses: a fake that accepted anything would let
a broken sign-in pass its tests."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from framework.testing import FakeOAuth, ManualClock
from tests.signin_support import fake_for, served

CALLBACK = "http://127.0.0.1:9/login/{}/callback"


def code_from(answer: httpx.Response) -> str:
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def authorize_query(fake: FakeOAuth, **extra: str) -> dict[str, str]:
    query = {"client_id": fake.client_id, "state": "s"}
    if fake.platform != "atomgit":
        query["redirect_uri"] = CALLBACK.format(fake.platform)
    if fake.platform in ("coding", "tapd"):
        query["response_type"] = "code"
    return query | extra


def authorize_path(fake: FakeOAuth) -> str:
    return {"coding": f"/t/{fake.team}/oauth_authorize.html", "tapd": "/oauth/"}.get(
        fake.platform, "/login/oauth/authorize"
    )


@pytest.mark.parametrize(
    ("platform", "change", "refusal"),
    [
        ("github", {"client_id": "someone-else"}, "unknown_client"),
        ("github", {"redirect_uri": "http://127.0.0.1:9/elsewhere"}, "redirect_uri_mismatch"),
        (
            "github",
            {"redirect_uri": "http://127.0.0.1:8/login/github/callback"},
            "redirect_uri_mismatch",
        ),
        ("github", {"scope": "repo,user"}, "invalid_scope"),
        ("atomgit", {"redirect_uri": "http://127.0.0.1:9/x"}, "invalid_request"),
        ("coding", {"scope": "user project"}, "invalid_scope"),
        ("coding", {"response_type": "token"}, "unsupported_response_type"),
        ("tapd", {"auth_by": "everyone"}, "invalid_auth_by"),
        (
            "tapd",
            {"redirect_uri": "http://127.0.0.1:9/login/tapd/callback/x"},
            "redirect_uri_mismatch",
        ),
    ],
)
def test_authorize_refuses_a_wrong_request(
    platform: str, change: dict[str, str], refusal: str
) -> None:
    with served(fake_for(platform, callback_url=CALLBACK.format(platform))) as fake:
        answer = httpx.get(
            fake.base_url + authorize_path(fake), params=authorize_query(fake, **change)
        )
    assert answer.status_code in (400, 404) and fake.refused == [refusal]


def test_coding_answers_only_on_its_team_host() -> None:
    with served(fake_for("coding", callback_url=CALLBACK.format("coding"))) as fake:
        answer = httpx.get(
            f"{fake.base_url}/t/another-team/oauth_authorize.html", params=authorize_query(fake)
        )
    assert answer.status_code == 404 and fake.refused == ["no_such_team"]


def token_path(fake: FakeOAuth) -> str:
    return {
        "coding": f"/t/{fake.team}/api/oauth/access_token",
        "tapd": "/tokens/request_token",
    }.get(fake.platform, "/login/oauth/access_token")


def github_exchange(fake: FakeOAuth, redirect_uri: str) -> dict[str, str]:
    """Authorize at the fake, and the exchange's form for the code it gave."""
    answer = httpx.get(fake.base_url + authorize_path(fake), params=authorize_query(fake))
    return {"client_id": fake.client_id, "client_secret": fake.client_secret,
            "code": code_from(answer), "redirect_uri": redirect_uri}  # fmt: skip


def test_github_answers_form_encoded_without_accept_json_and_codes_are_single_use() -> None:
    with served(fake_for("github", callback_url=CALLBACK.format("github"))) as fake:
        form = github_exchange(fake, CALLBACK.format("github"))
        answer = httpx.post(fake.base_url + token_path(fake), data=form)
        assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert "access_token=ghu_" in answer.text
        again = httpx.post(
            fake.base_url + token_path(fake), data=form, headers={"Accept": "application/json"}
        )
    assert again.status_code == 200 and again.json()["error"] == "bad_verification_code"


def test_github_refuses_an_exchange_whose_redirect_uri_differs_from_the_authorize_step() -> None:
    with served(fake_for("github", callback_url=CALLBACK.format("github"))) as fake:
        form = github_exchange(fake, CALLBACK.format("github") + "/other")
        answer = httpx.post(
            fake.base_url + token_path(fake), data=form, headers={"Accept": "application/json"}
        )
    assert answer.json()["error"] == "redirect_uri_mismatch"


def test_atomgit_takes_json_only() -> None:
    with served(fake_for("atomgit", callback_url=CALLBACK.format("atomgit"))) as fake:
        code = code_from(
            httpx.get(fake.base_url + authorize_path(fake), params=authorize_query(fake))
        )
        body = {"client_id": fake.client_id, "client_secret": fake.client_secret, "code": code}
        as_form = httpx.post(fake.base_url + token_path(fake), data=body)
        assert as_form.status_code == 400 and fake.refused == ["invalid_request"]
        as_json = httpx.post(fake.base_url + token_path(fake), json=body)
    assert as_json.json()["access_token"].startswith("atu_")
    assert as_json.json()["expires_in"] > 10**12  # epoch milliseconds


def test_tapd_wants_basic_auth_a_form_and_a_fresh_code() -> None:
    clock = ManualClock()
    with served(fake_for("tapd", callback_url=CALLBACK.format("tapd"), clock=clock)) as fake:
        url = fake.base_url + token_path(fake)
        basic = (
            "Basic " + base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
        )
        code = code_from(
            httpx.get(fake.base_url + authorize_path(fake), params=authorize_query(fake))
        )
        form = {
            "grant_type": "authorization_code",
            "redirect_uri": CALLBACK.format("tapd"),
            "code": code,
        }
        no_basic = httpx.post(
            url, data=form | {"client_id": fake.client_id, "client_secret": fake.client_secret}
        )
        assert no_basic.status_code == 401 and no_basic.json()["status"] == 0
        code = code_from(
            httpx.get(fake.base_url + authorize_path(fake), params=authorize_query(fake))
        )
        clock.advance(301)  # TAPD's codes live five minutes
        late = httpx.post(url, data=form | {"code": code}, headers={"Authorization": basic})
        assert late.json() == {"status": 0, "data": None, "info": "bad_verification_code"}
        code = code_from(
            httpx.get(fake.base_url + authorize_path(fake), params=authorize_query(fake))
        )
        good = httpx.post(url, data=form | {"code": code}, headers={"Authorization": basic})
    data = good.json()["data"]
    assert good.json()["status"] == 1 and data["expires_in"] == 7200
    assert data["resource"] == {"type": "workspace", "workspace_id": 10022001}


def test_the_user_api_refuses_an_unknown_token() -> None:
    with served(fake_for("github")) as fake:
        answer = httpx.get(
            f"{fake.base_url}/user/repos", headers={"Authorization": "Bearer ghu_no"}
        )
    assert answer.status_code == 401 and fake.refused == ["bad_credentials"]
