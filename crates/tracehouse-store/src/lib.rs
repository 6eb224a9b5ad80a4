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
mod series;
pub mod sqlite;

pub use clickhouse::{ClickHouseConfig, ClickHouseError, ClickHouseStore};
pub use sqlite::{SqliteConfig, SqliteError, SqliteStore, Synchronous};
