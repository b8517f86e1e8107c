"""Prometheus metrics, with the official ``prometheus-client``; served at ``GET /metrics``.

======================================================== ===========================================
``framework_deliveries_received_total{platform,event,status}`` deliveries answered
``framework_deliveries_handled_total{platform,event,outcome}`` ``done``, ``retried``, ``dead``
``framework_handler_duration_seconds{platform,event}``  a delivery's handlers, start to end
``framework_journal_deliveries{status}``               ``pending``, ``running``, ``dead`` now
``framework_journal_oldest_pending_age_seconds``       how long the oldest pending one has waited
``framework_installation_token_mints_total``           access tokens minted
``framework_installation_token_cache_hits_total{cache}`` tokens reused: ``process`` or ``shared``
``framework_api_requests_total{method,route,status}``  REST calls by route template
``framework_api_request_duration_seconds{method,route}`` their latency
``framework_api_rate_limit_remaining``                 ``x-ratelimit-remaining`` as observed
``process_*``                                          the receiver's CPU, memory, open files
======================================================== ===========================================

Label values are bounded: an event name that is not a GitHub event is ``other``, an API path
becomes its route template (:func:`route_template`), nothing from a payload becomes a label,
and rate limits are a histogram rather than one series per installation.

Handler processes are separate OS processes: ``python -m framework run`` calls
:func:`use_directory` before any metric exists, and every process then writes its samples to
files there (prometheus-client's multiprocess mode); ``/metrics`` adds them up. Each replica
serves its own; Prometheus sums them (``sum by (event) (rate(...))``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from prometheus_client.registry import Collector

    from framework.journal import Counts

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads it once, at import: :func:`use_directory` sets it before that."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RATE_LIMIT_BUCKETS = (0, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# The literal words of REST paths (GitHub's, and the Gitee-style ``/api/v5`` of AtomGit): any
# other segment is a value (a name, a number, a sha, a file path) and becomes a placeholder.
_ROUTE_WORDS = frozenset(
    """api v3 v5 graphql app apps hook deliveries attempts installations installation
    access_tokens repositories repos orgs users user teams members memberships collaborators
    permission issues comments labels assignees milestones events timeline reactions lock
    pulls pull files commits merge merges requested_reviewers reviews dismissals
    statuses status check-runs check-suites annotations rerequest git refs ref trees blobs tags
    contents readme branches heads protection compare releases assets latest hooks pings tests
    deployments environments actions runs jobs workflows artifacts secrets variables search
    code topics languages forks stargazers subscribers notifications rate_limit meta zen
    projects columns cards discussions gists keys emails followers following
    installation-token app-manifests conversions marketplace_listing accounts plans
    code-scanning alerts dependabot secret-scanning pages traffic views clones
    properties values rulesets rules""".split()
)
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NAMED_AFTER = {"repos": ("{owner}", "{repo}"), "orgs": ("{org}",), "users": ("{username}",)}
_MAX_SEGMENTS = 8


def route_template(path: str) -> str:
    """The route a request went to, with its values replaced: a bounded metric label.

    >>> route_template("/repos/octo-org/hello/issues/7/labels")
    '/repos/{owner}/{repo}/issues/{number}/labels'
    >>> route_template("https://api.github.com/repos/o/r/commits/" + "a" * 40 + "/check-runs?x=1")
    '/repos/{owner}/{repo}/commits/{sha}/check-runs'
    >>> route_template("/repos/o/r/contents/docs/a/b/c/d/e.md")
    '/repos/{owner}/{repo}/contents/{path}'
    >>> route_template("/repos/o/r/labels/needs%20response")
    '/repos/{owner}/{repo}/labels/{name}'
    """
    path = path.partition("?")[0].partition("#")[0]
    if "://" in path:
        path = "/" + path.partition("://")[2].partition("/")[2]
    out: list[str] = []
    named: tuple[str, ...] = ()
    for segment in path.split("/"):
        if not segment:
            continue
        if len(out) >= _MAX_SEGMENTS:
            out.append("...")
            break
        if named:
            out.append(named[0])
            named = named[1:]
            continue
        if out and out[-1] == "contents":  # a file's path: any depth, one label
            out.append("{path}")
            break
        if segment in _ROUTE_WORDS:
            out.append(segment)
            named = _NAMED_AFTER.get(segment, ())
            continue
        if len(segment) in (40, 64) and _SHA.fullmatch(segment):
            out.append("{sha}")
        else:
            out.append("{number}" if segment.isdecimal() else "{name}")
    return "/" + "/".join(out)


KNOWN_EVENTS: set[str] = set()
"""The event names a label may carry; the App adds every platform's (:func:`know_events`)."""


def know_events(names: Iterable[str]) -> None:
    """Let these event names be labels (the App gives its platforms' events)."""
    KNOWN_EVENTS.update(names)


def event_label(name: str | None) -> str:
    """An event name as a label: a known event as it is, anything else ``other``, so a label's
    values stay bounded whatever a sender writes.

    >>> know_events(["issues"])
    >>> event_label("issues"), event_label("x-not-an-event"), event_label(None)
    ('issues', 'other', 'none')
    """
    if not name:
        return "none"
    return name if name in KNOWN_EVENTS else "other"


def use_directory(directory: str | Path | None) -> Path:
    """Write this process's and its children's metrics to files in ``directory``, emptied now.

    Call before anything creates a metric (``run`` does, before the bot loads); the handler
    processes inherit the setting. ``None`` keeps ``PROMETHEUS_MULTIPROC_DIR`` if set, else
    uses a fresh temporary directory.
    """
    import tempfile

    chosen = directory or os.environ.get(MULTIPROCESS_ENV)
    # Not removed at exit: a handler process may outlive a receiver stopped at once.
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="framework-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # a previous run's samples, from processes long gone
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(path)
    return path


