//! Mapping between core types and SQLite rows.

use rusqlite::{Row, Statement, params};
use serde_json::{Map, Value};
use tracehouse_core::{
    LogType, ProjectId, Span, SpanGrouping, SpanId, SpanStatus, Timestamp, TokenUsage, TraceId,
    TraceSummary,
};

use tracehouse_core::trace_state::{SpanFacts, TraceState};

use super::SqliteError;
use super::content::{StoredContent, decode as decode_content};

/// Column list of `spans` in the order [`span_from_row`] reads it.
pub(crate) const SPAN_COLUMNS: &str = "trace_id, span_id, parent_id, name, log_type, start_ns, end_ns, latency, \
     times_inferred, model, provider_id, status, status_code, error_message, prompt_tokens, completion_tokens, total_tokens, cost, \
     customer_identifier, session_identifier, thread_identifier, trace_group_identifier, environment, \
     workflow_name, path, content";

/// Inserts a span that is not stored yet and returns its rowid; returns no row when the span
/// is stored already (then [`UPSERT_SPAN`] replaces it). Most spans are new, so trying the
/// insert first spares them the lookup a replacement needs.
pub(crate) const INSERT_NEW_SPAN: &str = "INSERT INTO spans (project_id, trace_id, span_id, parent_id, name, log_type, \
     start_ns, end_ns, latency, times_inferred, model, provider_id, status, status_code, error_message, prompt_tokens, \
     completion_tokens, total_tokens, cost, customer_identifier, session_identifier, thread_identifier, \
     trace_group_identifier, environment, workflow_name, path, content, ingested_ns, first_seen_ns, ttft) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?28, ?29) \
     ON CONFLICT (project_id, trace_id, span_id) DO NOTHING RETURNING rowid";

/// Inserts or replaces a span and returns its rowid (kept across replacements).
pub(crate) const UPSERT_SPAN: &str = "INSERT INTO spans (project_id, trace_id, span_id, parent_id, name, log_type, \
     start_ns, end_ns, latency, times_inferred, model, provider_id, status, status_code, error_message, prompt_tokens, \
     completion_tokens, total_tokens, cost, customer_identifier, session_identifier, thread_identifier, \
     trace_group_identifier, environment, workflow_name, path, content, ingested_ns, first_seen_ns, ttft) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?28, ?29) \
     ON CONFLICT (project_id, trace_id, span_id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, \
     log_type = excluded.log_type, start_ns = excluded.start_ns, end_ns = excluded.end_ns, latency = excluded.latency, \
     times_inferred = excluded.times_inferred, \
     model = excluded.model, provider_id = excluded.provider_id, status = excluded.status, \
     status_code = excluded.status_code, error_message = excluded.error_message, \
     prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens, \
     total_tokens = excluded.total_tokens, cost = excluded.cost, customer_identifier = excluded.customer_identifier, \
     session_identifier = excluded.session_identifier, thread_identifier = excluded.thread_identifier, \
     trace_group_identifier = excluded.trace_group_identifier, environment = excluded.environment, \
     workflow_name = excluded.workflow_name, path = excluded.path, content = excluded.content, \
     ingested_ns = excluded.ingested_ns, content_expired_ns = NULL, ttft = excluded.ttft \
     RETURNING rowid";

pub(crate) const UPSERT_TRACE: &str = "INSERT INTO traces (project_id, trace_id, root_span_id, name, \
     start_ns, end_ns, duration, span_count, llm_call_count, error_count, total_prompt_tokens, \
     total_completion_tokens, total_tokens, total_cost, environment, customer_identifier, session_identifier, \
     thread_identifier, trace_group_identifier, models, updated_ns, first_seen_ns, state, running_count) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?21, ?22, ?23) \
     ON CONFLICT (project_id, trace_id) DO UPDATE SET root_span_id = excluded.root_span_id, name = excluded.name, \
     start_ns = excluded.start_ns, end_ns = excluded.end_ns, duration = excluded.duration, \
     span_count = excluded.span_count, llm_call_count = excluded.llm_call_count, error_count = excluded.error_count, \
     total_prompt_tokens = excluded.total_prompt_tokens, total_completion_tokens = excluded.total_completion_tokens, \
     total_tokens = excluded.total_tokens, total_cost = excluded.total_cost, environment = excluded.environment, \
     customer_identifier = excluded.customer_identifier, session_identifier = excluded.session_identifier, \
     thread_identifier = excluded.thread_identifier, trace_group_identifier = excluded.trace_group_identifier, \
     models = excluded.models, updated_ns = excluded.updated_ns, state = excluded.state, \
     running_count = excluded.running_count";

pub(crate) const TRACE_COLUMNS: &str = "trace_id, root_span_id, name, start_ns, end_ns, duration, span_count, \
     llm_call_count, error_count, total_prompt_tokens, total_completion_tokens, total_tokens, total_cost, \
     environment, customer_identifier, session_identifier, thread_identifier, trace_group_identifier, models, \
     running_count";

/// How many columns [`TRACE_COLUMNS`] selects; a list selects the root's content after them.
pub(crate) const TRACE_COLUMN_COUNT: usize = 20;

