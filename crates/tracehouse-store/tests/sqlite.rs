//! What only the SQLite store has: schema upgrades of an existing database file. Everything
//! every store must do is in `conformance.rs`.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::span;
use serde_json::json;
use tracehouse_core::{Span, SpanStore, Timestamp};
use tracehouse_store::{SqliteConfig, SqliteStore};

/// Takes a database back to schema v3 (before trace states, root candidates, project totals
/// and timed metadata rows).
/// What v5 added (key scopes and last use), taken away again for databases of older versions.
const UNDO_V6: &str = "DROP INDEX spans_content_live; \
     ALTER TABLE traces DROP COLUMN running_count; \
     ALTER TABLE spans DROP COLUMN content_expired_ns; \
     ALTER TABLE projects DROP COLUMN retention_days; \
     ALTER TABLE projects DROP COLUMN content_retention_days;";
const UNDO_V7: &str = "DROP INDEX traces_by_thread; DROP INDEX traces_by_customer; \
     DROP TABLE customer_profiles;";
const UNDO_V8: &str = "DROP INDEX spans_ttft; ALTER TABLE spans DROP COLUMN ttft; \
     DROP TABLE customer_params;";

const UNDO_V5: &str = "ALTER TABLE api_keys DROP COLUMN scopes; \
     ALTER TABLE api_keys DROP COLUMN last_used_ns;";

const UNDO_V4: &str = "DROP TABLE trace_roots; DROP TABLE project_totals; \
     ALTER TABLE traces DROP COLUMN state; \
     DROP INDEX span_metadata_by_text; DROP INDEX span_metadata_by_number; \
     ALTER TABLE span_metadata DROP COLUMN start_ns; \
     CREATE INDEX span_metadata_by_text ON span_metadata (project_id, key, text_value); \
     CREATE INDEX span_metadata_by_number ON span_metadata (project_id, key, num_value);";

async fn open(dir: &tempfile::TempDir) -> (SqliteStore, tracehouse_core::ProjectId) {
    let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    let project = common::acme_project(&store).await;
    (store, project)
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
    // Replacements and a delete must leave the maintained rollups equal to a recount too:
    // a span sent twice within one request of a new trace, spans replaced by a later
    // request, and a deleted trace.
    let at = |i: i32| 1_735_689_600 + i * 600;
    store
        .write_spans(
            project,
            vec![
                span(
                    "dup",
                    "d",
                    None,
                    json!({"start_time": at(3), "model": "a", "cost": 5.0}),
                ),
                span(
                    "dup",
                    "d",
                    None,
                    json!({"start_time": at(4), "model": "b", "cost": 7.0, "status": "error"}),
                ),
            ],
        )
        .await
        .unwrap();
    let replacements: Vec<Span> = (0..8)
        .map(|i: i32| {
            span(
                &format!("t{}", i / 4),
                &format!("s{i}"),
                None,
                json!({"start_time": at(i + 30), "latency": 3.5, "model": "c", "cost": 1.0}),
            )
        })
        .collect();
    store.write_spans(project, replacements).await.unwrap();
    store
        .delete_trace(project, &"t5".parse().unwrap())
        .await
        .unwrap();
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
    // Back to v1: no rollup tables, no trace states or root candidates (v4).
    {
        let connection = rusqlite::Connection::open(dir.path().join("tracehouse.db")).unwrap();
        connection
            .execute_batch(&format!(
                "{UNDO_V8} {UNDO_V7} {UNDO_V6} {UNDO_V5} DROP TABLE span_rollup_hourly; DROP TABLE span_latency_hourly; {UNDO_V4} \
                     PRAGMA user_version = 1;"
            ))
            .unwrap();
    }
    let upgraded = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    let recounted = answers(upgraded).await;
    // Costs summed with subtractions differ from a fresh sum in the last bits only.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    assert_eq!(recounted.len(), maintained.len());
    for (recount, kept) in recounted.iter().zip(&maintained) {
        assert_eq!(recount.series.len(), kept.series.len());
        for (r, k) in recount.series.iter().zip(&kept.series) {
            assert_eq!(r.key, k.key);
            assert!(close(r.total, k.total), "{r:?} against {k:?}");
            assert_eq!(r.values.len(), k.values.len());
            for (rv, kv) in r.values.iter().zip(&k.values) {
                assert!(close(*rv, *kv), "{r:?} against {k:?}");
            }
        }
    }
    assert!(maintained[0].series.iter().all(|s| s.total > 0.0));
}

