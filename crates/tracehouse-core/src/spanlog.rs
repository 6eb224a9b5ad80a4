//! Validation of one span log (the JSON object of the ingest route) into a [`Span`].
//!
//! Both decoders end here: span-log items directly, OTLP spans after mapping their attributes
//! to span-log fields, so the same span stores the same way whichever route it came through.

use serde_json::{Map, Value};

use crate::cost::PriceTable;
use crate::ids::{IdError, LogId, SpanId, TraceId};
use crate::span::{LogType, Span, SpanGrouping, SpanStatus, TokenUsage};
use crate::time::{Timestamp, TimestampError};

/// Why one item was rejected: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The offending field, empty when the item as a whole is wrong.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// A rejection of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What validation needs besides the item itself.
#[derive(Debug, Clone, Copy)]
pub struct IngestContext<'a> {
    /// When the request arrived: the time of a span that carries none.
    pub received_at: Timestamp,
    /// Prices for spans that carry tokens but no cost.
    pub prices: &'a PriceTable,
}

/// The JSON type a known field must have (`null` always means absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Integer,
    Bool,
    Object,
    Array,
    /// Timestamps: ISO text or an epoch number.
    Time,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Integer => "a non-negative integer",
            Kind::Bool => "true or false",
            Kind::Object => "a JSON object",
            Kind::Array => "a JSON array",
            Kind::Time => "an ISO-8601 time or epoch number",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Kind::String, Value::String(_)) => true,
            (Kind::Number, Value::Number(_)) => true,
            (Kind::Integer, Value::Number(n)) => as_count(n).is_some(),
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Object, Value::Object(_)) => true,
            (Kind::Array, Value::Array(_)) => true,
            (Kind::Time, Value::String(_) | Value::Number(_)) => true,
            _ => false,
        }
    }
}

/// Fields of the seed and of real clients whose type is known; anything else is kept untyped.
const TYPED_FIELDS: &[(&str, Kind)] = &[
    ("span_parent_id", Kind::String),
    ("span_name", Kind::String),
    ("span_workflow_name", Kind::String),
    ("span_path", Kind::String),
    ("start_time", Kind::Time),
    ("timestamp", Kind::Time),
    ("end_time", Kind::Time),
    ("latency", Kind::Number),
    ("model", Kind::String),
    ("encoding_format", Kind::String),
    ("provider_id", Kind::String),
    ("prompt_tokens", Kind::Integer),
    ("completion_tokens", Kind::Integer),
    ("total_tokens", Kind::Integer),
    ("total_request_tokens", Kind::Integer),
    ("cost", Kind::Number),
    ("metadata", Kind::Object),
    ("warnings", Kind::String),
    ("disable_log", Kind::Bool),
    ("disable_fallback", Kind::Bool),
    ("respan_params", Kind::Object),
    ("keywordsai_params", Kind::Object),
    ("customer_params", Kind::Object),
    ("usage", Kind::Object),
    ("temperature", Kind::Number),
    ("presence_penalty", Kind::Number),
    ("frequency_penalty", Kind::Number),
    ("top_p", Kind::Number),
    ("max_tokens", Kind::Integer),
    ("stream", Kind::Bool),
    ("prompt_messages", Kind::Array),
    ("completion_message", Kind::Object),
    ("completion_messages", Kind::Array),
    ("log_type", Kind::String),
    ("trace_name", Kind::String),
    ("status", Kind::String),
    ("status_code", Kind::Number),
    ("error_message", Kind::String),
    ("error_bit", Kind::Integer),
    ("customer_identifier", Kind::String),
    ("thread_identifier", Kind::String),
    ("session_identifier", Kind::String),
    ("trace_group_identifier", Kind::String),
    ("environment", Kind::String),
    ("span_tools", Kind::Array),
    ("tools", Kind::Array),
    ("time_to_first_token", Kind::Number),
    ("ttft", Kind::Number),
];

