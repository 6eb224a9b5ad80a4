//! Integration tests: the real server on an ephemeral port, spoken to over HTTP.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod clickhouse;
mod corpus;
mod crash;
mod grpc;
mod guard;
mod ingest;
mod logging_api;
mod metrics;
mod migration;
mod otlp;
mod peer_import;
mod properties;
mod read_api;
mod redaction;
mod retention;
mod running;
mod scopes;
mod sdk;
mod threads_users;
mod util;
