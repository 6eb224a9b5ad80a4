//! The span-log routes' body: a JSON array of span logs, or `{"data": [...]}`.

use serde_json::Value;
use tracehouse_core::IngestContext;
use tracehouse_core::spanlog::json_type_name;

use crate::{DecodeError, Decoded};

/// Most items one request may carry; larger migrations are split by the client (or `import`).
pub const MAX_ITEMS_PER_REQUEST: usize = 100_000;

/// Decodes a span-log body. A single span-log object (not in an array) is accepted as a
/// batch of one, since hand-written scripts send that and the intent is unambiguous.
pub fn decode_span_logs(body: &[u8], context: IngestContext<'_>) -> Result<Decoded, DecodeError> {
    let value = parse_json_body(body, "send a JSON array of span logs")?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("data") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(DecodeError::WrongShape(format!(
                    "\"data\" must be an array of span logs, got {}",
                    json_type_name(&other)
                )));
            }
            None if object.contains_key("trace_unique_id") => vec![Value::Object(object)],
            None => {
                return Err(DecodeError::WrongShape(
                    "expected a JSON array of span logs or {\"data\": [...]}, got an object without \"data\"".to_owned(),
                ));
            }
        },
        other => {
            return Err(DecodeError::WrongShape(format!(
                "expected a JSON array of span logs or {{\"data\": [...]}}, got {}",
                json_type_name(&other)
            )));
        }
    };
    validate_items(items, context, |item| item)
}

/// The JSON value of a body, after a byte-order mark; `what_to_send` completes the error
/// for an empty body.
pub(crate) fn parse_json_body(body: &[u8], what_to_send: &str) -> Result<Value, DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::WrongShape(format!(
            "body is empty: {what_to_send}"
        )));
    }
    serde_json::from_slice(body).map_err(|e| DecodeError::from_json(&e))
}

/// Validates each item of a batch (after `prepare`) into a span or a rejection naming its
/// index and field, refusing batches over [`MAX_ITEMS_PER_REQUEST`].
pub(crate) fn validate_items(
    items: Vec<Value>,
    context: IngestContext<'_>,
    mut prepare: impl FnMut(Value) -> Value,
) -> Result<Decoded, DecodeError> {
    if items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(DecodeError::TooManyItems {
            count: items.len(),
            limit: MAX_ITEMS_PER_REQUEST,
        });
    }
    let items = items.into_iter().map(|item| Ok(prepare(item)));
    Ok(crate::validate_each(items, context))
}

#[cfg(test)]
mod tests {
    use tracehouse_core::{PriceTable, Timestamp};

    use super::*;

    fn decode(body: &str) -> Result<Decoded, DecodeError> {
        let prices = PriceTable::builtin();
        decode_span_logs(
            body.as_bytes(),
            IngestContext {
                received_at: Timestamp::from_unix_nanos(0),
                prices: &prices,
            },
        )
    }

    #[test]
    fn accepts_array_data_wrapper_and_single_object() {
        let item = r#"{"trace_unique_id": "t", "span_unique_id": "s"}"#;
        assert_eq!(decode(&format!("[{item}]")).unwrap().spans.len(), 1);
        assert_eq!(
            decode(&format!("{{\"data\": [{item}, {item}]}}"))
                .unwrap()
                .spans
                .len(),
            2
        );
        assert_eq!(decode(item).unwrap().spans.len(), 1);
        assert_eq!(decode(&format!("\u{feff}[{item}]")).unwrap().spans.len(), 1);
        assert_eq!(decode("[]").unwrap(), Decoded::default());
    }

    #[test]
    fn reports_rejections_by_index() {
        let decoded = decode(
            r#"[{"trace_unique_id": "t", "span_unique_id": "a"},
                {"trace_unique_id": "t"},
                {"trace_unique_id": "t", "span_unique_id": "c", "prompt_tokens": "many"},
                7]"#,
        )
        .unwrap();
        assert_eq!(decoded.spans.len(), 1);
        let where_: Vec<(usize, &str)> = decoded
            .rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            where_,
            vec![(1, "span_unique_id"), (2, "prompt_tokens"), (3, "")]
        );
    }

    #[test]
    fn whole_body_errors_say_where() {
        match decode("[{\"trace_unique_id\": \n  \"t\",, }]") {
            Err(DecodeError::InvalidJson { line, column, .. }) => {
                assert_eq!((line, column), (2, 7))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(decode("42"), Err(DecodeError::WrongShape(_))));
        assert!(matches!(
            decode(r#"{"data": 1}"#),
            Err(DecodeError::WrongShape(_))
        ));
        assert!(matches!(
            decode(r#"{"items": []}"#),
            Err(DecodeError::WrongShape(_))
        ));
        match decode(" \n") {
            Err(DecodeError::WrongShape(message)) => {
                assert_eq!(message, "body is empty: send a JSON array of span logs")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
