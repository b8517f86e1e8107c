"""Repository configuration, as Probot's ``context.config``: a YAML file in ``.github/``.

>>> class Labeler(BaseModel):
...     labels: list[str] = []
...     threshold: int = 3
>>> config = await ctx.config("labeler.yml", default={"labels": ["triage"]}, model=Labeler)
... # doctest: +SKIP

Where ``ctx.config(name)`` looks, as Probot does (on each repository's default branch):

1. ``.github/<name>`` in the event's repository;
2. if that file does not exist, the same path in the owner's ``.github`` repository
   (``octo-org/.github``), which the installation must be able to read;
3. a file with an ``_extends`` key extends another file: ``_extends: base`` (the same path in
   ``base``, a repository of the same owner), ``_extends: other-org/base``, or
   ``_extends: base:path/from/root.yml``. A bare name means the owner and path of the file that
   says it. The base may extend another, up to :data:`MAX_EXTENDS` times; a cycle, a deeper
   chain or a base that does not exist is a :class:`~framework.errors.ConfigError` (Probot
   skips a missing base silently).

Merging, as Probot's deepmerge: the default lies under the files, and each base under the file
that extends it. Mappings merge key by key at every depth; any other value (a list, a string,
``null``) replaces the one under it. Unlike deepmerge, lists are replaced, not concatenated:
a repository can then drop an item of a default list.

Caching: what the files gave is kept in the process (:class:`RepositoryConfigs`: at most
:data:`CACHE_ENTRIES` entries, each for ``CONFIG_CACHE_SECONDS``), per installation,
repository and name. A push to a repository's default branch that changes a file an entry
read (or looked for and did not find) drops that entry at once: the bot receives such pushes
(a file in ``.github/`` or a YAML file changed, or a forced push) even when no handler wants
``push``. Only the process that runs the push sees it at once; other
handler processes and replicas see the change within ``CONFIG_CACHE_SECONDS``.
"""

from __future__ import annotations

import copy
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from framework.client.rest import GitHubClient
from framework.common.single_flight import SingleFlight
from framework.errors import ConfigError, GitHubAPIError
from framework.events.parse import decode_payload
from framework.webhooks.delivery import Delivery

if TYPE_CHECKING:
    import yaml

M = TypeVar("M", bound=BaseModel)

CONFIG_DIRECTORY = ".github"
"""Where configuration names live in a repository."""
OWNER_REPOSITORY = ".github"
"""The owner's repository whose files stand in for a repository's missing ones."""
MAX_EXTENDS = 5
"""How many ``_extends`` a chain may follow."""
MAX_FILE_BYTES = 512 * 1024
MAX_VALUES = 50_000
"""How many values a file may hold, counting each use of a YAML alias (``*name``) anew."""
CACHE_ENTRIES = 1024
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"
_EXTENSIONS = (".yml", ".yaml", ".json")

# _extends: [owner/]repo[:path.yml]; owner as GitHub allows logins, repo as it allows names.
_EXTENDS = re.compile(
    r"(?:(?P<owner>[A-Za-z\d](?:[A-Za-z\d]|-(?=[A-Za-z\d])){0,38})/)?"
    r"(?P<repo>[\w.-]{1,100})"
    r"(?::(?P<path>[\w./-]+\.ya?ml))?",
    re.ASCII,
)
# Cheap test of a push's raw body before parsing it: could it change a configuration file?
_MAY_TOUCH_CONFIG = re.compile(rb'\.github\\?/|\.ya?ml"|"forced"\s*:\s*true', re.IGNORECASE)


def config_path(name: str) -> str:
    """The path of a configuration name in a repository.

    >>> config_path("labeler.yml")
    '.github/labeler.yml'
    """
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"a configuration name is a file in .github/, such as 'bot.yml': {name!r}")
    if not name.lower().endswith(_EXTENSIONS):
        raise ValueError(f"configuration files are YAML (.yml, .yaml) or JSON: {name!r}")
    return f"{CONFIG_DIRECTORY}/{name}"


