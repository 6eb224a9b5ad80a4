//! Spans that are still running (issue 21 part 3): a span log with a start and no end (or
//! `status: "running"`) is stored as running, the same span sent again with an end closes it,
//! and the trace's status and aggregates are right at every step, on every store.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{Backend, TestServer, find_node, on_every_store};

on_every_store!(
    running_spans_open_update_and_close_across_requests,
    a_span_running_past_the_timeout_is_shown_abandoned,
);

fn rfc3339(seconds: f64) -> String {
    tracehouse_core::Timestamp::from_unix_nanos((seconds * 1e9) as i64).to_rfc3339()
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .floor()
}

async fn send(server: &TestServer, spans: Value) {
    let (status, body) = server.ingest(&spans).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The trace's status in the list, and whether a `status = running` filter finds it.
async fn listed(server: &TestServer, trace: &str) -> (String, bool) {
    let (status, list) = server.get("/api/traces/list/?page_size=100").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let item = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["trace_unique_id"] == trace)
        .unwrap()
        .clone();
    let (status, running) = server
        .post_json(
            "/api/traces/list/",
            &json!({"filters": {"status": {"operator": "", "value": ["running"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{running}");
    let found = running["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["trace_unique_id"] == trace);
    (item["status"].as_str().unwrap().to_owned(), found)
}

async fn summary(server: &TestServer) -> Value {
    let (status, body) = server
        .post_json("/api/request-logs/summary/", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn running_spans_open_update_and_close_across_requests(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let start = now_secs() - 60.0;
    // Open: the agent started (start only), its first model call already finished.
    send(
        &server,
        json!([
            {"trace_unique_id": "job", "span_unique_id": "agent", "span_name": "agent.workflow",
             "start_time": rfc3339(start), "input": "plan a trip"},
            {"trace_unique_id": "job", "span_unique_id": "call-1", "span_parent_id": "agent",
             "start_time": rfc3339(start + 1.0), "latency": 2.0, "model": "gpt-4o-mini",
             "prompt_tokens": 10, "completion_tokens": 5},
        ]),
    )
    .await;
    let trace = server.trace("job").await;
    assert_eq!(trace["status"], "running");
    assert_eq!(trace["running_count"], 1);
    assert_eq!(trace["span_count"], 2);
    assert_eq!(trace["duration"], 3.0);
    let agent = find_node(&trace["span_tree"], "agent").unwrap();
    assert_eq!(agent["status"], "running");
    assert_eq!(agent["latency"], 0.0);
    assert_eq!(agent["end_time"], agent["start_time"]);
    assert_eq!(listed(&server, "job").await, ("running".to_owned(), true));
    // Only finished spans count in statistics: the running one has no duration yet.
    let stats = summary(&server).await;
    assert_eq!(stats["number_of_requests"], 1);
    assert_eq!(stats["avg_latency"], 2.0);

    // Update: the agent reports progress, still running, and a second call finishes.
    send(
        &server,
        json!([
            {"trace_unique_id": "job", "span_unique_id": "agent", "span_name": "agent.workflow",
             "start_time": rfc3339(start), "status": "running", "input": "plan a trip",
             "metadata": {"step": 2}},
            {"trace_unique_id": "job", "span_unique_id": "call-2", "span_parent_id": "agent",
             "start_time": rfc3339(start + 4.0), "latency": 1.0, "model": "gpt-4o-mini",
             "prompt_tokens": 20, "completion_tokens": 5},
        ]),
    )
    .await;
    let trace = server.trace("job").await;
    assert_eq!(trace["status"], "running");
    assert_eq!(trace["running_count"], 1);
    assert_eq!(trace["span_count"], 3);
    assert_eq!(trace["total_prompt_tokens"], 30);
    assert_eq!(trace["duration"], 5.0);
    let agent = find_node(&trace["span_tree"], "agent").unwrap();
    assert_eq!(agent["metadata"], json!({"step": 2}));
    assert_eq!(agent["status"], "running");
    let stats = summary(&server).await;
    assert_eq!(stats["number_of_requests"], 2);
    assert_eq!(stats["avg_latency"], 1.5);

    // Close: the same span again, with its end.
    send(
        &server,
        json!([
            {"trace_unique_id": "job", "span_unique_id": "agent", "span_name": "agent.workflow",
             "start_time": rfc3339(start), "timestamp": rfc3339(start + 12.0),
             "input": "plan a trip", "output": "done"},
        ]),
    )
    .await;
    let trace = server.trace("job").await;
    assert_eq!(trace["status"], "success");
    assert_eq!(trace["running_count"], 0);
    assert_eq!(trace["span_count"], 3);
    assert_eq!(trace["duration"], 12.0);
    let agent = find_node(&trace["span_tree"], "agent").unwrap();
    assert_eq!(agent["status"], "success");
    assert_eq!(agent["latency"], 12.0);
    assert_eq!(listed(&server, "job").await, ("success".to_owned(), false));
    let stats = summary(&server).await;
    assert_eq!(stats["number_of_requests"], 3);
    assert_eq!(stats["avg_latency"], 5.0);
}

async fn a_span_running_past_the_timeout_is_shown_abandoned(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let two_days_ago = now_secs() - 2.0 * 86_400.0;
    send(
        &server,
        json!([
            {"trace_unique_id": "stuck", "span_unique_id": "worker", "start_time": rfc3339(two_days_ago)},
            {"trace_unique_id": "fresh", "span_unique_id": "worker", "start_time": rfc3339(now_secs() - 5.0)},
        ]),
    )
    .await;
    let stuck = server.trace("stuck").await;
    assert_eq!(stuck["status"], "abandoned");
    assert_eq!(
        find_node(&stuck["span_tree"], "worker").unwrap()["status"],
        "abandoned"
    );
    assert_eq!(
        listed(&server, "stuck").await,
        ("abandoned".to_owned(), true)
    );
    assert_eq!(server.trace("fresh").await["status"], "running");
    // Stored as running: an end still closes it.
    send(
        &server,
        json!([{"trace_unique_id": "stuck", "span_unique_id": "worker",
                "start_time": rfc3339(two_days_ago), "latency": 30.0}]),
    )
    .await;
    let closed = server.trace("stuck").await;
    assert_eq!(closed["status"], "success");
    assert_eq!(closed["duration"], 30.0);
}
