"""Private keys in every form operators paste them, and errors that never show the key."""

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from framework.auth.private_key import load_private_key, parse_private_key
from framework.errors import ConfigurationError
from framework.testing import generate_app_key


def test_pem_text(private_pem: str) -> None:
    assert parse_private_key(private_pem).key_size == 2048


def test_pem_with_literal_backslash_n(private_pem: str) -> None:
    one_line = private_pem.strip().replace("\n", "\\n")
    assert "\n" not in one_line
    assert parse_private_key(one_line).key_size == 2048


def test_base64_of_pem(private_pem: str) -> None:
    assert parse_private_key(base64.b64encode(private_pem.encode()).decode()).key_size == 2048


def test_file_by_path(private_pem: str, tmp_path: Path) -> None:
    path = tmp_path / "app.pem"
    path.write_text(private_pem)
    assert load_private_key(None, path).key_size == 2048


def test_text_wins_over_path(private_pem: str, tmp_path: Path) -> None:
    assert load_private_key(private_pem, tmp_path / "missing.pem").key_size == 2048


def test_garbage_names_the_variable_and_not_the_value() -> None:
    with pytest.raises(ConfigurationError, match="PRIVATE_KEY does not hold a PEM") as err:
        parse_private_key("hunter2-not-a-key")
    assert "hunter2" not in str(err.value)


def test_corrupt_pem_names_the_variable_and_leaks_no_key_material(private_pem: str) -> None:
    lines = private_pem.strip().splitlines()
    broken = "\n".join([lines[0], *(line[::-1] for line in lines[1:-1]), lines[-1]])
    with pytest.raises(ConfigurationError, match="PRIVATE_KEY is not a valid PEM") as err:
        parse_private_key(broken)
    for line in lines[1:-1]:
        assert line[::-1] not in str(err.value) and line not in str(err.value)


def test_a_non_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigurationError, match="must be an RSA key"):
        parse_private_key(pem.decode())


def test_unreadable_path_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PRIVATE_KEY_PATH: cannot read"):
        load_private_key(None, tmp_path / "nope.pem")


def test_nothing_set() -> None:
    with pytest.raises(ConfigurationError, match="PRIVATE_KEY is not set"):
        load_private_key(None, None)


def test_the_same_key_is_checked_once_and_a_replaced_file_is_read_again(
    private_pem: str, tmp_path: Path
) -> None:
    # The start-up check, the redelivery schedule and the JWT signer all load the key.
    one_line = private_pem.strip().replace("\n", "\\n")
    assert parse_private_key(one_line) is parse_private_key(private_pem)
    path = tmp_path / "app.pem"
    path.write_text(private_pem)
    first = load_private_key(None, path)
    other_pem, _ = generate_app_key("rotated")
    path.write_text(other_pem)
    rotated = load_private_key(None, path)
    assert rotated.public_key().public_numbers() != first.public_key().public_numbers()
