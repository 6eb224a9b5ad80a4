//! `tracehouse bench read`: times the read API's calls from outside, over HTTP, as the web
//! viewer and API clients make them.
//!
//! It asks only what the data can answer: before timing anything it reads the newest spans and
//! traces and picks a model, a metadata pair, a word and a trace that are there (or takes the
//! ones given on the command line), so it works against any store, including one filled by
//! `bench ingest`. Every call then runs once to warm up, and then in `--calls` rounds of every
//! call, one request at a time on one keep-alive connection: rounds rather than each call's
//! runs in a row, so that under a load that changes (ingest running, the store growing) every
//! call is timed under the same conditions. A call is timed from sending the request to the
//! last byte of the answer; the answer is parsed afterwards, outside the clock.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tracehouse_core::Timestamp;

use super::bench::require_loopback;
use crate::cli::BenchReadArgs;

/// Newest spans read to discover the model, metadata pair and word.
const SAMPLE_SPANS: usize = 200;
/// Newest traces read to discover the trace to fetch.
const SAMPLE_TRACES: usize = 50;
/// Page size of the timed list calls: a page of the web viewer.
const PAGE_SIZE: &str = "50";
/// Words that say nothing about the data: English function words and the keys and roles of
/// chat messages, which search text holds as JSON.
const STOP_WORDS: &[&str] = &[
    "about",
    "after",
    "also",
    "assistant",
    "been",
    "content",
    "could",
    "does",
    "each",
    "false",
    "from",
    "function",
    "have",
    "help",
    "here",
    "into",
    "just",
    "more",
    "name",
    "null",
    "only",
    "role",
    "should",
    "some",
    "system",
    "than",
    "that",
    "their",
    "them",
    "then",
    "there",
    "they",
    "this",
    "true",
    "type",
    "user",
    "very",
    "were",
    "what",
    "when",
    "where",
    "which",
    "will",
    "with",
    "would",
    "your",
];

/// One value to ask about, and why it was chosen.
#[derive(Debug, Clone, PartialEq)]
struct Pick<T> {
    value: T,
    why: String,
}

impl<T> Pick<T> {
    fn given(value: T) -> Self {
        Self {
            value,
            why: "given".to_owned(),
        }
    }
}

/// What the sample of newest spans suggests.
#[derive(Debug, Default, PartialEq)]
struct Discovered {
    model: Option<Pick<String>>,
    word: Option<Pick<String>>,
    /// A metadata key path (nested keys joined with `__`) and one of its scalar values.
    metadata: Option<Pick<(String, Value)>>,
}

/// Increments `counts[key]` for every distinct key of `keys`.
fn count_once<K: std::hash::Hash + Eq + Clone>(counts: &mut HashMap<K, usize>, keys: HashSet<K>) {
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
}

/// The key seen in the most spans; ties go to the smallest key, so the choice is stable.
fn most_common<K: Ord + Clone>(counts: &HashMap<K, usize>) -> Option<(K, usize)> {
    counts
        .iter()
        .max_by(|(a, a_count), (b, b_count)| a_count.cmp(b_count).then_with(|| b.cmp(a)))
        .map(|(key, count)| (key.clone(), *count))
}

/// Picks a model, a word and a metadata pair from spans in the read API's shape: for each, the
/// one present in the most spans.
fn discover(spans: &[Value]) -> Discovered {
    let mut models: HashMap<String, usize> = HashMap::new();
    let mut words: HashMap<String, usize> = HashMap::new();
    let mut pairs: HashMap<(String, String), usize> = HashMap::new();
    let mut pair_values: HashMap<(String, String), Value> = HashMap::new();
    for span in spans {
        if let Some(model) = span["model"].as_str().filter(|m| !m.is_empty()) {
            count_once(&mut models, HashSet::from([model.to_owned()]));
        }
        let mut texts = Vec::new();
        for field in [
            "span_name",
            "input",
            "output",
            "prompt_messages",
            "completion_message",
        ] {
            string_leaves(&span[field], &mut texts);
        }
        count_once(
            &mut words,
            texts.iter().flat_map(|text| words_of(text)).collect(),
        );
        let mut flat = Vec::new();
        flatten_metadata("", &span["metadata"], &mut flat);
        let mut seen = HashSet::new();
        for (key, value) in flat {
            let canonical = (key, value.to_string());
            pair_values.entry(canonical.clone()).or_insert(value);
            seen.insert(canonical);
        }
        count_once(&mut pairs, seen);
    }
    let of = |count: usize| format!("in {count} of the newest {} spans", spans.len());
    Discovered {
        model: most_common(&models).map(|(value, count)| Pick {
            value,
            why: of(count),
        }),
        word: most_common(&words).map(|(value, count)| Pick {
            value,
            why: of(count),
        }),
        metadata: most_common(&pairs).and_then(|(pair, count)| {
            let value = pair_values.get(&pair)?.clone();
            Some(Pick {
                value: (pair.0, value),
                why: of(count),
            })
        }),
    }
}

