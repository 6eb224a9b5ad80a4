//! The threads and users APIs on every store: conversations assembled from spans that arrive
//! in any order over both ingest formats, customers' usage and profiles, feedback and score
//! filters, deletion and cross-project isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{Backend, TestServer, on_every_store};

on_every_store!(
    threads_assemble_from_both_formats_in_any_order,
    a_thread_answers_its_conversation_turn_by_turn,
    deleted_traces_leave_their_thread,
    users_sum_their_usage_and_keep_their_profiles,
    threads_and_users_filter_sort_and_page,
    another_project_sees_no_threads_or_users,
    feedback_and_scores_filter_traces_and_threads,
    lists_give_each_row_its_cost_over_time,
    users_show_the_profile_their_spans_send_under_what_patch_set,
    users_count_active_days_and_average_time_to_first_token,
    users_filter_and_sort_by_name_and_email,
);

fn message(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

/// A span-log trace: a workflow root naming the thread and customer, and one chat call.
/// Children come first, so the root arrives after the span that names it as parent.
fn chat_trace(
    trace: &str,
    thread: &str,
    customer: &str,
    second: u32,
    prompt: Vec<Value>,
    answer: &str,
    cost: f64,
) -> Vec<Value> {
    let at = |offset: u32| format!("2025-03-01T10:00:{:02}Z", second + offset);
    vec![
        json!({
            "trace_unique_id": trace, "span_unique_id": format!("{trace}-chat"),
            "span_parent_id": format!("{trace}-root"), "span_name": "openai.chat",
            "log_type": "chat", "model": "gpt-4o-mini",
            "start_time": at(0), "timestamp": at(1),
            "prompt_messages": prompt, "completion_message": message("assistant", answer),
            "prompt_tokens": 10, "completion_tokens": 5, "cost": cost,
        }),
        json!({
            "trace_unique_id": trace, "span_unique_id": format!("{trace}-root"),
            "span_name": "turn.workflow", "log_type": "workflow",
            "thread_identifier": thread, "customer_identifier": customer,
            "start_time": at(0), "timestamp": at(2),
        }),
    ]
}

fn attribute(key: &str, value: Value) -> Value {
    let typed = match value {
        Value::Number(n) => json!({"intValue": n.to_string()}),
        other => json!({"stringValue": other.as_str().unwrap_or_default()}),
    };
    json!({"key": key, "value": typed})
}

/// The second turn of `conv-1` as an OTLP export: the thread comes as `gen_ai.conversation.id`
/// and the customer as `respan.customer_params.customer_identifier` on the root, the messages
/// as `gen_ai.prompt.*` / `gen_ai.completion.*` on the chat span.
fn otlp_second_turn() -> Value {
    let nanos = |second: u64| (1_740_823_200 + second) * 1_000_000_000;
    let prompt = [
        ("system", "You are terse."),
        ("user", "Hello there"),
        ("assistant", "Hi!"),
        ("user", "What is 2+2?"),
    ];
    let mut chat_attributes = vec![
        attribute("gen_ai.operation.name", json!("chat")),
        attribute("gen_ai.request.model", json!("gpt-4o-mini")),
        attribute("gen_ai.usage.input_tokens", json!(20)),
        attribute("gen_ai.usage.output_tokens", json!(1)),
        attribute("gen_ai.completion.0.role", json!("assistant")),
        attribute("gen_ai.completion.0.content", json!("4")),
    ];
    for (index, (role, content)) in prompt.iter().enumerate() {
        chat_attributes.push(attribute(
            &format!("gen_ai.prompt.{index}.role"),
            json!(role),
        ));
        chat_attributes.push(attribute(
            &format!("gen_ai.prompt.{index}.content"),
            json!(content),
        ));
    }
    let trace = "00000000000000000000000000000002";
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "0000000000000022", "parentSpanId": "0000000000000021",
         "name": "openai.chat", "startTimeUnixNano": nanos(10).to_string(),
         "endTimeUnixNano": nanos(11).to_string(), "attributes": chat_attributes},
        {"traceId": trace, "spanId": "0000000000000021", "name": "turn.workflow",
         "startTimeUnixNano": nanos(10).to_string(), "endTimeUnixNano": nanos(12).to_string(),
         "attributes": [
            attribute("gen_ai.conversation.id", json!("conv-1")),
            attribute("respan.customer_params.customer_identifier", json!("ann")),
         ]},
    ]}]}]})
}

