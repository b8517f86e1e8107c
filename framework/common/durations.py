"""Durations as people write them: ``90s``, ``15m``, ``24h``, ``7d``, ``2w``, or plain seconds.

>>> seconds("15m"), seconds("3d"), seconds("90"), seconds(2.5)
(900.0, 259200.0, 90.0, 2.5)
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def seconds(value: str | float) -> float:
    """``value`` as seconds; ValueError naming the accepted forms if it is none of them.

    >>> seconds("1.5h")
    5400.0
    >>> seconds("soon")
    Traceback (most recent call last):
    ...
    ValueError: 'soon' is not a duration such as 90s, 15m, 24h, 7d
    """
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.fullmatch(value.lower())
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 90s, 15m, 24h, 7d")
    return float(match[1]) * _UNITS[match[2] or "s"]
