"""Webhook payloads for tests: real ones, with the fields a test cares about filled in.

Each builder starts from a payload GitHub really sent (shipped beside this module, from the
npm package ``@octokit/webhooks-examples`` 7.6.1, MIT licence), then makes it consistent:

- the repository is ``repo`` everywhere: ``repository`` (and a pull request's ``head.repo``
  and ``base.repo``) with its ``name``, ``full_name``, ``owner``, ``default_branch``, and
  every URL; its owner is an organization, also sent as ``organization``;
- every user in it is ``sender`` (a login ending in ``[bot]`` is a ``Bot``), except the
  repository's owner;
- ``installation`` is ``{"id": installation, ...}`` (``installation=None`` removes it);
- issue and pull request numbers, commit shas, and the URLs holding them.

Everything else stays as GitHub sent it. A builder returns a fresh plain dict on each call;
``framework.parse_event`` (and so every handler) reads it as the typed event.

>>> payload = issues_opened(repo="octo-org/hello", number=7, title="Crash on start")
>>> payload["repository"]["full_name"], payload["issue"]["number"], payload["installation"]["id"]
('octo-org/hello', 7, 42)
>>> payload["issue"]["url"]
'https://api.github.com/repos/octo-org/hello/issues/7'

The defaults (:data:`REPO`, :data:`INSTALLATION`) are the repository and installation that
:func:`framework.testing.run_bot` sets up in its fake GitHub.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

__all__ = [
    "DEFAULT_BRANCH",
    "INSTALLATION",
    "REPO",
    "SENDER",
    "Commit",
    "issue_comment_created",
    "issues_opened",
    "pull_request_opened",
    "pull_request_synchronize",
    "push",
    "sha",
]

REPO = "octo-org/hello"
"""The repository payloads are about unless told otherwise."""
INSTALLATION = 42
"""The installation id payloads carry unless told otherwise."""
SENDER = "octocat"
"""Who caused the event unless told otherwise."""
DEFAULT_BRANCH = "main"
"""The repository's default branch (the fake GitHub's too)."""

_EXAMPLES = Path(__file__).parent
_EXAMPLE_REPO = "Codertocat/Hello-World"  # who the real payloads are about
_EXAMPLE_LOGIN = "Codertocat"
_EXAMPLE_ORG = "Octocoders"
_NULL_SHA = "0" * 40


class Commit(TypedDict, total=False):
    """A commit of a :func:`push`; every key is optional.

    ``id`` defaults to a sha derived from the push and the message; the paths default to none.
    """

    id: str
    message: str
    added: list[str]
    removed: list[str]
    modified: list[str]


def sha(seed: str) -> str:
    """A 40-hex-digit commit sha derived from ``seed``: the same seed, the same sha.

    >>> sha("main")
    'b28b7af69320201d1cf206ebf28373980add1451'
    """
    return hashlib.sha1(seed.encode()).hexdigest()


# ------------------------------------------------------------------------------ builders


def issues_opened(
    repo: str = REPO,
    number: int = 1,
    *,
    title: str | None = None,
    body: str | None = None,
    labels: Sequence[str] = (),
    author_association: str = "NONE",
    installation: int | None = INSTALLATION,
    sender: str = SENDER,
    default_branch: str = DEFAULT_BRANCH,
) -> dict[str, Any]:
    """``issues.opened``: ``sender`` opened issue ``number`` of ``repo``.

    ``title`` and ``body`` default to the real payload's; ``labels`` are label names.

    >>> issues_opened(labels=["bug"])["issue"]["labels"][0]["name"]
    'bug'
    """
    payload = _payload("issues.opened", repo, installation, sender, default_branch)
    payload = _renumber(payload, _example("issues.opened")["issue"]["number"], number)
    _issue(payload["issue"], repo, number, title, body, labels, author_association)
    return payload


def issue_comment_created(
    repo: str = REPO,
    number: int = 1,
    *,
    body: str | None = None,
    author_association: str = "NONE",
    installation: int | None = INSTALLATION,
    sender: str = SENDER,
    default_branch: str = DEFAULT_BRANCH,
) -> dict[str, Any]:
    """``issue_comment.created``: ``sender`` commented ``body`` on issue ``number``.

    ``author_association`` is the comment's (and the issue's): ``OWNER``, ``MEMBER``,
    ``COLLABORATOR``, ``CONTRIBUTOR``, ``NONE``...

    >>> issue_comment_created(body="/label bug", sender="renovate[bot]")["sender"]["type"]
    'Bot'
    """
    example = _example("issue_comment.created")
    payload = _payload("issue_comment.created", repo, installation, sender, default_branch)
    payload = _renumber(payload, example["issue"]["number"], number)
    _issue(payload["issue"], repo, number, None, None, (), author_association)
    old_id = str(example["comment"]["id"])
    comment_id = _stable_id("comment", repo.lower(), str(number), sender, body or "")
    comment = _map_strings(payload["comment"], lambda s: s.replace(old_id, str(comment_id)))
    payload["comment"] = comment
    comment.update(
        id=comment_id,
        node_id=_node_id("IssueComment", comment_id),
        author_association=author_association,
    )
    if body is not None:
        comment["body"] = body
    return payload


def push(
    repo: str = REPO,
    *,
    ref: str | None = None,
    before: str | None = None,
    commits: Sequence[Commit] | None = None,
    installation: int | None = INSTALLATION,
    sender: str = SENDER,
    default_branch: str = DEFAULT_BRANCH,
) -> dict[str, Any]:
    """``push``: ``sender`` pushed ``commits`` (oldest first) to ``ref`` of ``repo``.

    ``ref`` defaults to the default branch; ``before`` (the previous tip) to a sha derived
    from the ref (``"0" * 40`` makes it a new branch). ``after`` and ``head_commit`` are the
    last commit. Without ``commits``, the real payload's one commit (adding ``README.md``).

    >>> payload = push(commits=[{"message": "Fix", "modified": ["app.py"]}])
    >>> payload["after"] == payload["head_commit"]["id"], payload["commits"][0]["modified"]
    (True, ['app.py'])
    """
    example = _example("push")
    ref = ref or f"refs/heads/{default_branch}"
    before = before or sha(f"{repo}:{ref}:before")
    payload = _payload("push", repo, installation, sender, default_branch)
    template = payload["commits"][0]
    if commits is None:
        first = example["commits"][0]
        commits = [
            Commit(
                message=first["message"],
                added=first["added"],
                removed=first["removed"],
                modified=first["modified"],
            )
        ]
    built = []
    for index, spec in enumerate(commits):
        commit = copy.deepcopy(template)
        message = spec.get("message", template["message"])
        commit_id = spec.get("id") or sha(f"{repo}:{before}:{index}:{message}")
        commit.update(
            id=commit_id,
            tree_id=sha(f"{commit_id}:tree"),
            message=message,
            url=f"https://github.com/{repo}/commit/{commit_id}",
            added=list(spec.get("added", [])),
            removed=list(spec.get("removed", [])),
            modified=list(spec.get("modified", [])),
        )
        built.append(commit)
    after = built[-1]["id"] if built else before
    created = before == _NULL_SHA
    payload.update(
        ref=ref,
        before=before,
        after=after,
        created=created,
        deleted=False,
        forced=False,
        commits=built,
        head_commit=copy.deepcopy(built[-1]) if built else None,
        compare=f"https://github.com/{repo}/"
        + (f"commit/{after}" if created else f"compare/{before[:12]}...{after[:12]}"),
    )
    return payload


def pull_request_opened(
    repo: str = REPO,
    number: int = 1,
    *,
    title: str | None = None,
    body: str | None = None,
    head_sha: str | None = None,
    head_ref: str = "changes",
    base_ref: str | None = None,
    base_sha: str | None = None,
    draft: bool = False,
    labels: Sequence[str] = (),
    author_association: str = "NONE",
    installation: int | None = INSTALLATION,
    sender: str = SENDER,
    default_branch: str = DEFAULT_BRANCH,
) -> dict[str, Any]:
    """``pull_request.opened``: ``sender`` opened pull request ``number`` from ``head_ref``.

    ``base_ref`` defaults to the default branch; the shas to ones derived from the number.

    >>> payload = pull_request_opened(number=3, head_sha=sha("tip"))
    >>> payload["pull_request"]["head"]["sha"] == sha("tip"), payload["number"]
    (True, 3)
    """
    return _pull_request(
        "opened", repo, number, title, body, head_sha, head_ref, base_ref, base_sha, draft,
        labels, author_association, installation, sender, default_branch,
    )  # fmt: skip


def pull_request_synchronize(
    repo: str = REPO,
    number: int = 1,
    *,
    before: str | None = None,
    after: str | None = None,
    head_ref: str = "changes",
    base_ref: str | None = None,
    base_sha: str | None = None,
    title: str | None = None,
    body: str | None = None,
    draft: bool = False,
    labels: Sequence[str] = (),
    author_association: str = "NONE",
    installation: int | None = INSTALLATION,
    sender: str = SENDER,
    default_branch: str = DEFAULT_BRANCH,
) -> dict[str, Any]:
    """``pull_request.synchronize``: new commits on pull request ``number``'s head branch.

    ``after`` is the new head sha (``pull_request.head.sha``), ``before`` the previous one.

    >>> payload = pull_request_synchronize(after=sha("new"))
    >>> payload["after"] == payload["pull_request"]["head"]["sha"] == sha("new")
    True
    """
    payload = _pull_request(
        "synchronize", repo, number, title, body, after, head_ref, base_ref, base_sha, draft,
        labels, author_association, installation, sender, default_branch,
    )  # fmt: skip
    payload["before"] = before or sha(f"{repo}#{number}:before")
    payload["after"] = payload["pull_request"]["head"]["sha"]
    return payload


# ------------------------------------------------------------------------- the mechanics


@functools.cache
def _example_text(key: str) -> str:
    return (_EXAMPLES / f"{key}.json").read_text(encoding="utf-8")


def _example(key: str) -> dict[str, Any]:
    """A fresh copy of the real payload ``key`` (``issues.opened``...)."""
    payload: dict[str, Any] = json.loads(_example_text(key))
    return payload


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` with ``change`` applied to every string in it, at any depth (a copy)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    return value


def _stable_id(*parts: str) -> int:
    """A positive id derived from ``parts``, so a payload built twice is the same."""
    return int.from_bytes(hashlib.sha1("\0".join(parts).encode()).digest()[:4], "big") or 1


def _node_id(kind: str, number: int) -> str:
    """GitHub's (legacy) global node id: ``MDQ6VXNlcjE=`` is user 1."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"repo must be 'owner/name', not {repo!r}")
    return owner, name


