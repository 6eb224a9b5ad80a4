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

/// A new API key's secret from the operating system's randomness; the error says why there was
/// none. Both backends mint keys with it and store only the secret's hash.
pub(crate) fn new_key_secret() -> Result<String, String> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    Ok(tracehouse_core::ids::api_key_from_random(&random))
}

/// The `StoreError` of a backend failure: transient ones are `Unavailable` (HTTP 503 with
/// `Retry-After`), the rest `Backend`. Both backends' errors convert through it.
pub(crate) fn store_error<E: std::error::Error + Send + Sync + 'static>(
    error: E,
    transient: bool,
) -> tracehouse_core::StoreError {
    if transient {
        tracehouse_core::StoreError::Unavailable {
            reason: error.to_string(),
        }
    } else {
        tracehouse_core::StoreError::Backend(Box::new(error))
    }
}

/// Nanoseconds since the Unix epoch, now (0 before 1970, saturated after 2262).
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
