//! `SpanStore` backends.
//!
//! # Layout
//! - [`sqlite`]: the embedded default; one writer thread with group commit, a pool of readers.
//! - [`clickhouse`]: a ClickHouse server over HTTP; one writer task with group commit,
//!   `ReplacingMergeTree` tables read with `FINAL`.
//!
//! Architecture invariant: every backend is reached only through `tracehouse_core::SpanStore`;
//! nothing above this crate names rusqlite or ClickHouse.

pub mod clickhouse;
mod indexing;
mod series;
pub mod sqlite;
mod write_queue;

pub use clickhouse::{ClickHouseConfig, ClickHouseError, ClickHouseStore};
pub use sqlite::{SqliteConfig, SqliteError, SqliteStore, Synchronous};

/// Nanoseconds since the Unix epoch, now (0 before 1970, saturated after 2262).
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
