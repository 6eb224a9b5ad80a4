//! Span-log ingest end to end: fixtures, partial success, auth, idempotency, ordering, limits.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tracehouse_core::{PriceTable, TokenUsage};
use tracehouse_server::Limits;

use crate::util::{
    Backend, TestServer, find_node, fixture_bytes, fixture_json, flatten_tree, gzip, on_every_store,
};

on_every_store!(
    sample_fixture_builds_the_trace_with_exact_aggregates,
    data_wrapper_fixture_with_children_first_and_untimed_root,
    partial_success_is_207_with_rejected_indexes_and_fields,
    malformed_bodies_are_400_with_position,
    keys_are_required_and_checked,
    another_projects_key_sees_nothing,
    resending_spans_replaces_them,
    children_first_across_requests_then_parent_arrives,
    parent_cycles_are_shown_not_looped,
    disable_log_keeps_metrics_and_drops_content,
    unknown_and_legacy_fields_are_kept,
    gzip_bodies_and_every_route_spelling,
    concurrent_requests_are_all_committed,
    a_span_sent_twice_in_one_batch_is_stored_and_searchable_once,
);

const SAMPLE_TRACE: &str = "4fd81b946f97464789a28b50dd253a90";

fn sum_u64(items: &[Value], field: &str) -> u64 {
    items.iter().filter_map(|i| i[field].as_u64()).sum()
}

async fn sample_fixture_builds_the_trace_with_exact_aggregates(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let sample = fixture_json("respan-logs-sample.json");
    let (status, body) = server.ingest(&sample).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 18);

    // Expected values, computed from the fixture itself.
    let items = sample.as_array().unwrap();
    let prices = PriceTable::builtin();
    let expected_cost: f64 = items
        .iter()
        .map(|i| match i["cost"].as_f64() {
            Some(cost) => cost,
            None => i["model"].as_str().map_or(0.0, |model| {
                let usage = TokenUsage {
                    prompt_tokens: i["prompt_tokens"].as_u64(),
                    completion_tokens: i["completion_tokens"].as_u64(),
                    total_tokens: None,
                };
                prices.cost(model, &usage).unwrap_or(0.0)
            }),
        })
        .sum();
    let earliest = items
        .iter()
        .map(|i| i["start_time"].as_str().unwrap())
        .min()
        .unwrap();
    let latest = items
        .iter()
        .map(|i| i["timestamp"].as_str().unwrap())
        .max()
        .unwrap();
    let root = items
        .iter()
        .find(|i| i.get("span_parent_id").is_none())
        .unwrap();
    let prompt = sum_u64(items, "prompt_tokens");
    let completion = sum_u64(items, "completion_tokens");

    let trace = server.trace(SAMPLE_TRACE).await;
    assert_eq!(trace["trace_unique_id"], SAMPLE_TRACE);
    assert_eq!(trace["span_count"], items.len());
    assert_eq!(
        trace["llm_call_count"],
        items.iter().filter(|i| i.get("model").is_some()).count()
    );
    assert_eq!(trace["error_count"], 0);
    assert_eq!(trace["start_time"], earliest);
    assert_eq!(trace["end_time"], latest);
    assert!(
        (trace["duration"].as_f64().unwrap() - 5.034556).abs() < 1e-9,
        "{}",
        trace["duration"]
    );
    assert_eq!(trace["total_prompt_tokens"], prompt);
    assert_eq!(trace["total_completion_tokens"], completion);
    assert_eq!(trace["total_tokens"], prompt + completion);
    assert!((trace["total_cost"].as_f64().unwrap() - expected_cost).abs() < 1e-12);
    assert_eq!(trace["name"], root["span_name"]);
    assert_eq!(trace["root_span_unique_id"], root["span_unique_id"]);
    assert_eq!(trace["environment"], "prod");
    assert_eq!(
        trace["models"],
        json!(["gpt-3.5-turbo", "gpt-4o-mini", "text-embedding-3-small"])
    );

    // The tree: one root, every span exactly once, each under the parent it named.
    let tree = &trace["span_tree"];
    assert_eq!(tree.as_array().unwrap().len(), 1);
    let flat = flatten_tree(tree);
    assert_eq!(flat.len(), 18);
    for item in items {
        let id = item["span_unique_id"].as_str().unwrap();
        let node = find_node(tree, id).unwrap();
        assert_eq!(
            node["span_parent_id"],
            item.get("span_parent_id").cloned().unwrap_or(Value::Null)
        );
        if let Some(parent) = item["span_parent_id"].as_str() {
            let parent_node = find_node(tree, parent).unwrap();
            assert!(
                parent_node["children"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["span_unique_id"] == id)
            );
        }
        // Every field comes back as sent (times normalised to the same instant).
        for (field, value) in item.as_object().unwrap() {
            match field.as_str() {
                "start_time" | "timestamp" => assert_eq!(&node[field], value, "{id}.{field}"),
                "latency" | "cost" => {
                    assert!((node[field].as_f64().unwrap() - value.as_f64().unwrap()).abs() < 1e-12)
                }
                _ => assert_eq!(&node[field], value, "{id}.{field}"),
            }
        }
    }
    let chat = find_node(tree, "fd42d3240b42d119").unwrap();
    assert_eq!(chat["log_type"], "chat");
    assert_eq!(chat["end_time"], chat["timestamp"]);
    assert_eq!(
        chat["prompt_messages"][1]["content"],
        "Tell me a joke about opentelemetry"
    );
    assert_eq!(
        find_node(tree, "ac5ec3a7346012f0").unwrap()["log_type"],
        "workflow"
    );
    assert_eq!(
        find_node(tree, "3b8f2ff064b97af8").unwrap()["log_type"],
        "task"
    );
    let embedding = find_node(tree, "5cf51d67951d52cc").unwrap();
    assert_eq!(embedding["log_type"], "embedding");
    assert!((embedding["cost"].as_f64().unwrap() - 10.0 * 0.02 / 1e6).abs() < 1e-15);
}

