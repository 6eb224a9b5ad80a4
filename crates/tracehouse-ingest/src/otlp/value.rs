//! OTLP `AnyValue` to JSON, and JSON text to JSON, both bounded in depth by
//! [`MAX_ATTRIBUTE_DEPTH`].
//!
//! Off the wire a value cannot get that deep: prost stops at 100 nested messages and serde_json
//! at 128 levels, which is 30 to 48 `AnyValue` levels depending on the shape, and the body is
//! refused. The bound is for what those limits do not cover: requests built in code, and JSON
//! text inside an attribute, which would otherwise be stored deeper than serde_json can parse
//! back on read.

use opentelemetry_proto::tonic::common::v1::AnyValue as OtlpAnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue as OtlpKeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use serde_json::{Map, Number, Value};
use tracehouse_core::FieldError;

use super::MAX_ATTRIBUTE_DEPTH;

/// Converts attributes to `(key, JSON value)` pairs, in order. `field` names the rejection when a
/// value is too deep; `None` names it after the attribute key itself.
pub(super) fn attributes_to_json(
    attributes: Vec<OtlpKeyValue>,
    field: Option<&str>,
) -> Result<Vec<(String, Value)>, FieldError> {
    attributes
        .into_iter()
        .map(|attribute| {
            let value = match attribute.value {
                Some(value) => any_value_to_json(value, 1),
                None => Some(Value::Null),
            };
            match value {
                Some(value) => Ok((attribute.key, value)),
                None => Err(FieldError::new(
                    field.unwrap_or(&attribute.key),
                    format!(
                        "attribute {:?} nests deeper than {MAX_ATTRIBUTE_DEPTH} levels",
                        attribute.key
                    ),
                )),
            }
        })
        .collect()
}

/// Converts attributes to a JSON object (a repeated key keeps its last value).
pub(super) fn attributes_to_object(
    attributes: Vec<OtlpKeyValue>,
    field: &str,
) -> Result<Map<String, Value>, FieldError> {
    Ok(attributes_to_json(attributes, Some(field))?
        .into_iter()
        .collect())
}

/// A JSON value as an OTLP attribute value of the same structure: arrays as `ArrayValue`,
/// objects as `KvlistValue`, integers as `IntValue` (above `i64::MAX` as a double), `null` as
/// an empty value. Peer exports that carry OpenInference attributes as JSON become OTLP
/// attributes this way, so the OTLP mapping reads them.
pub(crate) fn json_to_any_value(value: Value) -> OtlpAnyValue {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    let value = match value {
        Value::Null => None,
        Value::Bool(flag) => Some(OtlpValue::BoolValue(flag)),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Some(OtlpValue::IntValue(integer)),
            None => number.as_f64().map(OtlpValue::DoubleValue),
        },
        Value::String(text) => Some(OtlpValue::StringValue(text)),
        Value::Array(items) => Some(OtlpValue::ArrayValue(ArrayValue {
            values: items.into_iter().map(json_to_any_value).collect(),
        })),
        Value::Object(entries) => Some(OtlpValue::KvlistValue(KeyValueList {
            values: entries
                .into_iter()
                .map(|(key, value)| OtlpKeyValue {
                    key,
                    value: Some(json_to_any_value(value)),
                })
                .collect(),
        })),
    };
    OtlpAnyValue { value }
}

/// `None` when the value nests deeper than [`MAX_ATTRIBUTE_DEPTH`]. Bytes become lowercase hex,
/// like ids; a double JSON cannot hold (NaN, infinities) becomes its text.
pub(super) fn any_value_to_json(value: OtlpAnyValue, depth: usize) -> Option<Value> {
    if depth > MAX_ATTRIBUTE_DEPTH {
        return None;
    }
    Some(match value.value {
        None => Value::Null,
        Some(OtlpValue::StringValue(text)) => Value::String(text),
        Some(OtlpValue::BoolValue(flag)) => Value::Bool(flag),
        Some(OtlpValue::IntValue(int)) => Value::from(int),
        Some(OtlpValue::DoubleValue(double)) => Number::from_f64(double)
            .map_or_else(|| Value::String(double.to_string()), Value::Number),
        Some(OtlpValue::BytesValue(bytes)) => Value::String(hex::encode(bytes)),
        Some(OtlpValue::ArrayValue(array)) => Value::Array(
            array
                .values
                .into_iter()
                .map(|item| any_value_to_json(item, depth + 1))
                .collect::<Option<Vec<_>>>()?,
        ),
        Some(OtlpValue::KvlistValue(list)) => Value::Object(
            list.values
                .into_iter()
                .map(|entry| {
                    let value = match entry.value {
                        Some(value) => any_value_to_json(value, depth + 1)?,
                        None => Value::Null,
                    };
                    Some((entry.key, value))
                })
                .collect::<Option<Map<_, _>>>()?,
        ),
    })
}

