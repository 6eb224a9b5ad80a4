//! The single writer: one thread owns the write connection and commits whatever requests are
//! waiting in one transaction (group commit), so concurrent requests share one fsync.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use tracehouse_core::{
    GroupCommit, ProjectId, Span, StoreObserver, TraceId, WriteReceipt, summarize,
};

use super::SqliteError;
use super::checkpoint::CommitSignal;
use super::index::{
    SearchRows, index_span, insert_trace_facets, replace_trace_facets, unindex_span,
};
use super::metrics::{ROLLUP_FACT_COLUMNS, RollupDeltas, RollupFacts};
use super::prepared::PreparedBatch;
use super::rows::{SPAN_COLUMNS, span_from_row, upsert_span, upsert_trace};
use crate::now_ns;
use crate::write_queue::{WriteOp, gather};

/// One request's change, answered with this backend's error.
pub(crate) type WriteJob = crate::write_queue::WriteJob<SqliteError, Arc<PreparedBatch>>;

/// Spans written between two refreshes of the query planner's statistics.
const SPANS_BETWEEN_OPTIMIZE: usize = 250_000;

/// Runs until every sender is dropped, then returns (the store is shutting down).
pub(crate) fn run(
    mut connection: Connection,
    mut jobs: mpsc::Receiver<WriteJob>,
    max_batch_spans: usize,
    observer: Option<Arc<dyn StoreObserver>>,
    commit_signal: &CommitSignal,
) {
    let mut since_optimize = 0usize;
    while let Some(first) = jobs.blocking_recv() {
        let (batch, span_total) = gather(first, &mut jobs, max_batch_spans);
        let requests = batch.len();
        let started = Instant::now();
        let (committed, answers) = commit_batch(&mut connection, batch);
        commit_signal.committed();
        // Reported before answering, so a client that has its answer also sees the commit in
        // the metrics.
        if let Some(observer) = &observer {
            observer.group_committed(&GroupCommit {
                requests,
                spans: span_total,
                seconds: started.elapsed().as_secs_f64(),
                failed: !committed,
                queued_after: jobs.len(),
                database_bytes: database_bytes(&connection),
            });
        }
        for (reply, result) in answers {
            // A dropped receiver means the client went away; its data is committed anyway.
            let _ = reply.send(result);
        }
        since_optimize += span_total;
        if since_optimize >= SPANS_BETWEEN_OPTIMIZE {
            since_optimize = 0;
            // Without fresh statistics SQLite cannot tell a selective index from the project
            // index and picks scans; `optimize` re-analyzes only what changed, bounded by
            // `analysis_limit`.
            if let Err(error) = connection.execute_batch("PRAGMA optimize") {
                tracing::warn!(error = %error, "refreshing planner statistics failed");
            }
        }
    }
}

/// Pages in use times page size: the file's size without the WAL.
fn database_bytes(connection: &Connection) -> Option<u64> {
    let pages: u64 = connection
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .ok()?;
    let page_size: u64 = connection
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .ok()?;
    Some(pages * page_size)
}

/// A request's answer channel and its outcome, sent once the commit is reported.
type Answer = (
    oneshot::Sender<Result<WriteReceipt, SqliteError>>,
    Result<WriteReceipt, SqliteError>,
);