async fn data_wrapper_fixture_with_children_first_and_untimed_root(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .post_raw(
            "/api/openai/v1/traces/ingest",
            fixture_bytes("respan-logs-data-wrapper-capture.json"),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 3);
    let trace_id = "trace_a2d0a4052e2042839da4bb72cbd0783f";
    let trace = server.trace(trace_id).await;
    assert_eq!(
        flatten_tree(&trace["span_tree"]),
        vec![
            (trace_id.to_owned(), 0),
            ("span_dbd81f0de6b045c9aeb26b09".to_owned(), 1),
            ("span_0f37bab692bf4648ae5c42d2".to_owned(), 2),
        ]
    );
    assert_eq!(trace["name"], "capture_agents_workflow");
    assert_eq!(trace["span_count"], 3);
    // The untimed root does not stretch the trace: its range is its children's.
    assert_eq!(trace["start_time"], "2026-11-24T21:32:48.259708Z");
    assert_eq!(trace["end_time"], "2026-11-24T21:32:48.259790Z");
    let root = &trace["span_tree"][0];
    assert_eq!(root["log_type"], "agent");
    assert_eq!(root["times_inferred"], true);
    let tool = find_node(&trace["span_tree"], "span_0f37bab692bf4648ae5c42d2").unwrap();
    assert_eq!(tool["log_type"], "tool");
    assert_eq!(tool["span_tools"], json!(["lookup_weather"]));
    assert_eq!(tool["status_code"], 200);
    assert_eq!(tool["status"], "success");
}

