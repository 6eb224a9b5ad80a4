//! The embedded SQLite backend: the default store, zero setup.
//!
//! Writes go through one writer thread ([`writer`]) that batches concurrent requests into one
//! transaction; reads use a small pool of connections on tokio's blocking threads. WAL mode
//! lets readers proceed while the writer commits.

mod checkpoint;
mod content;
mod groups;
mod index;
mod keys;
mod metrics;
mod prepared;
mod query;
mod retention;
mod rollup;
mod rows;
mod schema;
mod trace_write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};
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

use self::keys::{KeyAnswer, KeyChange};
use self::prepared::PreparedBatch;
use self::retention::ExpireJob;
use self::rows::{SPAN_COLUMNS, TRACE_COLUMNS, span_from_row, summary_from_row};
use self::writer::{KeyJob, SqliteChange, WriteJob};
use crate::write_queue::{self, WriteOp};

/// The writer connection's page cache, in KiB (SQLite's negative `cache_size` unit).
const WRITER_CACHE_KIB: i64 = -65_536;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "tracehouse.db";

/// SQLite's `synchronous` setting for the write connection, i.e. what a 200 survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// WAL with `synchronous=NORMAL`: a committed write survives a crash of the process
    /// (including `kill -9`); the last commits may be lost on power loss or an OS crash.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is fsynced on every commit, so a committed write also
    /// survives power loss, at the cost of one fsync per group commit.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How to open a SQLite store.
#[derive(Clone)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// Requests that may wait for the writer before new ones get a 503.
    pub write_queue_depth: usize,
    /// Most spans one group commit gathers before it commits.
    pub max_batch_spans: usize,
    /// How long a request waits for room in a full queue before the store reports itself unavailable.
    pub enqueue_timeout: Duration,
    /// Read connections kept open.
    pub read_pool_size: usize,
    /// Largest size the database may grow to; writes past it fail as "disk full" (HTTP 503)
    /// while reads go on. `None`: as large as the disk allows.
    pub max_database_bytes: Option<u64>,
    /// Told about every group commit (the server's metrics).
    pub observer: Option<Arc<dyn StoreObserver>>,
}

impl std::fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("path", &self.path)
            .field("synchronous", &self.synchronous)
            .field("write_queue_depth", &self.write_queue_depth)
            .field("max_batch_spans", &self.max_batch_spans)
            .field("enqueue_timeout", &self.enqueue_timeout)
            .field("read_pool_size", &self.read_pool_size)
            .field("max_database_bytes", &self.max_database_bytes)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl SqliteConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::default(),
            write_queue_depth: 1024,
            max_batch_spans: 20_000,
            enqueue_timeout: Duration::from_secs(5),
            read_pool_size: 4,
            max_database_bytes: None,
            observer: None,
        }
    }

    /// Defaults for the database file inside a data directory.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join(DATABASE_FILE))
    }
}

/// Failures of the SQLite backend.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// SQLite itself failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("schema migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// Stored JSON content could not be encoded or decoded.
    #[error("span content is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored value breaks an invariant the writer guarantees (for example an empty id).
    #[error("database content is corrupt: {0}")]
    Corrupt(String),
    /// The write queue stayed full for the whole enqueue timeout.
    #[error("write queue is full")]
    QueueFull,
    /// The writer thread has stopped (the store is shutting down or the thread died).
    #[error("writer has stopped")]
    WriterStopped,
    /// The operating system could not provide randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
    /// Span content could not be compressed.
    #[error("cannot compress span content: {0}")]
    Content(String),
    /// The operating system would not start one of the store's threads.
    #[error("{0}")]
    Thread(String),
    /// A copy of a batch-wide failure, handed to every request of the batch.
    #[error("{message}")]
    BatchFailed {
        /// Whether the cause is transient (disk full, locked...).
        transient: bool,
        /// The cause.
        message: String,
    },
}

impl SqliteError {
    /// Whether a retry later can succeed: disk full, read-only, locked, I/O, queue full.
    pub fn is_transient(&self) -> bool {
        match self {
            SqliteError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => matches!(
                failure.code,
                ErrorCode::DiskFull
                    | ErrorCode::ReadOnly
                    | ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::OutOfMemory
            ),
            SqliteError::QueueFull | SqliteError::WriterStopped => true,
            SqliteError::BatchFailed { transient, .. } => *transient,
            _ => false,
        }
    }

    /// An equivalent error for another request of the same failed batch.
    pub(crate) fn duplicate(&self) -> SqliteError {
        SqliteError::BatchFailed {
            transient: self.is_transient(),
            message: self.to_string(),
        }
    }
}

