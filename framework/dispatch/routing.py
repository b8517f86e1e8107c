"""Which handlers a delivery goes to: by event name, by ``name.action``, or every event.

Event names are checked when a handler is registered, so ``@app.on("issue.opened")`` (a typo
for ``issues``) fails at import with a suggestion instead of silently never running.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

ANY = "*"


@functools.cache
def modelled_actions() -> dict[str, frozenset[str]]:
    """The actions of each GitHub event that has a model per action (``framework.events``).

    >>> "opened" in modelled_actions()["pull_request"], "push" in modelled_actions()
    (True, False)
    """
    from framework.events import EVENT_MODELS  # the models register themselves on import

    actions: dict[str, set[str]] = {}
    for key in EVENT_MODELS:
        name, _, action = key.partition(".")
        if action:
            actions.setdefault(name, set()).add(action)
    return {name: frozenset(found) for name, found in actions.items()}


def check_event_key(key: str, known: frozenset[str]) -> str:
    """Return ``key`` (``"issues"`` or ``"issues.opened"``) or raise ValueError explaining it.

    For events whose actions are modelled, an action that is not one of them but close to
    one (``pull_request.open``) is taken for a typo; an action unlike any (one GitHub added
    since) is allowed, as is any action of an event without such models.

    >>> check_event_key("pull_request.open", frozenset({"pull_request"}))
    Traceback (most recent call last):
    ...
    ValueError: 'open' is not an action of 'pull_request'; did you mean 'pull_request.opened'? ...
    """
    name, dot, action = key.partition(".")
    if not name or (dot and not action) or "." in action:
        raise ValueError(f"{key!r} is not an event name: use 'event' or 'event.action'")
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0] + (dot + action)!r}?" if close else ""
        raise ValueError(f"{name!r} is not a webhook event of any platform{hint}")
    actions = modelled_actions().get(name) if action else None
    if actions is not None and action not in actions:
        close = difflib.get_close_matches(action, actions, n=1, cutoff=0.75)
        if close:
            raise ValueError(
                f"{action!r} is not an action of {name!r}; did you mean "
                f"{name + '.' + close[0]!r}? (If GitHub added {action!r} since, register "
                f"{name!r} and check ctx.action.)"
            )
    return key


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered handler function and how to call it."""

    fn: Callable[..., Any]
    is_async: bool
    key: str = ""
    """The handler's name in the journal (:func:`handler_key`), the same in every process."""

    @classmethod
    def of(cls, fn: Callable[..., Any], key: str = "") -> Handler:
        """Wrap ``fn``, noting whether it is a coroutine function (else it runs in a thread)."""
        if not callable(fn):
            raise TypeError(f"a handler must be callable, not {type(fn).__name__}")
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        return cls(fn, is_async, key or handler_key(fn))

    @property
    def name(self) -> str:
        """The function's qualified name, for logs."""
        return str(getattr(self.fn, "__qualname__", repr(self.fn)))


def handler_key(fn: Callable[..., Any], equals_before: int = 0) -> str:
    """A handler's name, stable across processes and restarts: its module and qualified name,
    and, for the second and later of equal names in one bot, its place among them.

    The journal records which handlers of a delivery finished under this name, so that a
    retry reruns only the others.

    >>> def label(ctx): ...
    >>> handler_key(label), handler_key(label, equals_before=1)
    ('framework.dispatch.routing:label', 'framework.dispatch.routing:label#2')
    """
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    base = f"{module}:{name}"
    return base if equals_before == 0 else f"{base}#{equals_before + 1}"


class Router:
    """Handlers by the key they were registered under."""

    def __init__(self, known_events: frozenset[str] | None = None) -> None:
        self._known = known_events
        self._by_key: dict[str, list[tuple[Handler, str | None]]] = {}
        self._matches: dict[tuple[str, str | None, str], tuple[Handler, ...]] = {}
        self._keys: dict[int, str] = {}  # by id(fn): a function added twice keeps its key
        self.error_handlers: list[Handler] = []

    def add(
        self, keys: str | Iterable[str], fn: Callable[..., Any], *, platform: str | None = None
    ) -> None:
        """Register ``fn`` for one key or several (``"issues"``, ``"issues.opened"``, ``"*"``),
        on every platform, or on ``platform`` only."""
        key_list = [keys] if isinstance(keys, str) else list(keys)
        if not key_list:
            raise ValueError("name at least one event")
        for key in key_list:
            if key != ANY and self._known is not None:
                check_event_key(key, self._known)
        handler = Handler.of(fn, self._key_of(fn))
        for key in key_list:
            self._by_key.setdefault(key, []).append((handler, platform))
        self._matches.clear()

    def _key_of(self, fn: Callable[..., Any]) -> str:
        key = self._keys.get(id(fn))
        if key is None:
            base = handler_key(fn)
            equals = sum(1 for k in self._keys.values() if k.partition("#")[0] == base)
            key = self._keys[id(fn)] = handler_key(fn, equals)
        return key

    def match(self, name: str, action: str | None, platform: str = "github") -> tuple[Handler, ...]:
        """Handlers for this event from ``platform``, each once, in registration order within
        each key."""
        cache_key = (name, action, platform)
        found = self._matches.get(cache_key)
        if found is None:
            keys = [name, f"{name}.{action}", ANY] if action else [name, ANY]
            unique: dict[int, Handler] = {}
            for key in keys:
                for handler, only in self._by_key.get(key, ()):
                    if only is None or only == platform:
                        unique.setdefault(id(handler.fn), handler)
            found = self._matches[cache_key] = tuple(unique.values())
        return found

    @property
    def keys(self) -> list[str]:
        """Every key some handler is registered under."""
        return sorted(self._by_key)