@dataclass(frozen=True)
class ConfigFile:
    """Where a configuration file lives: a repository and a path from its root."""

    owner: str
    repo: str
    path: str

    @property
    def key(self) -> tuple[str, str]:
        """``(owner/name, path)``, the repository in lower case (GitHub ignores its case)."""
        return f"{self.owner}/{self.repo}".lower(), self.path

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}:{self.path}"


def parse_extends(value: object, file: ConfigFile) -> ConfigFile:
    """The file an ``_extends`` value in ``file`` names.

    >>> str(parse_extends("base", ConfigFile("octo-org", "hello", ".github/bot.yml")))
    'octo-org/base:.github/bot.yml'
    >>> str(parse_extends("other/base:conf/bot.yml", ConfigFile("octo-org", "hello", "x.yml")))
    'other/base:conf/bot.yml'
    """
    matched = _EXTENDS.fullmatch(value.strip()) if isinstance(value, str) else None
    if matched is None or matched["repo"] in (".", ".."):
        raise ConfigError(
            f"{file}: _extends must be 'repo', 'owner/repo' or 'owner/repo:path/to/file.yml', "
            f"not {value!r:.100}"
        )
    path = matched["path"] or file.path
    if path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
        raise ConfigError(f"{file}: _extends names a path outside the repository: {value!r:.100}")
    return ConfigFile(matched["owner"] or file.owner, matched["repo"], path)


def parse_config(text: str, file: ConfigFile) -> dict[str, Any]:
    """A configuration file's mapping (``{}`` for an empty file).

    >>> parse_config("labels: [bug]\\n", ConfigFile("o", "r", ".github/bot.yml"))
    {'labels': ['bug']}
    """
    import yaml  # with the first configuration file read: most deliveries read none

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{file} is nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise ConfigError(
            f"{file}, line {_first_content_line(text)}: the top level must be a mapping of "
            f"keys to values, not a {kind}"
        )
    _check_size(data, file)
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # The problem and where it is; not str(exc), which quotes a snippet of the file.
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    return str(exc).splitlines()[0]


def _first_content_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "%")) and stripped != "---":
            return number
    return 1


