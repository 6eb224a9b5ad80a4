//! OTLP decoding end to end: the captured fixtures, each attribute convention, both encodings,
//! and the ways a body or a span can be wrong.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest as OtlpExportRequest,
    ExportTraceServiceResponse as OtlpExportResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue as OtlpAnyValue, ArrayValue as OtlpArrayValue, InstrumentationScope as OtlpScope,
    KeyValue as OtlpKeyValue, KeyValueList as OtlpKeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::span::{Event as OtlpEvent, Link as OtlpLink};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans as OtlpResourceSpans, ScopeSpans as OtlpScopeSpans, Span as OtlpSpan,
    Status as OtlpStatus,
};
use prost::Message as _;
use serde_json::{Value, json};
use tracehouse_core::{IngestContext, PriceTable, Span, SpanStatus, Timestamp};
use tracehouse_ingest::otlp::{
    MAX_ATTRIBUTE_DEPTH, OtlpEncoding, decode_otlp, encode_export_response,
};
use tracehouse_ingest::spanlog::decode_span_logs;
use tracehouse_ingest::{DecodeError, Decoded};

const RECEIVED: Timestamp = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
const START: u64 = 1_757_317_578_037_942_000;
const END: u64 = 1_757_317_579_041_781_000;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn decode(body: &[u8], encoding: OtlpEncoding) -> Result<Decoded, DecodeError> {
    let prices = PriceTable::builtin();
    decode_otlp(
        body,
        encoding,
        IngestContext {
            received_at: RECEIVED,
            prices: &prices,
        },
    )
}

fn decode_ok(body: &[u8], encoding: OtlpEncoding) -> Decoded {
    decode(body, encoding).unwrap_or_else(|e| panic!("body refused: {e}"))
}

fn by_name<'a>(decoded: &'a Decoded, name: &str) -> &'a Span {
    decoded
        .spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span named {name}"))
}

fn parent_name<'a>(decoded: &'a Decoded, span: &Span) -> Option<&'a str> {
    let parent = span.parent_id.as_ref()?;
    decoded
        .spans
        .iter()
        .find(|candidate| &candidate.span_id == parent)
        .map(|found| found.name.as_str())
}

fn content<'a>(span: &'a Span, field: &str) -> Option<&'a Value> {
    span.content.get(field)
}

fn metadata<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.metadata().and_then(|metadata| metadata.get(key))
}

fn any(value: OtlpValue) -> OtlpAnyValue {
    OtlpAnyValue { value: Some(value) }
}

fn text(value: &str) -> OtlpAnyValue {
    any(OtlpValue::StringValue(value.to_owned()))
}

fn int(value: i64) -> OtlpAnyValue {
    any(OtlpValue::IntValue(value))
}

fn double(value: f64) -> OtlpAnyValue {
    any(OtlpValue::DoubleValue(value))
}

fn flag(value: bool) -> OtlpAnyValue {
    any(OtlpValue::BoolValue(value))
}

fn kv(key: &str, value: OtlpAnyValue) -> OtlpKeyValue {
    OtlpKeyValue {
        key: key.to_owned(),
        value: Some(value),
    }
}