async fn partial_success_is_207_with_rejected_indexes_and_fields(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .ingest(&json!([
            {"trace_unique_id": "t", "span_unique_id": "ok-1"},
            {"trace_unique_id": "t"},
            {"trace_unique_id": "t", "span_unique_id": "ok-2", "span_parent_id": "ok-1"},
            {"trace_unique_id": "t", "span_unique_id": "bad-tokens", "prompt_tokens": "ten"},
            {"trace_unique_id": "t", "span_unique_id": "bad-time", "start_time": "noon"},
            {"trace_unique_id": "", "span_unique_id": "x"},
            {"trace_unique_id": "t", "span_unique_id": "y".repeat(300)},
        ]))
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["accepted"], 2);
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "span_unique_id"),
            (3, "prompt_tokens"),
            (4, "start_time"),
            (5, "trace_unique_id"),
            (6, "span_unique_id"),
        ]
    );
    assert!(
        body["rejected"][1]["error"]
            .as_str()
            .unwrap()
            .contains("prompt_tokens")
    );
    assert_eq!(server.trace("t").await["span_count"], 2);

    let (status, body) = server.ingest(&json!([{"span_unique_id": "a"}, 5])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"][0]["field"], "trace_unique_id");
    assert_eq!(body["rejected"][1]["index"], 1);
}

