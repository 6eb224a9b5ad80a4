//! What only the SQLite store has: schema upgrades of an existing database file. Everything
//! every store must do is in `conformance.rs`.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::span;
use serde_json::json;
use tracehouse_core::{ProjectName, Span, SpanStore, Timestamp};
use tracehouse_store::{SqliteConfig, SqliteStore};

async fn open(dir: &tempfile::TempDir) -> (SqliteStore, tracehouse_core::ProjectId) {
    let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    let key = store
        .create_key(&"acme".parse::<ProjectName>().unwrap(), "test")
        .await
        .unwrap();
    let project = store
        .authenticate(&tracehouse_core::ApiKeyHash::of_secret(&key.secret))
        .await
        .unwrap()
        .unwrap();
    (store, project.id)
}

/// A database written before the metrics rollups existed gets them filled on upgrade, equal
/// to what the writer maintains for new spans.
#[tokio::test]
async fn upgrading_a_v1_database_fills_the_metrics_rollups() {
    use tracehouse_core::metrics::{
        BucketGrid, GroupBy, Interval, Metric, TimeZone, Timeseries, TimeseriesQuery,
    };

    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let spans: Vec<Span> = (0..60)
        .map(|i: i32| {
            let model = ["a", "b", "c"][i as usize % 3];
            span(
                &format!("t{}", i / 4),
                &format!("s{i}"),
                None,
                json!({"start_time": 1_735_689_600 + i * 600, "latency": 0.1 + f64::from(i % 7),
                       "model": model, "cost": 0.01 * f64::from(i),
                       "status": if i % 5 == 0 { "error" } else { "success" }}),
            )
        })
        .collect();
    store.write_spans(project, spans).await.unwrap();
    let grid = BucketGrid::new(
        Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
        Timestamp::parse("2025-01-01T12:00:00Z").unwrap(),
        Interval::Hour,
        TimeZone::default(),
    )
    .unwrap();
    let answers = |store: SqliteStore| {
        let grid = grid.clone();
        async move {
            let mut out: Vec<Timeseries> = Vec::new();
            for metric in [Metric::Cost, Metric::ErrorRate, Metric::LatencyP90] {
                let query = TimeseriesQuery {
                    metric,
                    filter: Default::default(),
                    grid: grid.clone(),
                    group_by: Some(GroupBy::parse("model").unwrap()),
                    limit: 5,
                };
                out.push(store.metric_timeseries(project, &query).await.unwrap());
            }
            out
        }
    };
    let maintained = answers(store).await;
    // Back to v1: no rollup tables.
    {
        let connection = rusqlite::Connection::open(dir.path().join("tracehouse.db")).unwrap();
        connection
            .execute_batch(
                "DROP TABLE span_rollup_hourly; DROP TABLE span_latency_hourly; PRAGMA user_version = 1;",
            )
            .unwrap();
    }
    let upgraded = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    assert_eq!(answers(upgraded).await, maintained);
    assert!(maintained[0].series.iter().all(|s| s.total > 0.0));
}