def _account(login: str, kind: str) -> dict[str, Any]:
    """A user, bot or organization as payloads show it (shaped like the real sender)."""
    account_id = _stable_id("account", login.lower())
    template = _example("issues.opened")["sender"]
    account: dict[str, Any] = _map_strings(
        template, lambda s: s.replace(_EXAMPLE_LOGIN, quote(login))
    )
    account.update(
        login=login,
        id=account_id,
        node_id=_node_id(kind, account_id),
        avatar_url=f"https://avatars.githubusercontent.com/u/{account_id}?v=4",
        type=kind,
        site_admin=False,
    )
    return account


def _organization(login: str) -> dict[str, Any]:
    organization_id = _stable_id("account", login.lower())
    template = _example("issue_comment.created")["organization"]
    organization: dict[str, Any] = _map_strings(template, lambda s: s.replace(_EXAMPLE_ORG, login))
    organization.update(
        login=login,
        id=organization_id,
        node_id=_node_id("Organization", organization_id),
        avatar_url=f"https://avatars.githubusercontent.com/u/{organization_id}?v=4",
    )
    return organization


def _label(repo: str, name: str) -> dict[str, Any]:
    label_id = _stable_id("label", repo.lower(), name)
    return {
        "id": label_id,
        "node_id": _node_id("Label", label_id),
        "url": f"https://api.github.com/repos/{repo}/labels/{quote(name)}",
        "name": name,
        "color": "ededed",
        "default": False,
        "description": None,
    }


