//! The ClickHouse backend: several stateless tracehouse servers in front of one ClickHouse.
//!
//! Spoken to over ClickHouse's HTTP interface ([`client`]): RowBinary inserts, JSONEachRow
//! results. Writes go through a few writer tasks ([`writer`]) that turn the waiting requests
//! into one insert each (group commit); reads run directly. Tables are `ReplacingMergeTree`s: a re-sent span is a
//! newer row, a deleted trace a tombstone row, and every read collapses versions with `FINAL`
//! before filtering, so duplicates never show even before ClickHouse merges parts.
//!
//! The SQL runs on ClickHouse 18.16 (Debian's package) and on current releases.

mod client;
mod keys;
mod metrics;
mod query;
mod rows;
mod schema;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracehouse_core::metrics::{Timeseries, TimeseriesQuery, TopEntry, TopQuery};
use tracehouse_core::query::{SpanFilter, SpanQuery, TraceQuery};
use tracehouse_core::{
    ApiKeyHash, ApiKeyInfo, Listing, NewApiKey, Project, ProjectId, ProjectName, ProjectStats,
    Span, SpanId, SpanStatistics, SpanStore, StoreError, StoreObserver, StoredTrace, TraceId,
    TraceListItem, WriteReceipt,
};

use self::client::{Client, string_literal};
use self::query::{
    in_list, live_spans, live_traces, page_sql, span_filter_sql, span_order, trace_filter_sql,
    trace_order,
};
use self::rows::{SPAN_COLUMNS, SpanRead, TRACE_COLUMNS, TraceRow};
use self::writer::WriteJob;
use crate::write_queue::{self, WriteOp};

/// Spans fetched by key per statement: 250 keys of at most 2 x 256 bytes of ids stay well
/// under ClickHouse's default 256 KiB query size.
const KEYS_PER_FETCH: usize = 250;

/// How to reach a ClickHouse server and how to batch writes to it.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// Base URL of the HTTP interface, `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding tracehouse's tables; created when missing.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password, if the user has one.
    pub password: Option<String>,
    /// Longest a statement may take before the store reports itself unavailable.
    pub timeout: Duration,
    /// Requests that may wait for the writer before new ones get a 503.
    pub write_queue_depth: usize,
    /// Most spans one group commit gathers into one insert.
    pub max_batch_spans: usize,
    /// Group commits in flight at once (writer tasks sharing the queue).
    pub writers: usize,
    /// How long a request waits for room in a full queue.
    pub enqueue_timeout: Duration,
    /// The cluster (a `remote_servers` entry) to shard over; `None` for a single server.
    pub cluster: Option<String>,
    /// The cluster's other nodes (HTTP URLs): the schema is created on each; queries go to `url`.
    pub other_nodes: Vec<String>,
    /// Told about every group commit (the server's metrics).
    pub observer: Option<Arc<dyn StoreObserver>>,
}

impl std::fmt::Debug for ClickHouseConfig {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("cluster", &self.cluster)
            .field("other_nodes", &self.other_nodes)
            .finish_non_exhaustive()
    }
}

impl ClickHouseConfig {
    /// Defaults for a database on the server at `url`, as user `default` without password.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: "default".to_owned(),
            password: None,
            timeout: Duration::from_secs(30),
            write_queue_depth: 1024,
            max_batch_spans: 20_000,
            writers: 4,
            enqueue_timeout: Duration::from_secs(5),
            cluster: None,
            other_nodes: Vec::new(),
            observer: None,
        }
    }
}

