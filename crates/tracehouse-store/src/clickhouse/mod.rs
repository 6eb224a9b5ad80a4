//! The ClickHouse backend: several stateless tracehouse servers in front of one ClickHouse.
//!
//! Spoken to over ClickHouse's HTTP interface ([`client`]): RowBinary inserts, JSONEachRow
//! results. Writes go through a few writer tasks ([`writer`]) that turn the waiting requests
//! into one insert each (group commit), reading nothing first; reads run directly. Every
//! version of a span is a row (`ReplacingMergeTree`): a re-sent span is a newer row, a deleted
//! trace tombstone rows, and every read takes each span's latest version (span lists with
//! `FINAL`, trace reads in [`traces`], which computes a trace's aggregates from its spans).
//!
//! The SQL runs on ClickHouse 18.16 (Debian's package) and on current releases.

mod client;
mod keys;
mod metrics;
mod profiles;
mod query;
mod retention;
mod rows;
mod schema;
mod shards;
mod traces;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracehouse_core::groups::{GroupQuery, TraceGroup};
use tracehouse_core::metrics::{Timeseries, TimeseriesQuery, TopEntry, TopQuery};
use tracehouse_core::query::{SpanFilter, SpanQuery, TraceQuery};
use tracehouse_core::{
    ApiKeyHash, ApiKeyInfo, CustomerProfile, Cutoffs, KeyGrant, Listing, NewApiKey, Project,
    ProjectId, ProjectName, ProjectStats, RetentionOverride, RetentionStep, Scopes, Span, SpanId,
    SpanStatistics, SpanStore, StoreError, StoreObserver, StoredTrace, Timestamp, TraceId,
    TraceListItem, WriteReceipt,
};

