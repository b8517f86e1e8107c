"""What the sign-in tests share: a fake per platform, settings pointing a bot at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from framework.auth.sealing import new_key
from framework.settings import Settings
from framework.testing import FakeOAuth, serve
from tests.support import APP_ID, PEM

PLATFORMS = ("github", "atomgit", "coding", "tapd")
KEY = new_key()


def fake_for(platform: str, **options: Any) -> FakeOAuth:
    """A fake with one user, octocat (id 583231), who has two repositories and two stories."""
    fake = FakeOAuth(platform, client_secret=f"{platform}-client-secret-xyz", **options)
    fake.add_user(
        583231,
        "octocat",
        repositories=["octocat/hello-world", "octocat/spoon-knife"],
        stories=["Login page", "Export to CSV"],
    )
    return fake


@contextmanager
def served(fake: FakeOAuth) -> Iterator[FakeOAuth]:
    """The fake on a loopback port, its base URL set."""
    with serve(fake.app) as url:
        fake.base_url = url
        yield fake


def settings_for(fakes: dict[str, FakeOAuth], tmp: Path, **extra: Any) -> Settings:
    """A bot's settings with sign-in on every platform in ``fakes``."""
    values: dict[str, Any] = {
        "webhook_secret": "webhook-secret",
        "app_id": str(APP_ID),  # a registered app: no setup page, GitHub's webhooks served
        "private_key": PEM,
        "journal_path": tmp / "deliveries.sqlite3",
        "token_encryption_key": KEY,
    }
    for platform, fake in fakes.items():
        values[f"{platform}_client_id"] = fake.client_id
        values[f"{platform}_client_secret"] = fake.client_secret
        values[f"{platform}_web_url"] = fake.web_url
        if platform == "coding":
            values |= {
                "coding_team": fake.team,
                "coding_webhook_secret": "coding-secret",
                "coding_open_api_url": f"{fake.base_url}/open-api",
                "coding_api_url": fake.web_url.replace("{team}", fake.team),
            }
        else:
            values[f"{platform}_api_url"] = fake.base_url
    values |= extra
    return Settings(_env_file=None, **values)