def _payload(
    key: str, repo: str, installation: int | None, sender: str, default_branch: str
) -> dict[str, Any]:
    """The real payload ``key``, about ``repo``, sent by ``sender`` for ``installation``."""
    owner, name = _split(repo)
    example = _example(key)
    example_id = str(example["sender"]["id"])
    user = _account(sender, "Bot" if sender.endswith("[bot]") else "User")

    def rebrand(text: str) -> str:
        text = text.replace(_EXAMPLE_REPO, repo)
        text = text.replace(f"{example_id}+{_EXAMPLE_LOGIN}@", f"{user['id']}+{sender}@")
        # What is left names a user: the sender (escaped in URLs, as "renovate%5Bbot%5D").
        return text.replace(_EXAMPLE_LOGIN, quote(sender) if text.startswith("http") else sender)

    payload: dict[str, Any] = _map_strings(example, rebrand)
    for account in _walk(payload):
        if account.get("login") == sender:
            account.update({k: user[k] for k in ("id", "node_id", "avatar_url", "type")})
    repository_id = _stable_id("repository", repo.lower())
    for repository in _walk(payload):
        if repository.get("full_name") == repo and isinstance(repository.get("owner"), dict):
            was = repository["owner"]
            repository.update(
                id=repository_id,
                node_id=_node_id("Repository", repository_id),
                name=name,
                default_branch=default_branch,
                owner={**({"name": owner, "email": None} if "name" in was else {}),
                       **_account(owner, "Organization")},
            )  # fmt: skip
            if "master_branch" in repository:
                repository["master_branch"] = default_branch
    payload["organization"] = _organization(owner)
    payload["sender"] = user
    if installation is None:
        payload.pop("installation", None)
    else:
        payload["installation"] = {
            "id": installation,
            "node_id": _node_id("IntegrationInstallation", installation),
        }
    return payload


