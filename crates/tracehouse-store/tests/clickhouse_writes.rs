//! The append-only ClickHouse write path (schema versions 2 and 3): several servers writing one
//! trace at once, re-sent spans, deleted traces sent again, and the in-place upgrades of
//! databases created by version-1 and version-2 releases. Each test uses a fresh database of its own on the server
//! named by `TRACEHOUSE_CLICKHOUSE_URL`; without it the tests are skipped, except under CI
//! (`CI=true`) or `TRACEHOUSE_CLICKHOUSE_TESTS=required`, where they fail.
// Test helpers outside #[test] functions may panic on broken test setup; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{clickhouse_url, span};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracehouse_core::query::{SpanQuery, TraceQuery};
use tracehouse_core::{
    ApiKeyHash, Project, ProjectId, ProjectName, Span, SpanStore, Timestamp, TraceId,
    TraceListItem, TraceSummary, summarize,
};
use tracehouse_store::{ClickHouseConfig, ClickHouseStore};

/// A fresh database on the test server; opening it twice gives two "servers" sharing it.
struct TestDatabase {
    url: String,
    database: String,
}

impl TestDatabase {
    /// A fresh database name on the test server, or `None` (with a skip line) when no server
    /// is configured and none is required.
    fn new() -> Option<Self> {
        let url = clickhouse_url()?;
        let database = format!("th_writes_{}_{}", std::process::id(), fastrand::u64(..));
        Some(Self { url, database })
    }

    async fn open(&self) -> ClickHouseStore {
        ClickHouseStore::open(ClickHouseConfig::new(
            self.url.clone(),
            self.database.clone(),
        ))
        .await
        .unwrap()
    }

    /// Runs one statement on the server (outside any database) and returns its answer.
    async fn sql(&self, statement: &str) -> String {
        node_sql(&self.url, statement).await
    }

    /// Inserts rows into a table of this database as JSONEachRow.
    async fn insert(&self, table: &str, rows: &[Value]) {
        let body: String = rows.iter().map(|row| format!("{row}\n")).collect();
        let query = format!("INSERT INTO {}.{table} FORMAT JSONEachRow", self.database);
        let response = reqwest::Client::new()
            .post(format!("{}/", self.url))
            .query(&[("query", query.as_str())])
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{query}\n-> {status}: {text}");
    }

    /// The tables (and views) of this database.
    async fn tables(&self) -> BTreeSet<String> {
        self.sql(&format!("SHOW TABLES FROM {}", self.database))
            .await
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Drops the database; a failed test leaves it for inspection.
    async fn cleanup(self) {
        let _ = reqwest::Client::new()
            .post(format!("{}/", self.url))
            .body(format!("DROP DATABASE IF EXISTS {}", self.database))
            .send()
            .await;
    }
}

fn trace_id(raw: &str) -> TraceId {
    TraceId::try_from(raw).unwrap()
}

/// Asserts a stored summary equals the expected one, the cost within rounding (a sum in
/// another order) and every other field exactly.
fn assert_summary(got: &TraceSummary, want: &TraceSummary, context: &str) {
    assert_eq!(got.span_count, want.span_count, "{context}: span_count");
    assert!(
        (got.total_cost - want.total_cost).abs() <= 1e-12,
        "{context}: total_cost {} != {}",
        got.total_cost,
        want.total_cost
    );
    assert_eq!(
        got.total_prompt_tokens, want.total_prompt_tokens,
        "{context}: total_prompt_tokens"
    );
    assert_eq!(
        got.total_completion_tokens, want.total_completion_tokens,
        "{context}: total_completion_tokens"
    );
    assert_eq!(
        got.total_tokens, want.total_tokens,
        "{context}: total_tokens"
    );
    assert_eq!(got.error_count, want.error_count, "{context}: error_count");
    assert_eq!(
        got.llm_call_count, want.llm_call_count,
        "{context}: llm_call_count"
    );
    assert_eq!(
        got.root_span_id, want.root_span_id,
        "{context}: root_span_id"
    );
    assert_eq!(got.name, want.name, "{context}: name");
    assert_eq!(got.start, want.start, "{context}: start");
    assert_eq!(got.end, want.end, "{context}: end");
    let mut same_cost = got.clone();
    same_cost.total_cost = want.total_cost;
    assert_eq!(&same_cost, want, "{context}: whole summary");
}

/// The listing of a project's traces with the default query.
async fn list(store: &ClickHouseStore, project: ProjectId) -> (u64, Vec<TraceListItem>) {
    let listing = store
        .list_traces(project, &TraceQuery::default())
        .await
        .unwrap();
    assert!(listing.total_is_exact);
    (listing.total, listing.items)
}

/// The ids of a stored trace's spans.
fn span_ids(spans: &[Span]) -> BTreeSet<String> {
    spans
        .iter()
        .map(|s| s.span_id.as_str().to_owned())
        .collect()
}

/// The stored span `id` of a trace.
fn stored_span<'a>(spans: &'a [Span], id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.span_id.as_str() == id)
        .unwrap_or_else(|| panic!("span {id} is missing"))
}

/// A trace of 40 spans: a root, 39 children (some nested a level deeper) with costs, tokens
/// and two models on the model calls, one error, and one child ending after the root.
fn forty_spans() -> Vec<Span> {
    let mut spans = vec![span(
        "big",
        "root",
        None,
        json!({"span_name": "agent.workflow", "latency": 60.0, "environment": "prod",
            "customer_identifier": "ann", "input": "what is a walrus?", "output": "a mammal",
            "metadata": {"team": "search", "attempt": 2}}),
    )];
    for i in 1..40u32 {
        let parent = if i > 30 { "c05" } else { "root" };
        let mut extra = json!({
            "start_time": format!("2025-01-01T00:00:{i:02}Z"),
            "latency": if i == 39 { 90.0 } else { 1.5 },
            "cost": f64::from(i) * 0.0013,
        });
        let fields = extra.as_object_mut().unwrap();
        match i % 3 {
            0 => {
                fields.insert("model".into(), json!("gpt-4o-mini"));
                fields.insert("log_type".into(), json!("chat"));
                fields.insert("prompt_tokens".into(), json!(i * 11));
                fields.insert("completion_tokens".into(), json!(i * 7));
            }
            1 => {
                fields.insert("model".into(), json!("claude-3-5-sonnet"));
                fields.insert("log_type".into(), json!("chat"));
                fields.insert("prompt_tokens".into(), json!(i * 13));
                fields.insert("completion_tokens".into(), json!(i * 5));
            }
            _ => {
                fields.insert("span_name".into(), json!(format!("lookup{i}.tool")));
            }
        }
        if i == 13 {
            fields.insert("status".into(), json!("error"));
            fields.insert("error_message".into(), json!("rate limited"));
        }
        spans.push(span("big", &format!("c{i:02}"), Some(parent), extra));
    }
    spans
}

