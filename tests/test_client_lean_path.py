"""The client's lean request path (framework/client/lean.py) sends what httpx would send and
answers what httpx would answer; what it cannot send goes through httpx, and a 401 is resent
once with a fresh token on either path."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import httpx
import pytest

from framework import App, NetworkError, Settings
from framework.auth.app_jwt import AppJWT
from framework.auth.installation_tokens import InstallationTokens
from framework.auth.private_key import load_private_key
from framework.client.lean import LeanPool, LeanResponse, join_url, merge_headers
from framework.client.limits import ClientShared
from framework.client.rest import (
    AppAuth,
    GitHubClient,
    InstallationAuth,
    new_http_client,
)
from framework.errors import GitHubAPIError
from framework.platforms.connections import HeaderAuth
from framework.testing import ApiRequest, FakeGitHub, Reply
from tests.support import APP_ID, INSTALLATION, PEM, REPO

LABELS = f"/repos/{REPO}/issues/1/labels"


class PlainHeaderAuth(httpx.Auth):
    """An auth the lean path does not know: the client must leave it to httpx."""

    def __init__(self, value: str) -> None:
        self.value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.value
        yield request


@pytest.fixture
async def app(fake_url: str) -> AsyncIterator[App]:
    app = App(
        Settings(app_id=str(APP_ID), private_key=PEM, webhook_secret="x", github_api_url=fake_url),
        name="lean-bot",
    )
    yield app
    await app.close()


async def through_httpx(app: App) -> GitHubClient:
    """The installation's client, with its token in an auth only httpx runs."""
    auth = app.installation_client(INSTALLATION).auth
    assert isinstance(auth, InstallationAuth)
    credential = await auth.credential()
    return GitHubClient(
        app.http, PlainHeaderAuth(credential.authorization), shared=app.client_shared
    )