def multiprocess_directory() -> str | None:
    """The directory metrics are shared through, or None in single-process mode."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class Metrics:
    """The framework's metrics, created on first use (after :func:`use_directory`)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.received = Counter(
            "framework_deliveries_received",
            "Webhook deliveries answered, by platform, event and HTTP status.",
            ["platform", "event", "status"],
        )
        self.handled = Counter(
            "framework_deliveries_handled",
            "Deliveries whose handlers ran, by platform, event and outcome (done, retried, dead).",
            ["platform", "event", "outcome"],
        )
        self.handler_duration = Histogram(
            "framework_handler_duration_seconds",
            "How long a delivery's handlers took, by platform and event.",
            ["platform", "event"],
            buckets=HANDLER_BUCKETS,
        )
        self.token_mints = Counter(
            "framework_installation_token_mints", "Installation access tokens minted."
        )
        self.token_hits = Counter(
            "framework_installation_token_cache_hits",
            "Installation access tokens reused, by cache (process, shared).",
            ["cache"],
        )
        self.api_requests = Counter(
            "framework_api_requests",
            "REST API requests, by method, route template and status ('error': no answer).",
            ["method", "route", "status"],
        )
        self.api_duration = Histogram(
            "framework_api_request_duration_seconds",
            "REST API request latency, by method and route template.",
            ["method", "route"],
            buckets=API_BUCKETS,
        )
        self.rate_limit_remaining = Histogram(
            "framework_api_rate_limit_remaining",
            "x-ratelimit-remaining as each API response reported it.",
            buckets=RATE_LIMIT_BUCKETS,
        )
        # Labelled children, kept: .labels() takes a lock and hashes its arguments each time.
        self._children: dict[tuple[Any, ...], Any] = {}
        self.api_children: dict[tuple[str, str, int | None], tuple[Any, Any]] = {}
        """:func:`api_request`'s two children by (method, route, status): one lookup a request."""

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """The process's metrics."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


# Hooks: one call from each place that knows something happened. ------------------------


def delivery_received(platform: str, event: str | None, status: int) -> None:
    """A platform's receiver answered a delivery with ``status``."""
    m = metrics()
    m.child(m.received, platform, event_label(event), str(status)).inc()


def delivery_handled(platform: str, event: str, outcome: str, seconds: float) -> None:
    """A delivery's handlers ran: ``done``, ``retried`` or ``dead``, in ``seconds``."""
    m = metrics()
    label = event_label(event)
    m.child(m.handled, platform, label, outcome).inc()
    m.child(m.handler_duration, platform, label).observe(seconds)


def token_minted() -> None:
    """An installation access token was minted."""
    metrics().token_mints.inc()


def token_reused(cache: str) -> None:
    """A cached installation token was used (``process`` or ``shared`` cache)."""
    m = metrics()
    m.child(m.token_hits, cache).inc()


def api_request(
    method: str, path: str, status: int | None, seconds: float, remaining: int | None
) -> None:
    """One REST request went out: ``status`` None when no answer came, ``remaining`` None
    when it did not report its rate limit."""
    m = metrics()
    method = method if method in _METHODS else "OTHER"
    key = (method, route_template(path), status)
    children = m.api_children.get(key)
    if children is None:  # the request counter and the latency histogram, labelled once
        route, status_label = key[1], "error" if status is None else str(status)
        children = m.api_children[key] = (
            m.child(m.api_requests, method, route, status_label),
            m.child(m.api_duration, method, route),
        )
    children[0].inc()
    children[1].observe(seconds)
    if remaining is not None:
        m.rate_limit_remaining.observe(remaining)


# Exposition ---------------------------------------------------------------------------------


class _JournalCollector:
    def __init__(self, counts: Counts, now: float) -> None:
        self.counts = counts
        self.now = now

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "framework_journal_deliveries",
            "Deliveries in the journal, by status (pending, running, dead).",
            labels=["status"],
        )
        for status in ("pending", "running", "dead"):
            depth.add_metric([status], getattr(self.counts, status))
        yield depth
        oldest = self.counts.oldest_pending_at
        yield GaugeMetricFamily(
            "framework_journal_oldest_pending_age_seconds",
            "How long the oldest pending delivery has waited (0: none pending).",
            value=max(0.0, self.now - oldest) if oldest is not None else 0.0,
        )


class _ProcessFiles:
    """Every process's samples, from the files in the metrics directory.

    prometheus-client's own collector reads every file it finds, and fails the whole scrape
    on one that a process is creating at that moment (empty for an instant before its header
    is written); such a file holds no sample yet, so it is passed over.
    """

    HEADER_BYTES = 8

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = []
        for path in self.directory.glob("*.db"):
            try:
                if path.stat().st_size >= self.HEADER_BYTES:
                    files.append(str(path))
            except FileNotFoundError:
                continue
        merged: Iterable[Any] = MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged


def render(counts: Counts | None, now: Callable[[], float] | None = None) -> bytes:
    """Every metric in Prometheus's text format: this process's (or, in multiprocess mode,
    every process's), the receiver's process metrics, and the journal's ``counts``."""
    import time

    from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, generate_latest

    metrics()  # the framework's metrics exist (at zero) before the first event
    registry: Any = REGISTRY
    directory = multiprocess_directory()
    if directory:
        registry = CollectorRegistry()
        registry.register(_ProcessFiles(directory))
        ProcessCollector(registry=registry)
    text = generate_latest(registry)
    if counts is not None:
        extra = CollectorRegistry()
        collector: Collector = _JournalCollector(counts, (now or time.time)())
        extra.register(collector)
        text += generate_latest(extra)
    return text
