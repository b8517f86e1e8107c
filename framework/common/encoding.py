"""The compact JSON encoding: no spaces, as GitHub sends payloads and as the bot answers.

>>> compact_json({"ok": True, "labels": ["bug"]})
b'{"ok":true,"labels":["bug"]}'
"""

from __future__ import annotations

import json
from typing import Any


def compact_json(value: Any) -> bytes:
    """``value`` as compact JSON bytes (``","`` and ``":"`` with no space)."""
    return json.dumps(value, separators=(",", ":")).encode()
