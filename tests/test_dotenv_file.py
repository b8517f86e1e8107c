"""Writing credentials into .env: merged, comments kept, mode 600, read-only refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from framework.server.dotenv_file import EnvFileError, format_value, merge_env, write_env

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow+/=\nabc\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("before", "updates", "after"),
    [
        ("", {"A": "1"}, "A=1\n"),
        ("A=0\n", {"A": "1"}, "A=1\n"),
        ("# keep me\nB=2\n\nA=0\n", {"A": "1"}, "# keep me\nB=2\n\nA=1\n"),
        ("B=2", {"A": "1"}, "B=2\nA=1\n"),  # no final newline
        ("export A=0\n", {"A": "1"}, "A=1\n"),
        ("A=0\nB=2\nA=3\n", {"A": "1"}, "A=1\nB=2\n"),  # the later one would have won
        ("AB=0\n", {"A": "1"}, "AB=0\nA=1\n"),  # only whole names
        ("# A=0\n", {"A": "1"}, "# A=0\nA=1\n"),  # a comment is not an assignment
        ('A="multi\nline\nvalue"\nB=2\n', {"A": "1"}, "A=1\nB=2\n"),  # a pasted PEM, whole
        ("A='x\ny'\nB=2\n", {"A": "1"}, "A=1\nB=2\n"),
        ('A="one \\" line"\nB=2\n', {"A": "1"}, "A=1\nB=2\n"),  # an escaped quote
        ("A=1\n", {"B": "2", "C": "3"}, "A=1\nB=2\nC=3\n"),
    ],
)
def test_merge_keeps_everything_else(before: str, updates: dict[str, str], after: str) -> None:
    assert merge_env(before, updates) == after


@pytest.mark.parametrize(
    "value",
    [
        "42",
        "",
        "Iv23li.abc",
        "a b",
        "it's",
        'say "hi"',
        "back\\slash",
        "it\\'s",
        "$HOME",
        "#not-a-comment",
        PEM,
        "tab\there",
        "é ünïcode",
    ],
)
def test_values_read_back_unchanged(value: str, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(merge_env("OTHER=x\n", {"KEY": value}))
    assert dotenv_values(env) == {"OTHER": "x", "KEY": value}


def test_a_pem_is_one_line() -> None:
    assert "\n" not in format_value(PEM)


def test_a_value_that_cannot_be_written_safely_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\$\{"):
        format_value("${HOME}")


def test_write_creates_the_file_with_mode_600(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    write_env(env, {"APP_ID": "7", "PRIVATE_KEY": PEM})
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert dotenv_values(env) == {"APP_ID": "7", "PRIVATE_KEY": PEM}


def test_write_merges_into_an_existing_file_and_tightens_its_mode(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# my settings\nLOG_LEVEL=debug\nAPP_ID=1\n")
    env.chmod(0o644)
    write_env(env, {"APP_ID": "7", "WEBHOOK_SECRET": "s"})
    assert env.read_text() == "# my settings\nLOG_LEVEL=debug\nAPP_ID=7\nWEBHOOK_SECRET=s\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temporary file left


def test_a_read_only_env_is_refused_with_what_to_do(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("APP_ID=1\n")
    env.chmod(0o400)
    with pytest.raises(EnvFileError, match=r"read-only: make it writable \(chmod 600"):
        write_env(env, {"APP_ID": "7"})
    assert env.read_text() == "APP_ID=1\n"


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    env = tmp_path / "missing-folder" / ".env"
    with pytest.raises(EnvFileError, match=r"cannot write .*missing-folder/\.env"):
        write_env(env, {"APP_ID": "7"})
