#!/usr/bin/env python3
"""Sends a two-span trace to tracehouse with the stock OpenTelemetry Python SDK and its
OTLP exporter, configured the way the README tells a user to: OTLP/HTTP protobuf by default,
OTLP/gRPC with `grpc`.

    otel_stock_exporter.py [BASE_URL [API_KEY [http|grpc]]]

BASE_URL is the server root, `http://127.0.0.1:8080`; spans go to `{BASE_URL}/v1/traces`.
With `grpc`, BASE_URL is the gRPC listener, `http://127.0.0.1:4317`, and spans go to its
`TraceService/Export` over plaintext HTTP/2 (`insecure=True`) with the key in the
`authorization` metadata. Without arguments, TRACEHOUSE_BASE_URL and TRACEHOUSE_API_KEY are
read. It must be a loopback URL. The last stdout line is the trace id, 32 lowercase hex
digits. Exits non-zero when the exporter could not deliver the spans.
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import loopback_guard  # noqa: E402

MODEL = "gpt-4o-mini"
USER_PROMPT = "What is OTLP?"
COMPLETION = "The OpenTelemetry protocol."
INPUT_TOKENS = 11
OUTPUT_TOKENS = 6


def arguments() -> tuple[str, str, str]:
    base = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRACEHOUSE_BASE_URL")
    key = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("TRACEHOUSE_API_KEY")
    protocol = sys.argv[3] if len(sys.argv) > 3 else "http"
    if not base or not key or protocol not in ("http", "grpc"):
        sys.exit(__doc__)
    return base.rstrip("/"), key, protocol


def exporter_class(protocol: str):  # type: ignore[no-untyped-def]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter


def main() -> None:
    base, key, protocol = arguments()
    loopback_guard.require_loopback_url(base)
    loopback_guard.install()
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            del os.environ[name]

    OTLPSpanExporter = exporter_class(protocol)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.trace import SpanKind, Status, StatusCode

    class CountingExporter(OTLPSpanExporter):
        ok = 0
        failed = 0

        def export(self, spans):  # type: ignore[no-untyped-def]
            result = super().export(spans)
            if result == SpanExportResult.SUCCESS:
                CountingExporter.ok += len(spans)
            else:
                CountingExporter.failed += len(spans)
            return result

    if protocol == "grpc":
        # gRPC metadata keys are lowercase; the gRPC core opens its own sockets, which the
        # loopback guard cannot see, so the URL was checked above instead.
        destination = base
        exporter = CountingExporter(
            endpoint=base,
            insecure=True,
            headers={"authorization": f"Bearer {key}"},
        )
    else:
        destination = f"{base}/v1/traces"
        exporter = CountingExporter(
            endpoint=destination,
            headers={"Authorization": f"Bearer {key}"},
        )
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-stock-e2e"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tracehouse.e2e.stock")

    with tracer.start_as_current_span("answer_question") as parent:
        trace_id = format(parent.get_span_context().trace_id, "032x")
        parent.set_attribute("user.question", USER_PROMPT)
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as child:
            child.set_attribute("gen_ai.system", "openai")
            child.set_attribute("gen_ai.operation.name", "chat")
            child.set_attribute("gen_ai.request.model", MODEL)
            child.set_attribute("gen_ai.usage.input_tokens", INPUT_TOKENS)
            child.set_attribute("gen_ai.usage.output_tokens", OUTPUT_TOKENS)
            child.set_attribute("gen_ai.prompt.0.role", "user")
            child.set_attribute("gen_ai.prompt.0.content", USER_PROMPT)
            child.set_attribute("gen_ai.completion.0.role", "assistant")
            child.set_attribute("gen_ai.completion.0.content", COMPLETION)
            child.set_status(Status(StatusCode.OK))

    flushed = provider.force_flush()
    provider.shutdown()
    loopback_guard.exit_if_blocked()
    if not flushed or CountingExporter.failed or CountingExporter.ok != 2:
        sys.exit(
            f"the exporter did not deliver the spans: flushed={flushed} "
            f"ok={CountingExporter.ok} failed={CountingExporter.failed}"
        )
    print(f"exported {CountingExporter.ok} spans to {destination}", file=sys.stderr)
    print(trace_id)


if __name__ == "__main__":
    main()
