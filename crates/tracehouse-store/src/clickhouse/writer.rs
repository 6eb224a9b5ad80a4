//! Group commit for ClickHouse: writer tasks gather the waiting write requests into one insert
//! of spans and one insert of recomputed trace aggregates, and answer the requests only after
//! ClickHouse answered OK to both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::{Mutex, mpsc};
use tracehouse_core::{
    GroupCommit, ProjectId, Span, StoreObserver, TraceId, WriteReceipt, summarize,
};

use super::ClickHouseError;
use super::client::{Client, RowBinary};
use super::query::{in_list, live_spans, live_traces};
use super::rows::{
    SPAN_COLUMNS, SPAN_INSERT_COLUMNS, SPAN_TOMBSTONE_COLUMNS, SpanInsert, SpanRead, TRACE_COLUMNS,
    TraceRow, encode_span_tombstone, version_of,
};
use crate::now_ns;
use crate::write_queue::{WriteOp, gather};

/// Trace ids per key-filter list, so no statement outgrows the server's query size limit.
const IDS_PER_QUERY: usize = 1000;

/// One request's change, answered with this backend's error.
pub(crate) type WriteJob = crate::write_queue::WriteJob<ClickHouseError>;

/// Runs until every sender is dropped.
///
/// Several writers share one queue: each takes whatever is waiting as its batch, so while one
/// waits for ClickHouse the next batch is already on its way. That is safe because every
/// writer recomputes a trace after its own insert and versions the result by the instant its
/// read started: of two writers touching one trace, the later reader saw both inserts and its
/// row wins (the same argument covers several tracehouse servers).
pub(crate) async fn run(
    client: Client,
    jobs: Arc<Mutex<mpsc::Receiver<WriteJob>>>,
    max_batch_spans: usize,
    observer: Option<Arc<dyn StoreObserver>>,
) {
    loop {
        let (batch, weight) = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            gather(first, &mut jobs, max_batch_spans)
        };
        let started = Instant::now();
        let requests = batch.len();
        let mut committed = true;
        // Jobs take effect in arrival order: consecutive span writes share one insert, and a
        // delete first flushes the writes queued before it, so a write sent after a delete
        // is never deleted by it.
        let mut spans = Vec::new();
        for job in batch {
            match &job.op {
                WriteOp::Change(_) => spans.push(job),
                WriteOp::DeleteTrace(trace_id) => {
                    committed &= commit_spans(&client, std::mem::take(&mut spans)).await;
                    let result = delete_trace(&client, job.project, trace_id).await;
                    committed &= result.is_ok();
                    // A dropped receiver means the client went away; the change is made anyway.
                    let _ = job.reply.send(result);
                }
            }
        }
        committed &= commit_spans(&client, spans).await;
        if let Some(observer) = &observer {
            let queued_after = jobs.try_lock().map_or(0, |jobs| jobs.len());
            observer.group_committed(&GroupCommit {
                requests,
                spans: weight,
                seconds: started.elapsed().as_secs_f64(),
                failed: !committed,
                queued_after,
                // ClickHouse sizes its parts in the background; asking per commit would cost a query.
                database_bytes: None,
            });
        }
    }
}

/// Writes every span job together; when that fails for a reason that is not transient, each
/// job is retried alone so only the failing one sees the error.
/// Returns whether the jobs were written together.
async fn commit_spans(client: &Client, jobs: Vec<WriteJob>) -> bool {
    if jobs.is_empty() {
        return true;
    }
    let together = {
        let parts: Vec<(ProjectId, &[Span])> = jobs
            .iter()
            .map(|job| match &job.op {
                WriteOp::Change(spans) => (job.project, spans.as_slice()),
                WriteOp::DeleteTrace(_) => (job.project, &[][..]),
            })
            .collect();
        write_spans(client, &parts).await
    };
    match together {
        Ok(()) => {
            for job in jobs {
                let receipt = receipt_of(&job.op);
                let _ = job.reply.send(Ok(receipt));
            }
            true
        }
        Err(error) if jobs.len() > 1 && !error.is_transient() => {
            tracing::warn!(error = %error, jobs = jobs.len(), "group insert failed; retrying jobs one by one");
            for job in jobs {
                let result = match &job.op {
                    WriteOp::Change(spans) => {
                        write_spans(client, &[(job.project, spans.as_slice())])
                            .await
                            .map(|()| receipt_of(&job.op))
                    }
                    WriteOp::DeleteTrace(_) => Ok(WriteReceipt::default()),
                };
                let _ = job.reply.send(result);
            }
            false
        }
        Err(error) => {
            for job in jobs {
                let _ = job.reply.send(Err(error.duplicate()));
            }
            false
        }
    }
}

fn receipt_of(op: &WriteOp) -> WriteReceipt {
    match op {
        WriteOp::Change(spans) => WriteReceipt {
            spans_written: spans.len() as u64,
            traces_touched: spans
                .iter()
                .map(|span| &span.trace_id)
                .collect::<BTreeSet<_>>()
                .len() as u64,
        },
        WriteOp::DeleteTrace(_) => WriteReceipt::default(),
    }
}

#[derive(Deserialize)]
struct FirstSeen {
    trace_id: String,
    span_id: String,
    first_seen_ns: i64,
}