/// The writer leaves WAL checkpoints to a thread of its own: while the store stays open,
/// committed pages still reach the database file.
#[tokio::test]
async fn committed_pages_reach_the_database_file_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let database = dir.path().join(tracehouse_store::sqlite::DATABASE_FILE);
    let before = std::fs::metadata(&database).unwrap().len();
    // Random letters, so compression leaves most of the bytes.
    let mut random = fastrand::Rng::with_seed(7);
    for request in 0..40 {
        let spans: Vec<Span> = (0..50)
            .map(|i| {
                span(
                    &format!("t{request}"),
                    &format!("s{i}"),
                    None,
                    json!({"input": (0..2000).map(|_| random.alphanumeric()).collect::<String>()}),
                )
            })
            .collect();
        store.write_spans(project, spans).await.unwrap();
    }
    // 2,000 spans of 2 KB (~1.5 KB compressed): ~3 MB written. The writer's own checkpoint
    // would wait for 256 MB of WAL, so only the checkpoint thread can have moved pages in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let grown = loop {
        let size = std::fs::metadata(&database).unwrap().len();
        if size >= before + 2_000_000 || std::time::Instant::now() > deadline {
            break size;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        grown >= before + 2_000_000,
        "database file grew from {before} to only {grown} bytes"
    );
}

