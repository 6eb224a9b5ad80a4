//! The OTLP routes' body: an `ExportTraceServiceRequest`, protobuf or JSON.
//!
//! Each OTLP span is mapped to the span-log object a span-log client would have sent for the
//! same work, then validated by [`tracehouse_core::span_from_log`]: whichever route a span
//! came through, it is stored the same way. Protobuf and JSON share everything after parsing.
//!
//! What a span log has no field for is kept in its content rather than dropped: unmapped
//! attributes in `metadata`, and `resource` (resource attributes), `scope` (name, version,
//! attributes), `otel_span_kind`, `otel_trace_state`, `otel_events`, `otel_links`,
//! `otel_dropped` (dropped counts) and `exception` (the last exception event's type, message
//! and stack trace).

mod encode;
pub(crate) mod json;
pub(crate) mod mapping;
mod messages;
pub(crate) mod value;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess as OtlpPartialSuccess,
    ExportTraceServiceRequest as OtlpExportRequest,
    ExportTraceServiceResponse as OtlpExportResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as OtlpScope;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtlpSpanKind;
use opentelemetry_proto::tonic::trace::v1::span::{Event as OtlpEvent, Link as OtlpLink};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use prost::Message as _;
use serde_json::{Map, Value, json};
use tracehouse_core::{FieldError, IngestContext, Timestamp};

use crate::spanlog::MAX_ITEMS_PER_REQUEST;
use crate::{DecodeError, Decoded, validate_each};

pub use self::encode::{EncodeError, span_logs_to_otlp_json, span_logs_to_otlp_protobuf};
use self::mapping::Mapper;
use self::value::{attributes_to_json, attributes_to_object};

/// Deepest nesting of arrays and key-value lists accepted in one attribute value (a scalar is
/// depth 1); a span carrying a deeper one is rejected. Bodies nesting that deep are already
/// refused by the protobuf and JSON parsers' own recursion limits, so this guards requests
/// built in code and JSON text carried inside attributes.
pub const MAX_ATTRIBUTE_DEPTH: usize = 64;

/// How an OTLP/HTTP body is encoded (`Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`: the OTLP JSON mapping (camelCase names, hex ids).
    Json,
}

/// Decodes an `ExportTraceServiceRequest` body (already gunzipped) into spans and rejections.
///
/// A span that cannot be stored (bad id, bad time, a value nested too deep, a field of the
/// wrong type) is a [`Rejection`] whose index counts spans across all resource and scope
/// groups, in order. Only a body that is not a request at all is an error.
pub fn decode_otlp(
    body: &[u8],
    encoding: OtlpEncoding,
    context: IngestContext<'_>,
) -> Result<Decoded, DecodeError> {
    let request = match encoding {
        OtlpEncoding::Protobuf => OtlpExportRequest::decode(body)?,
        OtlpEncoding::Json => json::parse_request(body)?,
    };
    decode_export_request(request, context)
}

/// The OTLP response to an export: empty when every span was stored, otherwise a
/// `partial_success` with the number of rejected spans and `error_message`. OTLP/gRPC answers
/// with it as it is; [`encode_export_response`] encodes it for OTLP/HTTP.
pub fn export_response(rejected_spans: i64, error_message: &str) -> OtlpExportResponse {
    OtlpExportResponse {
        partial_success: (rejected_spans > 0).then(|| OtlpPartialSuccess {
            rejected_spans,
            error_message: error_message.to_owned(),
        }),
    }
}

/// Encodes an `ExportTraceServiceResponse`: empty when every span was stored, otherwise a
/// `partial_success` with the number of rejected spans and `error_message`.
pub fn encode_export_response(
    rejected_spans: i64,
    error_message: &str,
    encoding: OtlpEncoding,
) -> Vec<u8> {
    let response = export_response(rejected_spans, error_message);
    match encoding {
        OtlpEncoding::Protobuf => response.encode_to_vec(),
        // Written by hand because opentelemetry-proto's serde writes an absent `partialSuccess`
        // as `null` where the OTLP JSON mapping expects the field left out.
        OtlpEncoding::Json => match response.partial_success {
            None => b"{}".to_vec(),
            Some(partial) => json!({"partialSuccess": {
                "rejectedSpans": partial.rejected_spans,
                "errorMessage": partial.error_message,
            }})
            .to_string()
            .into_bytes(),
        },
    }
}

