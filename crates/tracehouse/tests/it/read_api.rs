//! The vendor-compatible read API over a data set built here with known values, on every store.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{Backend, TestServer, on_every_store};

const TRACES: usize = 40;
const SPANS_PER_TRACE: usize = 8;
const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"];
const CUSTOMERS: [&str; 3] = ["acme", "globex", "initech"];

on_every_store!(
    lists_traces_newest_first_with_aggregates,
    pagination_walk_equals_the_full_set_and_is_stable_under_ingest,
    sorts_ascending_and_descending_with_stable_ties,
    every_operator_filters_traces,
    span_list_filters_sorts_and_returns_every_field,
    summary_equals_sums_computed_here,
    search_finds_a_word_in_one_output,
    delete_removes_the_trace_everywhere,
    another_project_sees_none_of_it,
    malformed_filters_are_400_naming_the_problem,
    hostile_filter_values_stay_values
);

/// Every span of the data set, as sent. Trace `i` starts at minute `i`; its spans are a
/// workflow root, five chat calls, a tool and a final step that fails for every fifth trace.
fn dataset() -> Vec<Value> {
    let base = 1_748_736_000i64; // 2025-06-01T00:00:00Z
    let mut spans = Vec::new();
    for i in 0..TRACES {
        let trace_id = format!("trace-{i:02}");
        let trace_start = base + (i as i64) * 60;
        for j in 0..SPANS_PER_TRACE {
            let start = trace_start + j as i64;
            let latency = 0.5 + j as f64 * 0.1;
            let mut span = json!({
                "trace_unique_id": trace_id,
                "span_unique_id": format!("{trace_id}-s{j}"),
                "start_time": start,
                "latency": latency,
                "customer_identifier": CUSTOMERS[i % 3],
                "environment": if i % 2 == 0 { "prod" } else { "staging" },
            });
            match j {
                0 => {
                    span["span_name"] = json!(format!("run_{i}.workflow"));
                    span["metadata"] = json!({"tier": i % 3, "user": {"id": format!("u{i}")}, "tags": [format!("t{}", i % 4)]});
                    span["input"] = json!(format!("question {i}"));
                    if i % 4 == 0 {
                        span["session_identifier"] = json!(format!("session-{i}"));
                    }
                }
                1..=5 => {
                    span["span_parent_id"] = json!(format!("{trace_id}-s0"));
                    span["span_name"] = json!("openai.chat");
                    span["model"] = json!(MODELS[(i + j) % 3]);
                    span["prompt_tokens"] = json!(10 * j + i);
                    span["completion_tokens"] = json!(5 * j);
                    span["cost"] = json!(0.001 * (i + j) as f64);
                    span["output"] = json!(if i == 7 && j == 3 {
                        "the zebra crossed".to_owned()
                    } else {
                        format!("answer {i}.{j}")
                    });
                }
                6 => {
                    span["span_parent_id"] = json!(format!("{trace_id}-s0"));
                    span["span_name"] = json!("lookup.tool");
                    span["custom_field"] = json!({"kept": i});
                }
                _ => {
                    span["span_parent_id"] = json!(format!("{trace_id}-s0"));
                    span["span_name"] = json!("finish.task");
                    if i % 5 == 0 {
                        span["status_code"] = json!(500);
                        span["error_message"] = json!(format!("boom {i}"));
                    }
                }
            }
            spans.push(span);
        }
    }
    spans
}