/// Fields that live in typed [`Span`] columns; they are removed from `content` and rendered back on read.
pub const HOT_FIELDS: &[&str] = &[
    "trace_unique_id",
    "span_unique_id",
    "span_parent_id",
    "span_name",
    "log_type",
    "start_time",
    "timestamp",
    "end_time",
    "latency",
    "model",
    "provider_id",
    "status",
    "status_code",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "customer_identifier",
    "session_identifier",
    "thread_identifier",
    "trace_group_identifier",
    "environment",
    "span_workflow_name",
    "span_path",
];

/// Content that `disable_log: true` drops: the payload, not the metrics.
pub const LOGGED_CONTENT_FIELDS: &[&str] = &[
    "input",
    "output",
    "prompt_messages",
    "completion_message",
    "completion_messages",
    "tools",
    "tool_calls",
    "full_request",
    "full_response",
    "messages",
];

fn as_count(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
}

fn id_error(field: &str, error: IdError) -> FieldError {
    FieldError::new(field, format!("{field} {error}"))
}

fn time_error(field: &str, error: TimestampError) -> FieldError {
    FieldError::new(field, error.to_string())
}

/// Takes a string field out of the item exactly as sent (`""` included); `null` is absent.
fn take_string(item: &mut Map<String, Value>, field: &str) -> Option<String> {
    match item.shift_remove(field) {
        Some(Value::String(text)) => Some(text),
        _ => None,
    }
}

/// Takes a grouping or reference field, where a blank value means "none" to every client.
fn take_nonblank(item: &mut Map<String, Value>, field: &str) -> Option<String> {
    take_string(item, field).filter(|text| !text.trim().is_empty())
}

fn take_number(item: &mut Map<String, Value>, field: &str) -> Option<f64> {
    item.shift_remove(field).and_then(|v| v.as_f64())
}

fn take_count(item: &mut Map<String, Value>, field: &str) -> Option<u64> {
    match item.shift_remove(field) {
        Some(Value::Number(n)) => as_count(&n),
        _ => None,
    }
}

fn nested_string(item: &Map<String, Value>, object: &str, field: &str) -> Option<String> {
    item.get(object)
        .and_then(|o| o.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

fn nested_count(item: &Map<String, Value>, object: &str, fields: &[&str]) -> Option<u64> {
    let nested = item.get(object)?.as_object()?;
    fields.iter().find_map(|field| {
        nested
            .get(*field)
            .and_then(Value::as_number)
            .and_then(as_count)
    })
}

fn take_time(item: &mut Map<String, Value>, field: &str) -> Result<Option<Timestamp>, FieldError> {
    match item.shift_remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Timestamp::parse(&text)
            .map(Some)
            .map_err(|e| time_error(field, e)),
        Some(Value::Number(number)) => number
            .as_f64()
            .ok_or_else(|| FieldError::new(field, "is not a finite number"))
            .and_then(|f| Timestamp::from_epoch_number(f).map_err(|e| time_error(field, e)))
            .map(Some),
        Some(_) => Err(FieldError::new(
            field,
            format!("{field} must be {}", Kind::Time.describe()),
        )),
    }
}

fn required_id(item: &mut Map<String, Value>, field: &str) -> Result<String, FieldError> {
    match item.shift_remove(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, format!("{field} is required"))),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(FieldError::new(
            field,
            format!("{field} must be a string, got {}", json_type_name(&other)),
        )),
    }
}

/// The JSON type of a value, for error messages.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Start, end and latency from whatever subset the client sent: any two give the third,
/// one alone is a point in time, none means the receive time.
fn derive_times(
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    latency: Option<f64>,
    received_at: Timestamp,
) -> Result<(Timestamp, Timestamp, f64), FieldError> {
    let shift = |from: Timestamp, seconds: f64| {
        from.plus_seconds(seconds)
            .ok_or_else(|| FieldError::new("latency", "latency moves the time out of range"))
    };
    Ok(match (start, end, latency) {
        (Some(start), Some(end), Some(latency)) => (start, end, latency),
        (Some(start), Some(end), None) => (start, end, end.seconds_since(start)),
        (Some(start), None, Some(latency)) => (start, shift(start, latency)?, latency),
        (None, Some(end), Some(latency)) => (shift(end, -latency)?, end, latency),
        (Some(point), None, None) | (None, Some(point), None) => (point, point, 0.0),
        (None, None, Some(latency)) => (shift(received_at, -latency)?, received_at, latency),
        (None, None, None) => (received_at, received_at, 0.0),
    })
}

