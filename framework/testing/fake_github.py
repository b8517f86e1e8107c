"""A strict fake of GitHub's REST API, for end-to-end tests of GitHub App bots.

The fake checks what real GitHub checks, so a test fails where production would: app JWTs
(RS256, signature, ``iss``, ``iat``, ``exp`` at most ten minutes ahead), installation access
tokens (expiry, the installation's and the token's repositories, permissions), a
``User-Agent`` on every request, the ``X-GitHub-Api-Version`` header and JSON bodies. Errors
have GitHub's shape: ``{"message": ..., "documentation_url": ...}``.

It records every request (:attr:`FakeGitHub.calls`), every token it mints
(:attr:`FakeGitHub.mints`) and every JWT it accepts (:meth:`FakeGitHub.jwt_verifications`).
Endpoints it does not implement are scripted with :meth:`FakeGitHub.respond` or
:meth:`FakeGitHub.route`; they stay behind token authentication.

>>> private_pem, public_key = generate_app_key()
>>> fake = FakeGitHub(app_id=1234, public_key=public_key)
>>> fake.add_installation(42, account="octo-org", repositories=["octo-org/hello"])
>>> fake.respond("GET", "/repos/{owner}/{repo}/issues/{number}", json={"number": 1})
>>> with serve(fake.app) as base_url:  # doctest: +SKIP
...     ...  # run the bot with GITHUB_API_URL=base_url and APP_ID=1234, PRIVATE_KEY=private_pem
>>> fake.mint_count(42)  # doctest: +SKIP
1
>>> fake.issue_labels("octo-org/hello", 1)  # doctest: +SKIP
['triage']
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import itertools
import json
import math
import re
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = [
    "API_VERSIONS",
    "ApiRequest",
    "AuthKind",
    "FakeGitHub",
    "RecordedCall",
    "Reply",
    "RouteHandler",
    "TokenMint",
    "generate_app_key",
]

API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
"""The values of ``X-GitHub-Api-Version`` the fake accepts; any other is refused with 400."""

DOCUMENTATION_URL = "https://docs.github.com/rest"
DEFAULT_BRANCH = "main"  # every fake repository's
JWT_MAX_LIFETIME = 600  # GitHub refuses an app JWT whose exp is more than 10 minutes ahead
JWT_LEEWAY = 5  # seconds of tolerance on the exp limit and on an iat in the future
MAX_TOKEN_REPOSITORIES = 500
RATE_LIMIT = 5000
RATE_WINDOW = 3600
MANIFEST_CODE_SECONDS = 3600.0  # a manifest's code converts once, within an hour
_PERMISSION_LEVELS = {"read": 1, "write": 2, "admin": 3}
_DEFAULT_PERMISSIONS = {
    "metadata": "read",
    "contents": "read",
    "issues": "write",
    "pull_requests": "write",
    "checks": "write",
    "statuses": "write",
}
_DEFAULT_EVENTS = ("issues", "issue_comment", "pull_request", "push")
_USER_AGENT_REQUIRED = (
    "Request forbidden by administrative rules. Please make sure your request has a User-Agent "
    "header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api"
    "#user-agent-required). Check https://developer.github.com for other possible causes."
)
_JWT_UNDECODABLE = "A JSON web token could not be decoded"
_EXP_INVALID = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
_IAT_INVALID = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
    "was issued"
)
_REPO_PATH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)(?:/|$)")
_TOKEN_ALPHABET = string.ascii_letters + string.digits

AuthKind = Literal["app", "installation", "none"]
"""What a route requires: the app's JWT, an installation access token, or nothing."""


@functools.cache
def generate_app_key(name: str = "default") -> tuple[str, rsa.RSAPublicKey]:
    """An RSA key pair for a test app: ``(private key PEM, public key)``.

    Generated once per ``name`` and process, then cached, so every test can call it. Ask for
    another ``name`` to get a second, different key (e.g. to sign a JWT the fake must refuse).

    >>> private_pem, public_key = generate_app_key()
    >>> private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    True
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # the PKCS#1 format GitHub hands out
        serialization.NoEncryption(),
    )
    return pem.decode("ascii"), key.public_key()


@dataclass(frozen=True)
class ApiRequest:
    """A request as a scripted route handler sees it (see :meth:`FakeGitHub.route`).

    ``params`` are the values of the path template's ``{placeholders}``; ``installation_id``
    and ``token`` are set when the request was authenticated with an installation token.
    """

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    base_url: str
    installation_id: int | None = None
    token: str | None = None


@dataclass(frozen=True)
class Reply:
    """A response from a route: status, JSON body (``None`` for no body) and extra headers.

    ``raw``, when set, is the body instead of JSON (a raw media type); give its
    ``content-type`` in ``headers``.

    >>> Reply(404, {"message": "Not Found"})
    Reply(status=404, json={'message': 'Not Found'}, headers={})
    """

    status: int = 200
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = field(default=None, repr=False)


RouteHandler = Callable[[ApiRequest], Reply]
"""A scripted route: takes the request, returns the :class:`Reply`."""


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received, with the status it answered.

    ``headers`` has lower-case names. ``auth`` is the kind of credential the fake accepted
    (``None`` if it accepted none); ``jwt`` and ``token`` are the credentials presented, even
    when refused; ``installation_id`` is the installation of an accepted access token.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int
    auth: Literal["app", "installation"] | None = None
    installation_id: int | None = None
    token: str | None = None
    jwt: str | None = None


@dataclass(frozen=True)
class TokenMint:
    """One installation access token the fake minted.

    ``repositories`` holds the full names the token was narrowed to, ``None`` when it covers
    every repository of the installation.
    """

    installation_id: int
    token: str = field(repr=False)
    repositories: tuple[str, ...] | None
    permissions: dict[str, str]
    minted_at: datetime
    expires_at: datetime


@dataclass
class _Repository:
    id: int
    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _Installation:
    id: int
    account: str
    account_type: str
    account_id: int
    repositories: list[_Repository]
    permissions: dict[str, str]
    repository_selection: str
    created_at: str

    def repository(self, full_name: str) -> _Repository | None:
        wanted = full_name.lower()
        return next((r for r in self.repositories if r.full_name.lower() == wanted), None)


@dataclass
class _Token:
    value: str
    installation_id: int
    repositories: frozenset[str] | None  # lower-case full names; None: the whole installation
    permissions: dict[str, str]
    expires_at: float


@dataclass
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    auth: AuthKind
    handler: RouteHandler
    remaining: int | None = None  # scripted routes served a limited number of times


@dataclass
class _RateWindow:
    limit: int = RATE_LIMIT
    used: int = 0
    reset: int = 0


@dataclass
class _Trace:
    """What authentication found out about a request, for its :class:`RecordedCall`."""

    auth: Literal["app", "installation"] | None = None
    installation_id: int | None = None
    token: str | None = None
    jwt: str | None = None


def _error(status: int, message: str, **extra: Any) -> Reply:
    return Reply(
        status,
        {
            "message": message,
            "documentation_url": DOCUMENTATION_URL,
            "status": str(status),
            **extra,
        },
    )


def _invalid(resource: str, field_name: str, detail: str) -> Reply:
    """GitHub's 422 for a body that does not fit the endpoint's schema."""
    return _error(
        422,
        f"Invalid request.\n\nFor '{field_name}', {detail}",
        errors=[{"resource": resource, "field": field_name, "code": "invalid", "message": detail}],
    )


def _not_found() -> Reply:
    return _error(404, "Not Found")


def _comment_json(comment: dict[str, Any], key: tuple[str, int], base_url: str) -> dict[str, Any]:
    """An issue comment as the API shows it."""
    (full_name, number), comment_id = key, comment["id"]
    return {
        "id": comment_id,
        "node_id": _node_id("IC", comment_id),
        "url": f"{base_url}/repos/{full_name}/issues/comments/{comment_id}",
        "html_url": f"https://github.com/{full_name}/issues/{number}#issuecomment-{comment_id}",
        "issue_url": f"{base_url}/repos/{full_name}/issues/{number}",
        "body": comment["body"],
        "user": comment["user"],
        "author_association": "NONE" if comment["user"]["type"] == "Bot" else "MEMBER",
        "created_at": comment["created_at"],
        "updated_at": comment["created_at"],
    }


def _no_such_route(method: str, path: str) -> Reply:
    """A 404 as GitHub gives it, whose message says the fake, not GitHub, lacks the route."""
    return _error(
        404,
        f"Not Found: the fake GitHub has no route {method} {path}. Script it in the test: "
        f"fake.respond({method!r}, {path!r}, json=...) or @fake.route({method!r}, "
        "'/path/{param}') on a function returning Reply(status, json)",
    )


def _bad_credentials(detail: str | None = None) -> Reply:
    return _error(401, "Bad credentials" + (f": {detail}" if detail else ""))


def _compile_template(path: str) -> re.Pattern[str]:
    """``/repos/{owner}/{repo}`` → a regex with one named group per placeholder.

    A placeholder matches one path segment; ``{name:path}`` (as in Starlette) matches the
    rest of the path, slashes included.
    """
    if not path.startswith("/") or "?" in path:
        raise ValueError(f"path must start with '/' and have no query string: {path!r}")
    parts = re.split(r"\{([A-Za-z_][A-Za-z0-9_]*(?::path)?)\}", path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else _placeholder(part) for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


def _placeholder(spec: str) -> str:
    name, _, kind = spec.partition(":")
    return f"(?P<{name}>.+)" if kind else f"(?P<{name}>[^/]+)"


def _auth_for(path: str) -> AuthKind:
    """The credential GitHub wants on ``path``: the app's JWT on app endpoints, else a token."""
    if path == "/app" or path.startswith("/app/"):
        return "app"
    if re.match(r"^/(repos/[^/]+/[^/]+|orgs/[^/]+|users/[^/]+)/installation$", path):
        return "app"
    return "installation"


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _node_id(kind: str, number: int) -> str:
    return f"{kind}_kgDO{number:08d}"