/// Inserts spans of several projects and rewrites the aggregates of every trace they touch.
async fn write_spans(
    client: &Client,
    parts: &[(ProjectId, &[Span])],
) -> Result<(), ClickHouseError> {
    let ingested_ns = now_ns();
    let mut touched: BTreeMap<ProjectId, BTreeSet<&str>> = BTreeMap::new();
    for (project, spans) in parts {
        let traces = touched.entry(*project).or_default();
        traces.extend(spans.iter().map(|span| span.trace_id.as_str()));
    }

    // A replaced span keeps the instant it was first seen, the snapshot bound of stable paging.
    let mut span_first_seen: HashMap<(ProjectId, String, String), i64> = HashMap::new();
    let mut trace_first_seen: HashMap<(ProjectId, String), i64> = HashMap::new();
    for (project, traces) in &touched {
        let traces: Vec<&str> = traces.iter().copied().collect();
        for chunk in traces.chunks(IDS_PER_QUERY) {
            let filter = in_list("trace_id", chunk.iter().copied());
            // Independent reads, so they travel together: one round trip less per commit.
            let spans_sql = format!(
                "SELECT trace_id, span_id, first_seen_ns FROM {}",
                live_spans(*project, &filter)
            );
            let traces_sql = format!(
                "SELECT {TRACE_COLUMNS} FROM {}",
                live_traces(*project, &filter)
            );
            let (spans, rows): (Vec<FirstSeen>, Vec<TraceRow>) =
                tokio::try_join!(client.rows(&spans_sql), client.rows(&traces_sql))?;
            for row in spans {
                span_first_seen.insert((*project, row.trace_id, row.span_id), row.first_seen_ns);
            }
            for row in rows {
                trace_first_seen.insert((*project, row.trace_id.clone()), row.first_seen_ns);
            }
        }
    }

    let mut rows = RowBinary::default();
    for (project, spans) in parts {
        for span in *spans {
            let first_seen = span_first_seen
                .get(&(
                    *project,
                    span.trace_id.as_str().to_owned(),
                    span.span_id.as_str().to_owned(),
                ))
                .copied()
                .unwrap_or(ingested_ns);
            SpanInsert::new(*project, span, ingested_ns, first_seen)?.encode(&mut rows);
        }
    }
    client
        .insert_binary("spans", SPAN_INSERT_COLUMNS, rows.into_bytes())
        .await?;

    // Recompute each touched trace from its stored spans with core's one definition. The
    // version is the instant this read started: of two servers writing to one trace, the
    // later reader saw every span the earlier one inserted, and its row wins.
    let mut traces = RowBinary::default();
    for (project, ids) in &touched {
        let ids: Vec<&str> = ids.iter().copied().collect();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let version = version_of(now_ns());
            let columns = SPAN_COLUMNS.replace("content", "'' AS content");
            let stored: Vec<SpanRead> = client
                .rows(&format!(
                    "SELECT {columns} FROM {}",
                    live_spans(*project, &in_list("trace_id", chunk.iter().copied()))
                ))
                .await?;
            let mut by_trace: BTreeMap<String, Vec<Span>> = BTreeMap::new();
            for row in stored {
                let span = row.into_span()?;
                by_trace
                    .entry(span.trace_id.as_str().to_owned())
                    .or_default()
                    .push(span);
            }
            for (trace_id, spans) in by_trace {
                if let Some(summary) = summarize(&spans) {
                    let first_seen = trace_first_seen
                        .get(&(*project, trace_id))
                        .copied()
                        .unwrap_or(ingested_ns);
                    TraceRow::new(*project, &summary, first_seen, version).encode(&mut traces);
                }
            }
        }
    }
    client
        .insert_binary("traces", TRACE_COLUMNS, traces.into_bytes())
        .await
}

#[derive(Deserialize)]
struct SpanKey {
    span_id: String,
    start_ns: i64,
}

/// Hides a trace and its spans behind tombstone rows. `traces_touched` is 0 when there was none.
async fn delete_trace(
    client: &Client,
    project: ProjectId,
    trace_id: &TraceId,
) -> Result<WriteReceipt, ClickHouseError> {
    let filter = in_list("trace_id", std::iter::once(trace_id.as_str()));
    let traces: Vec<TraceRow> = client
        .rows(&format!(
            "SELECT {TRACE_COLUMNS} FROM {}",
            live_traces(project, &filter)
        ))
        .await?;
    if traces.is_empty() {
        return Ok(WriteReceipt::default());
    }
    let spans: Vec<SpanKey> = client
        .rows(&format!(
            "SELECT span_id, start_ns FROM {}",
            live_spans(project, &filter)
        ))
        .await?;
    let version = version_of(now_ns());
    let mut tombstones = RowBinary::default();
    for span in &spans {
        encode_span_tombstone(
            &mut tombstones,
            project,
            trace_id.as_str(),
            &span.span_id,
            span.start_ns,
            version,
        );
    }
    client
        .insert_binary("spans", SPAN_TOMBSTONE_COLUMNS, tombstones.into_bytes())
        .await?;
    let mut trace = RowBinary::default();
    TraceRow::tombstone(project, trace_id, version).encode(&mut trace);
    client
        .insert_binary("traces", TRACE_COLUMNS, trace.into_bytes())
        .await?;
    Ok(WriteReceipt {
        spans_written: spans.len() as u64,
        traces_touched: 1,
    })
}