use self::client::Client;
use self::shards::ShardRouter;
use self::writer::{SpanSink, WriteJob};
use crate::write_queue::{self, WriteOp};

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
    /// Rows per shard a group commit waits for while concurrent requests keep arriving.
    /// Every insert makes a part per table on each shard it touches, and a part costs about
    /// the same to create and to merge away whether it holds 100 rows or 1,000, so small inserts
    /// spend ClickHouse's CPU on parts instead of rows; ClickHouse's own advice is at least
    /// 1,000 rows per insert. On a cluster each shard gets its share of a batch, so the batch
    /// waits for this many rows times the shards.
    pub rows_per_insert: usize,
    /// The longest a group commit waits for `rows_per_insert` (zero: never wait).
    pub insert_linger: Duration,
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
            writers: 1,
            rows_per_insert: 1_000,
            insert_linger: Duration::from_millis(20),
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
    /// Every node's client, the query node first (retention works on each node's partitions).
    nodes: Vec<Client>,
    url: String,
    database: String,
    cluster: Option<String>,
    writer: mpsc::Sender<WriteJob>,
    enqueue_timeout: Duration,
    valid_keys: keys::KeyCache,
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
        let mut nodes = vec![client.clone()];
        for node in &config.other_nodes {
            let node = client.for_node(node);
            node.ping().await?;
            schema::migrate(&node, &config.database, config.cluster.as_deref()).await?;
            nodes.push(node);
        }
        let sink = match &config.cluster {
            None => SpanSink::Table(client.clone()),
            Some(cluster) => match ShardRouter::discover(&nodes, cluster).await? {
                Ok(router) => {
                    tracing::info!(shards = %router.describe(), "span rows go straight to their shard's local table");
                    SpanSink::Shards {
                        router,
                        query: client.clone(),
                    }
                }
                Err(reason) => {
                    tracing::info!(%reason, "span rows go through the Distributed table");
                    SpanSink::Table(client.clone())
                }
            },
        };
        let shard_count = match &sink {
            SpanSink::Table(_) => config.other_nodes.len() + 1,
            SpanSink::Shards { router, .. } => router.shard_count(),
        };
        let fill = write_queue::Fill {
            spans: config
                .rows_per_insert
                .saturating_mul(shard_count)
                .min(config.max_batch_spans),
            linger: config.insert_linger,
        };
        let (sender, receiver) = mpsc::channel(config.write_queue_depth.max(1));
        let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..config.writers.max(1) {
            tokio::spawn(writer::run(
                client.clone(),
                sink.clone(),
                std::sync::Arc::clone(&receiver),
                config.max_batch_spans.max(1),
                fill,
                config.observer.clone(),
            ));
        }
        Ok(Self {
            client,
            nodes,
            url: config.url,
            database: config.database,
            cluster: config.cluster,
            writer: sender,
            enqueue_timeout: config.enqueue_timeout,
            valid_keys: keys::KeyCache::default(),
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
        traces::get_trace(&self.client, project, trace_id).await
    }

    async fn list_traces(
        &self,
        project: ProjectId,
        query: &TraceQuery,
    ) -> Result<Listing<TraceListItem>, StoreError> {
        traces::list_traces(&self.client, project, query).await
    }

    async fn list_spans(
        &self,
        project: ProjectId,
        query: &SpanQuery,
    ) -> Result<Listing<Span>, StoreError> {
        query::list_spans(&self.client, project, query).await
    }

    async fn scan_spans(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
        after: Option<(TraceId, SpanId)>,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError> {
        query::scan_spans(&self.client, project, filter, after, limit).await
    }

    async fn get_span(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
        span_id: &SpanId,
    ) -> Result<Option<Span>, StoreError> {
        query::get_span(&self.client, project, trace_id, span_id).await
    }

    async fn find_spans(
        &self,
        project: ProjectId,
        span_id: &SpanId,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError> {
        query::find_spans(&self.client, project, span_id, limit).await
    }

    async fn span_statistics(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
    ) -> Result<SpanStatistics, StoreError> {
        query::span_statistics(&self.client, project, filter).await
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

    async fn list_trace_groups(
        &self,
        project: ProjectId,
        query: &GroupQuery,
    ) -> Result<Listing<TraceGroup>, StoreError> {
        traces::list_trace_groups(&self.client, project, query).await
    }

    async fn customer_profiles(
        &self,
        project: ProjectId,
        customers: &[String],
    ) -> Result<Vec<CustomerProfile>, StoreError> {
        Ok(profiles::customer_profiles(&self.client, project, customers).await?)
    }

    async fn put_customer_profile(
        &self,
        project: ProjectId,
        profile: CustomerProfile,
    ) -> Result<(), StoreError> {
        Ok(profiles::put_customer_profile(&self.client, project, &profile).await?)
    }

    async fn project_stats(&self, project: ProjectId) -> Result<ProjectStats, StoreError> {
        query::project_stats(&self.client, project).await
    }

    async fn find_project(&self, name: &ProjectName) -> Result<Option<Project>, StoreError> {
        Ok(keys::find_project(&self.client, name).await?)
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        Ok(keys::list_projects(&self.client).await?)
    }

    async fn project_retention(&self) -> Result<Vec<(Project, RetentionOverride)>, StoreError> {
        Ok(retention::project_retention(&self.client).await?)
    }

    async fn set_project_retention(
        &self,
        name: &ProjectName,
        stored: RetentionOverride,
    ) -> Result<(Project, RetentionOverride), StoreError> {
        Ok(retention::set_project_retention(&self.client, name, stored).await?)
    }

    async fn apply_retention(
        &self,
        plan: &[(ProjectId, Cutoffs)],
        now: Timestamp,
        limit: usize,
    ) -> Result<RetentionStep, StoreError> {
        let nodes = retention::Nodes {
            client: &self.client,
            all: &self.nodes,
            local: if self.cluster.is_some() { "_local" } else { "" },
        };
        Ok(retention::apply(&nodes, plan, now, limit).await?)
    }

    async fn create_project(&self, name: &ProjectName) -> Result<Project, StoreError> {
        Ok(keys::create_project(&self.client, name).await?)
    }

    async fn authenticate(&self, key: &ApiKeyHash) -> Result<Option<KeyGrant>, StoreError> {
        Ok(keys::authenticate_cached(&self.client, &self.valid_keys, key).await?)
    }

    async fn record_key_use(&self, key: &ApiKeyHash, at: Timestamp) -> Result<(), StoreError> {
        Ok(keys::record_use(&self.client, key, at).await?)
    }

    async fn create_key(
        &self,
        project: &ProjectName,
        label: &str,
        scopes: Scopes,
    ) -> Result<NewApiKey, StoreError> {
        Ok(keys::create(&self.client, project, label, scopes).await?)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        Ok(keys::list(&self.client).await?)
    }

    async fn revoke_key(&self, id: i64) -> Result<ApiKeyInfo, StoreError> {
        let revoked = keys::revoke(&self.client, id).await;
        self.valid_keys.clear();
        match revoked? {
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
