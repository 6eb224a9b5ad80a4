//! The store conformance suite: the same test functions run against every backend: SQLite
//! on a real file in a temporary directory, ClickHouse on the server named by
//! `TRACEHOUSE_CLICKHOUSE_URL`, and a 2-shard ClickHouse cluster (`Distributed` tables) on the
//! nodes named by `TRACEHOUSE_CLICKHOUSE_CLUSTER_URLS`, whose `remote_servers` call the
//! cluster `tracehouse` (as `scripts/clickhouse start-cluster` configures it). Each
//! ClickHouse test uses a fresh database of its own.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{clickhouse_url, span};
use serde_json::json;
use tracehouse_core::query::{
    Condition, FilterValue, Operator, SpanColumn, SpanField, SpanFilter, SpanQuery, TraceQuery,
};
use tracehouse_core::{ProjectName, Span, SpanId, SpanStore, StoreError, TraceId};
use tracehouse_store::{ClickHouseConfig, ClickHouseStore, SqliteConfig, SqliteStore};

/// Where a test's store lives; opening the same place twice reopens the same data.
enum Backend {
    Sqlite(tempfile::TempDir),
    ClickHouse { url: String, database: String },
    Cluster { urls: Vec<String>, database: String },
}

/// The cluster name in the nodes' `remote_servers`.
const CLUSTER: &str = "tracehouse";

impl Backend {
    fn sqlite() -> Option<Self> {
        Some(Backend::Sqlite(tempfile::tempdir().unwrap()))
    }

    /// A fresh database on the test ClickHouse server, or `None` (with a skip line) when no
    /// server is configured and none is required.
    fn clickhouse() -> Option<Self> {
        let url = clickhouse_url()?;
        let database = format!("th_test_{}_{}", std::process::id(), fastrand::u64(..));
        Some(Backend::ClickHouse { url, database })
    }

    /// A fresh database on the test cluster, or `None` (with a skip line).
    fn cluster() -> Option<Self> {
        let urls = common::env_or_skip("TRACEHOUSE_CLICKHOUSE_CLUSTER_URLS")?;
        let urls: Vec<String> = urls
            .split(',')
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .collect();
        let database = format!("th_test_{}_{}", std::process::id(), fastrand::u64(..));
        Some(Backend::Cluster { urls, database })
    }

    async fn open(&self) -> Arc<dyn SpanStore> {
        match self {
            Backend::Sqlite(dir) => {
                Arc::new(SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap())
            }
            Backend::ClickHouse { url, database } => Arc::new(
                ClickHouseStore::open(ClickHouseConfig::new(url.clone(), database.clone()))
                    .await
                    .unwrap(),
            ),
            Backend::Cluster { urls, database } => {
                let mut config = ClickHouseConfig::new(urls[0].clone(), database.clone());
                config.cluster = Some(CLUSTER.to_owned());
                config.other_nodes = urls[1..].to_vec();
                Arc::new(ClickHouseStore::open(config).await.unwrap())
            }
        }
    }

    /// Drops a ClickHouse test database; a failed test leaves it for inspection.
    async fn cleanup(self) {
        let (urls, database) = match self {
            Backend::Sqlite(_) => return,
            Backend::ClickHouse { url, database } => (vec![url], database),
            Backend::Cluster { urls, database } => (urls, database),
        };
        for url in urls {
            let _ = reqwest::Client::new()
                .post(format!("{url}/"))
                .body(format!("DROP DATABASE IF EXISTS {database}"))
                .send()
                .await;
        }
    }
}

async fn open(backend: &Backend) -> (Arc<dyn SpanStore>, tracehouse_core::ProjectId) {
    let store = backend.open().await;
    let project = common::acme_project(&*store).await;
    (store, project)
}

