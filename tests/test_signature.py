"""Webhook signatures: GitHub's test vector, rotation, sha1 opt-in, tampering."""

import pytest

from framework.errors import SignatureMismatch
from framework.webhooks.signature import SignatureVerifier, sign

SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_published_test_vector() -> None:
    assert sign(BODY, SECRET) == VECTOR


def test_a_correct_signature_verifies() -> None:
    SignatureVerifier([SECRET]).verify(BODY, VECTOR)


def test_upper_case_hex_is_accepted() -> None:
    SignatureVerifier([SECRET]).verify(BODY, "sha256=" + VECTOR.split("=")[1].upper())


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=nothex", "not of the form"),
        ("sha1=" + "0" * 40, "not of the form"),
        (VECTOR[:-2], "does not match"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureMismatch, match=reason):
        SignatureVerifier([SECRET]).verify(BODY, header)


def test_one_changed_byte_of_body_is_refused() -> None:
    with pytest.raises(SignatureMismatch):
        SignatureVerifier([SECRET]).verify(b"Hello, World?", VECTOR)


def test_during_rotation_both_secrets_verify_and_a_third_does_not() -> None:
    verifier = SignatureVerifier(["new-secret", SECRET])
    verifier.verify(BODY, VECTOR)
    verifier.verify(BODY, sign(BODY, "new-secret"))
    with pytest.raises(SignatureMismatch):
        verifier.verify(BODY, sign(BODY, "another"))


def test_sha1_is_refused_unless_enabled() -> None:
    legacy = sign(BODY, SECRET, "sha1")
    with pytest.raises(SignatureMismatch, match="sha1 is not enabled"):
        SignatureVerifier([SECRET]).verify(BODY, None, legacy)
    SignatureVerifier([SECRET], allow_sha1=True).verify(BODY, None, legacy)
    with pytest.raises(SignatureMismatch):
        SignatureVerifier([SECRET], allow_sha1=True).verify(BODY, None, sign(BODY, "x", "sha1"))


def test_sha256_wins_over_sha1_when_both_are_sent() -> None:
    with pytest.raises(SignatureMismatch):
        SignatureVerifier([SECRET], allow_sha1=True).verify(
            BODY, "sha256=" + "0" * 64, sign(BODY, SECRET, "sha1")
        )


def test_an_empty_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        SignatureVerifier([""])