/// Failures of the ClickHouse backend.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// The server could not be reached, or did not answer in time.
    #[error("clickhouse unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The server answered with an error.
    #[error("clickhouse answered {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// ClickHouse's error code, when the answer carried one.
        code: Option<u32>,
        /// Whether retrying later can succeed (overload, timeouts, too many parts).
        transient: bool,
        /// The server's message.
        message: String,
    },
    /// A row could not be encoded or decoded.
    #[error("clickhouse row is not the expected JSON: {0}")]
    Decode(#[source] serde_json::Error),
    /// A stored value breaks an invariant the writer guarantees.
    #[error("database content is corrupt: {0}")]
    Corrupt(String),
    /// The configuration cannot work (bad database name, newer schema).
    #[error("{0}")]
    Config(String),
    /// The write queue stayed full for the whole enqueue timeout.
    #[error("write queue is full")]
    QueueFull,
    /// The writer task has stopped.
    #[error("writer has stopped")]
    WriterStopped,
    /// The operating system could not provide randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
    /// A copy of a batch-wide failure, handed to every request of the batch.
    #[error("{message}")]
    BatchFailed {
        /// Whether the cause is transient.
        transient: bool,
        /// The cause.
        message: String,
    },
}

impl ClickHouseError {
    fn from_http(error: reqwest::Error) -> Self {
        ClickHouseError::Unreachable(error)
    }

    /// Whether a retry later can succeed: server down or slow, overloaded, queue full.
    pub fn is_transient(&self) -> bool {
        match self {
            ClickHouseError::Unreachable(_)
            | ClickHouseError::QueueFull
            | ClickHouseError::WriterStopped => true,
            ClickHouseError::Server { transient, .. }
            | ClickHouseError::BatchFailed { transient, .. } => *transient,
            _ => false,
        }
    }

    fn duplicate(&self) -> ClickHouseError {
        ClickHouseError::BatchFailed {
            transient: self.is_transient(),
            message: self.to_string(),
        }
    }
}

impl From<ClickHouseError> for StoreError {
    fn from(error: ClickHouseError) -> Self {
        let transient = error.is_transient();
        crate::store_error(error, transient)
    }
}

/// Whether `name` is usable as a database or cluster name without quoting.
fn valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The ClickHouse `SpanStore`.
pub struct ClickHouseStore {
    client: Client,
    url: String,
    database: String,
    cluster: Option<String>,
    writer: mpsc::Sender<WriteJob>,
    enqueue_timeout: Duration,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("url", &self.url)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ClickHouseStore {
    /// Connects, creates the database when missing, brings its schema up to date and starts
    /// the writer task. Must run inside a tokio runtime.
    pub async fn open(config: ClickHouseConfig) -> Result<Self, ClickHouseError> {
        if !valid_database_name(&config.database) {
            return Err(ClickHouseError::Config(format!(
                "database name {:?} must be letters, digits and underscores",
                config.database
            )));
        }
        let client = Client::new(
            &config.url,
            &config.database,
            &config.user,
            config.password.as_deref(),
            config.timeout,
        )?;
        if let Some(cluster) = &config.cluster {
            if !valid_database_name(cluster) {
                return Err(ClickHouseError::Config(format!(
                    "cluster name {cluster:?} must be letters, digits and underscores"
                )));
            }
        }
        client.ping().await?;
        // Every node gets the tables (its shard and the Distributed tables), so any node
        // can serve queries.
        schema::migrate(&client, &config.database, config.cluster.as_deref()).await?;
        for node in &config.other_nodes {
            let node = client.for_node(node);
            node.ping().await?;
            schema::migrate(&node, &config.database, config.cluster.as_deref()).await?;
        }
        let (sender, receiver) = mpsc::channel(config.write_queue_depth.max(1));
        let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..config.writers.max(1) {
            tokio::spawn(writer::run(
                client.clone(),
                std::sync::Arc::clone(&receiver),
                config.max_batch_spans.max(1),
                config.observer.clone(),
            ));
        }
        Ok(Self {
            client,
            url: config.url,
            database: config.database,
            cluster: config.cluster,
            writer: sender,
            enqueue_timeout: config.enqueue_timeout,
        })
    }

    /// Hands a change to the writer and waits until ClickHouse acknowledged it.
    async fn submit(&self, project: ProjectId, op: WriteOp) -> Result<WriteReceipt, StoreError> {
        write_queue::submit(
            &self.writer,
            self.enqueue_timeout,
            project,
            op,
            || ClickHouseError::QueueFull,
            || ClickHouseError::WriterStopped,
        )
        .await
    }

    async fn count(&self, sql: &str) -> Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct Count {
            n: u64,
        }
        let count: Count = self.client.row(sql).await?;
        Ok(count.n)
    }

