//! `tracehouse bench ingest`: a load generator for a running server on this machine.
//!
//! It builds every request body before the clock starts, so the client's own work is not in the
//! measurement, sends them over a few keep-alive connections, and afterwards checks through the
//! read API that every acknowledged span is readable.
//!
//! Two shapes of load. `whole-traces` sends 10-span traces one after another with sequential
//! ids, the load of earlier releases. `realistic` sends what an OpenTelemetry SDK's batch span
//! processor exports: a span leaves when it ends, so children come before their parents and the
//! root comes last, and with many traces in flight the spans of one trace reach the server
//! across many requests, mixed with the spans of other traces. That stream is simulated first
//! (trace plans with times relative to the run, then one order by end time over all traces) and
//! rendered to span logs afterwards, once the run's length is known, so its last span ends just
//! before now.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tracehouse_core::Timestamp;
use tracehouse_ingest::otlp::span_logs_to_otlp_protobuf;

use crate::cli::{BenchIngestArgs, BenchShape, WireFormat};

/// Spans of one generated trace: an agent root, a chain, four chat calls, three tools and a retriever.
const SPANS_PER_TRACE: usize = 10;
/// `--trace-len` when not given.
const DEFAULT_TRACE_LEN: u64 = 50;
/// `--in-flight` when not given.
const DEFAULT_IN_FLIGHT: u64 = 200;
const MS: i64 = 1_000_000;
const WORDS: &[&str] = &[
    "order", "refund", "shipping", "customer", "invoice", "policy", "account", "delivery",
    "warranty", "discount", "payment", "address", "tracking", "return", "product", "support",
    "agent", "question", "answer", "weather", "flight", "hotel", "booking", "schedule", "meeting",
    "summary", "report",
];
const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gpt-4.1-mini"];
const TOOLS: &[&str] = &[
    "search_orders.tool",
    "lookup_policy.tool",
    "check_inventory.tool",
    "create_ticket.tool",
    "send_email.tool",
];

fn text(random: &mut fastrand::Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        out.push_str(WORDS[random.usize(..WORDS.len())]);
        out.push(' ');
    }
    out
}

/// Who a trace belongs to: its customer and, with threads, its conversation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Population {
    customers: u64,
    threads: u64,
    /// Spans send `customer_params` with a name and email, model calls a time to first token.
    profiles: bool,
}

impl Population {
    /// Names the customer (and thread) of trace number `trace` on one of its spans.
    fn tag(self, span: &mut Value, trace: u64) {
        let owner = if self.threads > 0 {
            let thread = trace % self.threads;
            span["thread_identifier"] = json!(format!("thread-{thread}"));
            thread
        } else {
            trace
        };
        let customer = owner % self.customers.max(1);
        span["customer_identifier"] = json!(format!("customer-{customer}"));
        if self.profiles {
            span["customer_params"] = json!({
                "customer_identifier": format!("customer-{customer}"),
                "name": format!("Customer {customer}"),
                "email": format!("customer-{customer}@example.com"),
            });
        }
    }

    /// Gives a model call its time to first token, when the population sends them.
    fn first_token(self, random: &mut fastrand::Rng, chat: &mut Value) {
        if self.profiles {
            chat["time_to_first_token"] = json!(0.1 + random.f64() * 0.9);
        }
    }
}

/// The ten span logs of trace number `trace` of run `run`.
fn trace_spans(
    random: &mut fastrand::Rng,
    run: u32,
    trace: u64,
    start_ns: i64,
    population: Population,
) -> Vec<Value> {
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
            "environment": "bench",
            "metadata": {"run": run, "shard": trace % 8},
        });
        population.tag(&mut span, trace);
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
        population.first_token(random, &mut chat);
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

/// What a span of a realistic trace does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanKind {
    /// The trace's root: the agent answering one request.
    Agent,
    /// One step of the agent loop: a chat call deciding what to do, then tool calls.
    Step,
    /// An LLM chat call.
    Chat,
    /// A tool the agent calls.
    Tool,
    /// A document retrieval.
    Retriever,
}

