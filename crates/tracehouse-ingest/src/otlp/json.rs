//! OTLP/JSON bodies, read through opentelemetry-proto's serde after rewriting the spellings the
//! protobuf JSON mapping allows but that serde does not read:
//! - enums by name (`"kind": "SPAN_KIND_SERVER"`, `"code": "STATUS_CODE_ERROR"`) or as text;
//! - 64-bit times as numbers (`"startTimeUnixNano": 1795555893710652540`);
//! - 32-bit counts and flags as text, doubles as text (`"doubleValue": "0.5"`);
//! - `null` for any field (meaning absent), an empty `AnyValue` (`"value": {}`);
//! - a request without `resourceSpans`;
//! - snake_case field names (`resource_spans`, `start_time_unix_nano`, `string_value`), which
//!   protobuf's JSON parsers accept and Arize Phoenix's "OTLP JSON" export writes.
//!
//! An id that is not hex becomes empty, so that the span it belongs to is rejected on its own
//! rather than failing the whole body.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as OtlpExportRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtlpSpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use serde_json::{Map, Number, Value};
use tracehouse_core::spanlog::json_type_name;

use crate::DecodeError;

pub(super) fn parse_request(body: &[u8]) -> Result<OtlpExportRequest, DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError::from_json(&e))?;
    request_from_value(value)
}

/// An `ExportTraceServiceRequest` from JSON already parsed.
pub(crate) fn request_from_value(mut value: Value) -> Result<OtlpExportRequest, DecodeError> {
    let Value::Object(root) = &mut value else {
        return Err(DecodeError::WrongShape(format!(
            "expected an OTLP ExportTraceServiceRequest JSON object, got {}",
            json_type_name(&value)
        )));
    };
    normalize_request(root);
    serde_json::from_value(value)
        .map_err(|e| DecodeError::WrongShape(format!("not an OTLP ExportTraceServiceRequest: {e}")))
}

fn normalize_request(root: &mut Map<String, Value>) {
    if root.contains_key("resource_spans") {
        camel_case_keys(root);
    }
    drop_nulls(root);
    let resource_spans = root
        .entry("resourceSpans")
        .or_insert_with(|| Value::Array(Vec::new()));
    for resource_spans in objects(Some(resource_spans)) {
        if let Some(resource) = object(resource_spans.get_mut("resource")) {
            key_values(resource.get_mut("attributes"));
            u32_number(resource.get_mut("droppedAttributesCount"));
        }
        for scope_spans in objects(resource_spans.get_mut("scopeSpans")) {
            if let Some(scope) = object(scope_spans.get_mut("scope")) {
                key_values(scope.get_mut("attributes"));
                u32_number(scope.get_mut("droppedAttributesCount"));
            }
            for span in objects(scope_spans.get_mut("spans")) {
                normalize_span(span);
            }
        }
    }
}

fn normalize_span(span: &mut Map<String, Value>) {
    for id in ["traceId", "spanId", "parentSpanId"] {
        hex_id(span.get_mut(id));
    }
    for time in ["startTimeUnixNano", "endTimeUnixNano"] {
        u64_text(span.get_mut(time));
    }
    enum_number(span.get_mut("kind"), |name| {
        OtlpSpanKind::from_str_name(name).map(|kind| kind as i32)
    });
    for count in [
        "flags",
        "droppedAttributesCount",
        "droppedEventsCount",
        "droppedLinksCount",
    ] {
        u32_number(span.get_mut(count));
    }
    key_values(span.get_mut("attributes"));
    if let Some(status) = object(span.get_mut("status")) {
        enum_number(status.get_mut("code"), |name| {
            OtlpStatusCode::from_str_name(name).map(|code| code as i32)
        });
    }
    for event in objects(span.get_mut("events")) {
        u64_text(event.get_mut("timeUnixNano"));
        u32_number(event.get_mut("droppedAttributesCount"));
        key_values(event.get_mut("attributes"));
    }
    for link in objects(span.get_mut("links")) {
        hex_id(link.get_mut("traceId"));
        hex_id(link.get_mut("spanId"));
        u32_number(link.get_mut("flags"));
        u32_number(link.get_mut("droppedAttributesCount"));
        key_values(link.get_mut("attributes"));
    }
}

