"""Docstrings as ``--help`` text: the reST markup a terminal would show raw, removed.

>>> plain("Run handlers, like ``probot receive``; see :func:`sync_once`.")
'Run handlers, like probot receive; see sync_once.'
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain(text: str | None) -> str:
    """``text`` without reST literals (````x````) and roles (``:func:`x```)."""
    return _ROLE.sub(r"\1", text or "").replace("``", "")
