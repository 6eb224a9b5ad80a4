//! The storage contract: what every backend (SQLite, ClickHouse) offers the server.

use async_trait::async_trait;

use serde_json::Value;

use crate::groups::{GroupQuery, TraceGroup};
use crate::ids::{ApiKeyHash, Project, ProjectId, ProjectName, Scopes, SpanId, TraceId};
use crate::metrics::{Timeseries, TimeseriesQuery, TopEntry, TopQuery};
use crate::query::{SpanFilter, SpanQuery, TraceQuery};
use crate::retention::{Cutoffs, RetentionOverride, RetentionStep};
use crate::span::Span;
use crate::time::Timestamp;
use crate::trace::TraceSummary;

/// Failures of a store, as the API needs to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take writes right now (queue full, disk full, read-only, backend down);
    /// the client should retry later. Nothing of the request was acknowledged.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// Why, for logs and the 503 body.
        reason: String,
    },
    /// A named thing does not exist (a key id to revoke, a project).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The request conflicts with stored state (a project name already taken).
    #[error("{0}")]
    Conflict(String),
    /// Any other backend failure; details are logged, not sent to clients.
    #[error("store failure: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteReceipt {
    /// Spans committed (new or replacing an earlier copy).
    pub spans_written: u64,
    /// Distinct traces whose aggregates were updated.
    pub traces_touched: u64,
}

/// A trace with all its spans, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrace {
    /// Aggregates, as maintained on write.
    pub summary: TraceSummary,
    /// Every span of the trace, ordered by start time.
    pub spans: Vec<Span>,
}

/// A trace as listed: its aggregates and its root span's input, output and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceListItem {
    /// Aggregates.
    pub summary: TraceSummary,
    /// The root span's `input`, if any.
    pub input: Option<Value>,
    /// The root span's `output`, if any.
    pub output: Option<Value>,
    /// The root span's `metadata`, if any.
    pub metadata: Option<Value>,
}

/// One page of a list and the number of matches over all pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    /// Matches over all pages: exact when `total_is_exact`, else a lower bound (counting
    /// stopped at [`crate::query::Page::count_limit`], which always reaches past this page,
    /// so `offset + items < total` still tells whether a next page exists).
    pub total: u64,
    /// Whether `total` is the exact number of matches.
    pub total_is_exact: bool,
    /// This page.
    pub items: Vec<T>,
}

/// Totals over the spans matching a filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanStatistics {
    /// Matching spans.
    pub number_of_requests: u64,
    /// Sum of costs.
    pub total_cost: f64,
    /// Sum of total tokens.
    pub total_tokens: u64,
    /// Sum of prompt tokens.
    pub total_prompt_tokens: u64,
    /// Sum of completion tokens.
    pub total_completion_tokens: u64,
    /// Mean latency in seconds, `None` without spans.
    pub avg_latency: Option<f64>,
    /// Median latency.
    pub p50_latency: Option<f64>,
    /// 90th percentile latency.
    pub p90_latency: Option<f64>,
    /// 99th percentile latency.
    pub p99_latency: Option<f64>,
    /// Spans with error status.
    pub error_count: u64,
}

/// Counts of one project's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectStats {
    /// Traces stored.
    pub traces: u64,
    /// Spans stored.
    pub spans: u64,
}

/// An API key as listed: never the secret, which exists only at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Id used by `keys revoke`.
    pub id: i64,
    /// The project the key writes to and reads from.
    pub project: ProjectName,
    /// A label given at creation.
    pub label: String,
    /// First characters of the key, to recognise it without revealing it.
    pub prefix: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Revocation time, RFC 3339; a revoked key authenticates nothing.
    pub revoked_at: Option<String>,
    /// What the key may do.
    pub scopes: Scopes,
    /// When a server last accepted it, RFC 3339, to the minute (servers record a use at most
    /// once a minute per key); `None` when never.
    pub last_used_at: Option<String>,
}

/// What a project knows about one of its customers beyond their traces: the profile fields a
/// person set (`name`, `email`, `metadata`, budgets), as validated by the API, and those the
/// customer's spans sent in `customer_params` (see `groups::ingested_profile`).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerProfile {
    /// The customer.
    pub customer_identifier: String,
    /// The fields set through the API, by API name.
    pub fields: serde_json::Map<String, Value>,
    /// The fields spans sent, each the value of the latest span written that sent it. Stores
    /// fill it on read; writing a profile writes `fields` only.
    pub ingested: serde_json::Map<String, Value>,
    /// When either last changed.
    pub updated_at: Timestamp,
}