fn count_to_sql(count: Option<u64>) -> Option<i64> {
    // Token counts beyond i64 are not real; clamp rather than fail the whole batch.
    count.map(|c| i64::try_from(c).unwrap_or(i64::MAX))
}

fn count_from_sql(count: Option<i64>) -> Option<u64> {
    count.and_then(|c| u64::try_from(c).ok())
}

/// Runs [`INSERT_NEW_SPAN`] or [`UPSERT_SPAN`] for a span: its rowid, or `None` when the
/// insert-only statement found the span stored already.
pub(crate) fn upsert_span(
    statement: &mut Statement<'_>,
    project: ProjectId,
    span: &Span,
    content: &StoredContent,
    ttft: Option<f64>,
    ingested_ns: i64,
) -> Result<Option<i64>, SqliteError> {
    let rowid = statement.query_row(
        params![
            project.0,
            span.trace_id.as_str(),
            span.span_id.as_str(),
            span.parent_id.as_ref().map(SpanId::as_str),
            span.name,
            span.log_type.as_str(),
            span.start.unix_nanos(),
            span.end.unix_nanos(),
            span.latency,
            span.times_inferred,
            span.model,
            span.provider_id,
            span.status.as_str(),
            span.status_code,
            span.error_message,
            count_to_sql(span.usage.prompt_tokens),
            count_to_sql(span.usage.completion_tokens),
            count_to_sql(span.usage.total_tokens),
            span.cost,
            span.grouping.customer_identifier,
            span.grouping.session_identifier,
            span.grouping.thread_identifier,
            span.grouping.trace_group_identifier,
            span.grouping.environment,
            span.workflow_name,
            span.path,
            content,
            ingested_ns,
            ttft,
        ],
        |row| row.get(0),
    );
    match rowid {
        Ok(rowid) => Ok(Some(rowid)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn id<T: TryFrom<String>>(raw: String, column: &str) -> Result<T, SqliteError> {
    T::try_from(raw).map_err(|_| SqliteError::Corrupt(format!("invalid id in column {column}")))
}

/// Reads a span from a row selected with [`SPAN_COLUMNS`]. `content` may be any JSON object
/// text or stored content (see `content`); queries that only need aggregates select a smaller object in its place.
pub(crate) fn span_from_row(row: &Row<'_>) -> Result<Span, SqliteError> {
    let content_text = decode_content(row.get_ref(25)?)?;
    let content = match serde_json::from_str::<Value>(&content_text)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Ok(Span {
        trace_id: id::<TraceId>(row.get(0)?, "trace_id")?,
        span_id: id::<SpanId>(row.get(1)?, "span_id")?,
        parent_id: row
            .get::<_, Option<String>>(2)?
            .map(|raw| id::<SpanId>(raw, "parent_id"))
            .transpose()?,
        name: row.get(3)?,
        log_type: LogType::new(&row.get::<_, String>(4)?),
        start: Timestamp::from_unix_nanos(row.get(5)?),
        end: Timestamp::from_unix_nanos(row.get(6)?),
        latency: row.get(7)?,
        times_inferred: row.get(8)?,
        model: row.get(9)?,
        provider_id: row.get(10)?,
        status: SpanStatus::from_api(&row.get::<_, String>(11)?),
        status_code: row.get(12)?,
        error_message: row.get(13)?,
        usage: TokenUsage {
            prompt_tokens: count_from_sql(row.get(14)?),
            completion_tokens: count_from_sql(row.get(15)?),
            total_tokens: count_from_sql(row.get(16)?),
        },
        cost: row.get(17)?,
        grouping: SpanGrouping {
            customer_identifier: row.get(18)?,
            session_identifier: row.get(19)?,
            thread_identifier: row.get(20)?,
            trace_group_identifier: row.get(21)?,
            environment: row.get(22)?,
        },
        workflow_name: row.get(23)?,
        path: row.get(24)?,
        content,
    })
}

pub(crate) fn upsert_trace(
    statement: &mut Statement<'_>,
    project: ProjectId,
    summary: &TraceSummary,
    state: &TraceState,
    updated_ns: i64,
) -> Result<(), SqliteError> {
    let total = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    statement.execute(params![
        project.0,
        summary.trace_id.as_str(),
        summary.root_span_id.as_ref().map(SpanId::as_str),
        summary.name,
        summary.start.unix_nanos(),
        summary.end.unix_nanos(),
        summary.duration,
        total(summary.span_count),
        total(summary.llm_call_count),
        total(summary.error_count),
        total(summary.total_prompt_tokens),
        total(summary.total_completion_tokens),
        total(summary.total_tokens),
        summary.total_cost,
        summary.environment,
        summary.customer_identifier,
        summary.session_identifier,
        summary.thread_identifier,
        summary.trace_group_identifier,
        serde_json::to_string(&summary.models)?,
        updated_ns,
        serde_json::to_string(state)?,
        total(summary.running_count),
    ])?;
    Ok(())
}

/// Reads a summary from a row selected with [`TRACE_COLUMNS`].
pub(crate) fn summary_from_row(row: &Row<'_>) -> Result<TraceSummary, SqliteError> {
    let total = |index: usize| -> Result<u64, SqliteError> {
        Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
    };
    Ok(TraceSummary {
        trace_id: id::<TraceId>(row.get(0)?, "trace_id")?,
        root_span_id: row
            .get::<_, Option<String>>(1)?
            .map(|raw| id::<SpanId>(raw, "root_span_id"))
            .transpose()?,
        name: row.get(2)?,
        start: Timestamp::from_unix_nanos(row.get(3)?),
        end: Timestamp::from_unix_nanos(row.get(4)?),
        duration: row.get(5)?,
        span_count: total(6)?,
        llm_call_count: total(7)?,
        error_count: total(8)?,
        total_prompt_tokens: total(9)?,
        total_completion_tokens: total(10)?,
        total_tokens: total(11)?,
        total_cost: row.get(12)?,
        environment: row.get(13)?,
        customer_identifier: row.get(14)?,
        session_identifier: row.get(15)?,
        thread_identifier: row.get(16)?,
        trace_group_identifier: row.get(17)?,
        models: serde_json::from_str(&row.get::<_, String>(18)?)?,
        running_count: total(19)?,
    })
}

/// Columns of `spans` that [`StoredFacts::from_row`] reads, in order: what a stored span
/// contributed to its trace's state and to the rollups, without its content.
pub(crate) const FACT_COLUMNS: &str = "rowid, span_id, parent_id, start_ns, end_ns, times_inferred, \
     log_type, status, prompt_tokens, completion_tokens, total_tokens, cost, environment, \
     customer_identifier, session_identifier, thread_identifier, trace_group_identifier, model, \
     provider_id, workflow_name, latency";

/// Number of columns in [`FACT_COLUMNS`].
pub(crate) const FACT_COLUMN_COUNT: usize = 21;

/// A stored span's columns, as the writer reads them back when the span is replaced or deleted.
pub(crate) struct StoredFacts {
    pub(crate) rowid: i64,
    pub(crate) span_id: String,
    pub(crate) parent_id: Option<String>,
    pub(crate) start_ns: i64,
    pub(crate) end_ns: i64,
    pub(crate) times_inferred: bool,
    pub(crate) log_type: String,
    pub(crate) status: String,
    pub(crate) prompt_tokens: Option<i64>,
    pub(crate) completion_tokens: Option<i64>,
    pub(crate) total_tokens: Option<i64>,
    pub(crate) cost: Option<f64>,
    /// Environment, customer, session, thread and trace group, as in `GROUPING_FIELDS`.
    pub(crate) grouping: [Option<String>; 5],
    pub(crate) model: Option<String>,
    pub(crate) provider_id: Option<String>,
    pub(crate) workflow_name: Option<String>,
    pub(crate) latency: f64,
}

impl StoredFacts {
    /// Reads a row selected with [`FACT_COLUMNS`].
    pub(crate) fn from_row(row: &Row<'_>) -> Result<Self, rusqlite::Error> {
        Ok(Self {
            rowid: row.get(0)?,
            span_id: row.get(1)?,
            parent_id: row.get(2)?,
            start_ns: row.get(3)?,
            end_ns: row.get(4)?,
            times_inferred: row.get(5)?,
            log_type: row.get(6)?,
            status: row.get(7)?,
            prompt_tokens: row.get(8)?,
            completion_tokens: row.get(9)?,
            total_tokens: row.get(10)?,
            cost: row.get(11)?,
            grouping: [
                row.get(12)?,
                row.get(13)?,
                row.get(14)?,
                row.get(15)?,
                row.get(16)?,
            ],
            model: row.get(17)?,
            provider_id: row.get(18)?,
            workflow_name: row.get(19)?,
            latency: row.get(20)?,
        })
    }

    /// What the span contributes to its trace's state: the same values `SpanFacts::of` takes
    /// from the span it was stored from, since both follow the columns [`upsert_span`] writes.
    pub(crate) fn facts(&self) -> SpanFacts<'_> {
        let grouping = self.grouping.each_ref().map(Option::as_deref);
        SpanFacts {
            span_id: &self.span_id,
            parent_id: self.parent_id.as_deref(),
            start: Timestamp::from_unix_nanos(self.start_ns),
            end: Timestamp::from_unix_nanos(self.end_ns),
            times_inferred: self.times_inferred,
            llm_call: SpanFacts::is_llm_call_kind(&self.log_type),
            error: SpanStatus::from_api(&self.status) == SpanStatus::Error,
            prompt_tokens: count_from_sql(self.prompt_tokens),
            completion_tokens: count_from_sql(self.completion_tokens),
            total_tokens: count_from_sql(self.total_tokens),
            cost: self.cost,
            grouping,
            distinct: [
                self.model.as_deref(),
                Some(&self.log_type),
                Some(&self.status),
                self.provider_id.as_deref(),
                grouping[0],
                grouping[1],
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trace_column_count_matches_the_column_list() {
        assert_eq!(
            super::TRACE_COLUMNS.split(',').count(),
            super::TRACE_COLUMN_COUNT
        );
    }
}