fn otlp_span(id: u8, parent: Option<u8>, name: &str, attributes: Vec<OtlpKeyValue>) -> OtlpSpan {
    OtlpSpan {
        trace_id: vec![0xab; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.to_owned(),
        start_time_unix_nano: START,
        end_time_unix_nano: END,
        attributes,
        ..OtlpSpan::default()
    }
}

fn request(spans: Vec<OtlpSpan>) -> OtlpExportRequest {
    OtlpExportRequest {
        resource_spans: vec![OtlpResourceSpans {
            scope_spans: vec![OtlpScopeSpans {
                spans,
                ..OtlpScopeSpans::default()
            }],
            ..OtlpResourceSpans::default()
        }],
    }
}

/// Decodes a request in both encodings, checks they agree, and returns the result.
fn decode_both(request: &OtlpExportRequest) -> Decoded {
    let from_protobuf = decode_ok(&request.encode_to_vec(), OtlpEncoding::Protobuf);
    let json = serde_json::to_vec(request).unwrap_or_else(|e| panic!("cannot write JSON: {e}"));
    let from_json = decode_ok(&json, OtlpEncoding::Json);
    assert_eq!(from_protobuf, from_json, "protobuf and JSON disagree");
    from_protobuf
}

/// The one span a single-span request decodes to.
fn one_span(attributes: Vec<OtlpKeyValue>) -> Span {
    one_of(otlp_span(1, None, "step", attributes))
}

fn one_of(span: OtlpSpan) -> Span {
    let mut decoded = decode_both(&request(vec![span]));
    assert_eq!(decoded.rejected, vec![], "unexpected rejection");
    assert_eq!(decoded.spans.len(), 1);
    decoded.spans.remove(0)
}

// --- fixtures ---------------------------------------------------------------------------

#[test]
fn sdk_json_capture_decodes_to_the_weather_trace() {
    let decoded = decode_ok(&fixture("otlp-json-sdk-capture.json"), OtlpEncoding::Json);
    assert_eq!(decoded.rejected, vec![]);
    let names: Vec<&str> = decoded.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lookup_weather.tool",
            "fake_llm_call.task",
            "weather_agent.agent",
            "failing_step.task",
            "capture_workflow.workflow",
            "openai.chat"
        ]
    );
    for span in &decoded.spans {
        assert_eq!(span.trace_id.as_str(), "877eb7b28574d72d7edf47ab7e423a4b");
    }
    assert_capture_shape(&decoded);

    let root = by_name(&decoded, "capture_workflow.workflow");
    assert!(root.is_root());
    assert_eq!(root.span_id.as_str(), "2ada518e5c1e1ce0");
    assert_eq!(root.start.unix_nanos(), 1_795_555_893_710_113_465);
    assert_eq!(root.end.unix_nanos(), 1_795_555_893_711_395_902);
    assert!((root.latency - 0.001_282_437).abs() < 1e-12);
    assert_eq!(
        root.grouping.customer_identifier.as_deref(),
        Some("user-123")
    );
    assert_eq!(
        root.grouping.session_identifier.as_deref(),
        Some("group-xyz")
    );
    assert_eq!(
        root.grouping.thread_identifier.as_deref(),
        Some("thread-abc")
    );
    assert_eq!(
        root.grouping.trace_group_identifier.as_deref(),
        Some("group-xyz")
    );
    assert_eq!(root.workflow_name.as_deref(), Some("capture_workflow"));
    assert_eq!(root.path, None);
    assert_eq!(metadata(root, "plan"), Some(&json!("pro")));
    assert_eq!(metadata(root, "run"), Some(&json!("capture")));
    assert_eq!(
        metadata(root, "_tracing_sdk_version"),
        Some(&json!("2.24.0"))
    );
    assert_eq!(
        metadata(root, "respan.entity.log_method"),
        Some(&json!("python_tracing"))
    );
    assert_eq!(
        content(root, "input"),
        Some(&json!("{\"args\": [\"Paris\"], \"kwargs\": {}}"))
    );
    assert_eq!(
        content(root, "output"),
        Some(&json!("{\"answer\": \"It is sunny.\"}"))
    );
    assert_eq!(
        content(root, "resource"),
        Some(&json!({"service.name": "capture-demo"}))
    );
    assert_eq!(
        content(root, "scope"),
        Some(&json!({"name": "respan.tracer"}))
    );
    assert_eq!(content(root, "otel_span_kind"), Some(&json!("internal")));

    let tool = by_name(&decoded, "lookup_weather.tool");
    assert_eq!(tool.path.as_deref(), Some("lookup_weather"));
    assert_eq!(tool.workflow_name.as_deref(), Some("weather_agent"));
    assert_eq!(
        content(tool, "output"),
        Some(&json!("{\"city\": \"Paris\", \"temp_c\": 21}"))
    );

    let chat = by_name(&decoded, "openai.chat");
    assert_eq!(chat.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(chat.provider_id.as_deref(), Some("openai"));
    assert_eq!(chat.usage.prompt_tokens, Some(12));
    assert_eq!(chat.usage.completion_tokens, Some(4));
    assert_eq!(chat.usage.total_tokens, Some(16));
    assert!(chat.cost.is_some_and(|cost| cost > 0.0), "{:?}", chat.cost);
    assert_eq!(content(chat, "temperature"), Some(&json!(0.2)));
    assert_eq!(content(chat, "max_tokens"), Some(&json!(64)));
    assert_eq!(
        content(chat, "prompt_messages"),
        Some(
            &json!([{"role": "user", "content": "Weather in Paris? data={\"city\": \"Paris\", \"temp_c\": 21}"}])
        )
    );
    assert_eq!(
        content(chat, "completion_message"),
        Some(&json!({"role": "assistant", "content": "It is sunny."}))
    );
    assert_eq!(content(chat, "scope"), Some(&json!({"name": "manual.llm"})));
    assert_eq!(chat.status, SpanStatus::Success);

    let failed = by_name(&decoded, "failing_step.task");
    assert_eq!(failed.status, SpanStatus::Error);
    assert_eq!(failed.error_message.as_deref(), Some("ValueError: boom"));
    let exception = content(failed, "exception");
    assert_eq!(
        exception.and_then(|e| e.get("type")),
        Some(&json!("ValueError"))
    );
    let stacktrace = exception
        .and_then(|e| e.get("stacktrace"))
        .and_then(Value::as_str);
    assert!(
        stacktrace.is_some_and(|s| s.starts_with("Traceback")),
        "{stacktrace:?}"
    );
    let events = content(failed, "otel_events").and_then(Value::as_array);
    assert_eq!(events.map(Vec::len), Some(1));
    let event = events.and_then(|events| events.first());
    assert_eq!(event.and_then(|e| e.get("name")), Some(&json!("exception")));
    assert_eq!(
        event.and_then(|e| e.get("time")),
        Some(&json!("2026-11-24T21:31:33.711350838Z"))
    );
    let successes = decoded
        .spans
        .iter()
        .filter(|s| s.status == SpanStatus::Success)
        .count();
    assert_eq!(successes, 5);
}

#[test]
fn vendor_json_sample_decodes_with_explicit_log_types() {
    let decoded = decode_ok(&fixture("otlp-json-sample.json"), OtlpEncoding::Json);
    assert_eq!(decoded.rejected, vec![]);
    let kinds: Vec<(&str, &str, Option<&str>)> = decoded
        .spans
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.log_type.as_str(),
                parent_name(&decoded, s),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("customer_support_pipeline", "workflow", None),
            ("support_agent", "agent", Some("customer_support_pipeline")),
            ("lookup_order", "tool", Some("support_agent")),
            ("openai.chat", "chat", Some("support_agent")),
            ("process_refund", "tool", Some("support_agent")),
            ("openai.chat", "chat", Some("support_agent")),
            ("log_resolution", "task", Some("customer_support_pipeline")),
        ]
    );
    let root = &decoded.spans[0];
    assert_eq!(root.trace_id.as_str(), "aaaabbbbccccdddd1111222233334444");
    assert_eq!(root.start.to_rfc3339(), "2024-09-08T06:46:40Z");
    assert_eq!(root.latency, 8.0);
    assert_eq!(
        content(root, "resource"),
        Some(&json!({"service.name": "customer-support-agent"}))
    );

    let first_chat = &decoded.spans[3];
    assert_eq!(first_chat.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(
        metadata(first_chat, "gen_ai.request.model"),
        Some(&json!("gpt-4o"))
    );
    assert_eq!(first_chat.usage.prompt_tokens, Some(385));
    assert_eq!(first_chat.usage.completion_tokens, Some(120));
    assert_eq!(first_chat.usage.total_tokens, Some(505));
    assert_eq!(content(first_chat, "temperature"), Some(&json!(0.7)));
    let prompts = content(first_chat, "prompt_messages").and_then(Value::as_array);
    let roles: Vec<&str> = prompts
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("role").and_then(Value::as_str))
        .collect();
    assert_eq!(roles, ["system", "user"]);
    let second_chat = &decoded.spans[5];
    assert_eq!(
        content(second_chat, "prompt_messages")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(4)
    );
    let answer = content(second_chat, "completion_message").and_then(|m| m.get("content"));
    assert!(
        answer
            .and_then(Value::as_str)
            .is_some_and(|a| a.contains("$49.99"))
    );
    assert!(
        decoded
            .spans
            .iter()
            .all(|s| s.status == SpanStatus::Success)
    );
}

