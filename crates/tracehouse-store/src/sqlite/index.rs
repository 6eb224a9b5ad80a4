//! Secondary indexes maintained beside each span: flattened metadata and full-text search.

use std::collections::BTreeMap;

use rusqlite::{Transaction, params};
use tracehouse_core::{ProjectId, Span};

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
            "INSERT INTO span_metadata (span_rowid, project_id, key, text_value, num_value, start_ns) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let start_ns = span.start.unix_nanos();
        for (key, value) in &prepared.metadata {
            let (text, number) = match value {
                MetadataScalar::Text(text) => (Some(text.as_str()), None),
                MetadataScalar::Number(number) => (None, Some(*number)),
            };
            insert.execute(params![rowid, project.0, key, text, number, start_ns])?;
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
    unindex_search(transaction, rowid, search)
}

/// Removes the full-text row of the span stored at `rowid`.
pub(crate) fn unindex_search(
    transaction: &Transaction<'_>,
    rowid: i64,
    search: &mut SearchRows<'_>,
) -> Result<(), SqliteError> {
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