/// One span of a planned trace; times are nanoseconds from the start of the simulated run.
#[derive(Debug, Clone)]
struct PlannedSpan {
    /// Index of the parent in the trace's spans.
    parent: Option<u32>,
    kind: SpanKind,
    span_id: u64,
    start_ns: i64,
    end_ns: i64,
}

/// A planned trace; `spans[0]` is the root.
#[derive(Debug)]
struct PlannedTrace {
    trace_id: u128,
    spans: Vec<PlannedSpan>,
}

/// A trace of `len` (at least 2) spans starting at 0: an agent root over steps (a chat call
/// and one to three tool calls each, a tool sometimes calling a model itself), some chat calls
/// and retrievals directly under the root, and a final chat call that writes the answer. Work
/// under one parent runs one after another, so every child ends before its parent.
fn plan_trace(random: &mut fastrand::Rng, len: usize) -> PlannedTrace {
    let mut spans = vec![PlannedSpan {
        parent: None,
        kind: SpanKind::Agent,
        span_id: random.u64(1..),
        start_ns: 0,
        end_ns: 0,
    }];
    let mut children: Vec<Vec<u32>> = vec![Vec::new()];
    let mut add = |random: &mut fastrand::Rng, kind: SpanKind, parent: usize| -> usize {
        let index = spans.len();
        spans.push(PlannedSpan {
            parent: Some(parent as u32),
            kind,
            span_id: random.u64(1..),
            start_ns: 0,
            end_ns: 0,
        });
        children.push(Vec::new());
        children[parent].push(index as u32);
        index
    };
    // Everything but the root and the final answer.
    let mut remaining = len.saturating_sub(2);
    while remaining > 0 {
        if remaining >= 2 && random.u32(..4) != 0 {
            let step = add(random, SpanKind::Step, 0);
            add(random, SpanKind::Chat, step);
            remaining -= 2;
            for _ in 0..random.usize(1..=3) {
                if remaining == 0 {
                    break;
                }
                if remaining >= 2 && random.u32(..5) == 0 {
                    let tool = add(random, SpanKind::Tool, step);
                    add(random, SpanKind::Chat, tool);
                    remaining -= 2;
                } else {
                    let kind = if random.u32(..4) == 0 {
                        SpanKind::Retriever
                    } else {
                        SpanKind::Tool
                    };
                    add(random, kind, step);
                    remaining -= 1;
                }
            }
        } else {
            let kind = if random.bool() {
                SpanKind::Chat
            } else {
                SpanKind::Retriever
            };
            add(random, kind, 0);
            remaining -= 1;
        }
    }
    add(random, SpanKind::Chat, 0);
    layout(&mut spans, &children, 0, 0, random);
    PlannedTrace {
        trace_id: random.u128(1..),
        spans,
    }
}

/// Gives span `index` and its subtree times from `start_ns`: children one after another with
/// small gaps, the parent ending a little after its last child. Returns the span's end.
fn layout(
    spans: &mut [PlannedSpan],
    children: &[Vec<u32>],
    index: usize,
    start_ns: i64,
    random: &mut fastrand::Rng,
) -> i64 {
    let end_ns = if children[index].is_empty() {
        start_ns
            + match spans[index].kind {
                SpanKind::Chat => random.i64(400 * MS..2_500 * MS),
                SpanKind::Tool => random.i64(5 * MS..400 * MS),
                SpanKind::Retriever => random.i64(20 * MS..250 * MS),
                SpanKind::Agent | SpanKind::Step => random.i64(MS..10 * MS),
            }
    } else {
        let mut cursor = start_ns + random.i64(MS / 2..5 * MS);
        for &child in &children[index] {
            cursor = layout(spans, children, child as usize, cursor, random)
                + random.i64(MS / 10..3 * MS);
        }
        cursor + random.i64(MS / 2..5 * MS)
    };
    spans[index].start_ns = start_ns;
    spans[index].end_ns = end_ns;
    end_ns
}

