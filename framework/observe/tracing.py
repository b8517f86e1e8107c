"""OpenTelemetry traces, optional: one trace per delivery, receive → journal → handlers → API.

On when the ``otel`` extra is installed (``pip install "framework[otel]"``) and
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporter reads the other ``OTEL_*`` variables
itself; ``OTEL_SERVICE_NAME`` names the bot). Off otherwise, and then every hook here is one
check of a module global: nothing is imported, nothing allocated.

The receiver's span travels with the delivery: its W3C ``traceparent`` is stored among the
delivery's headers in the journal, so the handlers' span, in whichever process or replica
claims it, joins the same trace. API calls are recorded after they answer, as children of the
handlers' span, with their route template (never the raw path) as the name.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any

_tracer: Any = None
_checked = False


def _start() -> Any:
    """The tracer, set up on first use; None when tracing is off."""
    global _tracer, _checked
    if _checked:
        return _tracer
    _checked = True
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:  # the otel extra is not installed: tracing stays off
        return None
    name = os.environ.get("OTEL_SERVICE_NAME", "framework-bot")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("framework")
    return _tracer


def use_tracer_provider(provider: Any) -> None:
    """Trace with ``provider`` (an SDK ``TracerProvider``), or stop tracing with None.

    For tests (an in-memory exporter) and for bots that set OpenTelemetry up themselves.
    """
    global _tracer, _checked
    _checked = True
    _tracer = None if provider is None else provider.get_tracer("framework")


def enabled() -> bool:
    """Whether deliveries are traced."""
    return _start() is not None


class Span:
    """A span made current until :meth:`end`; the hooks below return one, or None."""

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self._token = token

    def end(self, **attributes: Any) -> None:
        """Set ``attributes`` (None values skipped), end the span, restore the context."""
        from opentelemetry import context

        for key, value in attributes.items():
            if value is not None:
                self.span.set_attribute(key, value)
        self.span.end()
        context.detach(self._token)


def _current(span: Any) -> Span:
    from opentelemetry import context, trace

    return Span(span, context.attach(trace.set_span_in_context(span)))


def receiving(headers: MutableMapping[str, str]) -> Span | None:
    """Start the delivery's trace at the receiver; its ``traceparent`` joins ``headers``
    (lower-case names), which the journal stores with the delivery."""
    tracer = _start()
    if tracer is None:
        return None
    from opentelemetry import trace
    from opentelemetry.propagate import extract, inject

    span = tracer.start_span(
        "webhook receive",
        context=extract(headers),  # a proxy's trace, if one sent its own traceparent
        kind=trace.SpanKind.SERVER,
        attributes={
            "github.delivery": headers.get("x-github-delivery", ""),
            "github.event": headers.get("x-github-event", ""),
        },
    )
    current = _current(span)
    inject(headers)
    return current


def handling(delivery_id: str, name: str, action: str | None, headers: Any) -> Span | None:
    """Start the handlers' span, a child of the receiver's (from the stored ``traceparent``)."""
    tracer = _start()
    if tracer is None:
        return None
    from opentelemetry.propagate import extract

    carrier = {k.lower(): v for k, v in dict(headers).items()}
    span = tracer.start_span(
        "handle delivery",
        context=extract(carrier),
        attributes={"github.delivery": delivery_id, "github.event": name},
    )
    if action:
        span.set_attribute("github.action", action)
    return _current(span)


def record(name: str, started_ns: int, **attributes: Any) -> None:
    """A finished step (a journal write, an API call) as a child of the current span."""
    tracer = _start()
    if tracer is None:
        return
    span = tracer.start_span(
        name,
        start_time=started_ns,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )
    span.end(end_time=time.time_ns())