# The same requests on both paths ----------------------------------------------------------

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", LABELS, {"json": {"labels": ["bug", "ünïcode"]}}),
    ("GET", f"/repos/{REPO}/issues", {"params": {"state": "all", "per_page": 5, "x": [1, 2]}}),
    ("GET", f"/repos/{REPO}", {"headers": {"Accept": "application/vnd.github.raw+json"}}),
    ("PUT", f"/repos/{REPO}/issues/1/labels", {"content": b'{"labels":["a"]}',
                                               "headers": {"content-type": "application/json"}}),
    ("POST", LABELS, {"content": '{"labels":["text"]}', "headers": {"X-Extra": "1"}}),
    ("DELETE", f"/repos/{REPO}/issues/1/labels/a", {}),
    ("POST", LABELS, {"json": None}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs"), REQUESTS)
async def test_the_lean_path_sends_what_httpx_sends(
    fake: FakeGitHub, app: App, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    fake.respond("GET", f"/repos/{REPO}/issues", json=[{"number": 1}])
    answers: list[httpx.Response | Exception] = []
    calls = []
    for client in (app.installation_client(INSTALLATION), await through_httpx(app)):
        fake.clear_calls()
        try:
            answers.append(await client.request(method, path, **kwargs))
        except Exception as exc:  # the same refusal on both paths is as good as an answer
            answers.append(exc)
        (call,) = fake.calls
        calls.append(call)
    # which path sent it: the lean one answers its own kind of httpx.Response
    assert isinstance(answers[0], LeanResponse | Exception)
    assert not isinstance(answers[1], LeanResponse)
    sent_lean, sent_httpx = calls
    assert (sent_lean.method, sent_lean.path, sent_lean.query, sent_lean.json) == (
        sent_httpx.method, sent_httpx.path, sent_httpx.query, sent_httpx.json
    )  # fmt: skip
    assert sent_lean.headers == sent_httpx.headers
    lean, plain = answers
    if isinstance(lean, Exception):
        assert type(lean) is type(plain) and str(lean) == str(plain)
        return
    assert isinstance(plain, httpx.Response)
    assert (lean.status_code, lean.content) == (plain.status_code, plain.content)
    assert (lean.reason_phrase, lean.http_version) == (plain.reason_phrase, plain.http_version)
    read = ("num_bytes_downloaded", "is_closed", "is_stream_consumed", "text")
    assert [getattr(lean, name) for name in read] == [getattr(plain, name) for name in read]
    lean_headers, plain_headers = lean.headers.multi_items(), plain.headers.multi_items()
    assert [name for name, _ in lean_headers] == [name for name, _ in plain_headers]
    varies = ("date", "x-github-request-id", "x-ratelimit-")  # a second later, 1 more used
    assert [h for h in lean_headers if not h[0].startswith(varies)] == [
        h for h in plain_headers if not h[0].startswith(varies)
    ]


async def test_the_response_names_the_request_it_answers(
    fake: FakeGitHub, fake_url: str, app: App
) -> None:
    response = await app.installation_client(INSTALLATION).post(LABELS, json={"labels": ["x"]})
    assert isinstance(response, LeanResponse)
    request = response.request
    assert (request.method, str(request.url)) == ("POST", f"{fake_url}{LABELS}")
    assert request.headers["authorization"] == f"token {fake.calls[-1].token}"
    assert json.loads(request.content) == {"labels": ["x"]}
    assert response.url == request.url
    assert response.elapsed.total_seconds() > 0


async def test_a_gzip_answer_is_decoded(fake: FakeGitHub, app: App) -> None:
    body = json.dumps({"full_name": REPO}).encode()

    @fake.route("GET", "/repos/{owner}/{repo}/zipped")
    def zipped(_: ApiRequest) -> Reply:
        headers = {"content-encoding": "gzip", "content-type": "application/json"}
        return Reply(200, None, headers, raw=gzip.compress(body))

    response = await app.installation_client(INSTALLATION).get(f"/repos/{REPO}/zipped")
    assert isinstance(response, LeanResponse)
    assert response.json() == {"full_name": REPO}
    assert response.num_bytes_downloaded == len(gzip.compress(body)) != len(response.content)


async def test_a_gets_query_is_part_of_its_etag_key(fake: FakeGitHub, app: App) -> None:
    gh = app.installation_client(INSTALLATION)
    for query in ("?page=1", "?page=2", "?page=1"):
        await gh.get(f"/repos/{REPO}{query}")
    first, second, again = fake.calls_to("GET", f"/repos/{REPO}")
    assert [first.query, second.query, again.query] == [{"page": "1"}, {"page": "2"}, {"page": "1"}]
    assert "if-none-match" not in second.headers  # page 2 is not page 1 revalidated
    assert again.headers["if-none-match"] and again.status == 304


async def test_a_redirect_is_answered_not_followed(fake: FakeGitHub, app: App) -> None:
    moved = f"{app.http.base_url}/repos/Codertocat/Renamed"
    fake.respond("GET", f"/repos/{REPO}", status=301, headers={"location": moved})
    response = await app.installation_client(INSTALLATION).get(f"/repos/{REPO}")
    assert response.status_code == 301 and response.headers["location"] == moved
    assert response.next_request is not None and str(response.next_request.url) == moved
    assert [c.path for c in fake.calls if c.method == "GET"] == [f"/repos/{REPO}"]


# 401: one resend with a fresh token ------------------------------------------------------------


async def test_a_refused_token_is_replaced_and_the_request_sent_once_more(
    fake: FakeGitHub, app: App
) -> None:
    gh = app.installation_client(INSTALLATION)
    await gh.post(LABELS, json={"labels": ["a"]})
    fake.expire_all_tokens()
    response = await gh.post(LABELS, json={"labels": ["b"]})
    assert isinstance(response, LeanResponse) and response.status_code == 200
    first, refused, resent = fake.calls_to("POST", LABELS)
    assert [first.status, refused.status, resent.status] == [200, 401, 200]
    assert refused.token == first.token != resent.token
    assert response.request.headers["authorization"] == f"token {resent.token}"
    assert fake.mint_count(INSTALLATION) == 2


async def test_a_second_401_stands_after_one_resend(fake: FakeGitHub, app: App) -> None:
    fake.respond("POST", LABELS, status=401, json={"message": "Bad credentials"}, times=2)
    with pytest.raises(GitHubAPIError, match="401"):
        await app.installation_client(INSTALLATION).post(LABELS, json={"labels": ["a"]})
    sent = fake.calls_to("POST", LABELS)
    assert len(sent) == 2 and sent[0].token != sent[1].token
    assert fake.mint_count(INSTALLATION) == 2


async def test_the_app_jwt_is_not_resent_after_a_401(fake: FakeGitHub, app: App) -> None:
    fake.respond("GET", "/app", status=401, json={"message": "Bad credentials"}, times=1)
    with pytest.raises(GitHubAPIError, match="401"):
        await app.github.get("/app")
    assert len(fake.calls_to("GET", "/app")) == 1


async def test_a_401_through_httpx_is_resent_once_too(fake: FakeGitHub, fake_url: str) -> None:
    """An installation client over a pool the lean path does not serve: httpx runs the auth."""
    app = App(
        Settings(app_id=str(APP_ID), private_key=PEM, webhook_secret="x", github_api_url=fake_url)
    )
    async with httpx.AsyncClient(base_url=fake_url) as pool:
        assert LeanPool.of(pool) is None
        auth = app.installation_client(INSTALLATION).auth
        gh = GitHubClient(pool, auth, shared=app.client_shared)
        await gh.post(LABELS, json={"labels": ["a"]})
        fake.expire_all_tokens()
        response = await gh.post(LABELS, json={"labels": ["b"]})
    assert not isinstance(response, LeanResponse) and response.status_code == 200
    assert [c.status for c in fake.calls_to("POST", LABELS)] == [200, 401, 200]
    await app.close()


async def test_a_fixed_header_as_coding_and_tapd_send_takes_the_lean_path(
    fake: FakeGitHub, app: App
) -> None:
    auth = app.installation_client(INSTALLATION).auth
    assert isinstance(auth, InstallationAuth)
    fixed = HeaderAuth((await auth.credential()).authorization)
    client = GitHubClient(app.http, fixed, shared=app.client_shared)
    response = await client.post(LABELS, json={"labels": ["fixed"]})
    assert isinstance(response, LeanResponse) and response.status_code == 200
    assert fake.calls_to("POST", LABELS)[0].installation_id == INSTALLATION
    assert fake.issue_labels(REPO, 1) == ["fixed"]


# What goes through httpx ------------------------------------------------------------------------


async def test_an_auth_the_lean_path_does_not_know_goes_through_httpx(
    fake: FakeGitHub, app: App
) -> None:
    response = await (await through_httpx(app)).post(LABELS, json={"labels": ["plain"]})
    assert not isinstance(response, LeanResponse) and response.status_code == 200
    assert fake.calls_to("POST", LABELS)[0].installation_id == INSTALLATION
    assert fake.issue_labels(REPO, 1) == ["plain"]


@pytest.mark.parametrize(
    ("path", "kwargs", "query"),
    [
        (f"/repos/{REPO}", {"timeout": 5.0}, {}),  # a keyword the lean path does not send
        (f"/repos/{REPO}?per_page=1", {"params": {"page": 2}}, {"page": "2"}),  # httpx drops
        (f"/repos/{REPO}/issues?labels=help wanted", {}, {"labels": "help wanted"}),  # quoted
        ("{base}/repos/" + REPO, {}, {}),  # an absolute URL
    ],
)
async def test_what_the_lean_path_does_not_send_goes_through_httpx(
    fake: FakeGitHub, app: App, path: str, kwargs: dict[str, Any], query: dict[str, str]
) -> None:
    fake.respond("GET", f"/repos/{REPO}/issues", json=[])
    path = path.format(base=app.http.base_url)
    response = await app.installation_client(INSTALLATION).get(path, **kwargs)
    assert not isinstance(response, LeanResponse) and response.status_code == 200
    assert fake.calls[-1].installation_id == INSTALLATION
    assert fake.calls[-1].query == query


async def test_a_closed_pool_refuses_as_httpx_does(app: App) -> None:
    gh = app.installation_client(INSTALLATION)
    await app.http.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await gh.get(f"/repos/{REPO}")


# Network failures: the transport's errors on both paths ----------------------------------------


async def _silent_server(handle: Callable[[asyncio.StreamWriter], Any]) -> asyncio.Server:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await handle(writer)

    return await asyncio.start_server(on_connect, "127.0.0.1", 0)


async def _hang(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)  # never answers within the test's read timeout


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()


@pytest.mark.parametrize(
    ("handle", "cause"), [(_hang, "ReadTimeout"), (_hang_up, "ConnectTimeout")]
)
async def test_a_network_failure_raises_the_same_on_both_paths(
    handle: Callable[[asyncio.StreamWriter], Any], cause: str
) -> None:
    server = await _silent_server(handle)
    port = server.sockets[0].getsockname()[1]
    failures: list[str] = []
    async with new_http_client(f"http://127.0.0.1:{port}", {}, "lean-test") as pool:
        pool.timeout = httpx.Timeout(0.3)  # read before the lean path takes its timeouts
        LeanPool.enable(pool)
        shared = ClientShared()
        shared.policy.max_retries = 0
        for auth in (HeaderAuth("token t"), PlainHeaderAuth("token t")):
            with pytest.raises(NetworkError) as failed:
                await GitHubClient(pool, auth, shared=shared).post(LABELS, json={})
            failures.append(str(failed.value))
    server.close()
    lean, plain = failures
    assert lean == plain and f"({cause})" in lean  # a hang-up reads as not sent, as before


# The pure parts ----------------------------------------------------------------------------------

BASES = ["https://api.github.com", "https://ghe.example/api/v3", "http://127.0.0.1:8002/"]
PATHS: list[tuple[str, Any]] = [
    ("/repos/o/r/issues/1/labels", None),
    ("/repos/o/r/issues", {"state": "all", "labels": "bug,help wanted"}),
    ("/search/issues", {"q": "repo:o/r is:open é"}),
    ("/repos/o/r/git/refs/heads%2Fmain", None),
    ("/repos/o/r/contents/a b.md", None),
    ("/repos/o/r?x=1", None),
    ("/repos/o/r?x=1", {"y": 2}),
    ("/repos/o/r", {}),
    ("/x/{y}", None),
    ("//evil.example/x", None),
    ("/a/../b", None),
    ("/a/./b?c=/..", None),
    ("/repos/o/r/contents/.github/bot.yml", None),
    ("/repos/o/r/contents/..hidden", None),
    ("/x?q=a|b&c=[1]", None),
    ("https://uploads.github.com/x", None),
]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(("path", "params"), PATHS)
def test_join_url_is_httpx_join_or_declines(base: str, path: str, params: Any) -> None:
    httpx_url = str(httpx.Client(base_url=base).build_request("GET", path, params=params).url)
    joined = join_url(str(httpx.URL(base)).rstrip("/") + "/", path, params)
    assert joined is None or joined == httpx_url


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/repos/o/r/issues/1/labels", None),
        ("/repos/o/r/contents/.github/bot.yml", None),  # the bot's config: read often
        ("/repos/o/r/issues", {"state": "all", "labels": "bug,help wanted"}),
        ("/search/issues?q=repo:o/r+is:open", None),
    ],
)
def test_what_bots_send_most_takes_the_lean_path(path: str, params: Any) -> None:
    assert join_url("https://api.github.com/", path, params) is not None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (None, {"accept": "*/*", "user-agent": "bot"}),
        ({"ACCEPT": "a/b"}, {"accept": "a/b", "user-agent": "bot"}),
        ({"If-None-Match": '"e"'}, {"accept": "*/*", "user-agent": "bot", "if-none-match": '"e"'}),
        ({"X-Raw": b"1"}, None),
    ],
)
def test_merge_headers_is_httpx_merge(extra: Any, expected: dict[str, str] | None) -> None:
    defaults = {"accept": "*/*", "user-agent": "bot"}
    assert merge_headers(defaults, extra) == expected
    if expected is not None:
        built = httpx.Client(headers=defaults).build_request("GET", "http://h/", headers=extra)
        assert {k: v for k, v in built.headers.items() if k != "host"} == {
            **expected,
            **{k: v for k, v in built.headers.items() if k in ("accept-encoding", "connection")},
        }


# The auth objects, given to httpx directly ------------------------------------------------------


def test_the_app_auth_still_signs_a_plain_httpx_client_request() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200)

    auth = AppAuth(AppJWT(str(APP_ID), load_private_key(PEM, None)))
    with httpx.Client(transport=httpx.MockTransport(answer), auth=auth) as plain:
        plain.get("https://api.github.com/app")
    (authorization,) = seen
    assert authorization.startswith("Bearer ey")


def test_an_installation_auth_refuses_a_plain_httpx_client() -> None:
    auth = InstallationAuth(InstallationTokens(_never_minted), INSTALLATION)
    plain = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    with plain, pytest.raises(RuntimeError, match=r"InstallationAuth is async; .* use \.sync"):
        plain.get("https://api.github.com/repos/o/r", auth=auth)


async def _never_minted(installation_id: int, scope: Any) -> Any:
    raise AssertionError("a plain httpx.Client must not get as far as a token")
