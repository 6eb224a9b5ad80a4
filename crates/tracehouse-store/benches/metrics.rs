//! Metrics API latency at scale: loads 1M spans spread over 30 days (100k traces of 10 spans,
//! one trace every 26 s) through the store's own write path, then times the dashboard's
//! queries and prints p50/p99 per query.
//!
//! `cargo bench -p tracehouse-store --bench metrics`. Environment: `TRACEHOUSE_BENCH_SPANS`
//! (default 1000000), `TRACEHOUSE_BENCH_DIR` (default `target/bench-data`; an existing
//! database of the same size is reused, delete it to reload).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use tracehouse_core::metrics::{
    BucketGrid, GroupBy, Interval, Metric, TimeZone, TimeseriesQuery, TopQuery,
};
use tracehouse_core::query::{Condition, FilterValue, Operator, SpanColumn, SpanField, SpanFilter};
use tracehouse_core::{
    IngestContext, PriceTable, ProjectName, SpanStore, Timestamp, span_from_log,
};
use tracehouse_store::{SqliteConfig, SqliteStore};

const SPANS_PER_TRACE: u64 = 10;
const MODELS: [&str; 4] = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gpt-4.1-mini"];
const BASE_NS: i64 = 1_750_000_000_000_000_000;
const DAYS: i64 = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank]
}

