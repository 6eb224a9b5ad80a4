//! `SpanStore` backends.
//!
//! # Layout
//! - [`sqlite`]: the embedded default; one writer thread with group commit, a pool of readers.
//!
//! Architecture invariant: every backend is reached only through `tracehouse_core::SpanStore`;
//! nothing above this crate names rusqlite.

pub mod sqlite;

pub use sqlite::{SqliteConfig, SqliteError, SqliteStore, Synchronous};
