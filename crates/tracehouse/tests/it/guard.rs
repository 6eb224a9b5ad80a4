//! Promises about every route: a key is required, a key sees only its own project (404, never
//! 403), and the limits (rate, in-flight, body time, headers) answer with clear errors. Also
//! request ids, `/metrics` and CORS.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracehouse_server::Limits;

use crate::util::TestServer;

/// Every data route of the router, with a body that would be valid, as (method, path).
/// `{trace}` and `{span}` stand for ids of the project that owns the data.
const DATA_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/traces/ingest"),
    ("POST", "/v1/traces/ingest"),
    ("POST", "/api/openai/v1/traces/ingest"),
    ("POST", "/openai/v1/traces/ingest"),
    ("POST", "/api/v1/traces"),
    ("POST", "/v1/traces"),
    ("POST", "/api/v2/traces"),
    ("POST", "/v2/traces"),
    ("GET", "/api/traces/list/"),
    ("POST", "/api/traces/list/"),
    ("GET", "/api/traces/export/"),
    ("POST", "/api/traces/export/"),
    ("GET", "/api/traces/{trace}/"),
    ("POST", "/api/traces/{trace}/"),
    ("DELETE", "/api/traces/{trace}/"),
    ("GET", "/api/request-logs/list/"),
    ("POST", "/api/request-logs/list/"),
    ("GET", "/api/request-logs/{span}/"),
    ("PATCH", "/api/request-logs/{span}/"),
    ("PATCH", "/api/request-logs/batch-update/"),
    ("POST", "/api/request-logs/"),
    ("POST", "/api/request-logs/create/"),
    ("GET", "/api/logs/{span}/scores/"),
    ("POST", "/api/logs/{span}/scores/"),
    ("GET", "/api/logs/{span}/scores/{score}/"),
    ("PATCH", "/api/logs/{span}/scores/{score}/"),
    ("DELETE", "/api/logs/{span}/scores/{score}/"),
    ("GET", "/api/request-logs/summary/"),
    ("POST", "/api/request-logs/summary/"),
    ("GET", "/api/projects/current/"),
    ("GET", "/api/metrics/timeseries/"),
    ("POST", "/api/metrics/timeseries/"),
    ("GET", "/api/metrics/top/"),
    ("POST", "/api/metrics/top/"),
    ("GET", "/api/log_threads/"),
    ("POST", "/api/log_threads/"),
    ("GET", "/api/log_thread/{thread}/"),
    ("GET", "/api/users/list/"),
    ("POST", "/api/users/list/"),
    ("GET", "/api/users/{customer}/"),
    ("PATCH", "/api/users/{customer}/"),
];

fn concrete(path: &str) -> String {
    path.replace("{trace}", "guarded-trace")
        .replace("{span}", "guarded-span")
        .replace("{score}", "guarded-score")
        .replace("{thread}", "guarded-thread")
        .replace("{customer}", "guarded-customer")
}

/// Each spelling a client may use: with and without `/api`, with and without the slash.
fn spellings(path: &str) -> Vec<String> {
    let bare = path.strip_prefix("/api").unwrap_or(path);
    let trimmed = bare.trim_end_matches('/');
    let mut all = vec![
        format!("/api{trimmed}"),
        format!("/api{trimmed}/"),
        trimmed.to_owned(),
        format!("{trimmed}/"),
    ];
    all.dedup();
    all
}

fn body_for(method: &str, path: &str) -> (Vec<u8>, &'static str) {
    if path.contains("/scores/") && matches!(method, "POST" | "PATCH") {
        let score = if method == "POST" {
            json!({"evaluator_slug": "guard", "numerical_value": 1})
        } else {
            json!({"numerical_value": 1})
        };
        return (score.to_string().into_bytes(), "application/json");
    }
    if method == "PATCH" {
        let change = if path.contains("batch-update") {
            json!([{"id": "guarded-span", "note": "changed"}])
        } else {
            json!({"note": "changed"})
        };
        return (change.to_string().into_bytes(), "application/json");
    }
    if method != "POST" {
        return (Vec::new(), "application/json");
    }
    if path.contains("/ingest") {
        let spans = json!([{"trace_unique_id": "guarded-trace", "span_unique_id": "x"}]);
        return (spans.to_string().into_bytes(), "application/json");
    }
    if path.ends_with("/v1/traces") || path.ends_with("/v2/traces") {
        return (b"{}".to_vec(), "application/json");
    }
    (b"{}".to_vec(), "application/json")
}