impl From<SqliteError> for StoreError {
    fn from(error: SqliteError) -> Self {
        let transient = error.is_transient();
        crate::store_error(error, transient)
    }
}

fn configure(connection: &Connection, synchronous: Synchronous) -> Result<(), SqliteError> {
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", synchronous.pragma())?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "analysis_limit", 400)?;
    Ok(())
}

/// Read connections, opened lazily and reused; a connection is checked out for one query.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    fn with_connection<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, SqliteError>,
    ) -> Result<T, SqliteError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                connection.busy_timeout(Duration::from_secs(5))?;
                content::register_sql_function(&connection)?;
                connection
            }
        };
        let result = query(&connection);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(connection);
            }
        }
        result
    }
}

/// The SQLite `SpanStore`.
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<WriteJob>,
    readers: Arc<ReadPool>,
    enqueue_timeout: Duration,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database, brings its schema up to date and starts the
    /// writer thread. Blocking: call it before the runtime serves requests, or on a blocking thread.
    pub fn open(config: SqliteConfig) -> Result<Self, SqliteError> {
        if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| SqliteError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut connection = Connection::open(&config.path)?;
        // Only a database without tables can still choose how it frees pages: a new one lets
        // retention hand deleted pages back to the file system (see `writer::give_space_back`).
        let tables: i64 =
            connection.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
        if tables == 0 {
            connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        configure(&connection, config.synchronous)?;
        content::register_sql_function(&connection)?;
        schema::migrations().to_latest(&mut connection)?;
        if let Some(limit) = config.max_database_bytes {
            let page_size: u64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0))?;
            let pages = (limit / page_size.max(1)).max(1);
            connection.pragma_update(None, "max_page_count", pages)?;
        }
        // SQLite's default 2 MiB cache holds a fraction of the indexes' hot pages once the
        // database has grown, and the writer then re-reads them from the OS on every commit.
        connection.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        connection.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_FALLBACK_PAGES,
        )?;
        let commit_signal = checkpoint::start(&config.path, config.synchronous)?;
        // Gather planner statistics for a database that has data but none yet. Statistics of
        // an empty database would mislead the planner into scans as it fills, so a young
        // database gets them from the writer's periodic `optimize` instead.
        let grown: i64 = connection.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM spans LIMIT 10000)",
            [],
            |row| row.get(0),
        )?;
        if grown >= 10_000 {
            connection.execute_batch("PRAGMA optimize = 0x10002")?;
        }

        let (sender, receiver) = mpsc::channel(config.write_queue_depth.max(1));
        let max_batch_spans = config.max_batch_spans.max(1);
        let observer = config.observer.clone();
        std::thread::Builder::new()
            .name("tracehouse-sqlite-writer".to_owned())
            .spawn(move || {
                writer::run(
                    connection,
                    receiver,
                    max_batch_spans,
                    observer,
                    &commit_signal,
                );
            })
            .map_err(|e| SqliteError::Thread(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            readers: Arc::new(ReadPool {
                path: config.path.clone(),
                idle: Mutex::new(Vec::new()),
                max_idle: config.read_pool_size.max(1),
            }),
            path: config.path,
            writer: sender,
            enqueue_timeout: config.enqueue_timeout,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.with_connection(query))
            .await
            .map_err(|join| StoreError::Backend(Box::new(join)))?
            .map_err(StoreError::from)
    }

    /// Hands a change to the writer and waits for its commit. A queue that stays full for
    /// the enqueue timeout is reported as unavailable instead of buffering without bound.
    async fn submit(
        &self,
        project: ProjectId,
        op: WriteOp<SqliteChange>,
    ) -> Result<WriteReceipt, StoreError> {
        write_queue::submit(
            &self.writer,
            self.enqueue_timeout,
            project,
            op,
            || SqliteError::QueueFull,
            || SqliteError::WriterStopped,
        )
        .await
    }
}

impl SqliteStore {
    /// Has the writer make a key or project change and waits for its commit.
    async fn change_keys(&self, change: KeyChange) -> Result<KeyAnswer, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        // Key changes belong to no project of their own; the job's project is not read.
        self.submit(
            ProjectId(0),
            WriteOp::Change(SqliteChange::Keys(KeyJob { change, answer })),
        )
        .await?;
        answered
            .await
            .map_err(|_| StoreError::from(SqliteError::WriterStopped))
    }
}

