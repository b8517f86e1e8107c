"""A strict fake of AtomGit's app API (seed 000), for tests of bots that serve AtomGit.

It is :class:`~framework.testing.FakeGitHub` with AtomGit's differences, each enforced:

- the app JWT's ``iss`` must be the app id (AtomGit knows no client id);
- installation tokens start ``ats_``, are accepted only as ``Authorization: Bearer``, and their
  ``expires_at`` carries a ``+08:00`` offset and milliseconds; an expired token is refused
  (``401``) and counted in :attr:`~FakeGitHub.expired_token_uses`;
- installations have AtomGit's shape: an upper-case ``repository_selection``, an ``account`` of
  ``{id, org_name, organization_id, path}``, a hex ``target_id``, and (with
  ``odd_events=True``) ``events`` split into odd strings as the seed's second sample shows;
- ``X-Api-Version``, when sent, must be ``2023-02-21``.

>>> private_pem, public_key = generate_app_key()
>>> fake = FakeAtomGit(app_id=75, public_key=public_key)
>>> fake.add_installation(14, account="yanqianyu", repositories=["yanqianyu/app"])
>>> fake._expiry_text(1683403360.758)
'2023-05-07T04:02:40.758+08:00'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from framework.platforms.atomgit import API_VERSION
from framework.testing.fake_github import (
    FakeGitHub,
    Reply,
    _error,
    _Installation,
    generate_app_key,
)

__all__ = ["FakeAtomGit", "generate_app_key"]

CHINA = timezone(timedelta(hours=8))


class FakeAtomGit(FakeGitHub):
    """AtomGit's app API for one app: see the module's docstring."""

    token_prefix = "ats_"
    token_schemes = ("bearer",)

    def __init__(self, *, odd_events: bool = False, **kwargs: Any) -> None:
        kwargs.pop("client_id", None)  # AtomGit's JWT issuer is the app id only
        super().__init__(**kwargs)
        self.odd_events = odd_events

    def _version_problem(self, headers: dict[str, str]) -> Reply | None:
        version = headers.get("x-api-version")
        if version is not None and version != API_VERSION:
            return _error(400, f"X-Api-Version {version!r} is not supported; use {API_VERSION}")
        return None

    def _expiry_text(self, epoch: float) -> str:
        moment = datetime.fromtimestamp(epoch, UTC).astimezone(CHINA)
        return moment.isoformat(timespec="milliseconds")

    def _installation_json(self, installation: _Installation, base_url: str) -> dict[str, Any]:
        target = f"{installation.account_id:024x}"
        events: list[str] = (
            ['{"code":"push"', '"desc":"push event"}']
            if self.odd_events
            else [
                "push",
                "issues",
                "merge_request",
            ]
        )
        created = datetime.fromtimestamp(_epoch(installation.created_at), UTC).astimezone(CHINA)
        return {
            "access_tokens_url": f"{base_url}/app/installations/{installation.id}/access_tokens",
            "account": {
                "id": installation.account_id,
                "org_name": installation.account,
                "organization_id": target,
                "path": installation.account,
            },
            "app_id": self.app_id,
            "app_slug": self.slug,
            "created_at": created.isoformat(timespec="seconds"),
            "events": events,
            "id": installation.id,
            "permissions": dict(installation.permissions),
            "repository_selection": installation.repository_selection.upper(),
            "target_id": target,
            "updated_at": created.isoformat(timespec="seconds"),
        }


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return 0.0
