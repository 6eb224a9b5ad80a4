//! The reverse direction: span logs as an OTLP `ExportTraceServiceRequest`, using the same
//! attribute conventions the decoder maps, so a span log survives the round trip through OTLP.
//! Load generators and exports use it to speak OTLP without naming OTLP types themselves.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as OtlpExportRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue as OtlpAnyValue, InstrumentationScope as OtlpScope, KeyValue as OtlpKeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans as OtlpResourceSpans, ScopeSpans as OtlpScopeSpans, Span as OtlpSpan,
    Status as OtlpStatus,
};
use prost::Message as _;
use serde_json::Value;
use tracehouse_core::Timestamp;

/// Why a span log cannot be expressed in OTLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// OTLP ids are fixed-size binary: 32 hex digits for traces, 16 for spans.
    #[error("item {index}: {field} {value:?} is not {digits} hex digits, which OTLP requires")]
    NotHexId {
        /// Item position.
        index: usize,
        /// The id field.
        field: &'static str,
        /// The id as given.
        value: String,
        /// Hex digits required.
        digits: usize,
    },
    /// An item that is not an object.
    #[error("item {index}: a span log must be a JSON object")]
    NotAnObject {
        /// Item position.
        index: usize,
    },
    /// The request could not be written as OTLP JSON.
    #[error("cannot write OTLP JSON: {0}")]
    Json(String),
}

fn hex_id(
    index: usize,
    field: &'static str,
    value: Option<&Value>,
    digits: usize,
) -> Result<Vec<u8>, EncodeError> {
    let text = value.and_then(Value::as_str).unwrap_or("");
    let error = || EncodeError::NotHexId {
        index,
        field,
        value: text.to_owned(),
        digits,
    };
    if text.len() != digits {
        return Err(error());
    }
    hex::decode(text).map_err(|_| error())
}

fn string_value(text: impl Into<String>) -> OtlpAnyValue {
    OtlpAnyValue {
        value: Some(OtlpValue::StringValue(text.into())),
    }
}

fn attribute(key: impl Into<String>, value: OtlpAnyValue) -> OtlpKeyValue {
    OtlpKeyValue {
        key: key.into(),
        value: Some(value),
    }
}

/// A JSON value as an OTLP attribute value: scalars as themselves, anything else as JSON text
/// (which the decoder parses back where the convention expects JSON).
fn any_value(value: &Value) -> Option<OtlpAnyValue> {
    let value = match value {
        Value::Null => return None,
        Value::Bool(flag) => OtlpValue::BoolValue(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => OtlpValue::IntValue(integer),
            None => OtlpValue::DoubleValue(number.as_f64()?),
        },
        Value::String(text) => OtlpValue::StringValue(text.clone()),
        other => OtlpValue::StringValue(other.to_string()),
    };
    Some(OtlpAnyValue { value: Some(value) })
}

fn time_nanos(value: Option<&Value>) -> Option<u64> {
    let time = match value? {
        Value::String(text) => Timestamp::parse(text).ok()?,
        Value::Number(number) => Timestamp::from_epoch_number(number.as_f64()?).ok()?,
        _ => return None,
    };
    u64::try_from(time.unix_nanos()).ok()
}

/// Span-log fields and the attribute each is carried in.
const FIELD_ATTRIBUTES: &[(&str, &str)] = &[
    ("log_type", "respan.entity.log_type"),
    ("span_workflow_name", "traceloop.workflow.name"),
    ("span_path", "traceloop.entity.path"),
    ("input", "traceloop.entity.input"),
    ("output", "traceloop.entity.output"),
    ("model", "gen_ai.request.model"),
    ("provider_id", "gen_ai.system"),
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("prompt_tokens", "gen_ai.usage.prompt_tokens"),
    ("completion_tokens", "gen_ai.usage.completion_tokens"),
    (
        "customer_identifier",
        "respan.customer_params.customer_identifier",
    ),
    ("thread_identifier", "respan.threads.thread_identifier"),
    ("session_identifier", "respan.sessions.session_identifier"),
    (
        "trace_group_identifier",
        "respan.trace.trace_group_identifier",
    ),
    ("environment", "respan.environment"),
];

