"""Test helpers: run a bot against a strict fake of GitHub's REST API, with real payloads.

For a bot's tests, :func:`run_bot` and :mod:`~framework.testing.payloads` are all it takes
(see ``framework/testing/bot.py``); a bot serving AtomGit, CODING and TAPD too runs with
``run_bot(app, platforms=(...))`` against their fakes (:class:`FakeAtomGit`,
:class:`FakeCoding`, :class:`FakeTapd`), with deliveries signed as each platform signs them
(:func:`signed_delivery`)::

    async with run_bot(app) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=7))
    assert result.status == "done", result.errors
    assert bot.fake.issue_labels("octo-org/hello", 7) == ["needs-response"]

The parts, for tests of the framework itself:

>>> from framework.testing import FakeGitHub, generate_app_key, serve
>>> private_pem, public_key = generate_app_key()
>>> fake = FakeGitHub(app_id=1234, public_key=public_key)
>>> fake.add_installation(42, account="octo-org", repositories=["octo-org/hello"])
>>> with serve(fake.app) as github_url:  # doctest: +SKIP
...     ...  # run the bot against github_url, then assert on fake.calls, fake.mint_count(42)
"""

from framework.testing import payloads
from framework.testing.bot import (
    APP_ID,
    ATOMGIT_APP_ID,
    CODING_TOKEN,
    TAPD_API_PASSWORD,
    TAPD_API_USER,
    DeliveryResult,
    DeliveryStatus,
    RunningBot,
    run_bot,
)
from framework.testing.deliveries import (
    SignedDelivery,
    coding_issue,
    gitlab_issue,
    signed_delivery,
    tapd_story,
)
from framework.testing.fake_atomgit import FakeAtomGit
from framework.testing.fake_coding import FakeCoding
from framework.testing.fake_github import (
    API_VERSIONS,
    ApiRequest,
    AuthKind,
    FakeGitHub,
    RecordedCall,
    Reply,
    RouteHandler,
    TokenMint,
    generate_app_key,
)
from framework.testing.fake_oauth import FakeOAuth, FakeUser, ManualClock
from framework.testing.fake_smee import FakeSmee
from framework.testing.fake_tapd import FakeTapd
from framework.testing.server import serve, serve_async

__all__ = [
    "API_VERSIONS",
    "APP_ID",
    "ATOMGIT_APP_ID",
    "CODING_TOKEN",
    "TAPD_API_PASSWORD",
    "TAPD_API_USER",
    "ApiRequest",
    "AuthKind",
    "DeliveryResult",
    "DeliveryStatus",
    "FakeAtomGit",
    "FakeCoding",
    "FakeGitHub",
    "FakeOAuth",
    "FakeSmee",
    "FakeTapd",
    "FakeUser",
    "ManualClock",
    "RecordedCall",
    "Reply",
    "RouteHandler",
    "RunningBot",
    "SignedDelivery",
    "TokenMint",
    "coding_issue",
    "generate_app_key",
    "gitlab_issue",
    "payloads",
    "run_bot",
    "serve",
    "serve_async",
    "signed_delivery",
    "tapd_story",
]
