//! The logging API's body (`POST /api/request-logs/`): one request log (an LLM call as the
//! vendor's logging clients send it), or a JSON array of them.
//!
//! A request log is a span log that may leave out its ids, and that says `session_identifier`
//! where span logs say `thread_identifier`. Everything else (`customer_params`, `usage`,
//! `custom_identifier`, `tools`, unknown fields) is validated and kept by [`span_from_log`].

use serde_json::{Map, Value};
use tracehouse_core::IngestContext;
use tracehouse_core::spanlog::json_type_name;

use crate::spanlog::{parse_json_body, validate_items};
use crate::{DecodeError, Decoded};

/// Ids for a request log that carries none: a trace id and a span id, fresh per call.
pub trait IdSource {
    /// A new trace id.
    fn trace_id(&mut self) -> String;
    /// A new span id.
    fn span_id(&mut self) -> String;
}

/// A decoded logging-API body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedRequestLogs {
    /// The spans and rejections, indexed as in the body.
    pub decoded: Decoded,
    /// The body was one object rather than an array: the answer is that one log.
    pub single: bool,
}

/// Decodes a logging-API body: one request-log object or an array of them.
pub fn decode_request_logs(
    body: &[u8],
    context: IngestContext<'_>,
    ids: &mut dyn IdSource,
) -> Result<DecodedRequestLogs, DecodeError> {
    let value = parse_json_body(
        body,
        "send a request log (a JSON object) or an array of them",
    )?;
    let (items, single) = match value {
        Value::Array(items) => (items, false),
        object @ Value::Object(_) => (vec![object], true),
        other => {
            return Err(DecodeError::WrongShape(format!(
                "expected a request log (a JSON object) or an array of them, got {}",
                json_type_name(&other)
            )));
        }
    };
    let decoded = validate_items(items, context, |item| match item {
        Value::Object(object) => Value::Object(as_span_log(object, ids)),
        other => other,
    })?;
    Ok(DecodedRequestLogs { decoded, single })
}

/// Whether a field is missing for the purpose of generating it: absent, null or blank text.
fn missing(object: &Map<String, Value>, field: &str) -> bool {
    match object.get(field) {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.trim().is_empty(),
        Some(_) => false,
    }
}

/// The span log a request log stands for: ids generated where none were sent (a one-span
/// trace of its own), and the session as the thread when no thread was named.
fn as_span_log(mut object: Map<String, Value>, ids: &mut dyn IdSource) -> Map<String, Value> {
    if missing(&object, "trace_unique_id") {
        object.insert("trace_unique_id".to_owned(), Value::String(ids.trace_id()));
    }
    if missing(&object, "span_unique_id") {
        object.insert("span_unique_id".to_owned(), Value::String(ids.span_id()));
    }
    if missing(&object, "thread_identifier") {
        if let Some(session @ Value::String(text)) = object.get("session_identifier") {
            if !text.trim().is_empty() {
                let session = session.clone();
                object.insert("thread_identifier".to_owned(), session);
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tracehouse_core::{PriceTable, Timestamp};

    use super::*;

    struct Counter(u32);

    impl IdSource for Counter {
        fn trace_id(&mut self) -> String {
            self.0 += 1;
            format!("trace-{}", self.0)
        }
        fn span_id(&mut self) -> String {
            self.0 += 1;
            format!("span-{}", self.0)
        }
    }

    fn decode(body: &Value) -> Result<DecodedRequestLogs, DecodeError> {
        let prices = PriceTable::builtin();
        decode_request_logs(
            body.to_string().as_bytes(),
            IngestContext {
                received_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
                prices: &prices,
            },
            &mut Counter(0),
        )
    }

    #[test]
    fn a_log_without_ids_becomes_a_trace_of_its_own_with_the_session_as_thread() {
        let got = decode(&json!({
            "model": "gpt-4o-mini", "latency": 0.42, "cost": 1e-05, "status_code": 200,
            "prompt_messages": [{"role": "user", "content": "hi"}],
            "completion_message": {"role": "assistant", "content": "hello"},
            "session_identifier": "conv-7", "custom_identifier": "c-1",
            "customer_params": {"customer_identifier": "acme", "email": "a@example.com"},
        }))
        .unwrap();
        assert!(got.single);
        assert!(got.decoded.rejected.is_empty());
        let span = &got.decoded.spans[0];
        assert_eq!(span.trace_id.as_str(), "trace-1");
        assert_eq!(span.span_id.as_str(), "span-2");
        assert_eq!(span.parent_id, None);
        assert_eq!(span.log_type.as_str(), "chat");
        assert_eq!(span.grouping.thread_identifier.as_deref(), Some("conv-7"));
        assert_eq!(span.grouping.session_identifier.as_deref(), Some("conv-7"));
        assert_eq!(span.grouping.customer_identifier.as_deref(), Some("acme"));
        assert_eq!(span.content["custom_identifier"], json!("c-1"));
        assert_eq!(
            span.content["customer_params"]["email"],
            json!("a@example.com")
        );
        assert_eq!(span.cost, Some(1e-05));
    }

    #[test]
    fn given_ids_and_threads_are_kept() {
        let got = decode(&json!([
            {"trace_unique_id": "t", "span_unique_id": "s", "thread_identifier": "th",
             "session_identifier": "se"},
            {"trace_unique_id": "t"},
        ]))
        .unwrap();
        assert!(!got.single);
        let spans = &got.decoded.spans;
        assert_eq!(spans[0].span_id.as_str(), "s");
        assert_eq!(spans[0].grouping.thread_identifier.as_deref(), Some("th"));
        assert_eq!(spans[1].trace_id.as_str(), "t");
        assert_eq!(spans[1].span_id.as_str(), "span-1");
    }

    #[test]
    fn bad_items_are_rejected_by_index_and_field() {
        let got = decode(&json!([{"model": "m"}, {"cost": "free"}, 7])).unwrap();
        assert_eq!(got.decoded.spans.len(), 1);
        let rejected: Vec<(usize, &str)> = got
            .decoded
            .rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(rejected, vec![(1, "cost"), (2, "")]);
        assert!(matches!(
            decode(&json!("log")),
            Err(DecodeError::WrongShape(_))
        ));
    }
}
