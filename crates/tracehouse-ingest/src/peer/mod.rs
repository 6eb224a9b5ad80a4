//! Exports of other LLM-tracing tools, mapped to span logs: Arize Phoenix ([`phoenix`]),
//! MLflow tracing ([`mlflow`]) and Langfuse ([`langfuse`]).
//!
//! The unit is a record: one JSON value as an export holds it (a line of a JSONL file, an
//! element of a JSON array or of a page's `data`, one row of a Parquet file as JSON, or a whole
//! JSON document). A record gives zero or more spans: a Phoenix span gives one, an MLflow trace
//! or a Langfuse trace with its observations gives all of theirs, a trace summary without
//! spans gives none (and says so in the report).
//!
//! Spans that carry OpenTelemetry attributes (Phoenix's OpenInference attributes, MLflow's span
//! attributes once translated) become OTLP spans and go through the OTLP route's own mapping
//! ([`crate::otlp`]), so a Phoenix span imported from a file stores exactly as the same span
//! sent over OTLP. Every record also says, in a [`MappingReport`], which source fields gave
//! which span-log fields, which landed in `metadata`, and which were dropped and why.
//!
//! Times come as ISO text with any number of digits and any offset, zone-less text (UTC),
//! epoch seconds, milliseconds, microseconds or nanoseconds, as numbers or digit strings; all
//! are read in integer arithmetic ([`nanos_of`]), so no digit the source had is lost.

pub mod langfuse;
pub mod mlflow;
pub mod phoenix;

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue as OtlpKeyValue;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use opentelemetry_proto::tonic::trace::v1::Status as OtlpStatus;
use opentelemetry_proto::tonic::trace::v1::span::Event as OtlpEvent;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use serde_json::{Map, Value, json};
use tracehouse_core::{FieldError, IngestContext, LogId, SpanId, Timestamp, TraceId};

use crate::otlp::mapping::target_of;
use crate::otlp::value::json_to_any_value;
use crate::spanlog::MAX_ITEMS_PER_REQUEST;
use crate::{DecodeError, Decoded, validate_each};

/// The tool an export comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSource {
    /// Arize Phoenix: REST span pages, the UI's "Download selection" (JSONL and OTLP JSON), the
    /// spans dataframe (JSONL or Parquet), the `TraceDataset` Parquet.
    Phoenix,
    /// MLflow tracing: `Trace.to_json()`, `search_traces()` rows, CLI and REST output.
    Mlflow,
    /// Langfuse: public API traces and observations, blob-storage export rows, UI export.
    Langfuse,
}

impl PeerSource {
    /// The name `--from` takes and reports use.
    pub fn name(self) -> &'static str {
        match self {
            PeerSource::Phoenix => "phoenix",
            PeerSource::Mlflow => "mlflow",
            PeerSource::Langfuse => "langfuse",
        }
    }
}

/// What a record's fields became, counted per source field. Keys name the source field with
/// list positions as `N` (`llm.input_messages.N.message.role`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingReport {
    /// `source field -> span-log field`, counted.
    pub mapped: BTreeMap<String, u64>,
    /// Source fields kept under the span's `metadata` (or another content field) as they were.
    pub metadata: BTreeMap<String, u64>,
    /// `source field: why`, counted; nothing else is dropped.
    pub dropped: BTreeMap<String, u64>,
}

impl MappingReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &MappingReport) {
        for (mine, theirs) in [
            (&mut self.mapped, &other.mapped),
            (&mut self.metadata, &other.metadata),
            (&mut self.dropped, &other.dropped),
        ] {
            for (key, count) in theirs {
                *mine.entry(key.clone()).or_default() += count;
            }
        }
    }

    pub(crate) fn mapped(&mut self, source: &str, target: &str) {
        *self
            .mapped
            .entry(format!("{} -> {target}", generic_key(source)))
            .or_default() += 1;
    }

    pub(crate) fn kept(&mut self, source: &str) {
        *self.metadata.entry(generic_key(source)).or_default() += 1;
    }

    pub(crate) fn dropped(&mut self, source: &str, why: &str) {
        *self
            .dropped
            .entry(format!("{}: {why}", generic_key(source)))
            .or_default() += 1;
    }
}

