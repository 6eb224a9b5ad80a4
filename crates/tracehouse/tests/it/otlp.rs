//! OTLP/HTTP ingest end to end: the vendor SDK captures, a stock OpenTelemetry exporter, bad input.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tracehouse_ingest::otlp::{OtlpEncoding, encode_export_response};

use crate::util::{
    Backend, TestServer, find_node, fixture_bytes, flatten_tree, gzip, on_every_store,
};

on_every_store!(
    vendor_otlp_json_sample,
    otlp_and_span_log_routes_store_alike_and_filter_alike,
    partial_success_and_bad_bodies,
);

const SDK_TRACE: &str = "877eb7b28574d72d7edf47ab7e423a4b";
const SAMPLE_TRACE: &str = "aaaabbbbccccdddd1111222233334444";

impl TestServer {
    async fn post_otlp(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        gzipped: bool,
    ) -> (StatusCode, Vec<u8>, String) {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", content_type);
        let body = if gzipped {
            request = request.header("content-encoding", "gzip");
            gzip(&body)
        } else {
            body
        };
        let response = request.body(body).send().await.unwrap();
        let status = response.status();
        let answered_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            response.bytes().await.unwrap().to_vec(),
            answered_type,
        )
    }
}

/// What the SDK capture (JSON to /v2/traces, or protobuf to /v1/traces) must read back as.
fn assert_sdk_capture_trace(trace: &Value) {
    assert_eq!(trace["span_count"], 6, "{trace}");
    assert_eq!(trace["name"], "capture_workflow.workflow");
    let tree = &trace["span_tree"];
    assert_eq!(tree.as_array().unwrap().len(), 1);
    assert_eq!(
        flatten_tree(tree).iter().map(|(_, depth)| *depth).max(),
        Some(3),
        "workflow > agent > task > chat, depths from 0"
    );
    let parent_of = |id: &str| find_node(tree, id).unwrap()["span_parent_id"].clone();
    assert_eq!(parent_of("2dbdbbe4610d1b8c"), "2ada518e5c1e1ce0");
    assert_eq!(parent_of("88e79152559bf514"), "0629634d10c33ee0");
    let kinds: HashMap<&str, &str> = [
        ("2ada518e5c1e1ce0", "workflow"),
        ("2dbdbbe4610d1b8c", "agent"),
        ("2ea7d3fdc6d56dca", "tool"),
        ("0629634d10c33ee0", "task"),
        ("88e79152559bf514", "chat"),
        ("9977efb5bb209c8f", "task"),
    ]
    .into();
    for (id, kind) in kinds {
        assert_eq!(find_node(tree, id).unwrap()["log_type"], kind, "{id}");
    }
    let chat = find_node(tree, "88e79152559bf514").unwrap();
    assert_eq!(chat["span_name"], "openai.chat");
    assert_eq!(chat["model"], "gpt-4o-mini");
    assert_eq!(chat["prompt_tokens"], 12);
    assert_eq!(chat["completion_tokens"], 4);
    assert_eq!(chat["prompt_messages"][0]["role"], "user");
    assert_eq!(chat["completion_message"]["content"], "It is sunny.");
    assert!(
        chat["cost"].as_f64().unwrap() > 0.0,
        "cost computed from the price table"
    );
    let failing = find_node(tree, "9977efb5bb209c8f").unwrap();
    assert_eq!(failing["status"], "error");
    assert!(
        failing["error_message"].as_str().unwrap().contains("boom"),
        "{failing}"
    );
    assert_eq!(trace["error_count"], 1);
    assert_eq!(trace["llm_call_count"], 1);
    assert_eq!(trace["customer_identifier"], "user-123");
}

#[tokio::test]
async fn sdk_json_capture_to_v2_plain_and_gzip() {
    for (path, gzipped) in [("/api/v2/traces", false), ("/v2/traces/", true)] {
        let server = TestServer::start().await;
        let (status, body, content_type) = server
            .post_otlp(
                path,
                fixture_bytes("otlp-json-sdk-capture.json"),
                "application/json",
                gzipped,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(content_type, "application/json");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({}));
        assert_sdk_capture_trace(&server.trace(SDK_TRACE).await);
    }
}