async fn loaded(backend: Backend) -> (TestServer, Vec<Value>) {
    let server = TestServer::start_on(backend).await;
    let spans = dataset();
    // Send in several requests, children before parents, to exercise assembly too.
    for chunk in spans.chunks(37).rev() {
        let (status, body) = server.ingest(&Value::Array(chunk.to_vec())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    (server, spans)
}

impl TestServer {
    async fn traces_where(&self, filters: Value) -> Vec<String> {
        let (status, body) = self
            .post_json(
                "/api/traces/list/?page_size=1000&sort_by=trace_unique_id",
                &json!({"filters": filters}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{filters}: {body}");
        ids(&body, "trace_unique_id")
    }
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_str().unwrap().to_owned())
        .collect()
}

fn trace_ids(select: impl Fn(usize) -> bool) -> Vec<String> {
    (0..TRACES)
        .filter(|i| select(*i))
        .map(|i| format!("trace-{i:02}"))
        .collect()
}

/// Aggregates of trace `i` as the data set defines them.
fn trace_cost(i: usize) -> f64 {
    (1..=5).map(|j| 0.001 * (i + j) as f64).sum()
}

async fn lists_traces_newest_first_with_aggregates(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let (status, list) = server.get("/api/traces/list/").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["count"], TRACES);
    assert_eq!(list["next"], Value::Null);
    assert_eq!(list["previous"], Value::Null);
    let results = list["results"].as_array().unwrap();
    assert_eq!(results.len(), TRACES);
    let first = &results[0];
    assert_eq!(first["trace_unique_id"], "trace-39");
    assert_eq!(first["name"], "run_39.workflow");
    assert_eq!(first["span_count"], SPANS_PER_TRACE);
    assert_eq!(first["llm_call_count"], 5);
    assert_eq!(first["customer_identifier"], CUSTOMERS[39 % 3]);
    assert_eq!(first["input"], "question 39");
    assert_eq!(first["metadata"]["user"]["id"], "u39");
    assert!((first["total_cost"].as_f64().unwrap() - trace_cost(39)).abs() < 1e-9);
    assert_eq!(results[TRACES - 1]["trace_unique_id"], "trace-00");
    assert_eq!(results[0]["error_count"], 0);
    assert_eq!(
        results
            .iter()
            .find(|t| t["trace_unique_id"] == "trace-35")
            .unwrap()["error_count"],
        1
    );
}

async fn pagination_walk_equals_the_full_set_and_is_stable_under_ingest(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let (_, mut page) = server.get("/api/traces/list/?page_size=7").await;
    assert_eq!(page["count"], TRACES);
    let mut seen = ids(&page, "trace_unique_id");
    // New, newer traces arrive mid-walk; the pinned snapshot keeps the walk exact.
    server
        .ingest(&json!([{"trace_unique_id": "zz-new", "span_unique_id": "a", "start_time": "2030-01-01T00:00:00Z"}]))
        .await;
    let mut pages = 1;
    while let Some(next) = page["next"].as_str() {
        let response = server
            .client
            .get(next)
            .bearer_auth(&server.key)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::util::answer(response).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["previous"].is_string());
        assert_eq!(body["count"], TRACES, "count is of the snapshot");
        seen.extend(ids(&body, "trace_unique_id"));
        page = body;
        pages += 1;
    }
    assert_eq!(pages, 6);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), TRACES);
    assert_eq!(unique.len(), TRACES);
    assert!(!seen.contains(&"zz-new".to_owned()));
    let (_, fresh) = server.get("/api/traces/list/?page_size=1").await;
    assert_eq!(fresh["count"], TRACES + 1);
    assert_eq!(ids(&fresh, "trace_unique_id"), vec!["zz-new"]);

    for bad in [
        "page_size=1001",
        "page_size=0",
        "page=0",
        "page=x",
        "sort_by=colour",
        "start_time=yesterday",
    ] {
        let (status, body) = server.get(&format!("/api/traces/list/?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let parameter = bad.split('=').next().unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(parameter),
            "{bad}: {body}"
        );
    }
}

async fn sorts_ascending_and_descending_with_stable_ties(backend: Backend) {
    let (server, _) = loaded(backend).await;
    for (sort, descending) in [
        ("total_cost", false),
        ("-total_cost", true),
        ("span_count", false),
    ] {
        let (_, list) = server
            .get(&format!("/api/traces/list/?sort_by={sort}&page_size=100"))
            .await;
        let results = list["results"].as_array().unwrap();
        let field = sort.trim_start_matches('-');
        for pair in results.windows(2) {
            let (a, b) = (
                pair[0][field].as_f64().unwrap(),
                pair[1][field].as_f64().unwrap(),
            );
            assert!(if descending { a >= b } else { a <= b }, "{sort}");
            if a == b {
                // Ties are broken by trace id in the same direction.
                let (x, y) = (
                    pair[0]["trace_unique_id"].as_str().unwrap(),
                    pair[1]["trace_unique_id"].as_str().unwrap(),
                );
                assert!(if descending { x > y } else { x < y });
            }
        }
    }
    let (_, list) = server
        .get("/api/traces/list/?sort_by=start_time&page_size=2")
        .await;
    assert_eq!(ids(&list, "trace_unique_id"), vec!["trace-00", "trace-01"]);
}

