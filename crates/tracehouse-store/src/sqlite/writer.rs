//! The single writer: one thread owns the write connection and commits whatever requests are
//! waiting in one transaction (group commit), so concurrent requests share one fsync.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracehouse_core::{
    GroupCommit, ProjectId, RetentionStep, StoreObserver, TraceId, WriteReceipt,
};

use super::SqliteError;
use super::checkpoint::CommitSignal;
use super::index::{SearchRows, index_span, unindex_span};
use super::keys::{KeyAnswer, KeyChange};
use super::prepared::PreparedBatch;
use super::retention::ExpireJob;
use super::rollup::{RollupDeltas, RollupFacts};
use super::rows::{FACT_COLUMNS, StoredFacts, upsert_span};
use super::trace_write::{ProjectTotals, TraceCache, TraceWrites};
use crate::now_ns;
use crate::write_queue::{SpanBatch, WriteOp, gather};

/// One request's change, answered with this backend's error.
pub(crate) type WriteJob = crate::write_queue::WriteJob<SqliteError, SqliteChange>;

/// What the SQLite writer commits besides trace deletions: spans, and key or project changes,
/// which go through the writer too so that no other connection takes the write lock.
pub(crate) enum SqliteChange {
    Spans(Arc<PreparedBatch>),
    Keys(KeyJob),
    Expire(ExpireJob),
}

/// A key or project change and the channel its answer goes back on once it is committed.
pub(crate) struct KeyJob {
    pub(crate) change: KeyChange,
    pub(crate) answer: oneshot::Sender<KeyAnswer>,
}

