//! Read-path latency at scale: loads 1M spans (100k traces of 10 spans) into SQLite through the
//! store's own write path, then times the read API's queries and prints p50/p99 per query.
//!
//! `cargo bench -p tracehouse-store --bench read_paths`. Environment:
//! `TRACEHOUSE_BENCH_SPANS` (default 1000000), `TRACEHOUSE_BENCH_DIR` (default
//! `target/bench-data`; an existing database of the same size is reused, delete it to reload).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use tracehouse_core::query::{
    Condition, FilterValue, Operator, SpanColumn, SpanField, SpanFilter, SpanQuery, TraceQuery,
};
use tracehouse_core::{
    IngestContext, PriceTable, ProjectName, SpanStore, Timestamp, TraceId, span_from_log,
};
use tracehouse_store::{SqliteConfig, SqliteStore};

const SPANS_PER_TRACE: u64 = 10;
const MODELS: [&str; 4] = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gpt-4.1-mini"];
const WORDS: [&str; 16] = [
    "order", "refund", "shipping", "customer", "invoice", "policy", "account", "delivery",
    "warranty", "discount", "payment", "address", "tracking", "return", "product", "support",
];
const BASE_NS: i64 = 1_750_000_000_000_000_000;

fn text(random: &mut fastrand::Rng, words: usize) -> String {
    (0..words)
        .map(|_| WORDS[random.usize(..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank]
}

async fn time<F, Fut>(label: &str, runs: usize, mut query: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut samples = Vec::with_capacity(runs);
    let mut rows = 0;
    for run in 0..runs {
        let started = Instant::now();
        rows = query(run).await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    println!(
        "| {label:<44} | {:>9.3} | {:>9.3} | {rows:>6} |",
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
    let dir = std::env::var("TRACEHOUSE_BENCH_DIR")
        .unwrap_or_else(|_| format!("{}/../../target/bench-data", env!("CARGO_MANIFEST_DIR")));
    let path = std::path::Path::new(&dir).join(format!("read-paths-{spans}.db"));
    let fresh = !path.exists();
    let store = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
    let project = match store
        .authenticate(&tracehouse_core::ApiKeyHash::of_secret("th_bench"))
        .await
        .unwrap()
    {
        Some(grant) => grant.project,
        None => {
            // A fixed, known key hash lets a reused database be opened again.
            let key = store
                .create_key(
                    &ProjectName::default_project(),
                    "bench",
                    tracehouse_core::Scopes::ADMIN,
                )
                .await
                .unwrap();
            store
                .authenticate(&tracehouse_core::ApiKeyHash::of_secret(&key.secret))
                .await
                .unwrap()
                .unwrap()
                .project
        }
    };
    let prices = PriceTable::builtin();
    if fresh {
        let started = Instant::now();
        let mut random = fastrand::Rng::with_seed(42);
        let context = IngestContext {
            received_at: Timestamp::from_unix_nanos(BASE_NS),
            prices: &prices,
        };
        let mut batch = Vec::with_capacity(10_000);
        for trace in 0..traces {
            let trace_id = format!("{trace:032x}");
            let start = BASE_NS + trace as i64 * 1_000_000_000;
            for index in 0..SPANS_PER_TRACE {
                let mut item = json!({
                    "trace_unique_id": trace_id,
                    "span_unique_id": format!("{trace:08x}{index:08x}"),
                    "span_name": if index == 0 { "agent.workflow" } else { "openai.chat" },
                    "start_time": (start + index as i64 * 10_000_000) as f64 / 1e9,
                    "latency": 0.01 + index as f64 * 0.001,
                    "customer_identifier": format!("customer-{}", trace % 1000),
                    "metadata": {"shard": trace % 100, "user": format!("u{}", trace % 5000)},
                    "input": text(&mut random, 60),
                    "output": if trace % 1000 == 7 && index == 3 { format!("{} zebra", text(&mut random, 60)) } else { text(&mut random, 60) },
                });
                if index > 0 {
                    item["span_parent_id"] = json!(format!("{trace:08x}{:08x}", 0));
                    item["model"] = json!(MODELS[(trace + index) as usize % MODELS.len()]);
                    item["prompt_tokens"] = json!(100 + index);
                    item["completion_tokens"] = json!(20 + index);
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
            "loaded {spans} spans ({traces} traces) in {elapsed:.1} s: {:.0} spans/s",
            spans as f64 / elapsed
        );
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "database {} ({:.0} MB, {:.0} bytes/span)\n",
        path.display(),
        size as f64 / 1e6,
        size as f64 / spans as f64
    );
    println!(
        "| {:<44} | {:>9} | {:>9} | {:>6} |",
        "query", "p50 ms", "p99 ms", "rows"
    );
    println!("|{:-<46}|{:-<11}|{:-<11}|{:-<8}|", "", "", "", "");

    let mut random = fastrand::Rng::with_seed(7);
    let ids: Vec<TraceId> = (0..500)
        .map(|_| TraceId::try_from(format!("{:032x}", random.u64(..traces))).unwrap())
        .collect();
    time("trace fetch (10 spans, with content)", 500, |run| {
        let (store, id) = (&store, &ids[run]);
        async move {
            store
                .get_trace(project.id, id)
                .await
                .unwrap()
                .unwrap()
                .spans
                .len()
        }
    })
    .await;
    time("trace list, first page (50), unfiltered", 100, |_| {
        let store = &store;
        async move {
            store
                .list_traces(project.id, &TraceQuery::default())
                .await
                .unwrap()
                .items
                .len()
        }
    })
    .await;
    let window = |run: usize| {
        let from = BASE_NS + (run as i64 % 50) * (traces as i64 / 100) * 1_000_000_000;
        (
            Timestamp::from_unix_nanos(from),
            Timestamp::from_unix_nanos(from + (traces as i64 / 10) * 1_000_000_000),
        )
    };
    time("trace list, model = gpt-4o + 10% time range", 100, |run| {
        let store = &store;
        let (from, to) = window(run);
        let query = TraceQuery {
            start_from: Some(from),
            start_to: Some(to),
            spans: SpanFilter {
                conditions: vec![Condition {
                    field: SpanField::Column(SpanColumn::Model),
                    operator: Operator::Equals,
                    values: vec![FilterValue::Text("gpt-4o".to_owned())],
                }],
                ..SpanFilter::default()
            },
            ..TraceQuery::default()
        };
        async move {
            store
                .list_traces(project.id, &query)
                .await
                .unwrap()
                .items
                .len()
        }
    })
    .await;
    time("trace list, metadata__user = one value", 100, |run| {
        let store = &store;
        let query = TraceQuery {
            spans: SpanFilter {
                conditions: vec![Condition {
                    field: SpanField::Metadata(vec!["user".to_owned()]),
                    operator: Operator::Equals,
                    values: vec![FilterValue::Text(format!("u{}", run * 37 % 5000))],
                }],
                ..SpanFilter::default()
            },
            ..TraceQuery::default()
        };
        async move {
            store
                .list_traces(project.id, &query)
                .await
                .unwrap()
                .items
                .len()
        }
    })
    .await;
    time("span list, full-text search (rare word)", 100, |_| {
        let store = &store;
        let query = SpanQuery {
            filter: SpanFilter {
                search: Some("zebra".to_owned()),
                ..SpanFilter::default()
            },
            ..SpanQuery::default()
        };
        async move {
            store
                .list_spans(project.id, &query)
                .await
                .unwrap()
                .items
                .len()
        }
    })
    .await;
    time("trace list, full-text search (rare word)", 100, |_| {
        let store = &store;
        let mut query = TraceQuery::default();
        query.spans.search = Some("zebra".to_owned());
        async move {
            store
                .list_traces(project.id, &query)
                .await
                .unwrap()
                .items
                .len()
        }
    })
    .await;
}