/// Writes every job in one transaction; returns whether the batch committed as a whole and
/// every job's outcome, to be answered after the commit.
///
/// Jobs are not isolated by savepoints: a savepoint per job made SQLite copy pages into a
/// statement journal and made FTS5 flush its pending index per job, which together cost
/// about a third of the writer's time. Validation happens before a job gets here, so a job
/// failing inside SQLite is rare; when it happens the batch is rolled back and its jobs are
/// retried one transaction each, so only the failing job sees the error.
fn commit_batch(connection: &mut Connection, batch: Vec<WriteJob>) -> (bool, Vec<Answer>) {
    let ingested_ns = now_ns();
    let together = write_together(connection, &batch, ingested_ns);
    match together {
        Ok(receipts) => (
            true,
            batch
                .into_iter()
                .zip(receipts)
                .map(|(job, receipt)| (job.reply, Ok(receipt)))
                .collect(),
        ),
        Err(error) if batch.len() > 1 => {
            tracing::warn!(error = %error, jobs = batch.len(), "group commit failed; retrying jobs one by one");
            let answers = batch
                .into_iter()
                .map(|job| {
                    let result =
                        write_together(connection, std::slice::from_ref(&job), ingested_ns)
                            .map(|mut receipts| receipts.pop().unwrap_or_default());
                    (job.reply, result)
                })
                .collect();
            (false, answers)
        }
        Err(error) => (
            false,
            batch
                .into_iter()
                .map(|job| (job.reply, Err(error.duplicate())))
                .collect(),
        ),
    }
}

/// Writes jobs in one transaction and commits it; on any error nothing is committed.
fn write_together(
    connection: &mut Connection,
    jobs: &[WriteJob],
    ingested_ns: i64,
) -> Result<Vec<WriteReceipt>, SqliteError> {
    let transaction = connection.transaction()?;
    let mut receipts = Vec::with_capacity(jobs.len());
    let mut rollup = RollupDeltas::default();
    let mut search = SearchRows::default();
    for job in jobs {
        receipts.push(match &job.op {
            WriteOp::Spans(batch) => write_spans_and_traces(
                &transaction,
                job.project,
                batch,
                ingested_ns,
                &mut rollup,
                &mut search,
            )?,
            WriteOp::DeleteTrace(trace_id) => delete_trace(
                &transaction,
                job.project,
                trace_id,
                &mut rollup,
                &mut search,
            )?,
        });
    }
    search.flush(&transaction)?;
    rollup.flush(&transaction)?;
    transaction.commit()?;
    Ok(receipts)
}

fn write_spans_and_traces<'a>(
    transaction: &rusqlite::Transaction<'_>,
    project: ProjectId,
    batch: &'a PreparedBatch,
    ingested_ns: i64,
    rollup: &mut RollupDeltas,
    search: &mut SearchRows<'a>,
) -> Result<WriteReceipt, SqliteError> {
    rollup.merge(&batch.rollup);
    // Each touched trace, and whether it had spans before this request.
    let mut touched: BTreeMap<&TraceId, bool> = BTreeMap::new();
    // The spans of traces that had none before this request, by span id, a later copy in the
    // request replacing an earlier one: their summary and facets come from here, and only a
    // span id met before in the request can have a stored copy to look up.
    let mut fresh: HashMap<&TraceId, BTreeMap<&str, &Span>> = HashMap::new();
    {
        let mut insert = transaction.prepare_cached(super::rows::UPSERT_SPAN)?;
        // The replaced span's rollup facts come with the lookup that finds it anyway.
        let mut existing = transaction.prepare_cached(&format!(
            "SELECT rowid, {ROLLUP_FACT_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3"
        ))?;
        let mut trace_exists = transaction
            .prepare_cached("SELECT 1 FROM traces WHERE project_id = ?1 AND trace_id = ?2")?;
        for (span, prepared) in batch.iter() {
            let existed = match touched.get(&span.trace_id) {
                Some(existed) => *existed,
                None => {
                    let existed = trace_exists
                        .query_row(rusqlite::params![project.0, span.trace_id.as_str()], |_| {
                            Ok(())
                        })
                        .optional()?
                        .is_some();
                    touched.insert(&span.trace_id, existed);
                    existed
                }
            };
            let may_be_stored = existed
                || fresh
                    .entry(&span.trace_id)
                    .or_default()
                    .insert(span.span_id.as_str(), span)
                    .is_some();
            // Only a replaced span has index rows to remove; new spans skip those deletes,
            // which FTS5 would otherwise record as tombstones.
            let replaced: Option<(i64, RollupFacts)> = if may_be_stored {
                existing
                    .query_row(
                        rusqlite::params![project.0, span.trace_id.as_str(), span.span_id.as_str()],
                        |row| Ok((row.get(0)?, RollupFacts::from_row(row, 1))),
                    )
                    .optional()?
                    .map(|(rowid, facts)| facts.map(|facts| (rowid, facts)))
                    .transpose()?
            } else {
                None
            };
            if let Some((rowid, facts)) = replaced {
                unindex_span(transaction, rowid, search)?;
                rollup.add(project, &facts, -1);
            }
            let rowid = upsert_span(&mut insert, project, span, &prepared.content, ingested_ns)?;
            index_span(transaction, rowid, project, span, prepared, search)?;
        }
    }
    let mut save = transaction.prepare_cached(super::rows::UPSERT_TRACE)?;
    for (trace_id, existed) in &touched {
        let summary;
        if *existed {
            // Recompute from every stored span: replacements and late parents then give
            // exactly the aggregates a fresh computation would, with one definition (core's).
            let stored = load_trace_for_summary(transaction, project, trace_id)?;
            summary = summarize(&stored);
            replace_trace_facets(transaction, project, trace_id, &stored, summary.as_ref())?;
        } else {
            // A trace new in this request has only the spans in hand: summarize those instead
            // of reading them back (which parsed every span's stored JSON). In span id order,
            // like a read of the stored trace.
            let spans_of_trace: Vec<&Span> = fresh
                .remove(trace_id)
                .map(|by_id| by_id.into_values().collect())
                .unwrap_or_default();
            summary = summarize(&spans_of_trace);
            if let Some(summary) = &summary {
                insert_trace_facets(transaction, project, trace_id, &spans_of_trace, summary)?;
            }
        }
        if let Some(summary) = &summary {
            upsert_trace(&mut save, project, summary, ingested_ns)?;
        }
    }
    Ok(WriteReceipt {
        spans_written: batch.spans.len() as u64,
        traces_touched: touched.len() as u64,
    })
}