#[async_trait]
impl SpanStore for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn write_spans(
        &self,
        project: ProjectId,
        spans: Vec<Span>,
    ) -> Result<WriteReceipt, StoreError> {
        if spans.is_empty() {
            return Ok(WriteReceipt::default());
        }
        // Compressing a batch's content takes about a millisecond per 100 spans: on a blocking
        // thread, so the async workers stay free to answer reads (a trace opened during heavy
        // ingest) instead of queueing them behind compression.
        let batch = tokio::task::spawn_blocking(move || PreparedBatch::new(project, spans))
            .await
            .map_err(|join| StoreError::Backend(Box::new(join)))?
            .map_err(StoreError::from)?;
        // This reference outlives the writer's, so the spans are freed here, not on the writer.
        let result = self
            .submit(
                project,
                WriteOp::Change(SqliteChange::Spans(Arc::clone(&batch))),
            )
            .await;
        drop(batch);
        result
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

    async fn list_traces(
        &self,
        project: ProjectId,
        query: &TraceQuery,
    ) -> Result<Listing<TraceListItem>, StoreError> {
        let query = query.clone();
        self.read(move |connection| query::list_traces(connection, project, &query))
            .await
    }

    async fn list_spans(
        &self,
        project: ProjectId,
        query: &SpanQuery,
    ) -> Result<Listing<Span>, StoreError> {
        let query = query.clone();
        self.read(move |connection| query::list_spans(connection, project, &query))
            .await
    }

    async fn scan_spans(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
        after: Option<(TraceId, SpanId)>,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError> {
        let filter = filter.clone();
        self.read(move |connection| {
            query::scan_spans(connection, project, &filter, after.as_ref(), limit)
        })
        .await
    }

    async fn get_span(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
        span_id: &SpanId,
    ) -> Result<Option<Span>, StoreError> {
        let (trace_id, span_id) = (trace_id.clone(), span_id.clone());
        self.read(move |connection| query::get_span(connection, project, &trace_id, &span_id))
            .await
    }

    async fn find_spans(
        &self,
        project: ProjectId,
        span_id: &SpanId,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError> {
        let span_id = span_id.clone();
        self.read(move |connection| query::find_spans(connection, project, &span_id, limit))
            .await
    }

    async fn span_statistics(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
    ) -> Result<SpanStatistics, StoreError> {
        let filter = filter.clone();
        self.read(move |connection| query::span_statistics(connection, project, &filter))
            .await
    }

    async fn metric_timeseries(
        &self,
        project: ProjectId,
        query: &TimeseriesQuery,
    ) -> Result<Timeseries, StoreError> {
        let query = query.clone();
        self.read(move |connection| metrics::timeseries(connection, project, &query))
            .await
    }

    async fn metric_top(
        &self,
        project: ProjectId,
        query: &TopQuery,
    ) -> Result<Vec<TopEntry>, StoreError> {
        let query = query.clone();
        self.read(move |connection| metrics::top(connection, project, &query))
            .await
    }

    async fn list_trace_groups(
        &self,
        project: ProjectId,
        query: &GroupQuery,
    ) -> Result<Listing<TraceGroup>, StoreError> {
        let query = query.clone();
        self.read(move |connection| groups::list_trace_groups(connection, project, &query))
            .await
    }

    async fn customer_profiles(
        &self,
        project: ProjectId,
        customers: &[String],
    ) -> Result<Vec<CustomerProfile>, StoreError> {
        let customers = customers.to_vec();
        self.read(move |connection| groups::customer_profiles(connection, project, &customers))
            .await
    }

    async fn put_customer_profile(
        &self,
        project: ProjectId,
        profile: CustomerProfile,
    ) -> Result<(), StoreError> {
        match self
            .change_keys(KeyChange::CustomerProfile { project, profile })
            .await?
        {
            KeyAnswer::Recorded => Ok(()),
            _ => Err(SqliteError::Corrupt("the writer answered another change".to_owned()).into()),
        }
    }

    async fn project_stats(&self, project: ProjectId) -> Result<ProjectStats, StoreError> {
        self.read(move |connection| query::project_stats(connection, project))
            .await
    }

    async fn get_trace(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
    ) -> Result<Option<StoredTrace>, StoreError> {
        let trace_id = trace_id.clone();
        self.read(move |connection| {
            let summary = {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {TRACE_COLUMNS} FROM traces WHERE project_id = ?1 AND trace_id = ?2"
                ))?;
                let mut rows = statement.query(params![project.0, trace_id.as_str()])?;
                match rows.next()? {
                    Some(row) => summary_from_row(row)?,
                    None => return Ok(None),
                }
            };
            // Sorted here rather than by ORDER BY: with one, SQLite prefers the time index
            // and scans the whole project instead of seeking the trace by primary key.
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2"
            ))?;
            let mut spans = statement
                .query_map(params![project.0, trace_id.as_str()], |row| {
                    Ok(span_from_row(row))
                })?
                .collect::<Result<Result<Vec<Span>, SqliteError>, rusqlite::Error>>()??;
            spans.sort_by(|a, b| (a.start, &a.span_id).cmp(&(b.start, &b.span_id)));
            Ok(Some(StoredTrace { summary, spans }))
        })
        .await
    }

    async fn find_project(&self, name: &ProjectName) -> Result<Option<Project>, StoreError> {
        let name = name.clone();
        self.read(move |connection| keys::find_project(connection, &name))
            .await
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        self.read(keys::list_projects).await
    }

    async fn project_retention(&self) -> Result<Vec<(Project, RetentionOverride)>, StoreError> {
        self.read(keys::project_retention).await
    }

    async fn set_project_retention(
        &self,
        name: &ProjectName,
        retention: RetentionOverride,
    ) -> Result<(Project, RetentionOverride), StoreError> {
        match self
            .change_keys(KeyChange::SetRetention(name.clone(), retention))
            .await?
        {
            KeyAnswer::Retention(project, stored) => Ok((project, stored)),
            _ => Err(SqliteError::Corrupt("the writer answered another change".to_owned()).into()),
        }
    }

    async fn apply_retention(
        &self,
        plan: &[(ProjectId, Cutoffs)],
        now: Timestamp,
        limit: usize,
    ) -> Result<RetentionStep, StoreError> {
        let mut total = RetentionStep {
            done: true,
            ..RetentionStep::default()
        };
        for (project, cutoffs) in plan {
            if *cutoffs == Cutoffs::default() {
                continue;
            }
            let (answer, answered) = tokio::sync::oneshot::channel();
            let job = ExpireJob {
                cutoffs: *cutoffs,
                now,
                limit: limit.max(1),
                answer,
            };
            self.submit(*project, WriteOp::Change(SqliteChange::Expire(job)))
                .await?;
            let step = answered
                .await
                .map_err(|_| StoreError::from(SqliteError::WriterStopped))?;
            total.merge(step);
            // One batch per call, so the caller paces the sweep between steps.
            if !step.done {
                break;
            }
        }
        Ok(total)
    }

    async fn create_project(&self, name: &ProjectName) -> Result<Project, StoreError> {
        match self
            .change_keys(KeyChange::CreateProject(name.clone()))
            .await?
        {
            KeyAnswer::Project(project) => Ok(project),
            _ => Err(SqliteError::Corrupt("the writer answered another change".to_owned()).into()),
        }
    }

    async fn authenticate(&self, key: &ApiKeyHash) -> Result<Option<KeyGrant>, StoreError> {
        let key = key.clone();
        self.read(move |connection| keys::authenticate(connection, &key))
            .await
    }

    async fn record_key_use(&self, key: &ApiKeyHash, at: Timestamp) -> Result<(), StoreError> {
        let change = KeyChange::RecordUse {
            key: key.clone(),
            at,
        };
        match self.change_keys(change).await? {
            KeyAnswer::Recorded => Ok(()),
            _ => Err(SqliteError::Corrupt("the writer answered another change".to_owned()).into()),
        }
    }

    async fn create_key(
        &self,
        project: &ProjectName,
        label: &str,
        scopes: Scopes,
    ) -> Result<NewApiKey, StoreError> {
        let secret = keys::new_secret()?;
        let change = KeyChange::CreateKey {
            project: project.clone(),
            label: label.to_owned(),
            secret: secret.clone(),
            scopes,
        };
        match self.change_keys(change).await? {
            KeyAnswer::Key(info) => Ok(NewApiKey { info, secret }),
            _ => Err(SqliteError::Corrupt("the writer answered another change".to_owned()).into()),
        }
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.read(keys::list).await
    }

    async fn revoke_key(&self, id: i64) -> Result<ApiKeyInfo, StoreError> {
        match self.change_keys(KeyChange::Revoke(id)).await? {
            KeyAnswer::Revoked(Some(info)) => Ok(info),
            KeyAnswer::Revoked(None) => Err(StoreError::NotFound {
                what: format!("api key {id}"),
            }),
            _ => Err(SqliteError::Corrupt("the writer answered another change".to_owned()).into()),
        }
    }
}
