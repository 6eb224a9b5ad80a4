//! Retention on every store (issue 21): old traces leave every read, content expires while
//! every metric stays, and nothing at or after a cutoff is touched, also under ingest.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use tracehouse_core::metrics::{
    BucketGrid, GroupBy, Interval, Metric, TimeZone, TimeseriesQuery, TopQuery,
};
use tracehouse_core::query::{SpanFilter, SpanQuery, TraceQuery};
use tracehouse_core::retention::CONTENT_EXPIRED_FIELD;
use tracehouse_core::{
    Cutoffs, ProjectId, ProjectName, RetentionOverride, RetentionStep, Span, SpanStore, Timestamp,
    TraceId,
};

use super::common::span;
use super::{Backend, open};

conformance!(
    retention_removes_old_traces_from_every_read_and_keeps_the_rest,
    content_retention_keeps_every_metric_and_drops_the_payload,
    spans_arriving_during_a_sweep_are_never_touched,
    project_retention_is_stored_per_project,
);

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A span starting at `start` and lasting `latency` seconds.
fn span_at(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    start: &str,
    extra: serde_json::Value,
) -> Span {
    let mut fields = json!({"start_time": start, "latency": 1.0});
    if let (Some(fields), serde_json::Value::Object(extra)) = (fields.as_object_mut(), extra) {
        fields.extend(extra);
    }
    span(trace, id, parent, fields)
}

/// Applies retention until the store says it is done, `limit` at a time, adding up the steps.
async fn sweep(
    store: &dyn SpanStore,
    project: ProjectId,
    cutoffs: Cutoffs,
    now: Timestamp,
    limit: usize,
) -> RetentionStep {
    let mut total = RetentionStep::default();
    for _ in 0..10_000 {
        let step = store
            .apply_retention(&[(project, cutoffs)], now, limit)
            .await
            .unwrap();
        total.merge(RetentionStep { done: true, ..step });
        if step.done {
            total.done = true;
            return total;
        }
    }
    panic!("retention never finished");
}

async fn trace_ids(
    store: &dyn SpanStore,
    project: ProjectId,
    query: TraceQuery,
) -> BTreeSet<String> {
    store
        .list_traces(project, &query)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|item| item.summary.trace_id.as_str().to_owned())
        .collect()
}

async fn span_keys(
    store: &dyn SpanStore,
    project: ProjectId,
    filter: SpanFilter,
) -> BTreeSet<String> {
    let query = SpanQuery {
        filter,
        page: tracehouse_core::query::Page {
            number: 1,
            size: 1000,
        },
        ..SpanQuery::default()
    };
    store
        .list_spans(project, &query)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|span| format!("{}/{}", span.trace_id.as_str(), span.span_id.as_str()))
        .collect()
}

/// The spans a full-text search finds, as `trace/span`.
async fn searched(store: &dyn SpanStore, project: ProjectId, word: &str) -> BTreeSet<String> {
    let filter = SpanFilter {
        search: Some(word.to_owned()),
        ..SpanFilter::default()
    };
    span_keys(store, project, filter).await
}