/// The stored spans of a trace, with only what [`summarize`] and the facets read.
fn load_trace_for_summary(
    transaction: &rusqlite::Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
) -> Result<Vec<Span>, SqliteError> {
    let select = format!(
        "SELECT {} FROM spans WHERE project_id = ?1 AND trace_id = ?2",
        SPAN_COLUMNS.replace(
            "content",
            "json_object('trace_name', json_extract(span_content(content), '$.trace_name'))"
        )
    );
    transaction
        .prepare_cached(&select)?
        .query_map(rusqlite::params![project.0, trace_id.as_str()], |row| {
            Ok(span_from_row(row))
        })?
        .collect::<Result<Result<Vec<Span>, SqliteError>, rusqlite::Error>>()?
}

/// Removes a trace, its spans and their index rows. `traces_touched` is 0 when there was none.
fn delete_trace(
    transaction: &rusqlite::Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    rollup: &mut RollupDeltas,
    search: &mut SearchRows<'_>,
) -> Result<WriteReceipt, SqliteError> {
    let stored: Vec<(i64, Result<RollupFacts, SqliteError>)> = transaction
        .prepare_cached(&format!(
            "SELECT rowid, {ROLLUP_FACT_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2"
        ))?
        .query_map(rusqlite::params![project.0, trace_id.as_str()], |row| {
            Ok((row.get(0)?, RollupFacts::from_row(row, 1)))
        })?
        .collect::<Result<_, _>>()?;
    let mut rowids = Vec::with_capacity(stored.len());
    for (rowid, facts) in stored {
        unindex_span(transaction, rowid, search)?;
        rollup.add(project, &facts?, -1);
        rowids.push(rowid);
    }
    transaction
        .prepare_cached("DELETE FROM spans WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(rusqlite::params![project.0, trace_id.as_str()])?;
    replace_trace_facets(transaction, project, trace_id, &[], None)?;
    let traces = transaction
        .prepare_cached("DELETE FROM traces WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(rusqlite::params![project.0, trace_id.as_str()])?;
    Ok(WriteReceipt {
        spans_written: rowids.len() as u64,
        traces_touched: traces as u64,
    })
}
