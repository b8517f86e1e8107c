"""How often a serving bot runs Python's cyclic garbage collector.

CPython collects its youngest generation each time 700 more container objects (2,000 from
3.13) were allocated than freed. Parsing one 18 KB webhook builds a few hundred dicts and
lists at once, so at that threshold a burst runs a young collection every few deliveries,
each walking everything allocated since the last one, and every tenth of them a larger one.
In ``bench/burst.py`` that was a tenth of the labeler's CPU (0.175 s of collections in a
3,200-delivery run); with a young threshold of :data:`YOUNG_THRESHOLD` it was 0.012 s.

Reference counting frees a delivery's objects as soon as it is done either way: the
threshold only decides how much garbage *in cycles* can wait for a collection: at most
:data:`YOUNG_THRESHOLD` objects, a few megabytes at worst. A bot that sets its own
thresholds when its module loads keeps them.

>>> serving_threshold((700, 10, 10))
(10000, 10, 10)
>>> serving_threshold((50000, 20, 20))  # a bot that set its own keeps it
(50000, 20, 20)
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""The youngest generation's threshold while serving (CPython's default: 700 or 2,000)."""


def serving_threshold(current: tuple[int, int, int]) -> tuple[int, int, int]:
    """The collector's thresholds for serving: the youngest raised to
    :data:`YOUNG_THRESHOLD`, never lowered; the older generations' as they are. A young
    threshold of 0 (collection turned off with ``gc.set_threshold(0)``) stays 0."""
    young, middle, old = current
    return (young if young == 0 else max(young, YOUNG_THRESHOLD), middle, old)


def tune_for_serving() -> None:
    """Apply :func:`serving_threshold` to this process (the receiver, a handler process)."""
    gc.set_threshold(*serving_threshold(gc.get_threshold()))
