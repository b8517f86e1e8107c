"""Log level names as ``LOG_LEVEL`` may spell them: Probot's or Python's.

A pure mapping, read by the settings (to refuse a level neither spells) and by the logging set-up.
"""

from __future__ import annotations

_LEVELS = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "fatal": "critical",
    "critical": "critical",
}
LEVEL_NAMES = ("trace", "debug", "info", "warning", "error", "critical")
"""The level names :func:`level_name` gives: Python's, and uvicorn's ``trace``."""


def level_name(text: str) -> str:
    """The log level ``LOG_LEVEL`` names, in Probot's spelling (``trace``, ``debug``,
    ``info``, ``warn``, ``error``, ``fatal``) or Python's (``warning``, ``critical``), as
    the name Python and uvicorn know; ValueError listing both spellings if it is neither.

    >>> level_name("warn"), level_name("FATAL"), level_name(" Info ")
    ('warning', 'critical', 'info')
    """
    found = _LEVELS.get(text.strip().lower())
    if found is None:
        raise ValueError(
            f"{text!r} is not a log level: use trace, debug, info, warn, error or fatal "
            "(or warning, critical)"
        )
    return found