/// One span by its `trace/span` key.
async fn span_of(store: &dyn SpanStore, project: ProjectId, key: &str) -> Option<Span> {
    let (trace, id) = key.split_once('/').unwrap();
    store
        .get_span(
            project,
            &TraceId::try_from(trace).unwrap(),
            &id.parse().unwrap(),
        )
        .await
        .unwrap()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn retention_removes_old_traces_from_every_read_and_keeps_the_rest(backend: &Backend) {
    let (store, project) = open(backend).await;
    let cutoff = at("2025-01-15T00:00:00Z");
    store
        .write_spans(
            project,
            vec![
                span_at(
                    "old",
                    "r",
                    None,
                    "2025-01-01T10:00:00Z",
                    json!({"input": "needle old", "model": "gpt-4o", "cost": 1.0}),
                ),
                span_at(
                    "old",
                    "c",
                    Some("r"),
                    "2025-01-01T10:00:00Z",
                    json!({"output": "needle old child"}),
                ),
                span_at(
                    "older",
                    "r",
                    None,
                    "2025-01-02T10:00:00Z",
                    json!({"input": "needle older", "cost": 2.0}),
                ),
                // Started before the cutoff, still active after it: kept whole.
                span_at(
                    "long",
                    "r",
                    None,
                    "2025-01-01T12:00:00Z",
                    json!({"latency": 2_000_000.0, "input": "needle long"}),
                ),
                span_at(
                    "long",
                    "c",
                    Some("r"),
                    "2025-01-20T00:00:00Z",
                    json!({"cost": 4.0}),
                ),
                span_at(
                    "new",
                    "r",
                    None,
                    "2025-02-01T00:00:00Z",
                    json!({"input": "needle new", "model": "gpt-4o", "cost": 8.0}),
                ),
            ],
        )
        .await
        .unwrap();
    let data_only = Cutoffs {
        data_before: Some(cutoff),
        content_before: None,
    };
    let step = sweep(&*store, project, data_only, at("2025-03-01T00:00:00Z"), 1).await;
    assert_eq!((step.traces_removed, step.spans_removed), (2, 3));
    // 2025-01-02 held only `older`; 2025-01-01 still holds the live root of `long`, except on
    // a cluster shard that holds `old` but not `long`.
    let described = store.describe();
    let expected_days = match (
        described.starts_with("clickhouse"),
        described.contains("cluster"),
    ) {
        (false, _) => 0..=0,
        (true, false) => 1..=1,
        (true, true) => 1..=2,
    };
    assert!(
        expected_days.contains(&step.days_dropped),
        "{described}: {step:?}"
    );

    for gone in ["old", "older"] {
        let id = TraceId::try_from(gone).unwrap();
        assert!(
            store.get_trace(project, &id).await.unwrap().is_none(),
            "{gone}"
        );
        assert!(
            store
                .get_span(project, &id, &"r".parse().unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
    let long = store
        .get_trace(project, &TraceId::try_from("long").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(long.summary.span_count, 2);
    assert_eq!(
        long.spans[0].content.get("input"),
        Some(&json!("needle long"))
    );
    assert_eq!(
        trace_ids(&*store, project, TraceQuery::default()).await,
        set(&["long", "new"])
    );
    assert_eq!(
        span_keys(&*store, project, SpanFilter::default()).await,
        set(&["long/c", "long/r", "new/r"])
    );
    assert_eq!(
        searched(&*store, project, "needle").await,
        set(&["long/r", "new/r"])
    );
    let exported = store
        .scan_spans(project, &SpanFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(exported.len(), 3);
    let statistics = store
        .span_statistics(project, &SpanFilter::default())
        .await
        .unwrap();
    assert_eq!(statistics.number_of_requests, 3);
    assert_eq!(statistics.total_cost, 12.0);
    let stats = store.project_stats(project).await.unwrap();
    assert_eq!((stats.traces, stats.spans), (2, 3));
    let top = store
        .metric_top(
            project,
            &TopQuery {
                metric: Metric::Requests,
                filter: SpanFilter::default(),
                start: at("2024-12-01T00:00:00Z"),
                end: at("2025-03-01T00:00:00Z"),
                group_by: GroupBy::parse("model").unwrap(),
                limit: 10,
            },
        )
        .await
        .unwrap();
    let gpt = top
        .iter()
        .find(|entry| entry.value.as_deref() == Some("gpt-4o"))
        .unwrap();
    assert_eq!(gpt.requests, 1, "{top:?}");

    // Done means done: a second sweep finds nothing, and new data is kept.
    let again = sweep(&*store, project, data_only, at("2025-03-01T00:00:00Z"), 10).await;
    assert_eq!((again.traces_removed, again.spans_removed), (0, 0));
}

/// Everything the dashboard shows over a range, to compare before and after.
async fn dashboard(store: &dyn SpanStore, project: ProjectId) -> Vec<String> {
    let grid = BucketGrid::new(
        at("2024-12-30T00:00:00Z"),
        at("2025-02-10T00:00:00Z"),
        Interval::Day,
        TimeZone::default(),
    )
    .unwrap();
    // Sums of floats may come out in another order once rows are rewritten (ClickHouse), so
    // numbers are compared to 12 significant digits.
    let mut answers = vec![rounded(&format!(
        "{:?}",
        store
            .span_statistics(project, &SpanFilter::default())
            .await
            .unwrap()
    ))];
    for metric in [
        Metric::Requests,
        Metric::Traces,
        Metric::Cost,
        Metric::TotalTokens,
        Metric::PromptTokens,
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::Errors,
        Metric::ErrorRate,
    ] {
        for group_by in [None, Some(GroupBy::parse("model").unwrap())] {
            let query = TimeseriesQuery {
                metric,
                filter: SpanFilter::default(),
                grid: grid.clone(),
                group_by,
                limit: 5,
            };
            answers.push(rounded(&format!(
                "{:?}",
                store.metric_timeseries(project, &query).await.unwrap()
            )));
        }
    }
    let summaries: Vec<String> = store
        .list_traces(project, &TraceQuery::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|item| rounded(&format!("{:?}", item.summary)))
        .collect();
    answers.extend(summaries);
    answers
}

/// `text` with every decimal number rounded to 12 significant digits.
fn rounded(text: &str) -> String {
    let mut out = String::new();
    let mut number = String::new();
    let flush = |number: &mut String, out: &mut String| {
        if number.contains('.') || number.contains('e') {
            match number.parse::<f64>() {
                Ok(value) => out.push_str(&format!("{value:.11e}")),
                Err(_) => out.push_str(number),
            }
        } else {
            out.push_str(number);
        }
        number.clear();
    };
    for c in text.chars() {
        let continues =
            c.is_ascii_digit() || c == '.' || ((c == 'e' || c == '-') && !number.is_empty());
        if continues {
            number.push(c);
        } else {
            flush(&mut number, &mut out);
            out.push(c);
        }
    }
    flush(&mut number, &mut out);
    out
}

async fn content_retention_keeps_every_metric_and_drops_the_payload(backend: &Backend) {
    let (store, project) = open(backend).await;
    let mut spans = Vec::new();
    for (index, day) in ["2025-01-01", "2025-01-03", "2025-02-01"]
        .iter()
        .enumerate()
    {
        let trace = format!("t{index}");
        spans.push(span_at(
            &trace,
            "root",
            None,
            &format!("{day}T08:00:00Z"),
            json!({
                "span_name": "agent.workflow", "input": format!("secret prompt {index}"),
                "output": "secret answer", "metadata": {"customer": "c1", "tier": index},
                "customer_identifier": "cust", "latency": 3.0,
            }),
        ));
        spans.push(span_at(
            &trace,
            "llm",
            Some("root"),
            &format!("{day}T08:00:01Z"),
            json!({
                "model": "gpt-4o-mini", "prompt_tokens": 100 + index, "completion_tokens": 20,
                "prompt_messages": [{"role": "user", "content": "secret prompt"}],
                "completion_message": {"role": "assistant", "content": "secret answer"},
                "tools": [{"type": "function"}], "latency": 0.5 + index as f64,
                "status_code": if index == 1 { 500 } else { 200 },
            }),
        ));
    }
    store.write_spans(project, spans).await.unwrap();
    let before = dashboard(&*store, project).await;
    let now = at("2025-03-01T00:00:00Z");
    let cutoffs = Cutoffs {
        data_before: None,
        content_before: Some(at("2025-01-15T00:00:00Z")),
    };
    let step = sweep(&*store, project, cutoffs, now, 3).await;
    assert_eq!(step.spans_content_expired, 4);
    assert_eq!((step.traces_removed, step.spans_removed), (0, 0));
    assert_eq!(dashboard(&*store, project).await, before);

    for index in 0..2 {
        let trace = store
            .get_trace(
                project,
                &TraceId::try_from(format!("t{index}").as_str()).unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(trace.spans.len(), 2);
        for span in &trace.spans {
            for field in [
                "input",
                "output",
                "prompt_messages",
                "completion_message",
                "tools",
            ] {
                assert!(
                    span.content.get(field).is_none(),
                    "t{index}/{} kept {field}",
                    span.span_id.as_str()
                );
            }
            assert_eq!(
                span.content.get(CONTENT_EXPIRED_FIELD),
                Some(&json!("2025-03-01T00:00:00Z"))
            );
        }
        let root = trace
            .spans
            .iter()
            .find(|s| s.span_id.as_str() == "root")
            .unwrap();
        assert_eq!(
            root.content.get("metadata"),
            Some(&json!({"customer": "c1", "tier": index}))
        );
        assert_eq!(root.grouping.customer_identifier.as_deref(), Some("cust"));
        let llm = trace
            .spans
            .iter()
            .find(|s| s.span_id.as_str() == "llm")
            .unwrap();
        assert_eq!(llm.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(llm.usage.prompt_tokens, Some(100 + index));
    }
    let fresh = store
        .get_trace(project, &TraceId::try_from("t2").unwrap())
        .await
        .unwrap()
        .unwrap();
    let root = fresh
        .spans
        .iter()
        .find(|s| s.span_id.as_str() == "root")
        .unwrap();
    assert_eq!(root.content.get("input"), Some(&json!("secret prompt 2")));
    assert!(root.content.get(CONTENT_EXPIRED_FIELD).is_none());
    // The search index forgot the expired payload; the list's root input is gone with it.
    assert_eq!(
        searched(&*store, project, "secret").await,
        set(&["t2/llm", "t2/root"])
    );
    let listed = store
        .list_traces(project, &TraceQuery::default())
        .await
        .unwrap();
    let t0 = listed
        .items
        .iter()
        .find(|item| item.summary.trace_id.as_str() == "t0")
        .unwrap();
    assert_eq!(t0.input, None);
    // A metadata filter still finds expired spans.
    let mut metadata = SpanFilter::default();
    tracehouse_core::query::parse_span_filters(
        &json!({"metadata__customer": {"operator": "", "value": ["c1"]}}),
        &mut metadata,
    )
    .unwrap();
    assert_eq!(
        span_keys(&*store, project, metadata).await,
        set(&["t0/root", "t1/root", "t2/root"])
    );

    let again = sweep(&*store, project, cutoffs, at("2025-03-02T00:00:00Z"), 3).await;
    assert_eq!(again.spans_content_expired, 0);
    // A span sent again after its content expired is new content.
    store
        .write_spans(
            project,
            vec![span_at(
                "t0",
                "llm",
                Some("root"),
                "2025-01-01T08:00:01Z",
                json!({"input": "sent again"}),
            )],
        )
        .await
        .unwrap();
    let resent = span_of(&*store, project, "t0/llm").await.unwrap();
    assert_eq!(resent.content.get("input"), Some(&json!("sent again")));
    let third = sweep(&*store, project, cutoffs, at("2025-03-03T00:00:00Z"), 3).await;
    assert_eq!(third.spans_content_expired, 1);
}

async fn spans_arriving_during_a_sweep_are_never_touched(backend: &Backend) {
    let (store, project) = open(backend).await;
    let old: Vec<Span> = (0..60)
        .map(|index| {
            span_at(
                &format!("old{index:02}"),
                "r",
                None,
                "2025-01-01T00:00:00Z",
                json!({"input": "old"}),
            )
        })
        .collect();
    store.write_spans(project, old).await.unwrap();
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut written = Vec::new();
            for round in 0..30 {
                let trace = format!("new{round:02}");
                // A new trace, and a new span in an old trace, both after the cutoff.
                let spans = vec![
                    span_at(
                        &trace,
                        "r",
                        None,
                        "2025-02-01T00:00:00Z",
                        json!({"input": "new"}),
                    ),
                    span_at(
                        &format!("old{:02}", round * 2),
                        "late",
                        None,
                        "2025-02-01T00:00:00Z",
                        json!({"input": "late"}),
                    ),
                ];
                written.push(format!("{trace}/r"));
                written.push(format!("old{:02}/late", round * 2));
                store.write_spans(project, spans).await.unwrap();
                tokio::task::yield_now().await;
            }
            written
        })
    };
    let cutoffs = Cutoffs {
        data_before: Some(at("2025-01-15T00:00:00Z")),
        content_before: Some(at("2025-01-20T00:00:00Z")),
    };
    sweep(&*store, project, cutoffs, at("2025-03-01T00:00:00Z"), 4).await;
    let written = writer.await.unwrap();
    sweep(&*store, project, cutoffs, at("2025-03-01T00:00:00Z"), 4).await;
    let stored = span_keys(&*store, project, SpanFilter::default()).await;
    for key in &written {
        assert!(stored.contains(key), "{key} was removed");
        let span = span_of(&*store, project, key).await.unwrap();
        assert!(
            span.content.get("input").is_some(),
            "{key} lost its content"
        );
    }
    // Every old trace that got no late span (the odd ones) is gone.
    for index in (1..60).step_by(2) {
        assert!(!stored.contains(&format!("old{index:02}/r")), "{stored:?}");
    }
}

async fn project_retention_is_stored_per_project(backend: &Backend) {
    let (store, _) = open(backend).await;
    let support: ProjectName = "support".parse().unwrap();
    let (project, stored) = store
        .set_project_retention(
            &support,
            RetentionOverride {
                days: Some(30),
                content_days: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(project.name, support);
    assert_eq!(
        stored,
        RetentionOverride {
            days: Some(30),
            content_days: None
        }
    );
    let (_, stored) = store
        .set_project_retention(
            &support,
            RetentionOverride {
                days: None,
                content_days: Some(7),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        stored,
        RetentionOverride {
            days: Some(30),
            content_days: Some(7)
        }
    );
    let reopened = backend.open().await;
    let listed = reopened.project_retention().await.unwrap();
    let names: Vec<(&str, RetentionOverride)> = listed
        .iter()
        .map(|(project, own)| (project.name.as_str(), *own))
        .collect();
    assert_eq!(
        names,
        [
            ("acme", RetentionOverride::default()),
            (
                "support",
                RetentionOverride {
                    days: Some(30),
                    content_days: Some(7)
                }
            ),
        ]
    );
}
