"""The garbage collector of a serving bot: young collections rare enough not to cost a tenth
of a burst's CPU (see :mod:`framework.common.collector`), a bot's own thresholds kept."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from framework.common.collector import YOUNG_THRESHOLD, serving_threshold
from framework.testing import FakeGitHub
from tests.support import REPO, ROOT, issue_opened, signed, start_bot
from tests.test_observability import scrape, stop, value, wait_handled

BOT = str(ROOT / "tests" / "bots" / "observed.py")


@pytest.mark.parametrize(
    ("current", "serving"),
    [
        ((700, 10, 10), (YOUNG_THRESHOLD, 10, 10)),  # CPython 3.11 and 3.12
        ((2000, 10, 0), (YOUNG_THRESHOLD, 10, 0)),  # 3.13's defaults: older ones kept
        ((YOUNG_THRESHOLD + 1, 5, 5), (YOUNG_THRESHOLD + 1, 5, 5)),  # the bot's own, higher
        ((0, 10, 10), (0, 10, 10)),  # collection turned off stays off
    ],
)
def test_serving_threshold(current: tuple[int, int, int], serving: tuple[int, int, int]) -> None:
    assert serving_threshold(current) == serving


def test_a_burst_of_deliveries_costs_few_young_collections(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    """150 deliveries through one process (receiver and handlers): each parse builds a few
    hundred objects, so at CPython's threshold the bot ran a young collection every few
    deliveries (30 here); at the serving threshold one or two."""
    bot, base = start_bot(BOT, fake_url, tmp_path, HANDLER_PROCESSES="0")
    try:
        young = {"generation": "0"}
        before = value(scrape(base), "python_gc_collections_total", **young)
        with httpx.Client(base_url=base) as client:
            for number in range(1, 151):
                body, headers = signed("issues", issue_opened(number), f"gc-{number}")
                assert (
                    client.post("/api/github/webhooks", content=body, headers=headers).status_code
                    == 202
                )
        samples = wait_handled(base, "done", 150)
        assert value(samples, "framework_deliveries_handled_total", platform="github",
                     event="issues", outcome="done") == 150  # fmt: skip
        collections = value(samples, "python_gc_collections_total", **young) - before
    finally:
        stop(bot)
    assert collections <= 8, f"{collections} young collections for 150 deliveries"
    assert all(fake.issue_labels(REPO, number) == ["seen"] for number in range(1, 151))