/// The realistic stream, before rendering: every trace, and the order in which the spans are
/// sent as `(trace, span)` indexes.
#[derive(Debug)]
struct Plan {
    traces: Vec<PlannedTrace>,
    order: Vec<(u32, u32)>,
}

/// Simulates `in_flight` traces running at once until `traces` traces of `trace_len` spans have
/// run: the first ones start at random moments within their own length, and whenever a root
/// ends, the next trace starts shortly after. Spans are sent in the order they end, over all
/// open traces, as a batch span processor exports them.
fn plan_stream(
    random: &mut fastrand::Rng,
    traces: usize,
    trace_len: usize,
    in_flight: usize,
) -> Plan {
    let mut planned: Vec<PlannedTrace> = Vec::with_capacity(traces);
    let mut ending: BinaryHeap<Reverse<(i64, u32, u32)>> = BinaryHeap::new();
    for _ in 0..in_flight.min(traces) {
        open_trace(random, trace_len, None, &mut planned, &mut ending);
    }
    let mut order = Vec::with_capacity(traces.saturating_mul(trace_len));
    while let Some(Reverse((end_ns, trace, index))) = ending.pop() {
        order.push((trace, index));
        if index == 0 && planned.len() < traces {
            open_trace(random, trace_len, Some(end_ns), &mut planned, &mut ending);
        }
    }
    Plan {
        traces: planned,
        order,
    }
}

/// Plans the next trace and queues its spans by end time. One of the first traces (`after_ns`
/// none) starts within its own length of the run's start; a later one shortly after `after_ns`,
/// the end of the root that made room for it, so no span ends before one already sent.
fn open_trace(
    random: &mut fastrand::Rng,
    trace_len: usize,
    after_ns: Option<i64>,
    planned: &mut Vec<PlannedTrace>,
    ending: &mut BinaryHeap<Reverse<(i64, u32, u32)>>,
) {
    let mut trace = plan_trace(random, trace_len);
    let start_ns = match after_ns {
        None => random.i64(0..=trace.spans[0].end_ns),
        Some(after_ns) => after_ns + random.i64(0..50 * MS),
    };
    let number = planned.len() as u32;
    for (index, span) in trace.spans.iter_mut().enumerate() {
        span.start_ns += start_ns;
        span.end_ns += start_ns;
        ending.push(Reverse((span.end_ns, number, index as u32)));
    }
    planned.push(trace);
}

impl Plan {
    /// When the last span ends, from the start of the run.
    fn end_ns(&self) -> i64 {
        self.order
            .last()
            .map_or(0, |&(trace, index)| self.span(trace, index).end_ns)
    }

    fn span(&self, trace: u32, index: u32) -> &PlannedSpan {
        &self.traces[trace as usize].spans[index as usize]
    }

    /// The trace whose root is sent first: complete early in the run.
    fn first_completed(&self) -> Option<&PlannedTrace> {
        self.order
            .iter()
            .find(|&&(_, index)| index == 0)
            .map(|&(trace, _)| &self.traces[trace as usize])
    }

    /// The span logs in sending order, their times placed so that the run starts at `start_ns`
    /// (Unix nanoseconds). Texts are drawn from `random` in that order.
    fn render<'a>(
        &'a self,
        random: &'a mut fastrand::Rng,
        run_tag: &'a str,
        start_ns: i64,
        population: Population,
    ) -> impl Iterator<Item = Value> + 'a {
        self.order.iter().map(move |&(trace, index)| {
            realistic_span(
                random,
                run_tag,
                population,
                trace as usize,
                &self.traces[trace as usize],
                index as usize,
                start_ns,
            )
        })
    }
}