/// Span kinds that the vendor SDK's default naming sends as the whole span name.
const BARE_KIND_NAMES: [&str; 4] = ["workflow", "task", "agent", "tool"];

/// The span name as `<entity>.<kind>` when the SDK sent only the kind.
///
/// The vendor's Python SDK (2.x, default naming) names spans `workflow`, `task`... and
/// carries the real name in `traceloop.entity.name`; its legacy naming and span-log clients
/// send `joke_creation.task`. Normalising to the latter keeps trace names meaningful (a list
/// of traces all named `workflow` helps nobody) and makes both namings store alike.
fn qualified_span_name(name: String, attributes: &[(String, Value)]) -> String {
    if !BARE_KIND_NAMES.contains(&name.as_str()) {
        return name;
    }
    let entity = attributes
        .iter()
        .find(|(key, _)| key == "traceloop.entity.name")
        .and_then(|(_, value)| value.as_str())
        .filter(|entity| !entity.is_empty());
    match entity {
        Some(entity) => format!("{entity}.{name}"),
        None => name,
    }
}

/// Decodes an `ExportTraceServiceRequest` that is already parsed (OTLP/gRPC hands the service
/// the message itself) into spans and rejections. Both OTLP/HTTP encodings end here too, so a
/// span stores the same whichever transport carried it.
pub fn decode_export_request(
    request: OtlpExportRequest,
    context: IngestContext<'_>,
) -> Result<Decoded, DecodeError> {
    let count: usize = request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum();
    if count > MAX_ITEMS_PER_REQUEST {
        return Err(DecodeError::TooManyItems {
            count,
            limit: MAX_ITEMS_PER_REQUEST,
        });
    }
    let items = request_to_logs(request)
        .into_iter()
        .map(|item| item.map(Value::Object));
    Ok(validate_each(items, context))
}

/// The span-log object of every span of a request, in order across resource and scope groups,
/// or why a span cannot be one. Peer exports that carry OTLP spans end here too
/// ([`crate::peer`]), so they map exactly as the OTLP routes do.
pub(crate) fn request_to_logs(
    request: OtlpExportRequest,
) -> Vec<Result<Map<String, Value>, FieldError>> {
    let mut items = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|resource| attributes_to_json(resource.attributes, Some("resource")))
            .transpose()
            .map(Option::unwrap_or_default);
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(scope_to_json).transpose();
            for span in scope_spans.spans {
                items.push(match (&resource, &scope) {
                    (Ok(resource), Ok(scope)) => span_to_log(span, resource, scope.as_ref()),
                    (Err(error), _) | (_, Err(error)) => Err(error.clone()),
                });
            }
        }
    }
    items
}

fn scope_to_json(scope: OtlpScope) -> Result<Value, FieldError> {
    let mut object = Map::new();
    if !scope.name.is_empty() {
        object.insert("name".to_owned(), Value::String(scope.name));
    }
    if !scope.version.is_empty() {
        object.insert("version".to_owned(), Value::String(scope.version));
    }
    if !scope.attributes.is_empty() {
        let attributes = attributes_to_object(scope.attributes, "scope")?;
        object.insert("attributes".to_owned(), Value::Object(attributes));
    }
    Ok(Value::Object(object))
}