async fn malformed_bodies_are_400_with_position(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .post_raw(
            "/api/v1/traces/ingest",
            b"[{\"trace_unique_id\": \"t\",\n ]".to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column 2"),
        "{body}"
    );

    let (status, body) = server
        .post_raw("/api/v1/traces/ingest", b"{\"rows\": []}".to_vec(), &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("\"data\""),
        "{body}"
    );

    let (status, _) = server
        .post_raw("/api/v1/traces/ingest", Vec::new(), &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn keys_are_required_and_checked(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let body =
        serde_json::to_vec(&json!([{"trace_unique_id": "t", "span_unique_id": "s"}])).unwrap();
    for auth in [
        None,
        Some("Bearer th_not_a_key"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let mut request = server
            .client
            .post(server.url("/api/v1/traces/ingest"))
            .body(body.clone());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, answer) = crate::util::answer(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer["error"], "unauthorized");
    }
    // x-api-key works as well as Bearer.
    let response = server
        .client
        .post(server.url("/v1/traces/ingest"))
        .header("x-api-key", &server.key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = server.get_with_key("/api/traces/t/", "th_wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn another_projects_key_sees_nothing(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server
        .ingest(&fixture_json("respan-logs-sample.json"))
        .await;
    let other = server.key_for("other-team").await;
    let (status, body) = server
        .get_with_key(&format!("/api/traces/{SAMPLE_TRACE}/"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    // The same ids in the other project are a separate trace.
    let response = server
        .client
        .post(server.url("/api/v1/traces/ingest"))
        .header("authorization", format!("Bearer {other}"))
        .json(&json!([{"trace_unique_id": SAMPLE_TRACE, "span_unique_id": "mine"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, theirs) = server
        .get_with_key(&format!("/api/traces/{SAMPLE_TRACE}/"), &other)
        .await;
    assert_eq!(theirs["span_count"], 1);
    assert_eq!(server.trace(SAMPLE_TRACE).await["span_count"], 18);
}

async fn resending_spans_replaces_them(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let sample = fixture_json("respan-logs-sample.json");
    server.ingest(&sample).await;
    let before = server.trace(SAMPLE_TRACE).await;
    let (status, _) = server.ingest(&sample).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.trace(SAMPLE_TRACE).await, before);

    // A changed re-send replaces the span and the aggregates follow.
    let mut changed = sample[2].clone();
    changed["cost"] = json!(1.0);
    changed["prompt_tokens"] = json!(1000);
    server.ingest(&json!([changed])).await;
    let after = server.trace(SAMPLE_TRACE).await;
    assert_eq!(after["span_count"], 18);
    let old_cost = sample[2]["cost"].as_f64().unwrap();
    let expected = before["total_cost"].as_f64().unwrap() - old_cost + 1.0;
    assert!((after["total_cost"].as_f64().unwrap() - expected).abs() < 1e-9);
    assert_eq!(
        after["total_prompt_tokens"].as_u64().unwrap(),
        before["total_prompt_tokens"].as_u64().unwrap() - 15 + 1000
    );
}

async fn children_first_across_requests_then_parent_arrives(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let child = json!({"trace_unique_id": "late", "span_unique_id": "child", "span_parent_id": "root",
        "span_name": "step.task", "start_time": "2025-01-01T00:00:01Z", "latency": 1});
    server.ingest(&json!([child])).await;
    let orphaned = server.trace("late").await;
    assert_eq!(orphaned["span_tree"][0]["span_unique_id"], "child");
    assert_eq!(orphaned["span_tree"][0]["orphan"], true);
    assert_eq!(orphaned["name"], "step.task");

    let root = json!({"trace_unique_id": "late", "span_unique_id": "root", "span_name": "run.workflow",
        "start_time": "2025-01-01T00:00:00Z", "timestamp": "2025-01-01T00:00:05Z"});
    server.ingest(&json!([root])).await;
    let whole = server.trace("late").await;
    assert_eq!(
        flatten_tree(&whole["span_tree"]),
        vec![("root".to_owned(), 0), ("child".to_owned(), 1)]
    );
    assert_eq!(whole["span_tree"][0]["orphan"], false);
    assert_eq!(whole["name"], "run.workflow");
    assert_eq!(whole["duration"], 5.0);
}

async fn parent_cycles_are_shown_not_looped(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server
        .ingest(&json!([
            {"trace_unique_id": "cyc", "span_unique_id": "a", "span_parent_id": "b", "start_time": "2025-01-01T00:00:00Z"},
            {"trace_unique_id": "cyc", "span_unique_id": "b", "span_parent_id": "a", "start_time": "2025-01-01T00:00:01Z"},
        ]))
        .await;
    let trace = server.trace("cyc").await;
    assert_eq!(
        flatten_tree(&trace["span_tree"]),
        vec![("a".to_owned(), 0), ("b".to_owned(), 1)]
    );
    assert_eq!(trace["span_count"], 2);
}

async fn disable_log_keeps_metrics_and_drops_content(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server
        .ingest(
            &json!([{"trace_unique_id": "private", "span_unique_id": "s", "disable_log": true,
            "model": "gpt-4o", "prompt_tokens": 100, "completion_tokens": 50, "latency": 2.0,
            "input": "secret prompt", "output": "secret answer",
            "prompt_messages": [{"role": "user", "content": "secret"}],
            "completion_message": {"role": "assistant", "content": "secret"}}]),
        )
        .await;
    let trace = server.trace("private").await;
    let span = &trace["span_tree"][0];
    assert_eq!(span["model"], "gpt-4o");
    assert_eq!(span["prompt_tokens"], 100);
    assert_eq!(span["latency"], 2.0);
    assert!((span["cost"].as_f64().unwrap() - (100.0 * 2.5 + 50.0 * 10.0) / 1e6).abs() < 1e-12);
    assert_eq!(span["disable_log"], true);
    for field in ["input", "output", "prompt_messages", "completion_message"] {
        assert!(span.get(field).is_none(), "{field} was stored");
    }
    assert!(!trace.to_string().contains("secret"));
}

async fn unknown_and_legacy_fields_are_kept(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server
        .ingest(
            &json!({"data": [{"trace_unique_id": "u", "span_unique_id": "s",
            "my_field": {"deep": [1, {"x": null}]}, "another": 3.5,
            "keywordsai_params": {"environment": "staging"}, "ttft": 0.12,
            "customer_params": {"customer_identifier": "cust-9", "email": "a@b.c"}}]}),
        )
        .await;
    let trace = server.trace("u").await;
    let span = &trace["span_tree"][0];
    assert_eq!(span["my_field"], json!({"deep": [1, {"x": null}]}));
    assert_eq!(span["another"], 3.5);
    assert_eq!(span["respan_params"], json!({"environment": "staging"}));
    assert_eq!(span["time_to_first_token"], 0.12);
    assert_eq!(span["environment"], "staging");
    assert_eq!(span["customer_identifier"], "cust-9");
    assert_eq!(span["customer_params"]["email"], "a@b.c");
    assert_eq!(trace["customer_identifier"], "cust-9");
    assert_eq!(trace["environment"], "staging");
}

async fn gzip_bodies_and_every_route_spelling(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let sample = fixture_bytes("respan-logs-sample.json");
    let (status, body) = server
        .post_raw(
            "/api/v1/traces/ingest/",
            gzip(&sample),
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 18);
    for (index, path) in [
        "/api/v1/traces/ingest",
        "/v1/traces/ingest",
        "/v1/traces/ingest/",
        "/api/openai/v1/traces/ingest",
        "/openai/v1/traces/ingest/",
    ]
    .iter()
    .enumerate()
    {
        let item = json!([{"trace_unique_id": format!("route-{index}"), "span_unique_id": "s"}]);
        let (status, _) = server
            .post_raw(
                path,
                serde_json::to_vec(&item).unwrap(),
                &[("content-type", "application/json; charset=utf-8")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for path in ["/api/traces/route-0", "/traces/route-1/", "/traces/route-2"] {
        assert_eq!(server.get(path).await.0, StatusCode::OK, "{path}");
    }
    let (status, body) = server
        .post_raw(
            "/api/v1/traces/ingest",
            b"not gzip".to_vec(),
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("gzip"));
}

#[tokio::test]
async fn limits_and_content_types() {
    let server = TestServer::start_with_limits(Limits {
        max_body_bytes: 4096,
        max_inflated_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let big = vec![b' '; 10_000];
    let (status, body) = server.post_raw("/api/v1/traces/ingest", big, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");

    // A gzip bomb: small on the wire, past the inflated limit.
    let bomb = gzip(&vec![b' '; 1024 * 1024]);
    assert!(bomb.len() < 4096);
    let (status, _) = server
        .post_raw(
            "/api/v1/traces/ingest",
            bomb,
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, body) = server
        .post_raw(
            "/api/v1/traces/ingest",
            b"a=b".to_vec(),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    let (status, _) = server
        .post_raw(
            "/api/v1/traces/ingest",
            b"[]".to_vec(),
            &[("content-encoding", "br")],
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, body) = server.get("/api/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert!(body["store"].as_str().unwrap().starts_with("sqlite:"));
}

async fn concurrent_requests_are_all_committed(backend: Backend) {
    let server = std::sync::Arc::new(TestServer::start_on(backend).await);
    let mut tasks = Vec::new();
    for request in 0..40 {
        let server = std::sync::Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let items: Vec<Value> = (0..25)
                .map(|i| json!({"trace_unique_id": format!("c{}", request % 8), "span_unique_id": format!("r{request}-s{i}")}))
                .collect();
            server.ingest(&Value::Array(items)).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    for trace in 0..8 {
        assert_eq!(server.trace(&format!("c{trace}")).await["span_count"], 125);
    }
}

async fn a_span_sent_twice_in_one_batch_is_stored_and_searchable_once(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .ingest(&json!([
            {"trace_unique_id": "dup", "span_unique_id": "s", "output": "alpha words"},
            {"trace_unique_id": "dup", "span_unique_id": "s", "output": "beta words"},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.trace("dup").await["span_count"], 1);
    let (_, alpha) = server.get("/api/request-logs/list/?search=alpha").await;
    let (_, beta) = server.get("/api/request-logs/list/?search=beta").await;
    assert_eq!(
        (alpha["count"].as_u64(), beta["count"].as_u64()),
        (Some(0), Some(1))
    );
}