async fn every_operator_filters_traces(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let cases: Vec<(Value, Vec<String>)> = vec![
        (
            json!({"customer_identifier": {"operator": "", "value": ["acme"]}}),
            trace_ids(|i| i % 3 == 0),
        ),
        (
            json!({"customer_identifier": {"operator": "not", "value": ["acme"]}}),
            trace_ids(|i| i % 3 != 0),
        ),
        (
            json!({"customer_identifier": {"operator": "in", "value": ["acme", "globex"]}}),
            trace_ids(|i| i % 3 != 2),
        ),
        (
            json!({"customer_identifier": {"operator": "not_in", "value": ["acme", "globex"]}}),
            trace_ids(|i| i % 3 == 2),
        ),
        (
            json!({"name": {"operator": "contains", "value": ["run_1"]}}),
            trace_ids(|i| i == 1 || (10..20).contains(&i)),
        ),
        (
            json!({"name": {"operator": "icontains", "value": ["RUN_2"]}}),
            trace_ids(|i| i == 2 || (20..30).contains(&i)),
        ),
        (
            json!({"name": {"operator": "not_contains", "value": ["run_1"]}}),
            trace_ids(|i| !(i == 1 || (10..20).contains(&i))),
        ),
        (
            json!({"name": {"operator": "startswith", "value": ["run_3"]}}),
            trace_ids(|i| i == 3 || (30..40).contains(&i)),
        ),
        (
            json!({"name": {"operator": "endswith", "value": ["5.workflow"]}}),
            trace_ids(|i| i % 10 == 5),
        ),
        (
            json!({"session_identifier": {"operator": "empty"}}),
            trace_ids(|i| i % 4 != 0),
        ),
        (
            json!({"session_identifier": {"operator": "not_empty"}}),
            trace_ids(|i| i % 4 == 0),
        ),
        (
            json!({"session_identifier": {"operator": "isnull", "value": [true]}}),
            trace_ids(|i| i % 4 != 0),
        ),
        (
            // Stored sums are exact decimals (femto-dollars), a float sum here is not.
            json!({"total_cost": {"operator": "lt", "value": [trace_cost(3) - 1e-9]}}),
            trace_ids(|i| i < 3),
        ),
        (
            json!({"total_cost": {"operator": "lte", "value": [trace_cost(3) + 1e-9]}}),
            trace_ids(|i| i <= 3),
        ),
        (
            json!({"total_cost": {"operator": "gt", "value": ["0.2"]}}),
            trace_ids(|i| trace_cost(i) > 0.2),
        ),
        (
            json!({"total_prompt_tokens": {"operator": "gte", "value": [150 + 5 * 36]}}),
            trace_ids(|i| 150 + 5 * i >= 330),
        ),
        (
            json!({"error_count": {"operator": "gt", "value": [0]}}),
            trace_ids(|i| i % 5 == 0),
        ),
        (
            json!({"start_time": {"operator": "gte", "value": ["2025-06-01T00:35:00Z"]}}),
            trace_ids(|i| i >= 35),
        ),
        (
            json!({"start_time": {"operator": "lt", "value": [1_748_736_000 + 120]}}),
            trace_ids(|i| i < 2),
        ),
        // Span fields: a trace matches when one of its spans does.
        (
            json!({"status": {"operator": "", "value": ["error"]}}),
            trace_ids(|i| i % 5 == 0),
        ),
        (
            json!({"error_message": {"operator": "contains", "value": ["boom 1"]}}),
            trace_ids(|i| i == 10 || i == 15),
        ),
        (
            json!({"model": {"operator": "", "value": ["claude-3-5-sonnet"]}, "customer_identifier": {"operator": "", "value": ["acme"]}}),
            trace_ids(|i| i % 3 == 0),
        ),
        (
            json!({"cost": {"operator": "gte", "value": [0.044]}}),
            trace_ids(|i| 0.001 * (i + 5) as f64 >= 0.044 - 1e-12),
        ),
        (
            json!({"metadata__tier": {"operator": "", "value": [1]}}),
            trace_ids(|i| i % 3 == 1),
        ),
        (
            json!({"metadata__user__id": {"operator": "", "value": ["u5"]}}),
            trace_ids(|i| i == 5),
        ),
        (
            json!({"metadata__tags": {"operator": "in", "value": ["t2", "t3"]}}),
            trace_ids(|i| i % 4 >= 2),
        ),
        (
            json!({"metadata__user__id": {"operator": "startswith", "value": ["u3"]}}),
            trace_ids(|i| i == 3 || (30..40).contains(&i)),
        ),
        (
            json!({"metadata__tier": {"operator": "gt", "value": [1]}}),
            trace_ids(|i| i % 3 == 2),
        ),
    ];
    for (filters, expected) in cases {
        assert_eq!(
            server.traces_where(filters.clone()).await,
            expected,
            "{filters}"
        );
    }
    let (_, list) = server
        .get("/traces/list?environment=staging&page_size=100")
        .await;
    assert_eq!(list["count"], TRACES / 2);
    let (_, list) = server
        .get("/api/traces/list/?start_time=2025-06-01T00:10:00Z&end_time=2025-06-01T00:19:59Z")
        .await;
    assert_eq!(list["count"], 10);
}