#[test]
fn protobuf_capture_from_the_older_sdk_reads_keywordsai_attributes() {
    let decoded = decode_ok(
        &fixture("otlp-protobuf-sdk-capture.pb"),
        OtlpEncoding::Protobuf,
    );
    assert_eq!(decoded.rejected, vec![]);
    assert_capture_shape(&decoded);
    let trace = &decoded.spans[0].trace_id;
    assert!(decoded.spans.iter().all(|s| &s.trace_id == trace));
    assert_eq!(trace.as_str().len(), 32);

    let root = by_name(&decoded, "capture_workflow.workflow");
    assert_eq!(
        root.grouping.customer_identifier.as_deref(),
        Some("user-123")
    );
    assert_eq!(
        root.grouping.thread_identifier.as_deref(),
        Some("thread-abc")
    );
    assert_eq!(
        root.grouping.trace_group_identifier.as_deref(),
        Some("group-xyz")
    );
    assert_eq!(metadata(root, "plan"), Some(&json!("pro")));
    assert_eq!(
        metadata(root, "keywordsai.entity.log_method"),
        Some(&json!("python_tracing"))
    );
    assert_eq!(
        content(root, "scope"),
        Some(&json!({"name": "keywordsai.tracer"}))
    );

    let failed = by_name(&decoded, "failing_step.task");
    assert_eq!(failed.status, SpanStatus::Error);
    assert_eq!(failed.error_message.as_deref(), Some("ValueError: boom"));

    let chat = by_name(&decoded, "openai.chat");
    assert_eq!(chat.path.as_deref(), Some("lookup_weather.fake_llm_call"));
    assert_eq!(chat.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(chat.usage.total_tokens, Some(16));
    assert_eq!(
        content(chat, "completion_message"),
        Some(&json!({"role": "assistant", "content": "It is sunny."}))
    );
}

#[test]
fn fixtures_decode_the_same_in_either_encoding() {
    for name in ["otlp-json-sdk-capture.json", "otlp-json-sample.json"] {
        let body = fixture(name);
        let request: OtlpExportRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            decode_ok(&request.encode_to_vec(), OtlpEncoding::Protobuf),
            decode_ok(&body, OtlpEncoding::Json),
            "{name}"
        );
    }
    let body = fixture("otlp-protobuf-sdk-capture.pb");
    let request = OtlpExportRequest::decode(body.as_slice()).unwrap();
    assert_eq!(
        decode_ok(&serde_json::to_vec(&request).unwrap(), OtlpEncoding::Json),
        decode_ok(&body, OtlpEncoding::Protobuf)
    );
}

// --- one span, one span log ---------------------------------------------------------------

#[test]
fn an_otlp_span_stores_like_the_equivalent_span_log() {
    let otlp = one_of(otlp_span(
        2,
        Some(1),
        "openai.chat",
        vec![
            kv("traceloop.workflow.name", text("joke")),
            kv("traceloop.entity.path", text("joke_creation")),
            kv("llm.request.type", text("chat")),
            kv("gen_ai.system", text("openai")),
            kv("gen_ai.request.model", text("gpt-4o-mini")),
            kv("gen_ai.request.temperature", double(0.5)),
            kv("gen_ai.request.max_tokens", int(100)),
            kv("llm.is_streaming", flag(false)),
            kv("gen_ai.prompt.0.role", text("user")),
            kv("gen_ai.prompt.0.content", text("tell me a joke")),
            kv("gen_ai.completion.0.role", text("assistant")),
            kv("gen_ai.completion.0.content", text("no")),
            kv("gen_ai.usage.prompt_tokens", int(15)),
            kv("gen_ai.usage.completion_tokens", int(10)),
            kv("respan.customer_params.customer_identifier", text("acme")),
            kv("respan.environment", text("prod")),
            kv("respan.metadata.plan", text("pro")),
            kv("custom.flag", flag(true)),
        ],
    ));
    let span_log = json!([{
        "trace_unique_id": "ab".repeat(16),
        "span_unique_id": "0202020202020202",
        "span_parent_id": "0101010101010101",
        "span_name": "openai.chat",
        "start_time": "2025-09-08T07:46:18.037942Z",
        "timestamp": "2025-09-08T07:46:19.041781Z",
        "span_workflow_name": "joke",
        "span_path": "joke_creation",
        "log_type": "chat",
        "provider_id": "openai",
        "model": "gpt-4o-mini",
        "temperature": 0.5,
        "max_tokens": 100,
        "stream": false,
        "prompt_messages": [{"role": "user", "content": "tell me a joke"}],
        "completion_message": {"role": "assistant", "content": "no"},
        "prompt_tokens": 15,
        "completion_tokens": 10,
        "customer_identifier": "acme",
        "environment": "prod",
        "metadata": {"plan": "pro", "custom.flag": true},
    }]);
    let prices = PriceTable::builtin();
    let mut from_log = decode_span_logs(
        span_log.to_string().as_bytes(),
        IngestContext {
            received_at: RECEIVED,
            prices: &prices,
        },
    )
    .unwrap();
    assert_eq!(from_log.rejected, vec![]);
    assert_eq!(otlp, from_log.spans.remove(0));
    assert!(otlp.cost.is_some());
}