impl SpanBatch for SqliteChange {
    fn span_count(&self) -> usize {
        match self {
            SqliteChange::Spans(batch) => batch.spans.len(),
            SqliteChange::Keys(_) => 1,
            // A retention step touches up to its limit of traces and of spans.
            SqliteChange::Expire(job) => job.limit,
        }
    }
}

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
    let mut cache = TraceCache::default();
    while let Some(first) = jobs.blocking_recv() {
        let (batch, _) = gather(first, &mut jobs, max_batch_spans);
        // Spans written, deletes one each as the observer counts them; key changes none.
        let span_total: usize = batch
            .iter()
            .map(|job| match &job.op {
                WriteOp::Change(SqliteChange::Keys(_) | SqliteChange::Expire(_)) => 0,
                op => op.weight(),
            })
            .sum();
        let expires = batch
            .iter()
            .any(|job| matches!(job.op, WriteOp::Change(SqliteChange::Expire(_))));
        let requests = batch.len();
        let started = Instant::now();
        let (committed, answers) = commit_batch(&mut connection, batch, &mut cache);
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
        if expires && committed {
            give_space_back(&connection);
        }
        for (reply, result, side_answer) in answers {
            // A dropped receiver means the client went away; its data is committed anyway.
            match side_answer {
                Some(SideAnswer::Key(channel, answer)) => {
                    let _ = channel.send(answer);
                }
                Some(SideAnswer::Retention(channel, step)) => {
                    let _ = channel.send(step);
                }
                None => {}
            }
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

/// Returns the pages retention freed to the file system, a bounded number at a time, in its
/// own transaction after the commit that freed them. Databases created before incremental
/// vacuum (`auto_vacuum` NONE) keep their free pages and reuse them for new rows instead.
fn give_space_back(connection: &Connection) {
    let vacuum = format!(
        "PRAGMA incremental_vacuum({})",
        super::retention::VACUUM_PAGES_PER_STEP
    );
    if let Err(error) = connection.execute_batch(&vacuum) {
        tracing::warn!(error = %error, "incremental vacuum failed");
    }
}

/// What a job answers besides its receipt, on its own channel.
enum SideAnswer {
    Key(oneshot::Sender<KeyAnswer>, KeyAnswer),
    Retention(oneshot::Sender<RetentionStep>, RetentionStep),
}

/// What a job's commit computed besides its receipt.
enum SideOutcome {
    Key(KeyAnswer),
    Retention(RetentionStep),
}

/// A request's answer channel and its outcome, and a side answer, sent once the commit is
/// reported.
type Answer = (
    oneshot::Sender<Result<WriteReceipt, SqliteError>>,
    Result<WriteReceipt, SqliteError>,
    Option<SideAnswer>,
);

/// What a job's commit gave: its receipt, and a key change's or retention step's answer.
type Outcome = (WriteReceipt, Option<SideOutcome>);

/// A job's answers from its outcome.
fn answer(job: WriteJob, outcome: Result<Outcome, SqliteError>) -> Answer {
    match outcome {
        Ok((receipt, side)) => {
            let side = match (job.op, side) {
                (WriteOp::Change(SqliteChange::Keys(keys)), Some(SideOutcome::Key(answer))) => {
                    Some(SideAnswer::Key(keys.answer, answer))
                }
                (
                    WriteOp::Change(SqliteChange::Expire(expire)),
                    Some(SideOutcome::Retention(step)),
                ) => Some(SideAnswer::Retention(expire.answer, step)),
                _ => None,
            };
            (job.reply, Ok(receipt), side)
        }
        Err(error) => (job.reply, Err(error), None),
    }
}

/// Writes every job in one transaction; returns whether the batch committed as a whole and
/// every job's outcome, to be answered after the commit.
///
/// Jobs are not isolated by savepoints: a savepoint per job made SQLite copy pages into a
/// statement journal and made FTS5 flush its pending index per job, which together cost
/// about a third of the writer's time. Validation happens before a job gets here, so a job
/// failing inside SQLite is rare; when it happens the batch is rolled back and its jobs are
/// retried one transaction each, so only the failing job sees the error.
fn commit_batch(
    connection: &mut Connection,
    batch: Vec<WriteJob>,
    cache: &mut TraceCache,
) -> (bool, Vec<Answer>) {
    let ingested_ns = now_ns();
    let together = write_together(connection, &batch, ingested_ns, cache);
    match together {
        Ok(outcomes) => (
            true,
            batch
                .into_iter()
                .zip(outcomes)
                .map(|(job, outcome)| answer(job, Ok(outcome)))
                .collect(),
        ),
        Err(error) if batch.len() > 1 => {
            tracing::warn!(error = %error, jobs = batch.len(), "group commit failed; retrying jobs one by one");
            let answers = batch
                .into_iter()
                .map(|job| {
                    let outcome =
                        write_together(connection, std::slice::from_ref(&job), ingested_ns, cache)
                            .map(|mut outcomes| outcomes.pop().unwrap_or_default());
                    answer(job, outcome)
                })
                .collect();
            (false, answers)
        }
        Err(error) => (
            false,
            batch
                .into_iter()
                .map(|job| answer(job, Err(error.duplicate())))
                .collect(),
        ),
    }
}

/// What one group commit gathers besides its span rows, written at its end.
pub(crate) struct Pending<'a, 'c> {
    rollup: RollupDeltas,
    pub(crate) search: SearchRows<'a>,
    traces: TraceWrites<'a, 'c>,
    totals: ProjectTotals,
}

/// Writes jobs in one transaction and commits it; on any error nothing is committed.
fn write_together(
    connection: &mut Connection,
    jobs: &[WriteJob],
    ingested_ns: i64,
    cache: &mut TraceCache,
) -> Result<Vec<Outcome>, SqliteError> {
    let transaction = connection.transaction()?;
    cache.check_other_writers(&transaction)?;
    let mut receipts = Vec::with_capacity(jobs.len());
    let mut pending = Pending {
        rollup: RollupDeltas::default(),
        search: SearchRows::default(),
        traces: TraceWrites::new(cache),
        totals: ProjectTotals::default(),
    };
    for job in jobs {
        receipts.push(match &job.op {
            WriteOp::Change(SqliteChange::Spans(batch)) => (
                write_spans(&transaction, job.project, batch, ingested_ns, &mut pending)?,
                None,
            ),
            WriteOp::Change(SqliteChange::Keys(keys)) => (
                WriteReceipt::default(),
                Some(SideOutcome::Key(keys.change.apply(&transaction)?)),
            ),
            WriteOp::Change(SqliteChange::Expire(expire)) => (
                WriteReceipt::default(),
                Some(SideOutcome::Retention(super::retention::expire(
                    &transaction,
                    job.project,
                    expire,
                    &mut pending,
                )?)),
            ),
            WriteOp::DeleteTrace(trace_id) => (
                delete_trace(&transaction, job.project, trace_id, &mut pending)?,
                None,
            ),
        });
    }
    let Pending {
        mut rollup,
        mut search,
        traces,
        mut totals,
    } = pending;
    let states = traces.flush(&transaction, ingested_ns, &mut totals)?;
    totals.flush(&transaction, ingested_ns)?;
    search.flush(&transaction)?;
    rollup.flush(&transaction)?;
    transaction.commit()?;
    cache.keep(states);
    Ok(receipts)
}

/// Writes a request's spans with their index rows; their traces are settled at the end of the
/// commit by [`TraceWrites::flush`].
fn write_spans<'a>(
    transaction: &rusqlite::Transaction<'_>,
    project: ProjectId,
    batch: &'a PreparedBatch,
    ingested_ns: i64,
    pending: &mut Pending<'a, '_>,
) -> Result<WriteReceipt, SqliteError> {
    let Pending {
        rollup,
        search,
        traces,
        totals,
    } = pending;
    rollup.merge(&batch.rollup);
    let mut insert_new = transaction.prepare_cached(super::rows::INSERT_NEW_SPAN)?;
    let mut replace = transaction.prepare_cached(super::rows::UPSERT_SPAN)?;
    // The replaced copy's facts come with the lookup that finds it anyway.
    let mut existing = transaction.prepare_cached(&format!(
        "SELECT {FACT_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3"
    ))?;
    let mut trace_ids: HashSet<&TraceId> = HashSet::new();
    for (span, prepared) in batch.iter() {
        trace_ids.insert(&span.trace_id);
        let (rowid, replaced) = match upsert_span(
            &mut insert_new,
            project,
            span,
            &prepared.content,
            prepared.ttft,
            ingested_ns,
        )? {
            Some(rowid) => {
                totals.add(project, 1, 0);
                (rowid, None)
            }
            // Stored already: count the stored copy out of the indexes and aggregates,
            // then overwrite it. New spans skip these deletes, which FTS5 would otherwise
            // record as tombstones.
            None => {
                let stored = existing.query_row(
                    rusqlite::params![project.0, span.trace_id.as_str(), span.span_id.as_str()],
                    StoredFacts::from_row,
                )?;
                unindex_span(transaction, stored.rowid, search)?;
                rollup.add(project, &RollupFacts::from_stored(&stored), -1);
                let rowid = upsert_span(
                    &mut replace,
                    project,
                    span,
                    &prepared.content,
                    prepared.ttft,
                    ingested_ns,
                )?
                .ok_or_else(|| SqliteError::Corrupt("an upsert returned no rowid".to_owned()))?;
                (rowid, Some(stored))
            }
        };
        index_span(transaction, rowid, project, span, prepared, search)?;
        traces.written(transaction, project, span, replaced.as_ref())?;
    }
    super::groups::put_ingested_profiles(transaction, project, &batch.profiles, ingested_ns)?;
    Ok(WriteReceipt {
        spans_written: batch.spans.len() as u64,
        traces_touched: trace_ids.len() as u64,
    })
}

/// Removes a trace, its spans and their index rows. `traces_touched` is 0 when there was none.
pub(crate) fn delete_trace(
    transaction: &rusqlite::Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    pending: &mut Pending<'_, '_>,
) -> Result<WriteReceipt, SqliteError> {
    pending.traces.discard(project, trace_id);
    let stored: Vec<StoredFacts> = transaction
        .prepare_cached(&format!(
            "SELECT {FACT_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2"
        ))?
        .query_map(
            rusqlite::params![project.0, trace_id.as_str()],
            StoredFacts::from_row,
        )?
        .collect::<Result<_, _>>()?;
    for facts in &stored {
        unindex_span(transaction, facts.rowid, &mut pending.search)?;
        pending
            .rollup
            .add(project, &RollupFacts::from_stored(facts), -1);
    }
    let trace = rusqlite::params![project.0, trace_id.as_str()];
    transaction
        .prepare_cached("DELETE FROM spans WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(trace)?;
    transaction
        .prepare_cached("DELETE FROM trace_facets INDEXED BY trace_facets_by_trace WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(trace)?;
    transaction
        .prepare_cached("DELETE FROM trace_roots WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(trace)?;
    let traces = transaction
        .prepare_cached("DELETE FROM traces WHERE project_id = ?1 AND trace_id = ?2")?
        .execute(trace)?;
    let spans = stored.len();
    pending
        .totals
        .add(project, -(spans as i64), -(traces as i64));
    Ok(WriteReceipt {
        spans_written: spans as u64,
        traces_touched: traces as u64,
    })
}