async fn span_list_filters_sorts_and_returns_every_field(backend: Backend) {
    let (server, spans) = loaded(backend).await;
    let expected: usize = spans.iter().filter(|s| s["model"] == "gpt-4o").count();
    let (status, list) = server
        .post_json(
            "/api/request-logs/list/?page_size=1000&sort_by=-cost",
            &json!({"filters": {"model": {"operator": "", "value": ["gpt-4o"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["count"], expected);
    let costs: Vec<f64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cost"].as_f64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]));
    assert!(
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["model"] == "gpt-4o" && s["log_type"] == "chat")
    );

    let (status, span) = server.get("/api/request-logs/trace-04-s6/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(span["custom_field"], json!({"kept": 4}));
    assert_eq!(span["log_type"], "tool");
    assert_eq!(span["trace_unique_id"], "trace-04");
    assert_eq!(
        server.get("/request-logs/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let (_, all) = server.get("/api/request-logs/list/?page_size=5").await;
    assert_eq!(all["count"], TRACES * SPANS_PER_TRACE);
    assert_eq!(all["results"].as_array().unwrap().len(), 5);
    assert_eq!(
        all["results"][0]["span_unique_id"], "trace-39-s7",
        "newest first by default"
    );
}

async fn summary_equals_sums_computed_here(backend: Backend) {
    let (server, spans) = loaded(backend).await;
    let chosen: Vec<&Value> = spans
        .iter()
        .filter(|s| s["model"] == "gpt-4o-mini")
        .collect();
    let sum = |field: &str| {
        chosen
            .iter()
            .map(|s| s[field].as_f64().unwrap_or(0.0))
            .sum::<f64>()
    };
    let mut latencies: Vec<f64> = chosen
        .iter()
        .map(|s| s["latency"].as_f64().unwrap())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let nearest_rank =
        |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1];

    let (status, summary) = server
        .post_json(
            "/api/request-logs/summary/",
            &json!({"filters": {"model": {"operator": "", "value": ["gpt-4o-mini"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["number_of_requests"], chosen.len());
    assert!((summary["total_cost"].as_f64().unwrap() - sum("cost")).abs() < 1e-9);
    assert_eq!(
        summary["total_prompt_tokens"].as_f64().unwrap(),
        sum("prompt_tokens")
    );
    assert_eq!(
        summary["total_completion_tokens"].as_f64().unwrap(),
        sum("completion_tokens")
    );
    assert_eq!(
        summary["total_tokens"].as_f64().unwrap(),
        sum("prompt_tokens") + sum("completion_tokens")
    );
    assert!(
        (summary["avg_latency"].as_f64().unwrap() - sum("latency") / chosen.len() as f64).abs()
            < 1e-9
    );
    // One model and no other condition: answered from the rollups, whose percentiles are the
    // latency histogram's bins (within 1 %); any other filter reads the spans, exactly.
    for (p, key) in [
        (0.5, "p50_latency"),
        (0.9, "p90_latency"),
        (0.99, "p99_latency"),
    ] {
        let reported = summary[key].as_f64().unwrap();
        assert!(
            (reported / nearest_rank(p) - 1.0).abs() < 0.01,
            "{key}: {reported} against {}",
            nearest_rank(p)
        );
    }
    assert_eq!(summary["error_count"], 0);
    let (_, exact) = server
        .post_json(
            "/api/request-logs/summary/",
            &json!({"filters": {"model": {"operator": "in", "value": ["gpt-4o-mini"]}}}),
        )
        .await;
    assert_eq!(exact["number_of_requests"], chosen.len());
    assert!(
        (exact["avg_latency"].as_f64().unwrap() - summary["avg_latency"].as_f64().unwrap()).abs()
            < 1e-9
    );
    assert_eq!(exact["p50_latency"].as_f64().unwrap(), nearest_rank(0.5));
    assert_eq!(exact["p90_latency"].as_f64().unwrap(), nearest_rank(0.9));
    assert_eq!(exact["p99_latency"].as_f64().unwrap(), nearest_rank(0.99));

    let (_, everything) = server.post_json("/request-logs/summary", &json!({})).await;
    assert_eq!(everything["number_of_requests"], TRACES * SPANS_PER_TRACE);
    assert_eq!(everything["error_count"], TRACES / 5);
    let (_, nothing) = server
        .post_json(
            "/api/request-logs/summary/",
            &json!({"filters": {"model": {"operator": "", "value": ["none"]}}}),
        )
        .await;
    assert_eq!(nothing["number_of_requests"], 0);
    assert_eq!(nothing["avg_latency"], Value::Null);
}

async fn search_finds_a_word_in_one_output(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let (_, spans) = server.get("/api/request-logs/list/?search=zebra").await;
    assert_eq!(spans["count"], 1);
    assert_eq!(spans["results"][0]["span_unique_id"], "trace-07-s3");
    let (_, traces) = server.get("/api/traces/list/?search=zebra").await;
    assert_eq!(ids(&traces, "trace_unique_id"), vec!["trace-07"]);
    let (_, none) = server
        .get("/api/request-logs/list/?search=%22unicorn%22%20OR%20*")
        .await;
    assert_eq!(none["count"], 0, "search text is words, never query syntax");
    let (_, by_name) = server
        .post_json(
            "/api/request-logs/list/?page_size=1",
            &json!({"search": "lookup"}),
        )
        .await;
    assert_eq!(by_name["count"], TRACES);
}

async fn delete_removes_the_trace_everywhere(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let delete = |path: &'static str| {
        let request = server
            .client
            .delete(server.url(path))
            .bearer_auth(&server.key);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        delete("/api/traces/trace-07/").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server.get("/api/traces/trace-07/").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(delete("/traces/trace-07").await, StatusCode::NOT_FOUND);
    let (_, list) = server.get("/api/traces/list/?page_size=100").await;
    assert_eq!(list["count"], TRACES - 1);
    assert!(!ids(&list, "trace_unique_id").contains(&"trace-07".to_owned()));
    let (_, spans) = server.get("/api/request-logs/list/?search=zebra").await;
    assert_eq!(spans["count"], 0);
    assert_eq!(
        server.get("/api/request-logs/trace-07-s0/").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, project) = server.get("/api/projects/current/").await;
    assert_eq!(project["trace_count"], TRACES - 1);
    assert_eq!(project["span_count"], (TRACES - 1) * SPANS_PER_TRACE);
    assert_eq!(project["name"], "default");
}

async fn another_project_sees_none_of_it(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let other = server.key_for("elsewhere").await;
    for path in ["/api/traces/list/", "/api/request-logs/list/"] {
        let (status, list) = server.get_with_key(path, &other).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["count"], 0, "{path}");
    }
    assert_eq!(
        server
            .get_with_key("/api/request-logs/trace-01-s1/", &other)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let response = server
        .client
        .delete(server.url("/api/traces/trace-01/"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        server.trace("trace-01").await["span_count"],
        SPANS_PER_TRACE
    );
    assert_eq!(
        server.get_with_key("/api/traces/list/", "th_nope").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn malformed_filters_are_400_naming_the_problem(backend: Backend) {
    let (server, _) = loaded(backend).await;
    let cases = [
        (
            json!({"filters": {"colour": {"operator": "", "value": ["red"]}}}),
            "colour",
        ),
        (
            json!({"filters": {"model": {"operator": "like", "value": ["x"]}}}),
            "like",
        ),
        (
            json!({"filters": {"total_cost": {"operator": "gt", "value": ["cheap"]}}}),
            "total_cost",
        ),
        (
            json!({"filters": {"start_time": {"operator": "gt", "value": ["soon"]}}}),
            "start_time",
        ),
        (
            json!({"filters": {"span_count": {"operator": "contains", "value": ["1"]}}}),
            "span_count",
        ),
        (json!({"filters": {"model": {"operator": "in"}}}), "model"),
        (json!({"filters": {"model": {"op": "in"}}}), "op"),
        (json!({"filters": [1, 2]}), "filters"),
    ];
    for (body, named) in cases {
        let (status, answer) = server.post_json("/api/traces/list/", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], "bad_request");
        assert!(
            answer["message"].as_str().unwrap().contains(named),
            "{body}: {answer}"
        );
    }
    let response = server
        .client
        .post(server.url("/api/request-logs/list/"))
        .bearer_auth(&server.key)
        .body("{\"filters\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn hostile_filter_values_stay_values(backend: Backend) {
    let (server, _) = loaded(backend).await;
    // None of these occur in the data; unescaped, the wildcards among them would match everything.
    for hostile in [
        "' OR 1=1 --",
        "\"); DROP TABLE spans; --",
        "%_%",
        "a_b%",
        "*",
        "[",
        "\\",
    ] {
        for operator in [
            "",
            "contains",
            "icontains",
            "startswith",
            "endswith",
            "not_contains",
        ] {
            let (status, list) = server
                .post_json(
                    "/api/traces/list/",
                    &json!({"filters": {"name": {"operator": operator, "value": [hostile]}, "metadata__user__id": {"operator": operator, "value": [hostile]}}}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{hostile} {operator}");
            let expected = if operator == "not_contains" {
                TRACES
            } else {
                0
            };
            assert_eq!(list["count"], expected, "{hostile:?} {operator:?}");
        }
    }
    assert_eq!(
        server.get("/api/projects/current/").await.1["span_count"],
        TRACES * SPANS_PER_TRACE
    );
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let server = TestServer::start().await;
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/api/v1/traces/ingest",
        "/api/traces/list/",
        "/api/traces/{trace_unique_id}/",
        "/api/request-logs/list/",
        "/api/request-logs/",
        "/api/request-logs/{id}/",
        "/api/request-logs/batch-update/",
        "/api/request-logs/summary/",
        "/api/projects/current/",
        "/api/metrics/timeseries/",
        "/api/metrics/top/",
        "/api/log_threads/",
        "/api/log_thread/{thread_identifier}/",
        "/api/users/list/",
        "/api/users/{customer_identifier}/",
    ] {
        assert!(paths.contains_key(route), "{route}");
    }
    assert!(doc["paths"]["/api/traces/{trace_unique_id}/"]["delete"].is_object());
    assert!(doc["paths"]["/api/request-logs/{id}/"]["patch"].is_object());
    assert!(doc["components"]["schemas"]["Span"]["properties"]["id"].is_object());
}
