//! `tracehouse bench ingest`: a load generator for a running server on this machine.
//!
//! It builds every request body before the clock starts, so the client's own work is not in the
//! measurement, sends them over a few keep-alive connections, and afterwards checks through the
//! read API that every acknowledged span is readable.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tracehouse_ingest::otlp::span_logs_to_otlp_protobuf;

use crate::cli::{BenchIngestArgs, WireFormat};

/// Spans of one generated trace: an agent root, a chain, four chat calls, three tools and a retriever.
const SPANS_PER_TRACE: usize = 10;
const WORDS: &[&str] = &[
    "order", "refund", "shipping", "customer", "invoice", "policy", "account", "delivery",
    "warranty", "discount", "payment", "address", "tracking", "return", "product", "support",
    "agent", "question", "answer", "weather", "flight", "hotel", "booking", "schedule", "meeting",
    "summary", "report",
];
const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gpt-4.1-mini"];

fn text(random: &mut fastrand::Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        out.push_str(WORDS[random.usize(..WORDS.len())]);
        out.push(' ');
    }
    out
}

/// The ten span logs of trace number `trace` of run `run`.
fn trace_spans(random: &mut fastrand::Rng, run: u32, trace: u64, start_ns: i64) -> Vec<Value> {
    let trace_id = format!("{run:08x}{trace:024x}");
    let span_id = |index: usize| format!("{:08x}{:08x}", trace as u32, index as u32 + 1);
    let root = span_id(0);
    let chain = span_id(1);
    let time = |offset_ms: i64| {
        tracehouse_core::Timestamp::from_unix_nanos(start_ns + offset_ms * 1_000_000).to_rfc3339()
    };
    let mut spans = Vec::with_capacity(SPANS_PER_TRACE);
    let base = |index: usize,
                parent: Option<&str>,
                name: &str,
                log_type: &str,
                offset: i64,
                length: i64| {
        let mut span = json!({
            "trace_unique_id": trace_id,
            "span_unique_id": span_id(index),
            "span_name": name,
            "log_type": log_type,
            "start_time": time(offset),
            "timestamp": time(offset + length),
            "customer_identifier": format!("customer-{}", trace % 50),
            "environment": "bench",
            "metadata": {"run": run, "shard": trace % 8},
        });
        if let Some(parent) = parent {
            span["span_parent_id"] = json!(parent);
        }
        span
    };
    let mut root_span = base(0, None, "support_agent.agent", "agent", 0, 900);
    root_span["input"] = json!(text(random, 600));
    root_span["output"] = json!(text(random, 600));
    spans.push(root_span);
    let mut chain_span = base(1, Some(&root), "answer.chain", "workflow", 10, 850);
    chain_span["input"] = json!(text(random, 500));
    chain_span["output"] = json!(text(random, 500));
    spans.push(chain_span);
    for call in 0..4 {
        let mut chat = base(
            2 + call,
            Some(&chain),
            "openai.chat",
            "chat",
            20 + call as i64 * 200,
            180,
        );
        let prompt = text(random, 700);
        let answer = text(random, 500);
        chat["model"] = json!(MODELS[random.usize(..MODELS.len())]);
        chat["provider_id"] = json!("openai");
        chat["prompt_tokens"] = json!(prompt.len() / 4);
        chat["completion_tokens"] = json!(answer.len() / 4);
        chat["prompt_messages"] = json!([
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": prompt},
        ]);
        chat["completion_message"] = json!({"role": "assistant", "content": answer});
        spans.push(chat);
    }
    for tool in 0..3 {
        let mut span = base(
            6 + tool,
            Some(&chain),
            "lookup.tool",
            "tool",
            100 + tool as i64 * 200,
            50,
        );
        span["input"] = json!(text(random, 400));
        span["output"] = json!(text(random, 800));
        spans.push(span);
    }
    let mut retriever = base(9, Some(&root), "retrieve_docs.task", "task", 5, 30);
    retriever["input"] = json!(text(random, 300));
    retriever["output"] = json!(text(random, 1400));
    spans.push(retriever);
    spans
}

fn require_loopback(url: &reqwest::Url) -> anyhow::Result<()> {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "the load generator only targets this machine: use a loopback --url such as http://127.0.0.1:8080"
        );
    }
    Ok(())
}

struct Outcome {
    latency: Duration,
    status: u16,
    spans: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank]
}

