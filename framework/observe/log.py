"""Logging: a pretty format for terminals, JSON lines for log collectors, bound fields, redaction.

``ctx.log`` is a :class:`BoundLogger` carrying the delivery id, event, action, installation and
repository, so every line a handler logs can be traced back to the delivery that caused it.

>>> log = bind(logging.getLogger("bot"), delivery="72d3162e", event="issues")
>>> log.info("labelled")  # doctest: +SKIP
12:00:00 INFO  bot: labelled  delivery=72d3162e event=issues

Both formats pass every line through :func:`redact` as the last step (message, fields,
exception text and reprs alike), so a token, secret or key that reaches a log call anyway,
say inside an exception message, never reaches the output:

>>> redact("GET /x?access_token=abc123&page=2 Authorization: token ghs_16C7e42F292c69")
'GET /x?access_token=[redacted]&page=2 Authorization: [redacted]'
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

from framework.common.log_levels import level_name

FIELDS = "bound_fields"

_JSON_NAMES = {"delivery": "delivery_id"}
"""Bound fields whose JSON key says more than their short name does."""

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A PEM private key, whole (or to the end of the text, if it was cut short).
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*KEY-----|\Z)", re.S),
        "[redacted private key]",
    ),
    # An Authorization header in any spelling: "Authorization: token x", "'authorization': 'x'".
    (
        re.compile(
            r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|token|basic)\s+)?[^\s'\",}]+"
        ),
        r"\1[redacted]",
    ),
    # Credentials in a query string or a form body.
    (
        re.compile(
            r"(?i)((?:^|[?&\s])(?:access_token|refresh_token|client_secret|private_token)=)[^&\s'\"]+"
        ),
        r"\1[redacted]",
    ),
    # GitHub's tokens by prefix (installation, user, OAuth, refresh, PAT) and AtomGit's;
    # no length is assumed beyond a few characters: formats change.
    (re.compile(r"\b(?:gh[opsur]|github_pat|at[su])_[A-Za-z0-9_]{6,}"), "[redacted token]"),
    # A JSON Web Token (the app's own, say): three base64url parts, the first a JSON header.
    (re.compile(r"\beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]+"), "[redacted jwt]"),
]


class Secrets:
    """Known secret values (webhook secrets, the private key, minted tokens) to redact exactly.

    Patterns catch what looks like a credential; this catches what *is* one whatever it looks
    like. Bounded: the oldest of many minted tokens are forgotten (they expired long ago).
    """

    MIN_LENGTH = 6  # shorter values would redact ordinary words

    def __init__(self, limit: int = 256) -> None:
        self._lasting: dict[str, None] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._pattern: re.Pattern[str] | None = None

    @property
    def _values(self) -> list[str]:
        return [*self._lasting, *self._recent]

    def add(self, value: str | None, *, expires: bool = False) -> None:
        """Redact ``value`` (and each of its lines, for a multi-line key) from now on.

        ``expires``: a token that stops working within hours; only the newest ``limit`` of
        those are kept (settings' secrets always are).
        """
        if not value:
            return
        store = self._recent if expires else self._lasting
        for part in (value, *value.splitlines()):
            part = part.strip()
            if part.startswith("-----"):  # a PEM armor line: public text, the pattern's anchor
                continue
            if len(part) >= self.MIN_LENGTH and part not in store:
                store[part] = None
                self._pattern = None
        while len(self._recent) > self._limit:
            self._recent.popitem(last=False)

    def clear(self) -> None:
        """Forget every value (tests)."""
        self._lasting.clear()
        self._recent.clear()
        self._pattern = None

    def replace(self, text: str) -> str:
        """``text`` with every known value replaced (the longest first, where they overlap)."""
        if self._pattern is None:
            if not self._lasting and not self._recent:
                return text
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern.sub("[redacted]", text)


SECRETS = Secrets()
"""The process's known secrets; the App adds its settings' and each token it mints."""


def redact(text: str) -> str:
    """``text`` without credentials: known secrets, keys, tokens, Authorization values.

    >>> redact("-----BEGIN RSA PRIVATE KEY-----\\nMIIEow...\\n-----END RSA PRIVATE KEY-----")
    '[redacted private key]'
    >>> redact("{'Authorization': 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.c2ln'}")
    "{'Authorization': '[redacted]'}"
    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return SECRETS.replace(text)


class BoundLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter whose fields are merged into every record (not replaced by ``extra``)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        fields = dict(self.extra or {})
        extra = kwargs.get("extra") or {}
        fields.update(extra.get(FIELDS, {}))
        fields.update({k: v for k, v in extra.items() if k != FIELDS})
        kwargs["extra"] = {FIELDS: fields}
        return msg, kwargs

    def bind(self, **fields: Any) -> BoundLogger:
        """A new logger with more fields bound."""
        return BoundLogger(self.logger, {**(self.extra or {}), **fields})


def bind(logger: logging.Logger, **fields: Any) -> BoundLogger:
    """``logger`` with ``fields`` attached to every line it logs."""
    return BoundLogger(logger, fields)


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, FIELDS, None)
    return fields if isinstance(fields, Mapping) else {}


_PLAIN = re.compile(r"[\w.,:/@+#-]+")


def field_value(value: Any) -> str:
    """A field's value as the pretty format shows it: quoted (JSON-escaped) unless it is a
    plain token, so a value taken from a request cannot forge fields or lines of its own.

    >>> field_value("72d3162e"), field_value(42)
    ('72d3162e', '42')
    >>> field_value("x event=forged")
    '"x event=forged"'
    """
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class PrettyFormatter(logging.Formatter):
    """``12:00:00 INFO  name: message  key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        time = self.formatTime(record, "%H:%M:%S")
        line = f"{time} {record.levelname:<5} {record.name}: {record.getMessage()}"
        fields = _fields(record)
        if fields:
            line += "  " + " ".join(
                f"{k}={field_value(v)}" for k, v in fields.items() if v is not None
            )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return redact(line)


class JSONFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``message``, ``logger``,
    then the bound fields (``delivery_id``, ``event``, ``action``, ``installation``,
    ``repository``, ``duration_ms``, ``outcome``, ...) and ``error`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": redact(record.getMessage()),
            "logger": record.name,
        }
        for key, value in _fields(record).items():
            if value is not None:
                plain = value if isinstance(value, int | float | bool) else redact(str(value))
                entry[_JSON_NAMES.get(key, key)] = plain
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["error"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False)


TRACE = 5
"""Below ``DEBUG``: Probot's ``trace`` (and uvicorn's, which logs each ASGI message at it)."""
logging.addLevelName(TRACE, "TRACE")


def configure_logging(level: str = "info", fmt: str = "pretty") -> None:
    """Send the framework's, the bot's and uvicorn's logs to stderr in the chosen format
    (``level`` in either spelling :func:`level_name` reads)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else PrettyFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name(level).upper())
    # uvicorn's loggers write through the root's handler (run() gives uvicorn no config).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # httpx logs every request at INFO; that is noise for a bot, and a hot-path cost.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
