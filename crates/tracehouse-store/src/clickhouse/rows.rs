//! Mapping between core types and ClickHouse rows (JSONEachRow in both directions).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracehouse_core::{
    LogType, ProjectId, Span, SpanGrouping, SpanId, SpanStatus, Timestamp, TokenUsage, TraceId,
};

use super::ClickHouseError;
use super::client::RowBinary;
use crate::indexing::{MetadataScalar, index_entries};

/// Columns a [`SpanRead`] is selected with.
pub(crate) const SPAN_COLUMNS: &str = "trace_id, span_id, parent_id, name, log_type, start_ns, end_ns, latency, \
     times_inferred, model, provider_id, status, status_code, error_message, prompt_tokens, completion_tokens, \
     total_tokens, cost, customer_identifier, session_identifier, thread_identifier, trace_group_identifier, \
     environment, workflow_name, path, content, trace_name";

/// Columns a [`SpanInsert`] is encoded with, in [`SpanInsert::encode`]'s order.
pub(crate) const SPAN_INSERT_COLUMNS: &str = "project_id, trace_id, span_id, parent_id, name, log_type, start_ns, end_ns, \
     latency, times_inferred, model, provider_id, status, status_code, error_message, prompt_tokens, completion_tokens, \
     total_tokens, cost, customer_identifier, session_identifier, thread_identifier, trace_group_identifier, \
     environment, workflow_name, path, content, trace_name, meta_keys, meta_text, meta_num, meta_is_num, \
     ingested_ns, version, deleted";

/// Columns of a span tombstone, in [`encode_span_tombstone`]'s order.
pub(crate) const SPAN_TOMBSTONE_COLUMNS: &str =
    "project_id, trace_id, span_id, start_ns, version, deleted";

/// A span as inserted: the span's fields plus what filters need precomputed.
pub(crate) struct SpanInsert<'a> {
    project_id: i64,
    trace_id: &'a str,
    span_id: &'a str,
    parent_id: Option<&'a str>,
    name: &'a str,
    log_type: &'a str,
    start_ns: i64,
    end_ns: i64,
    latency: f64,
    times_inferred: u8,
    model: Option<&'a str>,
    provider_id: Option<&'a str>,
    status: &'a str,
    status_code: Option<i64>,
    error_message: Option<&'a str>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    cost: Option<f64>,
    customer_identifier: Option<&'a str>,
    session_identifier: Option<&'a str>,
    thread_identifier: Option<&'a str>,
    trace_group_identifier: Option<&'a str>,
    environment: Option<&'a str>,
    workflow_name: Option<&'a str>,
    path: Option<&'a str>,
    content: String,
    trace_name: Option<&'a str>,
    meta_keys: Vec<String>,
    meta_text: Vec<String>,
    meta_num: Vec<f64>,
    meta_is_num: Vec<u8>,
    ingested_ns: i64,
    version: u64,
    deleted: u8,
}

impl<'a> SpanInsert<'a> {
    pub(crate) fn new(
        project: ProjectId,
        span: &'a Span,
        ingested_ns: i64,
        version: u64,
    ) -> Result<Self, ClickHouseError> {
        let metadata = index_entries(&span.content);
        let mut meta_keys = Vec::with_capacity(metadata.len());
        let mut meta_text = Vec::with_capacity(metadata.len());
        let mut meta_num = Vec::with_capacity(metadata.len());
        let mut meta_is_num = Vec::with_capacity(metadata.len());
        for (key, value) in metadata {
            meta_keys.push(key);
            match value {
                MetadataScalar::Number(number) => {
                    meta_text.push(String::new());
                    meta_num.push(number);
                    meta_is_num.push(1);
                }
                MetadataScalar::Text(text) => {
                    meta_text.push(text);
                    meta_num.push(0.0);
                    meta_is_num.push(0);
                }
            }
        }
        Ok(Self {
            project_id: project.0,
            trace_id: span.trace_id.as_str(),
            span_id: span.span_id.as_str(),
            parent_id: span.parent_id.as_ref().map(SpanId::as_str),
            name: &span.name,
            log_type: span.log_type.as_str(),
            start_ns: span.start.unix_nanos(),
            end_ns: span.end.unix_nanos(),
            latency: span.latency,
            times_inferred: u8::from(span.times_inferred),
            model: span.model.as_deref(),
            provider_id: span.provider_id.as_deref(),
            status: span.status.as_str(),
            status_code: span.status_code,
            error_message: span.error_message.as_deref(),
            prompt_tokens: span.usage.prompt_tokens,
            completion_tokens: span.usage.completion_tokens,
            total_tokens: span.usage.total_tokens,
            cost: span.cost,
            customer_identifier: span.grouping.customer_identifier.as_deref(),
            session_identifier: span.grouping.session_identifier.as_deref(),
            thread_identifier: span.grouping.thread_identifier.as_deref(),
            trace_group_identifier: span.grouping.trace_group_identifier.as_deref(),
            environment: span.grouping.environment.as_deref(),
            workflow_name: span.workflow_name.as_deref(),
            path: span.path.as_deref(),
            content: serde_json::to_string(&span.content).map_err(ClickHouseError::Decode)?,
            trace_name: span.content.get("trace_name").and_then(Value::as_str),
            meta_keys,
            meta_text,
            meta_num,
            meta_is_num,
            ingested_ns,
            version,
            deleted: 0,
        })
    }
}

