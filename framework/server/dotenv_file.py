"""Writing settings into a ``.env`` file without clobbering what is already there.

:func:`merge_env` is a pure function over the file's text: the keys it is given get their new
values (where they were, or appended), and every other line, comments and blank lines
included, stays as it was. :func:`write_env` is the thin writer around it: the file ends up
with mode 600 (it holds a private key), is replaced atomically, and a file its owner made
read-only is refused with a message saying what to do.

>>> print(merge_env("# mine\\nPORT=3000\\nAPP_ID=1\\n", {"APP_ID": "42", "WEBHOOK_SECRET": "s"}))
# mine
PORT=3000
APP_ID=42
WEBHOOK_SECRET=s
<BLANKLINE>
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from framework.errors import ConfigurationError

__all__ = ["EnvFileError", "format_value", "merge_env", "write_env"]

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_BARE = re.compile(r"^[A-Za-z0-9_./:@+,=-]*$")


class EnvFileError(ConfigurationError):
    """The ``.env`` file cannot be written; the message says which file and what to do."""


def format_value(value: str) -> str:
    """``value`` as a ``.env`` right-hand side that python-dotenv reads back unchanged.

    Plain values stay bare; others are single-quoted; a value with a newline (a PEM key)
    becomes one double-quoted line with ``\\n`` escapes, so the file stays one setting per
    line. python-dotenv expands ``${NAME}`` however a value is quoted, so such a value is
    refused rather than written as something else.

    >>> format_value("42"), format_value("a b$c"), format_value("-----BEGIN\\nKEY\\n")
    ('42', "'a b$c'", '"-----BEGIN\\\\nKEY\\\\n"')
    """
    if "${" in value:
        raise ValueError("a value holding '${' cannot be written: python-dotenv would expand it")
    if _BARE.match(value):
        return value
    if "\n" not in value and "\r" not in value:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _spans(first_value: str) -> bool:
    """Whether an assignment whose value starts as ``first_value`` continues on later lines
    (a quoted value whose closing quote is not on this line, as a pasted PEM has)."""
    text = first_value.strip()
    return text[:1] in ("'", '"') and not _closes(text[1:], text[0])


def _closes(line: str, quote: str) -> bool:
    """Whether ``line`` holds an unescaped ``quote`` (the end of a quoted value)."""
    escaped = False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == quote:
            return True
    return False


def merge_env(text: str, updates: Mapping[str, str]) -> str:
    """The ``.env`` text with ``updates`` applied: each key's first assignment gets the new
    value, later assignments of it are dropped (the last one would win), missing keys are
    appended; every other line, comments included, is kept as it was.

    Multi-line quoted values (a PEM pasted between double quotes) are replaced whole.

    >>> merge_env('KEY="-----BEGIN\\nabc\\n-----END"\\nB=2', {"KEY": "x"})
    'KEY=x\\nB=2\\n'
    """
    out: list[str] = []
    written: set[str] = set()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        match = _ASSIGNMENT.match(line)
        if match is None or match[1] not in updates:
            out.append(line)
            continue
        key = match[1]
        if _spans(match[2]):  # skip the value's continuation lines
            quote = match[2].strip()[0]
            while i < len(lines) and not _closes(lines[i], quote):
                i += 1
            i += 1
        if key not in written:
            out.append(f"{key}={format_value(updates[key])}")
            written.add(key)
    missing = [key for key in updates if key not in written]
    out.extend(f"{key}={format_value(updates[key])}" for key in missing)
    return "\n".join(out) + "\n"


def write_env(path: Path, updates: Mapping[str, str]) -> None:
    """Merge ``updates`` into the ``.env`` file at ``path`` (created if missing), mode 600.

    The new text replaces the file atomically (a crash leaves the old file or the new one).
    Raises :class:`EnvFileError` if the file is read-only (its owner's write bit is off,
    which is honoured even for root), or cannot be read or written.
    """
    try:
        before = path.stat()
    except FileNotFoundError:
        before = None
    except OSError as exc:
        raise EnvFileError(f"cannot read {path}: {exc.strerror}") from None
    if before is not None and not before.st_mode & stat.S_IWUSR:
        raise EnvFileError(
            f"{path} is read-only: make it writable (chmod 600 {path}) and try again"
        )
    try:
        text = merge_env(path.read_text(encoding="utf-8") if before is not None else "", updates)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    except OSError as exc:
        raise EnvFileError(f"cannot write {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise EnvFileError(f"cannot write {path}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp made it mode 600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise EnvFileError(f"cannot write {path}: {exc.strerror}") from None