/// Every string inside `value`, not object keys.
fn string_leaves<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|item| string_leaves(item, out)),
        Value::Object(object) => object.values().for_each(|item| string_leaves(item, out)),
        _ => {}
    }
}

/// Words a search would find as whole words on any store: runs of four or more ASCII letters
/// between non-alphanumeric characters, lowercased, stop words left out.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.len() >= 4 && word.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
}

/// Metadata as the server indexes it: scalars under their key path (nested keys joined with
/// `__`, array elements under their array's key), booleans as text, nulls left out.
fn flatten_metadata(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(object) => {
            for (key, nested) in object {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}__{key}")
                };
                flatten_metadata(&path, nested, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| flatten_metadata(prefix, item, out)),
        Value::Null => {}
        Value::Bool(flag) if !prefix.is_empty() => {
            out.push((prefix.to_owned(), Value::String(flag.to_string())));
        }
        scalar if !prefix.is_empty() => out.push((prefix.to_owned(), scalar.clone())),
        _ => {}
    }
}

/// A `--metadata` value: a number when it reads as one, else text.
fn metadata_value(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw.trim()) {
        Ok(number @ Value::Number(_)) => number,
        _ => Value::String(raw.to_owned()),
    }
}

/// Whether a span's metadata holds `wanted` at `path` (an array holding it counts).
fn metadata_matches(metadata: &Value, path: &str, wanted: &Value) -> bool {
    let mut flat = Vec::new();
    flatten_metadata("", metadata, &mut flat);
    flat.iter()
        .any(|(key, value)| key == path && scalar_equals(value, wanted))
}

fn scalar_equals(value: &Value, wanted: &Value) -> bool {
    match (value.as_f64(), wanted.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => value == wanted,
    }
}

/// The trace with the most spans among `traces` (the newest first; ties go to the newer).
/// The `field` (thread or customer) of the newest trace that names one.
fn pick_named(traces: &[Value], field: &str) -> Option<Pick<String>> {
    traces.iter().find_map(|trace| {
        trace[field]
            .as_str()
            .filter(|value| !value.is_empty())
            .map(|value| Pick {
                value: value.to_owned(),
                why: format!("of the newest trace that names a {field}"),
            })
    })
}

fn pick_trace(traces: &[Value]) -> Option<Pick<String>> {
    let mut best: Option<(&str, u64)> = None;
    for trace in traces {
        let (Some(id), Some(spans)) = (
            trace["trace_unique_id"].as_str(),
            trace["span_count"].as_u64(),
        ) else {
            continue;
        };
        if best.is_none_or(|(_, most)| spans > most) {
            best = Some((id, spans));
        }
    }
    best.map(|(id, spans)| Pick {
        value: id.to_owned(),
        why: format!(
            "{spans} spans, the most among the newest {} traces",
            traces.len()
        ),
    })
}

/// What the rows of a filtered answer must satisfy.
#[derive(Debug, Clone)]
enum RowCheck {
    None,
    /// Span rows whose `model` is this.
    SpanModel(String),
    /// Trace rows whose `models` hold this.
    TraceModel(String),
    /// Span rows whose metadata holds this value at this key path.
    SpanMetadata(String, Value),
}

impl RowCheck {
    fn matches(&self, row: &Value) -> bool {
        match self {
            Self::None => true,
            Self::SpanModel(model) => row["model"].as_str() == Some(model),
            Self::TraceModel(model) => row["models"]
                .as_array()
                .is_some_and(|models| models.iter().any(|m| m.as_str() == Some(model))),
            Self::SpanMetadata(path, value) => metadata_matches(&row["metadata"], path, value),
        }
    }
}

/// How to read the size of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerKind {
    /// `{"count", "results"}`: count is `count`, rows are the results.
    List,
    /// One trace: count is `span_count`, rows are the spans in `span_tree`.
    Trace,
    /// Totals: count is `number_of_requests`.
    Summary,
    /// `{"series", "buckets"}`: rows are the buckets.
    Timeseries,
    /// One thread: count is `trace_count`, rows are the traces of its first page.
    Thread,
}

/// The size of one answer.
#[derive(Debug, Clone, Default, PartialEq)]
struct Measures {
    count: Option<u64>,
    count_is_exact: Option<bool>,
    rows: Option<u64>,
    series: Option<u64>,
    /// Rows that do not satisfy the call's filter.
    mismatched_rows: u64,
}

fn count_tree(nodes: &Value) -> u64 {
    nodes.as_array().map_or(0, |nodes| {
        nodes
            .iter()
            .map(|node| 1 + count_tree(&node["children"]))
            .sum()
    })
}

