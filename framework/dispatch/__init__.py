"""Running deliveries: route → run.

- :mod:`~framework.dispatch.routing`: which handlers a delivery goes to;
- :mod:`~framework.dispatch.dispatcher`: one delivery's handlers, run with a context;
- :mod:`~framework.dispatch.runner`: claims from the journal, leases, outcomes, draining;
- :mod:`~framework.dispatch.retry`: when a failed delivery runs again;
- :mod:`~framework.dispatch.handler_process`: handlers in a lower-priority process.
"""