/// The span-log object equivalent to one OTLP span.
pub(crate) fn span_to_log(
    span: OtlpSpan,
    resource: &[(String, Value)],
    scope: Option<&Value>,
) -> Result<Map<String, Value>, FieldError> {
    let mut item = Map::new();
    item.insert(
        "trace_unique_id".to_owned(),
        Value::String(required_id(&span.trace_id, 16, "trace_unique_id")?),
    );
    item.insert(
        "span_unique_id".to_owned(),
        Value::String(required_id(&span.span_id, 8, "span_unique_id")?),
    );
    if span.parent_span_id.iter().any(|byte| *byte != 0) {
        if span.parent_span_id.len() != 8 {
            return Err(FieldError::new(
                "span_parent_id",
                format!(
                    "span_parent_id must be 8 bytes (16 hex digits), got {} bytes",
                    span.parent_span_id.len()
                ),
            ));
        }
        item.insert(
            "span_parent_id".to_owned(),
            Value::String(hex::encode(&span.parent_span_id)),
        );
    }
    if let Some(start) = time(span.start_time_unix_nano, "start_time")? {
        item.insert("start_time".to_owned(), Value::String(start));
    }
    if let Some(end) = time(span.end_time_unix_nano, "timestamp")? {
        item.insert("timestamp".to_owned(), Value::String(end));
    }

    let mut mapper = Mapper::default();
    let attributes = attributes_to_json(span.attributes, None)?;
    let name = qualified_span_name(span.name, &attributes);
    if !name.is_empty() {
        mapper.span_field("span_name", Value::String(name));
    }
    mapper.span_attributes(attributes);
    mapper.resource_attributes(resource.to_vec());
    mapper.finish(&mut item);

    let events = span
        .events
        .into_iter()
        .map(event_to_json)
        .collect::<Result<Vec<_>, _>>()?;
    let exception = events
        .iter()
        .rev()
        .find(|event| event.get("name").and_then(Value::as_str) == Some("exception"))
        .map(exception_of);
    let status = span.status.unwrap_or_default();
    // An exception event on a span whose status was never set is a failure the instrumentation
    // did not mark (the JavaScript SDK records exceptions without setting the status); an
    // explicit OK says it was handled.
    let failed = status.code == OtlpStatusCode::Error as i32
        || (status.code == OtlpStatusCode::Unset as i32 && exception.is_some());
    if failed {
        item.insert("status".to_owned(), Value::from("error"));
        let message = exception
            .as_ref()
            .and_then(exception_message)
            .or_else(|| Some(status.message).filter(|message| !message.trim().is_empty()));
        if let Some(message) = message {
            item.insert("error_message".to_owned(), Value::String(message));
        }
    }
    if let Some(exception) = exception.filter(|exception| !exception.is_empty()) {
        item.insert("exception".to_owned(), Value::Object(exception));
    }

    if !resource.is_empty() {
        let resource = resource.iter().cloned().collect();
        item.insert("resource".to_owned(), Value::Object(resource));
    }
    if let Some(scope) = scope.filter(|scope| scope.as_object().is_some_and(|o| !o.is_empty())) {
        item.insert("scope".to_owned(), scope.clone());
    }
    let kind = OtlpSpanKind::try_from(span.kind)
        .ok()
        .filter(|kind| *kind != OtlpSpanKind::Unspecified);
    if let Some(kind) = kind {
        let name = kind
            .as_str_name()
            .trim_start_matches("SPAN_KIND_")
            .to_ascii_lowercase();
        item.insert("otel_span_kind".to_owned(), Value::String(name));
    }
    if !span.trace_state.is_empty() {
        item.insert(
            "otel_trace_state".to_owned(),
            Value::String(span.trace_state),
        );
    }
    if !events.is_empty() {
        let events = events.into_iter().map(Value::Object).collect();
        item.insert("otel_events".to_owned(), Value::Array(events));
    }
    if !span.links.is_empty() {
        let links = span
            .links
            .into_iter()
            .map(link_to_json)
            .collect::<Result<Vec<_>, _>>()?;
        item.insert("otel_links".to_owned(), Value::Array(links));
    }
    let mut dropped = Map::new();
    for (what, count) in [
        ("attributes", span.dropped_attributes_count),
        ("events", span.dropped_events_count),
        ("links", span.dropped_links_count),
    ] {
        if count > 0 {
            dropped.insert(what.to_owned(), Value::from(count));
        }
    }
    if !dropped.is_empty() {
        item.insert("otel_dropped".to_owned(), Value::Object(dropped));
    }
    Ok(item)
}