/// Runs each listed test function once per backend, as `sqlite::name`, `clickhouse::name`
/// and `cluster::name`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::sqlite() {
                        super::$name(&backend).await;
                        backend.cleanup().await;
                    }
                }
            )*
        }
        mod clickhouse {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::clickhouse() {
                        super::$name(&backend).await;
                        backend.cleanup().await;
                    }
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::cluster() {
                        super::$name(&backend).await;
                        backend.cleanup().await;
                    }
                }
            )*
        }
    };
}

conformance!(
    capped_counts_are_lower_bounds_and_paging_still_visits_every_match,
    metadata_equality_lists_each_span_once_newest_first,
    writes_read_back_with_content_and_aggregates,
    resending_replaces_and_keeps_aggregates_right,
    concurrent_writers_are_grouped_and_all_committed,
    projects_are_isolated_and_data_survives_reopen,
    revoked_keys_stop_authenticating,
    scanning_in_key_order_reads_every_match_once,
    projects_are_found_and_created_by_name,
    hostile_strings_round_trip_and_match_only_themselves,
    deleted_traces_vanish_and_can_be_sent_again,
    statistics_and_span_lists_see_one_copy_per_span,
    floats_round_trip_bit_for_bit,
    a_trace_reads_the_same_however_its_spans_arrived,
    list_items_carry_the_latest_root_input_whatever_the_root_kind,
    a_span_condition_finds_a_trace_by_its_start_not_the_matching_spans,
    a_span_id_shared_by_traces_reads_each_span_by_its_trace,
    keys_keep_their_scopes_and_last_use,
);

#[path = "conformance/retention.rs"]
mod retention;