/// `conv-1` (ann): turn 1 and 3 as span logs, turn 2 over OTLP, sent last turn first;
/// `conv-2` (bob): one turn.
async fn conversations(backend: Backend) -> TestServer {
    let server = TestServer::start_on(backend).await;
    let system = message("system", "You are terse.");
    let third = chat_trace(
        "t3",
        "conv-1",
        "ann",
        20,
        vec![
            system.clone(),
            message("user", "Hello there"),
            message("assistant", "Hi!"),
            message("user", "What is 2+2?"),
            message("assistant", "4"),
            message("user", "Thanks"),
        ],
        "Welcome.",
        0.003,
    );
    let (status, body) = server.ingest(&Value::Array(third)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .bearer_auth(&server.key)
        .json(&otlp_second_turn())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first = chat_trace(
        "t1",
        "conv-1",
        "ann",
        0,
        vec![system, message("user", "Hello there")],
        "Hi!",
        0.001,
    );
    let other = chat_trace(
        "t9",
        "conv-2",
        "bob",
        40,
        vec![message("user", "Bonjour")],
        "Salut",
        0.02,
    );
    let (status, body) = server.ingest(&Value::Array([first, other].concat())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server
}

async fn patch_with_key(server: &TestServer, path: &str, key: &str, body: Value) -> StatusCode {
    let response = server
        .client
        .patch(server.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    response.status()
}

async fn delete_trace(server: &TestServer, trace: &str) -> StatusCode {
    let response = server
        .client
        .delete(server.url(&format!("/api/traces/{trace}/")))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    response.status()
}

fn keys(list: &Value) -> Vec<&str> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect()
}

async fn threads_assemble_from_both_formats_in_any_order(backend: Backend) {
    let server = conversations(backend).await;
    let (status, list) = server.get("/api/log_threads/").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["count"], 2);
    assert_eq!(keys(&list), ["conv-2", "conv-1"], "latest activity first");
    let conv = &list["results"][1];
    assert_eq!(conv["thread_identifier"], "conv-1");
    assert_eq!(conv["customer_identifier"], "ann");
    assert_eq!(conv["trace_count"], 3);
    assert_eq!(conv["number_of_requests"], 6);
    assert_eq!(conv["llm_call_count"], 3);
    assert_eq!(conv["error_count"], 0);
    assert_eq!(conv["total_prompt_tokens"], 40);
    assert_eq!(conv["total_tokens"], 51);
    assert_eq!(conv["first_seen"], "2025-03-01T10:00:00Z");
    assert_eq!(conv["last_seen"], "2025-03-01T10:00:22Z");
    assert_eq!(conv["first_trace_unique_id"], "t1");
    assert_eq!(conv["first_user_message"], "Hello there");
    // Every trace takes 2 s.
    assert_eq!(conv["latency_p50"], 2.0);
    let cost = conv["total_cost"].as_f64().unwrap();
    assert!(
        cost > 0.004 - 1e-9,
        "the OTLP turn's cost adds to 0.004: {cost}"
    );
}

async fn a_thread_answers_its_conversation_turn_by_turn(backend: Backend) {
    let server = conversations(backend).await;
    let (status, thread) = server.get("/api/log_thread/conv-1/").await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["trace_count"], 3);
    assert_eq!(thread["customer_identifier"], "ann");
    assert_eq!(thread["next_page"], Value::Null);
    let traces = thread["traces"].as_array().unwrap();
    let ids: Vec<&str> = traces
        .iter()
        .map(|t| t["trace_unique_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t1", "00000000000000000000000000000002", "t3"]);
    let turn = |trace: usize| &traces[trace]["turns"][0];
    let texts = |trace: usize| -> Vec<(String, String)> {
        turn(trace)["new_messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |role: &str, text: &str| (role.to_owned(), text.to_owned());
    assert_eq!(
        texts(0),
        [
            pair("system", "You are terse."),
            pair("user", "Hello there")
        ]
    );
    assert_eq!(turn(0)["completion_message"]["content"], "Hi!");
    assert_eq!(texts(1), [pair("user", "What is 2+2?")]);
    assert_eq!(turn(1)["completion_message"]["content"], "4");
    assert_eq!(turn(1)["prompt_tokens"], 20);
    assert_eq!(texts(2), [pair("user", "Thanks")]);
    assert_eq!(turn(2)["cost"], 0.003);
    assert_eq!(turn(2)["latency"], 1.0);
    assert_eq!(traces[2]["duration"], 2.0);

    // A page of one trace starts from the turn before it.
    let (_, second) = server
        .get("/api/log_thread/conv-1/?page=2&page_size=1")
        .await;
    assert_eq!(second["next_page"], 3);
    assert_eq!(
        second["traces"][0]["turns"][0]["new_messages"][0]["content"],
        "What is 2+2?"
    );
    let (status, missing) = server.get("/api/log_thread/nope/").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

async fn deleted_traces_leave_their_thread(backend: Backend) {
    let server = conversations(backend).await;
    for trace in ["t1", "00000000000000000000000000000002"] {
        assert_eq!(delete_trace(&server, trace).await, StatusCode::NO_CONTENT);
    }
    let (_, list) = server.get("/api/log_threads/").await;
    let conv = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == "conv-1")
        .unwrap();
    assert_eq!(conv["trace_count"], 1);
    assert_eq!(conv["first_trace_unique_id"], "t3");
    assert_eq!(
        conv["first_user_message"], "Hello there",
        "t3's prompt holds the history"
    );
    assert_eq!(delete_trace(&server, "t3").await, StatusCode::NO_CONTENT);
    let (_, list) = server.get("/api/log_threads/").await;
    assert_eq!(keys(&list), ["conv-2"]);
    assert_eq!(
        server.get("/api/log_thread/conv-1/").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, users) = server.get("/api/users/list/").await;
    assert_eq!(keys(&users), ["bob"], "ann had no other trace");
}

async fn users_sum_their_usage_and_keep_their_profiles(backend: Backend) {
    let server = conversations(backend).await;
    let (status, users) = server
        .post_json("/api/users/list/?sort_by=-total_cost", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    assert_eq!(keys(&users), ["bob", "ann"]);
    assert_eq!(users["count"], 2, "the users on this page");
    let ann = &users["results"][1];
    assert_eq!(ann["customer_identifier"], "ann");
    assert_eq!(ann["trace_count"], 3);
    assert_eq!(ann["thread_count"], 1);
    assert_eq!(ann["number_of_requests"], 6);
    assert_eq!(ann["total_requests"], 6);
    assert_eq!(ann["total_tokens"], 51);
    assert_eq!(ann["first_seen"], "2025-03-01T10:00:00Z");
    assert_eq!(ann["name"], Value::Null);

    let (status, updated) = server
        .patch_json(
            "/api/users/ann/",
            &json!({"name": "Ann Example", "email": "ann@example.com",
                    "metadata": {"plan": "pro"}, "period_budget": 25.5,
                    "budget_duration": "monthly"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Ann Example");
    assert_eq!(updated["period_budget"], 25.5);
    let (_, ann) = server.get("/api/users/ann/").await;
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["metadata"]["plan"], "pro");
    assert_eq!(ann["budget_duration"], "monthly");
    assert_eq!(ann["trace_count"], 3);
    // The traces are from 2025: nothing in the current month.
    assert_eq!(ann["total_period_usage"], 0.0);
    // A null clears one field and leaves the others.
    server
        .patch_json("/api/users/ann/", &json!({"email": null}))
        .await;
    let (_, users) = server
        .get("/api/users/list/?sort_by=customer_identifier")
        .await;
    assert_eq!(users["results"][0]["name"], "Ann Example");
    assert_eq!(users["results"][0]["email"], Value::Null);

    let (status, body) = server
        .patch_json("/api/users/ann/", &json!({"budget_duration": "yearly"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("budget_duration"),
        "{body}"
    );
    for (status, body) in [
        server.get("/api/users/nobody/").await,
        server
            .patch_json("/api/users/nobody/", &json!({"name": "x"}))
            .await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    // A read key reads users but cannot change them.
    let read = server.key_with_scopes("read").await;
    assert_eq!(
        server.get_with_key("/api/users/ann/", &read).await.0,
        StatusCode::OK
    );
    assert_eq!(
        patch_with_key(&server, "/api/users/ann/", &read, json!({"name": "x"})).await,
        StatusCode::FORBIDDEN
    );
}

async fn threads_and_users_filter_sort_and_page(backend: Backend) {
    let server = conversations(backend).await;
    let (_, list) = server
        .post_json(
            "/api/log_threads/",
            &json!({"filters": {"trace_count": {"operator": "gte", "value": [2]}}}),
        )
        .await;
    assert_eq!(keys(&list), ["conv-1"]);
    let (_, list) = server
        .post_json(
            "/api/log_threads/",
            &json!({"filters": {"customer_identifier": {"operator": "", "value": ["bob"]}}}),
        )
        .await;
    assert_eq!(keys(&list), ["conv-2"]);
    let (_, list) = server
        .get("/api/log_threads/?sort_by=first_seen&page_size=1&page=2")
        .await;
    assert_eq!(keys(&list), ["conv-2"]);
    assert_eq!(list["count"], 2);
    assert!(
        list["next"].is_null() && !list["previous"].is_null(),
        "{list}"
    );
    // Only traces started in the range count.
    let (_, list) = server
        .get("/api/log_threads/?start_time=2025-03-01T10:00:15Z")
        .await;
    let conv = &list["results"][1];
    assert_eq!(
        (conv["id"].as_str(), conv["trace_count"].as_u64()),
        (Some("conv-1"), Some(1))
    );
    // Past the last page the users list is empty, which ends the vendor client's pager.
    let (_, users) = server.get("/api/users/list/?page=3&page_size=1").await;
    assert_eq!(users["results"], json!([]));
    assert_eq!(users["count"], 0);
    assert_eq!(users["total"], 2);
    let (status, body) = server.get("/api/log_threads/?sort_by=colour").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("sort_by"),
        "{body}"
    );
    let (status, body) = server
        .post_json(
            "/api/users/list/",
            &json!({"filters": {"thread_count": {"operator": "x", "value": [1]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("thread_count"),
        "{body}"
    );
}

async fn another_project_sees_no_threads_or_users(backend: Backend) {
    let server = conversations(backend).await;
    let other = server.key_for("elsewhere").await;
    for path in ["/api/log_threads/", "/api/users/list/"] {
        let (status, list) = server.get_with_key(path, &other).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["results"], json!([]), "{path}");
    }
    for path in ["/api/log_thread/conv-1/", "/api/users/ann/"] {
        assert_eq!(
            server.get_with_key(path, &other).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        patch_with_key(
            &server,
            "/api/users/ann/",
            &other,
            json!({"name": "Mallory"})
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let (_, ann) = server.get("/api/users/ann/").await;
    assert_eq!(ann["name"], Value::Null);
}

async fn feedback_and_scores_filter_traces_and_threads(backend: Backend) {
    let server = conversations(backend).await;
    let (_, chat) = server
        .get("/api/request-logs/t9-chat/?trace_unique_id=t9")
        .await;
    let id = chat["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .patch_json(
            &format!("/api/request-logs/{id}/"),
            &json!({"positive_feedback": false, "note": "wrong language"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post_json(
            &format!("/api/logs/{id}/scores/"),
            &json!({"evaluator_slug": "quality", "numerical_value": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, first) = server
        .get("/api/request-logs/t1-chat/?trace_unique_id=t1")
        .await;
    server
        .patch_json(
            &format!("/api/request-logs/{}/", first["id"].as_str().unwrap()),
            &json!({"positive_feedback": true}),
        )
        .await;

    let filtered = |path: &'static str, filters: Value| {
        let server = &server;
        async move {
            let (status, list) = server.post_json(path, &json!({"filters": filters})).await;
            assert_eq!(status, StatusCode::OK, "{list}");
            list
        }
    };
    let list = filtered(
        "/api/traces/list/",
        json!({"positive_feedback": {"operator": "", "value": [false]}}),
    )
    .await;
    let traces: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_unique_id"].as_str().unwrap())
        .collect();
    assert_eq!(traces, ["t9"]);
    let list = filtered(
        "/api/log_threads/",
        json!({"positive_feedback": {"operator": "", "value": [true]}}),
    )
    .await;
    assert_eq!(keys(&list), ["conv-1"]);
    let list = filtered(
        "/api/log_threads/",
        json!({"scores__quality": {"operator": "lte", "value": [3]}}),
    )
    .await;
    assert_eq!(keys(&list), ["conv-2"]);
    let list = filtered(
        "/api/request-logs/list/",
        json!({"positive_feedback": {"operator": "isnull", "value": [false]}}),
    )
    .await;
    assert_eq!(list["count"], 2, "two logs carry feedback");
}

async fn lists_give_each_row_its_cost_over_time(backend: Backend) {
    let server = conversations(backend).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let spans: Vec<Value> = [("fresh-1", 0.25), ("fresh-2", 0.5)]
        .iter()
        .map(|(trace, cost)| {
            json!({"trace_unique_id": trace, "span_unique_id": "s", "span_name": "chat",
                   "log_type": "chat", "customer_identifier": "ann", "thread_identifier": "conv-9",
                   "start_time": now - 5.0, "timestamp": now - 4.0, "cost": cost})
        })
        .collect();
    server.ingest(&Value::Array(spans)).await;
    let (status, users) = server
        .get("/api/users/list/?sort_by=customer_identifier&cost_interval=day&cost_buckets=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    // The last bucket (or, seconds after midnight UTC, the one before) holds the new traces;
    // ann's 2025 traces are before the series.
    let recent = |series: &Value| -> Vec<f64> {
        let values: Vec<f64> = series
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let n = values.len();
        vec![values[..n - 2].iter().sum(), values[n - 2..].iter().sum()]
    };
    assert_eq!(recent(&users["results"][0]["cost_series"]), [0.0, 0.75]);
    assert_eq!(users["results"][0]["trace_count"], 5);
    assert_eq!(users["results"][1]["cost_series"], json!([0.0, 0.0, 0.0]));
    let (_, threads) = server
        .get("/api/log_threads/?cost_interval=hour&cost_buckets=3&customer_identifier=ann")
        .await;
    assert_eq!(threads["results"][0]["id"], "conv-9");
    assert_eq!(recent(&threads["results"][0]["cost_series"]), [0.0, 0.75]);
    let (status, body) = server.get("/api/users/list/?cost_interval=month").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("cost_interval"),
        "{body}"
    );
}

/// A span-log root naming `customer` (with `params` in `customer_params`) and, under it, one
/// chat call reporting `ttft` and a tool span whose `time_to_first_token` is no model call's.
fn profile_trace(trace: &str, day: u32, params: Value, ttft: f64) -> Vec<Value> {
    let at = |second: u32| format!("2025-03-{day:02}T10:00:{second:02}Z");
    vec![
        json!({
            "trace_unique_id": trace, "span_unique_id": format!("{trace}-root"),
            "span_name": "turn.workflow", "log_type": "workflow", "customer_params": params,
            "start_time": at(0), "timestamp": at(3),
        }),
        json!({
            "trace_unique_id": trace, "span_unique_id": format!("{trace}-chat"),
            "span_parent_id": format!("{trace}-root"), "span_name": "openai.chat",
            "log_type": "chat", "model": "gpt-4o-mini", "ttft": ttft,
            "start_time": at(1), "timestamp": at(2),
        }),
        json!({
            "trace_unique_id": trace, "span_unique_id": format!("{trace}-tool"),
            "span_parent_id": format!("{trace}-root"), "span_name": "lookup.tool",
            "log_type": "tool", "time_to_first_token": 9.0,
            "start_time": at(2), "timestamp": at(3),
        }),
    ]
}

/// `cara` over span logs on 1 and 2 March (the second request sends a new name only), `dan`
/// over OTLP (`respan.customer_params.*`), `eve` through the logging API.
async fn profiled_customers(backend: Backend) -> TestServer {
    let server = TestServer::start_on(backend).await;
    let first = profile_trace(
        "c1",
        1,
        json!({"customer_identifier": "cara", "name": "Cara Old", "email": "cara@old.example",
               "metadata": {"plan": "free"}, "period_budget": 5,
               "budget_duration": "fortnightly", "colour": "teal"}),
        0.2,
    );
    let (status, body) = server.ingest(&Value::Array(first)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = profile_trace(
        "c2",
        2,
        json!({"customer_identifier": "cara", "name": "Cara New", "email": null}),
        0.4,
    );
    let (status, body) = server.ingest(&Value::Array(second)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let nanos = |second: u64| ((1_740_823_200 + second) * 1_000_000_000).to_string();
    let export = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "000000000000000000000000000000d1", "spanId": "00000000000000d1",
         "name": "turn.workflow", "startTimeUnixNano": nanos(5), "endTimeUnixNano": nanos(6),
         "attributes": [
            attribute("respan.customer_params.customer_identifier", json!("dan")),
            attribute("respan.customer_params.name", json!("Dan")),
            attribute("respan.customer_params.email", json!("dan@example.com")),
         ]},
    ]}]}]});
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .bearer_auth(&server.key)
        .json(&export)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, created) = server
        .post_json(
            "/api/request-logs/create/",
            &json!({"model": "gpt-4o-mini", "log_type": "chat",
                    "prompt_messages": [message("user", "hi")],
                    "completion_message": message("assistant", "hello"),
                    "time_to_first_token": 0.5,
                    "customer_params": {"customer_identifier": "eve", "name": "Eve",
                                        "email": "eve@example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    server
}

async fn users_show_the_profile_their_spans_send_under_what_patch_set(backend: Backend) {
    let server = profiled_customers(backend).await;
    let (status, cara) = server.get("/api/users/cara/").await;
    assert_eq!(status, StatusCode::OK, "{cara}");
    // The latest value of each field sent; a null or a value of the wrong kind sends nothing.
    assert_eq!(cara["name"], "Cara New");
    assert_eq!(cara["email"], "cara@old.example");
    assert_eq!(cara["metadata"], json!({"plan": "free"}));
    assert_eq!(cara["period_budget"], 5);
    assert_eq!(cara["budget_duration"], Value::Null);
    assert_eq!(cara.get("colour"), None);
    assert!(cara["updated_at"].is_string(), "{cara}");
    let (_, dan) = server.get("/api/users/dan/").await;
    assert_eq!(
        (&dan["name"], &dan["email"]),
        (&json!("Dan"), &json!("dan@example.com"))
    );
    let (_, eve) = server.get("/api/users/eve/").await;
    assert_eq!(
        (&eve["name"], &eve["email"]),
        (&json!("Eve"), &json!("eve@example.com"))
    );
    let (_, users) = server
        .get("/api/users/list/?sort_by=customer_identifier")
        .await;
    assert_eq!(keys(&users), ["cara", "dan", "eve"]);
    assert_eq!(users["results"][0]["name"], "Cara New");
    assert_eq!(users["results"][0]["email"], "cara@old.example");
    assert_eq!(users["results"][1]["email"], "dan@example.com");

    // PATCH wins for the fields it set; the others still follow the spans.
    let (status, patched) = server
        .patch_json("/api/users/cara/", &json!({"name": "Cara Set"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Cara Set");
    assert_eq!(patched["email"], "cara@old.example");
    let later = json!([{
        "trace_unique_id": "c2", "span_unique_id": "c2-late", "span_parent_id": "c2-root",
        "span_name": "note.task", "log_type": "task",
        "customer_params": {"customer_identifier": "cara", "name": "Cara Newest",
                            "email": "cara@new.example"},
        "start_time": "2025-03-02T10:00:02Z", "timestamp": "2025-03-02T10:00:03Z",
    }]);
    let (status, body) = server.ingest(&later).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, cara) = server.get("/api/users/cara/").await;
    assert_eq!(cara["name"], "Cara Set");
    assert_eq!(cara["email"], "cara@new.example");
    // Clearing the PATCHed value shows the latest sent one again.
    server
        .patch_json("/api/users/cara/", &json!({"name": null}))
        .await;
    let (_, users) = server
        .post_json(
            "/api/users/list/",
            &json!({"filters": {"customer_identifier": {"operator": "", "value": ["cara"]}}}),
        )
        .await;
    assert_eq!(users["results"][0]["name"], "Cara Newest");
    assert_eq!(users["results"][0]["metadata"], json!({"plan": "free"}));
}

async fn users_count_active_days_and_average_time_to_first_token(backend: Backend) {
    let server = profiled_customers(backend).await;
    let (_, cara) = server.get("/api/users/cara/").await;
    assert_eq!(cara["active_days"], 2);
    // The two chat calls (0.2 s and 0.4 s); the tool span's 9 s is no model call's.
    let ttft = cara["average_ttft"].as_f64().unwrap();
    assert!((ttft - 0.3).abs() < 1e-9, "{cara}");
    let (_, users) = server
        .get("/api/users/list/?sort_by=customer_identifier")
        .await;
    let rows = users["results"].as_array().unwrap();
    assert_eq!(rows[0]["active_days"], 2);
    assert!((rows[0]["average_ttft"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(rows[1]["active_days"], 1);
    assert_eq!(
        rows[1]["average_ttft"],
        Value::Null,
        "dan made no model call"
    );
    assert_eq!(rows[2]["average_ttft"], 0.5);
    // Only traces in the range count, for both.
    let (_, users) = server
        .get("/api/users/list/?sort_by=customer_identifier&start_time=2025-03-02T00:00:00Z&end_time=2025-03-03T00:00:00Z")
        .await;
    assert_eq!(keys(&users), ["cara"]);
    assert_eq!(users["results"][0]["active_days"], 1);
    assert_eq!(users["results"][0]["average_ttft"], 0.4);
    let (_, users) = server
        .post_json(
            "/api/users/list/?sort_by=-active_days",
            &json!({"filters": {"active_days": {"operator": "gte", "value": [2]}}}),
        )
        .await;
    assert_eq!(keys(&users), ["cara"]);
}

async fn users_filter_and_sort_by_name_and_email(backend: Backend) {
    let server = profiled_customers(backend).await;
    let list = |filters: Value, sort: &'static str| {
        let server = &server;
        async move {
            let (status, users) = server
                .post_json(
                    &format!("/api/users/list/?sort_by={sort}"),
                    &json!({"filters": filters}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{users}");
            keys(&users)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(
            json!({"name": {"operator": "icontains", "value": ["CARA"]}}),
            "name"
        )
        .await,
        ["cara"]
    );
    assert_eq!(
        list(
            json!({"email": {"operator": "endswith", "value": ["@example.com"]}}),
            "customer_identifier"
        )
        .await,
        ["dan", "eve"]
    );
    assert_eq!(
        list(
            json!({"name": {"operator": "", "value": ["Dan", "Eve"]}}),
            "-name"
        )
        .await,
        ["eve", "dan"]
    );
    assert_eq!(list(json!({}), "name").await, ["cara", "dan", "eve"]);
    // A PATCHed name is what the filter sees.
    server
        .patch_json("/api/users/dan/", &json!({"name": "Zed"}))
        .await;
    assert_eq!(list(json!({}), "-name").await, ["dan", "eve", "cara"]);
    assert!(
        list(json!({"name": {"operator": "", "value": ["Dan"]}}), "name")
            .await
            .is_empty()
    );
    // Threads have no profile to filter on (their `name` is the trace list's, the root's name).
    let (status, body) = server
        .post_json(
            "/api/log_threads/",
            &json!({"filters": {"email": {"operator": "", "value": ["x"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("email"),
        "{body}"
    );
}