    async fn spans(&self, sql: &str) -> Result<Vec<Span>, StoreError> {
        let rows: Vec<SpanRead> = self.client.rows(sql).await?;
        rows.into_iter()
            .map(|row| row.into_span().map_err(StoreError::from))
            .collect()
    }

    /// The spans a query selecting `trace_id, span_id` names, in its order.
    ///
    /// Lists run in two steps because ClickHouse 18.16 reads every selected column of every
    /// matching row before it sorts and cuts a page: selecting only the keys first reads the
    /// light columns of the project, and the spans' content is then read for the page alone,
    /// by primary key (ten times faster at a million spans).
    async fn spans_by_key_query(
        &self,
        project: ProjectId,
        key_sql: &str,
    ) -> Result<Vec<Span>, StoreError> {
        #[derive(Deserialize)]
        struct Key {
            trace_id: String,
            span_id: String,
        }
        let keys: Vec<Key> = self.client.rows(key_sql).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<(String, String), Span> = HashMap::with_capacity(keys.len());
        // In chunks, so no statement outgrows the server's query size limit (256 KiB).
        for chunk in keys.chunks(KEYS_PER_FETCH) {
            let filter = format!(
                "{}{}",
                in_list("trace_id", chunk.iter().map(|k| k.trace_id.as_str())),
                in_list("span_id", chunk.iter().map(|k| k.span_id.as_str()))
            );
            let spans = self
                .spans(&format!(
                    "SELECT {SPAN_COLUMNS} FROM {}",
                    live_spans(project, &filter)
                ))
                .await?;
            for span in spans {
                let key = (
                    span.trace_id.as_str().to_owned(),
                    span.span_id.as_str().to_owned(),
                );
                found.insert(key, span);
            }
        }
        // A span deleted between the two reads is left out rather than failing the page.
        Ok(keys
            .into_iter()
            .filter_map(|key| found.remove(&(key.trace_id, key.span_id)))
            .collect())
    }
}

#[derive(Deserialize)]
struct Statistics {
    n: u64,
    total_cost: f64,
    total_tokens: u64,
    total_prompt_tokens: u64,
    total_completion_tokens: u64,
    avg_latency: Option<f64>,
    errors: u64,
    p50: f64,
    p90: f64,
    p99: f64,
}

#[derive(Deserialize)]
struct RootContent {
    trace_id: String,
    span_id: String,
    content: String,
}

#[async_trait]
impl SpanStore for ClickHouseStore {
    fn describe(&self) -> String {
        match &self.cluster {
            None => format!("clickhouse:{}/{}", self.url, self.database),
            Some(cluster) => format!(
                "clickhouse:{}/{} (cluster {cluster})",
                self.url, self.database
            ),
        }
    }

    async fn write_spans(
        &self,
        project: ProjectId,
        spans: Vec<Span>,
    ) -> Result<WriteReceipt, StoreError> {
        if spans.is_empty() {
            return Ok(WriteReceipt::default());
        }
        self.submit(project, WriteOp::Change(spans)).await
    }

    async fn get_trace(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
    ) -> Result<Option<StoredTrace>, StoreError> {
        let filter = in_list("trace_id", std::iter::once(trace_id.as_str()));
        let rows: Vec<TraceRow> = self
            .client
            .rows(&format!(
                "SELECT {TRACE_COLUMNS} FROM {}",
                live_traces(project, &filter)
            ))
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let summary = row.into_summary()?;
        let mut spans = self
            .spans(&format!(
                "SELECT {SPAN_COLUMNS} FROM {}",
                live_spans(project, &filter)
            ))
            .await?;
        spans.sort_by(|a, b| (a.start, &a.span_id).cmp(&(b.start, &b.span_id)));
        Ok(Some(StoredTrace { summary, spans }))
    }