// --- conventions ----------------------------------------------------------------------------

#[test]
fn traceloop_workflow_attributes() {
    let span = one_span(vec![
        kv("traceloop.span.kind", text("agent")),
        kv("traceloop.workflow.name", text("planner")),
        kv("traceloop.entity.path", text("plan.step")),
        kv("traceloop.entity.input", text("{\"q\": 1}")),
        kv("traceloop.entity.output", text("\"done\"")),
        kv("traceloop.entity.name", text("step")),
        kv("traceloop.association.properties.user_id", text("u-7")),
    ]);
    assert_eq!(span.log_type.as_str(), "agent");
    assert_eq!(span.workflow_name.as_deref(), Some("planner"));
    assert_eq!(span.path.as_deref(), Some("plan.step"));
    assert_eq!(content(&span, "input"), Some(&json!("{\"q\": 1}")));
    assert_eq!(content(&span, "output"), Some(&json!("\"done\"")));
    assert_eq!(
        metadata(&span, "traceloop.entity.name"),
        Some(&json!("step"))
    );
    assert_eq!(metadata(&span, "user_id"), Some(&json!("u-7")));

    let unnamed = one_of(otlp_span(
        1,
        None,
        "",
        vec![kv("traceloop.entity.name", text("fallback"))],
    ));
    assert_eq!(unnamed.name, "fallback");
}

#[test]
fn log_type_sources_in_order_of_strength() {
    let kind = |attributes: Vec<OtlpKeyValue>| one_span(attributes).log_type.as_str().to_owned();
    assert_eq!(
        kind(vec![
            kv("traceloop.span.kind", text("task")),
            kv("respan.entity.log_type", text("Generation"))
        ]),
        "generation"
    );
    assert_eq!(
        kind(vec![
            kv("keywordsai.entity.log_type", text("handoff")),
            kv("llm.request.type", text("chat"))
        ]),
        "handoff"
    );
    assert_eq!(
        kind(vec![kv("llm.request.type", text("embedding"))]),
        "embedding"
    );
    assert_eq!(
        kind(vec![kv("llm.request.type", text("completion"))]),
        "completion"
    );
    assert_eq!(kind(vec![kv("traceloop.span.kind", text("tool"))]), "tool");
    assert_eq!(
        kind(vec![kv("openinference.span.kind", text("LLM"))]),
        "chat"
    );
    assert_eq!(
        kind(vec![kv("openinference.span.kind", text("RETRIEVER"))]),
        "retriever"
    );
    assert_eq!(
        kind(vec![kv("gen_ai.operation.name", text("embeddings"))]),
        "embedding"
    );
    assert_eq!(
        kind(vec![kv("gen_ai.operation.name", text("text_completion"))]),
        "completion"
    );
    assert_eq!(
        kind(vec![kv("gen_ai.operation.name", text("execute_tool"))]),
        "tool"
    );
    // Nothing said: left to inference (name `step`, no model, no messages).
    assert_eq!(
        kind(vec![kv("traceloop.span.kind", text("unknown"))]),
        "custom"
    );
    assert_eq!(
        kind(vec![kv("gen_ai.request.model", text("gpt-4o"))]),
        "chat"
    );
    let named = one_of(otlp_span(1, None, "store.task", vec![]));
    assert_eq!(named.log_type.as_str(), "task");
}

#[test]
fn model_provider_and_parameters() {
    let span = one_span(vec![
        kv("gen_ai.system", text("Anthropic")),
        kv("gen_ai.request.model", text("claude-x")),
        kv("gen_ai.response.model", text("claude-x-2025")),
        kv("gen_ai.request.temperature", double(0.3)),
        kv("gen_ai.request.max_tokens", int(256)),
        kv("gen_ai.request.top_p", double(0.9)),
        kv("llm.frequency_penalty", double(0.1)),
        kv("llm.presence_penalty", int(1)),
        kv("llm.is_streaming", flag(true)),
    ]);
    assert_eq!(span.model.as_deref(), Some("claude-x-2025"));
    assert_eq!(span.provider_id.as_deref(), Some("Anthropic"));
    assert_eq!(
        metadata(&span, "gen_ai.request.model"),
        Some(&json!("claude-x"))
    );
    assert_eq!(content(&span, "temperature"), Some(&json!(0.3)));
    assert_eq!(content(&span, "max_tokens"), Some(&json!(256)));
    assert_eq!(content(&span, "top_p"), Some(&json!(0.9)));
    assert_eq!(content(&span, "frequency_penalty"), Some(&json!(0.1)));
    assert_eq!(content(&span, "presence_penalty"), Some(&json!(1)));
    assert_eq!(content(&span, "stream"), Some(&json!(true)));
}

#[test]
fn indexed_prompt_and_completion_messages_with_tool_calls() {
    let span = one_span(vec![
        kv("gen_ai.prompt.0.role", text("system")),
        kv("gen_ai.prompt.0.content", text("be brief")),
        kv("gen_ai.prompt.1.role", text("user")),
        kv("gen_ai.prompt.1.content", text("weather?")),
        kv("gen_ai.completion.0.role", text("assistant")),
        kv("gen_ai.completion.0.finish_reason", text("tool_calls")),
        kv("gen_ai.completion.0.tool_calls.0.id", text("call_1")),
        kv("gen_ai.completion.0.tool_calls.0.name", text("get_weather")),
        kv(
            "gen_ai.completion.0.tool_calls.0.arguments",
            text("{\"city\": \"Paris\"}"),
        ),
        kv("llm.request.functions.0.name", text("get_weather")),
        kv(
            "llm.request.functions.0.description",
            text("weather by city"),
        ),
        kv(
            "llm.request.functions.0.parameters",
            text("{\"type\": \"object\"}"),
        ),
    ]);
    assert_eq!(
        content(&span, "prompt_messages"),
        Some(
            &json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"}])
        )
    );
    assert_eq!(
        content(&span, "completion_message"),
        Some(
            &json!({"role": "assistant", "finish_reason": "tool_calls", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
            ]})
        )
    );
    assert_eq!(
        content(&span, "tools"),
        Some(&json!([{"type": "function", "function": {
            "name": "get_weather", "description": "weather by city", "parameters": {"type": "object"}
        }}]))
    );
    assert_eq!(span.log_type.as_str(), "chat");
}