fn span_attributes(item: &serde_json::Map<String, Value>) -> Vec<OtlpKeyValue> {
    let mut attributes = Vec::new();
    for (field, key) in FIELD_ATTRIBUTES {
        // Structured input/output travel as JSON text; strings as they are.
        if let Some(value) = item.get(*field).and_then(any_value) {
            attributes.push(attribute(*key, value));
        }
    }
    let messages = item.get("prompt_messages").and_then(Value::as_array);
    for (index, message) in messages.into_iter().flatten().enumerate() {
        for part in ["role", "content"] {
            if let Some(value) = message.get(part).and_then(any_value) {
                attributes.push(attribute(format!("gen_ai.prompt.{index}.{part}"), value));
            }
        }
    }
    if let Some(completion) = item.get("completion_message") {
        for part in ["role", "content"] {
            if let Some(value) = completion.get(part).and_then(any_value) {
                attributes.push(attribute(format!("gen_ai.completion.0.{part}"), value));
            }
        }
    }
    if let Some(metadata) = item.get("metadata").and_then(Value::as_object) {
        for (key, value) in metadata {
            if let Some(value) = any_value(value) {
                attributes.push(attribute(format!("respan.metadata.{key}"), value));
            }
        }
    }
    attributes
}

/// Encodes span logs (the objects of the span-log route) as one OTLP protobuf request.
/// Trace and span ids must be 32 and 16 hex digits, as OTLP requires.
pub fn span_logs_to_otlp_protobuf(
    items: &[Value],
    service_name: &str,
) -> Result<Vec<u8>, EncodeError> {
    Ok(export_request(items, service_name)?.encode_to_vec())
}

/// Encodes span logs as one OTLP JSON `ExportTraceServiceRequest` (camelCase names, hex ids,
/// 64-bit numbers as text), on one line: what `tracehouse export --format otlp-json` writes
/// per batch and what the OTLP JSON decoder reads back. Same id rules as the protobuf form.
pub fn span_logs_to_otlp_json(items: &[Value], service_name: &str) -> Result<Vec<u8>, EncodeError> {
    let request = export_request(items, service_name)?;
    serde_json::to_vec(&request).map_err(|error| EncodeError::Json(error.to_string()))
}

