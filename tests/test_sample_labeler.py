"""sample_bots/labeler.py, tested as a bot author would: with framework.testing only."""

from __future__ import annotations

from framework.testing import payloads, run_bot
from sample_bots.labeler import app


async def test_a_new_issue_gets_needs_response() -> None:
    async with run_bot(app) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=7))
        again = await bot.receive("issues", payloads.issues_opened(number=7),
                                  delivery_id=result.delivery_id)  # fmt: skip
    assert result.status == "done", result.errors
    assert bot.fake.issue_labels(payloads.REPO, 7) == ["needs-response"]
    assert again.status == "duplicate"  # a redelivery does not run the handler again
    assert len(bot.fake.calls_to("POST", f"/repos/{payloads.REPO}/issues/7/labels")) == 1