#[test]
fn token_counts_including_cache_and_reasoning() {
    let span = one_span(vec![
        kv("gen_ai.usage.input_tokens", int(100)),
        kv("gen_ai.usage.output_tokens", int(20)),
        kv("gen_ai.usage.cache_read_input_tokens", int(80)),
        kv("gen_ai.usage.cache_creation_input_tokens", int(5)),
        kv("gen_ai.usage.reasoning_tokens", int(7)),
    ]);
    assert_eq!(span.usage.prompt_tokens, Some(100));
    assert_eq!(span.usage.completion_tokens, Some(20));
    assert_eq!(span.usage.total_tokens, Some(120));
    assert_eq!(
        content(&span, "usage"),
        Some(
            &json!({"cache_read_input_tokens": 80, "cache_creation_input_tokens": 5, "reasoning_tokens": 7})
        )
    );
    let total = one_span(vec![
        kv("gen_ai.usage.prompt_tokens", int(3)),
        kv("llm.usage.total_tokens", int(50)),
    ]);
    assert_eq!(total.usage.total_tokens, Some(50));
}

#[test]
fn respan_grouping_metadata_and_properties() {
    let span = one_span(vec![
        kv("respan.customer_params.customer_identifier", text("cust-1")),
        kv("respan.customer_params.email", text("a@example.com")),
        kv("keywordsai.customer_params.name", text("Ada")),
        kv("respan.threads.thread_identifier", text("thread-1")),
        kv("respan.sessions.session_identifier", text("session-1")),
        kv("respan.trace.trace_group_identifier", text("group-1")),
        kv("respan.environment", text("staging")),
        kv("respan.metadata.plan", text("pro")),
        kv("keywordsai.metadata.seats", int(3)),
        kv("respan.properties.tier", text("gold")),
    ]);
    assert_eq!(span.grouping.customer_identifier.as_deref(), Some("cust-1"));
    assert_eq!(span.grouping.thread_identifier.as_deref(), Some("thread-1"));
    assert_eq!(
        span.grouping.session_identifier.as_deref(),
        Some("session-1")
    );
    assert_eq!(
        span.grouping.trace_group_identifier.as_deref(),
        Some("group-1")
    );
    assert_eq!(span.grouping.environment.as_deref(), Some("staging"));
    assert_eq!(
        content(&span, "customer_params"),
        Some(&json!({"email": "a@example.com", "name": "Ada"}))
    );
    assert_eq!(
        span.metadata(),
        json!({"plan": "pro", "seats": 3}).as_object()
    );
    assert_eq!(content(&span, "properties"), Some(&json!({"tier": "gold"})));

    let as_json = one_span(vec![kv(
        "respan.properties",
        text("{\"tier\": \"silver\"}"),
    )]);
    assert_eq!(
        content(&as_json, "properties"),
        Some(&json!({"tier": "silver"}))
    );
}

#[test]
fn openinference_attributes() {
    let span = one_span(vec![
        kv("openinference.span.kind", text("LLM")),
        kv("llm.model_name", text("gpt-4o")),
        kv("llm.provider", text("openai")),
        kv("llm.token_count.prompt", int(9)),
        kv("llm.token_count.completion", int(3)),
        kv("llm.token_count.total", int(12)),
        kv("input.value", text("hi")),
        kv("output.value", text("hello")),
        kv("llm.input_messages.0.message.role", text("user")),
        kv("llm.input_messages.0.message.content", text("hi")),
        kv("llm.output_messages.0.message.role", text("assistant")),
        kv("llm.output_messages.0.message.content", text("hello")),
        kv("session.id", text("s-1")),
        kv("user.id", text("u-1")),
        kv("metadata", text("{\"source\": \"test\"}")),
    ]);
    assert_eq!(span.log_type.as_str(), "chat");
    assert_eq!(span.model.as_deref(), Some("gpt-4o"));
    assert_eq!(span.provider_id.as_deref(), Some("openai"));
    assert_eq!(
        (
            span.usage.prompt_tokens,
            span.usage.completion_tokens,
            span.usage.total_tokens
        ),
        (Some(9), Some(3), Some(12))
    );
    assert_eq!(content(&span, "input"), Some(&json!("hi")));
    assert_eq!(content(&span, "output"), Some(&json!("hello")));
    assert_eq!(
        content(&span, "prompt_messages"),
        Some(&json!([{"role": "user", "content": "hi"}]))
    );
    assert_eq!(
        content(&span, "completion_message"),
        Some(&json!({"role": "assistant", "content": "hello"}))
    );
    assert_eq!(span.grouping.session_identifier.as_deref(), Some("s-1"));
    assert_eq!(span.grouping.customer_identifier.as_deref(), Some("u-1"));
    assert_eq!(metadata(&span, "source"), Some(&json!("test")));
}

