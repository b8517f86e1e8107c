"""Rebuild the bytes GitHub signed from a payload a tunnel re-parsed (pure functions, no I/O).

smee.io parses each delivery's JSON and hands the object on, so the bytes GitHub signed are
gone; what is left is a value. GitHub sends compact JSON in JavaScript's ``JSON.stringify``
form with upper-case hex in its ``\\u`` escapes (``\\u001B``), and non-ASCII text as UTF-8.
:func:`serialize` writes a value in such a :class:`JsonForm`; :func:`rebuild` tries the
plausible forms against ``X-Hub-Signature-256`` and returns the bytes that match.

>>> serialize({"title": "Fix \\x1b[0m in </code>"}, GITHUB)
b'{"title":"Fix \\\\u001B[0m in </code>"}'
>>> serialize({"title": "Fix \\x1b[0m in </code>"}, JsonForm(escape_slash=True, upper_hex=False))
b'{"title":"Fix \\\\u001b[0m in <\\\\/code>"}'

What cannot come back: integers beyond 2**53 (smee.io's JavaScript rounded them), a ``1.0``
GitHub sent (it became ``1``), integer-like keys out of order (JavaScript moved them first).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from framework.errors import SignatureMismatch
from framework.webhooks.signature import SignatureVerifier

__all__ = [
    "GITHUB",
    "JAVASCRIPT",
    "JsonForm",
    "Rebuilt",
    "forms_to_try",
    "js_number",
    "rebuild",
    "serialize",
]


@dataclass(frozen=True, slots=True)
class JsonForm:
    """How a compact JSON serializer writes strings. The default is GitHub's form."""

    upper_hex: bool = True
    """``\\u001B`` (GitHub) rather than ``\\u001b`` (JavaScript, Python)."""
    escape_slash: bool = False
    """``/`` as ``\\/`` (PHP, some Ruby and Java serializers)."""
    escape_html: bool = False
    """``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u`` escapes (Rails' HTML-safe JSON)."""
    ascii_only: bool = False
    """Every non-ASCII character as a ``\\u`` escape (surrogate pairs beyond the BMP)."""

    @property
    def name(self) -> str:
        """``github``, ``javascript``, or GitHub's form with the differences named.

        >>> JsonForm(escape_slash=True).name, JAVASCRIPT.name
        ('github+escape_slash', 'javascript')
        """
        if self == JAVASCRIPT:
            return "javascript"
        changes = [f.name for f in fields(self) if getattr(self, f.name) != getattr(GITHUB, f.name)]
        return "+".join(["github", *("lower_hex" if c == "upper_hex" else c for c in changes)])


GITHUB = JsonForm()
JAVASCRIPT = JsonForm(upper_hex=False)

_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML = re.compile("[<>&\u2028\u2029]")


def js_number(number: float) -> str:
    """A float as JavaScript's ``Number.prototype.toString`` writes it (and so ``JSON.stringify``).

    >>> [js_number(x) for x in (1.0, 1.5, 1e21, 2.0**60, 1e-7, 0.00001, 1e16)]
    ['1', '1.5', '1e+21', '1152921504606847000', '1e-7', '0.00001', '10000000000000000']
    """
    if number != number or number in (float("inf"), float("-inf")):
        return "null"  # JSON.stringify's answer for NaN and the infinities
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    # repr gives the shortest digits that read back as the same float, as JavaScript does.
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction.rstrip("0")).lstrip("0") or "0"
    # n: where the decimal point sits relative to the digits (ECMA-262 Number::toString).
    n = int(exponent or 0) + len(whole) - (len(whole + fraction.rstrip("0")) - len(digits))
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        exp = f"{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
        text = f"{digits[0]}{'.' + digits[1:] if k > 1 else ''}e{exp}"
    return sign + text


