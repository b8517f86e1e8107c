"""Slash commands in comments: ``/label bug`` adds the label ``bug`` to the issue or pull request.

A comment may hold several commands, one per line (``/label good first issue`` names the
label ``good first issue``). A command counts when:

- the commenter may write to the repository. The bot asks GitHub for their permission
  (``GET /repos/{owner}/{repo}/collaborators/{username}/permission``): ``admin`` or ``write``
  (the maintain role reads as write). The comment's ``author_association`` is not used: it
  says ``MEMBER`` only for public members of an organization and ``CONTRIBUTOR`` for anyone
  whose pull request was merged, so it neither proves nor rules out write access;
- the label is allowed by the repository's ``.github/commands.yml``::

      allowed_labels: [bug, duplicate, good first issue]

  (names compare case-insensitively). Without that file no label is allowed.

Comments by bots, this app's own included, are ignored. The app needs the "Issues: write",
"Contents: read" (for the configuration) and "Metadata: read" permissions and the
``issue_comment`` event. Its tests are ``tests/test_sample_commands.py``.
"""

import re

from pydantic import BaseModel

from framework import App, Context, NotFound
from framework.events import IssueCommentCreated

app = App(name="commands")

COMMAND = re.compile(r"^/label[ \t]+(?P<label>\S.*?)[ \t]*$", re.MULTILINE)
WRITERS = ("admin", "write")


class CommandsConfig(BaseModel):
    """``.github/commands.yml``."""

    allowed_labels: list[str] = []


def labels_asked(comment: str) -> list[str]:
    """The labels a comment's ``/label`` commands ask for, in order.

    >>> labels_asked("Thanks!\\n/label bug\\n/label good first issue")
    ['bug', 'good first issue']
    """
    return [match["label"] for match in COMMAND.finditer(comment)]


async def may_write(ctx: Context[IssueCommentCreated], login: str) -> bool:
    """Whether ``login`` has write access to the event's repository."""
    try:
        response = await ctx.github.get(
            f"/repos/{ctx.repo_full_name}/collaborators/{login}/permission"
        )
    except NotFound:  # not a collaborator
        return False
    return response.json().get("permission") in WRITERS


@app.on("issue_comment.created")
async def label_command(ctx: Context[IssueCommentCreated]) -> None:
    """Add the labels a collaborator asked for, of those the repository allows."""
    if ctx.is_bot:
        return
    asked = labels_asked(ctx.event.comment.body)
    if not asked:
        return
    config = await ctx.config("commands.yml", default={"allowed_labels": []}, model=CommandsConfig)
    allowed = {name.casefold(): name for name in config.allowed_labels}
    labels = [allowed[name.casefold()] for name in asked if name.casefold() in allowed]
    sender = ctx.event.sender
    if not labels or sender is None or not await may_write(ctx, sender.login):
        return
    ctx.log.info("labelling as %s asked: %s", sender.login, ", ".join(labels))
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
        json={"labels": labels},
    )