class FakeGitHub:
    """GitHub's REST API for one GitHub App, served by the Starlette app :attr:`app`.

    Subclasses change what differs on another GitHub-shaped platform
    (:class:`~framework.testing.fake_atomgit.FakeAtomGit`): :attr:`token_prefix`,
    :attr:`token_schemes`, ``_expiry_text``, ``_version_problem``, ``_installation_json``.

    ``app_id`` and ``client_id`` are the values a JWT's ``iss`` may carry; ``public_key``
    verifies the JWT signatures (a PEM string or bytes, or a key object); ``token_ttl`` is
    how long minted installation tokens live. Serve :attr:`app` (a Starlette app) with
    :func:`framework.testing.serve`.

    >>> private_pem, public_key = generate_app_key()
    >>> fake = FakeGitHub(app_id=1234, public_key=public_key, client_id="Iv1.fake")
    >>> fake.add_installation(42, repositories=["octo-org/hello", "octo-org/world"])
    >>> fake.mint_count(42)
    0
    """

    token_prefix = "ghs_"
    """How minted installation tokens start."""
    token_schemes: tuple[str, ...] = ("token", "bearer")
    """The ``Authorization`` schemes installation tokens are accepted with."""

    def __init__(
        self,
        *,
        app_id: int | str,
        public_key: str | bytes | rsa.RSAPublicKey,
        client_id: str | None = None,
        token_ttl: timedelta = timedelta(hours=1),
        slug: str = "fake-app",
    ) -> None:
        self.app_id = int(app_id)
        self.client_id = client_id
        self.slug = slug
        self.token_ttl = token_ttl
        self._public_key = _load_public_key(public_key)
        self._issuers = {str(self.app_id)} | ({client_id} if client_id else set())
        self._lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self._account_ids: dict[str, int] = {}
        self._installations: dict[int, _Installation] = {}
        self._tokens: dict[str, _Token] = {}
        self._mints: list[TokenMint] = []
        self._jwt_uses: Counter[str] = Counter()
        self._calls: list[RecordedCall] = []
        self._scripts: list[_Route] = []
        self._labels: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        self._statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (repository, sha)
        self._check_runs: dict[str, list[dict[str, Any]]] = {}  # by repository
        self._collaborators: dict[str, dict[str, tuple[str, str, int]]] = {}  # login, role, id
        self._comments: dict[tuple[str, int], list[dict[str, Any]]] = {}  # (repository, issue)
        self._files: dict[tuple[str, str, str], bytes] = {}  # (owner/name lower, branch, path)
        self._rate: dict[tuple[str, int], _RateWindow] = {}
        self._builtins = [
            self._builtin("GET", "/app", self._get_app),
            self._builtin("GET", "/app/installations", self._list_installations),
            self._builtin("GET", "/app/installations/{installation_id}", self._get_installation),
            self._builtin(
                "POST", "/app/installations/{installation_id}/access_tokens", self._mint_token
            ),
            self._builtin("GET", "/repos/{owner}/{repo}/installation", self._repo_installation),
            self._builtin("GET", "/orgs/{org}/installation", self._org_installation),
            self._builtin("GET", "/users/{username}/installation", self._user_installation),
            self._builtin("GET", "/repos/{owner}/{repo}", self._get_repository),
            self._builtin("GET", "/repos/{owner}/{repo}/contents/{path:path}", self._get_contents),
            self._builtin("GET", "/repos/{owner}/{repo}/issues/{number}/labels", self._get_labels),
            self._builtin("POST", "/repos/{owner}/{repo}/issues/{number}/labels", self._add_labels),
            self._builtin("POST", "/repos/{owner}/{repo}/statuses/{sha}", self._create_status),
            self._builtin("POST", "/repos/{owner}/{repo}/check-runs", self._create_check_run),
            self._builtin(
                "GET",
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                self._collaborator_permission,
            ),
            self._builtin(
                "GET", "/repos/{owner}/{repo}/issues/{number}/comments", self._list_comments
            ),
            self._builtin(
                "POST", "/repos/{owner}/{repo}/issues/{number}/comments", self._create_comment
            ),
            self._builtin("GET", "/rate_limit", self._get_rate_limit),
            self._builtin("GET", "/installation/repositories", self._list_repositories),
            self._builtin("DELETE", "/installation/token", self._revoke_token),
            self._builtin("GET", "/app/hook/deliveries", self._list_hook_deliveries),
            self._builtin("POST", "/graphql", self._graphql),
            self._builtin("POST", "/app/hook/deliveries/{delivery_id}/attempts", self._redeliver),
        ]
        self._hook_deliveries: list[dict[str, Any]] = []
        self.expired_token_uses = 0
        """How many requests presented an installation token that had expired (refused)."""
        self.redeliveries: list[int] = []
        """The numeric ids of deliveries the app asked GitHub to redeliver, in order."""
        self._init_manifest_flow()
        self.app = Starlette(
            routes=[
                *self._manifest_web_routes(),
                Route(
                    "/{path:path}",
                    self._endpoint,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
            ]
        )

    # ----------------------------------------------------------------------------- setup

    def add_installation(
        self,
        installation_id: int,
        account: str = "octo-org",
        account_type: Literal["Organization", "User"] = "Organization",
        repositories: Iterable[str] = ("octo-org/hello",),
        *,
        permissions: Mapping[str, str] | None = None,
        repository_selection: Literal["all", "selected"] = "selected",
    ) -> None:
        """Install the app on ``account`` with access to ``repositories`` (``owner/name``).

        The repositories must belong to the account, as on GitHub. ``permissions`` default to
        metadata/contents read and issues/pull_requests/checks/statuses write;
        ``metadata: read`` is always granted.
        """
        perms = dict(_DEFAULT_PERMISSIONS if permissions is None else permissions)
        for name, level in perms.items():
            if level not in _PERMISSION_LEVELS:
                raise ValueError(f"permission {name!r} has level {level!r}; use read/write/admin")
        perms.setdefault("metadata", "read")
        with self._lock:
            if installation_id in self._installations:
                raise ValueError(f"installation {installation_id} exists already")
            repos = [self._repository(account, full_name) for full_name in repositories]
            account_id = self._account_ids.setdefault(account.lower(), next(self._ids))
            self._installations[installation_id] = _Installation(
                id=installation_id,
                account=account,
                account_type=account_type,
                account_id=account_id,
                repositories=repos,
                permissions=perms,
                repository_selection=repository_selection,
                created_at=_timestamp(time.time()),
            )

    def remove_installation(self, installation_id: int) -> None:
        """Uninstall the app: the installation's tokens stop working, minting answers 404."""
        with self._lock:
            del self._installations[installation_id]

    def _repository(self, account: str, full_name: str) -> _Repository:
        owner, sep, name = full_name.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"repositories are 'owner/name', not {full_name!r}")
        if owner.lower() != account.lower():
            raise ValueError(f"repository {full_name!r} does not belong to account {account!r}")
        for installation in self._installations.values():
            known = installation.repository(full_name)
            if known is not None:
                return known
        return _Repository(next(self._ids), owner, name)

    def add_hook_delivery(
        self,
        guid: str,
        event: str = "issues",
        *,
        action: str | None = "opened",
        status_code: int = 202,
        installation_id: int | None = None,
        delivered_at: float | None = None,
    ) -> int:
        """Record an attempt to deliver a webhook, as ``GET /app/hook/deliveries`` lists it.

        ``status_code`` is what the bot answered (``0``: it could not be reached). Returns the
        attempt's numeric id (what ``POST /app/hook/deliveries/{id}/attempts`` takes).
        """
        with self._lock:
            number = len(self._hook_deliveries) + 1
            ok = 200 <= status_code < 300
            when = time.time() if delivered_at is None else delivered_at
            self._hook_deliveries.insert(
                0,
                {
                    "id": number,
                    "guid": guid,
                    "delivered_at": _timestamp(when),
                    "redelivery": any(d["guid"] == guid for d in self._hook_deliveries),
                    "duration": 0.03,
                    "status": "OK" if ok else f"Invalid HTTP Response: {status_code}",
                    "status_code": status_code,
                    "event": event,
                    "action": action,
                    "installation_id": installation_id,
                    "repository_id": None,
                },
            )
            return number

    def set_rate_limit(
        self, installation_id: int, *, remaining: int, limit: int = RATE_LIMIT
    ) -> None:
        """Set an installation's REST budget; at ``remaining=0`` requests get 403, as on GitHub."""
        self._set_budget(("installation", installation_id), remaining, limit)

    def set_app_rate_limit(self, *, remaining: int, limit: int = RATE_LIMIT) -> None:
        """Set the app's own REST budget (requests with its JWT, ``/app/...``), as
        :meth:`set_rate_limit` does an installation's."""
        self._set_budget(("app", self.app_id), remaining, limit)

    def _set_budget(self, bucket: tuple[str, int], remaining: int, limit: int) -> None:
        with self._lock:
            window = self._rate_window(bucket, time.time())
            window.limit = limit
            window.used = limit - remaining

    # ------------------------------------------------------------- repository contents

    def add_file(
        self, repository: str, path: str, content: str | bytes, *, branch: str | None = None
    ) -> str:
        """Put a file at ``path`` in ``owner/name`` on ``branch`` (the default branch,
        ``main``, if None), replacing any file there; returns its blob sha.

        The repository need not be one the app is installed on: reading it then answers 404,
        as GitHub does for a repository the token cannot reach.

        >>> fake = FakeGitHub(app_id=1, public_key=generate_app_key()[1])
        >>> len(fake.add_file("octo-org/hello", ".github/labeler.yml", "labels: [bug]\\n"))
        40
        """
        full_name, path = _file_location(repository, path)
        data = content.encode() if isinstance(content, str) else bytes(content)
        with self._lock:
            self._files[(full_name, branch or DEFAULT_BRANCH, path)] = data
        return _blob_sha(data)

    def remove_file(self, repository: str, path: str, *, branch: str | None = None) -> None:
        """Delete a file put there with :meth:`add_file`."""
        full_name, path = _file_location(repository, path)
        with self._lock:
            del self._files[(full_name, branch or DEFAULT_BRANCH, path)]

    # ------------------------------------------------------------------------ scripting

    def route(
        self,
        method: str,
        path: str,
        *,
        auth: AuthKind | None = None,
        times: int | None = None,
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Decorator: answer ``method path`` with the decorated function.

        ``path`` may hold ``{placeholders}`` (passed in ``request.params``; ``{name:path}``
        spans slashes). Scripted routes take precedence over built-in ones and are tried in
        the order they were added; one with ``times`` is used that many times, then skipped.
        ``auth`` defaults to what GitHub wants on that path (the app's JWT on ``/app/...``,
        else an installation token), and an installation token must reach the repository of
        a ``/repos/{owner}/{repo}/...`` path.

        >>> fake = FakeGitHub(app_id=1, public_key=generate_app_key()[1])
        >>> @fake.route("GET", "/repos/{owner}/{repo}/issues/{number}")
        ... def issue(request: ApiRequest) -> Reply:
        ...     return Reply(200, {"number": int(request.params["number"])})
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for no limit)")
        pattern = _compile_template(path)
        kind = auth if auth is not None else _auth_for(path)

        def register(handler: RouteHandler) -> RouteHandler:
            with self._lock:
                self._scripts.append(_Route(method.upper(), path, pattern, kind, handler, times))
            return handler

        return register

    def respond(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
        auth: AuthKind | None = None,
    ) -> None:
        """Answer ``method path`` with a fixed response; see :meth:`route` for the rules.

        >>> fake = FakeGitHub(app_id=1, public_key=generate_app_key()[1])
        >>> fake.respond("POST", "/repos/{owner}/{repo}/issues", status=502, times=1)
        """
        reply = Reply(status, json, dict(headers or {}))
        self.route(method, path, auth=auth, times=times)(lambda _request: reply)

    # ------------------------------------------------------------------------- tokens

    def expire_token(self, token: str) -> None:
        """Make a minted token expired now, though its ``expires_at`` said otherwise."""
        with self._lock:
            if token not in self._tokens:
                raise KeyError("the fake never minted that token")
            self._tokens[token].expires_at = time.time() - 1

    def expire_all_tokens(self) -> None:
        """Make every minted token expired now."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, time.time() - 1)

    # ------------------------------------------------------------------------ records

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, path: str) -> list[RecordedCall]:
        """The requests with this method and exact path (without query string).

        >>> fake = FakeGitHub(app_id=1, public_key=generate_app_key()[1])
        >>> fake.calls_to("POST", "/repos/octo-org/hello/issues/1/labels")
        []
        """
        method = method.upper()
        return [c for c in self.calls if c.method == method and c.path == path]

    def clear_calls(self) -> None:
        """Forget the recorded requests (tokens, mints and labels stay)."""
        with self._lock:
            self._calls.clear()

    @property
    def mints(self) -> list[TokenMint]:
        """Every installation token minted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._mints)

    def mint_count(self, installation_id: int | None = None) -> int:
        """How many tokens were minted for the installation (for any, if ``None``)."""
        return sum(
            1 for m in self.mints if installation_id is None or m.installation_id == installation_id
        )

    def jwt_verifications(self) -> dict[str, int]:
        """How many requests each distinct app JWT authenticated (accepted JWTs only).

        An app that signs a JWT per request shows many keys with a count of 1; one that reuses
        its JWT shows one key with a large count.
        """
        with self._lock:
            return dict(self._jwt_uses)

    def issue_labels(self, repository: str, number: int) -> list[str]:
        """The names of the labels on issue ``number`` of ``owner/name``, in the order added."""
        with self._lock:
            labels = self._labels.get((repository.lower(), number), {})
            return [label["name"] for label in labels.values()]

    # ------------------------------------------------------------------ the request path

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        method = request.method
        # Relative to where the fake is mounted, so it can stand in for GHES at /api/v3.
        path = "/" + request.path_params["path"]
        query = dict(request.query_params.items())
        headers = {name.lower(): value for name, value in request.headers.items()}
        base_url = str(request.base_url).rstrip("/")
        trace = _Trace()
        with self._lock:
            reply, parsed = self._process(method, path, query, headers, body, base_url, trace)
            self._calls.append(
                RecordedCall(
                    method=method,
                    path=path,
                    query=query,
                    headers=headers,
                    json=parsed,
                    status=reply.status,
                    auth=trace.auth,
                    installation_id=trace.installation_id,
                    token=trace.token,
                    jwt=trace.jwt,
                )
            )
        response_headers = {
            "x-github-request-id": secrets.token_hex(8).upper(),
            "x-github-api-version-selected": headers.get("x-github-api-version", "2022-11-28"),
            "x-github-media-type": "github.v3; format=json",
            **reply.headers,
        }
        if reply.raw is not None:
            return Response(reply.raw, status_code=reply.status, headers=response_headers)
        if reply.json is None or reply.status == 204:
            return Response(status_code=reply.status, headers=response_headers)
        return Response(
            json.dumps(reply.json),
            status_code=reply.status,
            headers=response_headers,
            media_type="application/json; charset=utf-8",
        )

    def _process(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
        trace: _Trace,
    ) -> tuple[Reply, Any]:
        """Check a request the way GitHub does, then route it; returns the reply and body."""
        if not headers.get("user-agent", "").strip():
            return _error(403, _USER_AGENT_REQUIRED), None
        version_problem = self._version_problem(headers)
        if version_problem is not None:
            return version_problem, None
        parsed: Any = None
        if body.strip():
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                message = (
                    f"Unsupported 'Content-Type' header {media_type or '(none)'!r}: "
                    "send JSON bodies with 'Content-Type: application/json'"
                )
                return _error(415, message), None
            try:
                parsed = json.loads(body)
            except ValueError:
                return _error(400, "Problems parsing JSON"), None

        now = time.time()
        found = self._match(method, path)
        if found is None:
            return _no_such_route(method, path), parsed
        route, params = found
        refused: Reply | None = None
        bucket: tuple[str, int] | None = None
        if route.auth == "app":
            refused = self._authenticate_app(headers, trace, now)
            bucket = ("app", self.app_id)
        elif route.auth == "installation":
            refused = self._authenticate_installation(headers, trace, now)
            if trace.installation_id is not None:
                bucket = ("installation", trace.installation_id)
        if refused is not None:
            return refused, parsed

        rate_headers: dict[str, str] = {}
        if bucket is not None:
            window = self._rate_window(bucket, now)
            if path != "/rate_limit":  # asking for the budget does not spend it
                if window.used >= window.limit:
                    who = "installation" if bucket[0] == "installation" else "app"
                    reply = _error(403, f"API rate limit exceeded for {who} ID {bucket[1]}.")
                    return _with_headers(reply, _rate_headers(window)), parsed
                window.used += 1
            rate_headers = _rate_headers(window)

        if route.auth == "installation" and not self._token_reaches(trace.token, path):
            return _with_headers(_not_found(), rate_headers), parsed
        if route.remaining is not None:
            route.remaining -= 1
        request = ApiRequest(
            method=method,
            path=path,
            params=params,
            query=query,
            headers=headers,
            json=parsed,
            base_url=base_url,
            installation_id=trace.installation_id,
            token=trace.token if trace.auth == "installation" else None,
        )
        reply = route.handler(request)
        if method == "GET" and reply.status == 200 and reply.json is not None:
            # ETags as GitHub gives them; a matching If-None-Match is a 304 that costs no
            # rate limit.
            etag = _etag(reply.json)
            if etag in _etags_in(headers.get("if-none-match", "")):
                if bucket is not None:
                    window = self._rate_window(bucket, now)
                    window.used -= 1
                    rate_headers = _rate_headers(window)
                reply = Reply(304, None, {"etag": etag})
            else:
                reply = _with_headers(reply, {"etag": etag})
        return _with_headers(reply, {**rate_headers, **reply.headers}), parsed

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in itertools.chain(self._scripts, self._builtins):
            if route.method != method or route.remaining == 0:
                continue
            matched = route.pattern.match(path)
            if matched is not None:
                return route, matched.groupdict()
        return None

    def _builtin(self, method: str, path: str, handler: RouteHandler) -> _Route:
        return _Route(method, path, _compile_template(path), _auth_for(path), handler)

    # ------------------------------------------------------------------- authentication

    def _authenticate_app(self, headers: dict[str, str], trace: _Trace, now: float) -> Reply | None:
        authorization = headers.get("authorization", "").strip()
        if not authorization:
            return _error(401, "Requires authentication")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        trace.jwt = credential or None
        if scheme.lower() != "bearer":
            return _error(
                401, f"{_JWT_UNDECODABLE}: send the app JWT as 'Authorization: Bearer <jwt>'"
            )
        problem = self._jwt_problem(credential, now)
        if problem is not None:
            return _error(401, problem)
        self._jwt_uses[credential] += 1
        trace.auth = "app"
        return None

    def _version_problem(self, headers: dict[str, str]) -> Reply | None:
        version = headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            supported = ", ".join(sorted(API_VERSIONS))
            message = f"API version {version!r} is not supported. Supported versions: {supported}"
            return _error(400, message)
        return None

    def _expiry_text(self, epoch: float) -> str:
        """An installation token's ``expires_at`` as this platform writes it."""
        return _timestamp(epoch)

    def _jwt_problem(self, token: str, now: float) -> str | None:
        """What is wrong with an app JWT, in GitHub's words; ``None`` if GitHub would take it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return _JWT_UNDECODABLE
        algorithm = header.get("alg")
        if algorithm != "RS256":
            return f"{_JWT_UNDECODABLE}: the algorithm must be RS256, not {algorithm!r}"
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                options={
                    "verify_signature": True,
                    "verify_exp": False,  # the claims are checked below, with GitHub's messages
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_iss": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            return f"{_JWT_UNDECODABLE}: the signature does not match the app's public key"
        except jwt.PyJWTError as exc:
            return f"{_JWT_UNDECODABLE}: {exc}"
        issuer = claims.get("iss")
        if not (_is_int(issuer) or isinstance(issuer, str)) or str(issuer) not in self._issuers:
            expected = " or ".join(repr(i) for i in sorted(self._issuers))
            return (
                f"'Issuer' claim ('iss') must be the app's ID or client ID, {expected}: {issuer!r}"
            )
        issued = claims.get("iat")
        if not _is_int(issued):
            return _IAT_INVALID
        if issued > now + JWT_LEEWAY:
            return f"{_IAT_INVALID} (it is {issued - now:.0f} s in the future)"
        expires = claims.get("exp")
        if not _is_int(expires):
            return _EXP_INVALID
        if expires <= now:
            return f"{_EXP_INVALID} (it expired {now - expires:.0f} s ago)"
        if expires - now > JWT_MAX_LIFETIME + JWT_LEEWAY:
            return (
                "'Expiration time' claim ('exp') is too far in the future "
                f"({expires - now:.0f} s ahead; the limit is {JWT_MAX_LIFETIME} s)"
            )
        if expires <= issued:
            return f"{_EXP_INVALID} ('exp' is not after 'iat')"
        return None

    def _authenticate_installation(
        self, headers: dict[str, str], trace: _Trace, now: float
    ) -> Reply | None:
        authorization = headers.get("authorization", "").strip()
        if not authorization:
            return _error(401, "Requires authentication")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        trace.token = credential or None
        if scheme.lower() not in self.token_schemes:
            return _bad_credentials()
        token = self._tokens.get(credential)
        if token is None:
            if credential.startswith("eyJ") and credential.count(".") == 2:
                return _bad_credentials(
                    "an app JWT was sent where an installation access token is needed"
                )
            return _bad_credentials()
        trace.installation_id = token.installation_id
        if token.expires_at <= now:
            self.expired_token_uses += 1
            return _bad_credentials()
        if token.installation_id not in self._installations:
            return _bad_credentials()
        trace.auth = "installation"
        return None

    def _token_reaches(self, token_value: str | None, path: str) -> bool:
        """Whether the token may touch the repository in ``path`` (always, if none is named)."""
        matched = _REPO_PATH.match(path)
        if matched is None:
            return True
        token = self._tokens.get(token_value or "")
        if token is None:
            return False
        return self._reaches(token, f"{matched['owner']}/{matched['repo']}")

    def _reaches(self, token: _Token, full_name: str) -> bool:
        installation = self._installations.get(token.installation_id)
        if installation is None or installation.repository(full_name) is None:
            return False
        return token.repositories is None or full_name.lower() in token.repositories

    def _rate_window(self, bucket: tuple[str, int], now: float) -> _RateWindow:
        window = self._rate.setdefault(bucket, _RateWindow())
        if now >= window.reset:
            window.used = 0
            window.reset = int(now) + RATE_WINDOW
        return window

    # ----------------------------------------------------------- JSON of GitHub objects

    def _account_json(self, installation: _Installation) -> dict[str, Any]:
        return {
            "login": installation.account,
            "id": installation.account_id,
            "node_id": _node_id(
                "O" if installation.account_type == "Organization" else "U", installation.account_id
            ),
            "type": installation.account_type,
            "site_admin": False,
        }

    def _installation_json(self, installation: _Installation, base_url: str) -> dict[str, Any]:
        account = installation.account
        settings = (
            f"https://github.com/organizations/{account}/settings/installations/{installation.id}"
            if installation.account_type == "Organization"
            else f"https://github.com/settings/installations/{installation.id}"
        )
        return {
            "id": installation.id,
            "account": self._account_json(installation),
            "app_id": self.app_id,
            "app_slug": self.slug,
            "client_id": self.client_id,
            "target_id": installation.account_id,
            "target_type": installation.account_type,
            "repository_selection": installation.repository_selection,
            "permissions": dict(installation.permissions),
            "events": list(_DEFAULT_EVENTS),
            "access_tokens_url": f"{base_url}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{base_url}/installation/repositories",
            "html_url": settings,
            "created_at": installation.created_at,
            "updated_at": installation.created_at,
            "single_file_name": None,
            "suspended_at": None,
            "suspended_by": None,
        }

    def _repository_json(self, repo: _Repository, base_url: str) -> dict[str, Any]:
        installation = next(
            (i for i in self._installations.values() if i.repository(repo.full_name)), None
        )
        owner_type = installation.account_type if installation else "Organization"
        owner_id = installation.account_id if installation else 0
        return {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": False,
            "visibility": "public",
            "owner": {"login": repo.owner, "id": owner_id, "type": owner_type},
            "html_url": f"https://github.com/{repo.full_name}",
            "url": f"{base_url}/repos/{repo.full_name}",
            "default_branch": DEFAULT_BRANCH,
            "fork": False,
            "archived": False,
            "disabled": False,
        }

    def _label_json(self, full_name: str, name: str, base_url: str) -> dict[str, Any]:
        label_id = next(self._ids)
        return {
            "id": label_id,
            "node_id": _node_id("LA", label_id),
            "url": f"{base_url}/repos/{full_name}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }

    # ------------------------------------------------------------- app (JWT) endpoints

    def _get_app(self, request: ApiRequest) -> Reply:
        return Reply(
            200,
            {
                "id": self.app_id,
                "slug": self.slug,
                "node_id": _node_id("A", self.app_id),
                "client_id": self.client_id,
                "name": self.slug,
                "description": "",
                "owner": {"login": "octo-org", "id": 1, "type": "Organization"},
                "html_url": f"https://github.com/apps/{self.slug}",
                "permissions": dict(_DEFAULT_PERMISSIONS),
                "events": list(_DEFAULT_EVENTS),
                "installations_count": len(self._installations),
            },
        )

    def _list_installations(self, request: ApiRequest) -> Reply:
        items = [self._installation_json(i, request.base_url) for i in self._installations.values()]
        page, headers = _paginate(items, request)
        return Reply(200, page, headers)

    def _installation_param(self, request: ApiRequest) -> _Installation | None:
        raw = request.params["installation_id"]
        return self._installations.get(int(raw)) if raw.isdigit() else None

    def _get_installation(self, request: ApiRequest) -> Reply:
        installation = self._installation_param(request)
        if installation is None:
            return _not_found()
        return Reply(200, self._installation_json(installation, request.base_url))

    def _repo_installation(self, request: ApiRequest) -> Reply:
        full_name = f"{request.params['owner']}/{request.params['repo']}"
        for installation in self._installations.values():
            if installation.repository(full_name) is not None:
                return Reply(200, self._installation_json(installation, request.base_url))
        return _not_found()

    def _account_installation(
        self, request: ApiRequest, login: str, account_type: str | None
    ) -> Reply:
        for installation in self._installations.values():
            if installation.account.lower() == login.lower() and (
                account_type is None or installation.account_type == account_type
            ):
                return Reply(200, self._installation_json(installation, request.base_url))
        return _not_found()

    def _org_installation(self, request: ApiRequest) -> Reply:
        return self._account_installation(request, request.params["org"], "Organization")

    def _user_installation(self, request: ApiRequest) -> Reply:
        return self._account_installation(request, request.params["username"], None)

    def _mint_token(self, request: ApiRequest) -> Reply:
        installation = self._installation_param(request)
        if installation is None:
            return _not_found()
        body = {} if request.json is None else request.json
        if not isinstance(body, dict):
            return _invalid("Installation", "body", f"{body!r} is not an object.")
        scope = _scope_request(body)
        if isinstance(scope, Reply):
            return scope
        names, ids, permissions = scope
        if len(names) + len(ids) > MAX_TOKEN_REPOSITORIES:
            return _error(
                422, f"Too many repositories; a token can name at most {MAX_TOKEN_REPOSITORIES}."
            )
        selected: dict[int, _Repository] = {}
        for name in names:
            repo = next(
                (r for r in installation.repositories if r.name.lower() == name.lower()), None
            )
            if repo is None:
                hint = " ('repositories' takes names without the owner)" if "/" in name else ""
                return _error(422, _NOT_ACCESSIBLE + hint)
            selected[repo.id] = repo
        for repo_id in ids:
            repo = next((r for r in installation.repositories if r.id == repo_id), None)
            if repo is None:
                return _error(422, _NOT_ACCESSIBLE)
            selected[repo.id] = repo
        for name, level in permissions.items():
            granted = installation.permissions.get(name)
            if granted is None or _PERMISSION_LEVELS[level] > _PERMISSION_LEVELS[granted]:
                return _error(
                    422,
                    "The permissions requested are not granted to this installation "
                    f"({name}: {level}).",
                )
        token_permissions = dict(permissions or installation.permissions)
        token_permissions.setdefault("metadata", "read")
        now = time.time()
        expires = int(now + self.token_ttl.total_seconds())
        value = self.token_prefix + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
        narrowed = tuple(r.full_name for r in selected.values()) if selected else None
        self._tokens[value] = _Token(
            value=value,
            installation_id=installation.id,
            repositories=frozenset(n.lower() for n in narrowed) if narrowed else None,
            permissions=token_permissions,
            expires_at=float(expires),
        )
        self._mints.append(
            TokenMint(
                installation_id=installation.id,
                token=value,
                repositories=narrowed,
                permissions=dict(token_permissions),
                minted_at=datetime.fromtimestamp(now, UTC),
                expires_at=datetime.fromtimestamp(expires, UTC),
            )
        )
        answer: dict[str, Any] = {
            "token": value,
            "expires_at": self._expiry_text(expires),
            "permissions": token_permissions,
            "repository_selection": "selected" if selected else installation.repository_selection,
        }
        if selected:
            answer["repositories"] = [
                self._repository_json(r, request.base_url) for r in selected.values()
            ]
        return Reply(201, answer)

    # ------------------------------------------------------- installation-token endpoints

    def _token(self, request: ApiRequest) -> _Token:
        return self._tokens[request.token or ""]

    def _get_repository(self, request: ApiRequest) -> Reply:
        installation = self._installations[self._token(request).installation_id]
        repo = installation.repository(f"{request.params['owner']}/{request.params['repo']}")
        assert repo is not None  # _token_reaches checked it
        return Reply(200, self._repository_json(repo, request.base_url))

    def _issue_key(self, request: ApiRequest) -> tuple[str, int] | None:
        number = request.params["number"]
        if not number.isdigit() or int(number) < 1:
            return None
        return f"{request.params['owner']}/{request.params['repo']}".lower(), int(number)

    def _get_labels(self, request: ApiRequest) -> Reply:
        key = self._issue_key(request)
        if key is None:
            return _not_found()
        return Reply(200, list(self._labels.get(key, {}).values()))

    def _writable_issue(self, request: ApiRequest) -> tuple[str, int] | Reply:
        """The issue of the path, if it exists and the token may write to it; else the refusal."""
        return self._issue_with(request, "write")

    def _issue_with(self, request: ApiRequest, level: str) -> tuple[str, int] | Reply:
        """The issue of the path, if it exists and the token has ``level`` access to issues
        (or pull requests); else the refusal."""
        key = self._issue_key(request)
        if key is None:
            return _not_found()
        token = self._token(request)
        if not (_permits(token, "issues", level) or _permits(token, "pull_requests", level)):
            return _error(403, "Resource not accessible by integration")
        return key

    def _add_labels(self, request: ApiRequest) -> Reply:
        key = self._writable_issue(request)
        if isinstance(key, Reply):
            return key
        body = request.json
        names = body.get("labels") if isinstance(body, dict) else body
        if names is None:
            return _invalid("Label", "labels", "the 'labels' array is missing.")
        if not isinstance(names, list):
            return _invalid("Label", "labels", f"{names!r} is not an array.")
        wanted: list[str] = []
        for item in names:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name.strip():
                return _invalid("Label", "labels", f"{item!r} is not a label name (a string).")
            wanted.append(name)
        full_name = f"{request.params['owner']}/{request.params['repo']}"
        labels = self._labels.setdefault(key, {})
        for name in wanted:
            if name.lower() not in labels:
                labels[name.lower()] = self._label_json(full_name, name, request.base_url)
        return Reply(200, list(labels.values()))

    def _get_rate_limit(self, request: ApiRequest) -> Reply:
        window = self._rate_window(("installation", request.installation_id or 0), time.time())
        core = {
            "limit": window.limit,
            "used": window.used,
            "remaining": max(0, window.limit - window.used),
            "reset": window.reset,
        }
        return Reply(200, {"resources": {"core": core}, "rate": core})

    def _list_repositories(self, request: ApiRequest) -> Reply:
        token = self._token(request)
        installation = self._installations[token.installation_id]
        repos = [
            self._repository_json(r, request.base_url)
            for r in installation.repositories
            if self._reaches(token, r.full_name)
        ]
        page, headers = _paginate(repos, request)
        selection = "selected" if token.repositories else installation.repository_selection
        return Reply(
            200,
            {"total_count": len(repos), "repository_selection": selection, "repositories": page},
            headers,
        )

    def _list_hook_deliveries(self, request: ApiRequest) -> Reply:
        with self._lock:
            items = list(self._hook_deliveries)  # newest first, as GitHub lists them
        page, headers = _paginate(items, request)
        return Reply(200, page, headers)

    def _redeliver(self, request: ApiRequest) -> Reply:
        raw = request.params["delivery_id"]
        with self._lock:
            known = raw.isdigit() and any(d["id"] == int(raw) for d in self._hook_deliveries)
            if not known:
                return _not_found()
            self.redeliveries.append(int(raw))
        return Reply(202, {})

    # ------------------------------------------------------------------------- GraphQL

    def _graphql(self, request: ApiRequest) -> Reply:
        """GitHub's GraphQL endpoint checks the body's shape; the fake cannot run queries, so
        a test scripts the answer: ``fake.route("POST", "/graphql")``."""
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _error(400, "A query attribute must be specified and must be a string.")
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return _error(400, "Variables must be an object.")
        return Reply(
            200,
            {
                "errors": [
                    {
                        "message": "the fake has no answer for this query: script one with "
                        'fake.route("POST", "/graphql")'
                    }
                ]
            },
        )

    def _revoke_token(self, request: ApiRequest) -> Reply:
        self._token(request).expires_at = time.time() - 1
        return Reply(204)

    # ------------------------------ commit statuses, check runs, collaborators, comments
    # The endpoints the sample bots need (sample_bots/push_status.py, commands.py). Each
    # checks its body and the token's permission as GitHub does; what it creates is kept
    # for the test to read (commit_statuses, check_runs, issue_comments).

    _STATUS_STATES = ("error", "failure", "pending", "success")
    _CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
    _CHECK_CONCLUSIONS = (
        "action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale",
        "timed_out",
    )  # fmt: skip
    _ROLES = ("admin", "maintain", "write", "triage", "read")
    _FULL_SHA = re.compile(r"[0-9a-f]{40}")

    def add_collaborator(self, repository: str, login: str, permission: str = "write") -> None:
        """Make ``login`` a collaborator on ``owner/name`` with the role ``permission``:
        ``admin``, ``maintain``, ``write``, ``triage`` or ``read``.

        ``GET /repos/{owner}/{repo}/collaborators/{login}/permission`` then answers it (a
        ``maintain`` role reads as ``write``, ``triage`` as ``read``, as on GitHub); for
        anyone not added it answers 404.

        >>> fake = FakeGitHub(app_id=1, public_key=generate_app_key()[1])
        >>> fake.add_collaborator("octo-org/hello", "hubot", "maintain")
        """
        if permission not in self._ROLES:
            raise ValueError(f"permission must be one of {', '.join(self._ROLES)}: {permission!r}")
        with self._lock:
            people = self._collaborators.setdefault(repository.lower(), {})
            people[login.lower()] = (login, permission, next(self._ids))

    def commit_statuses(self, repository: str, sha: str) -> list[dict[str, Any]]:
        """The statuses created on commit ``sha`` of ``owner/name``, oldest first, as the API
        answered them (``state``, ``context``, ``description``, ``target_url``...)."""
        with self._lock:
            return [dict(s) for s in self._statuses.get((repository.lower(), sha), [])]

    def check_runs(self, repository: str, head_sha: str | None = None) -> list[dict[str, Any]]:
        """The check runs created in ``owner/name`` (on ``head_sha`` only, if given), oldest
        first, as the API answered them (``name``, ``head_sha``, ``status``, ``conclusion``...)."""
        with self._lock:
            runs = self._check_runs.get(repository.lower(), [])
            return [dict(r) for r in runs if head_sha is None or r["head_sha"] == head_sha]

    def add_issue_comment(
        self, repository: str, number: int, body: str, *, user: str | None = None
    ) -> int:
        """Put a comment on issue ``number`` of ``owner/name``, as ``user`` (default: the
        app's bot, as if an earlier run had written it); returns its id.

        ``GET /repos/{owner}/{repo}/issues/{number}/comments`` lists it, so a bot that looks
        for its earlier comment before writing one can be tested.

        >>> fake = FakeGitHub(app_id=1, public_key=generate_app_key()[1])
        >>> fake.add_issue_comment("octo-org/hello", 7, "Thanks!", user="octocat") > 0
        True
        """
        author = self._app_bot() if user is None else {
            "login": user, "id": 1000 + len(user), "node_id": _node_id("U", 1000 + len(user)),
            "type": "Bot" if user.endswith("[bot]") else "User", "site_admin": False,
        }  # fmt: skip
        with self._lock:
            return int(self._keep_comment((repository.lower(), number), body, author)["id"])

    def issue_comments(self, repository: str, number: int) -> list[str]:
        """The bodies of the comments on issue ``number`` of ``owner/name``, in order."""
        with self._lock:
            return [c["body"] for c in self._comments.get((repository.lower(), number), [])]

    def _app_bot(self) -> dict[str, Any]:
        """The app's bot account: the author of what the app creates."""
        bot_id = 100_000_000 + self.app_id
        return {
            "login": f"{self.slug}[bot]",
            "id": bot_id,
            "node_id": _node_id("BOT", bot_id),
            "type": "Bot",
            "site_admin": False,
        }

    def _create_status(self, request: ApiRequest) -> Reply:
        """``POST /repos/{owner}/{repo}/statuses/{sha}``."""
        if not _permits(self._token(request), "statuses", "write"):
            return _error(403, "Resource not accessible by integration")
        sha = request.params["sha"]
        if not self._FULL_SHA.fullmatch(sha):
            return _error(422, f"No commit found for SHA: {sha}")
        body = request.json
        if not isinstance(body, dict):
            return _invalid("Status", "body", f"{body!r} is not an object.")
        if body.get("state") not in self._STATUS_STATES:
            detail = {"resource": "Status", "code": "custom", "field": "state"}
            return _error(
                422,
                "Validation Failed",
                errors=[detail | {"message": "state is not included in the list"}],
            )
        for name in ("target_url", "description", "context"):
            if body.get(name) is not None and not isinstance(body[name], str):
                return _invalid("Status", name, f"{body[name]!r} is not a string.")
        full_name = f"{request.params['owner']}/{request.params['repo']}"
        status_id, now = next(self._ids), _timestamp(time.time())
        status = {
            "url": f"{request.base_url}/repos/{full_name}/statuses/{sha}",
            "id": status_id,
            "node_id": _node_id("SC", status_id),
            "state": body["state"],
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "context": body.get("context") or "default",
            "created_at": now,
            "updated_at": now,
            "creator": self._app_bot(),
        }
        self._statuses.setdefault((full_name.lower(), sha), []).append(status)
        return Reply(201, status)

    def _create_check_run(self, request: ApiRequest) -> Reply:
        """``POST /repos/{owner}/{repo}/check-runs``: ``name`` and ``head_sha`` required."""
        if not _permits(self._token(request), "checks", "write"):
            return _error(403, "Resource not accessible by integration")
        body = request.json
        if not isinstance(body, dict):
            return _invalid("CheckRun", "body", f"{body!r} is not an object.")
        for name in ("name", "head_sha"):
            if body.get(name) is None:
                return _error(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
            if not isinstance(body[name], str) or not body[name].strip():
                return _invalid("CheckRun", name, f"{body[name]!r} is not a non-empty string.")
        if not self._FULL_SHA.fullmatch(body["head_sha"]):
            return _error(422, f"No commit found for SHA: {body['head_sha']}")
        conclusion = body.get("conclusion")
        if conclusion is not None and conclusion not in self._CHECK_CONCLUSIONS:
            choices = ", ".join(self._CHECK_CONCLUSIONS)
            return _invalid("CheckRun", "conclusion", f"{conclusion!r} is not one of {choices}.")
        # A conclusion makes the run completed, whatever status was sent (GitHub's rule).
        status = "completed" if conclusion is not None else body.get("status", "queued")
        if status not in self._CHECK_STATUSES:
            choices = ", ".join(self._CHECK_STATUSES)
            return _invalid("CheckRun", "status", f"{status!r} is not one of {choices}.")
        if status == "completed" and conclusion is None:
            return _invalid("CheckRun", "conclusion", "it is required when status is completed.")
        output = body.get("output")
        if output is not None and not (
            isinstance(output, dict)
            and isinstance(output.get("title"), str)
            and isinstance(output.get("summary"), str)
        ):
            return _invalid("CheckRun", "output", "it needs a 'title' and a 'summary' string.")
        full_name = f"{request.params['owner']}/{request.params['repo']}"
        run_id, now = next(self._ids), _timestamp(time.time())
        output = output or {}
        run = {
            "id": run_id,
            "node_id": _node_id("CR", run_id),
            "name": body["name"],
            "head_sha": body["head_sha"],
            "external_id": body.get("external_id"),
            "url": f"{request.base_url}/repos/{full_name}/check-runs/{run_id}",
            "html_url": f"https://github.com/{full_name}/runs/{run_id}",
            "details_url": body.get("details_url"),
            "status": status,
            "conclusion": conclusion,
            "started_at": body.get("started_at") or now,
            "completed_at": (body.get("completed_at") or now) if status == "completed" else None,
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": len(output.get("annotations") or []),
            },
            "check_suite": {"id": next(self._ids)},
            "app": {"id": self.app_id, "slug": self.slug, "name": self.slug},
            "pull_requests": [],
        }
        self._check_runs.setdefault(full_name.lower(), []).append(run)
        return Reply(201, run)

    def _collaborator_permission(self, request: ApiRequest) -> Reply:
        """``GET /repos/{owner}/{repo}/collaborators/{username}/permission``."""
        full_name = f"{request.params['owner']}/{request.params['repo']}".lower()
        found = self._collaborators.get(full_name, {}).get(request.params["username"].lower())
        if found is None:
            return _not_found()
        login, role, user_id = found
        # The legacy base permission: GitHub maps maintain to write and triage to read.
        permission = {"maintain": "write", "triage": "read"}.get(role, role)
        user = {
            "login": login,
            "id": user_id,
            "node_id": _node_id("U", user_id),
            "type": "User",
            "site_admin": False,
            "permissions": {
                "admin": role == "admin",
                "maintain": role in ("admin", "maintain"),
                "push": permission in ("admin", "write"),
                "triage": role != "read",
                "pull": True,
            },
            "role_name": role,
        }
        return Reply(200, {"permission": permission, "role_name": role, "user": user})

    def _create_comment(self, request: ApiRequest) -> Reply:
        """``POST /repos/{owner}/{repo}/issues/{number}/comments``: ``body`` required."""
        key = self._writable_issue(request)
        if isinstance(key, Reply):
            return key
        body = request.json
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return _invalid("IssueComment", "body", f"{text!r} is not a non-empty string.")
        comment = self._keep_comment(key, text, self._app_bot())
        return Reply(201, _comment_json(comment, key, request.base_url))

    def _list_comments(self, request: ApiRequest) -> Reply:
        """``GET /repos/{owner}/{repo}/issues/{number}/comments``, oldest first (one page)."""
        key = self._issue_with(request, "read")
        if isinstance(key, Reply):
            return key
        comments = self._comments.get(key, [])
        return Reply(200, [_comment_json(c, key, request.base_url) for c in comments])

    def _keep_comment(
        self, key: tuple[str, int], text: str, user: dict[str, Any]
    ) -> dict[str, Any]:
        comment_id, now = next(self._ids), _timestamp(time.time())
        comment = {"id": comment_id, "body": text, "user": user, "created_at": now}
        self._comments.setdefault(key, []).append(comment)
        return comment

    # ------------------------------------------------------------- repository contents

    def _get_contents(self, request: ApiRequest) -> Reply:
        """``GET /repos/{owner}/{repo}/contents/{path}``: a file (raw with a raw media type,
        else JSON with base64 ``content``) or a directory's listing (always JSON)."""
        if not _permits(self._token(request), "contents", "read"):
            return _error(403, "Resource not accessible by integration")
        owner, repo = request.params["owner"], request.params["repo"]
        path = request.params["path"].strip("/")
        ref = request.query.get("ref") or DEFAULT_BRANCH
        branch = ref.removeprefix("refs/heads/")
        wanted = (f"{owner}/{repo}".lower(), branch)
        with self._lock:
            files = {p: data for (r, b, p), data in self._files.items() if (r, b) == wanted}
        if branch != DEFAULT_BRANCH and not files:
            return _error(404, f"No commit found for the ref {ref}")
        base_url = f"{request.base_url}/repos/{owner}/{repo}"
        data = files.get(path)
        if data is None:
            inside = {p[len(path) + 1 :].split("/")[0] for p in files if p.startswith(f"{path}/")}
            if not inside:
                return _not_found()
            children = (f"{path}/{name}" for name in sorted(inside))
            return Reply(200, [_content_json(base_url, branch, c, files.get(c)) for c in children])
        accept = request.headers.get("accept", "")
        if "application/vnd.github.raw" in accept or "application/vnd.github.v3.raw" in accept:
            headers = {
                "content-type": "text/plain; charset=utf-8",
                "x-github-media-type": "github.v3; param=raw; format=json",
            }
            return Reply(200, None, headers, raw=data)
        text = base64.b64encode(data).decode("ascii")
        return Reply(
            200,
            _content_json(base_url, branch, path, data)
            | {
                "encoding": "base64",
                "content": "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60)),
            },
        )

    # ----------------------------------------------- app registration from a manifest
    # GitHub's web side of the flow ({web}/settings/apps/new) and the API's conversion of
    # the code. The web routes are served by the same app, so GITHUB_WEB_URL and
    # GITHUB_API_URL may both be the fake's URL. Once converted, the new app is the app the
    # fake plays: its JWTs verify, the old app's no longer do.

    def _init_manifest_flow(self) -> None:
        self._manifest_codes: dict[str, tuple[dict[str, Any], float, str | None]] = {}
        self.manifests: list[dict[str, Any]] = []
        """Every manifest posted to ``settings/apps/new`` and accepted, in order."""
        self.manifest_code_ttl = MANIFEST_CODE_SECONDS
        self._builtins.append(
            _Route(
                "POST",
                "/app-manifests/{code}/conversions",
                _compile_template("/app-manifests/{code}/conversions"),
                "none",
                self._convert_manifest,
            )
        )

    def _manifest_web_routes(self) -> list[Route]:
        return [
            Route("/settings/apps/new", self._new_app_from_manifest, methods=["GET", "POST"]),
            Route(
                "/organizations/{org}/settings/apps/new",
                self._new_app_from_manifest,
                methods=["GET", "POST"],
            ),
        ]

    def expire_manifest_codes(self) -> None:
        """Make every code handed out by ``settings/apps/new`` expired (GitHub's last an hour)."""
        with self._lock:
            for code, (manifest, _, org) in list(self._manifest_codes.items()):
                self._manifest_codes[code] = (manifest, 0.0, org)

    async def _new_app_from_manifest(self, request: Request) -> Response:
        """What a person sees after the bot's form POSTed the manifest; they click "Create",
        which here is immediate: a redirect to the manifest's ``redirect_url``."""
        if request.method == "POST":
            form = await request.form()
            raw = form.get("manifest")
        else:
            raw = request.query_params.get("manifest")
        state = request.query_params.get("state")
        manifest, problem = _manifest_problem(raw if isinstance(raw, str) else None)
        if problem is None and not state:
            problem = "the state parameter is missing: pass ?state= to protect the callback"
        if problem is not None or manifest is None:
            page = f"<h1>Invalid GitHub App Manifest</h1><p>{html.escape(problem or '')}</p>"
            return HTMLResponse(page, status_code=422)
        code = secrets.token_hex(10)
        with self._lock:
            org = request.path_params.get("org")
            self._manifest_codes[code] = (manifest, time.time() + self.manifest_code_ttl, org)
            self.manifests.append(manifest)
        target = str(manifest["redirect_url"])
        separator = "&" if "?" in target else "?"
        return RedirectResponse(
            f"{target}{separator}{urlencode({'code': code, 'state': state})}", status_code=302
        )

    def _convert_manifest(self, request: ApiRequest) -> Reply:
        with self._lock:
            found = self._manifest_codes.pop(request.params["code"], None)  # single use
            if found is None or found[1] <= time.time():
                return _not_found()
            manifest, _, org = found
            app_id = next(self._ids)
            slug = re.sub(r"[^a-z0-9]+", "-", str(manifest.get("name") or "app").lower())
            slug = slug.strip("-") or f"app-{app_id}"
            pem, public_key = generate_app_key(f"manifest-{app_id}")
            client_id = "Iv23li" + secrets.token_hex(7)
            # From now on the fake is this app.
            self.app_id, self.client_id, self.slug = app_id, client_id, slug
            self._public_key = public_key
            self._issuers = {str(app_id), client_id}
        owner = org or "octocat"
        now = _timestamp(time.time())
        return Reply(
            201,
            {
                "id": app_id,
                "slug": slug,
                "node_id": _node_id("A", app_id),
                "owner": {"login": owner, "id": 1, "type": "Organization" if org else "User"},
                "name": manifest.get("name") or slug,
                "description": manifest.get("description", ""),
                "external_url": manifest["url"],
                "html_url": f"{request.base_url}/apps/{slug}",
                "created_at": now,
                "updated_at": now,
                "permissions": manifest.get("default_permissions", {}),
                "events": manifest.get("default_events", []),
                "client_id": client_id,
                "client_secret": secrets.token_hex(20),
                "webhook_secret": secrets.token_hex(20),
                "pem": pem,
            },
        )


def _file_location(repository: str, path: str) -> tuple[str, str]:
    owner, sep, name = repository.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"repositories are 'owner/name', not {repository!r}")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
        raise ValueError(f"a file's path is relative to the repository's root: {path!r}")
    return repository.lower(), path