def _string(text: str, form: JsonForm) -> str:
    out = json.dumps(text, ensure_ascii=form.ascii_only)
    if not form.ascii_only and _LONE_SURROGATE.search(out):
        out = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", out)
    if form.escape_html:
        out = _HTML.sub(lambda m: f"\\u{ord(m[0]):04x}", out)
    if form.escape_slash:
        out = out.replace("/", "\\/")
    if form.upper_hex and "\\u" in out:
        out = _ESCAPE.sub(lambda m: "\\u" + m[1][1:].upper() if m[1][0] == "u" else m[0], out)
    return out


def _write(value: Any, form: JsonForm, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_string(value, form))
    elif value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(js_number(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_string(str(key), form))
            out.append(":")
            _write(item, form, out)
        out.append("}")
    elif isinstance(value, Sequence):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, form, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def serialize(value: Any, form: JsonForm = GITHUB) -> bytes:
    """``value`` as compact JSON in ``form``, UTF-8 encoded.

    >>> serialize({"n": 1.0, "e": "é😀", "u": "a/b"}, JsonForm(ascii_only=True))
    b'{"n":1,"e":"\\\\u00E9\\\\uD83D\\\\uDE00","u":"a/b"}'
    """
    out: list[str] = []
    _write(value, form, out)
    return "".join(out).encode()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def forms_to_try(value: Any) -> list[JsonForm]:
    """The forms worth trying for ``value``, most likely first (GitHub's own form leads).

    Only the choices that change the bytes of this value count: a payload without a ``/`` is
    not tried with ``\\/``. At most 16 forms.

    >>> [f.name for f in forms_to_try({"a": "plain"})]
    ['github']
    >>> [f.name for f in forms_to_try({"a": "x/y"})]
    ['github', 'github+escape_slash']
    """
    text = "".join(_strings(value))
    slash = "/" in text
    html = _HTML.search(text) is not None
    non_ascii = not text.isascii()
    escaped = _LONE_SURROGATE.search(text) is not None or any(
        c < " " and c not in "\b\f\n\r\t" for c in text
    )
    choices = [
        (True, False) if escaped or html or non_ascii else (True,),
        (False, True) if slash else (False,),
        (False, True) if html else (False,),
        (False, True) if non_ascii else (False,),
    ]
    forms = [
        form
        for form in (JsonForm(*combination) for combination in itertools.product(*choices))
        # Without a \u escape in the output, the hex digits' case changes nothing.
        if form.upper_hex or escaped or form.escape_html or form.ascii_only
    ]
    return sorted(forms, key=lambda f: sum(getattr(f, x.name) != getattr(GITHUB, x.name)
                                           for x in fields(f)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """The body to forward and what is known of it.

    ``form`` is the form whose bytes match the signature; None when none did, or nothing
    was checked (``checked`` is False: no secret known, or no signature header sent).
    """

    body: bytes
    form: JsonForm | None
    checked: bool


def rebuild(
    value: Any,
    secrets: Sequence[str],
    signature_256: str | None,
    signature_1: str | None = None,
) -> Rebuilt:
    """The bytes GitHub most likely signed for ``value``: the first of :func:`forms_to_try`
    whose signature matches, else GitHub's form (which the bot will refuse, as it should).

    >>> from framework.webhooks.signature import sign
    >>> sent = b'{"body":"a\\\\/b"}'
    >>> rebuilt = rebuild({"body": "a/b"}, ["s3cret"], sign(sent, "s3cret"))
    >>> rebuilt.body == sent, rebuilt.form.name
    (True, 'github+escape_slash')
    """
    usable = [s for s in secrets if s]
    if not usable or not (signature_256 or signature_1):
        return Rebuilt(serialize(value, GITHUB), None, checked=False)
    verifier = SignatureVerifier(usable, allow_sha1=True)
    first: bytes | None = None
    for form in forms_to_try(value):
        body = serialize(value, form)
        first = first if first is not None else body
        try:
            verifier.verify(body, signature_256, signature_1)
        except SignatureMismatch:
            continue
        return Rebuilt(body, form, checked=True)
    return Rebuilt(first if first is not None else serialize(value, GITHUB), None, checked=True)
