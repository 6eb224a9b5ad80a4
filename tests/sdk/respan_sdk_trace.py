#!/usr/bin/env python3
"""Traces a small workflow with the vendor's real Python SDK (respan-tracing) into tracehouse.

    respan_sdk_trace.py [BASE_URL [API_KEY]]

BASE_URL is what a user of the SDK passes as `base_url` (or RESPAN_BASE_URL): the API root,
`http://127.0.0.1:8080/api`; the SDK posts OTLP JSON to `{BASE_URL}/v2/traces`. Without
arguments, TRACEHOUSE_BASE_URL and TRACEHOUSE_API_KEY are read. It must be a loopback URL.

The trace: workflow `joke_workflow` > task `joke_creation` > a chat span shaped the way the
OpenLLMetry OpenAI instrumentation shapes one (no model is called). The last stdout line is
the trace id, 32 lowercase hex digits. Exits non-zero when the spans could not be delivered.
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import loopback_guard  # noqa: E402

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
SYSTEM_PROMPT = "You are a funny assistant."
USER_PROMPT = "Tell me a joke about opentelemetry"
COMPLETION = "Why did the span break up with the trace? It needed more context."
PROMPT_TOKENS = 24
COMPLETION_TOKENS = 15


def arguments() -> tuple[str, str]:
    base = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRACEHOUSE_BASE_URL")
    key = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("TRACEHOUSE_API_KEY")
    if not base or not key:
        sys.exit(__doc__)
    return base.rstrip("/"), key


def main() -> None:
    base, key = arguments()
    loopback_guard.require_loopback_url(base)
    loopback_guard.install()
    # Nothing from the environment may redirect the SDK or add exporters: the SDK reads
    # RESPAN_* at import time, OpenTelemetry reads OTEL_*, OpenLLMetry TRACELOOP_*.
    for name in list(os.environ):
        if name.startswith(("RESPAN_", "OTEL_", "TRACELOOP_", "KEYWORDSAI_")):
            del os.environ[name]

    from opentelemetry.semconv_ai import SpanAttributes
    from opentelemetry.trace import SpanKind
    from respan_tracing import (
        RespanTelemetry,
        get_client,
        respan_span_attributes,
        task,
        workflow,
    )
    from respan_tracing.exporters import RespanSpanExporter

    exported = {"ok": 0, "failed": 0}
    real_export = RespanSpanExporter.export

    def counting_export(self, spans):  # type: ignore[no-untyped-def]
        result = real_export(self, spans)
        exported["ok" if result.name == "SUCCESS" else "failed"] += len(spans)
        return result

    RespanSpanExporter.export = counting_export  # type: ignore[method-assign]

    telemetry = RespanTelemetry(
        app_name="tracehouse-sdk-e2e",
        api_key=key,
        base_url=base,
        log_level="WARNING",
    )
    # The SDK's only exporter is the one it made from base_url and api_key.
    processors = telemetry.tracer.tracer_provider._active_span_processor._span_processors
    if len(processors) != 1:
        sys.exit(f"expected one span processor, found {processors}")

    client = get_client()

    def fake_chat_completion(messages: list[dict[str, str]]) -> str:
        """A chat span with the attributes the OpenLLMetry OpenAI instrumentation sets."""
        tracer = client.get_tracer()
        with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as span:
            span.set_attribute(SpanAttributes.LLM_SYSTEM, "openai")
            span.set_attribute(SpanAttributes.LLM_REQUEST_TYPE, "chat")
            span.set_attribute(SpanAttributes.LLM_REQUEST_MODEL, MODEL)
            span.set_attribute(SpanAttributes.LLM_RESPONSE_MODEL, RESPONSE_MODEL)
            span.set_attribute("gen_ai.request.temperature", 0.7)
            for index, message in enumerate(messages):
                prefix = f"{SpanAttributes.LLM_PROMPTS}.{index}"
                span.set_attribute(f"{prefix}.role", message["role"])
                span.set_attribute(f"{prefix}.content", message["content"])
            span.set_attribute(f"{SpanAttributes.LLM_COMPLETIONS}.0.role", "assistant")
            span.set_attribute(f"{SpanAttributes.LLM_COMPLETIONS}.0.content", COMPLETION)
            span.set_attribute(f"{SpanAttributes.LLM_COMPLETIONS}.0.finish_reason", "stop")
            span.set_attribute(SpanAttributes.LLM_USAGE_PROMPT_TOKENS, PROMPT_TOKENS)
            span.set_attribute(SpanAttributes.LLM_USAGE_COMPLETION_TOKENS, COMPLETION_TOKENS)
            span.set_attribute(
                SpanAttributes.LLM_USAGE_TOTAL_TOKENS, PROMPT_TOKENS + COMPLETION_TOKENS
            )
        return COMPLETION

    @task(name="joke_creation")
    def create_joke(topic: str) -> str:
        return fake_chat_completion(
            [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Tell me a joke about {topic}"},
            ]
        )

    @workflow(name="joke_workflow")
    def joke_workflow(topic: str) -> dict[str, str]:
        trace_id = client.get_current_trace_id()
        with respan_span_attributes(
            {
                "customer_identifier": "sdk-e2e-customer",
                "metadata": {"suite": "tracehouse-e2e"},
            }
        ):
            joke = create_joke(topic)
        return {"trace_id": trace_id, "joke": joke}

    result = joke_workflow("opentelemetry")
    telemetry.flush()
    loopback_guard.exit_if_blocked()
    if exported["failed"] or exported["ok"] < 3:
        sys.exit(f"the SDK did not deliver the spans: {exported}")
    print(f"exported {exported['ok']} spans to {base}", file=sys.stderr)
    print(result["trace_id"])


if __name__ == "__main__":
    main()
