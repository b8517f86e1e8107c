"""Running one delivery's handlers: the context they share, their errors kept apart.

A delivery's handlers run concurrently, with one :class:`~framework.context.Context`; one
handler's exception is logged with the delivery id and stops no other handler. A plain
(non-async) handler runs in a worker thread. On the delivery's last attempt, the ``on_error``
handlers see each error.

Exactly once per handler, as far as the journal can tell: of a delivery with several
handlers, each one that finishes is recorded (``done``), and a retry, a recovery after a
crash or a redelivery runs only those not recorded (``delivery.handlers_done``). A delivery
with one failing handler and one that posted a comment does not comment twice.

>>> dispatcher = Dispatcher(app.router, app, name="bot")  # doctest: +SKIP
>>> errors = await dispatcher.run(delivery)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from framework.context import Clients, Context
from framework.dispatch.routing import Handler, Router
from framework.errors import NetworkError, RateLimited, ServerError
from framework.observe.log import bind
from framework.webhooks.delivery import Delivery

EXPECTED_FAILURES = (NetworkError, ServerError, RateLimited)
"""Failures of the world, not of the handler's code: logged in one line (traceback at DEBUG)."""

HandlerDone = Callable[[str], Awaitable[None]]
"""Records that the handler named (:attr:`~framework.dispatch.routing.Handler.key`) finished."""


def still_to_run(handlers: Sequence[Handler], done: frozenset[str]) -> list[Handler]:
    """The handlers a delivery still needs: those not recorded as finished in an earlier run.

    >>> from framework.dispatch.routing import Handler
    >>> a, b = Handler(print, False, "m:a"), Handler(print, False, "m:b")
    >>> [h.key for h in still_to_run([a, b], frozenset({"m:a"}))]
    ['m:b']
    """
    return [handler for handler in handlers if handler.key not in done]


class Dispatcher:
    """Runs deliveries' handlers, found by ``router``, with contexts over ``clients``.

    ``before`` runs first for every delivery, handlers or not (the App drops cached tokens of
    a revoked installation and configuration a push changed, in the process that runs
    handlers, where those caches live).
    """

    def __init__(
        self,
        router: Router,
        clients: Clients,
        *,
        name: str = "bot",
        before: Callable[[Delivery], Awaitable[None]] | None = None,
    ) -> None:
        self.router = router
        self.clients = clients
        self.before = before
        self._logger = logging.getLogger(name)

    async def run(
        self, delivery: Delivery, *, report: bool = True, done: HandlerDone | None = None
    ) -> list[BaseException]:
        """Run the delivery's handlers now and wait for them; return the errors they raised.

        With ``report``, the ``on_error`` handlers see each error (the delivery's last attempt).
        Handlers in ``delivery.handlers_done`` are skipped; with ``done``, each handler that
        finishes is recorded by it, if the delivery has others (one alone is recorded by the
        delivery's own outcome).
        """
        if self.before is not None:
            await self.before(delivery)
        matched = self.router.match(delivery.name, delivery.action, delivery.platform)
        handlers = (
            still_to_run(matched, delivery.handlers_done) if delivery.handlers_done else matched
        )
        if not handlers:
            return []
        record = done if len(matched) > 1 else None
        log = bind(
            self._logger,
            delivery=delivery.id,
            event=delivery.name,
            action=delivery.action,
            installation=delivery.installation_id,
        )
        ctx: Context = Context(self.clients, delivery, log)
        if len(handlers) == 1:
            error = await self._call(handlers[0], ctx, record)
            errors = [error] if error is not None else []
        else:
            results = await asyncio.gather(*(self._call(h, ctx, record) for h in handlers))
            errors = [e for e in results if e is not None]
        if report:
            for error in errors:
                await self._report(ctx, error)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handled by %d handler(s), %d failed, %.0f ms after receipt",
                len(handlers),
                len(errors),
                (time.time() - delivery.received_at) * 1000,
            )
        return errors

    async def _call(
        self, handler: Handler, ctx: Context, done: HandlerDone | None = None
    ) -> BaseException | None:
        error = await self._run_handler(handler, ctx)
        if error is None and done is not None:
            await done(handler.key)  # before the delivery's outcome: a retry skips it
        return error

    async def _run_handler(self, handler: Handler, ctx: Context) -> BaseException | None:
        try:
            if handler.is_async:
                await handler.fn(ctx)
            else:
                await asyncio.to_thread(handler.fn, ctx)
        except EXPECTED_FAILURES as exc:
            # GitHub unreachable or failing: the message says it all; the stack, at DEBUG.
            ctx.log.error(
                "handler %s failed (attempt %d): %s",
                handler.name, ctx.delivery.attempt, exc, extra={"handler": handler.name},
            )  # fmt: skip
            ctx.log.debug("handler %s traceback", handler.name, exc_info=True)
            return exc
        except Exception as exc:
            ctx.log.exception(
                "handler %s failed (attempt %d)",
                handler.name,
                ctx.delivery.attempt,
                extra={"handler": handler.name},
            )
            return exc
        return None

    async def _report(self, ctx: Context, error: BaseException) -> None:
        for on_error in self.router.error_handlers:
            try:
                if on_error.is_async:
                    await on_error.fn(ctx, error)
                else:
                    await asyncio.to_thread(on_error.fn, ctx, error)
            except Exception:
                ctx.log.exception("on_error handler %s failed", on_error.name)