/// Long content is stored compressed; rows written as JSON text by earlier releases read back
/// beside it, through the store and through the queries that look inside the JSON.
#[tokio::test]
async fn compressed_and_plain_text_content_read_back_alike() {
    use tracehouse_core::TraceId;
    use tracehouse_core::query::TraceQuery;

    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let answer = "the refund policy allows returns within thirty days ".repeat(20);
    let spans = |trace: &str| {
        vec![
            span(
                trace,
                "root",
                None,
                json!({"input": "why?", "output": answer, "metadata": {"tier": "gold"}}),
            ),
            span(
                trace,
                "llm",
                Some("root"),
                json!({"model": "gpt-4o", "output": answer, "time_to_first_token": 0.25}),
            ),
        ]
    };
    store.write_spans(project, spans("new")).await.unwrap();
    store.write_spans(project, spans("old")).await.unwrap();
    drop(store);
    {
        let connection = rusqlite::Connection::open(dir.path().join("tracehouse.db")).unwrap();
        let stored: Vec<String> = connection
            .prepare("SELECT typeof(content) FROM spans WHERE trace_id = 'new' ORDER BY span_id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, ["blob", "blob"]);
        // What a release before compression wrote: the JSON as text.
        for (span_id, content) in [
            (
                "root",
                json!({"input": "why?", "output": answer, "metadata": {"tier": "gold"}}),
            ),
            (
                "llm",
                json!({"model": "gpt-4o", "output": answer, "time_to_first_token": 0.25}),
            ),
        ] {
            connection
                .execute(
                    "UPDATE spans SET content = ?1 WHERE trace_id = 'old' AND span_id = ?2",
                    rusqlite::params![content.to_string(), span_id],
                )
                .unwrap();
        }
    }
    let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    for trace in ["new", "old"] {
        let read = store
            .get_trace(project, &TraceId::try_from(trace).unwrap())
            .await
            .unwrap()
            .unwrap();
        let root = read
            .spans
            .iter()
            .find(|s| s.span_id.as_str() == "root")
            .unwrap();
        assert_eq!(root.content.get("output"), Some(&json!(answer)), "{trace}");
        assert_eq!(root.content.get("metadata"), Some(&json!({"tier": "gold"})));
    }
    let listed = store
        .list_traces(project, &TraceQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    for item in &listed.items {
        assert_eq!(item.input, Some(json!("why?")));
        assert_eq!(item.output, Some(json!(answer)));
        assert_eq!(item.metadata, Some(json!({"tier": "gold"})));
    }
}

/// A random span of one of a few traces: random parent among a small id space (so parents
/// arrive late, go missing, or form cycles), random times, some without any time, and
/// random values of every aggregated field.
fn random_span(random: &mut fastrand::Rng, trace: &str) -> Span {
    let id = format!("s{}", random.u8(..12));
    // Parentless spans are rare, so the root is often an orphan that a late parent adopts.
    let parent = match random.u8(..40) {
        0..=1 => None,
        2 => Some(id.clone()),
        _ => Some(format!("s{}", random.u8(..14))),
    };
    let mut extra = serde_json::Map::new();
    if random.u8(..8) != 0 {
        extra.insert(
            "start_time".into(),
            json!(1_735_689_600 + random.i64(0..40)),
        );
        extra.insert("latency".into(), json!(f64::from(random.u8(..30)) / 4.0));
    }
    let pick = |random: &mut fastrand::Rng, values: &[&str]| {
        values[random.usize(..values.len())].to_owned()
    };
    if random.bool() {
        extra.insert(
            "model".into(),
            json!(pick(random, &["gpt-4o", "claude", ""])),
        );
    }
    extra.insert(
        "log_type".into(),
        json!(pick(random, &["chat", "tool", "workflow", "agent"])),
    );
    if random.u8(..4) == 0 {
        extra.insert("status".into(), json!("error"));
    }
    for field in [
        "customer_identifier",
        "environment",
        "thread_identifier",
        "session_identifier",
    ] {
        if random.u8(..3) == 0 {
            extra.insert(field.into(), json!(pick(random, &["a", "b", ""])));
        }
    }
    if random.bool() {
        extra.insert("prompt_tokens".into(), json!(random.u16(..2000)));
        extra.insert("completion_tokens".into(), json!(random.u16(..2000)));
        extra.insert(
            "cost".into(),
            json!(f64::from(random.u32(..1_000_000)) / 3e7),
        );
    }
    if random.u8(..5) == 0 {
        extra.insert("trace_name".into(), json!(pick(random, &["named", ""])));
    }
    let mut item = json!({"span_name": format!("{id}.step")});
    if let Some(item) = item.as_object_mut() {
        item.extend(extra);
    }
    let mut span = span(trace, &id, parent.as_deref(), item);
    if random.u8(..8) == 0 {
        // As ingest marks spans that carried no time: they do not stretch their trace.
        span.times_inferred = true;
    }
    span
}

/// What the writer keeps incrementally for a trace equals `summarize` over the trace's stored
/// spans, after every request, whatever the split into requests, the arrival order, the
/// re-sends (with changed values) and other writers of the same file — and so do its facets.
#[tokio::test]
async fn incremental_trace_aggregates_equal_summarize_over_the_stored_spans() {
    use tracehouse_core::summarize;

    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let seed = fastrand::u64(..);
    let mut random = fastrand::Rng::with_seed(seed);
    let connection = rusqlite::Connection::open(dir.path().join("tracehouse.db")).unwrap();
    let other = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    for round in 0..200 {
        let traces = ["p", "q", "r"];
        let requests = 1 + random.usize(..4);
        for _ in 0..requests {
            let spans: Vec<Span> = (0..1 + random.usize(..8))
                .map(|_| {
                    let trace = traces[random.usize(..traces.len())];
                    random_span(&mut random, trace)
                })
                .collect();
            // Now and then through a second store on the same file, as `tracehouse import`
            // writes beside a running server: the first store's writer must notice.
            let writer = if random.u8(..8) == 0 { &other } else { &store };
            writer.write_spans(project, spans).await.unwrap();
        }
        if random.u8(..10) == 0 {
            let trace = traces[random.usize(..traces.len())];
            store
                .delete_trace(project, &trace.parse().unwrap())
                .await
                .unwrap();
        }
        let (mut span_total, mut trace_total) = (0, 0);
        for trace in traces {
            let Some(stored) = store
                .get_trace(project, &trace.parse().unwrap())
                .await
                .unwrap()
            else {
                continue;
            };
            span_total += stored.spans.len() as u64;
            trace_total += 1;
            let expected = summarize(&stored.spans).unwrap();
            assert_eq!(
                stored.summary, expected,
                "seed {seed}, round {round}, trace {trace}"
            );
            // Facets: the distinct span values, each stamped with the trace's start.
            let mut facets: Vec<(String, String, i64)> = connection
                .prepare("SELECT facet, value, start_ns FROM trace_facets WHERE trace_id = ?1 ORDER BY 1, 2")
                .unwrap()
                .query_map([trace], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut wanted: Vec<(String, String, i64)> = Vec::new();
            for span in &stored.spans {
                let facts = tracehouse_core::trace_state::SpanFacts::of(span);
                for (column, value) in tracehouse_core::trace_state::DISTINCT_FIELDS
                    .iter()
                    .zip(facts.distinct)
                {
                    if let Some(value) = value {
                        wanted.push((
                            column.api_name().to_owned(),
                            value.to_owned(),
                            expected.start.unix_nanos(),
                        ));
                    }
                }
            }
            wanted.sort();
            wanted.dedup();
            facets.sort();
            assert_eq!(facets, wanted, "seed {seed}, round {round}, trace {trace}");
        }
        let stats = store.project_stats(project).await.unwrap();
        assert_eq!(
            (stats.spans, stats.traces),
            (span_total, trace_total),
            "seed {seed}, round {round}"
        );
    }
}

/// A database written before trace states existed (v3) gets its root candidates on upgrade,
/// and a trace of it touched afterwards has exactly the aggregates a fresh summary gives.
#[tokio::test]
async fn upgrading_a_v3_database_keeps_trace_aggregates_exact() {
    use tracehouse_core::summarize;

    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let at = |second: i64| json!(1_735_689_600 + second);
    let early = vec![
        span(
            "t",
            "child",
            Some("root"),
            json!({"start_time": at(5), "model": "a", "cost": 0.5, "metadata": {"tier": "gold"}}),
        ),
        span("t", "lost", Some("gone"), json!({"start_time": at(1)})),
    ];
    store.write_spans(project, early).await.unwrap();
    drop(store);
    {
        let connection = rusqlite::Connection::open(dir.path().join("tracehouse.db")).unwrap();
        connection
            .execute_batch(
                &format!(
                    "{UNDO_V8} {UNDO_V7} {UNDO_V6} {UNDO_V5} {UNDO_V4} ALTER TABLE span_rollup_hourly DROP COLUMN latency_total; \
                     PRAGMA user_version = 3; \
                     INSERT INTO span_metadata (span_rowid, project_id, key, text_value, num_value) \
                     SELECT span_rowid, project_id, key, text_value, num_value FROM span_metadata;"
                ),
            )
            .unwrap();
    }
    let store = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    // The key made before scopes existed keeps doing everything, and was never used.
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scopes, tracehouse_core::Scopes::ADMIN);
    assert_eq!(keys[0].last_used_at, None);
    let late = vec![span(
        "t",
        "root",
        None,
        json!({"start_time": at(3), "model": "b", "trace_name": "the agent", "environment": "prod"}),
    )];
    store.write_spans(project, late).await.unwrap();
    let stored = store
        .get_trace(project, &"t".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.summary, summarize(&stored.spans).unwrap());
    assert_eq!(stored.summary.name, "the agent");
    assert_eq!(stored.summary.root_span_id.unwrap().as_str(), "root");
    assert_eq!(stored.summary.span_count, 3);
    assert_eq!(stored.summary.models, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(stored.summary.environment.as_deref(), Some("prod"));
    // Metadata rows of before got their span's start (and lost the copies made above), so the
    // newest-first list by metadata finds the span once.
    let gold = store
        .list_spans(
            project,
            &tracehouse_core::query::SpanQuery {
                filter: tracehouse_core::query::SpanFilter {
                    conditions: vec![tracehouse_core::query::Condition {
                        field: tracehouse_core::query::SpanField::Metadata(vec!["tier".to_owned()]),
                        operator: tracehouse_core::query::Operator::Equals,
                        values: vec![tracehouse_core::query::FilterValue::Text("gold".to_owned())],
                    }],
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((gold.total, gold.items.len()), (1, 1));
    assert_eq!(gold.items[0].span_id.as_str(), "child");
    // The upgrade counted the 2 spans and 1 trace it found; the writer counted the third span.
    let stats = store.project_stats(project).await.unwrap();
    assert_eq!((stats.spans, stats.traces), (3, 1));
}

/// A database from before v8 gets its model calls' times to first token and the profile
/// fields its spans sent filled on upgrade, as the writer fills them for new spans.
#[tokio::test]
async fn upgrading_a_v7_database_fills_ttft_and_ingested_profiles() {
    use tracehouse_core::groups::{GroupQuery, Grouping};

    let dir = tempfile::tempdir().unwrap();
    let (store, project) = open(&dir).await;
    let spans = vec![
        span(
            "t1",
            "root",
            None,
            json!({"start_time": 1_735_689_600, "latency": 2.0, "log_type": "workflow",
                   "customer_params": {"customer_identifier": "ann", "name": "Ann",
                                       "email": "ann@old.example"}}),
        ),
        span(
            "t1",
            "chat",
            Some("root"),
            json!({"start_time": 1_735_689_600, "latency": 1.0, "log_type": "chat",
                   "time_to_first_token": 0.25}),
        ),
    ];
    store.write_spans(project, spans).await.unwrap();
    store
        .write_spans(
            project,
            vec![span(
                "t2",
                "chat",
                None,
                json!({"start_time": 1_735_776_000, "latency": 1.0, "log_type": "chat",
                       "ttft": 0.75, "customer_params": {"customer_identifier": "ann",
                                                         "name": "Ann B"}}),
            )],
        )
        .await
        .unwrap();
    let users = |store: SqliteStore| async move {
        let mut query = GroupQuery::new(Grouping::Customer);
        query.keys = Some(vec!["ann".to_owned()]);
        let group = store
            .list_trace_groups(project, &query)
            .await
            .unwrap()
            .items
            .remove(0);
        let profile = store
            .customer_profiles(project, &["ann".to_owned()])
            .await
            .unwrap()
            .remove(0);
        (group.average_ttft, group.active_days, profile.ingested)
    };
    let written = users(store).await;
    assert_eq!(written.0, Some(0.5));
    assert_eq!(written.1, 2);
    assert_eq!(
        serde_json::Value::Object(written.2.clone()),
        json!({"name": "Ann B", "email": "ann@old.example"})
    );
    {
        let connection = rusqlite::Connection::open(dir.path().join("tracehouse.db")).unwrap();
        connection
            .execute_batch(&format!("{UNDO_V8} PRAGMA user_version = 7;"))
            .unwrap();
    }
    let upgraded = SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap();
    assert_eq!(users(upgraded).await, written);
}