#[tokio::test]
async fn every_data_route_needs_a_key_and_the_router_has_no_undocumented_ones() {
    let server = TestServer::start().await;
    // The OpenAPI document lists the routes; each must be in the walk above (or be public).
    let (_, document) = server.get("/openapi.json").await;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let public = operations[method.to_lowercase()].get("security").is_none();
            let walked = DATA_ROUTES.iter().any(|(m, p)| {
                *m == method
                    && concrete(p)
                        == path
                            .replace("{trace_unique_id}", "guarded-trace")
                            .replace("{span_unique_id}", "guarded-span")
                            .replace("{id}", "guarded-span")
                            .replace("{score_id}", "guarded-score")
                            .replace("{thread_identifier}", "guarded-thread")
                            .replace("{customer_identifier}", "guarded-customer")
            });
            assert!(
                public || walked,
                "{method} {path} is documented but not walked"
            );
        }
    }
    for (method, path) in DATA_ROUTES {
        for spelling in spellings(&concrete(path)) {
            let (body, content_type) = body_for(method, &spelling);
            let response = server
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    server.url(&spelling),
                )
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or_default();
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {spelling}: {answer}"
            );
            assert_eq!(answer["error"], "unauthorized", "{method} {spelling}");
        }
    }
    // The public ones answer without a key.
    for path in ["/healthz", "/openapi.json", "/metrics", "/"] {
        let status = server
            .client
            .get(server.url(path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn another_projects_data_is_not_found_not_forbidden() {
    let server = TestServer::start().await;
    let (status, _) = server
        .ingest(&json!([
            {"trace_unique_id": "guarded-trace", "span_unique_id": "guarded-span", "span_name": "secret.task",
             "start_time": "2025-01-01T00:00:00Z", "input": "owner's data"}
        ]))
        .await;
    assert_eq!(status, 200);
    let intruder = server.key_for("intruder").await;
    for (method, path) in DATA_ROUTES {
        let path = concrete(path);
        if !(path.contains("guarded-trace")
            || path.contains("guarded-span")
            || path.contains("batch-update"))
        {
            continue;
        }
        let (body, content_type) = body_for(method, &path);
        let response = server
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(&path),
            )
            .header("content-type", content_type)
            .body(body)
            .bearer_auth(&intruder)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {text}");
        assert!(
            !text.contains("owner's data"),
            "{method} {path} leaked: {text}"
        );
    }
    // The intruder's updates changed nothing.
    let (status, owned) = server.get("/api/request-logs/guarded-span/").await;
    assert_eq!(status, 200);
    assert_eq!(owned.get("note"), None, "{owned}");
    assert_eq!(owned.get("scores"), None, "{owned}");
    // Lists, summaries and exports of the intruder hold none of it.
    for path in ["/api/traces/list/", "/api/request-logs/list/"] {
        let (status, body) = server.get_with_key(path, &intruder).await;
        assert_eq!(status, 200);
        assert_eq!(body["count"], 0, "{path}: {body}");
    }
    let export = server
        .client
        .get(server.url("/api/traces/export/"))
        .bearer_auth(&intruder)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export, "");
    // The intruder's delete did not delete: the owner still has the trace.
    assert_eq!(server.trace("guarded-trace").await["span_count"], 1);
    // A revoked key stops at once.
    let (_, keys) = (0, server.store.list_keys().await.unwrap());
    let intruder_id = keys
        .iter()
        .find(|k| k.project.as_str() == "intruder")
        .unwrap()
        .id;
    server.store.revoke_key(intruder_id).await.unwrap();
    let (status, _) = server.get_with_key("/api/traces/list/", &intruder).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed() {
    let server = TestServer::start_with_limits(Limits {
        rate_limit_per_second: Some(1),
        rate_limit_burst: Some(3),
        ..Limits::default()
    })
    .await;
    let other = server.key_for("other").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _) = server.get("/api/traces/list/").await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    let response = server
        .client
        .get(server.url("/api/traces/list/"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let (status, _) = server.get_with_key("/api/traces/list/", &other).await;
    assert_eq!(status, 200, "another key has its own bucket");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = server.get("/api/traces/list/").await;
    assert_eq!(status, 200, "the bucket refills");
}

/// Opens a connection, sends the headers of an ingest request and part of its body, and keeps
/// the connection open: a slow client holding a request slot.
async fn start_slow_request(server: &TestServer, declared: usize) -> tokio::net::TcpStream {
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/traces/ingest HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n[",
        server.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn requests_beyond_the_in_flight_bound_get_503_and_slow_bodies_time_out() {
    let server = TestServer::start_with_limits(Limits {
        max_in_flight_requests: 1,
        request_body_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut slow = start_slow_request(&server, 1000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = server
        .client
        .get(server.url("/api/traces/list/"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("in flight"),
        "{body}"
    );
    // Liveness answers even when saturated.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    // The slow client runs out of time and gets a 408; its slot is free again.
    let answer = read_answer(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (status, _) = server.get("/api/traces/list/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn errors_carry_the_request_id_of_the_answer() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/api/v1/traces/ingest"))
        .bearer_auth(&server.key)
        .header("content-type", "application/json")
        .header("x-request-id", "client-chosen-42")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "client-chosen-42");
    // Without one (or with an unusable one) the server makes one.
    let response = server
        .client
        .get(server.url("/api/traces/nope/"))
        .bearer_auth(&server.key)
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let header = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(header.len(), 16);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], header);
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no metric line starting with {line_start:?} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_requests_and_spans() {
    let server = TestServer::start().await;
    let (status, _) = server
        .ingest(&json!([
            {"trace_unique_id": "m", "span_unique_id": "1", "start_time": "2025-01-01T00:00:00Z"},
            {"trace_unique_id": "m", "span_unique_id": "2", "start_time": "2025-01-01T00:00:00Z"},
            {"trace_unique_id": "m", "span_unique_id": "3", "prompt_tokens": "many"},
        ]))
        .await;
    assert_eq!(status, 207);
    server.get("/api/traces/m/").await;
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "tracehouse_spans_accepted_total"), 2.0);
    assert_eq!(
        metric(
            &text,
            "tracehouse_spans_rejected_total{field=\"prompt_tokens\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "tracehouse_http_requests_total{route=\"/api/v1/traces/ingest\",method=\"POST\",status=\"207\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "tracehouse_http_requests_total{route=\"/api/traces/{trace_id}/\",method=\"GET\",status=\"200\"}"
        ),
        1.0
    );
    assert!(metric(&text, "tracehouse_store_commits_total") >= 1.0);
    assert!(metric(&text, "tracehouse_store_database_bytes") > 0.0);
    assert_eq!(metric(&text, "tracehouse_store_commit_spans_sum"), 2.0);
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let server = TestServer::start().await;
    let response = server
        .client
        .request(Method::OPTIONS, server.url("/api/traces/list/"))
        .header("origin", "https://elsewhere.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn requests_over_the_span_count_limit_get_413() {
    let server = TestServer::start_with_limits(Limits {
        max_spans_per_request: 2,
        ..Limits::default()
    })
    .await;
    let three = json!([
        {"trace_unique_id": "n", "span_unique_id": "1"},
        {"trace_unique_id": "n", "span_unique_id": "2"},
        {"span_unique_id": "invalid items count too"},
    ]);
    let (status, body) = server.ingest(&three).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "too_many_items");
    assert_eq!(
        body["message"],
        "batch has 3 items, the limit is 2 per request: split it"
    );
    let (_, listed) = server.get("/api/request-logs/list/").await;
    assert_eq!(listed["count"], 0, "nothing of a refused request is stored");
    let (status, _) = server
        .ingest(&json!([{"trace_unique_id": "n", "span_unique_id": "1"}]))
        .await;
    assert_eq!(status, 200);
}