impl CustomerProfile {
    /// The profile being assembled for `customer` in `profiles` (created empty when missing),
    /// noting a change at `at`: a profile's time is its latest change of either kind.
    pub fn assembling<S: std::hash::BuildHasher>(
        profiles: &mut std::collections::HashMap<String, CustomerProfile, S>,
        customer: String,
        at: Timestamp,
    ) -> &mut CustomerProfile {
        let profile = profiles
            .entry(customer.clone())
            .or_insert_with(|| CustomerProfile {
                customer_identifier: customer,
                fields: serde_json::Map::new(),
                ingested: serde_json::Map::new(),
                updated_at: at,
            });
        profile.updated_at = profile.updated_at.max(at);
        profile
    }

    /// A field's value: the one set through the API wins over the one spans sent.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).or_else(|| self.ingested.get(name))
    }

    /// A text field's value (`name`, `email`).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(Value::as_str)
    }
}

/// What a valid key grants: its project and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// The project the key reads and writes.
    pub project: Project,
    /// What it may do there.
    pub scopes: Scopes,
}

/// A freshly created key: the only moment the secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Its listing entry.
    pub info: ApiKeyInfo,
    /// The secret to hand to the user, once.
    pub secret: String,
}

/// Where spans, traces and API keys live. One implementation per backend; the server holds
/// an `Arc<dyn SpanStore>` and never knows which.
///
/// Contract for writes: when `write_spans` returns `Ok`, the spans are durably committed and
/// the traces' aggregates already include them.
#[async_trait]
pub trait SpanStore: Send + Sync + 'static {
    /// Backend name and location for health output (`sqlite:/data/tracehouse.db`).
    fn describe(&self) -> String;

    /// Stores spans of one project, replacing any stored span with the same trace and span id.
    async fn write_spans(
        &self,
        project: ProjectId,
        spans: Vec<Span>,
    ) -> Result<WriteReceipt, StoreError>;

    /// One trace with its spans, `None` when the project has no such trace.
    async fn get_trace(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
    ) -> Result<Option<StoredTrace>, StoreError>;

    /// One page of a project's traces matching a query.
    async fn list_traces(
        &self,
        project: ProjectId,
        query: &TraceQuery,
    ) -> Result<Listing<TraceListItem>, StoreError>;

    /// One page of a project's spans matching a query.
    async fn list_spans(
        &self,
        project: ProjectId,
        query: &SpanQuery,
    ) -> Result<Listing<Span>, StoreError>;

    /// Up to `limit` spans matching `filter`, in (trace id, span id) order, strictly after
    /// `after`: walking with the last span's ids as the next `after` reads every match exactly
    /// once in constant memory (exports), even while ingest continues.
    async fn scan_spans(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
        after: Option<(TraceId, SpanId)>,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError>;

    /// One span by its trace and span id, `None` when the project has no such span.
    async fn get_span(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
        span_id: &SpanId,
    ) -> Result<Option<Span>, StoreError>;

    /// Up to `limit` spans with this span id, in any trace of the project, most recently
    /// ingested first: a bare span id may name spans of several traces.
    async fn find_spans(
        &self,
        project: ProjectId,
        span_id: &SpanId,
        limit: usize,
    ) -> Result<Vec<Span>, StoreError>;

    /// Totals and latency percentiles over the spans matching a filter.
    async fn span_statistics(
        &self,
        project: ProjectId,
        filter: &SpanFilter,
    ) -> Result<SpanStatistics, StoreError>;

    /// A metric per time bucket and group over the spans matching a filter: the `limit`
    /// groups ranked first by [`crate::metrics::Metric::ranking`] over the whole range, then
    /// one "other" series for the rest (when there is a rest), each with a value for every
    /// bucket of the grid (0 where no span fell).
    async fn metric_timeseries(
        &self,
        project: ProjectId,
        query: &TimeseriesQuery,
    ) -> Result<Timeseries, StoreError>;

    /// The `limit` groups with the largest metric over a range, largest first (ties by value).
    async fn metric_top(
        &self,
        project: ProjectId,
        query: &TopQuery,
    ) -> Result<Vec<TopEntry>, StoreError>;

    /// One page of threads or customers: the project's traces matching the query grouped by
    /// their thread or customer, with the aggregates of
    /// [`crate::groups::GroupFold`] (the definition every store agrees with).
    async fn list_trace_groups(
        &self,
        project: ProjectId,
        query: &GroupQuery,
    ) -> Result<Listing<TraceGroup>, StoreError>;

    /// The stored profiles of these customers (those that have one), ordered by identifier.
    async fn customer_profiles(
        &self,
        project: ProjectId,
        customers: &[String],
    ) -> Result<Vec<CustomerProfile>, StoreError>;

    /// Replaces a customer's profile. Durable on `Ok`.
    async fn put_customer_profile(
        &self,
        project: ProjectId,
        profile: CustomerProfile,
    ) -> Result<(), StoreError>;

    /// Deletes a trace and its spans; `false` when the project has no such trace. Durable on `Ok`.
    async fn delete_trace(
        &self,
        project: ProjectId,
        trace_id: &TraceId,
    ) -> Result<bool, StoreError>;

    /// How much a project holds.
    async fn project_stats(&self, project: ProjectId) -> Result<ProjectStats, StoreError>;

    /// A project by name, `None` when no key was ever created for it (offline tools such as
    /// `export` address projects by name rather than by key).
    async fn find_project(&self, name: &ProjectName) -> Result<Option<Project>, StoreError>;

    /// Every project, ordered by name (offline `migrate` copies them all).
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError>;

    /// A project by name, created when it does not exist yet (offline `import`).
    async fn create_project(&self, name: &ProjectName) -> Result<Project, StoreError>;

    /// The project and scopes of an unrevoked key.
    async fn authenticate(&self, key: &ApiKeyHash) -> Result<Option<KeyGrant>, StoreError>;

    /// Notes that a server accepted `key` at `at` (shown by `keys list`). Servers call it at
    /// most once a minute per key.
    async fn record_key_use(&self, key: &ApiKeyHash, at: Timestamp) -> Result<(), StoreError>;

    /// Creates a key with these scopes for a project, creating the project when it does not
    /// exist yet.
    async fn create_key(
        &self,
        project: &ProjectName,
        label: &str,
        scopes: Scopes,
    ) -> Result<NewApiKey, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError>;

    /// Revokes a key by id; `NotFound` when there is none.
    async fn revoke_key(&self, id: i64) -> Result<ApiKeyInfo, StoreError>;

    /// Every project with the retention stored for it (`projects set`), ordered by name.
    async fn project_retention(&self) -> Result<Vec<(Project, RetentionOverride)>, StoreError>;

    /// Stores a project's own retention (its values replace the stored ones where set),
    /// creating the project when it does not exist yet.
    async fn set_project_retention(
        &self,
        name: &ProjectName,
        retention: RetentionOverride,
    ) -> Result<(Project, RetentionOverride), StoreError>;

    /// One bounded step of retention over the given projects: removes up to about `limit`
    /// traces last active before a project's `data_before` and expires the content of up to
    /// about `limit` spans started before its `content_before` (marked as expired at `now`),
    /// never touching anything at or after the cutoffs, also while spans arrive. Call again
    /// until the step says `done`.
    async fn apply_retention(
        &self,
        plan: &[(ProjectId, Cutoffs)],
        now: Timestamp,
        limit: usize,
    ) -> Result<RetentionStep, StoreError>;
}

/// What one group commit did, for whoever watches the store (the server's `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupCommit {
    /// Requests answered by this commit.
    pub requests: usize,
    /// Spans written (deletes count one each).
    pub spans: usize,
    /// Time from the start of the transaction to the end of the commit.
    pub seconds: f64,
    /// Whether the commit failed (every request of it got an error).
    pub failed: bool,
    /// Requests still waiting for the writer after this commit.
    pub queued_after: usize,
    /// Size of the database after the commit, when the backend knows it.
    pub database_bytes: Option<u64>,
}

/// Told about every group commit. Called on the writer's thread: implementations must be quick
/// and must not block.
pub trait StoreObserver: Send + Sync + 'static {
    /// One group commit finished.
    fn group_committed(&self, commit: &GroupCommit);
}