pub(super) async fn run_ingest(args: BenchIngestArgs) -> anyhow::Result<ExitCode> {
    let base =
        reqwest::Url::parse(&args.url).with_context(|| format!("invalid --url {:?}", args.url))?;
    require_loopback(&base)?;
    if args.spans == 0 || args.spans_per_request == 0 || args.connections == 0 {
        bail!("--spans, --spans-per-request and --connections must be positive");
    }
    let traces = args.spans.div_ceil(SPANS_PER_TRACE as u64);
    let run = fastrand::u32(..);
    let (path, content_type) = match args.format {
        WireFormat::SpanLog => ("/api/v1/traces/ingest", "application/json"),
        WireFormat::Otlp => ("/v1/traces", "application/x-protobuf"),
    };
    let endpoint = base.join(path).context("cannot build the ingest URL")?;

    // Build every body before the clock starts.
    let prepared = Instant::now();
    let mut random = fastrand::Rng::with_seed(u64::from(run));
    let start_ns = crate::commands::now_ns() - 3_600_000_000_000;
    let mut bodies: Vec<(bytes::Bytes, usize)> = Vec::new();
    let mut batch: Vec<Value> = Vec::with_capacity(args.spans_per_request);
    let mut body_bytes = 0usize;
    let mut flush =
        |batch: &mut Vec<Value>, bodies: &mut Vec<(bytes::Bytes, usize)>| -> anyhow::Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let body = match args.format {
                WireFormat::SpanLog => serde_json::to_vec(&batch)?,
                WireFormat::Otlp => span_logs_to_otlp_protobuf(batch, "tracehouse-bench")?,
            };
            body_bytes += body.len();
            bodies.push((bytes::Bytes::from(body), batch.len()));
            batch.clear();
            Ok(())
        };
    for trace in 0..traces {
        for span in trace_spans(&mut random, run, trace, start_ns + trace as i64 * 1_000_000) {
            batch.push(span);
            if batch.len() == args.spans_per_request {
                flush(&mut batch, &mut bodies)?;
            }
        }
    }
    flush(&mut batch, &mut bodies)?;
    let total_spans: usize = bodies.iter().map(|(_, spans)| spans).sum();
    let prepare_time = prepared.elapsed();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(60))
        .build()?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (client, bodies, next, endpoint, key) = (
            client.clone(),
            Arc::clone(&bodies),
            Arc::clone(&next),
            endpoint.clone(),
            args.key.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= bodies.len() || Instant::now() >= deadline {
                    break;
                }
                let (body, spans) = &bodies[index];
                let sent = Instant::now();
                let status = match client
                    .post(endpoint.clone())
                    .bearer_auth(&key)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                outcomes.push(Outcome {
                    latency: sent.elapsed(),
                    status,
                    spans: *spans,
                });
            }
            outcomes
        }));
    }
    // While the load runs, fetch the run's first trace as a user opening it would: the read
    // latency under write load.
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probe = tokio::spawn(probe_trace_fetches(
        client.clone(),
        base.join(&format!("/api/traces/{run:08x}{:024x}/", 0))
            .context("cannot build the trace URL")?,
        args.key.clone(),
        Arc::clone(&sending),
    ));
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.context("a sender task failed")?);
    }
    let elapsed = started.elapsed();
    sending.store(false, Ordering::Relaxed);
    let mut fetches = probe.await.context("the trace fetch probe failed")?;
    fetches.sort_unstable();

    let accepted: usize = outcomes
        .iter()
        .filter(|o| (200..300).contains(&o.status))
        .map(|o| o.spans)
        .sum();
    let mut errors: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    for outcome in outcomes.iter().filter(|o| !(200..300).contains(&o.status)) {
        *errors.entry(outcome.status).or_default() += 1;
    }
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort_unstable();
    let readable = if args.no_verify {
        None
    } else {
        Some(count_readable(&client, &base, &args.key, run).await?)
    };
    let spans_per_second = accepted as f64 / elapsed.as_secs_f64();
    let report = json!({
        "run_id": format!("{run:08x}"),
        "format": match args.format { WireFormat::SpanLog => "span-log JSON", WireFormat::Otlp => "OTLP protobuf" },
        "connections": args.connections,
        "spans_per_request": args.spans_per_request,
        "spans_sent": total_spans,
        "spans_accepted": accepted,
        "requests": outcomes.len(),
        "elapsed_seconds": elapsed.as_secs_f64(),
        "spans_per_second": spans_per_second,
        "latency_p50_ms": percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        "latency_p99_ms": percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        "errors_by_status": errors.iter().map(|(status, count)| (status.to_string(), json!(count))).collect::<serde_json::Map<_, _>>(),
        "bytes_per_span": body_bytes as f64 / total_spans.max(1) as f64,
        "trace_fetches_under_load": fetches.len(),
        "trace_fetch_p50_ms": (!fetches.is_empty()).then(|| percentile(&fetches, 0.5).as_secs_f64() * 1e3),
        "trace_fetch_p99_ms": (!fetches.is_empty()).then(|| percentile(&fetches, 0.99).as_secs_f64() * 1e3),
        "prepare_seconds": prepare_time.as_secs_f64(),
        "verified_readable": readable,
    });
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    let verified = readable.is_none_or(|readable| readable == accepted as u64);
    if !verified {
        eprintln!(
            "error: {accepted} spans were acknowledged but {} are readable",
            readable.unwrap_or(0)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Spans of this run that the read API returns (the run id prefixes every trace id).
async fn count_readable(
    client: &reqwest::Client,
    base: &reqwest::Url,
    key: &str,
    run: u32,
) -> anyhow::Result<u64> {
    let url = base.join("/api/request-logs/list/?page_size=1")?;
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(&json!({"filters": {"trace_unique_id": {"operator": "startswith", "value": [format!("{run:08x}")]}}}))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .context("cannot reach the read API to verify")?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the read API answered something other than JSON")?;
    if !status.is_success() {
        bail!("the read API answered {status} while verifying: {body}");
    }
    body["count"]
        .as_u64()
        .context("the read API answered without a count")
}

/// Fetches one trace every 20 ms while `sending` holds, once it exists; returns the latencies
/// of the successful fetches.
async fn probe_trace_fetches(
    client: reqwest::Client,
    url: reqwest::Url,
    key: String,
    sending: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while sending.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let fetched = client.get(url.clone()).bearer_auth(&key).send().await;
        if let Ok(response) = fetched {
            let ok = response.status().is_success();
            let complete = response.bytes().await.is_ok();
            if ok && complete {
                latencies.push(sent.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

fn print_table(report: &Value) {
    let number = |key: &str| report[key].as_f64().unwrap_or(0.0);
    println!(
        "tracehouse bench ingest: {}, {} connections, {} spans/request",
        report["format"].as_str().unwrap_or(""),
        report["connections"],
        report["spans_per_request"]
    );
    println!("  {:<22} {:>12}", "spans sent", report["spans_sent"]);
    println!(
        "  {:<22} {:>12}",
        "spans accepted", report["spans_accepted"]
    );
    println!("  {:<22} {:>12.2} s", "elapsed", number("elapsed_seconds"));
    println!("  {:<22} {:>12.0}", "spans/s", number("spans_per_second"));
    println!("  {:<22} {:>12}", "requests", report["requests"]);
    println!(
        "  {:<22} {:>12.2} ms",
        "latency p50",
        number("latency_p50_ms")
    );
    println!(
        "  {:<22} {:>12.2} ms",
        "latency p99",
        number("latency_p99_ms")
    );
    println!(
        "  {:<22} {:>12.0}",
        "bytes/span on wire",
        number("bytes_per_span")
    );
    println!(
        "  {:<22} {:>12.2} ms ({} fetches)",
        "trace fetch p50 (load)",
        number("trace_fetch_p50_ms"),
        report["trace_fetches_under_load"]
    );
    println!(
        "  {:<22} {:>12.2} ms",
        "trace fetch p99 (load)",
        number("trace_fetch_p99_ms")
    );
    let errors = report["errors_by_status"]
        .as_object()
        .filter(|e| !e.is_empty());
    match errors {
        None => println!("  {:<22} {:>12}", "errors", "none"),
        Some(errors) => {
            for (status, count) in errors {
                let label = if status == "0" {
                    "transport".to_owned()
                } else {
                    status.clone()
                };
                println!("  {:<22} {:>12}", format!("errors {label}"), count);
            }
        }
    }
    match report["verified_readable"].as_u64() {
        Some(readable) => println!("  {:<22} {:>12}", "readable after run", readable),
        None => println!("  {:<22} {:>12}", "readable after run", "not checked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_traces_have_the_documented_shape() {
        let mut random = fastrand::Rng::with_seed(1);
        let spans = trace_spans(&mut random, 7, 3, 1_700_000_000_000_000_000);
        assert_eq!(spans.len(), SPANS_PER_TRACE);
        let kinds: Vec<&str> = spans
            .iter()
            .map(|s| s["log_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "agent", "workflow", "chat", "chat", "chat", "chat", "tool", "tool", "tool", "task"
            ]
        );
        for span in &spans {
            let size = serde_json::to_string(span).unwrap().len();
            assert!((1000..=2600).contains(&size), "{size} bytes");
            assert!(
                span["trace_unique_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("00000007")
            );
        }
        assert!(
            span_logs_to_otlp_protobuf(&spans, "t").is_ok(),
            "ids fit OTLP"
        );
    }

    #[test]
    fn only_loopback_targets() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:8080",
        ] {
            assert!(
                require_loopback(&reqwest::Url::parse(ok).unwrap()).is_ok(),
                "{ok}"
            );
        }
        for bad in ["http://10.0.0.1:8080", "http://example.com"] {
            assert!(
                require_loopback(&reqwest::Url::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