fn measure(kind: AnswerKind, check: &RowCheck, body: &Value) -> Measures {
    match kind {
        AnswerKind::List => {
            let results = body["results"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            Measures {
                count: body["count"].as_u64(),
                count_is_exact: body["count_is_exact"].as_bool(),
                rows: Some(results.len() as u64),
                series: None,
                mismatched_rows: results.iter().filter(|row| !check.matches(row)).count() as u64,
            }
        }
        AnswerKind::Trace => Measures {
            count: body["span_count"].as_u64(),
            rows: Some(count_tree(&body["span_tree"])),
            ..Measures::default()
        },
        AnswerKind::Summary => Measures {
            count: body["number_of_requests"].as_u64(),
            ..Measures::default()
        },
        AnswerKind::Timeseries => Measures {
            rows: body["buckets"].as_array().map(|b| b.len() as u64),
            series: body["series"].as_array().map(|s| s.len() as u64),
            ..Measures::default()
        },
        AnswerKind::Thread => Measures {
            count: body["trace_count"].as_u64(),
            rows: body["traces"].as_array().map(|t| t.len() as u64),
            ..Measures::default()
        },
    }
}

/// One timed call of the table.
#[derive(Debug, Clone)]
struct Call {
    id: &'static str,
    label: &'static str,
    post: bool,
    url: reqwest::Url,
    body: Option<Value>,
    kind: AnswerKind,
    check: RowCheck,
    /// Why the call cannot be made on this data.
    skipped: Option<String>,
}

/// An answer as received: its status, the time to its last byte, and its body.
struct Answer {
    /// 0 when no answer arrived.
    status: u16,
    elapsed: Duration,
    body: Result<Value, String>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.body.is_ok()
    }

    /// What went wrong, for the report: the server's message or the transport error.
    fn problem(&self) -> String {
        let status = match self.status {
            0 => "no answer".to_owned(),
            status => format!("HTTP {status}"),
        };
        match &self.body {
            Err(error) => format!("{status}: {error}"),
            Ok(body) => match body["message"].as_str().or(body["error"].as_str()) {
                Some(message) => format!("{status}: {message}"),
                None => status,
            },
        }
    }
}

struct Http {
    client: reqwest::Client,
    key: String,
}

impl Http {
    async fn send(&self, post: bool, url: &reqwest::Url, body: Option<&Value>) -> Answer {
        let mut request = if post {
            self.client.post(url.clone())
        } else {
            self.client.get(url.clone())
        };
        request = request.bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let sent = Instant::now();
        let received = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.bytes().await.map_err(|e| e.to_string()))
            }
            Err(error) => (0, Err(error.to_string())),
        };
        let elapsed = sent.elapsed();
        let (status, bytes) = received;
        let body = bytes.and_then(|bytes| {
            serde_json::from_slice(&bytes).map_err(|_| {
                format!(
                    "not JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )
            })
        });
        Answer {
            status,
            elapsed,
            body,
        }
    }

    /// A discovery request, which must succeed.
    async fn get_json(&self, url: &reqwest::Url) -> anyhow::Result<Value> {
        let answer = self.send(false, url, None).await;
        if !answer.ok() {
            bail!("GET {url} failed: {}", answer.problem());
        }
        answer.body.map_err(anyhow::Error::msg)
    }
}

/// What was timed for one call, and what its answers held.
#[derive(Debug, Clone, Default, PartialEq)]
struct CallResult {
    /// Latencies of the timed calls (warm-up excluded).
    latencies: Vec<Duration>,
    /// The status of the first failed answer, else of the last one.
    status: Option<u16>,
    /// Answers (warm-up included) that were not 2xx JSON.
    errors: usize,
    /// The first failure, described.
    error: Option<String>,
    /// The size of the last good answer; mismatched rows summed over all answers.
    measures: Measures,
}

impl CallResult {
    fn record(&mut self, answer: &Answer, kind: AnswerKind, check: &RowCheck) {
        if answer.ok() {
            if let Ok(body) = &answer.body {
                let mismatched = self.measures.mismatched_rows;
                self.measures = measure(kind, check, body);
                self.measures.mismatched_rows += mismatched;
            }
            if self.errors == 0 {
                self.status = Some(answer.status);
            }
        } else {
            if self.errors == 0 {
                self.status = Some(answer.status);
                self.error = Some(answer.problem());
            }
            self.errors += 1;
        }
    }

    fn failed(&self) -> bool {
        self.errors > 0 || self.measures.mismatched_rows > 0
    }
}

/// Nearest-rank percentile of sorted latencies: the smallest value with at least `p` of the
/// values at or below it.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn millis(duration: Option<Duration>) -> Value {
    duration.map_or(Value::Null, |d| json!(d.as_secs_f64() * 1e3))
}

/// The JSON report of one call.
fn call_json(call: &Call, result: &CallResult) -> Value {
    let mut sorted = result.latencies.clone();
    sorted.sort_unstable();
    let path = match call.url.query() {
        Some(query) => format!("{}?{query}", call.url.path()),
        None => call.url.path().to_owned(),
    };
    let measures = &result.measures;
    json!({
        "id": call.id,
        "call": call.label,
        "method": if call.post { "POST" } else { "GET" },
        "path": path,
        "body": call.body,
        "skipped": call.skipped,
        "calls": sorted.len(),
        "p50_ms": millis(percentile(&sorted, 0.50)),
        "p95_ms": millis(percentile(&sorted, 0.95)),
        "max_ms": millis(sorted.last().copied()),
        "status": result.status,
        "ok": call.skipped.is_none() && !result.failed(),
        "errors": result.errors,
        "error": result.error,
        "count": measures.count,
        "count_is_exact": measures.count_is_exact,
        "rows": measures.rows,
        "series": measures.series,
        "mismatched_rows": measures.mismatched_rows,
    })
}

