"""sample_bots/sign_in.py: sign in on all four platforms in one browser, see the user's data."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx

from framework.testing import serve_async
from sample_bots.sign_in import app
from tests.signin_support import PLATFORMS, fake_for, served, settings_for


async def test_the_page_shows_each_platforms_data_fetched_with_the_users_token(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        fakes = {p: stack.enter_context(served(fake_for(p))) for p in PLATFORMS}
        app.configure(settings_for(fakes, tmp_path))
        async with serve_async(app) as bot, httpx.AsyncClient(follow_redirects=True) as browser:
            for platform, fake in fakes.items():
                fake.callback_url = f"{bot}/login/{platform}/callback"
            page = (await browser.get(f"{bot}/")).text
            for name, platform in [("GitHub", "github"), ("AtomGit", "atomgit"),
                                   ("CODING", "coding"), ("TAPD", "tapd")]:  # fmt: skip
                assert f'<a href="/login/{platform}?next=/">Sign in with {name}</a>' in page
            for platform in PLATFORMS:
                page = (await browser.get(f"{bot}/login/{platform}?next=/")).text
                assert f"sign in with {platform}" not in page.lower()
            assert page.count("signed in as <b>octocat</b>") == 4
            assert page.count("octocat/hello-world") == 2  # GitHub's and AtomGit's repositories
            assert page.count("<li>hello-world</li>") == 1  # CODING's project
            assert "<li>Login page</li>" in page and "<li>Export to CSV</li>" in page  # TAPD
            fakes["github"].revoke_access_tokens()  # the API refuses the token: refreshed, retried
            again = (await browser.get(f"{bot}/")).text
            assert again.count("signed in as <b>octocat</b>") == 4
            assert fakes["github"].refreshes == 1
            async with httpx.AsyncClient() as stranger:  # another browser: links only
                assert "signed in as" not in (await stranger.get(f"{bot}/")).text
    for fake in fakes.values():
        assert fake.exchanges == 1
        assert ("GET", "/user/repos") in fake.calls or fake.platform in ("coding", "tapd")