impl SpanInsert<'_> {
    /// Appends this row as RowBinary in [`SPAN_INSERT_COLUMNS`] order.
    pub(crate) fn encode(&self, row: &mut RowBinary) {
        let text = |row: &mut RowBinary, value: Option<&str>| row.nullable(value, RowBinary::str);
        row.i64(self.project_id);
        row.str(self.trace_id);
        row.str(self.span_id);
        text(row, self.parent_id);
        row.str(self.name);
        row.str(self.log_type);
        row.i64(self.start_ns);
        row.i64(self.end_ns);
        row.f64(self.latency);
        row.u8(self.times_inferred);
        text(row, self.model);
        text(row, self.provider_id);
        row.str(self.status);
        row.nullable(self.status_code, RowBinary::i64);
        text(row, self.error_message);
        row.nullable(self.prompt_tokens, RowBinary::u64);
        row.nullable(self.completion_tokens, RowBinary::u64);
        row.nullable(self.total_tokens, RowBinary::u64);
        row.nullable(self.cost, RowBinary::f64);
        text(row, self.customer_identifier);
        text(row, self.session_identifier);
        text(row, self.thread_identifier);
        text(row, self.trace_group_identifier);
        text(row, self.environment);
        text(row, self.workflow_name);
        text(row, self.path);
        row.str(&self.content);
        text(row, self.trace_name);
        row.array(&self.meta_keys, |row, key| row.str(key));
        row.array(&self.meta_text, |row, text| row.str(text));
        row.array(&self.meta_num, |row, number| row.f64(*number));
        row.array(&self.meta_is_num, |row, flag| row.u8(*flag));
        row.i64(self.ingested_ns);
        row.u64(self.version);
        row.u8(self.deleted);
    }
}

/// A tombstone hiding every earlier version of one span, in [`SPAN_TOMBSTONE_COLUMNS`] order.
/// It carries the span's start so it lands in the span's partition, where merges drop both.
pub(crate) fn encode_span_tombstone(
    row: &mut RowBinary,
    project: ProjectId,
    trace_id: &str,
    span_id: &str,
    start_ns: i64,
    version: u64,
) {
    row.i64(project.0);
    row.str(trace_id);
    row.str(span_id);
    row.i64(start_ns);
    row.u64(version);
    row.u8(1);
}

/// Columns of a trace-start tombstone, in [`encode_trace_start_tombstone`]'s order.
pub(crate) const TRACE_START_TOMBSTONE_COLUMNS: &str =
    "project_id, start_ns, trace_id, ingested_ns, version, deleted";

/// A tombstone hiding the `trace_starts` row of `trace_id` at `start_ns` (same sorting key).
pub(crate) fn encode_trace_start_tombstone(
    row: &mut RowBinary,
    project: ProjectId,
    trace_id: &str,
    start_ns: i64,
    version: u64,
) {
    row.i64(project.0);
    row.i64(start_ns);
    row.str(trace_id);
    row.i64(0);
    row.u64(version);
    row.u8(1);
}