#[test]
fn genai_semantic_convention_attributes() {
    let input = json!([
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]}
    ]);
    let output = json!([{"role": "assistant", "finish_reason": "stop",
        "parts": [{"type": "text", "content": "sunny"}]}]);
    let span = one_span(vec![
        kv("gen_ai.operation.name", text("chat")),
        kv("gen_ai.provider.name", text("openai")),
        kv("gen_ai.request.model", text("gpt-4o")),
        kv("gen_ai.input.messages", text(&input.to_string())),
        kv("gen_ai.output.messages", text(&output.to_string())),
        kv("gen_ai.conversation.id", text("conv-1")),
        kv("gen_ai.usage.cache_read.input_tokens", int(4)),
    ]);
    assert_eq!(span.log_type.as_str(), "chat");
    assert_eq!(span.provider_id.as_deref(), Some("openai"));
    assert_eq!(
        content(&span, "prompt_messages"),
        Some(
            &json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather in Paris?"}])
        )
    );
    assert_eq!(
        content(&span, "completion_message"),
        Some(&json!({"role": "assistant", "finish_reason": "stop", "content": "sunny"}))
    );
    assert_eq!(span.grouping.thread_identifier.as_deref(), Some("conv-1"));
    assert_eq!(
        content(&span, "usage"),
        Some(&json!({"cache_read_input_tokens": 4}))
    );
}

#[test]
fn unmapped_attributes_of_every_type_are_kept_in_metadata() {
    let span = one_span(vec![
        kv("app.flag", flag(true)),
        kv("app.count", int(-4)),
        kv("app.ratio", double(0.25)),
        kv("app.bytes", any(OtlpValue::BytesValue(vec![0xde, 0xad]))),
        kv(
            "app.list",
            any(OtlpValue::ArrayValue(OtlpArrayValue {
                values: vec![text("a"), int(1)],
            })),
        ),
        kv(
            "app.map",
            any(OtlpValue::KvlistValue(OtlpKeyValueList {
                values: vec![kv("k", text("v"))],
            })),
        ),
        OtlpKeyValue {
            key: "app.empty".to_owned(),
            value: None,
        },
        kv("gen_ai.request.temperature", text("hot")),
    ]);
    assert_eq!(
        span.metadata(),
        json!({
            "app.flag": true, "app.count": -4, "app.ratio": 0.25, "app.bytes": "dead",
            "app.list": ["a", 1], "app.map": {"k": "v"}, "app.empty": null,
            "gen_ai.request.temperature": "hot",
        })
        .as_object()
    );
    assert!(!span.content.contains_key("temperature"));
}

#[test]
fn status_and_exceptions() {
    let with_status = |code: i32, message: &str, events: Vec<OtlpEvent>| {
        one_of(OtlpSpan {
            status: Some(OtlpStatus {
                code,
                message: message.to_owned(),
            }),
            events,
            ..otlp_span(1, None, "step", vec![])
        })
    };
    let exception = || OtlpEvent {
        name: "exception".to_owned(),
        time_unix_nano: END,
        attributes: vec![
            kv("exception.type", text("KeyError")),
            kv("exception.message", text("'x'")),
        ],
        dropped_attributes_count: 0,
    };

    let errored = with_status(2, "rate limited", vec![]);
    assert_eq!(errored.status, SpanStatus::Error);
    assert_eq!(errored.error_message.as_deref(), Some("rate limited"));

    let silent = with_status(2, "", vec![]);
    assert_eq!(
        (silent.status, silent.error_message),
        (SpanStatus::Error, None)
    );

    let unset_with_exception = with_status(0, "", vec![exception()]);
    assert_eq!(unset_with_exception.status, SpanStatus::Error);
    assert_eq!(
        unset_with_exception.error_message.as_deref(),
        Some("KeyError: 'x'")
    );

    let handled = with_status(1, "", vec![exception()]);
    assert_eq!(
        (handled.status, handled.error_message.as_deref()),
        (SpanStatus::Success, None)
    );
    assert_eq!(
        content(&handled, "exception"),
        Some(&json!({"type": "KeyError", "message": "'x'"}))
    );
    assert_eq!(
        content(&handled, "otel_events"),
        Some(
            &json!([{"name": "exception", "time": "2025-09-08T07:46:19.041781Z",
            "attributes": {"exception.type": "KeyError", "exception.message": "'x'"}}])
        )
    );
}

#[test]
fn otlp_structure_is_kept_in_content() {
    let span = OtlpSpan {
        kind: 3,
        trace_state: "vendor=1".to_owned(),
        links: vec![OtlpLink {
            trace_id: vec![0x0c; 16],
            span_id: vec![0x0d; 8],
            attributes: vec![kv("link.reason", text("retry"))],
            ..OtlpLink::default()
        }],
        dropped_attributes_count: 2,
        ..otlp_span(1, None, "call", vec![])
    };
    let request = OtlpExportRequest {
        resource_spans: vec![OtlpResourceSpans {
            resource: Some(OtlpResource {
                attributes: vec![
                    kv("service.name", text("api")),
                    kv("deployment.environment.name", text("prod")),
                ],
                ..OtlpResource::default()
            }),
            scope_spans: vec![OtlpScopeSpans {
                scope: Some(OtlpScope {
                    name: "my.lib".to_owned(),
                    version: "1.2.3".to_owned(),
                    attributes: vec![kv("scope.attr", int(1))],
                    dropped_attributes_count: 0,
                }),
                spans: vec![span],
                ..OtlpScopeSpans::default()
            }],
            ..OtlpResourceSpans::default()
        }],
    };
    let decoded = decode_both(&request);
    let span = &decoded.spans[0];
    assert_eq!(span.grouping.environment.as_deref(), Some("prod"));
    assert_eq!(
        content(span, "resource"),
        Some(&json!({"service.name": "api", "deployment.environment.name": "prod"}))
    );
    assert_eq!(
        content(span, "scope"),
        Some(&json!({"name": "my.lib", "version": "1.2.3", "attributes": {"scope.attr": 1}}))
    );
    assert_eq!(content(span, "otel_span_kind"), Some(&json!("client")));
    assert_eq!(content(span, "otel_trace_state"), Some(&json!("vendor=1")));
    assert_eq!(
        content(span, "otel_links"),
        Some(
            &json!([{"trace_id": "0c".repeat(16), "span_id": "0d".repeat(8),
            "attributes": {"link.reason": "retry"}}])
        )
    );
    assert_eq!(
        content(span, "otel_dropped"),
        Some(&json!({"attributes": 2}))
    );
    assert_eq!(span.metadata(), None);
}