/// The calls of the table for what was chosen.
fn plan_calls(base: &reqwest::Url, chosen: &Chosen) -> anyhow::Result<Vec<Call>> {
    let url = |path: &str, query: &[(&str, &str)]| -> anyhow::Result<reqwest::Url> {
        let mut url = base
            .join(path)
            .with_context(|| format!("cannot build a URL for {path}"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    };
    let page = [("page_size", PAGE_SIZE)];
    let model_filter =
        |model: &str| json!({"filters": {"model": {"operator": "", "value": [model]}}});
    let model = chosen.model.as_ref().map(|pick| pick.value.as_str());
    let word = chosen.word.as_ref().map(|pick| pick.value.as_str());
    let no_model = "no span among the newest has a model; give --model";
    let no_word = "no word found in the newest spans; give --word";
    let call = |id, label, post, url, body, kind, check, skipped: Option<&str>| Call {
        id,
        label,
        post,
        url,
        body,
        kind,
        check,
        skipped: skipped.map(str::to_owned),
    };

    // `/api/<prefix>/<id>/`, the id one path segment whatever it holds.
    let item_url = |prefix: &str, pick: Option<&Pick<String>>| -> anyhow::Result<reqwest::Url> {
        let mut item = url(prefix, &[])?;
        if let Some(pick) = pick {
            item.path_segments_mut()
                .map_err(|()| anyhow::anyhow!("--url cannot be a base URL"))?
                .pop_if_empty()
                .push(&pick.value)
                .push("");
        }
        Ok(item)
    };
    let trace_url = item_url("/api/traces/", chosen.trace.as_ref())?;
    let metadata = chosen.metadata.as_ref().map(|pick| &pick.value);
    let timeseries = url(
        "/api/metrics/timeseries/",
        &[
            ("metric", "cost"),
            ("group_by", "model"),
            // Hourly, as the dashboard charts any range past three hours: an all-time chart.
            ("interval", "hour"),
            ("start_time", &chosen.start_time),
            ("end_time", &chosen.end_time),
        ],
    )?;
    Ok(vec![
        call(
            "trace_fetch",
            "trace fetch",
            false,
            trace_url,
            None,
            AnswerKind::Trace,
            RowCheck::None,
            chosen.trace.is_none().then_some("no trace found; give --trace"),
        ),
        call(
            "newest_traces",
            "newest traces",
            false,
            url("/api/traces/list/", &page)?,
            None,
            AnswerKind::List,
            RowCheck::None,
            None,
        ),
        call(
            "traces_by_model",
            "traces by model",
            true,
            url("/api/traces/list/", &page)?,
            model.map(model_filter),
            AnswerKind::List,
            model.map_or(RowCheck::None, |m| RowCheck::TraceModel(m.to_owned())),
            model.is_none().then_some(no_model),
        ),
        call(
            "newest_spans",
            "newest spans",
            false,
            url("/api/request-logs/list/", &page)?,
            None,
            AnswerKind::List,
            RowCheck::None,
            None,
        ),
        call(
            "spans_by_model",
            "spans by model",
            true,
            url("/api/request-logs/list/", &page)?,
            model.map(model_filter),
            AnswerKind::List,
            model.map_or(RowCheck::None, |m| RowCheck::SpanModel(m.to_owned())),
            model.is_none().then_some(no_model),
        ),
        call(
            "span_search",
            "span search",
            false,
            url(
                "/api/request-logs/list/",
                &[("page_size", PAGE_SIZE), ("search", word.unwrap_or(""))],
            )?,
            None,
            AnswerKind::List,
            RowCheck::None,
            word.is_none().then_some(no_word),
        ),
        call(
            "trace_search",
            "trace search",
            false,
            url(
                "/api/traces/list/",
                &[("page_size", PAGE_SIZE), ("search", word.unwrap_or(""))],
            )?,
            None,
            AnswerKind::List,
            RowCheck::None,
            word.is_none().then_some(no_word),
        ),
        call(
            "summary_by_model",
            "summary by model",
            true,
            url("/api/request-logs/summary/", &[])?,
            model.map(model_filter),
            AnswerKind::Summary,
            RowCheck::None,
            model.is_none().then_some(no_model),
        ),
        call(
            "spans_by_metadata",
            "spans by metadata",
            true,
            url("/api/request-logs/list/", &page)?,
            metadata.map(|(key, value)| {
                json!({"filters": {format!("metadata__{key}"): {"operator": "", "value": [value]}}})
            }),
            AnswerKind::List,
            metadata.map_or(RowCheck::None, |(key, value)| {
                RowCheck::SpanMetadata(key.clone(), value.clone())
            }),
            metadata
                .is_none()
                .then_some("no span among the newest has metadata; give --metadata"),
        ),
        call(
            "cost_by_model",
            "cost by model, all time",
            false,
            timeseries,
            None,
            AnswerKind::Timeseries,
            RowCheck::None,
            None,
        ),
        call(
            "threads",
            "threads, latest first",
            false,
            url("/api/log_threads/", &page)?,
            None,
            AnswerKind::List,
            RowCheck::None,
            None,
        ),
        call(
            "thread_fetch",
            "thread fetch",
            false,
            item_url("/api/log_thread/", chosen.thread.as_ref())?,
            None,
            AnswerKind::Thread,
            RowCheck::None,
            chosen
                .thread
                .is_none()
                .then_some("no trace among the newest names a thread; give --thread"),
        ),
        call(
            "users_by_cost",
            "users by cost, 30-day chart",
            false,
            // What the Users page asks: the costliest users with each one's daily cost.
            url(
                "/api/users/list/",
                &[
                    ("page_size", PAGE_SIZE),
                    ("sort_by", "-total_cost"),
                    ("cost_interval", "day"),
                    ("cost_buckets", "30"),
                ],
            )?,
            None,
            AnswerKind::List,
            RowCheck::None,
            None,
        ),
        call(
            "user_fetch",
            "user fetch",
            false,
            item_url("/api/users/", chosen.customer.as_ref())?,
            None,
            AnswerKind::Summary,
            RowCheck::None,
            chosen
                .customer
                .is_none()
                .then_some("no trace among the newest names a customer; give --customer"),
        ),
    ])
}

/// What the calls ask about.
#[derive(Debug)]
struct Chosen {
    model: Option<Pick<String>>,
    word: Option<Pick<String>>,
    metadata: Option<Pick<(String, Value)>>,
    trace: Option<Pick<String>>,
    thread: Option<Pick<String>>,
    customer: Option<Pick<String>>,
    /// The oldest span's start.
    start_time: String,
    /// A second after the newest span's start.
    end_time: String,
}

impl Chosen {
    fn json(&self) -> Value {
        let pick = |pick: Option<&Pick<String>>| {
            pick.map_or(Value::Null, |p| json!({"value": p.value, "why": p.why}))
        };
        json!({
            "model": pick(self.model.as_ref()),
            "word": pick(self.word.as_ref()),
            "metadata": self.metadata.as_ref().map_or(Value::Null, |p| {
                json!({"key": p.value.0, "value": p.value.1, "why": p.why})
            }),
            "trace_id": pick(self.trace.as_ref()),
            "thread": pick(self.thread.as_ref()),
            "customer": pick(self.customer.as_ref()),
            "start_time": self.start_time,
            "end_time": self.end_time,
        })
    }
}

/// The project's name, span count and trace count.
async fn project_counts(http: &Http, base: &reqwest::Url) -> anyhow::Result<(String, u64, u64)> {
    let project = http.get_json(&base.join("/api/projects/current/")?).await?;
    Ok((
        project["name"].as_str().unwrap_or("").to_owned(),
        project["span_count"].as_u64().unwrap_or(0),
        project["trace_count"].as_u64().unwrap_or(0),
    ))
}

/// Reads the newest spans and traces and the oldest span, and chooses what to ask.
async fn choose(http: &Http, base: &reqwest::Url, args: &BenchReadArgs) -> anyhow::Result<Chosen> {
    let sample_size = SAMPLE_SPANS.to_string();
    let mut newest = base.join("/api/request-logs/list/")?;
    newest.query_pairs_mut().extend_pairs([
        ("page_size", sample_size.as_str()),
        ("sort_by", "-start_time"),
    ]);
    let newest = http.get_json(&newest).await?;
    let spans = newest["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let Some(newest_start) = spans.first().and_then(|span| span["start_time"].as_str()) else {
        bail!(
            "the project has no spans to read; fill it first, e.g. with `tracehouse bench ingest`"
        );
    };
    let mut oldest = base.join("/api/request-logs/list/")?;
    oldest
        .query_pairs_mut()
        .extend_pairs([("page_size", "1"), ("sort_by", "start_time")]);
    let oldest = http.get_json(&oldest).await?;
    let oldest_start = oldest["results"][0]["start_time"]
        .as_str()
        .context("the oldest span has no start_time")?;
    let newest_ns = Timestamp::parse(newest_start)
        .map_err(|e| anyhow::anyhow!("cannot read the newest span's start_time: {e}"))?
        .unix_nanos();

    let discovered = discover(spans);
    let mut url = base.join("/api/traces/list/")?;
    url.query_pairs_mut()
        .append_pair("page_size", &SAMPLE_TRACES.to_string());
    let traces = http.get_json(&url).await?;
    let traces = traces["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let given = |value: &Option<String>| value.clone().map(Pick::given);
    let trace = given(&args.trace).or_else(|| pick_trace(traces));
    let thread = given(&args.thread).or_else(|| pick_named(traces, "thread_identifier"));
    let customer = given(&args.customer).or_else(|| pick_named(traces, "customer_identifier"));
    Ok(Chosen {
        model: args.model.clone().map(Pick::given).or(discovered.model),
        word: args.word.clone().map(Pick::given).or(discovered.word),
        metadata: match &args.metadata {
            Some((key, value)) => Some(Pick::given((key.clone(), metadata_value(value)))),
            None => discovered.metadata,
        },
        trace,
        thread,
        customer,
        start_time: oldest_start.to_owned(),
        end_time: Timestamp::from_unix_nanos(newest_ns.saturating_add(1_000_000_000)).to_rfc3339(),
    })
}

pub(super) async fn run(args: BenchReadArgs) -> anyhow::Result<ExitCode> {
    let base =
        reqwest::Url::parse(&args.url).with_context(|| format!("invalid --url {:?}", args.url))?;
    require_loopback(&base)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()?;
    let http = Http {
        client,
        key: args.key.clone(),
    };
    let (project, spans_before, traces_before) = project_counts(&http, &base).await?;
    let chosen = choose(&http, &base, &args).await?;
    let calls = plan_calls(&base, &chosen)?;
    if !args.json {
        print_header(&args.url, &project, spans_before, traces_before, args.calls);
        print_chosen(&chosen);
    }

    let started = Instant::now();
    let mut results: Vec<CallResult> = calls.iter().map(|_| CallResult::default()).collect();
    for (call, result) in calls.iter().zip(&mut results) {
        if call.skipped.is_none() {
            let warm_up = http.send(call.post, &call.url, call.body.as_ref()).await;
            result.record(&warm_up, call.kind, &call.check);
        }
    }
    // A call that fails warm is not timed: only its errors would be measured.
    let timed: Vec<bool> = calls
        .iter()
        .zip(&results)
        .map(|(call, result)| call.skipped.is_none() && result.errors == 0)
        .collect();
    for _ in 0..args.calls {
        for ((call, result), timed) in calls.iter().zip(&mut results).zip(&timed) {
            if *timed {
                let answer = http.send(call.post, &call.url, call.body.as_ref()).await;
                result.latencies.push(answer.elapsed);
                result.record(&answer, call.kind, &call.check);
            }
        }
    }
    let elapsed = started.elapsed();
    let (_, spans_after, traces_after) = project_counts(&http, &base).await?;

    let results: Vec<Value> = calls
        .iter()
        .zip(&results)
        .map(|(call, result)| call_json(call, result))
        .collect();
    let ok = results
        .iter()
        .all(|r| r["ok"] == true || r["skipped"].is_string());
    let report = json!({
        "url": args.url,
        "project": project,
        "span_count": spans_before,
        "trace_count": traces_before,
        "calls_each": args.calls,
        "chosen": chosen.json(),
        "results": results,
        "elapsed_seconds": elapsed.as_secs_f64(),
        "span_count_after": spans_after,
        "trace_count_after": traces_after,
        "ok": ok,
    });
    if args.json {
        println!("{report}");
    } else {
        print!("{}", render_table(&report));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_header(url: &str, project: &str, spans: u64, traces: u64, calls: u32) {
    println!(
        "tracehouse bench read: {url}, project {project:?}: {} spans in {} traces",
        thousands(spans),
        thousands(traces)
    );
    println!("  a warm-up round, then {calls} timed rounds of every call, one request at a time");
}

fn print_chosen(chosen: &Chosen) {
    let line = |what: &str, value: &str, why: &str| println!("  {what:<9} {value}  ({why})");
    match &chosen.model {
        Some(pick) => line("model", &pick.value, &pick.why),
        None => println!("  {:<9} none", "model"),
    }
    match &chosen.word {
        Some(pick) => line("word", &pick.value, &pick.why),
        None => println!("  {:<9} none", "word"),
    }
    match &chosen.metadata {
        Some(pick) => {
            let value = match &pick.value.1 {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            line("metadata", &format!("{}={value}", pick.value.0), &pick.why);
        }
        None => println!("  {:<9} none", "metadata"),
    }
    for (what, pick) in [
        ("trace", &chosen.trace),
        ("thread", &chosen.thread),
        ("customer", &chosen.customer),
    ] {
        match pick {
            Some(pick) => line(what, &pick.value, &pick.why),
            None => println!("  {what:<9} none"),
        }
    }
    println!(
        "  {:<9} {} .. {}",
        "time", chosen.start_time, chosen.end_time
    );
    println!();
}

/// `1234567` as `1,234,567`.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The table of a report: one line per call, then the failures, then how the store changed.
fn render_table(report: &Value) -> String {
    let mut out = format!(
        "  {:<24} {:>9} {:>9} {:>9} {:>6} {:>10} {:>6} {:>6}\n",
        "call", "p50 ms", "p95 ms", "max ms", "status", "count", "exact", "rows"
    );
    let ms = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |ms| format!("{ms:.2}"))
    };
    let number = |value: &Value| value.as_u64().map_or("-".to_owned(), thousands);
    let mut problems = Vec::new();
    for result in report["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let label = result["call"].as_str().unwrap_or("");
        if let Some(reason) = result["skipped"].as_str() {
            out.push_str(&format!("  {label:<24} skipped: {reason}\n"));
            continue;
        }
        let status = match result["status"].as_u64() {
            Some(0) => "none".to_owned(),
            Some(status) if result["errors"].as_u64().unwrap_or(0) > 0 => format!("{status}!"),
            Some(status) => status.to_string(),
            None => "-".to_owned(),
        };
        let exact = match result["count_is_exact"].as_bool() {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        out.push_str(&format!(
            "  {label:<24} {:>9} {:>9} {:>9} {status:>6} {:>10} {exact:>6} {:>6}\n",
            ms(&result["p50_ms"]),
            ms(&result["p95_ms"]),
            ms(&result["max_ms"]),
            number(&result["count"]),
            number(&result["rows"]),
        ));
        if let Some(error) = result["error"].as_str() {
            let errors = result["errors"].as_u64().unwrap_or(0);
            problems.push(format!(
                "{label}: {errors} failed answer{}, first {error}",
                if errors == 1 { "" } else { "s" }
            ));
        }
        let mismatched = result["mismatched_rows"].as_u64().unwrap_or(0);
        if mismatched > 0 {
            problems.push(format!(
                "{label}: {mismatched} rows returned do not match the filter"
            ));
        }
    }
    out.push_str(
        "  count: the answer's count (lists), span_count (trace), number_of_requests (summary);\n  rows: results (lists), spans in the tree (trace), buckets (timeseries)\n",
    );
    for problem in &problems {
        out.push_str(&format!("  error: {problem}\n"));
    }
    let (before, after) = (
        report["span_count"].as_u64().unwrap_or(0),
        report["span_count_after"].as_u64().unwrap_or(0),
    );
    let seconds = report["elapsed_seconds"].as_f64().unwrap_or(0.0);
    if after != before {
        out.push_str(&format!(
            "  the store grew by {} spans while the calls ran ({:.1} s, {:.0} spans/s)\n",
            thousands(after.saturating_sub(before)),
            seconds,
            after.saturating_sub(before) as f64 / seconds.max(1e-9)
        ));
    } else {
        out.push_str(&format!(
            "  no spans were written while the calls ran ({seconds:.1} s)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted = ms(&(1..=40).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 0.50), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&sorted, 0.95), Some(Duration::from_millis(38)));
        assert_eq!(percentile(&sorted, 1.0), Some(Duration::from_millis(40)));
        assert_eq!(percentile(&ms(&[7]), 0.5), Some(Duration::from_millis(7)));
        assert_eq!(
            percentile(&ms(&[1, 2, 3]), 0.5),
            Some(Duration::from_millis(2))
        );
        assert_eq!(percentile(&[], 0.5), None);
    }

    fn answer(status: u16, millis: u64, body: Value) -> Answer {
        Answer {
            status,
            elapsed: Duration::from_millis(millis),
            body: Ok(body),
        }
    }

    fn test_call(kind: AnswerKind, check: RowCheck) -> Call {
        Call {
            id: "spans_by_model",
            label: "spans by model",
            post: true,
            url: reqwest::Url::parse("http://127.0.0.1:1/api/request-logs/list/?page_size=50")
                .unwrap(),
            body: Some(json!({"filters": {}})),
            kind,
            check,
            skipped: None,
        }
    }

    #[test]
    fn a_report_gives_percentiles_sizes_and_failures() {
        let call = test_call(AnswerKind::List, RowCheck::SpanModel("m".into()));
        let mut result = CallResult::default();
        let page = json!({"count": 120, "count_is_exact": false, "results": [{"model": "m"}, {"model": "m"}]});
        for millis in [30, 10, 20, 40] {
            let answer = answer(200, millis, page.clone());
            result.latencies.push(answer.elapsed);
            result.record(&answer, call.kind, &call.check);
        }
        let report = call_json(&call, &result);
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["calls"], 4);
        assert_eq!(report["p50_ms"], 20.0);
        assert_eq!(report["p95_ms"], 40.0);
        assert_eq!(report["max_ms"], 40.0);
        assert_eq!(report["status"], 200);
        assert_eq!(report["count"], 120);
        assert_eq!(report["count_is_exact"], false);
        assert_eq!(report["rows"], 2);
        assert_eq!(report["method"], "POST");
        assert_eq!(report["path"], "/api/request-logs/list/?page_size=50");

        // A failed answer marks the call, keeps the first failure and its status.
        result.record(
            &answer(
                400,
                1,
                json!({"error": "bad_request", "message": "unknown field"}),
            ),
            call.kind,
            &call.check,
        );
        result.record(&answer(200, 1, page.clone()), call.kind, &call.check);
        result.record(
            &Answer {
                status: 0,
                elapsed: Duration::ZERO,
                body: Err("timed out".into()),
            },
            call.kind,
            &call.check,
        );
        let report = call_json(&call, &result);
        assert_eq!(report["ok"], false);
        assert_eq!(report["status"], 400);
        assert_eq!(report["errors"], 2);
        assert_eq!(report["error"], "HTTP 400: unknown field");

        // Rows that do not match the filter fail the call too.
        let mut wrong = CallResult::default();
        let mixed = json!({"count": 2, "results": [{"model": "m"}, {"model": "other"}]});
        wrong.record(&answer(200, 1, mixed), call.kind, &call.check);
        let report = call_json(&call, &wrong);
        assert_eq!(report["ok"], false);
        assert_eq!(report["mismatched_rows"], 1);
        assert_eq!(report["count_is_exact"], Value::Null, "absent, not guessed");

        let full = json!({
            "span_count": 10, "span_count_after": 10, "elapsed_seconds": 2.0,
            "results": [
                call_json(&call, &result),
                {"call": "trace search", "skipped": "no word found in the newest spans; give --word"},
            ],
        });
        let table = render_table(&full);
        assert!(table.contains("400!"), "{table}");
        assert!(
            table
                .contains("error: spans by model: 2 failed answers, first HTTP 400: unknown field"),
            "{table}"
        );
        assert!(
            table.contains("trace search             skipped: no word"),
            "{table}"
        );
        assert!(table.contains("no spans were written"), "{table}");
    }

    #[test]
    fn answers_are_measured_by_kind() {
        let trace = json!({"span_count": 3, "span_tree": [{"children": [{"children": []}, {}]}]});
        let measures = measure(AnswerKind::Trace, &RowCheck::None, &trace);
        assert_eq!((measures.count, measures.rows), (Some(3), Some(3)));
        let summary = json!({"number_of_requests": 17, "total_cost": 1.5});
        let measures = measure(AnswerKind::Summary, &RowCheck::None, &summary);
        assert_eq!((measures.count, measures.rows), (Some(17), None));
        let series = json!({"series": [{}, {}], "buckets": [{}, {}, {}]});
        let measures = measure(AnswerKind::Timeseries, &RowCheck::None, &series);
        assert_eq!((measures.rows, measures.series), (Some(3), Some(2)));
        let traces = json!({"count": 2, "results": [{"models": ["a", "b"]}, {"models": ["c"]}]});
        let measures = measure(AnswerKind::List, &RowCheck::TraceModel("b".into()), &traces);
        assert_eq!(measures.mismatched_rows, 1);
        let spans = json!({"count": 2, "results": [
            {"metadata": {"run": 7, "tags": ["x", "y"]}},
            {"metadata": {"run": 8}},
        ]});
        let by_number = RowCheck::SpanMetadata("run".into(), json!(7));
        assert_eq!(
            measure(AnswerKind::List, &by_number, &spans).mismatched_rows,
            1
        );
        let in_array = RowCheck::SpanMetadata("tags".into(), json!("y"));
        assert_eq!(
            measure(AnswerKind::List, &in_array, &spans).mismatched_rows,
            1
        );
    }

    #[test]
    fn discovery_picks_what_most_spans_have() {
        let spans = vec![
            json!({"span_name": "openai.chat", "model": "gpt-4o", "metadata": {"bench_run": "0a", "shard": 1},
                   "prompt_messages": [{"role": "user", "content": "Where is my refund, order 42?"}]}),
            json!({"span_name": "lookup.tool", "model": null, "input": "refund policy", "output": {"text": "shipping"},
                   "metadata": {"bench_run": "0a", "shard": 2, "flags": {"beta": true}}}),
            json!({"span_name": "openai.chat", "model": "gpt-4o-mini", "metadata": {"bench_run": "0a"},
                   "completion_message": {"role": "assistant", "content": "The refund was sent with the shipping label."}}),
            json!({"span_name": "summarize.task", "model": "gpt-4o-mini", "input": "shipping"}),
        ];
        let found = discover(&spans);
        let model = found.model.unwrap();
        assert_eq!(model.value, "gpt-4o-mini");
        assert_eq!(model.why, "in 2 of the newest 4 spans");
        // "refund" and "shipping" are in three spans each; the smaller word wins the tie.
        // Roles, keys and short words never count.
        assert_eq!(found.word.unwrap().value, "refund");
        let metadata = found.metadata.unwrap();
        assert_eq!(metadata.value, ("bench_run".to_owned(), json!("0a")));
        assert_eq!(metadata.why, "in 3 of the newest 4 spans");

        // Nested keys and booleans as the server indexes them.
        let mut flat = Vec::new();
        flatten_metadata("", &spans[1]["metadata"], &mut flat);
        assert!(
            flat.contains(&("flags__beta".to_owned(), json!("true"))),
            "{flat:?}"
        );
        assert_eq!(discover(&[]), Discovered::default());

        let traces = [
            json!({"trace_unique_id": "a", "span_count": 3}),
            json!({"trace_unique_id": "b", "span_count": 9}),
            json!({"trace_unique_id": "c", "span_count": 9}),
        ];
        let trace = pick_trace(&traces).unwrap();
        assert_eq!(trace.value, "b");
        assert_eq!(trace.why, "9 spans, the most among the newest 3 traces");
        assert_eq!(metadata_value("42"), json!(42));
        assert_eq!(metadata_value("0a1b"), json!("0a1b"));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
