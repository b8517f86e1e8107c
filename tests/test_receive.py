"""From (headers, body) to a verified delivery, or a refusal that says why."""

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from framework.errors import InvalidPayload, MissingHeader, SignatureMismatch
from framework.events.parse import decode_payload, decode_routing
from framework.platforms import GITHUB
from framework.webhooks.receiver import RefusalLog
from framework.webhooks.signature import SignatureVerifier, sign

SECRET = "s3cret"
VERIFIER = SignatureVerifier([SECRET])
PAYLOAD = {"action": "opened", "issue": {"number": 1}, "installation": {"id": 42}}


def headers_for(body: bytes, **extra: str) -> dict[str, str]:
    headers = {
        "x-github-event": "issues",
        "x-github-delivery": "d-1",
        "x-hub-signature-256": sign(body, SECRET),
        "content-type": "application/json",
    }
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def test_a_signed_json_delivery_is_read() -> None:
    body = json.dumps(PAYLOAD).encode()
    delivery = GITHUB.read_delivery(headers_for(body), body, VERIFIER)
    assert (delivery.id, delivery.name, delivery.action, delivery.key) == (
        "d-1",
        "issues",
        "opened",
        "issues.opened",
    )
    assert delivery.payload == PAYLOAD
    assert delivery.installation_id == 42


def test_a_form_encoded_delivery_is_read_and_signed_over_the_form_bytes() -> None:
    body = urlencode({"payload": json.dumps(PAYLOAD)}).encode()
    headers = headers_for(body, content_type="application/x-www-form-urlencoded")
    assert GITHUB.read_delivery(headers, body, VERIFIER).payload == PAYLOAD


def test_the_signature_is_checked_before_anything_is_parsed() -> None:
    body = b"not json at all"
    headers = headers_for(body, x_hub_signature_256="sha256=" + "0" * 64)
    del headers["x-github-event"]
    with pytest.raises(SignatureMismatch):
        GITHUB.read_delivery(headers, body, VERIFIER)


def test_a_body_changed_after_signing_is_refused() -> None:
    body = json.dumps(PAYLOAD).encode()
    headers = headers_for(body)
    with pytest.raises(SignatureMismatch):
        GITHUB.read_delivery(headers, body.replace(b"42", b"43"), VERIFIER)


@pytest.mark.parametrize("missing", ["x-github-event", "x-github-delivery"])
def test_missing_required_headers_are_named(missing: str) -> None:
    body = b"{}"
    headers = headers_for(body)
    del headers[missing]
    with pytest.raises(MissingHeader, match=missing.title().replace("Github", "GitHub")):
        GITHUB.read_delivery(headers, body, VERIFIER)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'"text"', "must be a JSON object, not str"),
        (b"", "not valid JSON"),
    ],
)
def test_bodies_that_are_not_json_objects_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        GITHUB.read_delivery(headers_for(body), body, VERIFIER)


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "opened", "installation": {"id": 42, "node_id": "x"}, "n": [1, {"a": null}]}',
        b'{"action": 7, "installation": "nope"}',
        b'{"installation": {"id": true}}',
        b'{"a": 1, "a": 2, "action": "x", "action": "y"}',
        b'  {"a": NaN, "b": 1e999}  ',
        b'{"action": "x", "junk": [1, 2,}',
        b'{"junk": "\xff\xfe"}',
        b'{"junk": "\\ud800"}',
        b'{"a": 1} trailing',
        b"[1, 2]",
        b"null",
        b"",
        '{"action": "été"}'.encode(),
    ],
)
def test_the_receivers_quick_check_agrees_with_a_full_parse(body: bytes) -> None:
    # The receiver validates without building the payload; it must accept and refuse what a
    # full parse does, with the same message, and read the same routing fields.
    try:
        full = decode_payload(body)
    except InvalidPayload as exc:
        with pytest.raises(InvalidPayload) as quick:
            decode_routing(body)
        assert str(quick.value) == str(exc)
        return
    routing = decode_routing(body)
    assert routing == {k: full[k] for k in ("action", "installation") if k in full}


def test_a_form_without_payload_is_refused() -> None:
    body = b"other=1"
    headers = headers_for(body, content_type="application/x-www-form-urlencoded")
    with pytest.raises(InvalidPayload, match="no 'payload' field"):
        GITHUB.read_delivery(headers, body, VERIFIER)


def test_an_unknown_content_type_is_refused() -> None:
    body = b"{}"
    with pytest.raises(InvalidPayload, match="unsupported content type 'text/plain'"):
        GITHUB.read_delivery(headers_for(body, content_type="text/plain"), body, VERIFIER)


def test_without_a_verifier_unsigned_deliveries_pass() -> None:
    body = b'{"zen": "hi"}'
    headers = headers_for(body)
    del headers["x-hub-signature-256"]
    assert GITHUB.read_delivery(headers, body, None).payload == {"zen": "hi"}


def test_a_delivery_keeps_the_bytes_not_the_parsed_dict() -> None:
    # A backlog of parsed payloads slows every full garbage collection; bytes cost nothing.
    body = json.dumps(PAYLOAD).encode()
    delivery = GITHUB.read_delivery(headers_for(body), body, VERIFIER)
    assert delivery.body == body
    assert delivery._payload is None
    assert (delivery.action, delivery.installation_id) == ("opened", 42)


def test_the_typed_event_is_built_from_the_bytes_and_raw_is_still_reachable() -> None:
    real = json.loads((Path(__file__).parent / "fixtures/payloads/issues.opened.json").read_text())
    real["installation"] = {"id": 7}
    body = json.dumps(real).encode()
    delivery = GITHUB.read_delivery(headers_for(body), body, VERIFIER)
    event = delivery.event
    assert type(event).__name__ == "IssuesOpened"
    assert (event.delivery_id, event.name, event.installation_id) == ("d-1", "issues", 7)
    assert event.raw == real
    assert delivery.event is event


def test_a_payload_that_does_not_fit_its_model_fails_when_used_naming_the_field() -> None:
    body = json.dumps({"action": "opened", "issue": {"id": 1, "title": "no number"}}).encode()
    delivery = GITHUB.read_delivery(headers_for(body), body, VERIFIER)  # valid JSON: accepted
    event = delivery.event
    assert event.action == "opened"  # a field that fits is read as usual
    with pytest.raises(
        InvalidPayload,
        match=r"^issues\.opened payload does not fit IssuesOpened: issue\.number: Field required$",
    ):
        event.issue  # noqa: B018


def test_refusals_are_logged_at_most_once_a_second_per_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = RefusalLog(clock=lambda: now[0])
    for _ in range(50):
        log.refused(SignatureMismatch("the signature does not match"), "d")
    log.refused(InvalidPayload("not JSON"), "d")  # another status: its own line
    now[0] += 1.5
    log.refused(SignatureMismatch("the signature does not match"), "d")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused a delivery (401): the signature does not match",
        "refused a delivery (400): not JSON",
        "refused a delivery (401): the signature does not match"
        " (and 49 more with this status since the last such line)",
    ]