/// Renames every object key from snake_case to the lowerCamelCase of the canonical mapping.
/// Attribute keys are `key` values, never object keys, so no user text is renamed. Recursion
/// is bounded by serde_json's parse depth limit (128).
fn camel_case_keys(object: &mut Map<String, Value>) {
    let entries = std::mem::take(object);
    for (key, mut value) in entries {
        match &mut value {
            Value::Object(inner) => camel_case_keys(inner),
            Value::Array(items) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    camel_case_keys(item);
                }
            }
            _ => {}
        }
        object.insert(camel_case(&key), value);
    }
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The value as an object, with its `null` fields removed (they mean absent).
fn object(value: Option<&mut Value>) -> Option<&mut Map<String, Value>> {
    let object = value?.as_object_mut()?;
    drop_nulls(object);
    Some(object)
}

/// The objects of an array, each with its `null` fields removed; other elements are left for
/// serde to report.
fn objects(value: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    value
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|item| object(Some(item)))
}

fn drop_nulls(object: &mut Map<String, Value>) {
    object.retain(|_, value| !value.is_null());
}

fn key_values(attributes: Option<&mut Value>) {
    for attribute in objects(attributes) {
        let empty = match object(attribute.get_mut("value")) {
            Some(value) if value.is_empty() => true,
            Some(value) => {
                any_value(value);
                false
            }
            None => false,
        };
        if empty {
            attribute.remove("value");
        }
    }
}

/// Recursion is bounded by serde_json's parse depth limit (128).
fn any_value(value: &mut Map<String, Value>) {
    if let Some(Value::String(text)) = value.get("doubleValue") {
        let parsed = text.trim().parse::<f64>().ok();
        match parsed.and_then(Number::from_f64) {
            Some(number) => {
                value.insert("doubleValue".to_owned(), Value::Number(number));
            }
            // NaN and the infinities have no JSON number; keep their text.
            None => {
                let text = Value::String(text.clone());
                value.clear();
                value.insert("stringValue".to_owned(), text);
            }
        }
    }
    if let Some(array) = object(value.get_mut("arrayValue")) {
        for item in array
            .get_mut("values")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(item) = object(Some(item)) else {
                continue;
            };
            if item.is_empty() {
                // opentelemetry-proto's serde cannot read an empty AnyValue (an absent value)
                // inside an array; an empty string keeps the array's length and order.
                item.insert("stringValue".to_owned(), Value::String(String::new()));
            } else {
                any_value(item);
            }
        }
    }
    if let Some(list) = object(value.get_mut("kvlistValue")) {
        key_values(list.get_mut("values"));
    }
}

fn hex_id(id: Option<&mut Value>) {
    let Some(id) = id else {
        return;
    };
    let is_hex = id
        .as_str()
        .is_some_and(|text| text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()));
    if !is_hex {
        *id = Value::String(String::new());
    }
}

fn u64_text(value: Option<&mut Value>) {
    if let Some(value) = value {
        if let Some(number) = value.as_u64() {
            *value = Value::String(number.to_string());
        }
    }
}

fn u32_number(value: Option<&mut Value>) {
    if let Some(value) = value {
        if let Some(number) = value
            .as_str()
            .and_then(|text| text.trim().parse::<u32>().ok())
        {
            *value = Value::from(number);
        }
    }
}

fn enum_number(value: Option<&mut Value>, by_name: fn(&str) -> Option<i32>) {
    if let Some(value) = value {
        if let Some(text) = value.as_str() {
            let text = text.trim();
            if let Some(number) = text.parse::<i32>().ok().or_else(|| by_name(text)) {
                *value = Value::from(number);
            }
        }
    }
}