/// The span log of span `index` of `trace` (trace number `number` of the run), tagged with the
/// run in its metadata so the run's spans can be counted whatever their ids.
fn realistic_span(
    random: &mut fastrand::Rng,
    run_tag: &str,
    population: Population,
    number: usize,
    trace: &PlannedTrace,
    index: usize,
    start_ns: i64,
) -> Value {
    let span = &trace.spans[index];
    let time = |ns: i64| Timestamp::from_unix_nanos(start_ns + ns).to_rfc3339();
    let mut out = json!({
        "trace_unique_id": format!("{:032x}", trace.trace_id),
        "span_unique_id": format!("{:016x}", span.span_id),
        "start_time": time(span.start_ns),
        "timestamp": time(span.end_ns),
        "environment": "bench",
        "metadata": {"bench_run": run_tag},
    });
    population.tag(&mut out, number as u64);
    if let Some(parent) = span
        .parent
        .and_then(|parent| trace.spans.get(parent as usize))
    {
        out["span_parent_id"] = json!(format!("{:016x}", parent.span_id));
    }
    let (name, log_type, input, output) = match span.kind {
        SpanKind::Agent => ("support_agent.agent", "agent", 600, 600),
        SpanKind::Step => ("agent_step.workflow", "workflow", 400, 400),
        SpanKind::Tool => (TOOLS[random.usize(..TOOLS.len())], "tool", 200, 800),
        SpanKind::Retriever => ("retrieve_docs.task", "task", 300, 1400),
        SpanKind::Chat => {
            let model = MODELS[random.usize(..MODELS.len())];
            let provider = if model.starts_with("claude") {
                "anthropic"
            } else {
                "openai"
            };
            // About as long as whole traces' prompts and answers on average, but varied, so
            // token counts differ from call to call.
            let (prompt_bytes, answer_bytes) = (random.usize(300..1100), random.usize(150..850));
            let prompt = text(random, prompt_bytes);
            let answer = text(random, answer_bytes);
            out["span_name"] = json!(format!("{provider}.chat"));
            out["log_type"] = json!("chat");
            out["model"] = json!(model);
            out["provider_id"] = json!(provider);
            out["prompt_tokens"] = json!(prompt.len() / 4 + 12);
            out["completion_tokens"] = json!(answer.len() / 4);
            out["prompt_messages"] = json!([
                {"role": "system", "content": "You are a helpful support agent. Use the tools when they help."},
                {"role": "user", "content": prompt},
            ]);
            out["completion_message"] = json!({"role": "assistant", "content": answer});
            population.first_token(random, &mut out);
            return out;
        }
    };
    out["span_name"] = json!(name);
    out["log_type"] = json!(log_type);
    out["input"] = json!(text(random, input));
    out["output"] = json!(text(random, output));
    out
}

/// How many requests, on average, carry spans of one trace, when the spans are sent in this
/// order of trace numbers and cut into requests of `per_request`.
fn mean_requests_per_trace(
    trace_of_each_span: impl Iterator<Item = usize>,
    traces: usize,
    per_request: usize,
) -> f64 {
    let mut last_request = vec![usize::MAX; traces];
    let mut total = 0usize;
    for (position, trace) in trace_of_each_span.enumerate() {
        let request = position / per_request.max(1);
        if let Some(last) = last_request.get_mut(trace)
            && *last != request
        {
            *last = request;
            total += 1;
        }
    }
    total as f64 / traces.max(1) as f64
}

/// The stream of span logs cut into requests of `per_request` spans, each encoded in `format`:
/// the bodies with their span counts, and the bytes of all bodies.
fn build_bodies(
    spans: impl Iterator<Item = Value>,
    per_request: usize,
    format: WireFormat,
) -> anyhow::Result<(Vec<(bytes::Bytes, usize)>, usize)> {
    let mut bodies = Vec::new();
    let mut body_bytes = 0usize;
    let mut batch: Vec<Value> = Vec::with_capacity(per_request.min(10_000));
    let mut flush = |batch: &mut Vec<Value>| -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = match format {
            WireFormat::SpanLog => serde_json::to_vec(&batch)?,
            WireFormat::Otlp => span_logs_to_otlp_protobuf(batch, "tracehouse-bench")?,
        };
        body_bytes += body.len();
        bodies.push((bytes::Bytes::from(body), batch.len()));
        batch.clear();
        Ok(())
    };
    for span in spans {
        batch.push(span);
        if batch.len() >= per_request {
            flush(&mut batch)?;
        }
    }
    flush(&mut batch)?;
    Ok((bodies, body_bytes))
}

