//! Integration tests: the real server on an ephemeral port, spoken to over HTTP.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod clickhouse;
mod crash;
mod ingest;
mod otlp;
mod read_api;
mod sdk;
mod util;
