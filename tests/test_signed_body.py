"""Rebuilding the bytes GitHub signed from a payload smee.io re-parsed: pure, table-tested."""

from __future__ import annotations

import json

import pytest

from framework.dev.signed_body import (
    GITHUB,
    JAVASCRIPT,
    JsonForm,
    forms_to_try,
    js_number,
    rebuild,
    serialize,
)
from framework.webhooks.signature import sign

# What node's JSON.stringify printed for each float (node 18, `JSON.stringify(x)`).
JS_NUMBERS = [
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (1.5, "1.5"),
    (-2.25, "-2.25"),
    (0.1, "0.1"),
    (1e21, "1e+21"),
    (1.2e21, "1.2e+21"),
    (1e20, "100000000000000000000"),
    (123456789012345680000.0, "123456789012345680000"),
    (2.0**53, "9007199254740992"),
    (2.0**53 + 1, "9007199254740992"),
    (2.0**60, "1152921504606847000"),
    (1e-7, "1e-7"),
    (1.5e-7, "1.5e-7"),
    (0.000001, "0.000001"),
    (0.00001, "0.00001"),
    (1e16, "10000000000000000"),
    (1e300, "1e+300"),
    (5e-324, "5e-324"),
    (-1e-7, "-1e-7"),
    (0.1 + 0.2, "0.30000000000000004"),
    (100.0, "100"),
    (float("nan"), "null"),
]


@pytest.mark.parametrize(("number", "expected"), JS_NUMBERS)
def test_floats_are_written_as_javascript_writes_them(number: float, expected: str) -> None:
    assert js_number(number) == expected


def test_the_javascript_form_is_byte_for_byte_json_stringify() -> None:
    value = {
        "s": 'a\x1b\x7f\u2028</x>&é😀\ud800\n\t\b\f\r"\\ \\u0041',
        "n": [1, 1.5, -0.5, 1e21, 1e-7, 123456789],
        "k": {"10": 2, "b": 1},
        "t": True,
        "z": None,
    }
    # node: Buffer.from(JSON.stringify(value)).toString("hex")
    node = bytes.fromhex(
        "7b2273223a22615c75303031627fe280a83c2f783e26c3a9f09f98805c75643830305c6e5c745c625c665c"
        "725c225c5c205c5c7530303431222c226e223a5b312c312e352c2d302e352c31652b32312c31652d372c31"
        "32333435363738395d2c226b223a7b223130223a322c2262223a317d2c2274223a747275652c227a223a6e"
        "756c6c7d"
    )
    assert serialize(value, JAVASCRIPT) == node


STRINGS = [
    # (text, form, JSON it must become)
    ("plain", GITHUB, '"plain"'),
    ("\x1b[0m", GITHUB, '"\\u001B[0m"'),
    ("\x1b[0m", JAVASCRIPT, '"\\u001b[0m"'),
    ("\x00\x1f", GITHUB, '"\\u0000\\u001F"'),
    ("\n\r\t\b\f", GITHUB, '"\\n\\r\\t\\b\\f"'),
    ('"\\', GITHUB, '"\\"\\\\"'),
    ("\\u00e9 stays text", GITHUB, '"\\\\u00e9 stays text"'),
    ("\\\x1b", GITHUB, '"\\\\\\u001B"'),
    ("a/b", GITHUB, '"a/b"'),
    ("a/b", JsonForm(escape_slash=True), '"a\\/b"'),
    ("<a & b>", GITHUB, '"<a & b>"'),
    ("<a & b>", JsonForm(escape_html=True), '"\\u003Ca \\u0026 b\\u003E"'),
    ("<a & b>", JsonForm(escape_html=True, upper_hex=False), '"\\u003ca \\u0026 b\\u003e"'),
    ("\u2028", JsonForm(escape_html=True), '"\\u2028"'),
    ("é😀", GITHUB, '"é😀"'),
    ("é😀", JsonForm(ascii_only=True), '"\\u00E9\\uD83D\\uDE00"'),
    ("é😀", JsonForm(ascii_only=True, upper_hex=False), '"\\u00e9\\ud83d\\ude00"'),
    ("\ud800 lone", GITHUB, '"\\uD800 lone"'),
    ("\ud800 lone", JAVASCRIPT, '"\\ud800 lone"'),
    ("\x7f", GITHUB, '"\x7f"'),
]