def _blob_sha(data: bytes) -> str:
    """The git blob id of ``data``, as GitHub reports a file's ``sha``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _content_json(base_url: str, branch: str, path: str, data: bytes | None) -> dict[str, Any]:
    """The contents API's description of a file (``data``) or a directory (None)."""
    kind = "dir" if data is None else "file"
    sha = _blob_sha(path.encode() if data is None else data)  # a stand-in tree id for a dir
    url = f"{base_url}/contents/{path}?ref={branch}"
    git_url = f"{base_url}/git/{'trees' if data is None else 'blobs'}/{sha}"
    repository = base_url.rsplit("/repos/", 1)[1]
    page = "tree" if data is None else "blob"
    html_url = f"https://github.com/{repository}/{page}/{branch}/{path}"
    return {
        "type": kind,
        "size": 0 if data is None else len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": None
        if data is None
        else f"https://raw.githubusercontent.com/{repository}/{branch}/{path}",
        "_links": {"self": url, "git": git_url, "html": html_url},
    }


_NOT_ACCESSIBLE = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)


def _load_public_key(key: str | bytes | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        return key
    data = key.encode("ascii") if isinstance(key, str) else key
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError:
        raise ValueError(
            "public_key must be the app's RSA public key (PEM), not a private key or other data"
        ) from None
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise ValueError("public_key must be an RSA key: GitHub App JWTs are RS256")
    return loaded


def _scope_request(body: dict[str, Any]) -> tuple[list[str], list[int], dict[str, str]] | Reply:
    """The ``repositories``, ``repository_ids`` and ``permissions`` of an access-token request."""
    names = body.get("repositories") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return _invalid("Installation", "repositories", f"{names!r} is not an array of names.")
    ids = body.get("repository_ids") or []
    if not isinstance(ids, list) or not all(_is_int(i) for i in ids):
        return _invalid("Installation", "repository_ids", f"{ids!r} is not an array of integers.")
    permissions = body.get("permissions") or {}
    if not isinstance(permissions, dict):
        return _invalid("Installation", "permissions", f"{permissions!r} is not an object.")
    for name, level in permissions.items():
        if level not in _PERMISSION_LEVELS:
            return _invalid(
                "Installation", f"permissions/{name}", f"{level!r} is not read, write or admin."
            )
    return names, ids, permissions


def _permits(token: _Token, permission: str, level: str) -> bool:
    granted = token.permissions.get(permission)
    return granted is not None and _PERMISSION_LEVELS[granted] >= _PERMISSION_LEVELS[level]


def _rate_headers(window: _RateWindow) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(window.limit),
        "x-ratelimit-remaining": str(max(0, window.limit - window.used)),
        "x-ratelimit-reset": str(window.reset),
        "x-ratelimit-used": str(window.used),
        "x-ratelimit-resource": "core",
    }