#[tokio::test]
async fn protobuf_capture_to_v1_plain_and_gzip() {
    for (path, gzipped) in [
        ("/api/v1/traces", false),
        ("/v1/traces", true),
        ("/v1/traces/", false),
    ] {
        let server = TestServer::start().await;
        let (status, body, content_type) = server
            .post_otlp(
                path,
                fixture_bytes("otlp-protobuf-sdk-capture.pb"),
                "application/x-protobuf",
                gzipped,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type, "application/x-protobuf");
        assert_eq!(body, encode_export_response(0, "", OtlpEncoding::Protobuf));
        let (_, list) = server.get("/api/traces/list/").await;
        assert_eq!(list["count"], 1);
        let trace_id = list["results"][0]["trace_unique_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let trace = server.trace(&trace_id).await;
        assert_eq!(trace["span_count"], 6);
        assert_eq!(trace["name"], "capture_workflow.workflow");
        let chat = find_node(&trace["span_tree"], &chat_span_id(&trace))
            .unwrap()
            .clone();
        assert_eq!(chat["model"], "gpt-4o-mini");
        assert_eq!(chat["log_type"], "chat");
        assert!(
            chat["prompt_messages"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(chat["completion_message"]["content"].is_string());
        assert_eq!(trace["error_count"], 1);
    }
}

fn chat_span_id(trace: &Value) -> String {
    let mut stack: Vec<&Value> = trace["span_tree"].as_array().unwrap().iter().collect();
    while let Some(node) = stack.pop() {
        if node["log_type"] == "chat" {
            return node["span_unique_id"].as_str().unwrap().to_owned();
        }
        stack.extend(node["children"].as_array().unwrap());
    }
    panic!("no chat span in {trace}");
}

async fn vendor_otlp_json_sample(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (status, _, _) = server
        .post_otlp(
            "/api/v1/traces",
            fixture_bytes("otlp-json-sample.json"),
            "application/json",
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let trace = server.trace(SAMPLE_TRACE).await;
    assert_eq!(trace["span_count"], 7);
    assert_eq!(trace["name"], "customer_support_pipeline");
    assert_eq!(trace["llm_call_count"], 2);
    assert_eq!(trace["total_prompt_tokens"], 385 + 520);
    assert_eq!(trace["total_completion_tokens"], 120 + 85);
    let tree = &trace["span_tree"];
    assert_eq!(
        find_node(tree, "1000000000000001").unwrap()["log_type"],
        "workflow"
    );
    assert_eq!(
        find_node(tree, "2000000000000002").unwrap()["log_type"],
        "agent"
    );
    assert_eq!(
        find_node(tree, "3000000000000003").unwrap()["log_type"],
        "tool"
    );
    assert_eq!(
        find_node(tree, "4000000000000004").unwrap()["span_parent_id"],
        "2000000000000002"
    );
    assert_eq!(
        find_node(tree, "4000000000000004").unwrap()["prompt_messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn otlp_and_span_log_routes_store_alike_and_filter_alike(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    server
        .post_otlp(
            "/api/v2/traces",
            fixture_bytes("otlp-json-sdk-capture.json"),
            "application/json",
            false,
        )
        .await;
    let (_, list) = server
        .post_json(
            "/api/request-logs/list/",
            &json!({"filters": {"model": {"operator": "", "value": ["gpt-4o-mini"]}}}),
        )
        .await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["span_unique_id"], "88e79152559bf514");
    // OTLP chat spans carry their text in messages; search still finds it.
    let (_, found) = server
        .post_json(
            "/api/request-logs/list/?search=sunny",
            &json!({"filters": {"log_type": {"operator": "", "value": ["chat"]}}}),
        )
        .await;
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["results"][0]["span_unique_id"], "88e79152559bf514");
    let (_, list) = server
        .post_json(
            "/api/traces/list/",
            &json!({"filters": {"log_type": {"operator": "", "value": ["tool"]}}}),
        )
        .await;
    assert_eq!(list["count"], 1);
}

async fn partial_success_and_bad_bodies(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let request = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "good",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000"},
        {"traceId": "0102", "spanId": "0102030405060709", "name": "short trace id"}
    ]}]}]});
    let (status, body, _) = server
        .post_otlp(
            "/v1/traces",
            serde_json::to_vec(&request).unwrap(),
            "application/json",
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], 1, "{answer}");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("span 1")
    );
    assert_eq!(
        server.trace("0102030405060708090a0b0c0d0e0f10").await["span_count"],
        1
    );

    let mut truncated = fixture_bytes("otlp-protobuf-sdk-capture.pb");
    truncated.truncate(truncated.len() / 2);
    let (status, body, _) = server
        .post_otlp("/v1/traces", truncated, "application/x-protobuf", false)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"], "bad_request");

    let (status, _, _) = server
        .post_otlp(
            "/v1/traces",
            b"{\"resourceSpans\": 5}".to_vec(),
            "application/json",
            false,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = server
        .post_otlp("/v1/traces", b"hello".to_vec(), "text/plain", false)
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = server
        .post_otlp(
            "/v1/traces",
            b"not gzip".to_vec(),
            "application/x-protobuf",
            false,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let response = server
        .client
        .post(server.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(fixture_bytes("otlp-protobuf-sdk-capture.pb"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-api-key", &server.key)
        .body(fixture_bytes("otlp-protobuf-sdk-capture.pb"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// The Rust OpenTelemetry SDK's own OTLP/HTTP protobuf exporter, unmodified, pointed at us.
#[tokio::test]
async fn stock_opentelemetry_exporter() {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};

    let server = TestServer::start().await;
    let endpoint = server.url("/v1/traces");
    let key = server.key.clone();
    // The exporter's blocking HTTP client runs on its own thread; the test's runtime must stay
    // free to serve the requests it sends, so the result comes back over a channel.
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_headers(HashMap::from([(
                "authorization".to_owned(),
                format!("Bearer {key}"),
            )]))
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let tracer = provider.tracer("tracehouse-test");
        let trace_id = tracer.in_span("plan_trip.workflow", |context| {
            let trace_id = context.span().span_context().trace_id().to_string();
            let mut child = tracer.start("openai.chat");
            child.set_attribute(KeyValue::new("gen_ai.system", "openai"));
            child.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o"));
            child.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", 100));
            child.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", 20));
            child.set_attribute(KeyValue::new("gen_ai.prompt.0.role", "user"));
            child.set_attribute(KeyValue::new("gen_ai.prompt.0.content", "Where to?"));
            child.set_attribute(KeyValue::new("custom.flag", true));
            child.end();
            trace_id
        });
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
        let _ = done.send(trace_id);
    });
    let trace_id = finished.await.unwrap();
    let trace = server.trace(&trace_id).await;
    assert_eq!(trace["span_count"], 2);
    assert_eq!(trace["name"], "plan_trip.workflow");
    let tree = &trace["span_tree"];
    assert_eq!(tree[0]["log_type"], "workflow");
    let chat = &tree[0]["children"][0];
    assert_eq!(chat["span_name"], "openai.chat");
    assert_eq!(chat["log_type"], "chat");
    assert_eq!(chat["provider_id"], "openai");
    assert_eq!(chat["model"], "gpt-4o");
    assert_eq!(chat["prompt_tokens"], 100);
    assert_eq!(chat["completion_tokens"], 20);
    assert_eq!(chat["prompt_messages"][0]["content"], "Where to?");
    assert_eq!(chat["metadata"]["custom.flag"], true);
    assert!((chat["cost"].as_f64().unwrap() - (100.0 * 2.5 + 20.0 * 10.0) / 1e6).abs() < 1e-12);
    assert_eq!(
        chat["resource"]["service.name"]
            .as_str()
            .map(|s| !s.is_empty()),
        Some(true),
        "{chat}"
    );
}