def _walk(value: Any) -> list[dict[str, Any]]:
    """Every object (dict) inside ``value``, outermost first."""
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _renumber(payload: dict[str, Any], old: int, new: int) -> dict[str, Any]:
    """``payload`` with issue/pull request ``old``'s URLs pointing at number ``new``."""
    pattern = re.compile(rf"/(issues|pulls|pull)/{old}(?=$|[/#.?{{])")
    renumbered: dict[str, Any] = _map_strings(payload, lambda s: pattern.sub(rf"/\1/{new}", s))
    return renumbered


def _issue(
    issue: dict[str, Any],
    repo: str,
    number: int,
    title: str | None,
    body: str | None,
    labels: Sequence[str],
    author_association: str,
) -> None:
    issue_id = _stable_id("issue", repo.lower(), str(number))
    issue.update(
        id=issue_id,
        node_id=_node_id("Issue", issue_id),
        number=number,
        labels=[_label(repo, name) for name in labels],
        author_association=author_association,
    )
    if title is not None:
        issue["title"] = title
    if body is not None:
        issue["body"] = body


def _pull_request(
    action: str,
    repo: str,
    number: int,
    title: str | None,
    body: str | None,
    head_sha: str | None,
    head_ref: str,
    base_ref: str | None,
    base_sha: str | None,
    draft: bool,
    labels: Sequence[str],
    author_association: str,
    installation: int | None,
    sender: str,
    default_branch: str,
) -> dict[str, Any]:
    key = f"pull_request.{action}"
    example = _example(key)["pull_request"]
    owner, _ = _split(repo)
    base_ref = base_ref or default_branch
    head_sha = head_sha or sha(f"{repo}#{number}:{action}:head")
    base_sha = base_sha or sha(f"{repo}:{base_ref}")
    old_head, old_base = example["head"]["sha"], example["base"]["sha"]

    def new_shas(text: str) -> str:
        return text.replace(old_head, head_sha).replace(old_base, base_sha)

    payload = _payload(key, repo, installation, sender, default_branch)
    payload = _renumber(_map_strings(payload, new_shas), example["number"], number)
    pull_request = payload["pull_request"]
    pull_id = _stable_id("pull_request", repo.lower(), str(number))
    pull_request.update(
        id=pull_id,
        node_id=_node_id("PullRequest", pull_id),
        number=number,
        draft=draft,
        labels=[_label(repo, name) for name in labels],
        author_association=author_association,
    )
    if title is not None:
        pull_request["title"] = title
    if body is not None:
        pull_request["body"] = body
    for side, ref in (("head", head_ref), ("base", base_ref)):
        pull_request[side].update(
            ref=ref, label=f"{owner}:{ref}", user=_account(owner, "Organization")
        )
    payload["number"] = number
    return payload