/// A trace or span id as lowercase hex, checked for the length OTLP requires.
fn required_id(bytes: &[u8], len: usize, field: &str) -> Result<String, FieldError> {
    if bytes.is_empty() {
        return Err(FieldError::new(
            field,
            format!("{field} is missing or not hex"),
        ));
    }
    if bytes.len() != len {
        return Err(FieldError::new(
            field,
            format!(
                "{field} must be {len} bytes ({} hex digits), got {} bytes",
                len * 2,
                bytes.len()
            ),
        ));
    }
    if bytes.iter().all(|byte| *byte == 0) {
        return Err(FieldError::new(
            field,
            format!("{field} must not be all zeros"),
        ));
    }
    Ok(hex::encode(bytes))
}

/// Nanoseconds since the epoch as RFC 3339 text, which span-log validation reads exactly (an
/// epoch number would go through f64 and a guess at its unit). Zero means unset.
fn time(nanos: u64, field: &str) -> Result<Option<String>, FieldError> {
    if nanos == 0 {
        return Ok(None);
    }
    let nanos = i64::try_from(nanos).map_err(|_| {
        FieldError::new(
            field,
            format!("{field} {nanos} is out of the supported time range"),
        )
    })?;
    Ok(Some(Timestamp::from_unix_nanos(nanos).to_rfc3339()))
}

fn event_to_json(event: OtlpEvent) -> Result<Map<String, Value>, FieldError> {
    let mut object = Map::new();
    object.insert("name".to_owned(), Value::String(event.name));
    if event.time_unix_nano != 0 {
        let time = match i64::try_from(event.time_unix_nano) {
            Ok(nanos) => Value::String(Timestamp::from_unix_nanos(nanos).to_rfc3339()),
            Err(_) => Value::from(event.time_unix_nano),
        };
        object.insert("time".to_owned(), time);
    }
    if !event.attributes.is_empty() {
        let attributes = attributes_to_object(event.attributes, "otel_events")?;
        object.insert("attributes".to_owned(), Value::Object(attributes));
    }
    if event.dropped_attributes_count > 0 {
        object.insert(
            "dropped_attributes_count".to_owned(),
            Value::from(event.dropped_attributes_count),
        );
    }
    Ok(object)
}

fn link_to_json(link: OtlpLink) -> Result<Value, FieldError> {
    let mut object = Map::new();
    object.insert(
        "trace_id".to_owned(),
        Value::String(hex::encode(link.trace_id)),
    );
    object.insert(
        "span_id".to_owned(),
        Value::String(hex::encode(link.span_id)),
    );
    if !link.trace_state.is_empty() {
        object.insert("trace_state".to_owned(), Value::String(link.trace_state));
    }
    if !link.attributes.is_empty() {
        let attributes = attributes_to_object(link.attributes, "otel_links")?;
        object.insert("attributes".to_owned(), Value::Object(attributes));
    }
    if link.dropped_attributes_count > 0 {
        object.insert(
            "dropped_attributes_count".to_owned(),
            Value::from(link.dropped_attributes_count),
        );
    }
    if link.flags != 0 {
        object.insert("flags".to_owned(), Value::from(link.flags));
    }
    Ok(Value::Object(object))
}

/// `type`, `message` and `stacktrace` of an exception event (the semantic-convention
/// `exception.*` attributes).
fn exception_of(event: &Map<String, Value>) -> Map<String, Value> {
    let attributes = event.get("attributes").and_then(Value::as_object);
    ["type", "message", "stacktrace"]
        .into_iter()
        .filter_map(|field| {
            let value = attributes?.get(&format!("exception.{field}"))?;
            Some((field.to_owned(), value.clone()))
        })
        .collect()
}

