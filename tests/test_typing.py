"""Editors and type checkers know each handler's event model, and the overloads are current."""

from pathlib import Path

import pytest
from mypy import api

from framework.dispatch import generate_typed_on
from tests.support import ROOT

BOT = """
from framework import App, Context
from framework.events import IssuesEvent, IssuesOpened, PushEvent

app = App()

@app.on("issues.opened")
async def typed(ctx: Context[IssuesOpened]) -> None:
    reveal_type(ctx.event.issue.number)
    reveal_type(ctx.event.action)

@app.on("issues.opened")
async def wider(ctx: Context[IssuesEvent]) -> None: ...

@app.on("issues.opened")
async def untyped(ctx: Context) -> None:
    reveal_type(ctx.event)

@app.on("issues.opened")
async def wrong(ctx: Context[PushEvent]) -> None: ...

@app.on(["issues.opened", "issues.reopened"])
def plain(ctx: Context) -> None: ...
"""


def test_the_generated_overloads_match_the_event_models() -> None:
    current = Path(generate_typed_on.__file__).with_name("typed_on.py").read_text()
    assert current == generate_typed_on.render(), (
        "typed_on.py is stale: run python -m framework.dispatch.generate_typed_on"
    )


def test_mypy_knows_the_model_of_each_handler_and_flags_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # where mypy finds the framework's sources
    bot = tmp_path / "bot.py"
    bot.write_text(BOT)
    out, err, _ = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / ".mypy"), str(bot)]
    )
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if "bot.py" in line]
    assert (
        'note: Revealed type is "int"' in lines or 'note: Revealed type is "builtins.int"' in lines
    )
    assert "note: Revealed type is \"Literal['opened']\"" in lines
    assert 'note: Revealed type is "framework.events.base.Event"' in lines
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1, out + err
    assert "Context[PushEvent]" in errors[0] and "Context[IssuesOpened]" in errors[0]
