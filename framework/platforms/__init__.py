"""The platforms a bot serves: one module each, all behind one small interface.

:class:`~framework.platforms.base.Platform` says, for a platform, how its webhooks are
authenticated and read, which events it sends, its API's base URL, default headers and error
format, and the portable actions in its API. The modules:

- :mod:`~framework.platforms.github`: GitHub Apps, the reference;
- :mod:`~framework.platforms.atomgit`: AtomGit apps (GitHub-shaped; ``ats_`` tokens with
  ``+08:00`` expiry; GitHub- and GitLab-shaped webhooks);
- :mod:`~framework.platforms.coding`: CODING (sha1 webhooks, personal token, the open API);
- :mod:`~framework.platforms.tapd`: TAPD (the secret inside the body, the enveloped API).

:mod:`~framework.platforms.connections` holds what a running bot keeps per platform (pools,
tokens, clients). Adding a platform is one module here, its entry in :data:`PLATFORMS`, and
its tests.

>>> sorted(PLATFORMS), PLATFORMS["tapd"].webhook_path
(['atomgit', 'coding', 'github', 'tapd'], '/api/tapd/webhooks')
"""

from __future__ import annotations

from framework.platforms.atomgit import ATOMGIT
from framework.platforms.base import Platform
from framework.platforms.coding import CODING
from framework.platforms.github import GITHUB
from framework.platforms.tapd import TAPD

PLATFORMS: dict[str, Platform] = {p.name: p for p in (GITHUB, ATOMGIT, CODING, TAPD)}
"""Every platform by name."""

ALL_EVENTS: frozenset[str] = frozenset().union(*(p.events for p in PLATFORMS.values()))
"""Every event name some platform sends: what ``@app.on`` accepts."""

__all__ = ["ALL_EVENTS", "ATOMGIT", "CODING", "GITHUB", "PLATFORMS", "TAPD", "Platform"]