async fn time<F, Fut>(label: &str, runs: usize, mut query: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut samples = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = query().await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    println!(
        "| {label:<58} | {:>9.3} | {:>9.3} | {rows:>6} |",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let spans: u64 = std::env::var("TRACEHOUSE_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let traces = spans / SPANS_PER_TRACE;
    let trace_gap_ns = DAYS * 86_400 * 1_000_000_000 / traces.max(1) as i64;
    let dir = std::env::var("TRACEHOUSE_BENCH_DIR")
        .unwrap_or_else(|_| format!("{}/../../target/bench-data", env!("CARGO_MANIFEST_DIR")));
    let path = std::path::Path::new(&dir).join(format!("metrics-{spans}.db"));
    let fresh = !path.exists();
    let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    let project = match store
        .find_project(&ProjectName::default_project())
        .await
        .unwrap()
    {
        Some(project) => project,
        None => store
            .create_project(&ProjectName::default_project())
            .await
            .unwrap(),
    };
    let prices = PriceTable::builtin();
    if fresh {
        let started = Instant::now();
        let context = IngestContext {
            received_at: Timestamp::from_unix_nanos(BASE_NS),
            prices: &prices,
        };
        let mut batch = Vec::with_capacity(10_000);
        for trace in 0..traces {
            let trace_id = format!("{trace:032x}");
            let start = BASE_NS + trace as i64 * trace_gap_ns;
            for index in 0..SPANS_PER_TRACE {
                let mut item = json!({
                    "trace_unique_id": trace_id,
                    "span_unique_id": format!("{trace:08x}{index:08x}"),
                    "span_name": if index == 0 { "agent.workflow" } else { "openai.chat" },
                    "start_time": (start + index as i64 * 10_000_000) as f64 / 1e9,
                    "latency": 0.01 + (trace % 97) as f64 * 0.01 + index as f64 * 0.001,
                    "customer_identifier": format!("customer-{}", trace % 1000),
                    "environment": if trace % 3 == 0 { "staging" } else { "prod" },
                    "metadata": {"shard": trace % 100},
                    "input": "what is the status of my order",
                    "output": "it ships tomorrow",
                });
                if index > 0 {
                    item["span_parent_id"] = json!(format!("{trace:08x}{:08x}", 0));
                    item["model"] = json!(MODELS[(trace + index) as usize % MODELS.len()]);
                    item["prompt_tokens"] = json!(100 + index);
                    item["completion_tokens"] = json!(20 + index);
                }
                if trace % 50 == 0 && index == 3 {
                    item["status"] = json!("error");
                }
                batch.push(span_from_log(item, context).unwrap());
            }
            if batch.len() >= 10_000 {
                store
                    .write_spans(project.id, std::mem::take(&mut batch))
                    .await
                    .unwrap();
            }
        }
        if !batch.is_empty() {
            store.write_spans(project.id, batch).await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "loaded {spans} spans ({traces} traces over {DAYS} days) in {elapsed:.1} s: {:.0} spans/s",
            spans as f64 / elapsed
        );
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "database {} ({:.0} MB)\n",
        path.display(),
        size as f64 / 1e6
    );
    println!(
        "| {:<58} | {:>9} | {:>9} | {:>6} |",
        "query", "p50 ms", "p99 ms", "rows"
    );
    println!("|{:-<60}|{:-<11}|{:-<11}|{:-<8}|", "", "", "", "");

    let start = Timestamp::from_unix_nanos(BASE_NS);
    let end = Timestamp::from_unix_nanos(BASE_NS + DAYS * 86_400 * 1_000_000_000);
    let last_day = Timestamp::from_unix_nanos(end.unix_nanos() - 86_400 * 1_000_000_000);
    let grid = |from, interval, zone: &str| {
        BucketGrid::new(from, end, interval, TimeZone::parse(zone).unwrap()).unwrap()
    };
    let series =
        |metric, grid: BucketGrid, group_by: Option<&str>, filter: SpanFilter| TimeseriesQuery {
            metric,
            filter,
            grid,
            group_by: group_by.map(|g| GroupBy::parse(g).unwrap()),
            limit: 5,
        };
    let customer = SpanFilter {
        conditions: vec![Condition {
            field: SpanField::Column(SpanColumn::CustomerIdentifier),
            operator: Operator::Equals,
            values: vec![FilterValue::Text("customer-7".to_owned())],
        }],
        ..SpanFilter::default()
    };
    let cases = [
        (
            "cost, 30 days hourly by model (rollup)",
            50,
            series(
                Metric::Cost,
                grid(start, Interval::Hour, "UTC"),
                Some("model"),
                SpanFilter::default(),
            ),
        ),
        (
            "requests, 30 days hourly, no group (rollup)",
            50,
            series(
                Metric::Requests,
                grid(start, Interval::Hour, "UTC"),
                None,
                SpanFilter::default(),
            ),
        ),
        (
            "total_tokens, 30 days daily Paris by customer (rollup)",
            50,
            series(
                Metric::TotalTokens,
                grid(start, Interval::Day, "Europe/Paris"),
                Some("customer_identifier"),
                SpanFilter::default(),
            ),
        ),
        (
            "error_rate, 30 days hourly by model (rollup)",
            50,
            series(
                Metric::ErrorRate,
                grid(start, Interval::Hour, "UTC"),
                Some("model"),
                SpanFilter::default(),
            ),
        ),
        (
            "latency_p50, last 24 h hourly by model (histogram)",
            10,
            series(
                Metric::LatencyP50,
                grid(last_day, Interval::Hour, "UTC"),
                Some("model"),
                SpanFilter::default(),
            ),
        ),
        (
            "cost, last 24 h hourly by model, customer filter (spans)",
            10,
            series(
                Metric::Cost,
                grid(last_day, Interval::Hour, "UTC"),
                Some("model"),
                customer.clone(),
            ),
        ),
        (
            "cost, 30 days hourly by model, customer filter (spans)",
            5,
            series(
                Metric::Cost,
                grid(start, Interval::Hour, "UTC"),
                Some("model"),
                customer,
            ),
        ),
        (
            "latency_p90, 30 days daily by model (histogram)",
            10,
            series(
                Metric::LatencyP90,
                grid(start, Interval::Day, "UTC"),
                Some("model"),
                SpanFilter::default(),
            ),
        ),
        (
            "latency_p99, 30 days daily, no group (histogram)",
            10,
            series(
                Metric::LatencyP99,
                grid(start, Interval::Day, "UTC"),
                None,
                SpanFilter::default(),
            ),
        ),
        (
            "latency_p50, last 24 h hourly by model, exact (spans)",
            5,
            series(
                Metric::LatencyP50,
                grid(last_day, Interval::Hour, "UTC"),
                Some("model"),
                SpanFilter {
                    conditions: vec![Condition {
                        field: SpanField::Column(SpanColumn::Latency),
                        operator: Operator::Gte,
                        values: vec![FilterValue::Number(0.0)],
                    }],
                    ..SpanFilter::default()
                },
            ),
        ),
    ];
    for (label, runs, query) in cases {
        let store = &store;
        let query = &query;
        time(label, runs, || async move {
            store
                .metric_timeseries(project.id, query)
                .await
                .unwrap()
                .series
                .len()
        })
        .await;
    }
    // The dashboard asks for leaderboards over the range its charts answered with, which is
    // widened to whole buckets (hours), so the rollup can answer.
    let hourly = grid(start, Interval::Hour, "UTC");
    let top = TopQuery {
        metric: Metric::Cost,
        filter: SpanFilter::default(),
        start: hourly.start(),
        end: hourly.end(),
        group_by: GroupBy::parse("customer_identifier").unwrap(),
        limit: 10,
    };
    time("top 10 customers by cost, 30 days (rollup)", 50, || {
        let (store, top) = (&store, &top);
        async move { store.metric_top(project.id, top).await.unwrap().len() }
    })
    .await;
}
