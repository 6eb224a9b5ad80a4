//! Group commit for ClickHouse: writer tasks gather the waiting write requests into one insert
//! of spans, read nothing before it, and answer the requests only after ClickHouse answered OK.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::{Mutex, mpsc};
use tracehouse_core::{GroupCommit, ProjectId, Span, StoreObserver, TraceId, WriteReceipt};

use super::ClickHouseError;
use super::client::string_literal;
use super::client::{Client, RowBinary};
use super::rows::{
    SPAN_INSERT_COLUMNS, SPAN_TOMBSTONE_COLUMNS, SpanInsert, TRACE_START_TOMBSTONE_COLUMNS,
    encode_span_tombstone, encode_trace_start_tombstone, json_lines, version_of,
};
use super::shards::ShardRouter;
use crate::now_ns;
use crate::write_queue::{Fill, WriteOp, fill_up, gather};
use tracehouse_core::groups::ingested_profiles;

/// One request's change, answered with this backend's error.
pub(crate) type WriteJob = crate::write_queue::WriteJob<ClickHouseError>;

/// Where a group commit's span rows go.
#[derive(Clone)]
pub(crate) enum SpanSink {
    /// `span_versions` on the query node: one server, or a cluster's `Distributed` table.
    Table(Client),
    /// Each shard's `span_versions_local`, on the node that holds it; the small tables
    /// (`customer_params`) still go through the query node's `Distributed` tables.
    Shards { router: ShardRouter, query: Client },
}

impl SpanSink {
    /// The node taking inserts into the `Distributed` tables.
    fn query_node(&self) -> &Client {
        match self {
            SpanSink::Table(client) | SpanSink::Shards { query: client, .. } => client,
        }
    }

    /// How many span inserts a batch makes at most (one per day group aside).
    fn targets(&self) -> usize {
        match self {
            SpanSink::Table(_) => 1,
            SpanSink::Shards { router, .. } => router.shard_count(),
        }
    }

    /// Which of [`SpanSink::targets`] takes `trace_id`'s rows.
    fn target_of(&self, trace_id: &str) -> usize {
        match self {
            SpanSink::Table(_) => 0,
            SpanSink::Shards { router, .. } => router.shard_of(trace_id),
        }
    }

    /// The node and table of target `index`.
    fn target(&self, index: usize) -> (&Client, &'static str) {
        match self {
            SpanSink::Table(client) => (client, "span_versions"),
            SpanSink::Shards { router, .. } => (router.client(index), "span_versions_local"),
        }
    }
}

