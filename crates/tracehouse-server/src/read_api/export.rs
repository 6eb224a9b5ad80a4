//! Exports: every span that matches a filter, in one of the export formats, and the
//! `GET /api/traces/export/` route that streams them.
//!
//! The encoder is shared with `tracehouse export`, so a file written offline and an answer of
//! this route are the same bytes. Spans are read with `SpanStore::scan_spans`, a keyset walk in
//! (trace id, span id) order, one batch at a time: memory stays flat whatever the project holds.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tracehouse_core::query::SpanFilter;
use tracehouse_core::{ProjectId, Span, SpanId, SpanStore, TraceId};
use tracehouse_ingest::otlp::span_logs_to_otlp_json;

use super::model::span_json;
use super::params::ListParams;
use crate::AppState;
use crate::auth::ReadKey;
use crate::error::ApiError;

/// Spans read from the store per step of an HTTP export (one chunk of the answer).
const SPANS_PER_CHUNK: usize = 500;

/// The service name written into the resource of OTLP exports.
const OTLP_SERVICE_NAME: &str = "tracehouse-export";

/// A file format of exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One span per line, as the read API shows it; `tracehouse import` reads it back exactly.
    Jsonl,
    /// One JSON array of spans, one span per line.
    Json,
    /// One row per span: the typed fields, then `input`, `output`, `metadata` and `extra`
    /// (every other field as a JSON object); nested values are JSON text.
    Csv,
    /// One OTLP JSON `ExportTraceServiceRequest` per line (per batch). Lossy: OTLP carries only
    /// the fields its conventions name, and only spans with hex ids of OTLP's sizes.
    OtlpJson,
}

impl ExportFormat {
    /// Every format, by the name `parse` accepts.
    pub const ALL: [ExportFormat; 4] = [
        ExportFormat::Jsonl,
        ExportFormat::Json,
        ExportFormat::Csv,
        ExportFormat::OtlpJson,
    ];

    /// Parses a format name: `jsonl` (or `ndjson`), `json`, `csv`, `otlp-json`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(ExportFormat::Jsonl),
            "json" => Some(ExportFormat::Json),
            "csv" => Some(ExportFormat::Csv),
            "otlp-json" | "otlp_json" | "otlp" => Some(ExportFormat::OtlpJson),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
            ExportFormat::OtlpJson => "otlp-json",
        }
    }

    /// The media type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl | ExportFormat::OtlpJson => "application/x-ndjson",
            ExportFormat::Json => "application/json",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl | ExportFormat::OtlpJson => "jsonl",
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Why spans could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A CSV record could not be written.
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    /// A span could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A batch could not be written as OTLP.
    #[error("cannot write OTLP: {0}")]
    Otlp(#[from] tracehouse_ingest::otlp::EncodeError),
}

/// Columns of the CSV format, in order, each named as in the span JSON.
const CSV_COLUMNS: &[&str] = &[
    "trace_unique_id",
    "span_unique_id",
    "span_parent_id",
    "span_name",
    "log_type",
    "start_time",
    "timestamp",
    "latency",
    "times_inferred",
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
    "input",
    "output",
    "metadata",
    // Added after the first release's columns, so spreadsheets built on them still line up.
    "id",
];

/// Span JSON keys that have no CSV column of their own and are not content (`end_time`
/// repeats `timestamp`, `unique_id` repeats `id`).
const CSV_SKIPPED: &[&str] = &["end_time", "unique_id"];

/// Turns spans into the bytes of an export, batch by batch: [`begin`](Self::begin), then
/// [`encode`](Self::encode) for each batch in order, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct ExportEncoder {
    format: ExportFormat,
    written: u64,
    skipped: u64,
}

impl ExportEncoder {
    /// An encoder for one export.
    pub fn new(format: ExportFormat) -> Self {
        Self {
            format,
            written: 0,
            skipped: 0,
        }
    }