@pytest.mark.parametrize(("text", "form", "expected"), STRINGS)
def test_strings_are_escaped_as_the_form_says(text: str, form: JsonForm, expected: str) -> None:
    assert serialize(text, form) == expected.encode("utf-8", "surrogatepass")
    if "\ud800" not in text:
        assert json.loads(serialize(text, form)) == text


def test_compact_output_keeps_key_order_and_writes_integers_exactly() -> None:
    value = {"z": 1, "a": [2**53 - 1, 10**30, -7], "m": {}, "l": [], "f": False}
    assert (
        serialize(value) == b'{"z":1,"a":[9007199254740991,1000000000000000000000000000000,-7],'
        b'"m":{},"l":[],"f":false}'
    )


FORMS = [
    ({"a": "plain", "n": 1}, ["github"]),
    ({"a": "x/y"}, ["github", "github+escape_slash"]),
    ({"a": "\x1b"}, ["github", "javascript"]),
    ({"a": "é"}, ["github", "github+ascii_only", "github+lower_hex+ascii_only"]),
    ({"a": "<", "b": "/"}, None),
]


@pytest.mark.parametrize(("value", "names"), FORMS)
def test_only_forms_that_change_the_bytes_are_tried(value: object, names: list[str] | None) -> None:
    forms = forms_to_try(value)
    assert forms[0] == GITHUB
    assert len(forms) == len(set(forms))
    if names is not None:
        assert [f.name for f in forms] == names
    else:  # slash and html matter, and the hex case with html: 6 forms, fewest changes first
        assert len(forms) == 6
        changes = [f.name.count("+") + f.name.startswith("javascript") for f in forms]
        assert changes == sorted(changes)


SECRET = "It's a Secret to Everybody"


@pytest.mark.parametrize(
    "sent",
    [
        '{"title":"\\u001B[31mred\\u001B[0m"}',  # GitHub's own form
        '{"title":"\\u001b[31mred\\u001b[0m"}',  # JavaScript's
        '{"url":"https:\\/\\/github.com\\/o\\/r","body":"\\u003Cb\\u003E \\u0026"}',
        '{"body":"caf\\u00e9 \\ud83d\\ude00"}',  # Python's json.dumps default
        '{"body":"café 😀 <b> & /"}',
        '{"id":9007199254740991,"score":0.5}',
    ],
)
def test_the_signed_bytes_are_found_among_the_forms(sent: str) -> None:
    body = sent.encode()
    rebuilt = rebuild(json.loads(body), [SECRET], sign(body, SECRET))
    assert rebuilt.checked
    assert rebuilt.form is not None
    assert rebuilt.body == body


def test_a_legacy_sha1_signature_or_the_previous_secret_is_enough() -> None:
    body = b'{"a":"b/c"}'
    assert rebuild({"a": "b/c"}, ["new", SECRET], None, sign(body, SECRET, "sha1")).body == body


def test_bytes_that_cannot_come_back_are_reported_and_github_form_is_forwarded() -> None:
    body = b'{"id":12345678901234567890}'  # smee.io's JavaScript rounded it
    rebuilt = rebuild({"id": 12345678901234567000}, [SECRET], sign(body, SECRET))
    assert (rebuilt.checked, rebuilt.form) == (True, None)
    assert rebuilt.body == b'{"id":12345678901234567000}'


def test_without_a_secret_or_a_signature_nothing_is_checked() -> None:
    assert rebuild({"a": 1}, [], "sha256=00") == rebuild({"a": 1}, ["s"], None)
    assert rebuild({"a": 1}, [], None).checked is False
