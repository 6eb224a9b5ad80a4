//! The ingest hot path, one piece at a time, on the load generator's traffic shape: a
//! 100-span batch of 10-span traces with 1-2 KB of text per span.
//!
//! `cargo bench -p tracehouse-ingest --bench decode`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tracehouse_core::{IngestContext, PriceTable, Timestamp, span_from_log};
use tracehouse_ingest::otlp::{OtlpEncoding, decode_otlp, span_logs_to_otlp_protobuf};
use tracehouse_ingest::spanlog::decode_span_logs;

const WORDS: [&str; 12] = [
    "order", "refund", "shipping", "customer", "invoice", "policy", "account", "delivery",
    "warranty", "discount", "payment", "address",
];

fn text(random: &mut fastrand::Rng, bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes {
        out.push_str(WORDS[random.usize(..WORDS.len())]);
        out.push(' ');
    }
    out
}

/// 100 span logs: ten traces of an agent root and nine chat calls with messages.
fn batch() -> Vec<Value> {
    let mut random = fastrand::Rng::with_seed(1);
    let mut items = Vec::new();
    for trace in 0..10u64 {
        let trace_id = format!("{trace:032x}");
        for index in 0..10u64 {
            let mut item = json!({
                "trace_unique_id": trace_id,
                "span_unique_id": format!("{trace:08x}{index:08x}"),
                "span_name": if index == 0 { "agent.agent" } else { "openai.chat" },
                "start_time": "2026-11-28T10:00:00.123456Z",
                "timestamp": "2026-11-28T10:00:01.654321Z",
                "customer_identifier": "customer-7",
                "metadata": {"run": 1, "shard": trace},
                "input": text(&mut random, 600),
                "output": text(&mut random, 600),
            });
            if index > 0 {
                item["span_parent_id"] = json!(format!("{trace:08x}{:08x}", 0));
                item["model"] = json!("gpt-4o-mini");
                item["prompt_tokens"] = json!(150);
                item["completion_tokens"] = json!(40);
                item["prompt_messages"] =
                    json!([{"role": "user", "content": text(&mut random, 300)}]);
                item["completion_message"] =
                    json!({"role": "assistant", "content": text(&mut random, 200)});
            }
            items.push(item);
        }
    }
    items
}

fn benches(c: &mut Criterion) {
    let items = batch();
    let json_body = serde_json::to_vec(&items).unwrap();
    let protobuf_body = span_logs_to_otlp_protobuf(&items, "bench").unwrap();
    let prices = PriceTable::builtin();
    let context = IngestContext {
        received_at: Timestamp::from_unix_nanos(0),
        prices: &prices,
    };
    let mut group = c.benchmark_group("100-span batch");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("serde_json parse only", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&json_body).unwrap())
    });
    // The issue asked whether a SIMD parser pays: both read into the same `serde_json::Value`
    // the decoder works on, which is where the time goes (allocating maps and strings).
    group.bench_function("sonic-rs parse only (into serde_json::Value)", |b| {
        b.iter(|| sonic_rs::from_slice::<Value>(&json_body).unwrap())
    });
    group.bench_function("simd-json parse only (into serde_json::Value)", |b| {
        b.iter_batched(
            || json_body.clone(),
            |mut body| simd_json::serde::from_slice::<Value>(&mut body).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("span-log decode (parse + validate)", |b| {
        b.iter(|| decode_span_logs(&json_body, context).unwrap())
    });
    group.bench_function("validate only (span_from_log)", |b| {
        b.iter_batched(
            || items.clone(),
            |items| {
                items
                    .into_iter()
                    .map(|item| span_from_log(item, context).unwrap())
                    .collect::<Vec<_>>()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("OTLP protobuf decode (parse + map + validate)", |b| {
        b.iter(|| decode_otlp(&protobuf_body, OtlpEncoding::Protobuf, context).unwrap())
    });
    group.finish();
}

criterion_group!(decode, benches);
criterion_main!(decode);