/// The request both encodings write.
fn export_request(items: &[Value], service_name: &str) -> Result<OtlpExportRequest, EncodeError> {
    let mut spans = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let object = item.as_object().ok_or(EncodeError::NotAnObject { index })?;
        let parent_span_id = match object.get("span_parent_id") {
            None | Some(Value::Null) => Vec::new(),
            parent => hex_id(index, "span_parent_id", parent, 16)?,
        };
        let start = time_nanos(object.get("start_time")).unwrap_or(0);
        let end =
            time_nanos(object.get("timestamp").or_else(|| object.get("end_time"))).unwrap_or(start);
        let failed = object.get("status").and_then(Value::as_str) == Some("error")
            || object.get("error_message").is_some_and(|m| !m.is_null());
        spans.push(OtlpSpan {
            trace_id: hex_id(index, "trace_unique_id", object.get("trace_unique_id"), 32)?,
            span_id: hex_id(index, "span_unique_id", object.get("span_unique_id"), 16)?,
            parent_span_id,
            name: object
                .get("span_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: span_attributes(object),
            status: failed.then(|| OtlpStatus {
                message: object
                    .get("error_message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                code: OtlpStatusCode::Error as i32,
            }),
            ..OtlpSpan::default()
        });
    }
    let request = OtlpExportRequest {
        resource_spans: vec![OtlpResourceSpans {
            resource: Some(OtlpResource {
                attributes: vec![attribute("service.name", string_value(service_name))],
                ..OtlpResource::default()
            }),
            scope_spans: vec![OtlpScopeSpans {
                scope: Some(OtlpScope {
                    name: "tracehouse".to_owned(),
                    ..OtlpScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Ok(request)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tracehouse_core::{IngestContext, PriceTable};

    use super::*;
    use crate::otlp::{OtlpEncoding, decode_otlp};
    use crate::spanlog::decode_span_logs;

    #[test]
    fn span_logs_round_trip_through_otlp() {
        let items = vec![
            json!({"trace_unique_id": "0123456789abcdef0123456789abcdef", "span_unique_id": "0123456789abcdef",
                   "span_name": "plan.agent", "log_type": "agent", "start_time": "2025-01-01T00:00:00Z",
                   "timestamp": "2025-01-01T00:00:02Z", "customer_identifier": "acme", "metadata": {"run": 7},
                   "input": "{\"q\": 1}"}),
            json!({"trace_unique_id": "0123456789abcdef0123456789abcdef", "span_unique_id": "1123456789abcdef",
                   "span_parent_id": "0123456789abcdef", "span_name": "openai.chat", "log_type": "chat",
                   "start_time": "2025-01-01T00:00:00.5Z", "timestamp": "2025-01-01T00:00:01Z",
                   "model": "gpt-4o-mini", "provider_id": "openai", "prompt_tokens": 25, "completion_tokens": 19,
                   "prompt_messages": [{"role": "user", "content": "hi"}],
                   "completion_message": {"role": "assistant", "content": "hello"},
                   "status": "error", "error_message": "rate limited"}),
        ];
        let body = span_logs_to_otlp_protobuf(&items, "test").unwrap();
        let prices = PriceTable::builtin();
        let context = IngestContext {
            received_at: Timestamp::from_unix_nanos(0),
            prices: &prices,
        };
        let via_otlp = decode_otlp(&body, OtlpEncoding::Protobuf, context).unwrap();
        let direct =
            decode_span_logs(serde_json::to_string(&items).unwrap().as_bytes(), context).unwrap();
        assert!(via_otlp.rejected.is_empty(), "{:?}", via_otlp.rejected);
        assert_eq!(via_otlp.spans.len(), 2);
        for (otlp, log) in via_otlp.spans.iter().zip(&direct.spans) {
            assert_eq!(otlp.trace_id, log.trace_id);
            assert_eq!(otlp.span_id, log.span_id);
            assert_eq!(otlp.parent_id, log.parent_id);
            assert_eq!(otlp.name, log.name);
            assert_eq!(otlp.log_type, log.log_type);
            assert_eq!((otlp.start, otlp.end), (log.start, log.end));
            assert_eq!(otlp.model, log.model);
            assert_eq!(otlp.usage, log.usage);
            assert_eq!(otlp.cost, log.cost);
            assert_eq!(otlp.status, log.status);
            assert_eq!(otlp.error_message, log.error_message);
            assert_eq!(
                otlp.grouping.customer_identifier,
                log.grouping.customer_identifier
            );
            for field in ["prompt_messages", "completion_message", "input"] {
                assert_eq!(otlp.content.get(field), log.content.get(field), "{field}");
            }
            assert_eq!(
                otlp.metadata().and_then(|m| m.get("run")),
                log.metadata().and_then(|m| m.get("run"))
            );
        }
    }

    #[test]
    fn json_and_protobuf_encodings_decode_alike() {
        let items = vec![
            json!({"trace_unique_id": "0123456789abcdef0123456789abcdef", "span_unique_id": "0123456789abcdef",
                   "span_name": "plan.agent", "start_time": "2025-01-01T00:00:00.123456789Z",
                   "timestamp": "2025-01-01T00:00:02Z", "metadata": {"run": 7, "ratio": 0.5, "ok": true},
                   "model": "gpt-4o", "prompt_tokens": 3, "status": "error", "error_message": "boom"}),
        ];
        let prices = PriceTable::builtin();
        let context = IngestContext {
            received_at: Timestamp::from_unix_nanos(0),
            prices: &prices,
        };
        let json_body = span_logs_to_otlp_json(&items, "test").unwrap();
        assert!(!json_body.contains(&b'\n'), "one line");
        let via_json = decode_otlp(&json_body, OtlpEncoding::Json, context).unwrap();
        let protobuf = span_logs_to_otlp_protobuf(&items, "test").unwrap();
        let via_protobuf = decode_otlp(&protobuf, OtlpEncoding::Protobuf, context).unwrap();
        assert!(via_json.rejected.is_empty(), "{:?}", via_json.rejected);
        assert_eq!(via_json, via_protobuf);
        assert_eq!(
            via_json.spans[0].start.to_rfc3339(),
            "2025-01-01T00:00:00.123456789Z"
        );
    }

    #[test]
    fn ids_must_fit_otlp() {
        let error = span_logs_to_otlp_protobuf(
            &[json!({"trace_unique_id": "trace-1", "span_unique_id": "0123456789abcdef"})],
            "t",
        );
        assert!(matches!(
            error,
            Err(EncodeError::NotHexId {
                index: 0,
                field: "trace_unique_id",
                ..
            })
        ));
        assert!(matches!(
            span_logs_to_otlp_protobuf(&[json!(1)], "t"),
            Err(EncodeError::NotAnObject { index: 0 })
        ));
    }
}
