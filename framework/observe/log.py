"""Logging: a pretty format for terminals, JSON lines for log collectors, and bound fields.

``ctx.log`` is a :class:`BoundLogger` carrying the delivery id, event, action and installation,
so every line a handler logs can be traced back to the delivery that caused it.

>>> log = bind(logging.getLogger("bot"), delivery="72d3162e", event="issues.opened")
>>> log.info("labelled")  # doctest: +SKIP
12:00:00 INFO  bot: labelled  delivery=72d3162e event=issues.opened
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

FIELDS = "bound_fields"


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
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``msg``, the bound fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in _fields(record).items() if v is not None})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", fmt: str = "pretty") -> None:
    """Send the framework's and the bot's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else PrettyFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; that is noise for a bot, and a hot-path cost.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
