//! Retention on the writer's thread: removing old traces and expiring old content, a bounded
//! batch per job, in the same group commits as ingest so nothing else takes the write lock.

use rusqlite::{Transaction, params};
use serde_json::{Map, Value};
use tracehouse_core::retention::expire_content;
use tracehouse_core::{Cutoffs, ProjectId, RetentionStep, Timestamp, TraceId};

use super::SqliteError;
use super::content::{self, StoredContent};
use super::index::unindex_search;
use super::writer::{Pending, delete_trace};

/// Pages handed back to the file system after a commit that removed data: at 4 KiB pages,
/// 16 MiB, which SQLite moves and truncates in a few milliseconds.
pub(crate) const VACUUM_PAGES_PER_STEP: u32 = 4096;

/// One project's step of retention, to commit with the writer's other jobs.
pub(crate) struct ExpireJob {
    pub(crate) cutoffs: Cutoffs,
    pub(crate) now: Timestamp,
    pub(crate) limit: usize,
    pub(crate) answer: tokio::sync::oneshot::Sender<RetentionStep>,
}

/// Removes up to `limit` traces last active before the data cutoff, then expires the content
/// of up to `limit` spans started before the content cutoff.
pub(crate) fn expire(
    transaction: &Transaction<'_>,
    project: ProjectId,
    job: &ExpireJob,
    pending: &mut Pending<'_, '_>,
) -> Result<RetentionStep, SqliteError> {
    let limit = i64::try_from(job.limit).unwrap_or(i64::MAX);
    let mut step = RetentionStep {
        done: true,
        ..RetentionStep::default()
    };
    if let Some(before) = job.cutoffs.data_before {
        // A trace's end is never before its start, so the candidates are a range of the
        // start index; the end decides, so a long trace still active is kept.
        let traces: Vec<String> = transaction
            .prepare_cached(
                "SELECT trace_id FROM traces INDEXED BY traces_by_time \
                 WHERE project_id = ?1 AND start_ns < ?2 AND end_ns < ?2 \
                 ORDER BY start_ns LIMIT ?3",
            )?
            .query_map(params![project.0, before.unix_nanos(), limit], |row| {
                row.get(0)
            })?
            .collect::<Result<_, _>>()?;
        step.done &= traces.len() < job.limit;
        for trace in traces {
            let trace_id = TraceId::try_from(trace.as_str())
                .map_err(|error| SqliteError::Corrupt(format!("stored trace id: {error}")))?;
            let receipt = delete_trace(transaction, project, &trace_id, pending)?;
            step.traces_removed += receipt.traces_touched;
            step.spans_removed += receipt.spans_written;
        }
    }
    if let Some(before) = job.cutoffs.content_before {
        let spans: Vec<(i64, String)> = transaction
            .prepare_cached(
                "SELECT rowid, content FROM spans INDEXED BY spans_content_live \
                 WHERE project_id = ?1 AND start_ns < ?2 AND content_expired_ns IS NULL \
                 ORDER BY start_ns LIMIT ?3",
            )?
            .query_map(params![project.0, before.unix_nanos(), limit], |row| {
                Ok((row.get(0)?, content::decode(row.get_ref(1)?)))
            })?
            .map(|row| {
                row.map_err(SqliteError::from)
                    .and_then(|(rowid, text)| Ok((rowid, text?)))
            })
            .collect::<Result<_, _>>()?;
        step.done &= spans.len() < job.limit;
        let mut update = transaction.prepare_cached(
            "UPDATE spans SET content = ?2, content_expired_ns = ?3 WHERE rowid = ?1",
        )?;
        for (rowid, text) in spans {
            let mut stored: Map<String, Value> = serde_json::from_str(&text)?;
            expire_content(&mut stored, job.now);
            let encoded = StoredContent::encode(serde_json::to_string(&stored)?)?;
            update.execute(params![rowid, encoded, job.now.unix_nanos()])?;
            unindex_search(transaction, rowid, &mut pending.search)?;
            step.spans_content_expired += 1;
        }
    }
    Ok(step)
}