def _check_size(data: dict[str, Any], file: ConfigFile) -> None:
    # Aliases let a small file stand for a huge (or endless) tree: count before anything
    # walks it (merging, validation).
    pending: list[Any] = [data]
    counted = 1
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        counted += len(children)
        if counted > MAX_VALUES:
            raise ConfigError(
                f"{file} holds more than {MAX_VALUES} values (counting each use of an alias)"
            )
        pending.extend(children)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge at every depth, other values replace.

    Neither argument changes, and the result shares no list or mapping with them.

    >>> merge({"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2]}, "c": 3})
    {'a': {'x': 1, 'y': [2]}, 'b': 1, 'c': 3}
    """
    result = copy.deepcopy(dict(base))
    _merge_into(result, over)
    return result


def _merge_into(target: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        below = target.get(key)
        if isinstance(value, Mapping) and isinstance(below, dict):
            _merge_into(below, value)  # below is the result's own copy
        else:
            target[key] = copy.deepcopy(value)


@dataclass(frozen=True)
class Found:
    """What the files gave for a configuration name in a repository."""

    config: dict[str, Any] | None
    """The files merged; None when there was no file."""
    files: tuple[ConfigFile, ...]
    """The files merged, the one found first, then what it extends."""
    reads: frozenset[tuple[str, str]]
    """Every file read or looked for (:attr:`ConfigFile.key`): what a change must drop."""
    error: str | None = None
    """Why the files cannot be used (invalid YAML, a bad ``_extends``), kept like a result."""


Fetch = Callable[[ConfigFile], Awaitable[str | None]]
"""Reads a file from its repository's default branch; None when there is no such file."""


async def read_config(fetch: Fetch, owner: str, repo: str, path: str) -> Found:
    """Find, parse and merge the files of ``path`` for ``owner/repo`` (see the module doc)."""
    looked: list[ConfigFile] = []

    async def read(file: ConfigFile) -> str | None:
        looked.append(file)
        return await fetch(file)

    file = ConfigFile(owner, repo, path)
    text = await read(file)
    if text is None and repo.lower() != OWNER_REPOSITORY:
        file = ConfigFile(owner, OWNER_REPOSITORY, path)
        text = await read(file)
    if text is None:
        return Found(None, (), frozenset(f.key for f in looked))
    chain = [file]
    try:
        configs = [parse_config(text, file)]
        for _ in range(MAX_EXTENDS + 1):  # each turn adds a file or ends the chain
            extends = configs[-1].pop("_extends", None)
            if extends is None:
                break
            base = parse_extends(extends, chain[-1])
            names = " → ".join(str(f) for f in [*chain, base])
            if any(f.key == base.key for f in chain):
                raise ConfigError(f"_extends goes round in a cycle: {names}")
            if len(chain) > MAX_EXTENDS:
                raise ConfigError(f"_extends goes deeper than {MAX_EXTENDS} files: {names}")
            text = await read(base)
            if text is None:
                raise ConfigError(
                    f"{chain[-1]} extends {base}, which does not exist or which the app's "
                    "installation cannot read"
                )
            chain.append(base)
            configs.append(parse_config(text, base))
    except ConfigError as exc:
        return Found(None, tuple(chain), frozenset(f.key for f in looked), str(exc))
    merged: dict[str, Any] = {}
    for config in reversed(configs):  # the deepest base first
        _merge_into(merged, config)
    return Found(merged, tuple(chain), frozenset(f.key for f in looked))


async def fetch_file(client: GitHubClient, file: ConfigFile) -> str | None:
    """A file's text on its repository's default branch, through ``client``; None on 404."""
    owner, repo = quote(file.owner, safe=""), quote(file.repo, safe="")
    try:
        response = await client.get(
            f"/repos/{owner}/{repo}/contents/{quote(file.path)}",
            headers={"Accept": RAW_MEDIA_TYPE},
        )
    except GitHubAPIError as exc:
        if exc.status == 404:
            return None
        raise
    # Asked for the raw file, GitHub answers JSON only for a directory or a submodule.
    if response.headers.get("content-type", "").startswith("application/json"):
        raise ConfigError(f"{file} is a directory or a submodule, not a file")
    if len(response.content) > MAX_FILE_BYTES:
        raise ConfigError(f"{file} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return response.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{file} is not UTF-8 text") from None


def invalid_config(found: Found, repository: str, path: str, error: ValidationError) -> str:
    """A ConfigError's message for a merged configuration its model refused."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)[:20]
    )
    where = (
        " extending ".join(str(f) for f in found.files)
        if found.files
        else f"the default ({path} is in neither {repository} nor the owner's .github)"
    )
    return f"invalid configuration for {repository} in {where}: {problems}"


@dataclass(frozen=True)
class ConfigChange:
    """Files a push changed on a repository's default branch, as configuration may use them."""

    repository: str
    """``owner/name`` in lower case."""
    paths: frozenset[str] | None
    """The changed paths; None when unknown (a forced push): any file may have changed."""


def config_change(delivery: Delivery) -> ConfigChange | None:
    """What a delivery changed of the files configuration is read from; None if nothing.

    Something only for a push to the default branch that adds, modifies or removes a file in
    ``.github/`` or a YAML file (what ``_extends: repo:path.yml`` can name), or a forced push.
    """
    if delivery.name != "push" or not _MAY_TOUCH_CONFIG.search(delivery.body):
        return None
    return push_change(decode_payload(delivery.body))


def push_change(payload: Mapping[str, Any]) -> ConfigChange | None:
    """:func:`config_change` of a push payload.

    >>> push_change({"ref": "refs/heads/main", "forced": False,
    ...     "repository": {"full_name": "Octo-Org/hello", "default_branch": "main"},
    ...     "commits": [{"added": [], "modified": [".github/bot.yml", "README.md"]}]})
    ConfigChange(repository='octo-org/hello', paths=frozenset({'.github/bot.yml'}))
    """
    repository = payload.get("repository")
    if not isinstance(repository, dict):
        return None
    full_name, branch = repository.get("full_name"), repository.get("default_branch")
    if not isinstance(full_name, str) or not isinstance(branch, str):
        return None
    if payload.get("ref") != f"refs/heads/{branch}":
        return None  # configuration is read from the default branch only
    if payload.get("forced") is True:  # history was rewritten: the commits do not say what
        return ConfigChange(full_name.lower(), None)
    commits = payload.get("commits")
    paths: set[str] = set()
    for commit in commits if isinstance(commits, list) else ():
        for kind in ("added", "modified", "removed"):
            changed = commit.get(kind) if isinstance(commit, dict) else None
            if isinstance(changed, list):
                paths.update(p for p in changed if isinstance(p, str) and _may_configure(p))
    return ConfigChange(full_name.lower(), frozenset(paths)) if paths else None


def _may_configure(path: str) -> bool:
    return path.startswith(f"{CONFIG_DIRECTORY}/") or path.lower().endswith((".yml", ".yaml"))


_Key = tuple[int | None, str, str]  # installation, owner/name (lower case), path


@dataclass(frozen=True)
class _Entry:
    found: Found
    expires: float


class RepositoryConfigs:
    """Repositories' configuration as ``ctx.config`` reads it, cached in the process.

    Entries are kept per installation, repository and path for ``ttl`` seconds (``0``: not
    kept), at most ``max_entries`` of them (the least recently used go first). Concurrent reads
    of one entry make one set of requests.

    >>> configs = RepositoryConfigs(ttl=300)
    >>> labeler = await configs.get(ctx.github, "octo-org", "hello", "labeler.yml")
    ... # doctest: +SKIP
    """

    def __init__(
        self,
        ttl: float = 300.0,
        max_entries: int = CACHE_ENTRIES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._readers: dict[tuple[str, str], set[_Key]] = {}  # file → entries that read it
        self._reading: SingleFlight[_Key, Found] = SingleFlight()
        self._changes = 0  # counts forget() calls: a read that straddles one is not kept

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        client: GitHubClient,
        owner: str,
        repo: str,
        name: str,
        *,
        default: Mapping[str, Any] | None = None,
        model: type[M] | None = None,
    ) -> dict[str, Any] | M | None:
        """``owner/repo``'s configuration ``name``: what :meth:`Context.config` returns."""
        path = config_path(name)
        found = await self.read(client, owner, repo, path)
        if found.error is not None:
            raise ConfigError(found.error)
        if found.config is None and default is None:
            return None
        merged = merge(default or {}, found.config or {})
        if model is None:
            return merged
        try:
            return model.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(invalid_config(found, f"{owner}/{repo}", path, exc)) from None

    async def read(self, client: GitHubClient, owner: str, repo: str, path: str) -> Found:
        """What the files of ``path`` give for ``owner/repo``, from the cache if it has it."""
        key = (client.installation_id, f"{owner}/{repo}".lower(), path)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires > self._clock():
                self._entries.move_to_end(key)
                return entry.found
            self._drop(key)
        return await self._reading.run(
            key, partial(self._read_and_keep, key, client, owner, repo, path)
        )

    async def _read_and_keep(
        self, key: _Key, client: GitHubClient, owner: str, repo: str, path: str
    ) -> Found:
        changes = self._changes
        found = await read_config(partial(fetch_file, client), owner, repo, path)
        if self.ttl > 0 and changes == self._changes:
            self._keep(key, found)
        return found

    def _keep(self, key: _Key, found: Found) -> None:
        self._drop(key)
        self._entries[key] = _Entry(found, self._clock() + self.ttl)
        for file in found.reads:
            self._readers.setdefault(file, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: _Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for file in entry.found.reads:
            readers = self._readers.get(file)
            if readers is not None:
                readers.discard(key)
                if not readers:
                    del self._readers[file]

    def forget(self, change: ConfigChange) -> int:
        """Drop the entries that read a file ``change`` names; returns how many."""
        self._changes += 1
        files = [
            file
            for file in self._readers
            if file[0] == change.repository and (change.paths is None or file[1] in change.paths)
        ]
        stale = {key for file in files for key in self._readers.get(file, ())}
        for key in stale:
            self._drop(key)
        return len(stale)

    def clear(self) -> None:
        """Drop every entry."""
        self._changes += 1
        self._entries.clear()
        self._readers.clear()