/// Parses JSON text that an attribute carries (message lists, metadata objects); `None` when it
/// is not JSON or nests deeper than [`MAX_ATTRIBUTE_DEPTH`], so the caller keeps the text as sent.
pub(super) fn parse_json_text(text: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(text).ok()?;
    (depth_of(&value) <= MAX_ATTRIBUTE_DEPTH).then_some(value)
}

/// Nesting depth of a JSON value; bounded by serde_json's own parse limit of 128.
fn depth_of(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(entries) => 1 + entries.values().map(depth_of).max().unwrap_or(0),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use serde_json::json;

    use super::*;

    fn any(value: OtlpValue) -> OtlpAnyValue {
        OtlpAnyValue { value: Some(value) }
    }

    fn nested(depth: usize) -> OtlpAnyValue {
        let mut value = any(OtlpValue::IntValue(1));
        for _ in 1..depth {
            value = any(OtlpValue::ArrayValue(ArrayValue {
                values: vec![value],
            }));
        }
        value
    }

    #[test]
    fn converts_every_kind_of_value() {
        let kvlist = any(OtlpValue::KvlistValue(KeyValueList {
            values: vec![
                OtlpKeyValue {
                    key: "s".into(),
                    value: Some(any(OtlpValue::StringValue("x".into()))),
                },
                OtlpKeyValue {
                    key: "none".into(),
                    value: None,
                },
                OtlpKeyValue {
                    key: "list".into(),
                    value: Some(any(OtlpValue::ArrayValue(ArrayValue {
                        values: vec![
                            any(OtlpValue::BoolValue(true)),
                            any(OtlpValue::IntValue(-3)),
                            any(OtlpValue::DoubleValue(0.5)),
                            any(OtlpValue::DoubleValue(f64::NAN)),
                            any(OtlpValue::BytesValue(vec![0xab, 0x01])),
                            OtlpAnyValue { value: None },
                        ],
                    }))),
                },
            ],
        }));
        assert_eq!(
            any_value_to_json(kvlist, 1),
            Some(json!({"s": "x", "none": null, "list": [true, -3, 0.5, "NaN", "ab01", null]}))
        );
    }

    #[test]
    fn refuses_values_deeper_than_the_limit() {
        assert_eq!(
            any_value_to_json(nested(MAX_ATTRIBUTE_DEPTH), 1).map(|v| depth_of(&v)),
            Some(MAX_ATTRIBUTE_DEPTH)
        );
        assert_eq!(any_value_to_json(nested(MAX_ATTRIBUTE_DEPTH + 1), 1), None);
        let deep = vec![OtlpKeyValue {
            key: "deep".into(),
            value: Some(nested(MAX_ATTRIBUTE_DEPTH + 1)),
        }];
        assert_eq!(
            attributes_to_json(deep.clone(), None).map_err(|e| e.field),
            Err("deep".into())
        );
        assert_eq!(
            attributes_to_json(deep, Some("resource")).map_err(|e| e.field),
            Err("resource".into())
        );
    }

    #[test]
    fn parses_json_text_within_the_limit() {
        assert_eq!(parse_json_text(r#"{"a": [1]}"#), Some(json!({"a": [1]})));
        assert_eq!(parse_json_text("not json"), None);
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_ATTRIBUTE_DEPTH + 1),
            "]".repeat(MAX_ATTRIBUTE_DEPTH + 1)
        );
        assert_eq!(parse_json_text(&deep), None);
    }
}