/// A key with its numeric path segments as `N`, so a report has one line per field.
fn generic_key(key: &str) -> String {
    key.split('.')
        .map(|segment| {
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                "N"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A decoded record: its valid spans, its rejected ones (indexed among the spans the record
/// gave), the scores it carries for spans of other records, and what its fields became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerDecoded {
    /// Spans and rejections.
    pub decoded: Decoded,
    /// Scores listed apart from their spans (Phoenix annotation listings, Langfuse score
    /// rows), for spans already stored.
    pub scores: Vec<ScorePatch>,
    /// Field fates.
    pub report: MappingReport,
}

/// A score for a span stored before: named by its span (and trace, when the source says), or
/// by its trace alone, which means the trace's root.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePatch {
    /// The trace, when the source names it.
    pub trace_id: Option<TraceId>,
    /// The span, absent for a score of the whole trace.
    pub span_id: Option<SpanId>,
    /// The evaluator (the score's name): the key under the span's `scores`.
    pub evaluator: String,
    score: Map<String, Value>,
}

impl ScorePatch {
    /// Adds the score to the span, replacing its score of the same evaluator.
    pub fn apply(&self, span: &mut tracehouse_core::Span) {
        let mut score = self.score.clone();
        let log_id = LogId::of(&span.trace_id, &span.span_id);
        tracehouse_core::score::complete_score(&mut score, log_id.as_str());
        let scores = span.content.entry("scores").or_insert_with(|| json!({}));
        if let Value::Object(scores) = scores {
            scores.insert(self.evaluator.clone(), Value::Object(score));
        }
    }
}

/// The tool a record comes from, judged by its keys; `None` when no peer tool writes records
/// like it (a span log, or an OTLP request of canonical camelCase JSON).
pub fn detect(record: &Value) -> Option<PeerSource> {
    let object = record.as_object()?;
    let has = |key: &str| object.contains_key(key);
    if has("resource_spans") {
        // Canonical OTLP JSON is camelCase; Phoenix's "OTLP JSON" download is snake_case.
        return Some(PeerSource::Phoenix);
    }
    // Phoenix's summaries and annotations listed apart: they carry `project_id` too.
    let phoenix_apart = has("token_count_total")
        || has("num_traces")
        || (has("session_id") && has("traces"))
        || has("annotator_kind")
        || has("annotation_name");
    if phoenix_apart || (has("context") && has("span_kind")) || has("context.span_id") {
        return Some(PeerSource::Phoenix);
    }
    if has("span_id")
        && has("start_time_unix_nano")
        && object.get("attributes").is_some_and(Value::is_array)
    {
        return Some(PeerSource::Phoenix);
    }
    if (has("info") && has("data")) || has("trace_info") {
        return Some(PeerSource::Mlflow);
    }
    if has("trace")
        && object
            .get("trace_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("tr-"))
    {
        return Some(PeerSource::Mlflow);
    }
    if let Some(traces) = object.get("traces").and_then(Value::as_array) {
        let first = traces.first().and_then(Value::as_object);
        if first.is_some_and(|t| {
            t.contains_key("info")
                || t.contains_key("trace_info")
                || t.get("trace_id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.starts_with("tr-"))
        }) {
            return Some(PeerSource::Mlflow);
        }
    }
    if object
        .get("trace_id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with("tr-"))
        && has("trace_location")
    {
        return Some(PeerSource::Mlflow);
    }
    if has("bookmarked") && has("public") && has("timestamp") {
        return Some(PeerSource::Langfuse);
    }
    if has("projectId")
        || has("project_id")
        || has("observations")
        || has("parentObservationId")
        || has("traceId") && has("type")
    {
        return Some(PeerSource::Langfuse);
    }
    None
}

/// Decodes one record of `source`'s export into spans, rejections and its mapping report.
///
/// A record that is not an object of the shapes the tool writes is an error (the import
/// rejects it as a whole); a span that cannot be stored is a rejection.
pub fn decode_record(
    source: PeerSource,
    record: Value,
    context: IngestContext<'_>,
) -> Result<PeerDecoded, DecodeError> {
    let mut report = MappingReport::default();
    let mut scores = Vec::new();
    let items = match source {
        PeerSource::Phoenix => phoenix::record_items(record, &mut report, &mut scores)?,
        PeerSource::Mlflow => mlflow::record_items(record, &mut report)?,
        PeerSource::Langfuse => langfuse::record_items(record, &mut report, &mut scores)?,
    };
    if items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(DecodeError::TooManyItems {
            count: items.len(),
            limit: MAX_ITEMS_PER_REQUEST,
        });
    }
    let items = items
        .into_iter()
        .map(|item| item.map(|item| Value::Object(finish_item(item))));
    Ok(PeerDecoded {
        decoded: validate_each(items, context),
        scores,
        report,
    })
}

/// One span-log item, or why the span it came from cannot be one.
pub(crate) type Item = Result<Map<String, Value>, FieldError>;

/// What every peer's items share: a session is also the span's thread (peers have one notion
/// of conversation; span logs have two, and the viewer's threads are built on the latter).
fn finish_item(mut item: Map<String, Value>) -> Map<String, Value> {
    if !item.contains_key("thread_identifier") {
        if let Some(session) = item.get("session_identifier").cloned() {
            item.insert("thread_identifier".to_owned(), session);
        }
    }
    item
}

/// The record as an object, or a shape error naming the tool.
pub(crate) fn object_of(
    record: Value,
    source: PeerSource,
) -> Result<Map<String, Value>, DecodeError> {
    match record {
        Value::Object(object) => Ok(object),
        other => Err(DecodeError::WrongShape(format!(
            "expected a {} record (a JSON object), got {}",
            source.name(),
            tracehouse_core::spanlog::json_type_name(&other)
        ))),
    }
}

/// Nanoseconds since the epoch of a time in any of the forms peers write, read without
/// floating point where the source had integers: epoch numbers or digit strings by magnitude
/// (seconds, milliseconds, microseconds, nanoseconds), ISO text with or without a zone.
/// `Ok(None)` for `null` or an empty string.
pub(crate) fn nanos_of(value: &Value) -> Result<Option<i64>, String> {
    let out_of_range = || format!("time {value} is out of the supported range");
    match value {
        Value::Null => Ok(None),
        Value::Number(number) => {
            if let Some(integer) = number.as_u64() {
                return scale_epoch(integer).map(Some).ok_or_else(out_of_range);
            }
            let float = number.as_f64().ok_or_else(out_of_range)?;
            Timestamp::from_epoch_number(float)
                .map(|time| Some(time.unix_nanos()))
                .map_err(|error| error.to_string())
        }
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            if text.bytes().all(|b| b.is_ascii_digit()) {
                let integer: u64 = text.parse().map_err(|_| out_of_range())?;
                return scale_epoch(integer).map(Some).ok_or_else(out_of_range);
            }
            Timestamp::parse(text)
                .map(|time| Some(time.unix_nanos()))
                .map_err(|error| error.to_string())
        }
        other => Err(format!(
            "a time must be text or a number, got {}",
            tracehouse_core::spanlog::json_type_name(other)
        )),
    }
}

/// An integer epoch in nanoseconds, its unit judged by its size as
/// [`Timestamp::from_epoch_number`] judges it.
fn scale_epoch(value: u64) -> Option<i64> {
    let nanos = if value < 100_000_000_000 {
        value.checked_mul(1_000_000_000)?
    } else if value < 100_000_000_000_000 {
        value.checked_mul(1_000_000)?
    } else if value < 100_000_000_000_000_000 {
        value.checked_mul(1_000)?
    } else {
        value
    };
    i64::try_from(nanos).ok()
}

/// A time field of an item as exact RFC 3339 text, or the field's error.
pub(crate) fn time_field(value: &Value, field: &str) -> Result<Option<String>, FieldError> {
    nanos_of(value)
        .map(|nanos| nanos.map(|nanos| Timestamp::from_unix_nanos(nanos).to_rfc3339()))
        .map_err(|error| FieldError::new(field, format!("{field}: {error}")))
}

/// Decodes a hex id of `len` bytes; anything else gives an empty id, which the OTLP mapping
/// rejects with the field's name.
pub(crate) fn hex_bytes(id: Option<&str>, len: usize) -> Vec<u8> {
    id.and_then(|id| hex::decode(id.trim()).ok())
        .filter(|bytes| bytes.len() == len)
        .unwrap_or_default()
}

/// An event of an [`AttributeSpan`]: name, time in nanoseconds, attributes.
pub(crate) type SpanEvent = (String, Option<i64>, Vec<(String, Value)>);

/// The events of a span as peers write them (`[{name, time, attributes}]`): the time under
/// the first of `time_keys` present, the attributes through `attributes` (each tool encodes
/// values its own way).
pub(crate) fn events_of(
    events: Option<Value>,
    time_keys: &[&str],
    attributes: impl Fn(Option<Value>) -> Vec<(String, Value)>,
) -> Vec<SpanEvent> {
    let Some(Value::Array(events)) = events else {
        return Vec::new();
    };
    events
        .into_iter()
        .map(|mut event| {
            let name = string_at(&event, "/name").unwrap_or_default();
            let time = time_keys
                .iter()
                .find_map(|key| event.get(*key))
                .and_then(|time| nanos_of(time).ok().flatten());
            (
                name,
                time,
                attributes(event.get_mut("attributes").map(Value::take)),
            )
        })
        .collect()
}

/// A span that carries OpenTelemetry attributes, to be mapped by the OTLP route's mapping.
#[derive(Debug, Default)]
pub(crate) struct AttributeSpan {
    pub(crate) trace_id: Vec<u8>,
    pub(crate) span_id: Vec<u8>,
    pub(crate) parent_span_id: Vec<u8>,
    pub(crate) name: String,
    pub(crate) start: Option<i64>,
    pub(crate) end: Option<i64>,
    /// `OK`, `ERROR` or unset, and the status message.
    pub(crate) status: Option<(bool, String)>,
    pub(crate) attributes: Vec<(String, Value)>,
    pub(crate) events: Vec<SpanEvent>,
}

fn key_values(attributes: Vec<(String, Value)>) -> Vec<OtlpKeyValue> {
    attributes
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| OtlpKeyValue {
            key,
            value: Some(json_to_any_value(value)),
        })
        .collect()
}

fn unsigned(nanos: Option<i64>) -> u64 {
    nanos.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

impl AttributeSpan {
    /// The span-log item of the span, mapped as the OTLP route maps it, with each attribute's
    /// fate counted in `report`.
    pub(crate) fn into_item(self, report: &mut MappingReport) -> Item {
        let keys: Vec<String> = self
            .attributes
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(key, _)| key.clone())
            .collect();
        let status = self.status.map(|(failed, message)| OtlpStatus {
            code: if failed {
                OtlpStatusCode::Error as i32
            } else {
                OtlpStatusCode::Ok as i32
            },
            message,
        });
        let span = OtlpSpan {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: self.name,
            start_time_unix_nano: unsigned(self.start),
            end_time_unix_nano: unsigned(self.end),
            attributes: key_values(self.attributes),
            events: self
                .events
                .into_iter()
                .map(|(name, time, attributes)| OtlpEvent {
                    time_unix_nano: unsigned(time),
                    name,
                    attributes: key_values(attributes),
                    dropped_attributes_count: 0,
                })
                .collect(),
            status,
            ..OtlpSpan::default()
        };
        let item = crate::otlp::span_to_log(span, &[], None)?;
        report_attributes(&keys, &item, report);
        Ok(item)
    }
}

/// Counts each attribute as mapped (a convention took it) or kept in `metadata`.
pub(crate) fn report_attributes(
    keys: &[String],
    item: &Map<String, Value>,
    report: &mut MappingReport,
) {
    let metadata = item.get("metadata").and_then(Value::as_object);
    for key in keys {
        let kept = metadata.is_some_and(|metadata| metadata.contains_key(key));
        match target_of(key) {
            Some(target) if !kept => report.mapped(key, target.trim_end_matches(".*")),
            _ => report.kept(&format!("attributes.{key}")),
        }
    }
}

/// One score as the scores API stores it.
pub(crate) struct Score {
    pub(crate) evaluator: String,
    pub(crate) number: Option<Value>,
    pub(crate) text: Option<String>,
    pub(crate) flag: Option<bool>,
    pub(crate) explanation: Option<String>,
    /// Who or what scored (`HUMAN`, `LLM`, `ANNOTATION`...), as the source said.
    pub(crate) source: Option<String>,
    /// The source's id of the score, kept so a re-import writes the same score.
    pub(crate) id: String,
    pub(crate) created_at: Option<String>,
}

/// Adds a score to an item's `scores`, keyed by its evaluator (a later one of the same
/// evaluator replaces an earlier one, as the scores API does).
pub(crate) fn add_score(item: &mut Map<String, Value>, score: Score) {
    let evaluator = score.evaluator.clone();
    let mut stored = score.into_stored();
    let id = |key: &str| item.get(key).and_then(Value::as_str);
    let log_id = match (
        id("trace_unique_id").and_then(|t| t.parse::<TraceId>().ok()),
        id("span_unique_id").and_then(|s| s.parse::<SpanId>().ok()),
    ) {
        (Some(trace), Some(span)) => LogId::of(&trace, &span).as_str().to_owned(),
        _ => String::new(),
    };
    tracehouse_core::score::complete_score(&mut stored, &log_id);
    if let Value::Object(scores) = item.entry("scores").or_insert_with(|| json!({})) {
        scores.insert(evaluator, Value::Object(stored));
    }
}

impl Score {
    /// A patch for span `span_id` (of `trace_id`, when given), or for the root of `trace_id`;
    /// `None` when neither names anything.
    pub(crate) fn for_span(
        self,
        trace_id: Option<&str>,
        span_id: Option<&str>,
    ) -> Option<ScorePatch> {
        let trace_id = trace_id.and_then(|id| id.parse::<TraceId>().ok());
        let span_id = span_id.and_then(|id| id.parse::<SpanId>().ok());
        if trace_id.is_none() && span_id.is_none() {
            return None;
        }
        Some(ScorePatch {
            trace_id,
            span_id,
            evaluator: self.evaluator.clone(),
            score: self.into_stored(),
        })
    }

    /// The fields the score itself gives (`log_id` and the defaults come when it is placed).
    fn into_stored(self) -> Map<String, Value> {
        let mut stored = Map::new();
        stored.insert("id".to_owned(), Value::String(self.id));
        if let Some(created) = self.created_at {
            stored.insert("created_at".to_owned(), Value::String(created.clone()));
            stored.insert("updated_at".to_owned(), Value::String(created));
        }
        stored.insert("evaluator_slug".to_owned(), Value::String(self.evaluator));
        let number = self
            .number
            .filter(|n| n.as_f64().is_some_and(f64::is_finite));
        if let Some(number) = number {
            stored.insert("numerical_value".to_owned(), number);
        }
        if let Some(text) = self.text {
            stored.insert("string_value".to_owned(), Value::String(text));
        }
        if let Some(flag) = self.flag {
            stored.insert("boolean_value".to_owned(), Value::Bool(flag));
        }
        if let Some(explanation) = self.explanation.filter(|e| !e.is_empty()) {
            stored.insert("explanation".to_owned(), Value::String(explanation));
        }
        if let Some(source) = self.source {
            stored.insert("source".to_owned(), Value::String(source));
        }
        stored
    }
}

/// The string at a JSON pointer (`/source/source_type`) of a value, owned.
pub(crate) fn string_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Decodes one record with a fixed receive time and the builtin prices, for the tools'
/// tests.
#[cfg(test)]
pub(crate) fn decode_for_test(source: PeerSource, record: Value) -> PeerDecoded {
    let prices = tracehouse_core::PriceTable::builtin();
    let context = IngestContext {
        received_at: Timestamp::from_unix_nanos(0),
        prices: &prices,
    };
    match decode_record(source, record, context) {
        Ok(decoded) => decoded,
        Err(error) => panic!("{error}"),
    }
}

/// Text of a JSON value: strings as they are, anything else as JSON.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Sets `field` from `value` unless it is null or empty text, and counts the mapping.
pub(crate) fn put(
    item: &mut Map<String, Value>,
    report: &mut MappingReport,
    source: &str,
    field: &str,
    value: Option<Value>,
) {
    let Some(value) = value else { return };
    let empty = match &value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    if empty {
        return;
    }
    item.insert(field.to_owned(), value);
    report.mapped(source, field);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_every_digit_the_source_had() {
        let cases = [
            (
                json!("2026-12-04T17:20:14.537972+00:00"),
                1_796_404_814_537_972_000,
            ),
            (json!(1_796_404_817_447u64), 1_796_404_817_447_000_000),
            (json!("1796404817447097123"), 1_796_404_817_447_097_123),
            (
                json!(1_796_404_882_673_070_177u64),
                1_796_404_882_673_070_177,
            ),
            (json!("2026-12-04 17:20:14.537"), 1_796_404_814_537_000_000),
            (
                json!("2026-12-04 17:20:14.537972"),
                1_796_404_814_537_972_000,
            ),
            (json!("2026-12-04T17:21:22.673Z"), 1_796_404_882_673_000_000),
        ];
        for (value, nanos) in cases {
            assert_eq!(nanos_of(&value), Ok(Some(nanos)), "{value}");
        }
        assert_eq!(nanos_of(&Value::Null), Ok(None));
        assert!(nanos_of(&json!("yesterday")).is_err());
        assert!(nanos_of(&json!(true)).is_err());
    }

    #[test]
    fn report_keys_are_generic_over_positions() {
        let mut report = MappingReport::default();
        report.mapped("llm.input_messages.0.message.role", "prompt_messages");
        report.mapped("llm.input_messages.1.message.role", "prompt_messages");
        assert_eq!(
            report
                .mapped
                .get("llm.input_messages.N.message.role -> prompt_messages"),
            Some(&2)
        );
    }

    #[test]
    fn records_are_recognised_by_their_keys() {
        assert_eq!(
            detect(&json!({"context": {}, "span_kind": "LLM"})),
            Some(PeerSource::Phoenix)
        );
        assert_eq!(
            detect(&json!({"context.span_id": "x"})),
            Some(PeerSource::Phoenix)
        );
        assert_eq!(
            detect(&json!({"resource_spans": []})),
            Some(PeerSource::Phoenix)
        );
        assert_eq!(
            detect(&json!({"info": {}, "data": {}})),
            Some(PeerSource::Mlflow)
        );
        assert_eq!(
            detect(&json!({"traces": [{"trace_info": {}}]})),
            Some(PeerSource::Mlflow)
        );
        assert_eq!(
            detect(&json!({"id": "t", "projectId": "p"})),
            Some(PeerSource::Langfuse)
        );
        assert_eq!(
            detect(
                &json!({"trace_id": "t", "project_id": "p", "token_count_total": 1, "spans": []})
            ),
            Some(PeerSource::Phoenix)
        );
        assert_eq!(detect(&json!({"resourceSpans": []})), None);
        assert_eq!(
            detect(&json!({"trace_unique_id": "t", "span_unique_id": "s"})),
            None
        );
    }
}