/// `ValueError: boom`, or whichever of the two is present.
fn exception_message(exception: &Map<String, Value>) -> Option<String> {
    let text = |field| {
        exception
            .get(field)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    };
    match (text("type"), text("message")) {
        (Some(kind), Some(message)) => Some(format!("{kind}: {message}")),
        (Some(only), None) | (None, Some(only)) => Some(only.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue as OtlpAnyValue, ArrayValue, KeyValue as OtlpKeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use tracehouse_core::PriceTable;

    use super::*;

    fn nested(depth: usize) -> OtlpAnyValue {
        let mut value = OtlpAnyValue {
            value: Some(OtlpValue::IntValue(1)),
        };
        for _ in 1..depth {
            value = OtlpAnyValue {
                value: Some(OtlpValue::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        value
    }

    fn deep(key: &str, depth: usize) -> Vec<OtlpKeyValue> {
        vec![OtlpKeyValue {
            key: key.to_owned(),
            value: Some(nested(depth)),
        }]
    }

    fn span(id: u8, attributes: Vec<OtlpKeyValue>, events: Vec<OtlpEvent>) -> OtlpSpan {
        OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            attributes,
            events,
            ..OtlpSpan::default()
        }
    }

    fn rejections(request: OtlpExportRequest) -> Vec<(usize, String)> {
        let prices = PriceTable::builtin();
        let context = IngestContext {
            received_at: Timestamp::from_unix_nanos(0),
            prices: &prices,
        };
        let decoded = decode_export_request(request, context).unwrap();
        decoded
            .rejected
            .into_iter()
            .map(|r| (r.index, r.field))
            .collect()
    }

    // Neither parser lets a value this deep through (see the fixtures' tests), so only a
    // request built in code reaches the check; it must still reject, not recurse without end.
    #[test]
    fn values_deeper_than_the_limit_reject_their_span() {
        let event = OtlpEvent {
            name: "e".to_owned(),
            attributes: deep("event.deep", MAX_ATTRIBUTE_DEPTH + 1),
            ..OtlpEvent::default()
        };
        let request = OtlpExportRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![
                            span(1, deep("app.deep", MAX_ATTRIBUTE_DEPTH + 1), vec![]),
                            span(2, deep("app.ok", MAX_ATTRIBUTE_DEPTH), vec![]),
                            span(3, vec![], vec![event]),
                        ],
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                },
                ResourceSpans {
                    resource: Some(OtlpResource {
                        attributes: deep("service.deep", 1_000),
                        ..OtlpResource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(4, vec![], vec![]), span(5, vec![], vec![])],
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                },
            ],
        };
        assert_eq!(
            rejections(request),
            [
                (0, "app.deep".to_owned()),
                (2, "otel_events".to_owned()),
                (3, "resource".to_owned()),
                (4, "resource".to_owned())
            ]
        );
    }

    // OTLP/gRPC decodes the parsed message, OTLP/HTTP the bytes: the spans must not differ.
    #[test]
    fn parsed_request_decodes_like_its_protobuf_bytes() {
        let request = OtlpExportRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(1, deep("app.value", 2), vec![]),
                        OtlpSpan {
                            trace_id: vec![1; 3],
                            ..span(2, vec![], vec![])
                        },
                    ],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let prices = PriceTable::builtin();
        let context = IngestContext {
            received_at: Timestamp::from_unix_nanos(5),
            prices: &prices,
        };
        let from_bytes =
            decode_otlp(&request.encode_to_vec(), OtlpEncoding::Protobuf, context).unwrap();
        let from_message = decode_export_request(request, context).unwrap();
        assert_eq!(from_message, from_bytes);
        assert_eq!(from_message.spans.len(), 1);
        assert_eq!(from_message.rejected[0].index, 1);
        assert_eq!(from_message.rejected[0].field, "trace_unique_id");
    }

    #[test]
    fn export_response_has_partial_success_only_for_rejections() {
        assert_eq!(export_response(0, "").partial_success, None);
        let partial = export_response(2, "span 1: bad").partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 2);
        assert_eq!(partial.error_message, "span 1: bad");
    }

    #[test]
    fn bare_kind_names_take_the_entity_name() {
        let attributes = vec![(
            "traceloop.entity.name".to_owned(),
            serde_json::json!("joke_creation"),
        )];
        assert_eq!(
            super::qualified_span_name("task".to_owned(), &attributes),
            "joke_creation.task"
        );
        assert_eq!(
            super::qualified_span_name("openai.chat".to_owned(), &attributes),
            "openai.chat"
        );
        assert_eq!(
            super::qualified_span_name("workflow".to_owned(), &[]),
            "workflow"
        );
    }
}
