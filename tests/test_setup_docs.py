"""What a new user meets first: the README's pytest configuration, mypy from a bot's own folder
after the README's editable install, the licence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}


def test_the_readmes_pytest_configuration_gives_no_deprecation_warning(tmp_path: Path) -> None:
    [config] = re.findall(r"```toml\n(\[tool\.pytest\.ini_options\]\n.*?)```", README, re.S)
    (tmp_path / "pyproject.toml").write_text(config)
    (tmp_path / "test_bot.py").write_text(
        "import asyncio\n\nasync def test_async() -> None:\n    await asyncio.sleep(0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "warning" not in result.stdout.lower()


def test_mypy_in_a_bots_own_folder_finds_the_framework(tmp_path: Path) -> None:
    assert "editable_mode=compat" in README  # the install this relies on
    (tmp_path / "bot.py").write_text(
        "from framework import App, Context\n\napp = App(name='mine')\n\n\n"
        "@app.on('issues.opened')\nasync def hello(ctx: Context) -> None:\n"
        "    await ctx.github.post('/x', json={})\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "bot.py"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, (
        result.stdout + "\n(installed without editable_mode=compat? reinstall as the README says)"
    )


def test_the_licence_is_the_mit_licence_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the framework authors" in text
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