def _etag(body: Any) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f'W/"{digest[:40]}"'


def _etags_in(header: str) -> set[str]:
    return {part.strip() for part in header.split(",") if part.strip()}


def _with_headers(reply: Reply, headers: Mapping[str, str]) -> Reply:
    return replace(reply, headers={**reply.headers, **headers})


def _paginate(items: list[Any], request: ApiRequest) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` per ``per_page`` (≤ 100) and ``page``, with GitHub's Link header."""

    def number(name: str, default: int) -> int:
        raw = request.query.get(name, "")
        return int(raw) if raw.isdigit() and int(raw) > 0 else default

    per_page = min(number("per_page", 30), 100)
    page = number("page", 1)
    last = max(1, math.ceil(len(items) / per_page))

    def url(target: int) -> str:
        query = {**request.query, "per_page": str(per_page), "page": str(target)}
        return f"{request.base_url}{request.path}?{urlencode(query)}"

    links = []
    if page > 1:
        links.append(f'<{url(page - 1)}>; rel="prev"')
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
    headers = {"link": ", ".join(links)} if links else {}
    return items[(page - 1) * per_page : page * per_page], headers


_MANIFEST_EVENT_PERMISSIONS = {
    "issues": "issues",
    "issue_comment": "issues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "push": "contents",
    "release": "contents",
    "check_run": "checks",
    "check_suite": "checks",
    "status": "statuses",
    "workflow_run": "actions",
}
_APP_NAME_MAX = 34


def _manifest_problem(raw: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest, or what GitHub would say is wrong with it."""
    if not raw:
        return None, "no manifest was posted (form field 'manifest')"
    try:
        manifest = json.loads(raw)
    except ValueError:
        return None, "the manifest is not valid JSON"
    if not isinstance(manifest, dict):
        return None, "the manifest must be a JSON object"

    def web_url(value: Any) -> bool:
        return isinstance(value, str) and value.startswith(("http://", "https://"))

    name = manifest.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > _APP_NAME_MAX):
        return None, f"name must be a string of at most {_APP_NAME_MAX} characters"
    if not web_url(manifest.get("url")):
        return None, "url (the app's homepage) is required and must be an http(s) URL"
    if not web_url(manifest.get("redirect_url")):
        return None, "redirect_url is required for the manifest flow and must be an http(s) URL"
    hook = manifest.get("hook_attributes", {})
    if not isinstance(hook, dict) or (hook.get("active", True) and not web_url(hook.get("url"))):
        return None, "hook_attributes.url is required while the webhook is active"
    if not isinstance(manifest.get("public", False), bool):
        return None, "public must be a boolean"
    permissions = manifest.get("default_permissions", {})
    if not isinstance(permissions, dict) or any(
        level not in _PERMISSION_LEVELS for level in permissions.values()
    ):
        return None, "default_permissions must map permissions to read, write or admin"
    events = manifest.get("default_events", [])
    if not isinstance(events, list):
        return None, "default_events must be a list"
    for event in events:
        needed = _MANIFEST_EVENT_PERMISSIONS.get(event)
        if needed is not None and needed not in permissions:
            return None, f"Default events unsupported: {event} needs the {needed} permission"
    return manifest, None
