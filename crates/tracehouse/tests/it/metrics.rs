//! The metrics API (usage dashboard) over a data set generated here with known times, models,
//! customers, costs, latencies and errors: every answer is compared with values computed in
//! the test from the same data.

use std::collections::{BTreeMap, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{Backend, TestServer, on_every_store};

/// 2025-03-29T00:00:00Z: the data set spans the night Paris moves to summer time (30 March).
const BASE: i64 = 1_743_206_400;
const SPANS: i64 = 300;
const MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "o3"];
const CUSTOMERS: [&str; 7] = [
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne",
];

/// What the test knows about one span.
#[derive(Clone)]
struct Known {
    start: i64,
    trace: String,
    model: Option<&'static str>,
    customer: &'static str,
    cost: f64,
    prompt: i64,
    completion: i64,
    latency: f64,
    error: bool,
    tier: &'static str,
}

on_every_store!(
    metrics_hourly_cost_by_model_equals_sums_with_empty_hours_zero,
    metrics_latency_percentiles_tokens_errors_and_traces_per_day,
    metrics_top_groups_and_other_add_up_with_filters_applied,
    metrics_day_buckets_follow_the_callers_time_zone,
    metrics_rollup_follows_replacements_and_deletes_like_the_spans,
    metrics_bad_parameters_are_400_naming_them,
);

/// Span `k` starts `k * 877` s after [`BASE`] (about every 15 minutes for 73 hours), except
/// for a ten-hour hole; three spans per trace; two extra spans sit on either side of the
/// 01:00 bucket edge.
fn dataset() -> Vec<Known> {
    let mut known = Vec::new();
    for k in 0..SPANS {
        if (100..140).contains(&k) {
            continue;
        }
        known.push(Known {
            start: BASE + k * 877,
            trace: format!("m-trace-{}", k / 3),
            model: (k % 13 != 0).then(|| MODELS[(k % 4) as usize]),
            customer: CUSTOMERS[(k * k % 7) as usize],
            cost: 0.001 * ((k % 10) + 1) as f64,
            prompt: 10 + k % 50,
            completion: 5 + k % 13,
            latency: 0.1 + (k % 17) as f64 * 0.05,
            error: k % 11 == 0,
            tier: if k % 2 == 0 { "free" } else { "pro" },
        });
    }
    for (i, start) in [BASE + 3600, BASE + 3599].into_iter().enumerate() {
        known.push(Known {
            start,
            trace: format!("m-edge-{i}"),
            model: Some("edge-model"),
            customer: "acme",
            cost: 1.0,
            prompt: 1,
            completion: 1,
            latency: 9.0,
            error: false,
            tier: "free",
        });
    }
    known
}

fn span_json(index: usize, known: &Known) -> Value {
    let mut span = json!({
        "trace_unique_id": known.trace,
        "span_unique_id": format!("m-span-{index}"),
        "span_name": "openai.chat",
        "start_time": known.start,
        "latency": known.latency,
        "customer_identifier": known.customer,
        "cost": known.cost,
        "prompt_tokens": known.prompt,
        "completion_tokens": known.completion,
        "metadata": {"tier": known.tier},
    });
    if let Some(model) = known.model {
        span["model"] = json!(model);
    }
    // Every third span streams: half its latency before the first token.
    if index % 3 == 0 {
        span["ttft"] = json!(known.latency / 2.0);
    }
    if known.error {
        span["status"] = json!("error");
        span["error_message"] = json!("boom");
    }
    span
}

async fn seeded(backend: Backend) -> (TestServer, Vec<Known>) {
    let server = TestServer::start_on(backend).await;
    let known = dataset();
    let body: Vec<Value> = known
        .iter()
        .enumerate()
        .map(|(i, k)| span_json(i, k))
        .collect();
    let (status, answer) = server.ingest(&Value::Array(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (server, known)
}

fn iso(epoch: i64) -> String {
    chrono_like(epoch)
}

/// RFC 3339 of an epoch second in UTC, without pulling a date crate into the test.
fn chrono_like(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let seconds = epoch.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

fn series_labels(answer: &Value) -> Vec<String> {
    answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_owned())
        .collect()
}

/// The value of series `label` in every bucket.
fn column(answer: &Value, label: &str) -> Vec<f64> {
    let index = series_labels(answer)
        .iter()
        .position(|l| l == label)
        .unwrap_or_else(|| panic!("no series {label} in {answer}"));
    answer["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["values"][index].as_f64().unwrap())
        .collect()
}

fn close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: bucket count");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() < 1e-9,
            "{what}: bucket {i}: got {a}, expected {e}"
        );
    }
}