    /// The format being written.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// What comes before the first span: `[` of a JSON array, the CSV header.
    pub fn begin(&mut self, out: &mut Vec<u8>) -> Result<(), ExportError> {
        match self.format {
            ExportFormat::Json => out.push(b'['),
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(CSV_COLUMNS.iter().chain(["extra"].iter()))?;
                writer.flush().map_err(csv::Error::from)?;
            }
            ExportFormat::Jsonl | ExportFormat::OtlpJson => {}
        }
        Ok(())
    }

    /// Appends a batch of spans.
    pub fn encode(&mut self, spans: &[Span], out: &mut Vec<u8>) -> Result<(), ExportError> {
        match self.format {
            ExportFormat::Jsonl => {
                for span in spans {
                    serde_json::to_writer(&mut *out, &span_json(span))?;
                    out.push(b'\n');
                }
            }
            ExportFormat::Json => {
                for (index, span) in spans.iter().enumerate() {
                    let first = self.written == 0 && index == 0;
                    out.extend_from_slice(if first { b"\n" } else { b",\n" });
                    serde_json::to_writer(&mut *out, &span_json(span))?;
                }
            }
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(&mut *out);
                for span in spans {
                    writer.write_record(csv_record(span_json(span)))?;
                }
                writer.flush().map_err(csv::Error::from)?;
            }
            ExportFormat::OtlpJson => {
                let items: Vec<Value> = spans
                    .iter()
                    .filter(|span| fits_otlp(span))
                    .map(|span| Value::Object(span_json(span)))
                    .collect();
                self.skipped += (spans.len() - items.len()) as u64;
                if !items.is_empty() {
                    out.extend_from_slice(&span_logs_to_otlp_json(&items, OTLP_SERVICE_NAME)?);
                    out.push(b'\n');
                }
                self.written += items.len() as u64;
                return Ok(());
            }
        }
        self.written += spans.len() as u64;
        Ok(())
    }

    /// What comes after the last span: `]` of a JSON array.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.format == ExportFormat::Json {
            out.extend_from_slice(if self.written == 0 { b"]\n" } else { b"\n]\n" });
        }
    }

    /// Spans written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Spans left out so far: in `otlp-json`, spans whose ids are not the hex ids OTLP requires.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Whether OTLP can carry a span's ids (16-byte trace, 8-byte span and parent ids).
fn fits_otlp(span: &Span) -> bool {
    is_hex(span.trace_id.as_str(), 32)
        && is_hex(span.span_id.as_str(), 16)
        && span
            .parent_id
            .as_ref()
            .is_none_or(|parent| is_hex(parent.as_str(), 16))
}

/// A CSV cell: text as it is, other scalars as JSON, nested values as JSON text, null empty.
fn cell(value: Option<Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
    }
}

fn csv_record(mut object: Map<String, Value>) -> Vec<String> {
    let mut record: Vec<String> = CSV_COLUMNS
        .iter()
        .map(|column| cell(object.shift_remove(*column)))
        .collect();
    for skipped in CSV_SKIPPED {
        object.shift_remove(*skipped);
    }
    record.push(if object.is_empty() {
        String::new()
    } else {
        Value::Object(object).to_string()
    });
    record
}

/// The state of one streamed export: where the keyset walk is.
struct ExportStream {
    store: Arc<dyn SpanStore>,
    project: ProjectId,
    filter: SpanFilter,
    encoder: ExportEncoder,
    after: Option<(TraceId, SpanId)>,
    started: bool,
    done: bool,
}

impl ExportStream {
    /// The next chunk of the answer; `None` after the last.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            if let Err(error) = self.encoder.begin(&mut out) {
                return Some(Err(self.fail(error.to_string())));
            }
        }
        let spans = match self
            .store
            .scan_spans(
                self.project,
                &self.filter,
                self.after.clone(),
                SPANS_PER_CHUNK,
            )
            .await
        {
            Ok(spans) => spans,
            Err(error) => return Some(Err(self.fail(error.to_string()))),
        };
        if let Err(error) = self.encoder.encode(&spans, &mut out) {
            return Some(Err(self.fail(error.to_string())));
        }
        match spans.last() {
            Some(last) if spans.len() == SPANS_PER_CHUNK => {
                self.after = Some((last.trace_id.clone(), last.span_id.clone()));
            }
            _ => {
                self.encoder.finish(&mut out);
                self.done = true;
            }
        }
        Some(Ok(Bytes::from(out)))
    }

    /// Ends the stream with an error: the answer is already under way, so the only way to
    /// tell the client is to abort the chunked body, which it sees as a truncated transfer.
    fn fail(&mut self, cause: String) -> std::io::Error {
        self.done = true;
        tracing::error!(error = %cause, project = %self.project, "export failed mid-stream");
        std::io::Error::other(cause)
    }
}

/// The body that carries the list filters: the request body, or `{"filters": ...}` built from a
/// `filters` query parameter (JSON text), since a GET usually has no body.
fn filters_body(query: &HashMap<String, String>, body: Bytes) -> Result<Bytes, ApiError> {
    let Some(raw) = query.get("filters").filter(|raw| !raw.trim().is_empty()) else {
        return Ok(body);
    };
    if body.iter().any(|byte| !byte.is_ascii_whitespace()) {
        return Err(ApiError::BadRequest(
            "give filters either in the body or in the `filters` parameter, not both".to_owned(),
        ));
    }
    let filters: Value = serde_json::from_str(raw).map_err(|error| {
        ApiError::BadRequest(format!("parameter \"filters\" is not valid JSON: {error}"))
    })?;
    let mut object = Map::new();
    object.insert("filters".to_owned(), filters);
    Ok(Bytes::from(Value::Object(object).to_string()))
}