async fn keys_keep_their_scopes_and_last_use(backend: &Backend) {
    let (store, _) = open(backend).await;
    let project = ProjectName::default_project();
    let read: tracehouse_core::Scopes = "read".parse().unwrap();
    let ingest_read: tracehouse_core::Scopes = "ingest,read".parse().unwrap();
    let reader = store.create_key(&project, "viewer", read).await.unwrap();
    let app = store
        .create_key(&project, "app", ingest_read)
        .await
        .unwrap();
    assert_eq!(reader.info.scopes, read);
    assert_eq!(reader.info.last_used_at, None);
    let grant = |secret: String| {
        let store = &store;
        async move {
            store
                .authenticate(&tracehouse_core::ApiKeyHash::of_secret(&secret))
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(grant(reader.secret.clone()).await.scopes, read);
    assert_eq!(grant(app.secret.clone()).await.scopes, ingest_read);
    assert_eq!(grant(app.secret.clone()).await.project.name, project);

    let used_at = tracehouse_core::Timestamp::from_unix_nanos(1_764_000_000_000_000_000);
    let hash = tracehouse_core::ApiKeyHash::of_secret(&reader.secret);
    store
        .record_key_use(
            &hash,
            tracehouse_core::Timestamp::from_unix_nanos(1_763_000_000_000_000_000),
        )
        .await
        .unwrap();
    store.record_key_use(&hash, used_at).await.unwrap();
    let listed = store.list_keys().await.unwrap();
    let find = |id: i64| listed.iter().find(|key| key.id == id).unwrap();
    assert_eq!(find(reader.info.id).scopes, read);
    assert_eq!(
        find(reader.info.id).last_used_at.as_deref(),
        Some(used_at.to_rfc3339().as_str())
    );
    assert_eq!(find(app.info.id).scopes, ingest_read);
    assert_eq!(find(app.info.id).last_used_at, None);
    // Revoking keeps what the key was.
    let revoked = store.revoke_key(reader.info.id).await.unwrap();
    assert_eq!(revoked.scopes, read);
}

async fn a_span_id_shared_by_traces_reads_each_span_by_its_trace(backend: &Backend) {
    let (store, project) = open(backend).await;
    let first = span(
        "one",
        "root",
        None,
        json!({"span_name": "first", "cost": 1.0}),
    );
    let second = span(
        "two",
        "root",
        None,
        json!({"span_name": "second", "cost": 2.0}),
    );
    let only = span("two", "llm-1", Some("root"), json!({"model": "gpt-4o"}));
    store
        .write_spans(project, vec![first.clone()])
        .await
        .unwrap();
    store
        .write_spans(project, vec![second.clone(), only.clone()])
        .await
        .unwrap();
    let root: SpanId = "root".parse().unwrap();
    let get = |trace: &'static str, id: &'static str| {
        let store = &store;
        async move {
            store
                .get_span(
                    project,
                    &TraceId::try_from(trace).unwrap(),
                    &id.parse().unwrap(),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(
        get("one", "root").await.map(|s| s.name),
        Some("first".to_owned())
    );
    assert_eq!(
        get("two", "root").await.map(|s| s.name),
        Some("second".to_owned())
    );
    assert_eq!(get("one", "llm-1").await, None);
    assert_eq!(get("three", "root").await, None);

    // Newest ingested first, bounded by the limit.
    let found = store.find_spans(project, &root, 10).await.unwrap();
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["second", "first"]);
    assert_eq!(store.find_spans(project, &root, 1).await.unwrap().len(), 1);
    let single = store
        .find_spans(project, &"llm-1".parse().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(single, vec![only]);
    assert!(
        store
            .find_spans(project, &"nope".parse().unwrap(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Another project sees none of them.
    let other = store
        .create_project(&"elsewhere".parse().unwrap())
        .await
        .unwrap()
        .id;
    assert!(store.find_spans(other, &root, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .get_span(other, &TraceId::try_from("one").unwrap(), &root)
            .await
            .unwrap(),
        None
    );
}

async fn writes_read_back_with_content_and_aggregates(backend: &Backend) {
    let (store, project) = open(backend).await;
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

async fn resending_replaces_and_keeps_aggregates_right(backend: &Backend) {
    let (store, project) = open(backend).await;
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

async fn concurrent_writers_are_grouped_and_all_committed(backend: &Backend) {
    let (store, project) = open(backend).await;
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

async fn projects_are_isolated_and_data_survives_reopen(backend: &Backend) {
    let (store, project) = open(backend).await;
    let other = store
        .create_key(
            &"other".parse::<ProjectName>().unwrap(),
            "",
            tracehouse_core::Scopes::ADMIN,
        )
        .await
        .unwrap();
    let other = store
        .authenticate(&tracehouse_core::ApiKeyHash::of_secret(&other.secret))
        .await
        .unwrap()
        .unwrap()
        .project;
    assert_ne!(other.id, project);
    store
        .write_spans(project, vec![span("t", "a", None, json!({}))])
        .await
        .unwrap();
    let id = TraceId::try_from("t").unwrap();
    assert!(store.get_trace(other.id, &id).await.unwrap().is_none());
    drop(store);

    let reopened = backend.open().await;
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

async fn revoked_keys_stop_authenticating(backend: &Backend) {
    let (store, _) = open(backend).await;
    let key = store
        .create_key(
            &ProjectName::default_project(),
            "ci",
            tracehouse_core::Scopes::ADMIN,
        )
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

async fn scanning_in_key_order_reads_every_match_once(backend: &Backend) {
    let (store, project) = open(backend).await;
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

/// A filtered list past [`COUNT_CAP`] matches may report a capped count, but only ever a lower
/// bound, and following pages still visits every match exactly once; unfiltered lists and the
/// project's stats count exactly.
async fn capped_counts_are_lower_bounds_and_paging_still_visits_every_match(backend: &Backend) {
    use tracehouse_core::query::{COUNT_CAP, Page};

    let (store, project) = open(backend).await;
    let matching = COUNT_CAP as usize + 137;
    let spans: Vec<Span> = (0..matching + 50)
        .map(|index| {
            let model = if index < matching { "gpt-4o" } else { "other" };
            span(
                &format!("t{:05}", index / 10),
                &format!("s{index:05}"),
                None,
                json!({"model": model, "start_time": 1_735_689_600 + index as i64}),
            )
        })
        .collect();
    for chunk in spans.chunks(2000) {
        store.write_spans(project, chunk.to_vec()).await.unwrap();
    }
    let stats = store.project_stats(project).await.unwrap();
    assert_eq!(stats.spans, (matching + 50) as u64);
    let unfiltered = store
        .list_spans(project, &SpanQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (unfiltered.total, unfiltered.total_is_exact),
        ((matching + 50) as u64, true)
    );

    let filter = equals(SpanColumn::Model, Operator::Equals, "gpt-4o");
    let mut seen = std::collections::BTreeSet::new();
    let mut number = 1;
    loop {
        let listing = store
            .list_spans(
                project,
                &SpanQuery {
                    filter: filter.clone(),
                    page: Page { number, size: 1000 },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            listing.total <= matching as u64,
            "never more than the matches"
        );
        if listing.total_is_exact {
            assert_eq!(listing.total, matching as u64);
        } else {
            assert!(listing.total >= COUNT_CAP, "a capped count reaches the cap");
        }
        for item in &listing.items {
            assert_eq!(item.model.as_deref(), Some("gpt-4o"));
            assert!(
                seen.insert(item.span_id.to_string()),
                "{} twice",
                item.span_id
            );
        }
        // As the API decides whether a next page exists.
        let offset = (number - 1) * 1000;
        if offset + (listing.items.len() as u64) >= listing.total {
            break;
        }
        number += 1;
    }
    assert_eq!(seen.len(), matching, "every match once");
}

/// An equality on one metadata value lists matching spans newest first, each once even when an
/// array holds the value twice, for text and numbers, and with other conditions beside it.
async fn metadata_equality_lists_each_span_once_newest_first(backend: &Backend) {
    let (store, project) = open(backend).await;
    let spans: Vec<Span> = (0..6)
        .map(|index: i64| {
            let tags = if index % 2 == 0 { json!(["x", "x"]) } else { json!(["y"]) };
            span(
                &format!("t{index}"),
                "s",
                None,
                json!({"start_time": 1_735_689_600 + index, "model": if index < 4 { "a" } else { "b" },
                       "metadata": {"tags": tags, "n": index % 3}}),
            )
        })
        .collect();
    store.write_spans(project, spans).await.unwrap();
    let list = |conditions: Vec<Condition<SpanField>>| {
        let store = Arc::clone(&store);
        async move {
            let listing = store
                .list_spans(
                    project,
                    &SpanQuery {
                        filter: SpanFilter {
                            conditions,
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let traces: Vec<String> = listing
                .items
                .iter()
                .map(|s| s.trace_id.to_string())
                .collect();
            (listing.total, traces)
        }
    };
    let metadata = |key: &str, value: FilterValue| Condition {
        field: SpanField::Metadata(vec![key.to_owned()]),
        operator: Operator::Equals,
        values: vec![value],
    };
    assert_eq!(
        list(vec![metadata("tags", FilterValue::Text("x".to_owned()))]).await,
        (3, vec!["t4".to_owned(), "t2".to_owned(), "t0".to_owned()])
    );
    assert_eq!(
        list(vec![metadata("n", FilterValue::Number(1.0))]).await,
        (2, vec!["t4".to_owned(), "t1".to_owned()])
    );
    let model_a = Condition {
        field: SpanField::Column(SpanColumn::Model),
        operator: Operator::Equals,
        values: vec![FilterValue::Text("a".to_owned())],
    };
    assert_eq!(
        list(vec![
            model_a,
            metadata("tags", FilterValue::Text("x".to_owned()))
        ])
        .await,
        (2, vec!["t2".to_owned(), "t0".to_owned()])
    );
}

async fn projects_are_found_and_created_by_name(backend: &Backend) {
    let (store, acme) = open(backend).await;
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
        Some(created.clone())
    );
    let listed = store.list_projects().await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        vec!["acme", "imports"]
    );
    assert!(listed.contains(&created));
}

fn equals(column: SpanColumn, operator: Operator, value: &str) -> SpanFilter {
    SpanFilter {
        conditions: vec![Condition {
            field: SpanField::Column(column),
            operator,
            values: vec![FilterValue::Text(value.to_owned())],
        }],
        ..Default::default()
    }
}

async fn count_spans(
    store: &dyn SpanStore,
    project: tracehouse_core::ProjectId,
    filter: SpanFilter,
) -> u64 {
    store
        .list_spans(
            project,
            &SpanQuery {
                filter,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .total
}

async fn hostile_strings_round_trip_and_match_only_themselves(backend: &Backend) {
    let (store, project) = open(backend).await;
    let hostile = [
        "' OR 1=1 --",
        "a\\'b\\",
        "\"); DROP TABLE spans; --",
        "%_%*[",
        "nul\0byte\ttab\nline",
        "трасса 😀 é",
    ];
    let spans: Vec<Span> = hostile
        .iter()
        .enumerate()
        .map(|(i, text)| {
            span(
                &format!("t'{i}\\\""),
                &format!("s{i}'😀"),
                None,
                json!({"span_name": text, "customer_identifier": text, "input": text,
                       "metadata": {"k": text}, "output": {"nested": [text]}}),
            )
        })
        .collect();
    store.write_spans(project, spans.clone()).await.unwrap();
    for (i, text) in hostile.iter().enumerate() {
        let trace = store
            .get_trace(project, &TraceId::try_from(format!("t'{i}\\\"")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(trace.spans, vec![spans[i].clone()], "{text:?}");
        assert_eq!(trace.summary.name, *text);
        for operator in [
            Operator::Equals,
            Operator::Contains,
            Operator::StartsWith,
            Operator::EndsWith,
        ] {
            assert_eq!(
                count_spans(
                    &*store,
                    project,
                    equals(SpanColumn::CustomerIdentifier, operator, text)
                )
                .await,
                1,
                "{text:?} {operator:?}"
            );
        }
        let metadata = SpanFilter {
            conditions: vec![Condition {
                field: SpanField::Metadata(vec!["k".to_owned()]),
                operator: Operator::Equals,
                values: vec![FilterValue::Text((*text).to_owned())],
            }],
            ..Default::default()
        };
        assert_eq!(count_spans(&*store, project, metadata).await, 1, "{text:?}");
        assert_eq!(
            count_spans(
                &*store,
                project,
                equals(SpanColumn::CustomerIdentifier, Operator::NotIn, text)
            )
            .await,
            hostile.len() as u64 - 1
        );
    }
    assert_eq!(
        count_spans(
            &*store,
            project,
            equals(SpanColumn::Name, Operator::Contains, "'")
        )
        .await,
        2
    );
    assert_eq!(
        count_spans(
            &*store,
            project,
            equals(SpanColumn::Name, Operator::Contains, "\\")
        )
        .await,
        1
    );
    assert_eq!(
        count_spans(
            &*store,
            project,
            equals(SpanColumn::Name, Operator::Equals, "%")
        )
        .await,
        0
    );
    let search = SpanFilter {
        search: Some("ТРАССА".to_owned()),
        ..Default::default()
    };
    assert_eq!(count_spans(&*store, project, search).await, 1);
}

async fn deleted_traces_vanish_and_can_be_sent_again(backend: &Backend) {
    let (store, project) = open(backend).await;
    let id = TraceId::try_from("gone").unwrap();
    store
        .write_spans(
            project,
            vec![
                span("gone", "a", None, json!({"cost": 1.0})),
                span("gone", "b", Some("a"), json!({"cost": 2.0})),
                span("kept", "a", None, json!({})),
            ],
        )
        .await
        .unwrap();
    assert!(store.delete_trace(project, &id).await.unwrap());
    assert!(store.get_trace(project, &id).await.unwrap().is_none());
    assert!(!store.delete_trace(project, &id).await.unwrap());
    assert_eq!(
        store.project_stats(project).await.unwrap(),
        tracehouse_core::ProjectStats {
            traces: 1,
            spans: 1
        }
    );
    assert_eq!(
        count_spans(&*store, project, SpanFilter::default()).await,
        1
    );
    assert!(
        store
            .get_span(project, &id, &"b".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // A span sent again after the delete is new data; its deleted sibling stays deleted.
    store
        .write_spans(project, vec![span("gone", "b", None, json!({"cost": 5.0}))])
        .await
        .unwrap();
    let trace = store.get_trace(project, &id).await.unwrap().unwrap();
    assert_eq!(trace.summary.span_count, 1);
    assert_eq!(trace.summary.total_cost, 5.0);
}

async fn statistics_and_span_lists_see_one_copy_per_span(backend: &Backend) {
    let (store, project) = open(backend).await;
    for cost in [1.0, 2.0] {
        store
            .write_spans(
                project,
                vec![span("t", "a", None, json!({"cost": cost, "latency": 3.0}))],
            )
            .await
            .unwrap();
    }
    // The same span twice in one request: the last copy wins.
    store
        .write_spans(
            project,
            vec![
                span("t", "a", None, json!({"cost": 3.0, "latency": 3.0})),
                span("t", "a", None, json!({"cost": 4.0, "latency": 3.0})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.project_stats(project).await.unwrap(),
        tracehouse_core::ProjectStats {
            traces: 1,
            spans: 1
        }
    );
    let listed = store
        .list_spans(project, &SpanQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
    assert_eq!(listed.items[0].cost, Some(4.0));
    let statistics = store
        .span_statistics(project, &SpanFilter::default())
        .await
        .unwrap();
    assert_eq!(statistics.number_of_requests, 1);
    assert_eq!(statistics.total_cost, 4.0);
    // Unfiltered, SQLite answers from its rollups: percentiles are latency bins, within 1 %.
    let near_3 = |latency: Option<f64>| latency.is_some_and(|l| (l / 3.0 - 1.0).abs() < 0.01);
    assert!(near_3(statistics.p50_latency), "{statistics:?}");
    assert!(near_3(statistics.p99_latency), "{statistics:?}");
    assert_eq!(statistics.avg_latency, Some(3.0));
    let empty = store
        .span_statistics(
            project,
            &equals(SpanColumn::Model, Operator::Equals, "none"),
        )
        .await
        .unwrap();
    assert_eq!(empty.number_of_requests, 0);
    assert_eq!(empty.avg_latency, None);
    assert_eq!(empty.p50_latency, None);
    let trace = store
        .get_trace(project, &TraceId::try_from("t").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trace.summary.total_cost, 4.0);
    assert_eq!(trace.spans.len(), 1);
}

async fn floats_round_trip_bit_for_bit(backend: &Backend) {
    let (store, project) = open(backend).await;
    // Values a decimal parser easily gets one ulp wrong, and a subnormal.
    let costs = [
        2.0000000000000002e-7,
        0.1 + 0.2,
        5e-324,
        1.7976931348623157e308,
    ];
    let spans: Vec<Span> = costs
        .iter()
        .enumerate()
        .map(|(i, cost)| {
            span(
                "t",
                &format!("s{i}"),
                None,
                json!({"cost": cost, "latency": 0.774699}),
            )
        })
        .collect();
    store.write_spans(project, spans).await.unwrap();
    let trace = store
        .get_trace(project, &TraceId::try_from("t").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut stored: Vec<f64> = trace.spans.iter().map(|s| s.cost.unwrap()).collect();
    stored.sort_by(f64::total_cmp);
    let mut expected = costs.to_vec();
    expected.sort_by(f64::total_cmp);
    assert_eq!(stored, expected);
    assert!(trace.spans.iter().all(|s| s.latency == 0.774699));
    for cost in costs {
        let filter = SpanFilter {
            conditions: vec![Condition {
                field: SpanField::Column(SpanColumn::Cost),
                operator: Operator::Equals,
                values: vec![FilterValue::Number(cost)],
            }],
            ..Default::default()
        };
        assert_eq!(count_spans(&*store, project, filter).await, 1, "{cost:e}");
    }
}

/// The cluster backend really shards: traces land on both nodes, and each trace's spans on one.
#[tokio::test]
async fn cluster_spreads_traces_over_both_shards() {
    let Some(backend) = Backend::cluster() else {
        return;
    };
    let (store, project) = open(&backend).await;
    let spans: Vec<Span> = (0..40)
        .flat_map(|trace| {
            (0..3)
                .map(move |index| span(&format!("t{trace}"), &format!("s{index}"), None, json!({})))
        })
        .collect();
    store.write_spans(project, spans).await.unwrap();
    let Backend::Cluster { urls, database } = &backend else {
        unreachable!()
    };
    let mut per_node = Vec::new();
    for url in urls {
        let answer = reqwest::Client::new()
            .post(format!("{url}/?database={database}"))
            .body("SELECT count(), uniqExact(trace_id) FROM span_versions_local FINAL WHERE deleted = 0 FORMAT TSV")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let numbers: Vec<u64> = answer
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        per_node.push((numbers[0], numbers[1]));
    }
    assert!(per_node.iter().all(|(spans, _)| *spans > 0), "{per_node:?}");
    assert_eq!(per_node.iter().map(|(spans, _)| spans).sum::<u64>(), 120);
    assert_eq!(
        per_node.iter().map(|(_, traces)| traces).sum::<u64>(),
        40,
        "no trace split"
    );
    assert_eq!(store.project_stats(project).await.unwrap().spans, 120);
    backend.cleanup().await;
}

/// The SQLite writer summarizes a trace new in a request from the spans in hand and an
/// existing one from what is stored; both must give what one fresh computation gives, and
/// a span replaced within the same request must leave no trace of its first version.
async fn a_trace_reads_the_same_however_its_spans_arrived(backend: &Backend) {
    let (store, project) = open(backend).await;
    let spans = |trace: &str, first_answer: &str| {
        vec![
            span(
                trace,
                "root",
                None,
                json!({"span_name": "agent.workflow", "cost": 1.0}),
            ),
            span(
                trace,
                "llm",
                Some("root"),
                json!({"model": "gpt-4o", "cost": 0.25, "output": first_answer}),
            ),
            span(
                trace,
                "tool",
                Some("root"),
                json!({"span_name": "lookup.tool", "customer_identifier": "ann"}),
            ),
            // The same span again: it replaces the one above.
            span(
                trace,
                "llm",
                Some("root"),
                json!({"model": "claude-3-5-sonnet", "cost": 0.5, "output": "walrus"}),
            ),
        ]
    };
    // "whole" arrives in one request; "split" in two, the second replacing and adding.
    store
        .write_spans(project, spans("whole", "narwhal"))
        .await
        .unwrap();
    let split = spans("split", "narwhal");
    store
        .write_spans(project, split[..2].to_vec())
        .await
        .unwrap();
    store
        .write_spans(project, split[2..].to_vec())
        .await
        .unwrap();

    for trace in ["whole", "split"] {
        let stored = store
            .get_trace(project, &TraceId::try_from(trace).unwrap())
            .await
            .unwrap()
            .unwrap();
        let summary = &stored.summary;
        assert_eq!(summary.span_count, 3, "{trace}");
        assert_eq!(summary.total_cost, 1.5, "{trace}");
        assert_eq!(summary.name, "agent.workflow", "{trace}");
        assert_eq!(summary.root_span_id.as_ref().unwrap().as_str(), "root");
        assert_eq!(
            summary.models,
            vec!["claude-3-5-sonnet".to_owned()],
            "{trace}"
        );
        assert_eq!(
            summary.customer_identifier.as_deref(),
            Some("ann"),
            "{trace}"
        );
        assert_eq!(summary.llm_call_count, 1, "{trace}");
    }

    // The replaced version is gone from search and from the trace filters; the new one is in.
    let search = |text: &str| SpanFilter {
        search: Some(text.to_owned()),
        ..Default::default()
    };
    assert_eq!(count_spans(&*store, project, search("narwhal")).await, 0);
    assert_eq!(count_spans(&*store, project, search("walrus")).await, 2);
    let traces_with_model = |model: &str| {
        let store = Arc::clone(&store);
        let filter = equals(SpanColumn::Model, Operator::Equals, model);
        async move {
            store
                .list_traces(
                    project,
                    &TraceQuery {
                        spans: filter,
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .total
        }
    };
    assert_eq!(traces_with_model("gpt-4o").await, 0);
    assert_eq!(traces_with_model("claude-3-5-sonnet").await, 2);
    // A trace list searched by the spans' text sees the latest content only.
    for (word, traces) in [("narwhal", 0), ("walrus", 2)] {
        let listing = store
            .list_traces(
                project,
                &TraceQuery {
                    spans: search(word),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(listing.total, traces, "{word}");
        assert_eq!(listing.items.len() as u64, traces, "{word}");
    }
}

async fn list_items_carry_the_latest_root_input_whatever_the_root_kind(backend: &Backend) {
    let (store, project) = open(backend).await;
    let at = |second: u32| format!("2025-01-01T00:00:{second:02}Z");
    let write = |spans: Vec<Span>| {
        let store = Arc::clone(&store);
        async move { store.write_spans(project, spans).await.unwrap() }
    };
    write(vec![
        span(
            "a",
            "root",
            None,
            json!({"input": "a-old", "start_time": at(3)}),
        ),
        span(
            "b",
            "x",
            Some("missing"),
            json!({"input": "b-in", "start_time": at(2)}),
        ),
        span(
            "b",
            "y",
            Some("missing"),
            json!({"input": "b-later", "start_time": at(5)}),
        ),
        span(
            "c",
            "root",
            None,
            json!({"input": "c-old", "start_time": at(1)}),
        ),
    ])
    .await;
    // "a" keeps a parentless root with new content; "c"'s root now names a parent that is not
    // there, so it is an orphan root whose latest content is not that of a parentless span.
    write(vec![
        span(
            "a",
            "root",
            None,
            json!({"input": "a-new", "start_time": at(3)}),
        ),
        span(
            "c",
            "root",
            Some("elsewhere"),
            json!({"input": "c-new", "start_time": at(1)}),
        ),
    ])
    .await;
    let listing = store
        .list_traces(project, &TraceQuery::default())
        .await
        .unwrap();
    let inputs: Vec<(String, Option<serde_json::Value>)> = listing
        .items
        .iter()
        .map(|item| {
            (
                item.summary.trace_id.as_str().to_owned(),
                item.input.clone(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        vec![
            ("a".to_owned(), Some(json!("a-new"))),
            ("b".to_owned(), Some(json!("b-in"))),
            ("c".to_owned(), Some(json!("c-new"))),
        ]
    );
}

async fn a_span_condition_finds_a_trace_by_its_start_not_the_matching_spans(backend: &Backend) {
    let (store, project) = open(backend).await;
    // The trace starts at second 0; its only gpt-4o span starts at second 10.
    store
        .write_spans(
            project,
            vec![
                span(
                    "t",
                    "root",
                    None,
                    json!({"start_time": "2025-01-01T00:00:00Z"}),
                ),
                span(
                    "t",
                    "llm",
                    Some("root"),
                    json!({"model": "gpt-4o", "start_time": "2025-01-01T00:00:10Z"}),
                ),
            ],
        )
        .await
        .unwrap();
    let listing = store
        .list_traces(
            project,
            &TraceQuery {
                spans: equals(SpanColumn::Model, Operator::Equals, "gpt-4o"),
                start_to: Some(tracehouse_core::Timestamp::parse("2025-01-01T00:00:05Z").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listing.total, 1);
    assert_eq!(listing.items[0].summary.trace_id.as_str(), "t");
}