    async fn list_traces(
        &self,
        project: ProjectId,
        query: &TraceQuery,
    ) -> Result<Listing<TraceListItem>, StoreError> {
        let source = live_traces(project, "");
        let conditions = trace_filter_sql(project, query);
        let total = self
            .count(&format!(
                "SELECT count() AS n FROM {source} AND {conditions}"
            ))
            .await?;
        let rows: Vec<TraceRow> = self
            .client
            .rows(&format!(
                "SELECT {TRACE_COLUMNS} FROM {source} AND {conditions} ORDER BY {} {}",
                trace_order(query.sort.column, query.sort.direction),
                page_sql(query.page)
            ))
            .await?;
        // Root spans' input, output and metadata, fetched for this page only.
        let roots: Vec<(&str, &str)> = rows
            .iter()
            .filter_map(|row| Some((row.trace_id.as_str(), row.root_span_id()?)))
            .collect();
        let mut contents: HashMap<(String, String), serde_json::Map<String, serde_json::Value>> =
            HashMap::new();
        if !roots.is_empty() {
            let filter = format!(
                "{}{}",
                in_list("trace_id", roots.iter().map(|(trace, _)| *trace)),
                in_list("span_id", roots.iter().map(|(_, span)| *span))
            );
            let found: Vec<RootContent> = self
                .client
                .rows(&format!(
                    "SELECT trace_id, span_id, content FROM {}",
                    live_spans(project, &filter)
                ))
                .await?;
            for row in found {
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&row.content) {
                    contents.insert((row.trace_id, row.span_id), map);
                }
            }
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let mut content = row
                .root_span_id()
                .and_then(|root| contents.remove(&(row.trace_id.clone(), root.to_owned())));
            let mut take = |key: &str| content.as_mut().and_then(|map| map.remove(key));
            let (input, output, metadata) = (take("input"), take("output"), take("metadata"));
            items.push(TraceListItem {
                summary: row.into_summary()?,
                input,
                output,
                metadata,
            });
        }
        Ok(Listing {
            total,
            total_is_exact: true,
            items,
        })
    }

    async fn list_spans(
        &self,
        project: ProjectId,
        query: &SpanQuery,
    ) -> Result<Listing<Span>, StoreError> {
        let mut conditions = span_filter_sql(&query.filter);
        if let Some(as_of) = query.as_of {
            conditions.push_str(&format!(" AND first_seen_ns <= {}", as_of.unix_nanos()));
        }
        let source = live_spans(project, "");
        let total = self
            .count(&format!(
                "SELECT count() AS n FROM {source} AND {conditions}"
            ))
            .await?;
        let items = self
            .spans_by_key_query(
                project,
                &format!(
                    "SELECT trace_id, span_id FROM {source} AND {conditions} ORDER BY {} {}",
                    span_order(query.sort.column, query.sort.direction),
                    page_sql(query.page)
                ),
            )
            .await?;
        Ok(Listing {
            total,
            total_is_exact: true,
            items,
        })
    }

    async fn scan_spans(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
        after: Option<(TraceId, SpanId)>,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError> {
        // The position is on key columns, so it narrows the FINAL read itself.
        let key_filter = match &after {
            Some((trace_id, span_id)) => format!(
                " AND (trace_id, span_id) > ({}, {})",
                string_literal(trace_id.as_str()),
                string_literal(span_id.as_str())
            ),
            None => String::new(),
        };
        self.spans_by_key_query(
            project,
            &format!(
                "SELECT trace_id, span_id FROM {} AND {} ORDER BY trace_id, span_id LIMIT {limit}",
                live_spans(project, &key_filter),
                span_filter_sql(filter),
            ),
        )
        .await
    }

    async fn get_span(
        &self,
        project: ProjectId,
        span_id: &SpanId,
    ) -> Result<Option<Span>, StoreError> {
        let filter = in_list("span_id", std::iter::once(span_id.as_str()));
        Ok(self
            .spans_by_key_query(
                project,
                &format!(
                    "SELECT trace_id, span_id FROM {} ORDER BY ingested_ns DESC LIMIT 1",
                    live_spans(project, &filter)
                ),
            )
            .await?
            .pop())
    }

    async fn span_statistics(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
    ) -> Result<SpanStatistics, StoreError> {
        // Percentiles are nearest rank (the smallest latency with at least p of the spans at
        // or below it), computed on the server from the sorted latencies, as SQLite does.
        let rank = |p: &str| {
            format!("sorted[toUInt64(least(toFloat64(n), greatest(1.0, ceil({p} * n))))]")
        };
        let sql = format!(
            "SELECT count() AS n, sum(ifNull(cost, 0)) AS total_cost, \
             sum(ifNull(total_tokens, 0)) AS total_tokens, \
             sum(ifNull(prompt_tokens, 0)) AS total_prompt_tokens, \
             sum(ifNull(completion_tokens, 0)) AS total_completion_tokens, \
             if(n = 0, NULL, avg(latency)) AS avg_latency, countIf(status = 'error') AS errors, \
             arraySort(groupArray(latency)) AS sorted, {} AS p50, {} AS p90, {} AS p99 \
             FROM {} AND {}",
            rank("0.5"),
            rank("0.9"),
            rank("0.99"),
            live_spans(project, ""),
            span_filter_sql(filter),
        );
        let row: Statistics = self.client.row(&sql).await?;
        let present = |value: f64| (row.n > 0).then_some(value);
        Ok(SpanStatistics {
            number_of_requests: row.n,
            total_cost: row.total_cost,
            total_tokens: row.total_tokens,
            total_prompt_tokens: row.total_prompt_tokens,
            total_completion_tokens: row.total_completion_tokens,
            avg_latency: row.avg_latency.filter(|_| row.n > 0),
            p50_latency: present(row.p50),
            p90_latency: present(row.p90),
            p99_latency: present(row.p99),
            error_count: row.errors,
        })
    }

    async fn metric_timeseries(
        &self,
        project: ProjectId,
        query: &TimeseriesQuery,
    ) -> Result<Timeseries, StoreError> {
        Ok(metrics::timeseries(&self.client, project, query).await?)
    }

    async fn metric_top(
        &self,
        project: ProjectId,
        query: &TopQuery,
    ) -> Result<Vec<TopEntry>, StoreError> {
        Ok(metrics::top(&self.client, project, query).await?)
    }

    async fn delete_trace(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
    ) -> Result<bool, StoreError> {
        let receipt = self
            .submit(project, WriteOp::DeleteTrace(trace_id.clone()))
            .await?;
        Ok(receipt.traces_touched > 0)
    }

    async fn project_stats(&self, project: ProjectId) -> Result<ProjectStats, StoreError> {
        let traces = self
            .count(&format!(
                "SELECT count() AS n FROM {}",
                live_traces(project, "")
            ))
            .await?;
        let spans = self
            .count(&format!(
                "SELECT count() AS n FROM {}",
                live_spans(project, "")
            ))
            .await?;
        Ok(ProjectStats { traces, spans })
    }

    async fn find_project(&self, name: &ProjectName) -> Result<Option<Project>, StoreError> {
        Ok(keys::find_project(&self.client, name).await?)
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        Ok(keys::list_projects(&self.client).await?)
    }

    async fn create_project(&self, name: &ProjectName) -> Result<Project, StoreError> {
        Ok(keys::create_project(&self.client, name).await?)
    }

    async fn authenticate(&self, key: &ApiKeyHash) -> Result<Option<Project>, StoreError> {
        Ok(keys::authenticate(&self.client, key).await?)
    }

    async fn create_key(
        &self,
        project: &ProjectName,
        label: &str,
    ) -> Result<NewApiKey, StoreError> {
        Ok(keys::create(&self.client, project, label).await?)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        Ok(keys::list(&self.client).await?)
    }

    async fn revoke_key(&self, id: i64) -> Result<ApiKeyInfo, StoreError> {
        match keys::revoke(&self.client, id).await? {
            Some(info) => Ok(info),
            None => Err(StoreError::NotFound {
                what: format!("api key {id}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_need_no_quoting() {
        assert!(valid_database_name("tracehouse_1"));
        assert!(!valid_database_name("x; DROP"));
        assert!(!valid_database_name("1db"));
        assert!(!valid_database_name(""));
    }

    #[test]
    fn config_debug_hides_the_password() {
        let mut config = ClickHouseConfig::new("http://h:8123", "db");
        config.password = Some("hunter2".to_owned());
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