/// Writes `spans` through `store` in requests of `per_request` spans, one after another.
async fn write_in_requests(
    store: &ClickHouseStore,
    project: ProjectId,
    spans: Vec<Span>,
    per_request: usize,
) -> u64 {
    let mut written = 0;
    for chunk in spans.chunks(per_request) {
        written += store
            .write_spans(project, chunk.to_vec())
            .await
            .unwrap()
            .spans_written;
    }
    written
}

#[tokio::test]
async fn two_stores_writing_one_trace_at_once_agree_with_summarize() {
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let first = db.open().await;
    let second = db.open().await;
    let project = common::acme_project(&first).await;

    let all = forty_spans();
    assert_eq!(all.len(), 40);
    let want = summarize(&all).unwrap();
    // Sanity of the fixture: the expectation really covers what the test is about.
    assert_eq!(want.span_count, 40);
    assert_eq!(want.error_count, 1);
    assert_eq!(want.llm_call_count, 26);
    assert_eq!(want.root_span_id.as_ref().unwrap().as_str(), "root");
    assert_eq!(
        want.models,
        vec!["claude-3-5-sonnet".to_owned(), "gpt-4o-mini".to_owned()]
    );

    // Every other child through one server; the rest, then the root, through the other.
    let mut through_first = Vec::new();
    let mut through_second = Vec::new();
    for (index, child) in all[1..].iter().enumerate() {
        if index % 2 == 0 {
            through_first.push(child.clone());
        } else {
            through_second.push(child.clone());
        }
    }
    through_second.push(all[0].clone());
    let (written_first, written_second) = tokio::join!(
        write_in_requests(&first, project, through_first, 4),
        write_in_requests(&second, project, through_second, 3),
    );
    assert_eq!(written_first + written_second, 40);

    let id = trace_id("big");
    for (which, store) in [("first", &first), ("second", &second)] {
        let trace = store.get_trace(project, &id).await.unwrap().unwrap();
        assert_summary(&trace.summary, &want, &format!("get_trace on {which}"));
        assert_eq!(trace.spans.len(), 40, "{which}");
        assert_eq!(span_ids(&trace.spans), span_ids(&all), "{which}");
        let error = stored_span(&trace.spans, "c13");
        assert_eq!(error.error_message.as_deref(), Some("rate limited"));

        let (total, items) = list(store, project).await;
        assert_eq!(total, 1, "{which}");
        assert_eq!(items.len(), 1, "{which}");
        assert_summary(&items[0].summary, &want, &format!("list_traces on {which}"));
        assert_eq!(items[0].input, Some(json!("what is a walrus?")), "{which}");
        assert_eq!(items[0].output, Some(json!("a mammal")), "{which}");
        assert_eq!(
            items[0].metadata,
            Some(json!({"team": "search", "attempt": 2})),
            "{which}"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_resent_span_counts_once_with_its_latest_values() {
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let store = db.open().await;
    let project = common::acme_project(&store).await;
    let id = trace_id("again");
    let root = span(
        "again",
        "r",
        None,
        json!({"span_name": "agent.workflow", "cost": 1.0}),
    );
    let a = |cost: f64, prompt: u64, completion: u64| {
        span(
            "again",
            "a",
            Some("r"),
            json!({"model": "gpt-4o", "log_type": "chat", "cost": cost,
                "prompt_tokens": prompt, "completion_tokens": completion,
                "start_time": "2025-01-01T00:00:01Z"}),
        )
    };
    let b = |cost: f64, prompt: u64, completion: u64| {
        span(
            "again",
            "b",
            Some("r"),
            json!({"model": "gpt-4o", "log_type": "chat", "cost": cost,
                "prompt_tokens": prompt, "completion_tokens": completion,
                "start_time": "2025-01-01T00:00:02Z"}),
        )
    };
    let c = span(
        "again",
        "c",
        Some("r"),
        json!({"span_name": "lookup.tool", "start_time": "2025-01-01T00:00:03Z"}),
    );
    let d = |model: &str, cost: f64, prompt: u64, completion: u64| {
        span(
            "again",
            "d",
            Some("r"),
            json!({"model": model, "log_type": "chat", "cost": cost,
                "prompt_tokens": prompt, "completion_tokens": completion,
                "start_time": "2025-01-01T00:00:04Z"}),
        )
    };

    // One request carrying `d` twice: the later copy is the one stored.
    store
        .write_spans(
            project,
            vec![
                root.clone(),
                a(0.5, 100, 50),
                b(0.25, 10, 10),
                c.clone(),
                d("o1-preview", 9.0, 900, 900),
                d("gpt-4o-mini", 0.125, 1, 2),
            ],
        )
        .await
        .unwrap();
    let trace = store.get_trace(project, &id).await.unwrap().unwrap();
    let want = summarize(&[
        root.clone(),
        a(0.5, 100, 50),
        b(0.25, 10, 10),
        c.clone(),
        d("gpt-4o-mini", 0.125, 1, 2),
    ])
    .unwrap();
    assert_summary(&trace.summary, &want, "after the first write");
    assert_eq!(trace.summary.span_count, 5);
    assert_eq!(trace.summary.total_cost, 1.875);
    assert_eq!(trace.summary.total_prompt_tokens, 111);
    assert_eq!(trace.summary.total_completion_tokens, 62);
    assert_eq!(
        trace.summary.models,
        vec!["gpt-4o".to_owned(), "gpt-4o-mini".to_owned()]
    );
    assert_eq!(trace.spans.len(), 5);
    assert_eq!(stored_span(&trace.spans, "d").cost, Some(0.125));

    // `a` again in a later request; then `b` twice in one request, the later copy winning.
    store
        .write_spans(project, vec![a(2.0, 300, 100)])
        .await
        .unwrap();
    store
        .write_spans(project, vec![b(7.0, 70, 70), b(0.0625, 5, 6)])
        .await
        .unwrap();

    let latest = [
        root,
        a(2.0, 300, 100),
        b(0.0625, 5, 6),
        c,
        d("gpt-4o-mini", 0.125, 1, 2),
    ];
    let want = summarize(&latest).unwrap();
    let trace = store.get_trace(project, &id).await.unwrap().unwrap();
    assert_summary(&trace.summary, &want, "get_trace after re-sending");
    assert_eq!(trace.summary.span_count, 5);
    assert_eq!(trace.summary.total_cost, 3.1875);
    assert_eq!(trace.summary.total_prompt_tokens, 306);
    assert_eq!(trace.summary.total_completion_tokens, 108);
    assert_eq!(trace.spans.len(), 5);
    assert_eq!(span_ids(&trace.spans), span_ids(&latest));
    let stored_a = stored_span(&trace.spans, "a");
    assert_eq!(stored_a.cost, Some(2.0));
    assert_eq!(stored_a.usage.prompt_tokens, Some(300));
    let stored_b = stored_span(&trace.spans, "b");
    assert_eq!(stored_b.cost, Some(0.0625));
    assert_eq!(stored_b.usage.completion_tokens, Some(6));

    let (total, items) = list(&store, project).await;
    assert_eq!(total, 1);
    assert_eq!(items.len(), 1);
    assert_summary(&items[0].summary, &want, "list_traces after re-sending");

    // Span lists see one copy of each span too.
    let spans = store
        .list_spans(project, &SpanQuery::default())
        .await
        .unwrap();
    assert_eq!(spans.total, 5);
    assert_eq!(span_ids(&spans.items), span_ids(&latest));
    db.cleanup().await;
}

#[tokio::test]
async fn a_deleted_trace_can_be_sent_again() {
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let store = db.open().await;
    let project = common::acme_project(&store).await;
    let gone = trace_id("gone");
    let spans = vec![
        span(
            "gone",
            "a",
            None,
            json!({"span_name": "agent.workflow", "cost": 1.0}),
        ),
        span(
            "gone",
            "b",
            Some("a"),
            json!({"model": "gpt-4o", "log_type": "chat", "cost": 2.0, "prompt_tokens": 40,
                "completion_tokens": 4, "start_time": "2025-01-01T00:00:05Z"}),
        ),
        span(
            "gone",
            "c",
            Some("a"),
            json!({"status": "error", "cost": 0.5, "start_time": "2025-01-01T00:00:07Z"}),
        ),
    ];
    store.write_spans(project, spans.clone()).await.unwrap();
    store
        .write_spans(
            project,
            vec![span(
                "kept",
                "x",
                None,
                json!({"start_time": "2025-01-02T00:00:00Z", "cost": 0.25}),
            )],
        )
        .await
        .unwrap();
    let (total, items) = list(&store, project).await;
    assert_eq!(total, 2);
    assert_eq!(items.len(), 2);
    let before = store.get_trace(project, &gone).await.unwrap().unwrap();
    assert_eq!(before.summary.span_count, 3);
    assert_eq!(before.summary.total_cost, 3.5);

    assert!(store.delete_trace(project, &gone).await.unwrap());
    assert!(store.get_trace(project, &gone).await.unwrap().is_none());
    assert!(!store.delete_trace(project, &gone).await.unwrap());
    let (total, items) = list(&store, project).await;
    assert_eq!(total, 1);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].summary.trace_id.as_str(), "kept");
    assert_eq!(items[0].summary.total_cost, 0.25);

    // `b` and `c` again with the same ids: the trace is back with only them; `a` stays deleted.
    let resent = spans[1..].to_vec();
    store.write_spans(project, resent.clone()).await.unwrap();
    let want = summarize(&resent).unwrap();
    let trace = store.get_trace(project, &gone).await.unwrap().unwrap();
    assert_summary(&trace.summary, &want, "get_trace after sending again");
    assert_eq!(trace.summary.span_count, 2);
    assert_eq!(trace.summary.total_cost, 2.5);
    assert_eq!(trace.summary.error_count, 1);
    assert_eq!(trace.summary.llm_call_count, 1);
    assert_eq!(trace.summary.total_prompt_tokens, 40);
    // The parent is gone, so the earliest orphan is the root.
    assert_eq!(trace.summary.root_span_id.as_ref().unwrap().as_str(), "b");
    assert_eq!(
        span_ids(&trace.spans),
        BTreeSet::from(["b".to_owned(), "c".to_owned()])
    );

    let (total, items) = list(&store, project).await;
    assert_eq!(total, 2);
    let listed = items
        .iter()
        .find(|item| item.summary.trace_id == gone)
        .expect("the trace sent again is listed");
    assert_summary(&listed.summary, &want, "list_traces after sending again");
    db.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Version 1, as released: a frozen copy of what older tracehouse releases created. Never edit
// these to follow the current schema; they are what an upgrade starts from.

const V1_PROJECTS: &str = "(
        id Int64,
        name String,
        created_at_ns Int64
    ) ENGINE = ReplacingMergeTree ORDER BY name";

const V1_API_KEYS: &str = "(
        id Int64,
        project_id Int64,
        project_name String,
        key_hash String,
        prefix String,
        label String,
        created_at_ns Int64,
        revoked_at_ns Nullable(Int64),
        version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY key_hash";

const V1_SPANS: &str = "(
        project_id Int64,
        trace_id String,
        span_id String,
        parent_id Nullable(String),
        name String,
        log_type String,
        start_ns Int64,
        end_ns Int64,
        latency Float64,
        times_inferred UInt8,
        model Nullable(String),
        provider_id Nullable(String),
        status String,
        status_code Nullable(Int64),
        error_message Nullable(String),
        prompt_tokens Nullable(UInt64),
        completion_tokens Nullable(UInt64),
        total_tokens Nullable(UInt64),
        cost Nullable(Float64),
        customer_identifier Nullable(String),
        session_identifier Nullable(String),
        thread_identifier Nullable(String),
        trace_group_identifier Nullable(String),
        environment Nullable(String),
        workflow_name Nullable(String),
        path Nullable(String),
        content String,
        trace_name Nullable(String),
        search_text String,
        meta_keys Array(String),
        meta_text Array(String),
        meta_num Array(Float64),
        meta_is_num Array(UInt8),
        ingested_ns Int64,
        first_seen_ns Int64,
        version UInt64,
        deleted UInt8
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(toDateTime(intDiv(start_ns, 1000000000)))
    ORDER BY (project_id, trace_id, span_id)
    SETTINGS index_granularity = 1024";

const V1_TRACES: &str = "(
        project_id Int64,
        trace_id String,
        root_span_id Nullable(String),
        name String,
        start_ns Int64,
        end_ns Int64,
        duration Float64,
        span_count UInt64,
        llm_call_count UInt64,
        error_count UInt64,
        total_prompt_tokens UInt64,
        total_completion_tokens UInt64,
        total_tokens UInt64,
        total_cost Float64,
        environment Nullable(String),
        customer_identifier Nullable(String),
        session_identifier Nullable(String),
        thread_identifier Nullable(String),
        trace_group_identifier Nullable(String),
        models Array(String),
        first_seen_ns Int64,
        version UInt64,
        deleted UInt8
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(toDateTime(intDiv(start_ns, 1000000000)))
    ORDER BY (project_id, trace_id)
    SETTINGS index_granularity = 1024";

/// The project id version 1 derived from a project's name.
fn v1_project_id(name: &str) -> i64 {
    let digest = Sha256::digest(format!("tracehouse-project\0{name}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

/// A `spans` row as version 1 wrote it for `span` (JSONEachRow).
fn v1_span_row(project: i64, span: &Span, first_seen_ns: i64, version: u64) -> Value {
    let text = |key: &str| {
        span.content
            .get(key)
            .map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    json!({
        "project_id": project,
        "trace_id": span.trace_id.as_str(),
        "span_id": span.span_id.as_str(),
        "parent_id": span.parent_id.as_ref().map(|id| id.as_str()),
        "name": span.name,
        "log_type": span.log_type.as_str(),
        "start_ns": span.start.unix_nanos(),
        "end_ns": span.end.unix_nanos(),
        "latency": span.latency,
        "times_inferred": u8::from(span.times_inferred),
        "model": span.model,
        "provider_id": span.provider_id,
        "status": span.status.as_str(),
        "status_code": span.status_code,
        "error_message": span.error_message,
        "prompt_tokens": span.usage.prompt_tokens,
        "completion_tokens": span.usage.completion_tokens,
        "total_tokens": span.usage.total_tokens,
        "cost": span.cost,
        "customer_identifier": span.grouping.customer_identifier,
        "session_identifier": span.grouping.session_identifier,
        "thread_identifier": span.grouping.thread_identifier,
        "trace_group_identifier": span.grouping.trace_group_identifier,
        "environment": span.grouping.environment,
        "workflow_name": span.workflow_name,
        "path": span.path,
        "content": serde_json::to_string(&span.content).unwrap(),
        "trace_name": span.content.get("trace_name").and_then(Value::as_str),
        "search_text": format!("{}\n{}\n{}", span.name, text("input"), text("output")),
        "meta_keys": [],
        "meta_text": [],
        "meta_num": [],
        "meta_is_num": [],
        "ingested_ns": first_seen_ns,
        "first_seen_ns": first_seen_ns,
        "version": version,
        "deleted": 0,
    })
}

/// A `traces` row as version 1 wrote it (JSONEachRow).
fn v1_trace_row(project: i64, summary: &TraceSummary, first_seen_ns: i64, version: u64) -> Value {
    json!({
        "project_id": project,
        "trace_id": summary.trace_id.as_str(),
        "root_span_id": summary.root_span_id.as_ref().map(|id| id.as_str()),
        "name": summary.name,
        "start_ns": summary.start.unix_nanos(),
        "end_ns": summary.end.unix_nanos(),
        "duration": summary.duration,
        "span_count": summary.span_count,
        "llm_call_count": summary.llm_call_count,
        "error_count": summary.error_count,
        "total_prompt_tokens": summary.total_prompt_tokens,
        "total_completion_tokens": summary.total_completion_tokens,
        "total_tokens": summary.total_tokens,
        "total_cost": summary.total_cost,
        "environment": summary.environment,
        "customer_identifier": summary.customer_identifier,
        "session_identifier": summary.session_identifier,
        "thread_identifier": summary.thread_identifier,
        "trace_group_identifier": summary.trace_group_identifier,
        "models": summary.models,
        "first_seen_ns": first_seen_ns,
        "version": version,
        "deleted": 0,
    })
}

#[tokio::test]
async fn a_version_1_database_upgrades_in_place() {
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let database = db.database.clone();

    // The database as a version-1 release left it.
    db.sql(&format!("CREATE DATABASE {database}")).await;
    for (table, body) in [
        ("projects", V1_PROJECTS),
        ("api_keys", V1_API_KEYS),
        ("spans", V1_SPANS),
        ("traces", V1_TRACES),
    ] {
        db.sql(&format!(
            "CREATE TABLE IF NOT EXISTS {database}.{table} {body}"
        ))
        .await;
    }
    db.sql(&format!(
        "CREATE TABLE IF NOT EXISTS {database}.schema_migrations (version UInt32, applied_ns Int64) \
         ENGINE = MergeTree ORDER BY version"
    ))
    .await;
    let t0: i64 = 1_735_700_000_000_000_000;
    db.insert(
        "schema_migrations",
        &[json!({"version": 1, "applied_ns": t0})],
    )
    .await;

    let name = "legacy";
    let project_id = v1_project_id(name);
    db.insert(
        "projects",
        &[json!({"id": project_id, "name": name, "created_at_ns": t0})],
    )
    .await;
    let secret = "th_legacy_0123456789abcdef";
    db.insert(
        "api_keys",
        &[
            json!({"id": 7, "project_id": project_id, "project_name": name,
            "key_hash": hex::encode(ApiKeyHash::of_secret(secret).as_bytes()),
            "prefix": &secret[..10], "label": "old key", "created_at_ns": t0,
            "revoked_at_ns": null, "version": 1}),
        ],
    )
    .await;

    // Costs are binary fractions: JSONEachRow parsing on old servers is inexact for others.
    let root = span(
        "old",
        "root",
        None,
        json!({"span_name": "agent.workflow", "latency": 30.0, "cost": 1.0,
            "environment": "staging", "input": "hello", "output": "bye"}),
    );
    let llm_v1 = span(
        "old",
        "llm",
        Some("root"),
        json!({"model": "gpt-4o", "log_type": "chat", "cost": 0.5, "prompt_tokens": 10,
            "completion_tokens": 5, "start_time": "2025-01-01T00:00:02Z"}),
    );
    let llm_v2 = span(
        "old",
        "llm",
        Some("root"),
        json!({"model": "claude-3-5-sonnet", "log_type": "chat", "cost": 0.75,
            "prompt_tokens": 20, "completion_tokens": 7, "start_time": "2025-01-01T00:00:02Z"}),
    );
    let tool = span(
        "old",
        "tool",
        Some("root"),
        json!({"span_name": "lookup.tool", "status": "error", "error_message": "timeout",
            "start_time": "2025-01-01T00:00:04Z"}),
    );
    let dead = span(
        "old",
        "dead",
        Some("root"),
        json!({"model": "o1-preview", "log_type": "chat", "cost": 4.0, "prompt_tokens": 400,
            "start_time": "2025-01-01T00:00:06Z"}),
    );
    let version = |n: i64| u64::try_from(t0 + n).unwrap();
    db.insert(
        "spans",
        &[
            v1_span_row(project_id, &root, t0, version(1)),
            // The higher version is the span's latest value, whatever the row order.
            v1_span_row(project_id, &llm_v2, t0 + 1, version(5)),
            v1_span_row(project_id, &llm_v1, t0 + 1, version(2)),
            v1_span_row(project_id, &tool, t0 + 2, version(2)),
            v1_span_row(project_id, &dead, t0 + 3, version(3)),
        ],
    )
    .await;
    // `dead` was deleted: a tombstone as version 1 wrote it, only the key columns set.
    db.insert(
        "spans",
        &[
            json!({"project_id": project_id, "trace_id": "old", "span_id": "dead",
            "start_ns": dead.start.unix_nanos(), "version": version(6), "deleted": 1}),
        ],
    )
    .await;
    let live = [root.clone(), llm_v2.clone(), tool.clone()];
    let want = summarize(&live).unwrap();
    db.insert("traces", &[v1_trace_row(project_id, &want, t0, version(6))])
        .await;
    // Sanity of the fixture.
    assert_eq!(want.span_count, 3);
    assert_eq!(want.total_cost, 1.75);
    assert_eq!(want.error_count, 1);
    assert_eq!(want.llm_call_count, 1);

    let tables = db.tables().await;
    assert!(
        tables.contains("spans") && tables.contains("traces"),
        "{tables:?}"
    );

    // Opening upgrades it.
    let store = db.open().await;
    let project = Project {
        id: ProjectId(project_id),
        name: name.parse::<ProjectName>().unwrap(),
    };
    let found = store.find_project(&project.name).await.unwrap();
    assert_eq!(found, Some(project.clone()));
    assert_eq!(
        store
            .authenticate(&ApiKeyHash::of_secret(secret))
            .await
            .unwrap(),
        Some(tracehouse_core::KeyGrant {
            project: project.clone(),
            scopes: tracehouse_core::Scopes::ADMIN,
        }),
        "a key made before scopes keeps doing everything"
    );

    let id = trace_id("old");
    let check = |store: ClickHouseStore, context: &'static str| {
        let want = want.clone();
        let id = id.clone();
        async move {
            let trace = store.get_trace(ProjectId(project_id), &id).await.unwrap();
            let trace = trace.unwrap_or_else(|| panic!("{context}: the trace is missing"));
            assert_summary(&trace.summary, &want, &format!("get_trace {context}"));
            assert_eq!(
                span_ids(&trace.spans),
                BTreeSet::from(["root".to_owned(), "llm".to_owned(), "tool".to_owned()]),
                "{context}"
            );
            let llm = stored_span(&trace.spans, "llm");
            assert_eq!(llm.cost, Some(0.75), "{context}");
            assert_eq!(llm.model.as_deref(), Some("claude-3-5-sonnet"), "{context}");
            assert_eq!(llm.usage.prompt_tokens, Some(20), "{context}");
            assert_eq!(llm.usage.completion_tokens, Some(7), "{context}");
            assert_eq!(
                stored_span(&trace.spans, "root").content.get("input"),
                Some(&json!("hello")),
                "{context}"
            );

            let (total, items) = list(&store, ProjectId(project_id)).await;
            assert_eq!(total, 1, "{context}");
            assert_eq!(items.len(), 1, "{context}");
            assert_summary(&items[0].summary, &want, &format!("list_traces {context}"));
            assert_eq!(items[0].input, Some(json!("hello")), "{context}");
            assert!(
                store
                    .find_spans(ProjectId(project_id), &"dead".parse().unwrap(), 5)
                    .await
                    .unwrap()
                    .is_empty(),
                "{context}: the deleted span is back"
            );
            store
        }
    };
    let store = check(store, "after the upgrade").await;
    drop(store);

    let tables = db.tables().await;
    for gone in [
        "spans",
        "traces",
        "trace_versions",
        "trace_versions_writer",
        "api_keys",
    ] {
        assert!(!tables.contains(gone), "{gone} is still there: {tables:?}");
    }
    for kept in [
        "span_versions",
        "trace_starts",
        "trace_span_counts",
        "trace_span_counts_writer",
        "projects",
        "access_keys",
        "key_uses",
        "project_retention",
        "customer_profiles",
        "customer_params",
        "schema_migrations",
    ] {
        assert!(tables.contains(kept), "{kept} is missing: {tables:?}");
    }
    let schema_version = db
        .sql(&format!(
            "SELECT max(version) FROM {database}.schema_migrations"
        ))
        .await;
    assert_eq!(schema_version.trim(), "7");
    let count = |table: &'static str| {
        let db = &db;
        async move {
            db.sql(&format!("SELECT count() FROM {}.{table}", db.database))
                .await
                .trim()
                .to_owned()
        }
    };
    let span_rows = count("span_versions").await;
    let migration_rows = count("schema_migrations").await;

    // Opening again changes nothing and still works.
    let store = db.open().await;
    assert_eq!(db.tables().await, tables);
    assert_eq!(count("span_versions").await, span_rows);
    assert_eq!(count("schema_migrations").await, migration_rows);
    let store = check(store, "after opening again").await;
    assert_eq!(
        store.find_project(&project.name).await.unwrap(),
        Some(project.clone())
    );

    // And takes writes: a new span, and a re-sent one that beats its upgraded version.
    store
        .write_spans(
            project.id,
            vec![
                span(
                    "old",
                    "late",
                    Some("root"),
                    json!({"cost": 0.25, "start_time": "2025-01-01T00:00:08Z"}),
                ),
                span(
                    "old",
                    "llm",
                    Some("root"),
                    json!({"model": "gpt-4o-mini", "log_type": "chat", "cost": 0.125,
                        "prompt_tokens": 3, "completion_tokens": 1,
                        "start_time": "2025-01-01T00:00:02Z"}),
                ),
            ],
        )
        .await
        .unwrap();
    let trace = store.get_trace(project.id, &id).await.unwrap().unwrap();
    assert_eq!(trace.summary.span_count, 4);
    assert_eq!(trace.summary.total_cost, 1.375);
    assert_eq!(trace.summary.total_prompt_tokens, 3);
    assert_eq!(
        trace.summary.models,
        vec!["gpt-4o-mini".to_owned()],
        "the upgraded llm version still shows"
    );
    let (total, _) = list(&store, project.id).await;
    assert_eq!(total, 1);
    db.cleanup().await;
}

/// Version 2's count of versions per trace, as that release created it.
const V2_TRACE_VERSIONS: &str = "(
        project_id Int64,
        trace_id String,
        rows AggregateFunction(count),
        spans AggregateFunction(uniqExact, UInt64)
    ) ENGINE = AggregatingMergeTree
    ORDER BY (project_id, trace_id)";

#[tokio::test]
async fn a_version_2_database_upgrades_its_span_counts_in_place() {
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let database = db.database.clone();
    let store = db.open().await;
    let project = common::acme_project(&store).await;
    let llm = |model: &str, cost: f64| {
        span(
            "two",
            "llm",
            Some("root"),
            json!({"model": model, "log_type": "chat", "cost": cost,
                "start_time": "2025-01-01T00:00:01Z"}),
        )
    };
    let root = span("two", "root", None, json!({"cost": 1.0}));
    let once = span("one", "only", None, json!({"cost": 0.5}));
    store
        .write_spans(
            project,
            vec![root.clone(), llm("gpt-4o", 2.0), once.clone()],
        )
        .await
        .unwrap();
    store
        .write_spans(project, vec![llm("gpt-4o-mini", 0.25)])
        .await
        .unwrap();
    drop(store);

    // Back to what a version-2 release leaves: its uniqExact counts, filled from the spans,
    // and no trace of version 3.
    db.sql(&format!("DROP TABLE {database}.trace_span_counts_writer"))
        .await;
    db.sql(&format!("DROP TABLE {database}.trace_span_counts"))
        .await;
    db.sql(&format!(
        "CREATE TABLE {database}.trace_versions {V2_TRACE_VERSIONS}"
    ))
    .await;
    db.sql(&format!(
        "CREATE MATERIALIZED VIEW {database}.trace_versions_writer TO {database}.trace_versions AS \
         SELECT project_id, trace_id, countState() AS rows, uniqExactState(cityHash64(span_id)) AS spans \
         FROM {database}.span_versions GROUP BY project_id, trace_id"
    ))
    .await;
    db.sql(&format!(
        "INSERT INTO {database}.trace_versions SELECT project_id, trace_id, countState(), \
         uniqExactState(cityHash64(span_id)) FROM {database}.span_versions GROUP BY project_id, trace_id"
    ))
    .await;
    // A version-2 database still has version 1's keys table.
    db.sql(&format!("CREATE TABLE {database}.api_keys {V1_API_KEYS}"))
        .await;
    db.sql(&format!("DROP TABLE {database}.schema_migrations"))
        .await;
    db.sql(&format!(
        "CREATE TABLE {database}.schema_migrations (version UInt32, applied_ns Int64) \
         ENGINE = MergeTree ORDER BY version"
    ))
    .await;
    db.insert(
        "schema_migrations",
        &[
            json!({"version": 1, "applied_ns": 1}),
            json!({"version": 2, "applied_ns": 2}),
        ],
    )
    .await;

    let store = db.open().await;
    let tables = db.tables().await;
    assert!(tables.contains("trace_span_counts"), "{tables:?}");
    assert!(tables.contains("trace_span_counts_writer"), "{tables:?}");
    assert!(!tables.contains("trace_versions"), "{tables:?}");
    assert!(!tables.contains("trace_versions_writer"), "{tables:?}");
    assert_eq!(
        db.sql(&format!(
            "SELECT max(version) FROM {database}.schema_migrations"
        ))
        .await
        .trim(),
        "7"
    );
    // The re-sent span's trace is known as rewritten, so scans count its span once, latest
    // value first; the trace written once is read as it is.
    assert_eq!(
        db.sql(&format!(
            "SELECT trace_id, countMerge(rows), uniqMerge(spans) FROM {database}.trace_span_counts \
             GROUP BY trace_id ORDER BY trace_id FORMAT CSV"
        ))
        .await,
        "\"one\",1,1\n\"two\",3,2\n"
    );
    let spans = store
        .list_spans(project, &SpanQuery::default())
        .await
        .unwrap();
    assert_eq!(spans.total, 3);
    assert_eq!(
        span_ids(&spans.items),
        BTreeSet::from(["llm".to_owned(), "only".to_owned(), "root".to_owned()])
    );
    assert_eq!(stored_span(&spans.items, "llm").cost, Some(0.25));

    // New writes are counted by the new view.
    store
        .write_spans(project, vec![llm("o1", 4.0)])
        .await
        .unwrap();
    let spans = store
        .list_spans(project, &SpanQuery::default())
        .await
        .unwrap();
    assert_eq!(spans.total, 3);
    assert_eq!(
        stored_span(&spans.items, "llm").model.as_deref(),
        Some("o1")
    );
    db.cleanup().await;
}

/// `2025-01-01T02:00:00Z` plus `seconds` (and `millis`), as a span log's `start_time`.
fn at(seconds: u64, millis: u64) -> String {
    format!(
        "2025-01-01T{:02}:{:02}:{:02}.{millis:03}Z",
        2 + seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

fn span_keys(spans: &[Span]) -> Vec<(String, String)> {
    spans
        .iter()
        .map(|span| {
            (
                span.trace_id.as_str().to_owned(),
                span.span_id.as_str().to_owned(),
            )
        })
        .collect()
}

/// Newest-first span and trace lists look for their page among recent spans first (windows
/// sized from `trace_starts`) and read on when the window falls short; every answer must
/// equal the one over all spans: deep pages, rare matches, a trace whose re-sent span moved
/// out of the window, and a deleted trace.
#[tokio::test]
async fn newest_first_lists_read_recent_windows_and_agree_with_every_span() {
    use tracehouse_core::query::{
        Condition, Direction, FilterValue, Operator, Page, Sort, SpanColumn, SpanField, SpanFilter,
    };
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let store = db.open().await;
    let project = common::acme_project(&store).await;
    const TRACES: u64 = 800;
    let trace_name = |i: u64| format!("{:016x}{i:04}", fastrand::u64(..));
    let names: Vec<String> = (0..TRACES).map(trace_name).collect();
    let mut live: Vec<Span> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let i = i as u64;
        // Every third trace's tool saw a walrus; two old ones saw a narwhal.
        let tool_input = if i == 5 || i == 10 {
            "a narwhal surfaced"
        } else if i % 3 == 0 {
            "a walrus surfaced"
        } else {
            "nothing surfaced"
        };
        let model = if i % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" };
        live.push(span(
            name,
            "root",
            None,
            json!({"span_name": "agent.run", "start_time": at(i, 0)}),
        ));
        live.push(span(
            name,
            "llm",
            Some("root"),
            json!({"model": model, "log_type": "chat", "start_time": at(i, 100)}),
        ));
        live.push(span(
            name,
            "tool",
            Some("root"),
            json!({"span_name": "search.tool", "input": tool_input, "start_time": at(i, 200)}),
        ));
    }
    // Oldest traces first, 99 spans per request: hundreds of `trace_starts` rows.
    for request in live.chunks(99) {
        store.write_spans(project, request.to_vec()).await.unwrap();
    }
    // The newest trace's LLM span is sent again starting an hour earlier (same day), so its
    // older version lies in every window and its latest in none.
    let moved = span(
        &names[799],
        "llm",
        Some("root"),
        json!({"model": "o1", "log_type": "chat", "start_time": "2025-01-01T01:00:00Z"}),
    );
    store
        .write_spans(project, vec![moved.clone()])
        .await
        .unwrap();
    live.retain(|span| !(span.trace_id.as_str() == names[799] && span.span_id.as_str() == "llm"));
    live.push(moved);
    // The second newest trace is deleted.
    let deleted = trace_id(&names[798]);
    store.delete_trace(project, &deleted).await.unwrap();
    live.retain(|span| span.trace_id != deleted);
    live.sort_by(|a, b| {
        (b.start, b.trace_id.as_str(), b.span_id.as_str()).cmp(&(
            a.start,
            a.trace_id.as_str(),
            a.span_id.as_str(),
        ))
    });

    let newest_first = |filter: SpanFilter, number: u64, size: u64| SpanQuery {
        filter,
        sort: Sort {
            column: SpanColumn::StartTime,
            direction: Direction::Descending,
        },
        page: Page { number, size },
        as_of: None,
    };
    let search = |word: &str| SpanFilter {
        search: Some(word.to_owned()),
        ..SpanFilter::default()
    };
    let model_is = |model: &str| SpanFilter {
        conditions: vec![Condition {
            field: SpanField::Column(SpanColumn::Model),
            operator: Operator::Equals,
            values: vec![FilterValue::Text(model.to_owned())],
        }],
        ..SpanFilter::default()
    };
    let matching = |keep: &dyn Fn(&Span) -> bool| -> Vec<Span> {
        live.iter().filter(|span| keep(span)).cloned().collect()
    };
    let says = |span: &Span, word: &str| {
        span.content
            .get("input")
            .is_some_and(|input| input.to_string().contains(word))
    };
    let cases: Vec<(&str, SpanFilter, Vec<Span>, u64, u64)> = vec![
        ("newest spans", SpanFilter::default(), live.clone(), 1, 50),
        (
            "newest spans, page 3",
            SpanFilter::default(),
            live.clone(),
            3,
            50,
        ),
        // Rows 1,600-1,699: past the first window's 500 traces.
        (
            "newest spans, page 17 of 100",
            SpanFilter::default(),
            live.clone(),
            17,
            100,
        ),
        (
            "model gpt-4o",
            model_is("gpt-4o"),
            matching(&|span| span.model.as_deref() == Some("gpt-4o")),
            1,
            50,
        ),
        (
            "model o1 (only the moved span)",
            model_is("o1"),
            matching(&|span| span.model.as_deref() == Some("o1")),
            1,
            50,
        ),
        (
            "search walrus, page 2",
            search("walrus"),
            matching(&|span| says(span, "walrus")),
            2,
            50,
        ),
        (
            "search narwhal (two old traces)",
            search("narwhal"),
            matching(&|span| says(span, "narwhal")),
            1,
            50,
        ),
    ];
    for (what, filter, want, number, size) in cases {
        let unfiltered = filter.is_empty();
        let got = store
            .list_spans(project, &newest_first(filter, number, size))
            .await
            .unwrap();
        let offset = ((number - 1) * size) as usize;
        let want_page: Vec<Span> = want
            .iter()
            .skip(offset)
            .take(size as usize)
            .cloned()
            .collect();
        assert_eq!(span_keys(&got.items), span_keys(&want_page), "{what}");
        assert_eq!(got.total, want.len() as u64, "{what}: count");
        assert!(got.total_is_exact, "{what}: a count under the cap is exact");
        if unfiltered {
            assert_eq!(got.total, 3 * TRACES - 3, "{what}: every live span");
        }
    }
    // The moved span's trace now starts an hour before the others.
    let moved_trace = store
        .get_trace(project, &trace_id(&names[799]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved_trace.summary.span_count, 3);

    // Trace search newest first: traces with a matching span, by their start.
    for (word, expected_traces) in [("walrus", 266usize), ("narwhal", 2)] {
        let mut want: Vec<(Timestamp, String)> = live
            .iter()
            .filter(|span| says(span, word))
            .map(|span| span.trace_id.as_str().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|trace| {
                let start = live
                    .iter()
                    .filter(|span| span.trace_id.as_str() == trace)
                    .map(|span| span.start)
                    .min()
                    .unwrap();
                (start, trace)
            })
            .collect();
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(want.len(), expected_traces, "{word}: traces in the data");
        let query = TraceQuery {
            spans: search(word),
            page: Page {
                number: 1,
                size: 20,
            },
            ..TraceQuery::default()
        };
        let got = store.list_traces(project, &query).await.unwrap();
        let got_ids: Vec<String> = got
            .items
            .iter()
            .map(|item| item.summary.trace_id.as_str().to_owned())
            .collect();
        let want_ids: Vec<String> = want.iter().take(20).map(|(_, id)| id.clone()).collect();
        assert_eq!(got_ids, want_ids, "trace search {word}");
    }
    db.cleanup().await;
}

/// A filter matching more than `COUNT_CAP` spans among the newest ones is counted in that
/// window alone: the count is the cap, marked as a lower bound, and the page is still exact.
#[tokio::test]
async fn a_filter_matching_past_the_cap_in_the_newest_window_counts_a_lower_bound() {
    use tracehouse_core::query::{
        COUNT_CAP, Condition, FilterValue, Operator, Page, SpanColumn, SpanField, SpanFilter,
    };
    let Some(db) = TestDatabase::new() else {
        return;
    };
    let store = db.open().await;
    let project = common::acme_project(&store).await;
    // 700 traces of 25 spans: the newest 500 traces alone hold 12,500 matching spans.
    let mut spans: Vec<Span> = Vec::new();
    for trace in 0..700u64 {
        let name = format!("{:016x}{trace:04}", fastrand::u64(..));
        for index in 0..25u64 {
            spans.push(span(
                &name,
                &format!("s{index:02}"),
                None,
                json!({"model": "gpt-4o", "start_time": at(trace, index * 10)}),
            ));
        }
    }
    for request in spans.chunks(100) {
        store.write_spans(project, request.to_vec()).await.unwrap();
    }
    spans.sort_by(|a, b| {
        (b.start, b.trace_id.as_str(), b.span_id.as_str()).cmp(&(
            a.start,
            a.trace_id.as_str(),
            a.span_id.as_str(),
        ))
    });
    let query = SpanQuery {
        filter: SpanFilter {
            conditions: vec![Condition {
                field: SpanField::Column(SpanColumn::Model),
                operator: Operator::Equals,
                values: vec![FilterValue::Text("gpt-4o".to_owned())],
            }],
            ..SpanFilter::default()
        },
        page: Page {
            number: 2,
            size: 50,
        },
        ..SpanQuery::default()
    };
    let got = store.list_spans(project, &query).await.unwrap();
    assert_eq!((got.total, got.total_is_exact), (COUNT_CAP, false));
    let want: Vec<Span> = spans.iter().skip(50).take(50).cloned().collect();
    assert_eq!(span_keys(&got.items), span_keys(&want));
    db.cleanup().await;
}

/// Runs one statement on the server at `url` (outside any database) and returns its answer.
async fn node_sql(url: &str, statement: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{url}/"))
        .body(statement.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{statement}\n-> {status}: {text}");
    text
}

/// On a cluster the writer inserts each span into its shard's local table itself. The rows
/// must sit where the `Distributed` table would have put them (readers, deletes and older
/// rows of the trace look there): ClickHouse's own `cityHash64(trace_id) % 2` must name the
/// node's shard for every row, and a delete's tombstones (sent through `Distributed`) must land
/// beside the rows they hide.
#[tokio::test]
async fn cluster_writes_put_each_row_on_the_shard_distributed_would() {
    let Some(urls) = common::env_or_skip("TRACEHOUSE_CLICKHOUSE_CLUSTER_URLS") else {
        return;
    };
    let urls: Vec<String> = urls
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .collect();
    let database = format!("th_shards_{}_{}", std::process::id(), fastrand::u64(..));
    let mut config = ClickHouseConfig::new(urls[0].clone(), database.clone());
    config.cluster = Some("tracehouse".to_owned());
    config.other_nodes = urls[1..].to_vec();
    let store = ClickHouseStore::open(config).await.unwrap();
    let project = common::acme_project(&store).await;
    // Random-looking ids as SDKs send them, children before their root, in several requests.
    let mut spans = Vec::new();
    for t in 0..120u64 {
        let trace = format!("{:032x}", fastrand::u128(..) ^ u128::from(t));
        spans.push(span(&trace, "child", Some("root"), json!({"cost": 0.5})));
        spans.push(span(&trace, "root", None, json!({"span_name": "agent"})));
    }
    let doomed = spans[0].trace_id.clone();
    assert_eq!(write_in_requests(&store, project, spans, 50).await, 240);
    let doomed_count = format!(
        "SELECT count() FROM {database}.span_versions_local WHERE trace_id = '{}'",
        doomed.as_str()
    );
    let mut doomed_rows_per_node = Vec::new();
    for url in &urls {
        doomed_rows_per_node.push(node_sql(url, &doomed_count).await.trim().to_owned());
    }
    assert!(store.delete_trace(project, &doomed).await.unwrap());
    let (total, _) = list(&store, project).await;
    assert_eq!(total, 119);

    let mut rows_per_node = Vec::new();
    for (url, doomed_rows) in urls.iter().zip(&doomed_rows_per_node) {
        let shard: u64 = node_sql(
            url,
            "SELECT shard_num FROM system.clusters WHERE cluster = 'tracehouse' AND is_local = 1",
        )
        .await
        .trim()
        .parse()
        .unwrap();
        let answer = node_sql(
            url,
            &format!(
                "SELECT count(), countIf(cityHash64(trace_id) % 2 != {}), \
                 countIf(trace_id = '{}' AND deleted = 1) \
                 FROM {database}.span_versions_local",
                shard - 1,
                doomed.as_str()
            ),
        )
        .await;
        let counts: Vec<u64> = answer
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let [rows, misplaced, doomed_tombstones] = counts[..] else {
            panic!("unexpected answer {answer:?}");
        };
        assert_eq!(misplaced, 0, "rows on the wrong shard at {url}");
        // Two spans, two tombstones: both where the spans were written, none elsewhere.
        assert_eq!(
            (doomed_rows.as_str(), doomed_tombstones),
            if doomed_rows == "2" {
                ("2", 2)
            } else {
                ("0", 0)
            },
            "the deleted trace's rows and tombstones must share a node ({url})"
        );
        rows_per_node.push(rows);
    }
    // 240 span rows and 2 tombstones (fewer once a merge collapsed them), over both shards.
    assert!(
        (240..=242).contains(&rows_per_node.iter().sum::<u64>()),
        "{rows_per_node:?}"
    );
    assert!(
        rows_per_node.iter().all(|rows| *rows > 40),
        "{rows_per_node:?}"
    );
    for url in &urls {
        node_sql(url, &format!("DROP DATABASE IF EXISTS {database}")).await;
    }
}