pub(super) fn require_loopback(url: &reqwest::Url) -> anyhow::Result<()> {
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
    let (trace_len, in_flight) = match args.shape {
        BenchShape::Realistic => (
            args.trace_len.unwrap_or(DEFAULT_TRACE_LEN).max(2),
            args.in_flight.unwrap_or(DEFAULT_IN_FLIGHT).max(1),
        ),
        BenchShape::WholeTraces => {
            if args.trace_len.is_some() || args.in_flight.is_some() {
                bail!(
                    "--trace-len and --in-flight apply to --shape realistic only; whole traces have 10 spans and are sent one after another"
                );
            }
            (SPANS_PER_TRACE as u64, 1)
        }
    };
    let traces = args.spans.div_ceil(trace_len);
    let run = args.seed.unwrap_or_else(|| fastrand::u32(..));
    let run_tag = format!("{run:08x}");
    let (path, content_type) = match args.format {
        WireFormat::SpanLog => ("/api/v1/traces/ingest", "application/json"),
        WireFormat::Otlp => ("/v1/traces", "application/x-protobuf"),
    };
    let endpoint = base.join(path).context("cannot build the ingest URL")?;

    let population = Population {
        customers: args.customers,
        threads: args.threads,
        profiles: args.profiles,
    };
    // Build every body before the clock starts.
    let prepared = Instant::now();
    let mut random = fastrand::Rng::with_seed(u64::from(run));
    let (bodies, body_bytes, probe_trace, requests_per_trace) = match args.shape {
        BenchShape::WholeTraces => {
            let start_ns = crate::commands::now_ns() - 3_600_000_000_000;
            let spans = (0..traces).flat_map(|trace| {
                trace_spans(
                    &mut random,
                    run,
                    trace,
                    start_ns + trace as i64 * 1_000_000,
                    population,
                )
            });
            let (bodies, body_bytes) = build_bodies(spans, args.spans_per_request, args.format)?;
            let traces = usize::try_from(traces)?;
            let spread = mean_requests_per_trace(
                (0..traces * SPANS_PER_TRACE).map(|position| position / SPANS_PER_TRACE),
                traces,
                args.spans_per_request,
            );
            (bodies, body_bytes, format!("{run:08x}{:024x}", 0), spread)
        }
        BenchShape::Realistic => {
            let traces = usize::try_from(traces)?;
            let plan = plan_stream(
                &mut random,
                traces,
                usize::try_from(trace_len)?,
                usize::try_from(in_flight)?,
            );
            let probe_trace = plan
                .first_completed()
                .map(|trace| format!("{:032x}", trace.trace_id))
                .context("the run has no trace")?;
            let spread = mean_requests_per_trace(
                plan.order.iter().map(|&(trace, _)| trace as usize),
                traces,
                args.spans_per_request,
            );
            // The simulated run ends a minute ago.
            let start_ns = crate::commands::now_ns() - 60_000_000_000 - plan.end_ns();
            let spans = plan.render(&mut random, &run_tag, start_ns, population);
            let (bodies, body_bytes) = build_bodies(spans, args.spans_per_request, args.format)?;
            (bodies, body_bytes, probe_trace, spread)
        }
    };
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
    // While the load runs, fetch a trace this run sends (the first one complete) as a user
    // opening it would: the read latency under write load.
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probe = tokio::spawn(probe_trace_fetches(
        client.clone(),
        base.join(&format!("/api/traces/{probe_trace}/"))
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
        Some(count_readable(&client, &base, &args.key, args.shape, &run_tag).await?)
    };
    let spans_per_second = accepted as f64 / elapsed.as_secs_f64();
    let report = json!({
        "run_id": run_tag,
        "format": match args.format { WireFormat::SpanLog => "span-log JSON", WireFormat::Otlp => "OTLP protobuf" },
        "shape": match args.shape { BenchShape::Realistic => "realistic", BenchShape::WholeTraces => "whole-traces" },
        "trace_len": trace_len,
        "in_flight": in_flight,
        "traces": traces,
        "requests_per_trace": requests_per_trace,
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
        "probe_trace_id": probe_trace,
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

/// Spans of this run that the read API returns: whole traces by the run id that prefixes every
/// trace id, realistic ones (random ids) by the run id in their metadata.
async fn count_readable(
    client: &reqwest::Client,
    base: &reqwest::Url,
    key: &str,
    shape: BenchShape,
    run_tag: &str,
) -> anyhow::Result<u64> {
    let filters = match shape {
        BenchShape::WholeTraces => {
            json!({"trace_unique_id": {"operator": "startswith", "value": [run_tag]}})
        }
        BenchShape::Realistic => {
            json!({"metadata__bench_run": {"operator": "", "value": [run_tag]}})
        }
    };
    // The summary counts every match; a list's count stops at 10,000.
    let url = base.join("/api/request-logs/summary/")?;
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(&json!({ "filters": filters }))
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
    body["number_of_requests"]
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
        "tracehouse bench ingest: {}, {} connections, {} spans/request, run {}",
        report["format"].as_str().unwrap_or(""),
        report["connections"],
        report["spans_per_request"],
        report["run_id"].as_str().unwrap_or("")
    );
    if report["shape"] == "realistic" {
        println!(
            "  shape: realistic, {} traces of {} spans, {} in flight, sent as they end; a trace spans {:.1} requests on average",
            report["traces"],
            report["trace_len"],
            report["in_flight"],
            number("requests_per_trace")
        );
    } else {
        println!(
            "  shape: whole-traces, {} traces of {} spans sent one after another",
            report["traces"], report["trace_len"]
        );
    }
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
        let population = Population {
            customers: 50,
            threads: 0,
            profiles: false,
        };
        let spans = trace_spans(&mut random, 7, 3, 1_700_000_000_000_000_000, population);
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
    fn profiles_send_customer_params_and_model_calls_a_first_token() {
        let mut random = fastrand::Rng::with_seed(1);
        let population = Population {
            customers: 5,
            threads: 0,
            profiles: true,
        };
        let spans = trace_spans(&mut random, 7, 3, 1_700_000_000_000_000_000, population);
        for span in &spans {
            assert_eq!(
                span["customer_params"],
                json!({"customer_identifier": "customer-3", "name": "Customer 3",
                       "email": "customer-3@example.com"})
            );
            let ttft = span["time_to_first_token"].as_f64();
            if span["log_type"] == "chat" {
                assert!(ttft.is_some_and(|t| (0.1..1.0).contains(&t)), "{span}");
            } else {
                assert_eq!(ttft, None);
            }
        }
    }

    /// The realistic stream of `traces` traces as the server receives it: the requests, each
    /// a list of span logs, parsed back from the span-log bodies.
    fn realistic_requests(
        seed: u64,
        traces: usize,
        trace_len: usize,
        in_flight: usize,
        per_request: usize,
    ) -> Vec<Vec<Value>> {
        let mut random = fastrand::Rng::with_seed(seed);
        let plan = plan_stream(&mut random, traces, trace_len, in_flight);
        let population = Population {
            customers: 50,
            threads: 7,
            profiles: false,
        };
        let spans = plan.render(
            &mut random,
            "0000abcd",
            1_700_000_000_000_000_000,
            population,
        );
        let (bodies, _) = build_bodies(spans, per_request, WireFormat::SpanLog).unwrap();
        bodies
            .iter()
            .map(|(body, count)| {
                let spans: Vec<Value> = serde_json::from_slice(body).unwrap();
                assert_eq!(spans.len(), *count);
                spans
            })
            .collect()
    }

    fn is_lower_hex(text: &str, digits: usize) -> bool {
        text.len() == digits && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    fn nanos(span: &Value, field: &str) -> i64 {
        Timestamp::parse(span[field].as_str().unwrap())
            .unwrap()
            .unix_nanos()
    }

    /// Where each span of one trace was sent: (position in the stream, request) by span id.
    #[derive(Default)]
    struct Sent<'a> {
        spans: std::collections::HashMap<&'a str, (usize, usize, &'a Value)>,
        requests: std::collections::BTreeSet<usize>,
    }

    #[test]
    fn realistic_stream_sends_children_before_parents_and_the_root_last() {
        let (traces, trace_len, in_flight, per_request) = (60, 12, 16, 25);
        let requests = realistic_requests(7, traces, trace_len, in_flight, per_request);
        assert_eq!(requests.len(), (traces * trace_len).div_ceil(per_request));
        assert!(
            requests[..requests.len() - 1]
                .iter()
                .all(|r| r.len() == per_request)
        );

        let mut by_trace: std::collections::HashMap<&str, Sent<'_>> = Default::default();
        let mut span_ids = std::collections::HashSet::new();
        let mut last_end = i64::MIN;
        let mut position = 0;
        for (request, spans) in requests.iter().enumerate() {
            for span in spans {
                let trace_id = span["trace_unique_id"].as_str().unwrap();
                let span_id = span["span_unique_id"].as_str().unwrap();
                assert!(is_lower_hex(trace_id, 32), "{trace_id}");
                assert!(is_lower_hex(span_id, 16), "{span_id}");
                assert!(span_ids.insert(span_id), "span id {span_id} sent twice");
                assert_eq!(span["metadata"]["bench_run"], "0000abcd");
                // One order over all traces: by end time, as spans end.
                let end = nanos(span, "timestamp");
                assert!(
                    end >= last_end,
                    "span {span_id} ends before one sent earlier"
                );
                last_end = end;
                let sent = by_trace.entry(trace_id).or_default();
                sent.spans.insert(span_id, (position, request, span));
                sent.requests.insert(request);
                position += 1;
            }
        }
        assert_eq!(by_trace.len(), traces, "trace ids are distinct");

        let mut spread = 0;
        for (trace_id, sent) in &by_trace {
            assert_eq!(sent.spans.len(), trace_len, "{trace_id}");
            let roots: Vec<_> = sent
                .spans
                .values()
                .filter(|(_, _, span)| span.get("span_parent_id").is_none())
                .collect();
            assert_eq!(roots.len(), 1, "{trace_id}: one root");
            let (root_position, _, root) = roots[0];
            assert_eq!(root["log_type"], "agent");
            let last = sent.spans.values().map(|(position, _, _)| *position).max();
            assert_eq!(
                last,
                Some(*root_position),
                "{trace_id}: the root is sent last"
            );
            for (span_id, (position, _, span)) in &sent.spans {
                let Some(parent_id) = span.get("span_parent_id") else {
                    continue;
                };
                let (parent_position, _, parent) = sent.spans[parent_id.as_str().unwrap()];
                assert!(
                    parent_position > *position,
                    "{trace_id}: child {span_id} is sent before its parent"
                );
                assert!(nanos(span, "start_time") >= nanos(parent, "start_time"));
                assert!(nanos(span, "timestamp") < nanos(parent, "timestamp"));
                assert!(nanos(span, "start_time") < nanos(span, "timestamp"));
            }
            if sent.requests.len() > 1 {
                spread += 1;
            }
        }
        // 16 traces in flight: a trace's 12 spans mix with about 180 others while it runs, so
        // no trace arrives in one request.
        assert_eq!(
            spread, traces,
            "only {spread} of {traces} traces spread over several requests"
        );
    }

    #[test]
    fn one_trace_in_flight_sends_traces_one_after_another() {
        let requests = realistic_requests(3, 10, 7, 1, 10);
        let traces: Vec<&str> = requests
            .iter()
            .flatten()
            .map(|span| span["trace_unique_id"].as_str().unwrap())
            .collect();
        assert_eq!(traces.len(), 70);
        for (index, chunk) in traces.chunks(7).enumerate() {
            assert!(
                chunk.iter().all(|id| *id == chunk[0]),
                "trace {index} is contiguous"
            );
        }
        // The seed decides ids and texts.
        assert_eq!(requests, realistic_requests(3, 10, 7, 1, 10));
        assert_ne!(requests, realistic_requests(4, 10, 7, 1, 10));
    }

    #[test]
    fn realistic_traces_look_like_agent_runs() {
        let spans: Vec<Value> = realistic_requests(11, 1, 50, 1, 100).concat();
        assert_eq!(spans.len(), 50);
        let by_id: std::collections::HashMap<&str, &Value> = spans
            .iter()
            .map(|span| (span["span_unique_id"].as_str().unwrap(), span))
            .collect();
        let parent = |span: &Value| {
            span.get("span_parent_id")
                .map(|id| by_id[id.as_str().unwrap()])
        };
        let depth = |span: &Value| {
            let mut depth = 0;
            let mut at = span;
            while let Some(up) = parent(at) {
                depth += 1;
                at = up;
            }
            depth
        };
        let root = spans.last().unwrap();
        assert_eq!(root["span_name"], "support_agent.agent");
        assert!(root["input"].is_string() && root["output"].is_string());
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for span in &spans {
            let kind = span["log_type"].as_str().unwrap();
            *kinds.entry(kind).or_default() += 1;
            assert!(
                ["agent", "workflow", "chat", "tool", "task"].contains(&kind),
                "{kind}"
            );
            if kind == "chat" {
                assert!(span["model"].is_string());
                assert!(["openai", "anthropic"].contains(&span["provider_id"].as_str().unwrap()));
                assert!(span["prompt_tokens"].as_u64().unwrap() > 0);
                assert!(span["completion_tokens"].as_u64().unwrap() > 0);
                assert_eq!(span["prompt_messages"].as_array().unwrap().len(), 2);
                assert_eq!(span["completion_message"]["role"], "assistant");
            }
            if kind == "workflow" {
                assert_eq!(parent(span), Some(root), "steps sit under the root");
            }
            let size = serde_json::to_string(span).unwrap().len();
            assert!((700..=2800).contains(&size), "{size} bytes: {span}");
        }
        assert_eq!(kinds["agent"], 1);
        assert!(kinds["workflow"] >= 5, "{kinds:?}");
        assert!(kinds["chat"] >= 5 && kinds["tool"] >= 5, "{kinds:?}");
        // Chat and tool calls inside steps: agent -> step -> chat / tool.
        assert!(
            spans
                .iter()
                .any(|s| s["log_type"] == "chat" && depth(s) == 2)
        );
        assert!(
            spans
                .iter()
                .any(|s| s["log_type"] == "tool" && depth(s) == 2)
        );
        // The last thing the agent does is write the answer.
        let last_child = spans.iter().rfind(|s| parent(s) == Some(root)).unwrap();
        assert_eq!(last_child["log_type"], "chat");
        assert!(
            span_logs_to_otlp_protobuf(&spans, "t").is_ok(),
            "ids fit OTLP"
        );

        // The shortest trace: the agent and its answer.
        let spans = realistic_requests(1, 1, 2, 1, 100).concat();
        let kinds: Vec<&str> = spans
            .iter()
            .map(|s| s["log_type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["chat", "agent"]);
    }

    #[test]
    fn requests_per_trace_counts_the_requests_holding_each_trace() {
        // Requests of three spans, [0 1 0] and [1 2 2]: trace 1 is in both, 0 and 2 in one.
        let order = [0, 1, 0, 1, 2, 2];
        assert_eq!(mean_requests_per_trace(order.into_iter(), 3, 3), 4.0 / 3.0);
        // Whole 10-span traces in requests of 100 spans: one request each.
        let whole = (0..1000).map(|position| position / 10);
        assert_eq!(mean_requests_per_trace(whole, 100, 100), 1.0);
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
