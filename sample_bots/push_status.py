"""No work in progress on the way in: a commit status on every push, a check run on every pull
request.

- A push gets a commit status on its head commit (context ``wip``): ``failure`` when a pushed
  commit's message starts with ``WIP`` or ``fixup!``, else ``success``.
- A pull request, when opened and whenever its head moves (``synchronize``), gets a completed
  check run named ``wip`` on its head commit: ``failure`` when its title starts with ``WIP``.

The app needs the "Commit statuses: write" and "Checks: write" permissions and the ``push``
and ``pull_request`` events. Run it with ``python -m framework run sample_bots/push_status.py``;
its tests are ``tests/test_sample_push_status.py``.
"""

from framework import App, Context
from framework.events import PullRequestEvent, PushEvent

app = App(name="push-status")

NAME = "wip"
"""The status context and the check run's name."""
UNFINISHED = ("WIP", "fixup!")


@app.on("push")
async def status_on_head_commit(ctx: Context[PushEvent]) -> None:
    """Mark the pushed head commit: failure if the push carries unfinished commits."""
    push = ctx.event
    if push.deleted or push.head_commit is None:
        return  # a deleted branch has no head commit to mark
    unfinished = [c.id[:7] for c in push.commits if c.message.startswith(UNFINISHED)]
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/statuses/{push.head_commit.id}",
        json={
            "state": "failure" if unfinished else "success",
            "context": NAME,
            "description": (
                f"unfinished commits: {', '.join(unfinished)}" if unfinished else "ready"
            ),
        },
    )


async def check_run_on_head(ctx: Context[PullRequestEvent]) -> None:
    """Check the pull request's head commit: failure while its title says WIP."""
    pull_request = ctx.event.pull_request
    wip = pull_request.title.startswith("WIP")
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/check-runs",
        json={
            "name": NAME,
            "head_sha": pull_request.head.sha,
            "conclusion": "failure" if wip else "success",
            "output": {
                "title": "Work in progress" if wip else "Ready",
                "summary": "Drop WIP from the title when it is ready." if wip else "No WIP.",
            },
        },
    )


# Registered once per action, each with its own typed decorator (a list of events would
# type the context as any event's).
app.on("pull_request.opened")(check_run_on_head)
app.on("pull_request.synchronize")(check_run_on_head)
