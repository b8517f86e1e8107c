"""The fake GitHub refuses what GitHub refuses, over a real loopback server."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from framework.testing import ApiRequest, FakeGitHub, Reply, generate_app_key, serve, serve_async

APP_ID = 4321
CLIENT_ID = "Iv1.fakeclientid"
INSTALLATION = 42
OTHER_INSTALLATION = 43
PRIVATE_PEM, PUBLIC_KEY = generate_app_key()
LABELS = "/repos/octo-org/hello/issues/1/labels"
HEADERS = {"User-Agent": "fake-github-tests", "X-GitHub-Api-Version": "2022-11-28"}


def app_jwt(
    *,
    iss: Any = str(APP_ID),
    iat: float = -60,
    exp: float = 540,
    key: Any = PRIVATE_PEM,
    algorithm: str = "RS256",
) -> str:
    """A JWT with ``iat``/``exp`` given as offsets from now (seconds)."""
    now = int(time.time())
    claims = {"iss": iss, "iat": int(now + iat), "exp": int(now + exp)}
    # PyJWT refuses a non-string iss; GitHub takes an integer app id, so sign the bytes.
    return jwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


@pytest.fixture
def fake() -> FakeGitHub:
    fake = FakeGitHub(app_id=APP_ID, public_key=PUBLIC_KEY, client_id=CLIENT_ID)
    fake.add_installation(INSTALLATION, repositories=["octo-org/hello", "octo-org/world"])
    fake.add_installation(
        OTHER_INSTALLATION, account="octocat", account_type="User", repositories=["octocat/spoon"]
    )
    return fake


@pytest.fixture
def github(fake: FakeGitHub) -> Iterator[httpx.Client]:
    with serve(fake.app) as base_url, httpx.Client(base_url=base_url, headers=HEADERS) as client:
        yield client


def mint(github: httpx.Client, installation_id: int = INSTALLATION, **body: Any) -> str:
    response = github.post(
        f"/app/installations/{installation_id}/access_tokens",
        headers=bearer(app_jwt()),
        json=body or None,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def assert_github_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["documentation_url"].startswith("https://docs.github.com/")
    for fragment in fragments:
        assert fragment in body["message"]


# --------------------------------------------------------------------- the happy path


def test_a_valid_jwt_mints_a_token_that_labels_an_issue(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    minted = github.post(
        f"/app/installations/{INSTALLATION}/access_tokens", headers=bearer(app_jwt())
    )
    assert minted.status_code == 201
    body = minted.json()
    assert body["token"].startswith("ghs_")
    expires_at = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert body["permissions"]["issues"] == "write"
    assert body["repository_selection"] == "selected"

    labelled = github.post(LABELS, headers=token_auth(body["token"]), json={"labels": ["triage"]})

    assert labelled.status_code == 200
    assert [label["name"] for label in labelled.json()] == ["triage"]
    assert fake.issue_labels("octo-org/hello", 1) == ["triage"]
    (call,) = fake.calls_to("POST", LABELS)
    assert call.json == {"labels": ["triage"]}
    assert call.auth == "installation"
    assert call.installation_id == INSTALLATION
    assert call.headers["user-agent"] == "fake-github-tests"


def test_labels_accumulate_and_a_bare_list_is_accepted(github: httpx.Client) -> None:
    token = mint(github)
    github.post(LABELS, headers=token_auth(token), json={"labels": ["bug"]})
    response = github.post(LABELS, headers=bearer(token), json=["bug", "triage"])
    assert [label["name"] for label in response.json()] == ["bug", "triage"]


def test_authenticated_responses_carry_rate_limit_headers(github: httpx.Client) -> None:
    token = mint(github)
    first = github.get("/repos/octo-org/hello", headers=token_auth(token))
    second = github.get("/repos/octo-org/hello", headers=token_auth(token))
    assert first.json()["full_name"] == "octo-org/hello"
    for name in ("limit", "remaining", "reset", "used", "resource"):
        assert f"x-ratelimit-{name}" in second.headers
    assert second.headers["x-ratelimit-resource"] == "core"
    remaining = int(first.headers["x-ratelimit-remaining"])
    assert int(second.headers["x-ratelimit-remaining"]) == remaining - 1
    budget = github.get("/rate_limit", headers=token_auth(token)).json()
    assert budget["resources"]["core"]["remaining"] == remaining - 1


def test_an_exhausted_rate_limit_answers_403(fake: FakeGitHub, github: httpx.Client) -> None:
    token = mint(github)
    fake.set_rate_limit(INSTALLATION, remaining=0)
    response = github.get("/repos/octo-org/hello", headers=token_auth(token))
    assert_github_error(response, 403, "API rate limit exceeded")
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_app_endpoints_find_installations(github: httpx.Client) -> None:
    auth = bearer(app_jwt())
    assert github.get("/app", headers=auth).json()["id"] == APP_ID
    assert [i["id"] for i in github.get("/app/installations", headers=auth).json()] == [42, 43]
    assert github.get("/app/installations/43", headers=auth).json()["account"]["login"] == "octocat"
    assert github.get("/repos/octo-org/world/installation", headers=auth).json()["id"] == 42
    assert github.get("/orgs/octo-org/installation", headers=auth).json()["id"] == 42
    assert github.get("/users/octocat/installation", headers=auth).json()["id"] == 43
    assert github.get("/orgs/octocat/installation", headers=auth).status_code == 404
    assert github.get("/repos/octo-org/nope/installation", headers=auth).status_code == 404
    assert github.get("/app/installations/99", headers=auth).status_code == 404


def test_the_client_id_and_an_integer_app_id_are_valid_issuers(github: httpx.Client) -> None:
    for issuer in (CLIENT_ID, APP_ID):
        assert github.get("/app", headers=bearer(app_jwt(iss=issuer))).status_code == 200


# ---------------------------------------------------------------------- app JWT checks


@pytest.mark.parametrize(
    ("make_jwt", "fragment"),
    [
        pytest.param(
            lambda: app_jwt(key="a-shared-secret-of-32-bytes-or-more", algorithm="HS256"),
            "RS256",
            id="hs256",
        ),
        pytest.param(lambda: app_jwt(key=None, algorithm="none"), "RS256", id="alg-none"),
        pytest.param(
            lambda: app_jwt(key=generate_app_key("other")[0]), "signature", id="bad-signature"
        ),
        pytest.param(lambda: app_jwt(iss="999"), "'iss'", id="wrong-iss"),
        pytest.param(lambda: app_jwt(exp=3600), "too far in the future", id="exp-too-far"),
        pytest.param(lambda: app_jwt(iat=-700, exp=-30), "expired", id="expired"),
        pytest.param(lambda: app_jwt(iat=120, exp=300), "'iat'", id="iat-in-future"),
        pytest.param(lambda: "not-a-jwt", "could not be decoded", id="garbage"),
    ],
)
def test_a_bad_app_jwt_is_refused_with_a_reason(
    fake: FakeGitHub, github: httpx.Client, make_jwt: Any, fragment: str
) -> None:
    token = make_jwt()
    response = github.post(
        f"/app/installations/{INSTALLATION}/access_tokens", headers=bearer(token)
    )
    assert_github_error(response, 401, fragment)
    assert fake.mint_count() == 0
    assert fake.jwt_verifications() == {}
    (call,) = fake.calls
    assert call.jwt == token
    assert call.auth is None


def test_app_endpoints_need_a_bearer_jwt(github: httpx.Client) -> None:
    assert_github_error(github.get("/app"), 401, "Requires authentication")
    assert_github_error(github.get("/app", headers=token_auth(app_jwt())), 401, "Bearer")
    token = mint(github)
    assert_github_error(github.get("/app", headers=bearer(token)), 401, "could not be decoded")


def test_jwt_verifications_are_counted_per_distinct_jwt(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    reused = app_jwt()
    for _ in range(3):
        assert github.get("/app", headers=bearer(reused)).status_code == 200
    other = app_jwt(exp=500)
    github.get("/app/installations", headers=bearer(other))
    assert fake.jwt_verifications() == {reused: 3, other: 1}


# --------------------------------------------------------------------- token minting


def test_mints_are_counted_per_installation(fake: FakeGitHub, github: httpx.Client) -> None:
    mint(github)
    mint(github)
    mint(github, OTHER_INSTALLATION)
    assert fake.mint_count(INSTALLATION) == 2
    assert fake.mint_count(OTHER_INSTALLATION) == 1
    assert fake.mint_count() == 3
    assert [m.installation_id for m in fake.mints] == [42, 42, 43]
    assert "ghs_" not in repr(fake.mints[0])


def test_a_token_narrowed_to_a_repository_reaches_only_that_repository(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    token = mint(github, repositories=["world"], permissions={"issues": "write"})
    assert fake.mints[0].repositories == ("octo-org/world",)
    assert github.get("/repos/octo-org/world", headers=token_auth(token)).status_code == 200
    assert_github_error(github.get("/repos/octo-org/hello", headers=token_auth(token)), 404)
    listed = github.get("/installation/repositories", headers=token_auth(token)).json()
    assert [r["full_name"] for r in listed["repositories"]] == ["octo-org/world"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"repositories": ["nope"]}, 422, "not accessible"),
        ({"repositories": ["octo-org/hello"]}, 422, "without the owner"),
        ({"repositories": "hello"}, 422, "not an array"),
        ({"repository_ids": ["1"]}, 422, "integers"),
        ({"repository_ids": [1]}, 422, "not accessible"),
        ({"repositories": ["hello"] * 501}, 422, "Too many repositories"),
        ({"permissions": {"issues": "owner"}}, 422, "read, write or admin"),
        ({"permissions": {"administration": "write"}}, 422, "not granted"),
        ({"permissions": {"contents": "write"}}, 422, "not granted"),
        (["hello"], 422, "not an object"),
    ],
)
def test_a_bad_access_token_request_is_refused(
    fake: FakeGitHub, github: httpx.Client, body: Any, status: int, fragment: str
) -> None:
    response = github.post(
        f"/app/installations/{INSTALLATION}/access_tokens", headers=bearer(app_jwt()), json=body
    )
    assert_github_error(response, status, fragment)
    assert fake.mint_count() == 0


def test_minting_for_an_unknown_installation_is_not_found(github: httpx.Client) -> None:
    response = github.post("/app/installations/99/access_tokens", headers=bearer(app_jwt()))
    assert_github_error(response, 404, "Not Found")


# ---------------------------------------------------------------- installation tokens


def test_an_expired_token_is_refused(fake: FakeGitHub, github: httpx.Client) -> None:
    token = mint(github)
    fake.expire_token(token)
    response = github.post(LABELS, headers=token_auth(token), json={"labels": ["x"]})
    assert_github_error(response, 401, "Bad credentials")
    assert fake.calls[-1].installation_id == INSTALLATION
    assert fake.calls[-1].auth is None


def test_expire_all_tokens_expires_every_token(fake: FakeGitHub, github: httpx.Client) -> None:
    tokens = [mint(github), mint(github, OTHER_INSTALLATION)]
    fake.expire_all_tokens()
    for token in tokens:
        assert_github_error(github.get("/rate_limit", headers=token_auth(token)), 401)


def test_an_unknown_or_missing_token_is_refused(github: httpx.Client) -> None:
    assert_github_error(
        github.get("/repos/octo-org/hello", headers=token_auth("ghs_unknown")),
        401,
        "Bad credentials",
    )
    assert_github_error(github.get("/repos/octo-org/hello"), 401, "Requires authentication")
    assert_github_error(
        github.get("/repos/octo-org/hello", headers=bearer(app_jwt())), 401, "app JWT"
    )


def test_a_token_on_another_installations_repository_is_not_found(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    token = mint(github, OTHER_INSTALLATION)
    response = github.post(LABELS, headers=token_auth(token), json={"labels": ["x"]})
    assert_github_error(response, 404, "Not Found")
    assert "x-ratelimit-remaining" in response.headers
    assert fake.issue_labels("octo-org/hello", 1) == []


def test_a_removed_installations_tokens_stop_working(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    token = mint(github)
    fake.remove_installation(INSTALLATION)
    assert_github_error(github.get("/rate_limit", headers=token_auth(token)), 401)


def test_a_revoked_token_is_refused(github: httpx.Client) -> None:
    token = mint(github)
    assert github.delete("/installation/token", headers=token_auth(token)).status_code == 204
    assert_github_error(github.get("/rate_limit", headers=token_auth(token)), 401)


def test_labelling_needs_issues_write(fake: FakeGitHub, github: httpx.Client) -> None:
    token = mint(github, permissions={"issues": "read"})
    response = github.post(LABELS, headers=token_auth(token), json={"labels": ["x"]})
    assert_github_error(response, 403, "Resource not accessible by integration")


@pytest.mark.parametrize(
    "body",
    [{"labels": "bug"}, {"label": ["bug"]}, {"labels": [1]}, {"labels": [""]}, "bug"],
    ids=["string", "misspelt-key", "number", "empty-name", "bare-string"],
)
def test_a_badly_shaped_labels_body_is_unprocessable(github: httpx.Client, body: Any) -> None:
    token = mint(github)
    response = github.post(LABELS, headers=token_auth(token), json=body)
    assert_github_error(response, 422, "Invalid request")
    assert response.json()["errors"][0]["field"] == "labels"


# -------------------------------------------------------------- request shape, always


def test_a_request_without_user_agent_is_forbidden(github: httpx.Client) -> None:
    del github.headers["User-Agent"]
    response = github.get("/app", headers=bearer(app_jwt()))
    assert_github_error(response, 403, "User-Agent")


def test_only_known_api_versions_are_accepted(github: httpx.Client) -> None:
    auth = bearer(app_jwt())
    assert github.get("/app", headers={**auth, "X-GitHub-Api-Version": "2026-03-10"}).is_success
    response = github.get("/app", headers={**auth, "X-GitHub-Api-Version": "2023-01-01"})
    assert_github_error(response, 400, "2023-01-01")
    del github.headers["X-GitHub-Api-Version"]
    assert github.get("/app", headers=auth).is_success


def test_bodies_must_be_json_with_a_json_content_type(github: httpx.Client) -> None:
    token = mint(github)
    not_json = github.post(
        LABELS,
        headers={**token_auth(token), "Content-Type": "application/json"},
        content=b"{labels: [",
    )
    assert_github_error(not_json, 400, "Problems parsing JSON")
    form = github.post(LABELS, headers=token_auth(token), data={"labels": "bug"})
    assert_github_error(form, 415, "Content-Type")


def test_an_unknown_route_is_a_github_shaped_404(github: httpx.Client) -> None:
    response = github.get("/repos/octo-org/hello/no-such-thing", headers=bearer(app_jwt()))
    assert_github_error(response, 404, "Not Found")


# ------------------------------------------------------------------------- scripting


def test_a_scripted_response_overrides_and_runs_out(fake: FakeGitHub, github: httpx.Client) -> None:
    fake.respond("GET", "/repos/octo-org/hello", status=502, json={"message": "boom"}, times=1)
    token = mint(github)
    first = github.get("/repos/octo-org/hello", headers=token_auth(token))
    second = github.get("/repos/octo-org/hello", headers=token_auth(token))
    assert (first.status_code, first.json()) == (502, {"message": "boom"})
    assert "x-ratelimit-remaining" in first.headers
    assert second.status_code == 200


def test_a_scripted_route_gets_its_parameters_and_stays_behind_auth(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    @fake.route("GET", "/repos/{owner}/{repo}/issues/{number}")
    def issue(request: ApiRequest) -> Reply:
        return Reply(200, {"number": int(request.params["number"]), "by": request.installation_id})

    token = mint(github)
    response = github.get("/repos/octo-org/hello/issues/7", headers=token_auth(token))
    assert response.json() == {"number": 7, "by": INSTALLATION}
    assert_github_error(github.get("/repos/octo-org/hello/issues/7"), 401)
    foreign = mint(github, OTHER_INSTALLATION)
    assert_github_error(
        github.get("/repos/octo-org/hello/issues/7", headers=token_auth(foreign)), 404
    )


def test_scripted_headers_override_rate_limit_headers(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    fake.respond(
        "GET",
        "/app/hook/deliveries",
        status=429,
        json={"message": "slow down"},
        headers={"retry-after": "7", "x-ratelimit-remaining": "0"},
    )
    response = github.get("/app/hook/deliveries", headers=bearer(app_jwt()))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert fake.calls[-1].auth == "app"


def test_a_scripted_route_can_need_no_auth(fake: FakeGitHub, github: httpx.Client) -> None:
    fake.respond("POST", "/app-manifests/{code}/conversions", status=201, json={}, auth="none")
    assert github.post("/app-manifests/abc/conversions").status_code == 201


# ---------------------------------------------------------------------------- server


def test_the_server_listens_on_loopback_and_stops_in_bounded_time(fake: FakeGitHub) -> None:
    started = time.monotonic()
    with serve(fake.app) as base_url:
        address = urlsplit(base_url)
        assert address.hostname == "127.0.0.1"
        assert address.port
        assert httpx.get(f"{base_url}/rate_limit", headers=HEADERS).status_code == 401
    assert time.monotonic() - started < 5
    with pytest.raises(OSError), socket.create_connection((address.hostname, address.port), 1):
        pass


def test_serve_refuses_a_non_loopback_host(fake: FakeGitHub) -> None:
    with pytest.raises(ValueError, match="loopback"), serve(fake.app, host="0.0.0.0"):
        pass


def test_a_failing_lifespan_startup_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    @asynccontextmanager
    async def broken(_app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="startup"), serve(Starlette(lifespan=broken)):
        pass
    assert time.monotonic() - started < 5


async def test_serve_async_runs_in_the_current_event_loop(fake: FakeGitHub) -> None:
    async with serve_async(fake.app) as base_url, httpx.AsyncClient(headers=HEADERS) as client:
        assert urlsplit(base_url).hostname == "127.0.0.1"
        response = await client.get(f"{base_url}/app", headers=bearer(app_jwt()))
        assert response.status_code == 200
    assert fake.calls[-1].auth == "app"


async def test_serve_async_reports_a_failing_lifespan_startup() -> None:
    @asynccontextmanager
    async def broken(_app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    with pytest.raises(RuntimeError, match="startup"):
        async with serve_async(Starlette(lifespan=broken)):
            pass


# ------------------------------------------------------------------- repository contents

CONFIG = "/repos/octo-org/hello/contents/.github/labeler.yml"
RAW = {"Accept": "application/vnd.github.raw+json"}


def test_a_file_is_served_raw_or_as_base64_json(fake: FakeGitHub, github: httpx.Client) -> None:
    sha = fake.add_file("octo-org/hello", ".github/labeler.yml", "labels: [bug]\n")
    auth = token_auth(mint(github))

    raw = github.get(CONFIG, headers=auth | RAW)
    assert raw.status_code == 200
    assert raw.text == "labels: [bug]\n"
    assert not raw.headers["content-type"].startswith("application/json")

    described = github.get(CONFIG, headers=auth)
    assert described.status_code == 200
    body = described.json()
    assert (body["type"], body["path"]) == ("file", ".github/labeler.yml")
    assert (body["encoding"], body["sha"], body["size"]) == ("base64", sha, 14)
    assert base64.b64decode(body["content"]) == b"labels: [bug]\n"
    assert sha == hashlib.sha1(b"blob 14\0labels: [bug]\n").hexdigest()  # git's blob id


def test_a_missing_file_or_ref_is_a_github_shaped_404(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    fake.add_file("octo-org/hello", ".github/labeler.yml", "a: 1\n", branch="dev")
    auth = token_auth(mint(github))
    assert_github_error(github.get(CONFIG, headers=auth | RAW), 404, "Not Found")
    assert github.get(CONFIG, params={"ref": "dev"}, headers=auth | RAW).text == "a: 1\n"
    assert_github_error(
        github.get(CONFIG, params={"ref": "nope"}, headers=auth), 404, "No commit found"
    )


def test_a_directory_is_listed_as_json_even_when_raw_is_asked(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    fake.add_file("octo-org/hello", ".github/labeler.yml", "a: 1\n")
    fake.add_file("octo-org/hello", ".github/workflows/ci.yml", "on: push\n")
    listing = github.get(
        "/repos/octo-org/hello/contents/.github", headers=token_auth(mint(github)) | RAW
    )
    assert listing.headers["content-type"].startswith("application/json")
    assert [(e["name"], e["type"]) for e in listing.json()] == [
        ("labeler.yml", "file"),
        ("workflows", "dir"),
    ]


def test_contents_need_a_token_that_reaches_the_repository_and_may_read_contents(
    fake: FakeGitHub, github: httpx.Client
) -> None:
    fake.add_file("octo-org/.github", ".github/labeler.yml", "a: 1\n")  # not installed
    fake.add_file("octo-org/hello", ".github/labeler.yml", "a: 1\n")
    auth = token_auth(mint(github))
    shared = "/repos/octo-org/.github/contents/.github/labeler.yml"
    assert_github_error(github.get(shared, headers=auth | RAW), 404, "Not Found")
    narrowed = token_auth(mint(github, repositories=["world"]))
    assert_github_error(github.get(CONFIG, headers=narrowed | RAW), 404, "Not Found")
    issues_only = token_auth(mint(github, permissions={"issues": "write"}))
    assert_github_error(github.get(CONFIG, headers=issues_only | RAW), 403, "not accessible")
