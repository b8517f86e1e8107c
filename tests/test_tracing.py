"""OpenTelemetry: a trace per delivery when on (the SDK's in-memory exporter stands in for the
collector), and nothing at all when off or not installed."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from framework.observe import tracing
from framework.testing import payloads, run_bot
from sample_bots.labeler import app as labeler


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_checked", False)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    return exporter


async def test_one_trace_per_delivery_from_receipt_to_each_api_call(
    exporter: InMemorySpanExporter,
) -> None:
    async with run_bot(labeler) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=4), delivery_id="d-t")
        assert result.status == "done", result.errors
        await bot.app.wait_idle()
        stored = await (await bot.app.open_journal()).get("d-t")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    receive, journal = spans["webhook receive"], spans["journal record"]
    handle = spans["handle delivery"]
    label = spans["POST /repos/{owner}/{repo}/issues/{number}/labels"]
    mint = spans["POST /app/installations/{number}/access_tokens"]
    assert len({s.context.trace_id for s in (receive, journal, handle, label, mint)}) == 1
    assert journal.parent is not None and journal.parent.span_id == receive.context.span_id
    assert handle.parent is not None and handle.parent.span_id == receive.context.span_id
    assert label.parent is not None and label.parent.span_id == handle.context.span_id
    assert receive.attributes is not None and receive.attributes["github.delivery"] == "d-t"
    assert receive.attributes["http.response.status_code"] == 202
    assert handle.attributes is not None and handle.attributes["outcome"] == "done"
    assert handle.attributes["github.repository"] == "octo-org/hello"
    assert label.attributes is not None and label.attributes["http.response.status_code"] == 200
    # The stored delivery carries the receiver's trace to whichever process runs it.
    assert stored is not None
    trace_id, span_id = f"{receive.context.trace_id:032x}", f"{receive.context.span_id:016x}"
    assert stored.delivery.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")


def test_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_checked", False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.enabled() is False
    headers = {"x-github-delivery": "d-1"}
    assert tracing.receiving(headers) is None and headers == {"x-github-delivery": "d-1"}
    assert tracing.handling("d-1", "issues", "opened", {}) is None


def test_off_when_the_extra_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_checked", False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    real_import = builtins.__import__

    def without_opentelemetry(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_opentelemetry)
    assert tracing.enabled() is False
    assert tracing.handling("d-1", "issues", "opened", {}) is None


def test_on_with_an_endpoint_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_checked", False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("OTEL_SERVICE_NAME", "labeler-under-test")
    installed: list[object] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    assert tracing.enabled() is True
    [provider] = installed
    assert provider.resource.attributes["service.name"] == "labeler-under-test"  # type: ignore[attr-defined]
    provider.shutdown()  # type: ignore[attr-defined]
