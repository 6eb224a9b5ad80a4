//! Secondary indexes maintained beside each span: flattened metadata and full-text search.

use rusqlite::{Transaction, params};
use tracehouse_core::query::SpanColumn;
use tracehouse_core::{ProjectId, Span, TraceId, TraceSummary};

use super::SqliteError;
use crate::indexing::{MetadataScalar, flatten_metadata, searchable};

/// Adds the index rows of the span stored at `rowid` (which has none: see [`unindex_span`]).
pub(crate) fn index_span(
    transaction: &Transaction<'_>,
    rowid: i64,
    project: ProjectId,
    span: &Span,
) -> Result<(), SqliteError> {
    if let Some(metadata) = span.content.get("metadata") {
        let rows = flatten_metadata(metadata);
        let mut insert = transaction.prepare_cached(
            "INSERT INTO span_metadata (span_rowid, project_id, key, text_value, num_value) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (key, value) in &rows {
            let (text, number) = match value {
                MetadataScalar::Text(text) => (Some(text.as_str()), None),
                MetadataScalar::Number(number) => (None, Some(*number)),
            };
            insert.execute(params![rowid, project.0, key, text, number])?;
        }
    }
    // Chat spans from OTLP carry their text in messages rather than input/output; index the
    // messages then, so search finds what a user sees in the conversation view.
    let input = searchable(
        span.content
            .get("input")
            .or_else(|| span.content.get("prompt_messages")),
    );
    let output = searchable(
        span.content
            .get("output")
            .or_else(|| span.content.get("completion_message"))
            .or_else(|| span.content.get("completion_messages")),
    );
    transaction
        .prepare_cached(
            "INSERT INTO temp.pending_search (rowid, name, input, output) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![rowid, span.name, input, output])?;
    Ok(())
}

/// Creates the writer connection's staging table for search rows (see [`flush_search_index`]).
pub(crate) fn prepare_search_staging(connection: &rusqlite::Connection) -> Result<(), SqliteError> {
    connection.execute_batch(
        "PRAGMA temp_store = MEMORY;
         CREATE TEMP TABLE IF NOT EXISTS pending_search (
             rowid INTEGER PRIMARY KEY, name TEXT, input TEXT, output TEXT
         );",
    )?;
    Ok(())
}

/// Moves the staged search rows of this transaction into the full-text index in one statement.
///
/// FTS5 flushes its in-memory index at every statement that writes it (each statement opens
/// a savepoint), so one INSERT per span wrote one tiny segment per span and spent most of
/// the writer's time merging them. Staging rows in a temp table and inserting them with one
/// statement per transaction writes one segment per group commit.
pub(crate) fn flush_search_index(transaction: &Transaction<'_>) -> Result<(), SqliteError> {
    transaction.execute_batch(
        "INSERT INTO span_search (rowid, name, input, output)
             SELECT rowid, name, input, output FROM temp.pending_search;
         DELETE FROM temp.pending_search;",
    )?;
    Ok(())
}

/// Removes the index rows of the span stored at `rowid`.
pub(crate) fn unindex_span(transaction: &Transaction<'_>, rowid: i64) -> Result<(), SqliteError> {
    transaction
        .prepare_cached("DELETE FROM span_metadata WHERE span_rowid = ?1")?
        .execute(params![rowid])?;
    transaction
        .prepare_cached("DELETE FROM span_search WHERE rowid = ?1")?
        .execute(params![rowid])?;
    // A span replaced within the same transaction is still staged, not yet indexed.
    transaction
        .prepare_cached("DELETE FROM temp.pending_search WHERE rowid = ?1")?
        .execute(params![rowid])?;
    Ok(())
}

/// Span fields kept as trace facets; `query` answers equality filters on them from the facets.
pub(crate) const FACET_COLUMNS: [SpanColumn; 6] = [
    SpanColumn::Model,
    SpanColumn::LogType,
    SpanColumn::Status,
    SpanColumn::ProviderId,
    SpanColumn::Environment,
    SpanColumn::CustomerIdentifier,
];

fn facet_value(span: &Span, column: SpanColumn) -> Option<&str> {
    match column {
        SpanColumn::Model => span.model.as_deref(),
        SpanColumn::LogType => Some(span.log_type.as_str()),
        SpanColumn::Status => Some(span.status.as_str()),
        SpanColumn::ProviderId => span.provider_id.as_deref(),
        SpanColumn::Environment => span.grouping.environment.as_deref(),
        SpanColumn::CustomerIdentifier => span.grouping.customer_identifier.as_deref(),
        _ => None,
    }
}

/// Rewrites the facets of a trace from its spans; `summary` is `None` when the trace is gone.
pub(crate) fn index_trace_facets(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    spans: &[Span],
    summary: Option<&TraceSummary>,
) -> Result<(), SqliteError> {
    transaction
        .prepare_cached("DELETE FROM trace_facets INDEXED BY trace_facets_by_trace WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(params![project.0, trace_id.as_str()])?;
    let Some(summary) = summary else {
        return Ok(());
    };
    let mut values: Vec<(&'static str, &str)> = Vec::new();
    for column in FACET_COLUMNS {
        for span in spans {
            if let Some(value) = facet_value(span, column) {
                values.push((column.api_name(), value));
            }
        }
    }
    values.sort_unstable();
    values.dedup();
    let mut insert = transaction.prepare_cached(
        "INSERT INTO trace_facets (project_id, facet, value, start_ns, trace_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (facet, value) in values {
        insert.execute(params![
            project.0,
            facet,
            value,
            summary.start.unix_nanos(),
            trace_id.as_str()
        ])?;
    }
    Ok(())
}