// --- JSON spellings -------------------------------------------------------------------------

#[test]
fn json_accepts_every_spelling_the_protobuf_mapping_allows() {
    let body = json!({"resourceSpans": [{
        "resource": null,
        "scopeSpans": [{"scope": {"name": "s", "version": null}, "spans": [{
            "traceId": "ABABABABABABABABABABABABABABABAB",
            "spanId": "0101010101010101",
            "parentSpanId": "",
            "name": "step",
            "kind": "SPAN_KIND_SERVER",
            "startTimeUnixNano": START,
            "endTimeUnixNano": END.to_string(),
            "droppedAttributesCount": "1",
            "attributes": [
                {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": 5}},
                {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "6"}},
                {"key": "gen_ai.request.temperature", "value": {"doubleValue": "0.5"}},
                {"key": "app.nan", "value": {"doubleValue": "NaN"}},
                {"key": "app.empty", "value": {}},
                {"key": "app.null", "value": null},
                {"key": "app.list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {}]}}},
                {"key": "app.map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": true}}]}}}
            ],
            "events": [{"name": "e", "timeUnixNano": END}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "bad"},
            "links": null
        }]}]
    }]});
    let decoded = decode_ok(body.to_string().as_bytes(), OtlpEncoding::Json);
    assert_eq!(decoded.rejected, vec![]);
    let span = &decoded.spans[0];
    assert_eq!(span.trace_id.as_str(), "ab".repeat(16));
    assert_eq!(span.parent_id, None);
    assert_eq!(span.start.unix_nanos(), START as i64);
    assert_eq!(span.end.unix_nanos(), END as i64);
    assert_eq!(
        (span.usage.prompt_tokens, span.usage.completion_tokens),
        (Some(5), Some(6))
    );
    assert_eq!(content(span, "temperature"), Some(&json!(0.5)));
    assert_eq!(content(span, "otel_span_kind"), Some(&json!("server")));
    assert_eq!(
        content(span, "otel_dropped"),
        Some(&json!({"attributes": 1}))
    );
    assert_eq!(span.status, SpanStatus::Error);
    assert_eq!(span.error_message.as_deref(), Some("bad"));
    assert_eq!(
        span.metadata(),
        json!({"app.nan": "NaN", "app.empty": null, "app.null": null,
            "app.list": ["a", ""], "app.map": {"k": true}})
        .as_object()
    );

    let kind_as_number_text = body.to_string().replace("\"SPAN_KIND_SERVER\"", "\"2\"");
    let decoded = decode_ok(kind_as_number_text.as_bytes(), OtlpEncoding::Json);
    assert_eq!(
        content(&decoded.spans[0], "otel_span_kind"),
        Some(&json!("server"))
    );
}

#[test]
fn empty_requests_decode_to_nothing() {
    for body in [
        "{}",
        "{\"resourceSpans\": []}",
        "{\"resourceSpans\": null}",
        "\u{feff}{}",
    ] {
        assert_eq!(
            decode_ok(body.as_bytes(), OtlpEncoding::Json),
            Decoded::default(),
            "{body}"
        );
    }
    assert_eq!(decode_ok(b"", OtlpEncoding::Protobuf), Decoded::default());
}

// --- what is wrong --------------------------------------------------------------------------

#[test]
fn bodies_that_are_not_requests_are_errors() {
    let mut truncated = fixture("otlp-protobuf-sdk-capture.pb");
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        decode(&truncated, OtlpEncoding::Protobuf),
        Err(DecodeError::Protobuf(_))
    ));
    assert!(matches!(
        decode(b"\xff\xff\xff\xff", OtlpEncoding::Protobuf),
        Err(DecodeError::Protobuf(_))
    ));
    let span_log = fixture("respan-logs-sample.json");
    assert!(matches!(
        decode(&span_log, OtlpEncoding::Json),
        Err(DecodeError::WrongShape(_))
    ));
    for shape in [
        "[]",
        "42",
        r#"{"resourceSpans": 5}"#,
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"value": {"stringValue": "no key"}}]}]}]}]}"#,
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}"#,
    ] {
        assert!(
            matches!(
                decode(shape.as_bytes(), OtlpEncoding::Json),
                Err(DecodeError::WrongShape(_))
            ),
            "{shape}"
        );
    }
    assert!(matches!(
        decode(b"{\"resourceSpans\": [", OtlpEncoding::Json),
        Err(DecodeError::InvalidJson { .. })
    ));
}