/// Runs until every sender is dropped.
///
/// Several writers share one queue: each takes whatever is waiting as its batch, so while one
/// waits for ClickHouse the next batch is already on its way. That is safe because a write
/// only appends versions of spans: nothing derived from earlier rows is written, so writers
/// (and several tracehouse servers) never need to agree on anything but the versions' order.
pub(crate) async fn run(
    client: Client,
    sink: SpanSink,
    jobs: Arc<Mutex<mpsc::Receiver<WriteJob>>>,
    max_batch_spans: usize,
    fill: Fill,
    observer: Option<Arc<dyn StoreObserver>>,
) {
    loop {
        let (batch, weight) = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let (mut batch, mut weight) = gather(first, &mut jobs, max_batch_spans);
            fill_up(&mut batch, &mut weight, &mut jobs, fill).await;
            (batch, weight)
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
                    committed &= commit_spans(&sink, std::mem::take(&mut spans)).await;
                    let result = delete_trace(&client, job.project, trace_id).await;
                    committed &= result.is_ok();
                    // A dropped receiver means the client went away; the change is made anyway.
                    let _ = job.reply.send(result);
                }
            }
        }
        committed &= commit_spans(&sink, spans).await;
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
async fn commit_spans(sink: &SpanSink, jobs: Vec<WriteJob>) -> bool {
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
        write_spans(sink, &parts).await
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
                    WriteOp::Change(spans) => write_spans(sink, &[(job.project, spans.as_slice())])
                        .await
                        .map(|()| receipt_of(&job.op)),
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

/// Most day partitions one insert may touch: current ClickHouse refuses an insert block that
/// spans more than 100 (`max_partitions_per_insert_block`), which a bulk import of history can.
const DAYS_PER_INSERT: usize = 90;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Inserts spans of several projects: one insert per shard (more only for a batch spanning
/// more than [`DAYS_PER_INSERT`] days), nothing read first, the shards written concurrently.
/// The same insert fills `trace_starts` through its materialized view.
async fn write_spans(
    sink: &SpanSink,
    parts: &[(ProjectId, &[Span])],
) -> Result<(), ClickHouseError> {
    let ingested_ns = now_ns();
    // Every row of the batch gets its own version, in arrival order, so a span sent twice in
    // one batch resolves to its later copy exactly as across batches.
    let mut version = version_of(ingested_ns);
    let mut by_target_and_day: Vec<BTreeMap<i64, RowBinary>> =
        (0..sink.targets()).map(|_| BTreeMap::new()).collect();
    for (project, spans) in parts {
        for span in *spans {
            let target = sink.target_of(span.trace_id.as_str());
            // Day numbers only group rows; the partition itself is computed by ClickHouse.
            let day = span.start.unix_nanos().div_euclid(NANOS_PER_DAY);
            SpanInsert::new(*project, span, ingested_ns, version)?
                .encode(by_target_and_day[target].entry(day).or_default());
            version += 1;
        }
    }
    let inserts = by_target_and_day
        .into_iter()
        .enumerate()
        .filter(|(_, days)| !days.is_empty())
        .map(|(target, days)| {
            let (client, table) = sink.target(target);
            insert_days(client, table, days)
        });
    futures_util::future::try_join_all(inserts).await?;
    // The profile fields the spans send, versioned after them in the same order; a second
    // insert only for batches that send any, and still nothing read.
    let mut params = Vec::new();
    for (project, spans) in parts {
        for (customer, fields) in ingested_profiles(spans.iter()) {
            for (field, value) in fields {
                params.push(ParamRow {
                    project_id: project.0,
                    customer_identifier: customer.clone(),
                    field,
                    value: serde_json::to_string(&value).map_err(ClickHouseError::Decode)?,
                    ingested_ns,
                    version,
                });
                version += 1;
            }
        }
    }
    if !params.is_empty() {
        sink.query_node()
            .insert("customer_params", json_lines(&params)?)
            .await?;
    }
    Ok(())
}

async fn insert_days(
    client: &Client,
    table: &str,
    by_day: BTreeMap<i64, RowBinary>,
) -> Result<(), ClickHouseError> {
    let days: Vec<Vec<u8>> = by_day.into_values().map(RowBinary::into_bytes).collect();
    for group in days.chunks(DAYS_PER_INSERT) {
        client
            .insert_binary(table, SPAN_INSERT_COLUMNS, group.concat())
            .await?;
    }
    Ok(())
}

/// One profile field a span sent for its customer (`customer_params`), as stored.
#[derive(serde::Serialize)]
struct ParamRow {
    project_id: i64,
    customer_identifier: String,
    field: String,
    /// The value as JSON text.
    value: String,
    ingested_ns: i64,
    version: u64,
}

/// Inserts span tombstones ([`encode_span_tombstone`]) and then the tombstones of their traces'
/// `trace_starts` rows ([`encode_trace_start_tombstone`]).
pub(crate) async fn write_tombstones(
    client: &Client,
    spans: RowBinary,
    trace_starts: RowBinary,
) -> Result<(), ClickHouseError> {
    client
        .insert_binary("span_versions", SPAN_TOMBSTONE_COLUMNS, spans.into_bytes())
        .await?;
    client
        .insert_binary(
            "trace_starts",
            TRACE_START_TOMBSTONE_COLUMNS,
            trace_starts.into_bytes(),
        )
        .await
}

#[derive(Deserialize)]
struct StoredVersion {
    span_id: String,
    start_ns: i64,
    version: u64,
    deleted: u8,
}

#[derive(Deserialize)]
struct IndexedStart {
    start_ns: i64,
}

/// Hides a trace behind tombstones: one per stored version's partition of each span, and one
/// per `trace_starts` row. `traces_touched` is 0 when the trace had no live span. Reads come
/// first here (a delete is rare and not on the ingest path).
async fn delete_trace(
    client: &Client,
    project: ProjectId,
    trace_id: &TraceId,
) -> Result<WriteReceipt, ClickHouseError> {
    let trace = string_literal(trace_id.as_str());
    let versions: Vec<StoredVersion> = client
        .rows(&format!(
            "SELECT span_id, start_ns, version, deleted FROM span_versions \
             PREWHERE project_id = {} AND trace_id = {trace}",
            project.0
        ))
        .await?;
    let mut latest: HashMap<&str, &StoredVersion> = HashMap::new();
    for row in &versions {
        let entry = latest.entry(row.span_id.as_str()).or_insert(row);
        if row.version > entry.version {
            *entry = row;
        }
    }
    let live = latest.values().filter(|row| row.deleted == 0).count();
    if live == 0 {
        return Ok(WriteReceipt::default());
    }
    let starts: Vec<IndexedStart> = client
        .rows(&format!(
            "SELECT DISTINCT start_ns FROM trace_starts WHERE project_id = {} AND trace_id = {trace}",
            project.0
        ))
        .await?;
    let version = version_of(now_ns());
    let mut tombstones = RowBinary::default();
    let distinct: BTreeSet<(&str, i64)> = versions
        .iter()
        .map(|row| (row.span_id.as_str(), row.start_ns))
        .collect();
    for (span_id, start_ns) in distinct {
        encode_span_tombstone(
            &mut tombstones,
            project,
            trace_id.as_str(),
            span_id,
            start_ns,
            version,
        );
    }
    let mut index = RowBinary::default();
    for start in &starts {
        encode_trace_start_tombstone(
            &mut index,
            project,
            trace_id.as_str(),
            start.start_ns,
            version,
        );
    }
    write_tombstones(client, tombstones, index).await?;
    Ok(WriteReceipt {
        spans_written: live as u64,
        traces_touched: 1,
    })
}