/// `GET|POST /api/traces/export/`: every span of the key's project matching the span-list
/// filters (`start_time`, `end_time`, `environment`, `search`, and `filters` in the body or as a
/// JSON query parameter), in (trace id, span id) order, streamed in `format` (`jsonl` default).
pub(super) async fn export_spans(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = match query.get("format").map(|raw| raw.trim()) {
        None | Some("") => ExportFormat::Jsonl,
        Some(raw) => ExportFormat::parse(raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "parameter \"format\": unknown format {raw:?}; use one of {}",
                ExportFormat::ALL.map(ExportFormat::name).join(", ")
            ))
        })?,
    };
    let body = filters_body(&query, body)?;
    let filter = ListParams::new(query, &body)?.span_filter()?;
    let stream = ExportStream {
        store: state.store,
        project: project.id,
        filter,
        encoder: ExportEncoder::new(format),
        after: None,
        started: false,
        done: false,
    };
    let chunks = futures_util::stream::unfold(stream, |mut stream| async move {
        stream.next_chunk().await.map(|chunk| (chunk, stream))
    });
    let disposition = format!(
        "attachment; filename=\"tracehouse-{}.{}\"",
        project.name,
        format.extension()
    );
    Ok((
        [
            (CONTENT_TYPE, format.content_type().to_owned()),
            (CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tracehouse_core::{IngestContext, PriceTable, Timestamp, span_from_log};

    use super::*;

    fn span(item: Value) -> Span {
        let prices = PriceTable::builtin();
        span_from_log(
            item,
            IngestContext {
                received_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
                prices: &prices,
            },
        )
        .unwrap()
    }

    fn export(format: ExportFormat, batches: &[Vec<Span>]) -> String {
        let mut encoder = ExportEncoder::new(format);
        let mut out = Vec::new();
        encoder.begin(&mut out).unwrap();
        for batch in batches {
            encoder.encode(batch, &mut out).unwrap();
        }
        encoder.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_is_one_array_across_batches() {
        let a = span(json!({"trace_unique_id": "t", "span_unique_id": "a"}));
        let b = span(json!({"trace_unique_id": "t", "span_unique_id": "b"}));
        let text = export(ExportFormat::Json, &[vec![a], vec![], vec![b]]);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.as_array().map(Vec::len), Some(2));
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(export(ExportFormat::Json, &[]), "[]\n");
    }

    #[test]
    fn jsonl_lines_are_the_read_api_shape() {
        let a = span(json!({"trace_unique_id": "t", "span_unique_id": "a", "custom": "é"}));
        let text = export(ExportFormat::Jsonl, &[vec![a.clone()]]);
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line, Value::Object(span_json(&a)));
        assert_eq!(line["times_inferred"], true);
    }

    #[test]
    fn csv_has_typed_columns_and_nested_values_as_json() {
        let a = span(
            json!({"trace_unique_id": "t", "span_unique_id": "a", "model": "gpt-4o",
            "start_time": "2025-01-01T00:00:00Z", "latency": 1.5, "input": "line 1\nline, \"2\"",
            "metadata": {"k": [1, 2]}, "custom": {"x": true}}),
        );
        let text = export(ExportFormat::Csv, &[vec![a]]);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(headers.len(), CSV_COLUMNS.len() + 1);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let get = |name: &str| {
            let at = headers.iter().position(|h| h == name).unwrap();
            rows[0][at].to_owned()
        };
        assert_eq!(get("model"), "gpt-4o");
        assert_eq!(get("latency"), "1.5");
        assert_eq!(get("timestamp"), "2025-01-01T00:00:01.500Z");
        assert_eq!(get("input"), "line 1\nline, \"2\"");
        assert_eq!(get("metadata"), r#"{"k":[1,2]}"#);
        assert_eq!(get("extra"), r#"{"custom":{"x":true}}"#);
        assert_eq!(get("span_parent_id"), "");
        assert_eq!(get("times_inferred"), "");
    }

    #[test]
    fn otlp_json_skips_spans_without_otlp_ids() {
        let good = span(
            json!({"trace_unique_id": "0123456789abcdef0123456789abcdef",
            "span_unique_id": "0123456789abcdef", "start_time": "2025-01-01T00:00:00Z"}),
        );
        let bad = span(json!({"trace_unique_id": "trace-1", "span_unique_id": "s"}));
        let mut encoder = ExportEncoder::new(ExportFormat::OtlpJson);
        let mut out = Vec::new();
        encoder.encode(&[good, bad], &mut out).unwrap();
        assert_eq!((encoder.written(), encoder.skipped()), (1, 1));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let request: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"],
            "0123456789abcdef"
        );
    }

    #[test]
    fn formats_parse_by_name() {
        for format in ExportFormat::ALL {
            assert_eq!(ExportFormat::parse(format.name()), Some(format));
        }
        assert_eq!(ExportFormat::parse("NDJSON"), Some(ExportFormat::Jsonl));
        assert_eq!(ExportFormat::parse("xml"), None);
    }
}