/// Validates one span-log item. Every field is checked before anything is derived, so the
/// first error reported is about what the client sent, not about a consequence of it.
pub fn span_from_log(item: Value, context: IngestContext<'_>) -> Result<Span, FieldError> {
    let Value::Object(mut item) = item else {
        return Err(FieldError::new(
            "",
            format!(
                "each span log must be a JSON object, got {}",
                json_type_name(&item)
            ),
        ));
    };

    let trace_id = TraceId::try_from(required_id(&mut item, "trace_unique_id")?)
        .map_err(|e| id_error("trace_unique_id", e))?;
    let span_id = SpanId::try_from(required_id(&mut item, "span_unique_id")?)
        .map_err(|e| id_error("span_unique_id", e))?;

    for (field, kind) in TYPED_FIELDS {
        if let Some(value) = item.get(*field) {
            if !kind.accepts(value) {
                return Err(FieldError::new(
                    *field,
                    format!(
                        "{field} must be {}, got {}",
                        kind.describe(),
                        json_type_name(value)
                    ),
                ));
            }
        }
    }
    if let Some(latency) = item.get("latency").and_then(Value::as_f64) {
        // A negative latency is only wrong when it would place a missing start or end; with
        // both times given it is what they say (clock skew), and stored spans export that way.
        let given = |field: &str| {
            item.get(field)
                .is_some_and(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
        };
        let both_times = given("start_time") && (given("timestamp") || given("end_time"));
        if latency < 0.0 && !both_times {
            return Err(FieldError::new("latency", "latency must not be negative"));
        }
    }
    if let Some(cost) = item.get("cost").and_then(Value::as_f64) {
        if cost < 0.0 {
            return Err(FieldError::new("cost", "cost must not be negative"));
        }
    }

    // Legacy and alias names: store under the current name so reads and filters see one field.
    if let Some(legacy) = item.shift_remove("keywordsai_params") {
        item.entry("respan_params").or_insert(legacy);
    }
    if let Some(ttft) = item.shift_remove("ttft") {
        item.entry("time_to_first_token").or_insert(ttft);
    }

    let parent_id = match take_nonblank(&mut item, "span_parent_id") {
        Some(raw) => Some(SpanId::try_from(raw).map_err(|e| id_error("span_parent_id", e))?),
        None => None,
    };
    let start = take_time(&mut item, "start_time")?;
    let end = match take_time(&mut item, "timestamp")? {
        Some(end) => {
            item.shift_remove("end_time");
            Some(end)
        }
        None => take_time(&mut item, "end_time")?,
    };
    let latency = take_number(&mut item, "latency");
    // `times_inferred: true` is how exports mark a span whose times are its receive time;
    // honouring it makes such a span re-import exactly as it was exported.
    let said_inferred = match item.get("times_inferred") {
        Some(Value::Bool(flag)) => {
            let flag = *flag;
            item.shift_remove("times_inferred");
            flag
        }
        _ => false,
    };
    let times_inferred = said_inferred || (start.is_none() && end.is_none());
    // A start with neither end nor latency is work still going on, not a zero-length span.
    let open_ended = start.is_some() && end.is_none() && latency.is_none();
    let (start, end, latency) = derive_times(start, end, latency, context.received_at)?;

    let name = take_string(&mut item, "span_name").unwrap_or_default();
    let model = take_string(&mut item, "model");
    let provider_id = take_string(&mut item, "provider_id");

    let prompt_tokens = take_count(&mut item, "prompt_tokens")
        .or_else(|| nested_count(&item, "usage", &["prompt_tokens", "input_tokens"]));
    let completion_tokens = take_count(&mut item, "completion_tokens")
        .or_else(|| nested_count(&item, "usage", &["completion_tokens", "output_tokens"]));
    let total_tokens = take_count(&mut item, "total_tokens")
        .or_else(|| nested_count(&item, "usage", &["total_tokens"]))
        .or_else(|| match (prompt_tokens, completion_tokens) {
            (None, None) => None,
            (prompt, completion) => Some(prompt.unwrap_or(0) + completion.unwrap_or(0)),
        });
    let usage = TokenUsage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
    };
    let cost = take_number(&mut item, "cost").or_else(|| {
        model
            .as_deref()
            .and_then(|model| context.prices.cost(model, &usage))
    });

    let status_code = item
        .shift_remove("status_code")
        .and_then(|v| v.as_f64())
        .map(|f| f as i64);
    let error_message = take_nonblank(&mut item, "error_message");
    let said_status = take_nonblank(&mut item, "status").map(|s| s.to_ascii_lowercase());
    let said_error = said_status
        .as_deref()
        .is_some_and(|s| matches!(s, "error" | "failed" | "failure"));
    let said_running = said_status.as_deref() == Some("running");
    let error_bit = item
        .get("error_bit")
        .and_then(Value::as_u64)
        .is_some_and(|bit| bit != 0);
    let status = if said_error
        || error_bit
        || error_message.is_some()
        || status_code.is_some_and(|code| code >= 400)
    {
        SpanStatus::Error
    } else if said_running || open_ended {
        SpanStatus::Running
    } else {
        SpanStatus::Success
    };

    let grouping = SpanGrouping {
        customer_identifier: take_nonblank(&mut item, "customer_identifier")
            .or_else(|| nested_string(&item, "customer_params", "customer_identifier")),
        session_identifier: take_nonblank(&mut item, "session_identifier"),
        thread_identifier: take_nonblank(&mut item, "thread_identifier"),
        trace_group_identifier: take_nonblank(&mut item, "trace_group_identifier"),
        environment: take_nonblank(&mut item, "environment")
            .or_else(|| nested_string(&item, "respan_params", "environment")),
    };
    let workflow_name = take_string(&mut item, "span_workflow_name");
    let path = take_string(&mut item, "span_path");

    let log_type = match take_nonblank(&mut item, "log_type") {
        Some(given) => LogType::new(&given),
        None => LogType::infer(&name, &item, model.as_deref()),
    };

    if item.get("disable_log").and_then(Value::as_bool) == Some(true) {
        for field in LOGGED_CONTENT_FIELDS {
            item.shift_remove(*field);
        }
    }
    // Anything left is content, kept exactly as sent; remaining hot-field keys were nulls.
    for field in HOT_FIELDS {
        item.shift_remove(*field);
    }
    // `id` and `unique_id` are what reads derive from the ids (exports carry them); a span
    // read back and sent again must not store them as content. Other values are the client's.
    let log_id = LogId::of(&trace_id, &span_id);
    for derived in ["id", "unique_id"] {
        if item.get(derived).and_then(Value::as_str) == Some(log_id.as_str()) {
            item.shift_remove(derived);
        }
    }

    Ok(Span {
        trace_id,
        span_id,
        parent_id,
        name,
        log_type,
        start,
        end,
        latency,
        times_inferred,
        model,
        provider_id,
        status,
        status_code,
        error_message,
        usage,
        cost,
        grouping,
        workflow_name,
        path,
        content: item,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RECEIVED: Timestamp = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);

    fn validate(item: Value) -> Result<Span, FieldError> {
        let prices = PriceTable::builtin();
        span_from_log(
            item,
            IngestContext {
                received_at: RECEIVED,
                prices: &prices,
            },
        )
    }

    fn field_of(item: Value) -> String {
        match validate(item) {
            Ok(span) => format!("accepted {}", span.span_id),
            Err(error) => error.field,
        }
    }

    #[test]
    fn any_two_times_give_the_third() {
        let both = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18.037942Z", "timestamp": "2025-09-08T07:46:19.041781Z"}));
        let both = both.map(|s| (s.start.to_rfc3339(), s.end.to_rfc3339(), s.latency));
        assert!(
            matches!(&both, Ok((_, _, latency)) if (latency - 1.003839).abs() < 1e-9),
            "{both:?}"
        );

        let start_latency = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18Z", "latency": 1.5}))
        .map(|s| s.end.to_rfc3339());
        assert_eq!(start_latency, Ok("2025-09-08T07:46:19.500Z".to_owned()));

        let end_latency = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "timestamp": 1_757_317_579_500u64, "latency": 1.5}))
        .map(|s| s.start.to_rfc3339());
        assert_eq!(end_latency, Ok("2025-09-08T07:46:18Z".to_owned()));

        let none = validate(json!({"trace_unique_id": "t", "span_unique_id": "s"}))
            .map(|s| (s.start, s.end, s.latency, s.times_inferred));
        assert_eq!(none, Ok((RECEIVED, RECEIVED, 0.0, true)));

        let end_only = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "end_time": "2025-09-08T07:46:18Z"}))
        .map(|s| (s.start.to_rfc3339(), s.latency));
        assert_eq!(end_only, Ok(("2025-09-08T07:46:18Z".to_owned(), 0.0)));
    }

    #[test]
    fn a_start_without_end_or_a_running_status_is_running_until_an_end_comes() {
        let status = |item: Value| validate(item).map(|s| (s.status, s.latency, s.end == s.start));
        let open = json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18Z"});
        assert_eq!(status(open), Ok((SpanStatus::Running, 0.0, true)));
        let said = json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18Z", "latency": 2.0, "status": "Running"});
        assert_eq!(status(said), Ok((SpanStatus::Running, 2.0, false)));
        let closed = json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18Z", "timestamp": "2025-09-08T07:46:19Z"});
        assert_eq!(status(closed), Ok((SpanStatus::Success, 1.0, false)));
        // A failure is a failure, ended or not; a span without any time is not running.
        let failed = json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18Z", "error_message": "boom"});
        assert_eq!(status(failed).map(|s| s.0), Ok(SpanStatus::Error));
        let untimed = json!({"trace_unique_id": "t", "span_unique_id": "s"});
        assert_eq!(status(untimed).map(|s| s.0), Ok(SpanStatus::Success));
    }

    #[test]
    fn exported_spans_validate_to_themselves() {
        // A span without times exports its receive time and `times_inferred: true`.
        let span = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:18Z", "timestamp": "2025-09-08T07:46:18Z",
            "end_time": "2025-09-08T07:46:18Z", "latency": 0.0, "times_inferred": true}))
        .map(|s| (s.times_inferred, s.content.contains_key("times_inferred")));
        assert_eq!(span, Ok((true, false)));
        // Clock skew: the end before the start, as stored, with the latency derived from them.
        let skewed = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:19Z", "timestamp": "2025-09-08T07:46:18Z", "latency": -1.0}))
        .map(|s| s.latency);
        assert_eq!(skewed, Ok(-1.0));
        let placing = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:19Z", "latency": -1.0}));
        assert_eq!(placing.map_err(|e| e.field), Err("latency".to_owned()));
        // Anything but a boolean is an unknown field like any other.
        let text = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "start_time": "2025-09-08T07:46:19Z", "times_inferred": "yes"}))
        .map(|s| (s.times_inferred, s.content.get("times_inferred").cloned()));
        assert_eq!(text, Ok((false, Some(json!("yes")))));
    }

    #[test]
    fn rejects_bad_ids_with_the_field_named() {
        assert_eq!(field_of(json!({"span_unique_id": "s"})), "trace_unique_id");
        assert_eq!(
            field_of(json!({"trace_unique_id": "", "span_unique_id": "s"})),
            "trace_unique_id"
        );
        assert_eq!(
            field_of(json!({"trace_unique_id": 12, "span_unique_id": "s"})),
            "trace_unique_id"
        );
        assert_eq!(field_of(json!({"trace_unique_id": "t"})), "span_unique_id");
        assert_eq!(
            field_of(json!({"trace_unique_id": "t", "span_unique_id": "x".repeat(257)})),
            "span_unique_id"
        );
        assert_eq!(field_of(json!(["not", "an", "object"])), "");
    }

    #[test]
    fn rejects_wrong_types_and_bad_times() {
        let base = |field: &str, value: Value| {
            let mut item = json!({"trace_unique_id": "t", "span_unique_id": "s"});
            item[field] = value;
            field_of(item)
        };
        assert_eq!(base("prompt_tokens", json!("15")), "prompt_tokens");
        assert_eq!(base("prompt_tokens", json!(-3)), "prompt_tokens");
        assert_eq!(base("prompt_tokens", json!(1.5)), "prompt_tokens");
        assert_eq!(base("cost", json!("cheap")), "cost");
        assert_eq!(base("cost", json!(-1.0)), "cost");
        assert_eq!(base("latency", json!(-1.0)), "latency");
        assert_eq!(base("temperature", json!(true)), "temperature");
        assert_eq!(base("stream", json!("yes")), "stream");
        assert_eq!(base("metadata", json!("k=v")), "metadata");
        assert_eq!(base("start_time", json!("last tuesday")), "start_time");
        assert_eq!(base("timestamp", json!({"t": 1})), "timestamp");
        assert_eq!(base("prompt_tokens", json!(15.0)), "accepted s");
        assert_eq!(base("model", Value::Null), "accepted s");
    }

    #[test]
    fn keeps_unknown_fields_and_renames_legacy_ones() {
        let span = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "keywordsai_params": {"environment": "staging"}, "ttft": 0.25,
            "field_name": "data: ", "my_custom": {"nested": [1, 2]}}));
        let Ok(span) = span else {
            panic!("rejected: {span:?}");
        };
        assert_eq!(
            span.content.get("respan_params"),
            Some(&json!({"environment": "staging"}))
        );
        assert_eq!(span.content.get("time_to_first_token"), Some(&json!(0.25)));
        assert_eq!(span.content.get("field_name"), Some(&json!("data: ")));
        assert_eq!(
            span.content.get("my_custom"),
            Some(&json!({"nested": [1, 2]}))
        );
        assert_eq!(span.grouping.environment.as_deref(), Some("staging"));
        assert!(!span.content.contains_key("keywordsai_params"));
        assert!(!span.content.contains_key("trace_unique_id"));
    }

    #[test]
    fn disable_log_keeps_metrics_and_drops_content() {
        let span = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "disable_log": true, "model": "gpt-4o-mini", "prompt_tokens": 25, "completion_tokens": 19,
            "input": "secret", "output": "secret", "prompt_messages": [{"role": "user", "content": "secret"}],
            "completion_message": {"role": "assistant", "content": "secret"}, "metadata": {"k": "v"}}));
        let Ok(span) = span else {
            panic!("rejected: {span:?}");
        };
        assert_eq!(span.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(span.usage.total_tokens, Some(44));
        assert!(span.cost.is_some_and(|c| (c - 1.515e-5).abs() < 1e-12));
        assert_eq!(span.log_type.as_str(), "chat");
        for field in ["input", "output", "prompt_messages", "completion_message"] {
            assert!(!span.content.contains_key(field), "{field} kept");
        }
        assert_eq!(span.content.get("metadata"), Some(&json!({"k": "v"})));
    }

    #[test]
    fn status_tokens_and_grouping_from_all_their_sources() {
        let span = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "status_code": 500, "usage": {"input_tokens": 7, "output_tokens": 3},
            "customer_params": {"customer_identifier": "acme"}, "model": "unknown-model"}));
        let Ok(span) = span else {
            panic!("rejected: {span:?}");
        };
        assert_eq!(span.status, SpanStatus::Error);
        assert_eq!(span.usage.prompt_tokens, Some(7));
        assert_eq!(span.usage.completion_tokens, Some(3));
        assert_eq!(span.usage.total_tokens, Some(10));
        assert_eq!(span.cost, None);
        assert_eq!(span.grouping.customer_identifier.as_deref(), Some("acme"));

        let errored =
            validate(json!({"trace_unique_id": "t", "span_unique_id": "s", "error_bit": 1}));
        assert_eq!(errored.map(|s| s.status), Ok(SpanStatus::Error));
        let fine = validate(
            json!({"trace_unique_id": "t", "span_unique_id": "s", "error_bit": 0, "status_code": 200}),
        );
        assert_eq!(fine.map(|s| s.status), Ok(SpanStatus::Success));
        let given_cost = validate(json!({"trace_unique_id": "t", "span_unique_id": "s",
            "model": "gpt-4o", "prompt_tokens": 10, "cost": 0.5}));
        assert_eq!(given_cost.map(|s| s.cost), Ok(Some(0.5)));
    }
}