#[test]
fn bad_ids_reject_only_their_span_counted_across_groups() {
    let good = |id: u8| otlp_span(id, None, "ok", vec![]);
    let with_ids = |trace_id: Vec<u8>, span_id: Vec<u8>, parent_span_id: Vec<u8>| OtlpSpan {
        trace_id,
        span_id,
        parent_span_id,
        ..otlp_span(9, None, "bad", vec![])
    };
    let group = |spans: Vec<OtlpSpan>| OtlpScopeSpans {
        spans,
        ..OtlpScopeSpans::default()
    };
    let request = OtlpExportRequest {
        resource_spans: vec![
            OtlpResourceSpans {
                scope_spans: vec![
                    group(vec![good(1), with_ids(vec![1, 2, 3], vec![1; 8], vec![])]),
                    group(vec![with_ids(vec![1; 16], vec![], vec![])]),
                ],
                ..OtlpResourceSpans::default()
            },
            OtlpResourceSpans {
                scope_spans: vec![group(vec![
                    with_ids(vec![1; 16], vec![1; 8], vec![1; 4]),
                    good(2),
                    with_ids(vec![0; 16], vec![1; 8], vec![]),
                    with_ids(vec![1; 16], vec![1; 8], vec![0; 8]),
                ])],
                ..OtlpResourceSpans::default()
            },
        ],
    };
    let decoded = decode_both(&request);
    let rejected: Vec<(usize, &str)> = decoded
        .rejected
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "trace_unique_id"),
            (2, "span_unique_id"),
            (3, "span_parent_id"),
            (5, "trace_unique_id")
        ]
    );
    assert_eq!(
        decoded.rejected[0].error,
        "trace_unique_id must be 16 bytes (32 hex digits), got 3 bytes"
    );
    // An all-zero parent is OTLP's spelling of "no parent".
    assert_eq!(decoded.spans.len(), 3);
    assert_eq!(decoded.spans[2].parent_id, None);

    let not_hex = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz", "spanId": "0101010101010101", "name": "a"},
        {"traceId": "ab".repeat(16), "spanId": "0101010101010101", "name": "b"}
    ]}]}]});
    let decoded = decode_ok(not_hex.to_string().as_bytes(), OtlpEncoding::Json);
    assert_eq!(decoded.spans.len(), 1);
    assert_eq!(decoded.rejected.len(), 1);
    assert_eq!(decoded.rejected[0].field, "trace_unique_id");
    assert_eq!(
        decoded.rejected[0].error,
        "trace_unique_id is missing or not hex"
    );
}

#[test]
fn bad_times_and_field_values_reject_their_span() {
    let late = OtlpSpan {
        start_time_unix_nano: u64::MAX,
        ..otlp_span(1, None, "late", vec![])
    };
    let decoded = decode_both(&request(vec![late]));
    assert_eq!(decoded.rejected.len(), 1);
    assert_eq!(decoded.rejected[0].field, "start_time");
}

#[test]
fn deep_values_are_refused_without_panicking() {
    fn nested(depth: usize, list: bool) -> OtlpAnyValue {
        let mut value = int(1);
        for _ in 1..depth {
            value = if list {
                any(OtlpValue::ArrayValue(OtlpArrayValue {
                    values: vec![value],
                }))
            } else {
                any(OtlpValue::KvlistValue(OtlpKeyValueList {
                    values: vec![kv("k", value)],
                }))
            };
        }
        value
    }
    // Within what both parsers accept, any depth decodes.
    let fine = one_span(vec![kv("app.deep", nested(20, false))]);
    assert!(metadata(&fine, "app.deep").is_some());

    // Far deeper than MAX_ATTRIBUTE_DEPTH, the parsers' own limits (prost's 100 nested
    // messages, serde_json's 128 levels) refuse the body first: an error, not a stack overflow.
    for list in [true, false] {
        let request = request(vec![otlp_span(
            1,
            None,
            "deep",
            vec![kv("app.deep", nested(MAX_ATTRIBUTE_DEPTH * 4, list))],
        )]);
        assert!(matches!(
            decode(&request.encode_to_vec(), OtlpEncoding::Protobuf),
            Err(DecodeError::Protobuf(_))
        ));
        let json = serde_json::to_vec(&request).unwrap();
        assert!(matches!(
            decode(&json, OtlpEncoding::Json),
            Err(DecodeError::InvalidJson { .. })
        ));
    }
    let hostile = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(decode(hostile.as_bytes(), OtlpEncoding::Json).is_err());
}

#[test]
fn too_many_spans_is_an_error() {
    let spans = vec![OtlpSpan::default(); tracehouse_ingest::spanlog::MAX_ITEMS_PER_REQUEST + 1];
    let body = request(spans).encode_to_vec();
    assert!(matches!(
        decode(&body, OtlpEncoding::Protobuf),
        Err(DecodeError::TooManyItems { .. })
    ));
}

// --- response -------------------------------------------------------------------------------

#[test]
fn export_responses_round_trip() {
    let partial = encode_export_response(
        2,
        "2 spans rejected: span 0: trace_unique_id is missing",
        OtlpEncoding::Protobuf,
    );
    let response = OtlpExportResponse::decode(partial.as_slice()).unwrap();
    let partial_success = response.partial_success.unwrap();
    assert_eq!(partial_success.rejected_spans, 2);
    assert_eq!(
        partial_success.error_message,
        "2 spans rejected: span 0: trace_unique_id is missing"
    );
    let empty = encode_export_response(0, "ignored", OtlpEncoding::Protobuf);
    assert_eq!(
        OtlpExportResponse::decode(empty.as_slice())
            .unwrap()
            .partial_success,
        None
    );

    let json = encode_export_response(3, "bad", OtlpEncoding::Json);
    let response: OtlpExportResponse = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        response
            .partial_success
            .map(|p| (p.rejected_spans, p.error_message)),
        Some((3, "bad".to_owned()))
    );
    assert_eq!(encode_export_response(0, "", OtlpEncoding::Json), b"{}");
}

/// The SDK captures (JSON and protobuf) describe the same six spans: name, kind and parent.
fn assert_capture_shape(decoded: &Decoded) {
    let shape: Vec<(&str, &str, Option<&str>)> = decoded
        .spans
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.log_type.as_str(),
                parent_name(decoded, s),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("lookup_weather.tool", "tool", Some("weather_agent.agent")),
            ("fake_llm_call.task", "task", Some("weather_agent.agent")),
            (
                "weather_agent.agent",
                "agent",
                Some("capture_workflow.workflow")
            ),
            (
                "failing_step.task",
                "task",
                Some("capture_workflow.workflow")
            ),
            ("capture_workflow.workflow", "workflow", None),
            ("openai.chat", "chat", Some("fake_llm_call.task")),
        ]
    );
}