/// Nearest-rank percentile, as the API defines it.
fn percentile(values: &mut [f64], percent: usize) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = (values.len() * percent).div_ceil(100).max(1);
    values[rank - 1]
}

fn hourly_buckets(start: i64, end: i64) -> usize {
    ((end - start) / 3600 + 1) as usize
}

async fn metrics_hourly_cost_by_model_equals_sums_with_empty_hours_zero(backend: Backend) {
    let (server, known) = seeded(backend).await;
    let start = BASE;
    let end = BASE + 80 * 3600;
    let (status, answer) = server
        .get(&format!(
            "/api/metrics/timeseries/?metric=cost&interval=hour&group_by=model&limit=10&start_time={}&end_time={}",
            iso(start),
            iso(end)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let buckets = hourly_buckets(start, end);
    assert_eq!(answer["buckets"].as_array().unwrap().len(), buckets);
    assert_eq!(answer["buckets"][1]["start"], "2025-03-29T01:00:00Z");
    let mut labels = series_labels(&answer);
    labels.sort();
    assert_eq!(
        labels,
        vec![
            "(none)",
            "claude-3-5-sonnet",
            "edge-model",
            "gpt-4o",
            "gpt-4o-mini",
            "o3"
        ]
    );
    for label in &labels {
        let mut expected = vec![0.0; buckets];
        for k in &known {
            if k.model.unwrap_or("(none)") == label {
                expected[((k.start - start) / 3600) as usize] += k.cost;
            }
        }
        close(&column(&answer, label), &expected, label);
    }
    // The hole in the data: hours without spans are present, with 0.
    let hole = ((BASE + 110 * 877 - start) / 3600) as usize;
    assert!(labels.iter().all(|l| column(&answer, l)[hole] == 0.0));
    // What a click on the o3 bar of hour 5 lists: the traces with an o3 span starting in it.
    let (from, to) = (start + 5 * 3600, start + 6 * 3600 - 1);
    let (status, list) = server
        .post_json(
            "/api/traces/list/",
            &json!({"span_start_time": from, "span_end_time": to, "page_size": 100,
                    "filters": {"model": {"operator": "", "value": ["o3"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut listed: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_unique_id"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = known
        .iter()
        .filter(|k| k.model == Some("o3") && (from..=to).contains(&k.start))
        .map(|k| k.trace.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    expected.sort_unstable();
    assert!(!expected.is_empty());
    assert_eq!(listed, expected);
    // The span at exactly 01:00 opens the second bucket; the one a second earlier is in the first.
    assert_eq!(column(&answer, "edge-model")[0], 1.0);
    assert_eq!(column(&answer, "edge-model")[1], 1.0);
}

async fn metrics_latency_percentiles_tokens_errors_and_traces_per_day(backend: Backend) {
    let (server, known) = seeded(backend).await;
    let start = BASE;
    let end = BASE + 4 * 86_400 - 1;
    let day = |t: i64| ((t - start) / 86_400) as usize;
    for (metric, percent) in [
        ("latency_p50", 50),
        ("latency_p90", 90),
        ("latency_p99", 99),
    ] {
        let expected: Vec<f64> = (0..4)
            .map(|d| {
                let mut values: Vec<f64> = known
                    .iter()
                    .filter(|k| day(k.start) == d)
                    .map(|k| k.latency)
                    .collect();
                percentile(&mut values, percent)
            })
            .collect();
        // With a filter the spans answer: exact nearest rank.
        let (status, exact) = server
            .post_json(
                "/api/metrics/timeseries/",
                &json!({"metric": metric, "interval": "day", "start_time": start, "end_time": end,
                        "filters": {"latency": {"operator": "gte", "value": [0]}}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{exact}");
        close(&column(&exact, "all"), &expected, metric);
        // Without one the latency histogram answers, within 1 %.
        let (status, approximate) = server
            .post_json(
                "/api/metrics/timeseries/",
                &json!({"metric": metric, "interval": "day", "start_time": start, "end_time": end}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{approximate}");
        for (a, e) in column(&approximate, "all").iter().zip(&expected) {
            assert!(
                (a - e).abs() <= e * 0.01,
                "{metric}: histogram {a}, exact {e}"
            );
        }
        // The legend's total is the percentile over the whole range, on both paths.
        let mut everything: Vec<f64> = known.iter().map(|k| k.latency).collect();
        let whole = percentile(&mut everything, percent);
        assert!((exact["series"][0]["total"].as_f64().unwrap() - whole).abs() < 1e-9);
        let total = approximate["series"][0]["total"].as_f64().unwrap();
        assert!(
            (total - whole).abs() <= whole * 0.01,
            "{metric}: total {total}, exact {whole}"
        );
    }
    // Time to first token: over the spans that report one, from the spans.
    let (status, ttft) = server
        .get(&format!(
            "/api/metrics/timeseries/?metric=ttft_p50&interval=day&start_time={start}&end_time={end}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{ttft}");
    let expected: Vec<f64> = (0..4)
        .map(|d| {
            let mut values: Vec<f64> = known
                .iter()
                .enumerate()
                .filter(|(i, k)| i % 3 == 0 && day(k.start) == d)
                .map(|(_, k)| k.latency / 2.0)
                .collect();
            percentile(&mut values, 50)
        })
        .collect();
    close(&column(&ttft, "all"), &expected, "ttft_p50");
    let sum_per_day = |f: &dyn Fn(&Known) -> f64| -> Vec<f64> {
        let mut out = vec![0.0; 4];
        for k in &known {
            out[day(k.start)] += f(k);
        }
        out
    };
    let checks: [(&str, Vec<f64>); 5] = [
        ("requests", sum_per_day(&|_| 1.0)),
        ("prompt_tokens", sum_per_day(&|k| k.prompt as f64)),
        (
            "total_tokens",
            sum_per_day(&|k| (k.prompt + k.completion) as f64),
        ),
        ("errors", sum_per_day(&|k| f64::from(u8::from(k.error)))),
        ("traces", {
            (0..4)
                .map(|d| {
                    known
                        .iter()
                        .filter(|k| day(k.start) == d)
                        .map(|k| k.trace.as_str())
                        .collect::<HashSet<_>>()
                        .len() as f64
                })
                .collect()
        }),
    ];
    for (metric, expected) in checks {
        let (status, answer) = server
            .get(&format!(
                "/metrics/timeseries?metric={metric}&interval=day&start_time={start}&end_time={end}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        close(&column(&answer, "all"), &expected, metric);
    }
    let (_, rate) = server
        .get(&format!(
            "/api/metrics/timeseries/?metric=error_rate&interval=day&start_time={start}&end_time={end}"
        ))
        .await;
    let requests = sum_per_day(&|_| 1.0);
    let errors = sum_per_day(&|k| f64::from(u8::from(k.error)));
    let expected: Vec<f64> = requests
        .iter()
        .zip(&errors)
        .map(|(r, e)| if *r > 0.0 { e / r } else { 0.0 })
        .collect();
    close(&column(&rate, "all"), &expected, "error_rate");
}

async fn metrics_top_groups_and_other_add_up_with_filters_applied(backend: Backend) {
    let (server, known) = seeded(backend).await;
    let start = BASE;
    let end = BASE + 4 * 86_400 - 1;
    let mut per_customer: BTreeMap<&str, f64> = BTreeMap::new();
    for k in &known {
        *per_customer.entry(k.customer).or_default() += 1.0;
    }
    let mut ranking: Vec<(&str, f64)> = per_customer.into_iter().collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let (status, answer) = server
        .get(&format!(
            "/api/metrics/timeseries/?metric=requests&interval=day&group_by=customer_identifier&limit=3&start_time={start}&end_time={end}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let labels = series_labels(&answer);
    let expected_labels: Vec<String> = ranking
        .iter()
        .take(3)
        .map(|(c, _)| (*c).to_owned())
        .chain(["other".to_owned()])
        .collect();
    assert_eq!(labels, expected_labels);
    let other: f64 = ranking.iter().skip(3).map(|(_, n)| n).sum();
    assert_eq!(answer["series"][3]["total"].as_f64(), Some(other));
    assert_eq!(answer["series"][3]["kind"], "other");
    let all: f64 = (0..4)
        .map(|i| column(&answer, &labels[i]).iter().sum::<f64>())
        .sum();
    assert_eq!(all, known.len() as f64);

    // The same filters as the lists: a customer and a metadata value, on the span path.
    let (status, filtered) = server
        .post_json(
            "/api/metrics/timeseries/",
            &json!({"metric": "cost", "interval": "day", "start_time": start, "end_time": end,
                    "group_by": "metadata__tier",
                    "filters": {"customer_identifier": {"operator": "", "value": ["acme"]},
                                "model": {"operator": "not", "value": ["o3"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{filtered}");
    for tier in ["free", "pro"] {
        let mut expected = vec![0.0; 4];
        for k in known
            .iter()
            .filter(|k| k.customer == "acme" && k.model != Some("o3") && k.tier == tier)
        {
            expected[((k.start - start) / 86_400) as usize] += k.cost;
        }
        close(&column(&filtered, tier), &expected, tier);
    }

    // Leaderboard: with and without /api and trailing slash.
    for path in ["/api/metrics/top/", "/metrics/top"] {
        let (status, top) = server
            .get(&format!(
                "{path}?metric=cost&group_by=customer_identifier&limit=3&start_time={start}&end_time={end}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{top}");
        let mut costs: BTreeMap<&str, f64> = BTreeMap::new();
        for k in &known {
            *costs.entry(k.customer).or_default() += k.cost;
        }
        let mut expected: Vec<(&str, f64)> = costs.into_iter().collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let results = top["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for (result, (customer, cost)) in results.iter().zip(expected) {
            assert_eq!(result["group"], customer);
            assert!((result["value"].as_f64().unwrap() - cost).abs() < 1e-9);
        }
    }
}

async fn metrics_day_buckets_follow_the_callers_time_zone(backend: Backend) {
    let (server, known) = seeded(backend).await;
    // Local days in Paris; 30 March has 23 hours.
    let boundaries = [
        1_743_202_800, // 2025-03-29T00:00+01:00
        1_743_289_200, // 2025-03-30T00:00+01:00
        1_743_372_000, // 2025-03-31T00:00+02:00
        1_743_458_400, // 2025-04-01T00:00+02:00
        1_743_544_800, // 2025-04-02T00:00+02:00
    ];
    let (status, answer) = server
        .get(&format!(
            "/api/metrics/timeseries/?metric=requests&interval=day&tz=Europe/Paris&start_time={}&end_time={}",
            BASE,
            BASE + 3 * 86_400 + 3600
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["tz"], "Europe/Paris");
    let starts: Vec<&str> = answer["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        vec![
            "2025-03-29T00:00:00+01:00",
            "2025-03-30T00:00:00+01:00",
            "2025-03-31T00:00:00+02:00",
            "2025-04-01T00:00:00+02:00"
        ]
    );
    let expected: Vec<f64> = boundaries
        .windows(2)
        .map(|w| {
            known
                .iter()
                .filter(|k| k.start >= w[0] && k.start < w[1])
                .count() as f64
        })
        .collect();
    close(&column(&answer, "all"), &expected, "paris days");

    // A half-hour offset moves hour edges to :30 UTC.
    let (status, answer) = server
        .get(&format!(
            "/api/metrics/timeseries/?metric=requests&interval=hour&tz=%2B05:30&start_time={}&end_time={}",
            BASE,
            BASE + 5 * 3600
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["buckets"][0]["start"], "2025-03-29T05:00:00+05:30");
    let first = BASE - 1800;
    let expected: Vec<f64> = (0..answer["buckets"].as_array().unwrap().len() as i64)
        .map(|i| {
            let (from, to) = (first + i * 3600, first + (i + 1) * 3600);
            known
                .iter()
                .filter(|k| k.start >= from && k.start < to)
                .count() as f64
        })
        .collect();
    close(&column(&answer, "all"), &expected, "+05:30 hours");
}

async fn metrics_rollup_follows_replacements_and_deletes_like_the_spans(backend: Backend) {
    let (server, _) = seeded(backend).await;
    let start = BASE;
    let end = BASE + 4 * 86_400 - 1;
    // No filter: answered from the hourly rollup. A filter that matches every span: from the
    // spans. Both must agree after a replacement and a delete.
    let both = || async {
        let plain = server
            .get(&format!(
                "/api/metrics/timeseries/?metric=cost&interval=hour&group_by=model&limit=20&start_time={start}&end_time={end}"
            ))
            .await
            .1;
        let raw = server
            .post_json(
                "/api/metrics/timeseries/",
                &json!({"metric": "cost", "interval": "hour", "group_by": "model", "limit": 20,
                        "start_time": start, "end_time": end,
                        "filters": {"latency": {"operator": "gte", "value": [0]}}}),
            )
            .await
            .1;
        (plain, raw)
    };
    let (plain, raw) = both().await;
    // Same groups in the same order, and the same values up to the order of float additions
    // (a sharded ClickHouse adds per shard, then across shards).
    assert_eq!(series_labels(&plain), series_labels(&raw));
    for label in series_labels(&plain) {
        close(&column(&plain, &label), &column(&raw, &label), &label);
    }
    let totals = |answer: &Value| -> Vec<f64> {
        answer["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["total"].as_f64().unwrap())
            .collect()
    };
    close(&totals(&plain), &totals(&raw), "totals");
    let mut replaced = span_json(1, &dataset()[1]);
    replaced["model"] = json!("replacement-model");
    replaced["cost"] = json!(5.0);
    assert_eq!(server.ingest(&json!([replaced])).await.0, StatusCode::OK);
    let response = server
        .client
        .delete(server.url("/api/traces/m-trace-5/"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (plain, raw) = both().await;
    assert!(series_labels(&plain).contains(&"replacement-model".to_owned()));
    assert_eq!(
        plain["series"].as_array().unwrap().len(),
        raw["series"].as_array().unwrap().len()
    );
    for label in series_labels(&plain) {
        close(&column(&plain, &label), &column(&raw, &label), &label);
    }
    // The latency histogram follows the same changes.
    let p90 = |filters: Value| {
        let server = &server;
        async move {
            server
                .post_json(
                    "/api/metrics/timeseries/",
                    &json!({"metric": "latency_p90", "interval": "day", "group_by": "model",
                            "start_time": start, "end_time": end, "filters": filters}),
                )
                .await
                .1
        }
    };
    let histogram = p90(json!({})).await;
    let exact = p90(json!({"latency": {"operator": "gte", "value": [0]}})).await;
    assert_eq!(series_labels(&histogram), series_labels(&exact));
    for label in series_labels(&histogram) {
        for (a, e) in column(&histogram, &label)
            .iter()
            .zip(column(&exact, &label))
        {
            assert!(
                (a - e).abs() <= e * 0.01,
                "{label}: histogram {a}, exact {e}"
            );
        }
    }
}

async fn metrics_bad_parameters_are_400_naming_them(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    for (query, named) in [
        ("metric=speed", "metric"),
        ("metric=cost&group_by=colour", "group_by"),
        ("metric=cost&group_by=cost", "group_by"),
        ("metric=cost&interval=fortnight", "interval"),
        ("metric=cost&tz=Mars/Olympus", "tz"),
        (
            "metric=cost&interval=minute&start_time=2025-01-01&end_time=2025-03-01",
            "interval",
        ),
        ("metric=cost&limit=0", "limit"),
        ("group_by=model", "metric"),
        ("metric=cost&filters=%7B%22colour%22%3A1%7D", "colour"),
    ] {
        let (status, body) = server
            .get(&format!("/api/metrics/timeseries/?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
    let (status, body) = server.get("/api/metrics/top/?metric=cost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server
        .get_with_key("/api/metrics/timeseries/?metric=cost", "th_wrong")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An empty project answers zeros, not an error.
    let (status, body) = server
        .get("/api/metrics/timeseries/?metric=cost&interval=hour&start_time=2025-01-01T00:00:00Z&end_time=2025-01-01T05:00:00Z")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["buckets"].as_array().unwrap().len(), 6);
    assert_eq!(column(&body, "all"), vec![0.0; 6]);
}
