//! Secondary indexes maintained beside each span: flattened metadata and full-text search.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use rusqlite::{Transaction, params};
use tracehouse_core::query::SpanColumn;
use tracehouse_core::{ProjectId, Span, TraceId, TraceSummary};

use super::SqliteError;
use super::prepared::PreparedSpan;
use crate::indexing::MetadataScalar;

/// Adds the index rows of the span stored at `rowid` (which has none: see [`unindex_span`]).
/// Its search row waits in `search` until [`SearchRows::flush`].
pub(crate) fn index_span<'a>(
    transaction: &Transaction<'_>,
    rowid: i64,
    project: ProjectId,
    span: &'a Span,
    prepared: &'a PreparedSpan,
    search: &mut SearchRows<'a>,
) -> Result<(), SqliteError> {
    if !prepared.metadata.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO span_metadata (span_rowid, project_id, key, text_value, num_value) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (key, value) in &prepared.metadata {
            let (text, number) = match value {
                MetadataScalar::Text(text) => (Some(text.as_str()), None),
                MetadataScalar::Number(number) => (None, Some(*number)),
            };
            insert.execute(params![rowid, project.0, key, text, number])?;
        }
    }
    search.rows.insert(
        rowid,
        [
            span.name.as_str(),
            prepared.search_input.as_str(),
            prepared.search_output.as_str(),
        ],
    );
    Ok(())
}

/// Removes the index rows of the span stored at `rowid`.
pub(crate) fn unindex_span(
    transaction: &Transaction<'_>,
    rowid: i64,
    search: &mut SearchRows<'_>,
) -> Result<(), SqliteError> {
    transaction
        .prepare_cached("DELETE FROM span_metadata WHERE span_rowid = ?1")?
        .execute(params![rowid])?;
    // A span replaced within the same transaction is still waiting, not yet indexed.
    if search.rows.remove(&rowid).is_none() {
        transaction
            .prepare_cached("DELETE FROM span_search WHERE rowid = ?1")?
            .execute(params![rowid])?;
    }
    Ok(())
}

/// Most search rows in one INSERT: four parameters each, under SQLite's 32,766 bound.
const SEARCH_ROWS_PER_STATEMENT: usize = 4096;

/// The full-text rows of one transaction, written together by [`SearchRows::flush`].
///
/// FTS5 flushes its in-memory index at every statement that writes it, so one INSERT per
/// span wrote one tiny segment per span and spent most of the writer's time merging them.
/// Held here (by rowid, so a replaced span's row is dropped) and inserted with one
/// statement per transaction, a group commit writes one segment.
#[derive(Default)]
pub(crate) struct SearchRows<'a> {
    rows: BTreeMap<i64, [&'a str; 3]>,
}

impl SearchRows<'_> {
    pub(crate) fn flush(&mut self, transaction: &Transaction<'_>) -> Result<(), SqliteError> {
        let rows = std::mem::take(&mut self.rows);
        let rows: Vec<(i64, [&str; 3])> = rows.into_iter().collect();
        for chunk in rows.chunks(SEARCH_ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            // Not cached: the row count differs from one transaction to the next.
            let mut insert = transaction.prepare(&format!(
                "INSERT INTO span_search (rowid, name, input, output) VALUES {values}"
            ))?;
            let mut index = 1;
            for (rowid, texts) in chunk {
                insert.raw_bind_parameter(index, rowid)?;
                for (offset, text) in texts.iter().enumerate() {
                    insert.raw_bind_parameter(index + 1 + offset, text)?;
                }
                index += 4;
            }
            insert.raw_execute()?;
        }
        Ok(())
    }
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
pub(crate) fn replace_trace_facets(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    spans: &[Span],
    summary: Option<&TraceSummary>,
) -> Result<(), SqliteError> {
    transaction
        .prepare_cached("DELETE FROM trace_facets INDEXED BY trace_facets_by_trace WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(params![project.0, trace_id.as_str()])?;
    match summary {
        Some(summary) => insert_trace_facets(transaction, project, trace_id, spans, summary),
        None => Ok(()),
    }
}

/// Writes the facets of a trace that has none stored yet.
pub(crate) fn insert_trace_facets<S: Borrow<Span>>(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    spans: &[S],
    summary: &TraceSummary,
) -> Result<(), SqliteError> {
    let mut values: Vec<(&'static str, &str)> = Vec::new();
    for column in FACET_COLUMNS {
        for span in spans {
            if let Some(value) = facet_value(span.borrow(), column) {
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
