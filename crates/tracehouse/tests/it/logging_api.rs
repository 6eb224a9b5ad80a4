//! The logging API (`request-logs` create), one unambiguous `id` per span, and updates of a
//! log's feedback fields, over HTTP with the vendor clients' captured requests, on every store.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{Backend, TestServer, fixture_json, on_every_store};

on_every_store!(
    logging_clients_create_logs_that_read_back_by_id,
    a_batch_of_logs_stores_the_good_ones_and_names_the_bad,
    a_span_id_shared_by_two_traces_is_resolved_by_id_and_refused_bare,
    updates_change_only_feedback_fields_and_refused_ones_change_nothing,
    scores_are_one_per_evaluator_and_filter_spans_and_traces,
);

/// A 400 whose message names `named` (the field at fault, or what is missing).
fn assert_refused(answer: (StatusCode, Value), body: &Value, named: &str) {
    let (status, error) = answer;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
    assert!(
        error["message"].as_str().unwrap().contains(named),
        "{body}: {error}"
    );
}

/// The body a vendor client sent, from `fixtures/logging-api/`.
fn captured_body(name: &str) -> Value {
    fixture_json(&format!("logging-api/{name}"))["body_json"].clone()
}

async fn logging_clients_create_logs_that_read_back_by_id(backend: Backend) {
    let server = TestServer::start_on(backend).await;

    // keywordsai's LogAPI.create: no `/api`, no trailing slash, `session_identifier`.
    let body = captured_body("keywordsai_1.0.4/001_POST_request_logs_create.json");
    let (status, created) = server.post_json("/request-logs/create", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["message"], "log successful");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["unique_id"], id.as_str());
    assert_eq!(created["trace_unique_id"].as_str().unwrap().len(), 32);
    assert_eq!(created["span_unique_id"].as_str().unwrap().len(), 16);

    let (status, log) = server.get(&format!("/request-logs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["id"], id.as_str());
    assert_eq!(log["model"], "gpt-4o-mini");
    assert_eq!(log["log_type"], "chat");
    assert_eq!(log["status_code"], 200);
    assert_eq!(log["prompt_tokens"], 9);
    assert_eq!(log["completion_tokens"], 3);
    assert_eq!(log["total_tokens"], 12);
    assert_eq!(log["cost"], 1e-05);
    assert_eq!(log["latency"], 0.42);
    assert_eq!(log["customer_identifier"], "kwai-cust-capture");
    assert_eq!(log["custom_identifier"], "kwai-custom-capture");
    assert_eq!(log["session_identifier"], "kwai-thread-capture");
    assert_eq!(log["thread_identifier"], "kwai-thread-capture");
    assert_eq!(
        log["metadata"],
        json!({"source": "keywordsai-LogAPI", "run": "capture"})
    );
    assert_eq!(
        log["prompt_messages"][1]["content"],
        "kwai-log-prompt capture"
    );
    assert_eq!(log["completion_message"]["content"], "kwai-log-answer");
    // It is a trace of its own.
    let trace = server
        .trace(created["trace_unique_id"].as_str().unwrap())
        .await;
    assert_eq!(trace["span_count"], 1);
    assert_eq!(trace["total_cost"], 1e-05);

    // respan-api's spans.create_span, and the legacy alias its docs name.
    let body = captured_body("respan_api_0.1.49/001_POST_api_request_logs.json");
    for path in [
        "/api/request-logs/",
        "/api/request-logs/create/",
        "/api/request-logs",
    ] {
        let (status, created) = server.post_json(path, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
        let (status, log) = server
            .get(&format!(
                "/api/request-logs/{}/",
                created["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["thread_identifier"], "rapi-thread-capture");
        assert_eq!(log["custom_identifier"], "rapi-custom-capture");
        assert_eq!(log["customer_identifier"], "rapi-cust-capture");
    }

    // The list a client pages through, filtered as keywordsai's list() asks.
    let (status, list) = server
        .get("/request-logs/list?page=1&page_size=10&customer_identifier=kwai-cust-capture")
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], id.as_str());
    let (_, list) = server
        .get("/api/request-logs/list/?customer_identifier=rapi-cust-capture")
        .await;
    assert_eq!(list["count"], 3);

    // Bad input names the field and stores nothing.
    let (status, error) = server
        .post_json(
            "/api/request-logs/",
            &json!({"model": "m", "prompt_tokens": -3}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("prompt_tokens"),
        "{error}"
    );
    let (status, error) = server
        .post_json("/api/request-logs/", &json!("hello"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = server
        .post_raw(
            "/api/request-logs/",
            b"{\"model\": ".to_vec(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (_, all) = server.get("/api/request-logs/list/?page_size=50").await;
    assert_eq!(all["count"], 4);
    let (status, error) = server.get("/api/request-logs/no-such-log/").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
}

async fn a_batch_of_logs_stores_the_good_ones_and_names_the_bad(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, answer) = server
        .post_json(
            "/api/request-logs/",
            &json!([
                {"model": "gpt-4o", "prompt_tokens": 5, "completion_tokens": 1},
                {"model": "gpt-4o", "cost": "free"},
                {"trace_unique_id": "given", "span_unique_id": "s1", "model": "o1"},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert_eq!(answer["rejected"][0]["field"], "cost");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["trace_unique_id"], "given");
    assert_eq!(results[1]["span_unique_id"], "s1");
    for result in results {
        let (status, log) = server
            .get(&format!(
                "/api/request-logs/{}/",
                result["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["id"], result["id"]);
    }
    let (_, list) = server.get("/api/request-logs/list/").await;
    assert_eq!(list["count"], 2);
}

async fn a_span_id_shared_by_two_traces_is_resolved_by_id_and_refused_bare(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .ingest(&json!([
            {"trace_unique_id": "one", "span_unique_id": "root", "span_name": "first",
             "start_time": "2025-01-01T00:00:00Z", "latency": 1.0, "metadata": {"n": 1}},
            {"trace_unique_id": "two", "span_unique_id": "root", "span_name": "second",
             "start_time": "2025-01-01T00:01:00Z", "latency": 1.0, "metadata": {"n": 2}},
            {"trace_unique_id": "two", "span_unique_id": "llm-1", "span_parent_id": "root",
             "start_time": "2025-01-01T00:01:00Z", "latency": 0.5, "model": "gpt-4o"},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, conflict) = server.get("/api/request-logs/root/").await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["error"], "ambiguous_id");
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains("trace_unique_id")
    );
    let candidates = conflict["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    let mut by_trace = std::collections::BTreeMap::new();
    for candidate in candidates {
        by_trace.insert(
            candidate["trace_unique_id"].as_str().unwrap().to_owned(),
            candidate["id"].as_str().unwrap().to_owned(),
        );
    }
    for (trace, name) in [("one", "first"), ("two", "second")] {
        let (status, log) = server
            .get(&format!("/api/request-logs/{}/", by_trace[trace]))
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["span_name"], name);
        assert_eq!(log["trace_unique_id"], trace);
        let (status, log) = server
            .get(&format!("/api/request-logs/root/?trace_unique_id={trace}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["span_name"], name);
    }
    // A span id that names one span is enough on its own.
    let (status, log) = server.get("/api/request-logs/llm-1/").await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["model"], "gpt-4o");
    // Lists and trace trees carry the same ids.
    let (_, list) = server.get("/api/request-logs/list/?page_size=10").await;
    let mut listed: Vec<String> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|span| span["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut want = vec![
        by_trace["one"].clone(),
        by_trace["two"].clone(),
        log["id"].as_str().unwrap().to_owned(),
    ];
    want.sort();
    assert_eq!(listed, want);

    // An update by id touches that span only; a bare shared id is refused and changes nothing.
    let (status, updated) = server
        .patch_json(
            &format!("/api/request-logs/{}/", by_trace["two"]),
            &json!({"positive_feedback": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["positive_feedback"], true);
    assert_eq!(updated["span_name"], "second");
    let (status, refused) = server
        .patch_json("/api/request-logs/root/", &json!({"note": "which?"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (_, first) = server
        .get(&format!("/api/request-logs/{}/", by_trace["one"]))
        .await;
    assert_eq!(first.get("positive_feedback"), None);
    assert_eq!(first.get("note"), None);
    let (_, second) = server
        .get(&format!("/api/request-logs/{}/", by_trace["two"]))
        .await;
    assert_eq!(second["positive_feedback"], true);
    assert_eq!(second.get("note"), None);
}

async fn updates_change_only_feedback_fields_and_refused_ones_change_nothing(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, created) = server
        .post_json(
            "/api/request-logs/",
            &json!({"model": "gpt-4o", "cost": 0.5, "prompt_tokens": 10,
                    "input": "what is the refund policy", "metadata": {"step": "draft", "keep": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/request-logs/{id}/");
    let (_, before) = server.get(&path).await;

    // Refused: a recorded field, a wrong type, an empty change, an unknown log.
    for (body, field) in [
        (json!({"note": "fine", "model": "gpt-5"}), "model"),
        (json!({"cost": 0}), "cost"),
        (json!({"positive_feedback": "yes"}), "positive_feedback"),
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({}), "nothing to update"),
    ] {
        assert_refused(server.patch_json(&path, &body).await, &body, field);
    }
    let (status, _) = server
        .patch_json("/api/request-logs/nothing-here/", &json!({"note": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, unchanged) = server.get(&path).await;
    assert_eq!(unchanged, before);

    // Accepted: metadata merged (null removes a key), note, feedback, custom identifier.
    let (status, updated) = server
        .patch_json(
            &path,
            &json!({"metadata": {"step": "final", "keep": null, "reviewer": "ana"},
                    "note": "checked by ana", "positive_feedback": false,
                    "custom_identifier": "ticket-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, after) = server.get(&path).await;
    assert_eq!(after, updated);
    assert_eq!(
        after["metadata"],
        json!({"step": "final", "reviewer": "ana"})
    );
    assert_eq!(after["note"], "checked by ana");
    assert_eq!(after["positive_feedback"], false);
    assert_eq!(after["custom_identifier"], "ticket-9");
    for unchanged_field in [
        "model",
        "cost",
        "prompt_tokens",
        "input",
        "start_time",
        "timestamp",
    ] {
        assert_eq!(
            after[unchanged_field], before[unchanged_field],
            "{unchanged_field}"
        );
    }
    // The metadata filter follows the change.
    let (_, found) = server
        .get("/api/request-logs/list/?metadata__step=final")
        .await;
    assert_eq!(found["count"], 1);
    let (_, gone) = server
        .get("/api/request-logs/list/?metadata__step=draft")
        .await;
    assert_eq!(gone["count"], 0);
    let (_, trace) = server
        .get(&format!(
            "/api/traces/{}/",
            after["trace_unique_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(trace["span_count"], 1);
    assert_eq!(trace["total_cost"], 0.5);

    // Batch: one bad item refuses all of it; a good batch changes each log named.
    let (_, other) = server
        .post_json("/api/request-logs/", &json!({"model": "o1"}))
        .await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let (status, error) = server
        .patch_json(
            "/api/request-logs/batch-update/",
            &json!({"logs": [
                {"id": id, "note": "batch"},
                {"id": other_id, "status_code": 500},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("logs[1].status_code"),
        "{error}"
    );
    let (status, error) = server
        .patch_json(
            "/api/request-logs/batch-update/",
            &json!([{"id": id, "note": "batch"}, {"id": "missing", "note": "x"}]),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with("logs[1].id"),
        "{error}"
    );
    let (_, still) = server.get(&path).await;
    assert_eq!(still["note"], "checked by ana");

    let (status, answer) = server
        .patch_json(
            "/api/request-logs/batch-update/",
            &json!([
                {"id": id, "note": "batch"},
                {"id": other_id, "positive_feedback": true, "metadata": {"k": 1}},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["updated"], 2);
    let (_, first) = server.get(&path).await;
    assert_eq!(first["note"], "batch");
    assert_eq!(first["positive_feedback"], false);
    let (_, second) = server.get(&format!("/api/request-logs/{other_id}/")).await;
    assert_eq!(second["positive_feedback"], true);
    assert_eq!(second["metadata"], json!({"k": 1}));
}

/// A span list (or trace list) filtered by one `filters` entry, as JSON in the query string.
async fn count_where(
    server: &TestServer,
    list: &str,
    field: &str,
    operator: &str,
    value: Value,
) -> u64 {
    let filters = json!({ field: {"operator": operator, "value": [value]} }).to_string();
    let encoded: String = filters.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, answer) = server.get(&format!("{list}?filters={encoded}")).await;
    assert_eq!(status, StatusCode::OK, "{field} {operator}: {answer}");
    answer["count"].as_u64().unwrap()
}

async fn scores_are_one_per_evaluator_and_filter_spans_and_traces(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, body) = server
        .ingest(&json!([
            {"trace_unique_id": "one", "span_unique_id": "root", "span_name": "first",
             "start_time": "2025-01-01T00:00:00Z", "latency": 1.0},
            {"trace_unique_id": "two", "span_unique_id": "root", "span_name": "second",
             "start_time": "2025-01-01T00:01:00Z", "latency": 1.0, "model": "gpt-4o"},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, two) = server
        .get("/api/request-logs/root/?trace_unique_id=two")
        .await;
    let (_, one) = server
        .get("/api/request-logs/root/?trace_unique_id=one")
        .await;
    let (two, one) = (
        two["id"].as_str().unwrap().to_owned(),
        one["id"].as_str().unwrap().to_owned(),
    );
    let scores = format!("/api/logs/{two}/scores/");

    let (status, first) = server
        .post_json(
            &scores,
            &json!({"evaluator_slug": "helpfulness", "numerical_value": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["log_id"], two.as_str());
    assert_eq!(first["evaluator_slug"], "helpfulness");
    assert_eq!(first["numerical_value"], 4);
    assert_eq!(first["score_value_type"], "numerical");
    assert_eq!(first["is_passed"], Value::Null);
    let score_id = first["id"].as_str().unwrap().to_owned();
    // The same evaluator again updates its one score.
    let (status, again) = server
        .post_json(
            &scores,
            &json!({"evaluator_slug": "helpfulness", "numerical_value": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], score_id.as_str());
    assert_eq!(again["numerical_value"], 2);
    assert_eq!(again["created_at"], first["created_at"]);
    let (status, safe) = server
        .post_json(
            &scores,
            &json!({"evaluator_id": "ev-safe", "boolean_value": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{safe}");
    assert_eq!(safe["is_passed"], true);

    let (status, listed) = server.get(&scores).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["count"], 2);
    assert_eq!(listed["next"], Value::Null);
    assert_eq!(listed["results"][0]["id"], score_id.as_str());
    let (_, detail) = server.get(&format!("/api/request-logs/{two}/")).await;
    assert_eq!(detail["scores"]["helpfulness"]["numerical_value"], 2);
    assert_eq!(detail["scores"]["ev-safe"]["boolean_value"], true);
    let (_, untouched) = server.get(&format!("/api/logs/{one}/scores/")).await;
    assert_eq!(untouched["count"], 0);

    // Filters by score, on spans and on traces.
    let spans = "/api/request-logs/list/";
    let traces = "/api/traces/list/";
    assert_eq!(
        count_where(&server, spans, "scores__helpfulness", "gte", json!(2)).await,
        1
    );
    assert_eq!(
        count_where(&server, spans, "scores__helpfulness", "lt", json!(2)).await,
        0
    );
    assert_eq!(
        count_where(&server, spans, "scores__ev-safe", "", json!("true")).await,
        1
    );
    assert_eq!(
        count_where(&server, traces, "scores__helpfulness", "", json!(2)).await,
        1
    );
    let (_, list) = server.get("/api/traces/list/?scores__helpfulness=2").await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["trace_unique_id"], "two");

    // Refused: no evaluator, no value, a wrong type, a bare shared span id; nothing changes.
    for (body, named) in [
        (json!({"numerical_value": 1}), "evaluator_slug"),
        (json!({"evaluator_slug": "tone"}), "needs a value"),
        (
            json!({"evaluator_slug": "tone", "numerical_value": "4"}),
            "numerical_value",
        ),
        (
            json!({"evaluator_slug": "tone", "string_value": "ok", "model": "x"}),
            "model",
        ),
    ] {
        assert_refused(server.post_json(&scores, &body).await, &body, named);
    }
    let (status, _) = server
        .post_json(
            "/api/logs/root/scores/",
            &json!({"evaluator_slug": "tone", "string_value": "ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, listed) = server.get(&scores).await;
    assert_eq!(listed["count"], 2);

    // One score: read, changed, refused changes, deleted.
    let one_score = format!("{scores}{score_id}/");
    let (status, got) = server.get(&one_score).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["numerical_value"], 2);
    let (status, changed) = server
        .patch_json(
            &one_score,
            &json!({"numerical_value": 5, "explanation": "better"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["numerical_value"], 5);
    assert_eq!(changed["explanation"], "better");
    assert_eq!(
        count_where(&server, spans, "scores__helpfulness", "gte", json!(5)).await,
        1
    );
    let (status, error) = server
        .patch_json(&one_score, &json!({"evaluator_slug": "other"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("evaluator_slug cannot be changed")
    );
    let (status, error) = server
        .patch_json(&one_score, &json!({"numerical_value": null}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (_, got) = server.get(&one_score).await;
    assert_eq!(got["numerical_value"], 5);

    let response = server
        .client
        .delete(server.url(&one_score))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = server.get(&one_score).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server.get(&scores).await;
    assert_eq!(listed["count"], 1);
    assert_eq!(
        count_where(&server, spans, "scores__helpfulness", "gte", json!(0)).await,
        0
    );
    // The span itself is as it was: its trace's aggregates did not move.
    let trace = server.trace("two").await;
    assert_eq!(trace["span_count"], 1);
}
