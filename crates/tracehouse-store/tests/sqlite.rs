//! The SQLite store against a real database file in a temporary directory.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use tracehouse_core::{
    IngestContext, PriceTable, ProjectName, Span, SpanStore, StoreError, Timestamp, TraceId,
    span_from_log,
};
use tracehouse_store::{SqliteConfig, SqliteStore};

fn span(trace: &str, id: &str, parent: Option<&str>, extra: serde_json::Value) -> Span {
    let prices = PriceTable::builtin();
    let mut item = json!({"trace_unique_id": trace, "span_unique_id": id,
        "start_time": "2025-01-01T00:00:00Z", "latency": 1.0});
    if let Some(parent) = parent {
        item["span_parent_id"] = json!(parent);
    }
    if let (Some(item), serde_json::Value::Object(extra)) = (item.as_object_mut(), extra) {
        item.extend(extra);
    }
    span_from_log(
        item,
        IngestContext {
            received_at: Timestamp::from_unix_nanos(0),
            prices: &prices,
        },
    )
    .unwrap()
}

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

#[tokio::test]
async fn writes_read_back_with_content_and_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let receipt = store
        .write_spans(
            project,
            vec![
                span("t1", "root", None, json!({"span_name": "agent.workflow", "metadata": {"k": [1, 2]}})),
                span("t1", "llm", Some("root"), json!({"model": "gpt-4o-mini", "prompt_tokens": 25, "completion_tokens": 19, "input": "hi"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!((receipt.spans_written, receipt.traces_touched), (2, 1));

    let trace = store
        .get_trace(project, &TraceId::try_from("t1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trace.summary.span_count, 2);
    assert_eq!(trace.summary.llm_call_count, 1);
    assert_eq!(trace.summary.total_tokens, 44);
    assert!((trace.summary.total_cost - 1.515e-5).abs() < 1e-12);
    assert_eq!(trace.summary.name, "agent.workflow");
    let root = trace
        .spans
        .iter()
        .find(|s| s.span_id.as_str() == "root")
        .unwrap();
    assert_eq!(root.content.get("metadata"), Some(&json!({"k": [1, 2]})));
    let llm = trace
        .spans
        .iter()
        .find(|s| s.span_id.as_str() == "llm")
        .unwrap();
    assert_eq!(llm.content.get("input"), Some(&json!("hi")));
    assert_eq!(llm.log_type.as_str(), "chat");
}

#[tokio::test]
async fn resending_replaces_and_keeps_aggregates_right() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let first = span("t", "a", None, json!({"cost": 1.0}));
    store
        .write_spans(project, vec![first.clone()])
        .await
        .unwrap();
    store.write_spans(project, vec![first]).await.unwrap();
    store
        .write_spans(project, vec![span("t", "a", None, json!({"cost": 2.5}))])
        .await
        .unwrap();
    let trace = store
        .get_trace(project, &TraceId::try_from("t").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trace.summary.span_count, 1);
    assert_eq!(trace.summary.total_cost, 2.5);
}

#[tokio::test]
async fn concurrent_writers_are_grouped_and_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for request in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let spans = (0..20)
                .map(|i| {
                    span(
                        &format!("t{request}"),
                        &format!("s{i}"),
                        (i > 0).then_some("s0"),
                        json!({}),
                    )
                })
                .collect();
            store.write_spans(project, spans).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().spans_written, 20);
    }
    for request in 0..50 {
        let trace = store
            .get_trace(project, &TraceId::try_from(format!("t{request}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(trace.summary.span_count, 20);
    }
}

#[tokio::test]
async fn projects_are_isolated_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let other = store
        .create_key(&"other".parse::<ProjectName>().unwrap(), "")
        .await
        .unwrap();
    let other = store
        .authenticate(&tracehouse_core::ApiKeyHash::of_secret(&other.secret))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(other.id, project);
    store
        .write_spans(project, vec![span("t", "a", None, json!({}))])
        .await
        .unwrap();
    let id = TraceId::try_from("t").unwrap();
    assert!(store.get_trace(other.id, &id).await.unwrap().is_none());
    drop(store);

    let reopened = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    assert_eq!(
        reopened
            .get_trace(project, &id)
            .await
            .unwrap()
            .unwrap()
            .spans
            .len(),
        1
    );
    assert_eq!(reopened.list_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn revoked_keys_stop_authenticating() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir).await;
    let key = store
        .create_key(&ProjectName::default_project(), "ci")
        .await
        .unwrap();
    let hash = tracehouse_core::ApiKeyHash::of_secret(&key.secret);
    assert!(store.authenticate(&hash).await.unwrap().is_some());
    assert!(key.secret.starts_with(&key.info.prefix));
    let revoked = store.revoke_key(key.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.authenticate(&hash).await.unwrap().is_none());
    assert!(matches!(
        store.revoke_key(9999).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .authenticate(&tracehouse_core::ApiKeyHash::of_secret("th_wrong"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn scanning_in_key_order_reads_every_match_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let spans: Vec<Span> = (0..25)
        .flat_map(|trace| {
            (0..4).map(move |index| {
                let model = if index % 2 == 0 { "gpt-4o" } else { "other" };
                span(
                    &format!("t{trace:02}"),
                    &format!("s{index}"),
                    None,
                    json!({"model": model}),
                )
            })
        })
        .collect();
    store.write_spans(project, spans).await.unwrap();
    let filter = tracehouse_core::query::SpanFilter {
        conditions: vec![tracehouse_core::query::Condition {
            field: tracehouse_core::query::SpanField::Column(
                tracehouse_core::query::SpanColumn::Model,
            ),
            operator: tracehouse_core::query::Operator::Equals,
            values: vec![tracehouse_core::query::FilterValue::Text(
                "gpt-4o".to_owned(),
            )],
        }],
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_spans(project, &filter, after.clone(), 7)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.trace_id.clone(), last.span_id.clone()));
        seen.extend(page.iter().map(|s| format!("{}/{}", s.trace_id, s.span_id)));
    }
    assert_eq!(seen.len(), 50);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "strictly increasing, no repeats");
    assert_eq!(seen[0], "t00/s0");
    assert_eq!(seen[49], "t24/s2");
}

#[tokio::test]
async fn projects_are_found_and_created_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (store, acme) = open(&dir).await;
    let name = |raw: &str| raw.parse::<ProjectName>().unwrap();
    let found = store.find_project(&name("acme")).await.unwrap().unwrap();
    assert_eq!(found.id, acme);
    assert_eq!(store.find_project(&name("imports")).await.unwrap(), None);
    let created = store.create_project(&name("imports")).await.unwrap();
    assert_ne!(created.id, acme);
    assert_eq!(created.name, name("imports"));
    // Creating again is a lookup.
    assert_eq!(
        store.create_project(&name("imports")).await.unwrap(),
        created
    );
    assert_eq!(
        store.find_project(&name("imports")).await.unwrap(),
        Some(created)
    );
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