/// The replacing version of a row written at `ns`: later writes win.
pub(crate) fn version_of(ns: i64) -> u64 {
    u64::try_from(ns).unwrap_or(0)
}

/// One stored version of a span: [`SPAN_COLUMNS`] plus [`VERSION_COLUMNS`].
#[derive(Deserialize)]
pub(crate) struct SpanVersionRead {
    #[serde(flatten)]
    pub(crate) span: SpanRead,
    pub(crate) ingested_ns: i64,
    pub(crate) version: u64,
    pub(crate) deleted: u8,
    /// A condition's value on this version, when the read selected one as `hit`.
    #[serde(default)]
    pub(crate) hit: u8,
}

/// What tells a span's versions apart, selected after [`SPAN_COLUMNS`].
pub(crate) const VERSION_COLUMNS: &str = "ingested_ns, version, deleted";

/// A span as selected with [`SPAN_COLUMNS`].
#[derive(Deserialize)]
pub(crate) struct SpanRead {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    parent_id: Option<String>,
    name: String,
    log_type: String,
    start_ns: i64,
    end_ns: i64,
    #[serde(default)]
    latency: f64,
    times_inferred: u8,
    model: Option<String>,
    provider_id: Option<String>,
    status: String,
    #[serde(default)]
    status_code: Option<i64>,
    #[serde(default)]
    error_message: Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    cost: Option<f64>,
    customer_identifier: Option<String>,
    session_identifier: Option<String>,
    thread_identifier: Option<String>,
    trace_group_identifier: Option<String>,
    environment: Option<String>,
    #[serde(default)]
    workflow_name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    content: String,
    trace_name: Option<String>,
}

fn id<T: TryFrom<String>>(raw: String, column: &str) -> Result<T, ClickHouseError> {
    T::try_from(raw).map_err(|_| ClickHouseError::Corrupt(format!("invalid id in column {column}")))
}

impl SpanRead {
    /// The span; an empty `content` (aggregate-only reads) becomes a content holding only
    /// `trace_name`, which is all `summarize` looks at.
    pub(crate) fn into_span(self) -> Result<Span, ClickHouseError> {
        let content = if self.content.is_empty() {
            let mut map = Map::new();
            if let Some(name) = self.trace_name {
                map.insert("trace_name".to_owned(), Value::String(name));
            }
            map
        } else {
            match serde_json::from_str::<Value>(&self.content).map_err(ClickHouseError::Decode)? {
                Value::Object(map) => map,
                _ => Map::new(),
            }
        };
        Ok(Span {
            trace_id: id::<TraceId>(self.trace_id, "trace_id")?,
            span_id: id::<SpanId>(self.span_id, "span_id")?,
            parent_id: self
                .parent_id
                .map(|raw| id::<SpanId>(raw, "parent_id"))
                .transpose()?,
            name: self.name,
            log_type: LogType::new(&self.log_type),
            start: Timestamp::from_unix_nanos(self.start_ns),
            end: Timestamp::from_unix_nanos(self.end_ns),
            latency: self.latency,
            times_inferred: self.times_inferred != 0,
            model: self.model,
            provider_id: self.provider_id,
            status: SpanStatus::from_api(&self.status),
            status_code: self.status_code,
            error_message: self.error_message,
            usage: TokenUsage {
                prompt_tokens: self.prompt_tokens,
                completion_tokens: self.completion_tokens,
                total_tokens: self.total_tokens,
            },
            cost: self.cost,
            grouping: SpanGrouping {
                customer_identifier: self.customer_identifier,
                session_identifier: self.session_identifier,
                thread_identifier: self.thread_identifier,
                trace_group_identifier: self.trace_group_identifier,
                environment: self.environment,
            },
            workflow_name: self.workflow_name,
            path: self.path,
            content,
        })
    }
}

/// Rows as JSONEachRow text.
pub(crate) fn json_lines<T: Serialize>(rows: &[T]) -> Result<String, ClickHouseError> {
    let mut out = String::new();
    for row in rows {
        out.push_str(&serde_json::to_string(row).map_err(ClickHouseError::Decode)?);
        out.push('\n');
    }
    Ok(out)
}
