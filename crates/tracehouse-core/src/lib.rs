//! tracehouse's domain: what a span and a trace are, independent of how they travel or are stored.
//!
//! # Layout
//! - [`ids`]: validated `TraceId`, `SpanId`, `ProjectName`, API key hashing.
//! - [`time`]: `Timestamp` and the time formats clients send.
//! - [`span`]: `Span`, `LogType` (with inference), `SpanStatus`.
//! - [`spanlog`]: validation of one span-log object into a `Span` (time derivation, aliases, cost).
//! - [`cost`]: the model price table.
//! - [`trace`]: span tree assembly and trace aggregates.
//! - [`trace_state`]: trace aggregates kept one span at a time, as stores update them on write.
//! - [`query`]: the filter, sort and paging model shared by every list route and store.
//! - [`score`]: the stored shape of a span's scores (the scores API and imports write it).
//! - [`metrics`]: metrics over time buckets and groups (the usage dashboard), on the same filters.
//! - [`retention`]: how long projects keep traces and content, and what expiring content drops.
//! - [`store`]: the `SpanStore` trait every backend implements.
//! - `testing` (feature `testing`): spans for other crates' tests, built through validation.
//!
//! Architecture invariant: this crate does no IO, spawns nothing and knows no HTTP, SQL or protobuf.

pub mod cost;
pub mod groups;
pub mod ids;
pub mod metrics;
pub mod query;
pub mod retention;
pub mod score;
pub mod span;
pub mod spanlog;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod trace;
pub mod trace_filter;
pub mod trace_state;

pub use cost::PriceTable;
pub use ids::{
    ApiKeyHash, LogId, Project, ProjectId, ProjectName, Scope, ScopeError, Scopes, SpanId, TraceId,
};
pub use retention::{Cutoffs, Retention, RetentionOverride, RetentionStep};
pub use span::{LogType, Span, SpanGrouping, SpanStatus, TokenUsage};
pub use spanlog::{FieldError, IngestContext, span_from_log};
pub use store::{
    ApiKeyInfo, CustomerProfile, GroupCommit, KeyGrant, Listing, NewApiKey, ProjectStats,
    SpanStatistics, SpanStore, StoreError, StoreObserver, StoredTrace, TraceListItem, WriteReceipt,
};
pub use time::Timestamp;
pub use trace::{TraceSummary, TreeNode, build_tree, summarize};
