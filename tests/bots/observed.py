"""A bot for the logging, metrics and redaction tests.

``issues.opened`` labels the issue (a handled delivery). ``issues.closed`` fails. With
``LEAK=1``, the labeling handler also tries its hardest to leak credentials into the logs, at
every level and through every path (its own lines, reprs, an exception), as careless bot code
might: the test checks that none of them reaches the output.
"""

import os

from framework import App, Context
from framework.events import IssuesClosed, IssuesOpened

app = App(name="observed")


@app.on("issues.opened")
async def label(ctx: Context[IssuesOpened]) -> None:
    """Label the issue; with LEAK=1, then log every credential it can find and raise."""
    response = await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
        json={"labels": ["seen"]},
    )
    if os.environ.get("LEAK") != "1":
        return
    authorization = response.request.headers["authorization"]
    token = authorization.split()[-1]
    secret = app.settings.webhook_secret.get_secret_value() if app.settings.webhook_secret else ""
    key = os.environ["PRIVATE_KEY"]
    ctx.log.debug("request headers: %r", dict(response.request.headers))
    ctx.log.info("the token is %s and the secret is %s", token, secret)
    ctx.log.warning("the key:\n%s", key)
    ctx.log.info("next page: https://api.example/items?access_token=%s&page=2", token)
    ctx.log.info("metrics token: %s", os.environ.get("METRICS_TOKEN"))
    raise RuntimeError(f"leaking {token!r} {secret} {authorization} {key}")


@app.on("issues.closed")
async def fail(ctx: Context[IssuesClosed]) -> None:
    """Always fails: a delivery that ends dead after its one attempt."""
    raise ValueError(f"cannot handle issue {ctx.event.issue.number}")
