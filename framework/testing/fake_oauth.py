"""Strict fakes of each platform's OAuth endpoints, for tests of sign-in (a bot's and ours).

One :class:`FakeOAuth` per platform (``github``, ``atomgit``, ``coding``, ``tapd``), a Starlette
app to serve on a loopback port. Its authorize page approves at once as :attr:`FakeOAuth.approve_as`
(or answers ``error=access_denied`` when :attr:`FakeOAuth.deny` is set), and redirects to the
callback as the platform would. It checks each request's exact shape and refuses what the
platform refuses:

- GitHub: a form (or JSON) POST; answers form-encoded unless ``Accept: application/json``;
  wrong client secret, a reused or expired code, a ``redirect_uri`` outside the registered
  callback (the seed's rule) or different from the authorize step's, a refresh token used
  before (they rotate), expired or unknown; the device flow with ``authorization_pending``,
  ``slow_down`` (polling faster than ``interval``) and ``expired_token``.
- AtomGit: JSON bodies only; ``expires_in`` as absolute epoch milliseconds.
- CODING: the team's host (``{web}/t/{team}/...``: :attr:`FakeOAuth.web_url` has ``{team}``),
  comma-separated scopes, ``expires_in`` as a string, the ``team`` in the answer.
- TAPD: HTTP Basic and a form body, answers in the ``{status, data, info}`` envelope, the
  ``resource`` in the callback, codes that live 5 minutes.

A few API routes answer with the user's token, for a bot's pages: GitHub's and AtomGit's
``/user`` and ``/user/repos``, CODING's ``/api/me`` and open API ``DescribeCodingProjects``,
TAPD's ``/users/info`` and ``/stories``.

>>> fake = FakeOAuth("github", callback_url="http://127.0.0.1:3000/login/github/callback")
>>> user = fake.add_user(583231, "octocat", repositories=["octocat/hello"])
>>> with serve(fake.app) as url:  # doctest: +SKIP
...     fake.base_url = url  # GITHUB_WEB_URL and GITHUB_API_URL
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from framework.auth.oauth.base import redirect_uri_allowed
from framework.auth.oauth.github import normalize_scopes

CODE_SECONDS = {"github": 600.0, "atomgit": 600.0, "coding": 600.0, "tapd": 300.0}
ACCESS_SECONDS = {"github": 8 * 3600.0, "atomgit": 8 * 3600.0, "coding": 780260.0, "tapd": 7200.0}
REFRESH_SECONDS = 183 * 86400.0
TOKEN_PREFIX = {"github": "ghu_", "atomgit": "atu_", "coding": "", "tapd": ""}
REFRESH_PREFIX = {"github": "ghr_", "atomgit": "refresh_", "coding": "", "tapd": ""}
DEVICE_SECONDS = 900.0


class ManualClock:
    """A clock a test moves by hand (``clock.now += 3600``); call it for the time.

    >>> clock = ManualClock(1000.0)
    >>> clock.advance(5); clock()
    1005.0
    """

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.now += seconds


@dataclass
class FakeUser:
    """A user of the fake platform."""

    id: int
    login: str
    repositories: list[str] = field(default_factory=list)
    workspace_id: int = 10022001
    stories: list[str] = field(default_factory=list)


@dataclass
class _Code:
    user: FakeUser
    redirect_uri: str | None
    issued: float
    scopes: tuple[str, ...]
    resource: dict[str, Any] | None
    used: bool = False


@dataclass
class _Token:
    user: FakeUser
    expires_at: float
    scopes: tuple[str, ...]
    resource: dict[str, Any] | None
    used: bool = False  # refresh tokens: rotated out once used


@dataclass
class _Device:
    user_code: str
    expires_at: float
    interval: float
    scopes: tuple[str, ...]
    last_poll: float | None = None
    approved_by: FakeUser | None = None
    denied: bool = False
    script: list[str] = field(default_factory=list)


class FakeOAuth:
    """A platform's OAuth endpoints (and a few user API routes), strict about every request."""

    def __init__(
        self,
        platform: str,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        callback_url: str | None = None,
        team: str = "anywhere",
        clock: Callable[[], float] = time.time,
        device_interval: float = 5.0,
        rotate_refresh_tokens: bool | None = None,
    ) -> None:
        if platform not in CODE_SECONDS:
            raise ValueError(f"no fake OAuth for {platform!r}")
        self.platform = platform
        self.client_id = client_id
        self.client_secret = client_secret
        self.callback_url = callback_url
        """The app's registered callback URL (set it once the bot's address is known)."""
        self.team = team
        self.clock = clock
        self.device_interval = device_interval
        self.rotate_refresh_tokens = (
            platform == "github" if rotate_refresh_tokens is None else rotate_refresh_tokens
        )
        self.base_url = "http://fake.invalid"
        """Where the fake is served (set it after serving: redirects and links use it)."""
        self.users: dict[int, FakeUser] = {}
        self.approve_as: int | None = None
        """Who approves the next authorization (default: the first user added)."""
        self.deny = False
        """Answer the next authorizations with ``error=access_denied``."""
        self.calls: list[tuple[str, str]] = []
        self.exchanges = 0
        self.refreshes = 0
        self.latency = 0.0
        """Seconds the token endpoint takes to answer (to let concurrent refreshes overlap)."""
        self.refused: list[str] = []
        """Why each refused request was refused (the platform's error code)."""
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        self._devices: dict[str, _Device] = {}
        self._next_script: list[str] = []
        self.app = Starlette(routes=self._routes())

    # Setting up -------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        login: str,
        *,
        repositories: list[str] | None = None,
        workspace_id: int = 10022001,
        stories: list[str] | None = None,
    ) -> FakeUser:
        """A user who can sign in (the first one added approves by default)."""
        user = FakeUser(user_id, login, list(repositories or []), workspace_id, list(stories or []))
        self.users[user_id] = user
        return user

    @property
    def web_url(self) -> str:
        """The ``*_WEB_URL`` setting for this fake (CODING's holds ``{team}``)."""
        return f"{self.base_url}/t/{{team}}" if self.platform == "coding" else self.base_url

    def issued_secrets(self) -> set[str]:
        """Every secret the fake knows or handed out: client secret, codes, tokens."""
        return (
            {self.client_secret}
            | set(self._codes)
            | set(self._access)
            | set(self._refresh)
            | set(self._devices)
        )

    def expire_refresh_tokens(self) -> None:
        """Make every refresh token expired (as six months passing would)."""
        for token in self._refresh.values():
            token.expires_at = self.clock() - 1

    def revoke_access_tokens(self) -> None:
        """Make every access token refused (revoked on the platform's side)."""
        self._access.clear()

    def approve_device(self, user_code: str, user_id: int | None = None) -> None:
        """The user entered ``user_code`` and approved."""
        for device in self._devices.values():
            if device.user_code == user_code:
                device.approved_by = self._approver(user_id)
                return
        raise KeyError(user_code)

    def script_device(self, answers: list[str]) -> None:
        """The next polls of every device code answer these errors first, in order."""
        for device in self._devices.values():
            device.script = list(answers)
        self._next_script = list(answers)

    def device_codes(self) -> list[str]:
        """The user codes handed out so far."""
        return [d.user_code for d in self._devices.values()]

    def _approver(self, user_id: int | None = None) -> FakeUser:
        chosen = user_id if user_id is not None else self.approve_as
        if chosen is None:
            if not self.users:
                raise RuntimeError("add_user() first: nobody can approve")
            chosen = next(iter(self.users))
        return self.users[chosen]

    # Routes --------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        p = self.platform
        if p == "coding":
            prefix = "/t/{team}"
            return [
                Route(prefix + "/oauth_authorize.html", self.authorize, methods=["GET"]),
                Route(prefix + "/api/oauth/access_token", self.token, methods=["POST"]),
                Route(prefix + "/api/me", self.coding_me, methods=["GET"]),
                Route("/open-api", self.coding_open_api, methods=["POST"]),
            ]
        if p == "tapd":
            return [
                Route("/oauth/", self.authorize, methods=["GET"]),
                Route("/tokens/request_token", self.token, methods=["POST"]),
                Route("/users/info", self.tapd_user, methods=["GET"]),
                Route("/stories", self.tapd_stories, methods=["GET"]),
            ]
        routes = [
            Route("/login/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/login/oauth/access_token", self.token, methods=["POST"]),
            Route("/user", self.user, methods=["GET"]),
            Route("/user/repos", self.user_repos, methods=["GET"]),
        ]
        if p == "github":
            routes.append(Route("/login/device/code", self.device_code, methods=["POST"]))
            routes.append(
                Route("/applications/{client_id}/grant", self.delete_grant, methods=["DELETE"])
            )
        return routes

    def _refuse(self, code: str, response: Response) -> Response:
        self.refused.append(code)
        return response

    def _page(self, status: int, code: str, text: str) -> Response:
        return self._refuse(code, PlainTextResponse(f"{code}: {text}", status_code=status))

    # Authorize -------------------------------------------------------------------------------

    def _redirect_ok(self, given: str | None) -> bool:
        registered = self.callback_url
        if registered is None:
            return given is not None
        if given is None:
            return self.platform in ("github", "atomgit")
        if self.platform == "github":
            return redirect_uri_allowed(registered, given)
        return given == registered  # CODING and TAPD: the registered URL itself

    async def authorize(self, request: Request) -> Response:
        """The authorize page: checks the query, approves, redirects to the callback."""
        self.calls.append(("GET", request.url.path))
        q = dict(request.query_params)
        p = self.platform
        if p == "coding" and request.path_params.get("team") != self.team:
            return self._page(404, "no_such_team", "no such team")
        if q.get("client_id") != self.client_id:
            return self._page(404, "unknown_client", "no application has this client_id")
        if p in ("coding", "tapd") and q.get("response_type") != "code":
            return self._page(400, "unsupported_response_type", "response_type must be code")
        if p == "atomgit" and "redirect_uri" in q:
            return self._page(400, "invalid_request", "AtomGit takes no redirect_uri")
        given = q.get("redirect_uri")
        if not self._redirect_ok(given):
            return self._page(400, "redirect_uri_mismatch", "the redirect_uri is not registered")
        scope = q.get("scope", "")
        if p == "coding" and " " in scope.strip():
            return self._page(400, "invalid_scope", "CODING's scopes are comma-separated")
        if p in ("github", "tapd") and "," in scope:
            return self._page(400, "invalid_scope", "scopes are space-separated")
        if p == "tapd" and q.get("auth_by", "workspace") not in (
            "workspace",
            "take_park_workspace",
        ):
            return self._page(
                400, "invalid_auth_by", "auth_by must be workspace or take_park_workspace"
            )
        target = given or self.callback_url
        if target is None:
            return self._page(400, "redirect_uri_mismatch", "no callback URL")
        state = q.get("state")
        if self.deny:
            answer = {"error": "access_denied", "error_description": "The user denied access."}
            return RedirectResponse(_with_query(target, answer, state), status_code=302)
        user = self._approver()
        scopes = tuple(s for s in scope.replace(",", " ").split() if s)
        resource = {"type": "workspace", "workspace_id": user.workspace_id} if p == "tapd" else None
        code = secrets.token_hex(20)
        self._codes[code] = _Code(user, given, self.clock(), scopes, resource)
        answer = {"code": code}
        if resource is not None:
            answer["resource"] = json.dumps(resource, separators=(",", ":"))
        return RedirectResponse(_with_query(target, answer, state), status_code=302)

    # Token -----------------------------------------------------------------------------------

    async def _body(self, request: Request) -> tuple[str, dict[str, str]] | Response:
        """The body as ``("form" | "json", fields)``, or the platform's refusal of its type."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        raw = await request.body()
        if content_type == "application/json":
            try:
                data = json.loads(raw)
            except ValueError:
                return self._token_error(400, "invalid_request", "the body is not JSON")
            if not isinstance(data, dict):
                return self._token_error(400, "invalid_request", "the body is not a JSON object")
            kind, fields = "json", {k: str(v) for k, v in data.items()}
        elif content_type == "application/x-www-form-urlencoded":
            kind = "form"
            fields = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        else:
            return self._token_error(400, "invalid_request", "send a form or JSON body")
        if request.query_params:
            return self._token_error(400, "invalid_request", "credentials belong in the body")
        wanted = {"atomgit": "json", "coding": "form", "tapd": "form"}.get(self.platform)
        if wanted is not None and kind != wanted:
            return self._token_error(400, "invalid_request", f"the body must be {wanted}")
        return kind, fields

    def _token_error(self, status: int, code: str, description: str) -> Response:
        self.refused.append(code)
        if self.platform == "tapd":
            return JSONResponse({"status": 0, "data": None, "info": code}, status_code=status)
        if self.platform == "github":
            status = 200  # GitHub answers OAuth errors with 200 and an error field
        return JSONResponse({"error": code, "error_description": description}, status)

    def _client_ok(self, request: Request, fields: Mapping[str, str]) -> bool:
        if self.platform == "tapd":
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            return (
                request.headers.get("authorization") == f"Basic {expected}"
                and "client_secret" not in fields
            )
        return (
            fields.get("client_id") == self.client_id
            and fields.get("client_secret") == self.client_secret
        )

    async def token(self, request: Request) -> Response:
        """Exchange a code, refresh, or (GitHub) poll a device code."""
        self.calls.append(("POST", request.url.path))
        await asyncio.sleep(self.latency)
        if self.platform == "coding" and request.path_params.get("team") != self.team:
            return self._page(404, "no_such_team", "no such team")
        parsed = await self._body(request)
        if isinstance(parsed, Response):
            return parsed
        _, fields = parsed
        grant_type = fields.get("grant_type")
        if (
            self.platform == "github"
            and grant_type == "urn:ietf:params:oauth:grant-type:device_code"
        ):
            return self._poll(request, fields)
        if not self._client_ok(request, fields):
            return self._token_error(401, "incorrect_client_credentials", "wrong client")
        if grant_type == "refresh_token":
            return self._refreshed(request, fields)
        if self.platform in ("coding", "tapd") and grant_type != "authorization_code":
            return self._token_error(400, "unsupported_grant_type", "grant_type?")
        code = self._codes.get(fields.get("code", ""))
        if code is None or code.used:
            return self._token_error(400, "bad_verification_code", "unknown or used code")
        code.used = True  # single use, even when the rest of the request is refused
        if self.clock() - code.issued > CODE_SECONDS[self.platform]:
            return self._token_error(400, "bad_verification_code", "the code expired")
        if self.platform == "tapd" and fields.get("redirect_uri") != code.redirect_uri:
            return self._token_error(400, "redirect_uri_mismatch", "not the authorize step's")
        if (
            self.platform == "github"
            and code.redirect_uri is not None
            and fields.get("redirect_uri") != code.redirect_uri
        ):
            return self._token_error(400, "redirect_uri_mismatch", "not the authorize step's")
        self.exchanges += 1
        return self._issue(request, code.user, code.scopes, code.resource)

    def _issue(
        self,
        request: Request,
        user: FakeUser,
        scopes: tuple[str, ...],
        resource: dict[str, Any] | None,
        refresh_token: str | None = None,
    ) -> Response:
        p, now = self.platform, self.clock()
        access = TOKEN_PREFIX[p] + secrets.token_hex(20)
        self._access[access] = _Token(user, now + ACCESS_SECONDS[p], scopes, resource)
        if refresh_token is None:
            refresh_token = REFRESH_PREFIX[p] + secrets.token_hex(20)
            self._refresh[refresh_token] = _Token(user, now + REFRESH_SECONDS, scopes, resource)
        refresh_expiry = self._refresh[refresh_token].expires_at
        if p == "github":
            data: dict[str, Any] = {
                "access_token": access, "token_type": "bearer",
                "scope": ",".join(normalize_scopes(scopes)),
                "expires_in": int(ACCESS_SECONDS[p]), "refresh_token": refresh_token,
                "refresh_token_expires_in": int(refresh_expiry - now),
            }  # fmt: skip
            if "application/json" not in request.headers.get("accept", ""):
                form = urlencode({k: str(v) for k, v in data.items()})
                return Response(form, media_type="application/x-www-form-urlencoded")
            return JSONResponse(data)
        if p == "atomgit":
            return JSONResponse(
                {"access_token": access, "expires_in": int((now + ACCESS_SECONDS[p]) * 1000),
                 "refresh_token": refresh_token,
                 "refresh_token_expires_in": int(refresh_expiry * 1000)}
            )  # fmt: skip
        if p == "coding":
            return JSONResponse(
                {"access_token": access, "refresh_token": refresh_token, "team": self.team,
                 "expires_in": str(int(ACCESS_SECONDS[p])), "token_type": "bearer"}
            )  # fmt: skip
        data = {
            "access_token": access, "refresh_token": refresh_token,
            "expires_in": int(ACCESS_SECONDS[p]), "token_type": "Bearer",
            "scope": " ".join(scopes), "resource": resource,
            "now": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
        }  # fmt: skip
        return JSONResponse({"status": 1, "data": data, "info": "success"})

    def _refreshed(self, request: Request, fields: Mapping[str, str]) -> Response:
        given = fields.get("refresh_token", "")
        token = self._refresh.get(given)
        if token is None or token.used:
            return self._token_error(400, "bad_refresh_token", "unknown or rotated-out token")
        if token.expires_at <= self.clock():
            return self._token_error(400, "bad_refresh_token", "the refresh token expired")
        self.refreshes += 1
        if self.rotate_refresh_tokens:
            token.used = True
            return self._issue(request, token.user, token.scopes, token.resource)
        return self._issue(request, token.user, token.scopes, token.resource, given)

    # The device flow (GitHub) ------------------------------------------------------------------

    async def device_code(self, request: Request) -> Response:
        """``POST /login/device/code``: a device code and the user code to enter."""
        self.calls.append(("POST", request.url.path))
        parsed = await self._body(request)
        if isinstance(parsed, Response):
            return parsed
        _, fields = parsed
        if fields.get("client_id") != self.client_id:
            return self._token_error(401, "incorrect_client_credentials", "unknown client")
        if "client_secret" in fields:
            return self._token_error(400, "invalid_request", "the device flow takes no secret")
        device = secrets.token_hex(20)
        user_code = f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        scopes = tuple(fields.get("scope", "").split())
        self._devices[device] = _Device(
            user_code, self.clock() + DEVICE_SECONDS, self.device_interval, scopes,
            script=list(self._next_script),
        )  # fmt: skip
        return JSONResponse(
            {"device_code": device, "user_code": user_code,
             "verification_uri": f"{self.base_url}/login/device",
             "expires_in": int(DEVICE_SECONDS), "interval": self.device_interval}
        )  # fmt: skip

    def _poll(self, request: Request, fields: Mapping[str, str]) -> Response:
        if fields.get("client_id") != self.client_id:
            return self._token_error(401, "incorrect_client_credentials", "unknown client")
        device = self._devices.get(fields.get("device_code", ""))
        if device is None:
            return self._token_error(400, "bad_verification_code", "unknown device code")
        now = self.clock()
        if now >= device.expires_at:
            return self._token_error(400, "expired_token", "the device code expired")
        too_soon = device.last_poll is not None and now - device.last_poll < device.interval
        device.last_poll = now
        if too_soon:
            device.interval += 5
            self.refused.append("slow_down")
            return JSONResponse({"error": "slow_down", "interval": device.interval})
        if device.script:
            error = device.script.pop(0)
            if error == "slow_down":
                device.interval += 5
                self.refused.append("slow_down")
                return JSONResponse({"error": "slow_down", "interval": device.interval})
            return self._token_error(400, error, "scripted")
        if device.denied:
            return self._token_error(400, "access_denied", "the user denied access")
        if device.approved_by is None:
            return self._token_error(400, "authorization_pending", "waiting for the user")
        del self._devices[fields["device_code"]]
        self.exchanges += 1
        return self._issue(request, device.approved_by, device.scopes, None)

    async def delete_grant(self, request: Request) -> Response:
        """GitHub's ``DELETE /applications/{client_id}/grant``: every token of the user gone."""
        self.calls.append(("DELETE", request.url.path))
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if (
            request.path_params["client_id"] != self.client_id
            or request.headers.get("authorization") != f"Basic {expected}"
        ):
            return self._refuse("bad_credentials", JSONResponse({"message": "Not Found"}, 404))
        try:
            token = json.loads(await request.body()).get("access_token", "")
        except (ValueError, AttributeError):
            token = ""
        found = self._access.get(token)
        if found is None:
            return self._refuse("unknown_token", JSONResponse({"message": "Not Found"}, 404))
        for tokens in (self._access, self._refresh):
            for value in [k for k, t in tokens.items() if t.user is found.user]:
                del tokens[value]
        return Response(status_code=204)

    # The user's API ----------------------------------------------------------------------------

    def _bearer(self, request: Request, schemes: tuple[str, ...]) -> _Token | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in schemes:
            return None
        token = self._access.get(value.strip())
        if token is None or token.expires_at <= self.clock():
            return None
        return token

    def _unauthorized(self) -> Response:
        self.refused.append("bad_credentials")
        if self.platform == "tapd":
            return JSONResponse({"status": 0, "data": None, "info": "invalid token"}, 401)
        return JSONResponse({"message": "Bad credentials"}, status_code=401)

    async def user(self, request: Request) -> Response:
        """GitHub's and AtomGit's ``GET /user``; GitHub adds ``X-OAuth-Scopes``."""
        self.calls.append(("GET", request.url.path))
        token = self._bearer(request, ("bearer", "token"))
        if token is None:
            return self._unauthorized()
        headers = {}
        if self.platform == "github" and token.scopes:
            headers["X-OAuth-Scopes"] = ", ".join(normalize_scopes(token.scopes))
        body = {"id": token.user.id, "login": token.user.login, "type": "User"}
        return JSONResponse(body, headers=headers)

    async def user_repos(self, request: Request) -> Response:
        """``GET /user/repos``: the user's repositories."""
        self.calls.append(("GET", request.url.path))
        token = self._bearer(request, ("bearer", "token"))
        if token is None:
            return self._unauthorized()
        return JSONResponse(
            [{"full_name": name, "name": name.split("/")[-1]} for name in token.user.repositories]
        )

    async def coding_me(self, request: Request) -> Response:
        """CODING's ``GET /api/me`` (``Authorization: token ...``) at the team's host."""
        self.calls.append(("GET", request.url.path))
        if request.path_params.get("team") != self.team:
            return self._page(404, "no_such_team", "no such team")
        token = self._bearer(request, ("token",))
        if token is None:
            return self._unauthorized()
        user = token.user
        return JSONResponse(
            {"id": user.id, "global_key": user.login, "name": user.login, "team": self.team,
             "path": f"/u/{user.login}"}
        )  # fmt: skip

    async def coding_open_api(self, request: Request) -> Response:
        """CODING's open API: ``DescribeCodingProjects`` for the token's user."""
        self.calls.append(("POST", request.url.path))
        request_id = secrets.token_hex(8)
        token = self._bearer(request, ("token",))
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if token is None:
            self.refused.append("AuthFailure")
            error = {"Code": "AuthFailure", "Message": "invalid token"}
            return JSONResponse({"Response": {"Error": error, "RequestId": request_id}})
        if not isinstance(body, dict) or body.get("Action") != "DescribeCodingProjects":
            self.refused.append("InvalidAction")
            error = {"Code": "InvalidAction", "Message": "unsupported action"}
            return JSONResponse({"Response": {"Error": error, "RequestId": request_id}})
        projects = [{"Name": name.split("/")[-1], "Id": n} for n, name in
                    enumerate(token.user.repositories, 1)]  # fmt: skip
        data = {"ProjectList": projects, "TotalCount": len(projects)}
        return JSONResponse({"Response": {"Data": data, "RequestId": request_id}})

    async def tapd_user(self, request: Request) -> Response:
        """TAPD's ``GET /users/info``, enveloped."""
        self.calls.append(("GET", request.url.path))
        token = self._bearer(request, ("bearer",))
        if token is None:
            return self._unauthorized()
        user = token.user
        data = {"id": str(user.id), "nick": user.login, "name": user.login}
        return JSONResponse({"status": 1, "data": data, "info": "success"})

    async def tapd_stories(self, request: Request) -> Response:
        """TAPD's ``GET /stories?workspace_id=``: only in the granted workspace."""
        self.calls.append(("GET", request.url.path))
        token = self._bearer(request, ("bearer",))
        if token is None:
            return self._unauthorized()
        granted = (token.resource or {}).get("workspace_id")
        if str(granted) != request.query_params.get("workspace_id"):
            self.refused.append("workspace")
            return JSONResponse({"status": 0, "data": None, "info": "no permission"}, 403)
        stories = [{"Story": {"id": str(n), "name": name, "workspace_id": str(granted)}}
                   for n, name in enumerate(token.user.stories, 1)]  # fmt: skip
        return JSONResponse({"status": 1, "data": stories, "info": "success"})


def _with_query(url: str, values: Mapping[str, str], state: str | None) -> str:
    """``url`` with ``values`` (and ``state``) added to its query."""
    query = dict(values)
    if state is not None:
        query["state"] = state
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(query)
