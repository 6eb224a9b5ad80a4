//! Key scopes over every route: each route × each scope, on every store. An allowed call
//! succeeds; any other answers 403 naming the scope it lacks and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::util::{Backend, TestServer, on_every_store};

on_every_store!(every_route_answers_each_scope_as_documented);

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Ingest,
    Read,
    Admin,
    AnyKey,
}

/// The scopes each test key holds.
const KEYS: [&str; 4] = ["ingest", "read", "admin", "ingest,read"];

fn allowed(needs: Needs, scopes: &str) -> bool {
    let has = |scope: &str| {
        scopes
            .split(',')
            .any(|held| held == scope || held == "admin")
    };
    match needs {
        Needs::Ingest => has("ingest"),
        Needs::Read => has("read"),
        Needs::Admin => has("admin"),
        Needs::AnyKey => true,
    }
}

/// Everything a forbidden call could have changed, read with the admin key.
async fn snapshot(server: &TestServer, log: &str) -> Value {
    let (_, project) = server.get("/api/projects/current/").await;
    let (_, traces) = server.get("/api/traces/list/?page_size=100").await;
    let (_, detail) = server.get(&format!("/api/request-logs/{log}/")).await;
    let (_, scores) = server.get(&format!("/api/logs/{log}/scores/")).await;
    json!({
        "spans": project["span_count"],
        "traces": traces["count"],
        "note": detail.get("note"),
        "metadata": detail.get("metadata"),
        "scores": scores["results"],
    })
}

/// One call as `key`, with `body` as JSON unless it is null; the answer's JSON (null if none).
async fn call(
    server: &TestServer,
    method: &Method,
    path: &str,
    body: &Value,
    key: &str,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .request(method.clone(), server.url(path))
        .bearer_auth(key);
    if !body.is_null() {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

async fn every_route_answers_each_scope_as_documented(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .ingest(&json!([
            {"trace_unique_id": "kept", "span_unique_id": "s1", "span_name": "kept.workflow",
             "start_time": "2025-01-01T00:00:00Z", "latency": 1.0, "metadata": {"n": 1}},
            {"trace_unique_id": "doomed", "span_unique_id": "s1",
             "start_time": "2025-01-01T00:01:00Z", "latency": 1.0},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, kept) = server
        .get("/api/request-logs/s1/?trace_unique_id=kept")
        .await;
    let log = kept["id"].as_str().unwrap().to_owned();
    let (status, score) = server
        .post_json(
            &format!("/api/logs/{log}/scores/"),
            &json!({"evaluator_slug": "seed", "numerical_value": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{score}");
    let score_id = score["id"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for scopes in KEYS {
        keys.push((scopes, server.key_with_scopes(scopes).await));
    }

    let scores = format!("/api/logs/{log}/scores/");
    let one_score = format!("{scores}{score_id}/");
    let detail = format!("/api/request-logs/{log}/");
    let routes: Vec<(Method, String, Value, Needs)> = vec![
        (
            Method::POST,
            "/api/v1/traces/ingest".into(),
            json!([{"trace_unique_id": "new", "span_unique_id": "x"}]),
            Needs::Ingest,
        ),
        (
            Method::POST,
            "/v1/traces".into(),
            json!({"resourceSpans": []}),
            Needs::Ingest,
        ),
        (
            Method::POST,
            "/api/request-logs/".into(),
            json!({"model": "gpt-4o"}),
            Needs::Ingest,
        ),
        (
            Method::GET,
            "/api/traces/list/".into(),
            Value::Null,
            Needs::Read,
        ),
        (
            Method::GET,
            "/api/traces/kept/".into(),
            Value::Null,
            Needs::Read,
        ),
        (
            Method::GET,
            "/api/traces/export/".into(),
            Value::Null,
            Needs::Read,
        ),
        (
            Method::GET,
            "/api/request-logs/list/".into(),
            Value::Null,
            Needs::Read,
        ),
        (
            Method::POST,
            "/api/request-logs/summary/".into(),
            json!({}),
            Needs::Read,
        ),
        (Method::GET, detail.clone(), Value::Null, Needs::Read),
        (
            Method::GET,
            "/api/metrics/timeseries/?metric=cost".into(),
            Value::Null,
            Needs::Read,
        ),
        (
            Method::GET,
            "/api/metrics/top/?metric=cost&group_by=model".into(),
            Value::Null,
            Needs::Read,
        ),
        (Method::GET, scores.clone(), Value::Null, Needs::Read),
        (Method::GET, one_score.clone(), Value::Null, Needs::Read),
        (
            Method::GET,
            "/api/projects/current/".into(),
            Value::Null,
            Needs::AnyKey,
        ),
        (
            Method::PATCH,
            detail.clone(),
            json!({"note": "changed"}),
            Needs::Admin,
        ),
        (
            Method::PATCH,
            "/api/request-logs/batch-update/".into(),
            json!([{"id": log, "metadata": {"n": 2}}]),
            Needs::Admin,
        ),
        (
            Method::POST,
            scores.clone(),
            json!({"evaluator_slug": "other", "numerical_value": 3}),
            Needs::Admin,
        ),
        (
            Method::PATCH,
            one_score.clone(),
            json!({"numerical_value": 2}),
            Needs::Admin,
        ),
        (Method::DELETE, one_score.clone(), Value::Null, Needs::Admin),
        (
            Method::DELETE,
            "/api/traces/doomed/".into(),
            Value::Null,
            Needs::Admin,
        ),
    ];

    for (method, path, body, needs) in &routes {
        let (refused, permitted): (Vec<_>, Vec<_>) = keys
            .iter()
            .partition(|(scopes, _)| !allowed(*needs, scopes));
        // Refused first, so the state they must not change is the state before the route ran.
        for (scopes, key) in refused {
            let before = snapshot(&server, &log).await;
            let (status, answer) = call(&server, method, path, body, key).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} as {scopes}: {answer}"
            );
            assert_eq!(answer["error"], "forbidden", "{method} {path} as {scopes}");
            let wanted = match needs {
                Needs::Ingest => "ingest",
                Needs::Read => "read",
                _ => "admin",
            };
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("needs the {wanted} scope")),
                "{method} {path} as {scopes}: {answer}"
            );
            assert_eq!(
                snapshot(&server, &log).await,
                before,
                "{method} {path} as {scopes} changed something"
            );
        }
        // A route that removes something runs once, with the first key allowed.
        let runs = if *method == Method::DELETE {
            1
        } else {
            permitted.len()
        };
        for (scopes, key) in permitted.into_iter().take(runs) {
            let (status, answer) = call(&server, method, path, body, key).await;
            assert!(
                status.is_success(),
                "{method} {path} as {scopes}: {status} {answer}"
            );
        }
    }

    // The project answers every key with its scopes, and counts only to keys that may read.
    for (scopes, key) in &keys {
        let (status, project) = server.get_with_key("/api/projects/current/", key).await;
        assert_eq!(status, StatusCode::OK);
        let listed: Vec<&str> = project["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|scope| scope.as_str().unwrap())
            .collect();
        assert_eq!(listed.join(","), *scopes);
        assert_eq!(project["can"]["admin"], *scopes == "admin");
        assert_eq!(
            project.get("span_count").is_some(),
            allowed(Needs::Read, scopes),
            "{scopes}: {project}"
        );
    }
    // What the allowed calls did is there.
    let (_, after) = server.get(&detail).await;
    assert_eq!(after["note"], "changed");
    assert_eq!(after["metadata"], json!({"n": 2}));
    let (status, _) = server.get("/api/traces/doomed/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server.get(&scores).await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["results"][0]["evaluator_slug"], "other");
}
