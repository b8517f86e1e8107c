"""The fake's commit statuses, check runs, collaborator permissions and issue comments refuse
what GitHub refuses, and keep what they created for the test to read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from framework.testing import FakeGitHub, serve
from tests.test_fake_github import (
    APP_ID,
    HEADERS,
    INSTALLATION,
    PUBLIC_KEY,
    app_jwt,
    assert_github_error,
    bearer,
    mint,
    token_auth,
)

REPO = "octo-org/hello"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
STATUSES = f"/repos/{REPO}/statuses/{SHA}"
CHECK_RUNS = f"/repos/{REPO}/check-runs"
COMMENTS = f"/repos/{REPO}/issues/3/comments"


@pytest.fixture
def fake() -> FakeGitHub:
    fake = FakeGitHub(app_id=APP_ID, public_key=PUBLIC_KEY)
    fake.add_installation(INSTALLATION, repositories=[REPO])
    return fake


@pytest.fixture
def github(fake: FakeGitHub) -> Iterator[httpx.Client]:
    with serve(fake.app) as base_url, httpx.Client(base_url=base_url, headers=HEADERS) as client:
        yield client


@pytest.fixture
def token(github: httpx.Client) -> str:
    return mint(github)


# --------------------------------------------------------------------- commit statuses


def test_a_status_is_created_on_a_commit_and_kept(
    fake: FakeGitHub, github: httpx.Client, token: str
) -> None:
    body = {"state": "success", "context": "ci", "description": "ok", "target_url": None}
    response = github.post(STATUSES, headers=token_auth(token), json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["state"], created["context"], created["description"]) == (
        "success",
        "ci",
        "ok",
    )
    assert created["creator"]["type"] == "Bot"
    github.post(STATUSES, headers=token_auth(token), json={"state": "pending"})
    kept = fake.commit_statuses(REPO.upper(), SHA)
    assert [(s["state"], s["context"]) for s in kept] == [("success", "ci"), ("pending", "default")]
    assert fake.commit_statuses(REPO, "f" * 40) == []


@pytest.mark.parametrize("state", ["passed", None, "SUCCESS"])
def test_a_status_with_another_state_is_unprocessable(
    fake: FakeGitHub, github: httpx.Client, token: str, state: Any
) -> None:
    response = github.post(STATUSES, headers=token_auth(token), json={"state": state})
    assert_github_error(response, 422, "Validation Failed")
    assert response.json()["errors"][0]["field"] == "state"
    assert fake.commit_statuses(REPO, SHA) == []


def test_a_status_needs_a_full_commit_sha_and_string_fields(
    github: httpx.Client, token: str
) -> None:
    short = github.post(
        f"/repos/{REPO}/statuses/ec26c3e", headers=token_auth(token), json={"state": "success"}
    )
    assert_github_error(short, 422, "No commit found for SHA: ec26c3e")
    number = github.post(
        STATUSES, headers=token_auth(token), json={"state": "success", "description": 1}
    )
    assert_github_error(number, 422, "Invalid request")


def test_a_status_needs_the_statuses_permission(github: httpx.Client) -> None:
    token = mint(github, permissions={"checks": "write"})
    response = github.post(STATUSES, headers=token_auth(token), json={"state": "success"})
    assert_github_error(response, 403, "Resource not accessible by integration")


def test_tokens_get_statuses_write_by_default(github: httpx.Client) -> None:
    minted = github.post(
        f"/app/installations/{INSTALLATION}/access_tokens", headers=bearer(app_jwt())
    )
    assert minted.json()["permissions"]["statuses"] == "write"


# -------------------------------------------------------------------------- check runs


def test_a_check_run_is_created_and_kept(
    fake: FakeGitHub, github: httpx.Client, token: str
) -> None:
    response = github.post(
        CHECK_RUNS,
        headers=token_auth(token),
        json={"name": "lint", "head_sha": SHA, "output": {"title": "OK", "summary": "clean"}},
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["name"], run["head_sha"], run["status"], run["conclusion"]) == (
        "lint",
        SHA,
        "queued",
        None,
    )
    assert run["output"]["summary"] == "clean" and run["completed_at"] is None
    assert fake.check_runs(REPO) == [run]
    assert fake.check_runs(REPO, head_sha="f" * 40) == []


def test_a_conclusion_completes_the_check_run(github: httpx.Client, token: str) -> None:
    response = github.post(
        CHECK_RUNS,
        headers=token_auth(token),
        json={"name": "lint", "head_sha": SHA, "status": "in_progress", "conclusion": "failure"},
    )
    run = response.json()
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["completed_at"] is not None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"head_sha": SHA}, '"name" wasn\'t supplied'),
        ({"name": "lint"}, '"head_sha" wasn\'t supplied'),
        ({"name": "", "head_sha": SHA}, "For 'name'"),
        ({"name": "lint", "head_sha": "main"}, "No commit found for SHA: main"),
        ({"name": "lint", "head_sha": SHA, "status": "done"}, "For 'status'"),
        ({"name": "lint", "head_sha": SHA, "status": "completed"}, "For 'conclusion'"),
        ({"name": "lint", "head_sha": SHA, "conclusion": "passed"}, "For 'conclusion'"),
        ({"name": "lint", "head_sha": SHA, "output": {"title": "no summary"}}, "For 'output'"),
    ],
    ids=[
        "no-name", "no-head-sha", "empty-name", "not-a-sha", "unknown-status",
        "completed-without-conclusion", "unknown-conclusion", "output-without-summary",
    ],
)  # fmt: skip
def test_a_bad_check_run_is_unprocessable(
    fake: FakeGitHub, github: httpx.Client, token: str, body: dict[str, Any], fragment: str
) -> None:
    response = github.post(CHECK_RUNS, headers=token_auth(token), json=body)
    assert_github_error(response, 422, fragment)
    assert fake.check_runs(REPO) == []


def test_a_check_run_needs_checks_write(github: httpx.Client) -> None:
    token = mint(github, permissions={"checks": "read"})
    response = github.post(
        CHECK_RUNS, headers=token_auth(token), json={"name": "lint", "head_sha": SHA}
    )
    assert_github_error(response, 403, "Resource not accessible by integration")


# ------------------------------------------------------------- collaborator permission


@pytest.mark.parametrize(
    ("role", "permission"),
    [("admin", "admin"), ("maintain", "write"), ("write", "write"), ("triage", "read"),
     ("read", "read")],
)  # fmt: skip
def test_a_collaborators_permission_is_their_roles_base_permission(
    fake: FakeGitHub, github: httpx.Client, token: str, role: str, permission: str
) -> None:
    fake.add_collaborator(REPO, "Hubot", role)
    response = github.get(
        f"/repos/{REPO}/collaborators/hubot/permission", headers=token_auth(token)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["permission"], body["role_name"]) == (permission, role)
    assert body["user"]["login"] == "Hubot"
    assert body["user"]["permissions"]["push"] is (permission in ("admin", "write"))


def test_anyone_else_is_not_found(fake: FakeGitHub, github: httpx.Client, token: str) -> None:
    fake.add_collaborator("octo-org/world", "hubot", "admin")  # another repository
    response = github.get(
        f"/repos/{REPO}/collaborators/hubot/permission", headers=token_auth(token)
    )
    assert_github_error(response, 404, "Not Found")


def test_a_collaborator_needs_a_known_role(fake: FakeGitHub) -> None:
    with pytest.raises(ValueError, match="permission must be one of"):
        fake.add_collaborator(REPO, "hubot", "owner")


# ----------------------------------------------------------------------- issue comments


def test_a_comment_is_created_by_the_app_and_kept(
    fake: FakeGitHub, github: httpx.Client, token: str
) -> None:
    response = github.post(COMMENTS, headers=token_auth(token), json={"body": "Thanks!"})
    assert response.status_code == 201, response.text
    comment = response.json()
    assert comment["body"] == "Thanks!"
    assert comment["user"] == {
        "login": "fake-app[bot]",
        "id": comment["user"]["id"],
        "node_id": comment["user"]["node_id"],
        "type": "Bot",
        "site_admin": False,
    }
    assert comment["html_url"].endswith(f"/{REPO}/issues/3#issuecomment-{comment['id']}")
    assert fake.issue_comments(REPO, 3) == ["Thanks!"]


@pytest.mark.parametrize("body", [{}, {"body": ""}, {"body": 1}, "Thanks!"])
def test_a_comment_needs_a_body(
    fake: FakeGitHub, github: httpx.Client, token: str, body: Any
) -> None:
    response = github.post(COMMENTS, headers=token_auth(token), json=body)
    assert_github_error(response, 422, "For 'body'")
    assert fake.issue_comments(REPO, 3) == []


def test_commenting_needs_issues_write(github: httpx.Client) -> None:
    token = mint(github, permissions={"issues": "read"})
    response = github.post(COMMENTS, headers=token_auth(token), json={"body": "Hi"})
    assert_github_error(response, 403, "Resource not accessible by integration")
