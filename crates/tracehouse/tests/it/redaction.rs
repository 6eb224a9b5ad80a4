//! Redaction at ingest (issue 21): a corpus of secrets and personal data in every field
//! position, sent over span logs, OTLP JSON, OTLP protobuf, OTLP/gRPC and the logging API, and
//! added later by PATCH and scores, never comes back from any route, the export or the
//! server's log; the text around each secret is unchanged.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan, Status};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracehouse_ingest::redact::{Redaction, RedactionConfig};

use crate::cli::BIN;
use crate::util::{Backend, TestServer, on_every_store};

on_every_store!(secrets_never_come_back_from_any_route);

/// The key of the test rules' `hash` action.
const HASH_KEY: &str = "redaction-test-key-0123456789";

/// One of each secret the built-in detectors find, and one the custom rule finds.
const SENTENCE: &str = "Contact jane.roe@corp-mail.example or +1 415 555 0132; card 4111 1111 1111 1111; \
    host 203.0.113.77; key sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm; aws AKIAIOSFODNN7EXAMPLE; \
    jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZWRhY3QifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ; \
    Authorization: Bearer tok_live_4fGh8JkL0pQr2StU; badge EMP-424242. Thanks!";

/// `SENTENCE` as stored; `{employee}` is the keyed hash of the badge, found in the first answer.
const MASKED: &str = "Contact [REDACTED:email] or [REDACTED:phone]; card [REDACTED:credit_card]; \
    host [REDACTED:ip_address]; key [REDACTED:api_key]; aws [REDACTED:api_key]; \
    jwt [REDACTED:jwt]; \
    Authorization: Bearer [REDACTED:bearer_token]; badge {employee}. Thanks!";

const EMAIL: &str = "jane.roe@corp-mail.example";

/// What must never come back, raw. Parts are enough: each names one secret unambiguously.
const RAW: &[&str] = &[
    "jane.roe@corp-mail.example",
    "415 555 0132",
    "4111 1111 1111 1111",
    "203.0.113.77",
    "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9",
    "tok_live_4fGh8JkL0pQr2StU",
    "EMP-424242",
];

/// `examples/redact.toml` (every built-in, mask) with a hash key and a custom hashing rule.
fn rules_toml() -> String {
    let example = std::fs::read_to_string(example_path()).unwrap();
    format!(
        "hash_key = \"{HASH_KEY}\"\n{example}\n\
         [[rules]]\nname = \"employee_id\"\nregex = \"EMP-[0-9]{{6}}\"\naction = \"hash\"\nfields = [\"all\"]\n"
    )
}

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/redact.toml")
}

fn redaction() -> Arc<Redaction> {
    let config: RedactionConfig = toml::from_str(&rules_toml()).unwrap();
    Arc::new(Redaction::compile(&config).unwrap())
}

/// Fails naming the secret and where it came back.
fn assert_clean(what: &str, text: &str) {
    for raw in RAW {
        assert!(
            !text.contains(raw),
            "{what} returned the raw secret {raw:?}: {text}"
        );
    }
}

/// The masked sentence with the employee badge's hash token taken from `sample`, which must
/// hold one: a hash is keyed, so the test learns it from the server once and then expects it
/// everywhere.
fn expected_masked(sample: &str) -> String {
    let start = sample
        .find("[HASH:employee_id:")
        .unwrap_or_else(|| panic!("no employee hash in {sample}"));
    let token = &sample[start..start + "[HASH:employee_id:".len() + 13];
    assert!(token.ends_with(']'), "{token}");
    MASKED.replace("{employee}", token)
}

/// A span log with the sentence in every position a client fills.
fn span_log(trace: &str, span: &str) -> Value {
    json!({
        "trace_unique_id": trace,
        "span_unique_id": span,
        "span_name": format!("lookup for {EMAIL}"),
        "log_type": "chat",
        "model": "gpt-4o",
        "start_time": "2025-06-01T10:00:00Z",
        "timestamp": "2025-06-01T10:00:01Z",
        "input": SENTENCE,
        "output": {"answer": SENTENCE, "list": [SENTENCE, 7]},
        "prompt_messages": [{"role": "user", "content": SENTENCE}],
        "completion_message": {"role": "assistant", "content": SENTENCE},
        "tools": [{"type": "function", "function": {"name": "lookup", "description": SENTENCE}}],
        "metadata": {"ticket": SENTENCE, "nested": {"deep": [SENTENCE]}},
        "status": "error",
        "error_message": SENTENCE,
        "customer_identifier": EMAIL,
        "thread_identifier": "+1 415 555 0132",
        "customer_params": {"email": EMAIL},
        "unknown_field": SENTENCE,
    })
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

/// An OTLP export of one span with the sentence in every attribute the mapping reads, an
/// unmapped attribute, the resource, the name and the status message.
fn otlp_request(trace: u8) -> ExportTraceServiceRequest {
    let attributes = vec![
        text("traceloop.entity.input", SENTENCE),
        text("traceloop.entity.output", SENTENCE),
        text("gen_ai.request.model", "gpt-4o"),
        text("gen_ai.prompt.0.role", "user"),
        text("gen_ai.prompt.0.content", SENTENCE),
        text("gen_ai.completion.0.role", "assistant"),
        text("gen_ai.completion.0.content", SENTENCE),
        text("respan.metadata.ticket", SENTENCE),
        text("respan.customer_params.customer_identifier", EMAIL),
        text("app.unmapped", SENTENCE),
    ];
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("host.ip", "203.0.113.77")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![OtlpSpan {
                    trace_id: vec![trace; 16],
                    span_id: vec![trace; 8],
                    name: format!("call {EMAIL}"),
                    start_time_unix_nano: 1_748_772_000_000_000_000,
                    end_time_unix_nano: 1_748_772_001_000_000_000,
                    attributes,
                    status: Some(Status {
                        code: 2,
                        message: SENTENCE.to_owned(),
                    }),
                    ..OtlpSpan::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// The same export as OTLP JSON (hex ids, string attributes).
fn otlp_json(request: &ExportTraceServiceRequest) -> Value {
    let resource = &request.resource_spans[0];
    let span = &resource.scope_spans[0].spans[0];
    let attributes = |list: &[KeyValue]| -> Vec<Value> {
        list.iter()
            .map(|kv| {
                let Some(any_value::Value::StringValue(value)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                else {
                    panic!("only string attributes here");
                };
                json!({"key": kv.key, "value": {"stringValue": value}})
            })
            .collect()
    };
    let resource_attributes = attributes(&resource.resource.as_ref().unwrap().attributes);
    json!({"resourceSpans": [{
        "resource": {"attributes": resource_attributes},
        "scopeSpans": [{"spans": [{
            "traceId": hex::encode(&span.trace_id),
            "spanId": hex::encode(&span.span_id),
            "name": span.name,
            "startTimeUnixNano": span.start_time_unix_nano.to_string(),
            "endTimeUnixNano": span.end_time_unix_nano.to_string(),
            "attributes": attributes(&span.attributes),
            "status": {"code": 2, "message": SENTENCE},
        }]}],
    }]})
}

/// Every answer a reader can get about the stored spans, as text, with where it came from.
async fn every_read(server: &TestServer, trace_ids: &[String]) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    let get = |path: String| async move {
        let response = server
            .client
            .get(server.url(&path))
            .bearer_auth(&server.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        (path, response.text().await.unwrap())
    };
    for trace in trace_ids {
        answers.push(get(format!("/api/traces/{trace}/")).await);
    }
    answers.push(get("/api/traces/list/?page_size=100".to_owned()).await);
    let (path, list) = get("/api/request-logs/list/?page_size=100".to_owned()).await;
    let list_json: Value = serde_json::from_str(&list).unwrap();
    let results = list_json["results"].as_array().unwrap();
    assert_eq!(results.len(), trace_ids.len(), "{list}");
    for log in results {
        let id = log["id"].as_str().unwrap();
        answers.push(get(format!("/api/request-logs/{id}/")).await);
        answers.push(get(format!("/api/logs/{id}/scores/")).await);
    }
    answers.push((path, list));
    for format in ["jsonl", "json", "csv", "otlp-json"] {
        answers.push(get(format!("/api/traces/export/?format={format}")).await);
    }
    answers
}

async fn secrets_never_come_back_from_any_route(backend: Backend) {
    let server = TestServer::start_redacting(backend, Some(redaction())).await;
    let mut traces = Vec::new();

    // Span logs.
    let (status, body) = server
        .ingest(&json!([span_log("redact-span-log", "s1")]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    traces.push("redact-span-log".to_owned());

    // OTLP/HTTP JSON and protobuf.
    let json_request = otlp_request(0x11);
    let (status, body) = server
        .post_raw(
            "/api/v2/traces",
            serde_json::to_vec(&otlp_json(&json_request)).unwrap(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    traces.push(hex::encode([0x11u8; 16]));
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .bearer_auth(&server.key)
        .header("content-type", "application/x-protobuf")
        .body(otlp_request(0x22).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    traces.push(hex::encode([0x22u8; 16]));

    // OTLP/gRPC.
    let mut client = TraceServiceClient::connect(server.grpc_base.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(otlp_request(0x33));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.key).parse().unwrap(),
    );
    let answer = client.export(request).await.unwrap().into_inner();
    assert_eq!(answer.partial_success, None);
    traces.push(hex::encode([0x33u8; 16]));

    // The logging API answers the stored log, already redacted.
    let (status, logged) = server
        .post_json(
            "/api/request-logs/",
            &json!({
                "model": "gpt-4o",
                "prompt_messages": [{"role": "user", "content": SENTENCE}],
                "completion_message": {"role": "assistant", "content": SENTENCE},
                "customer_identifier": EMAIL,
                "metadata": {"ticket": SENTENCE},
                "note": SENTENCE,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{logged}");
    assert_clean("the logging API's answer", &logged.to_string());
    traces.push(logged["trace_unique_id"].as_str().unwrap().to_owned());

    // What people add later: a note and metadata by PATCH, a score's text.
    let (status, span) = server
        .get("/api/request-logs/s1/?trace_unique_id=redact-span-log")
        .await;
    assert_eq!(status, StatusCode::OK, "{span}");
    let log_id = span["id"].as_str().unwrap().to_owned();
    let (status, patched) = server
        .patch_json(
            &format!("/api/request-logs/{log_id}/"),
            &json!({"note": SENTENCE, "metadata": {"patched": SENTENCE}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_clean("the PATCH answer", &patched.to_string());
    let (status, score) = server
        .post_json(
            &format!("/api/logs/{log_id}/scores/"),
            &json!({"evaluator_slug": "review", "string_value": SENTENCE, "explanation": SENTENCE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{score}");
    assert_clean("the score answer", &score.to_string());

    // No read returns a raw value.
    for (path, answer) in every_read(&server, &traces).await {
        assert_clean(&path, &answer);
    }
    // Searching for a secret finds nothing: the index never saw it.
    for raw in RAW {
        for list in ["/api/request-logs/list/", "/api/traces/list/"] {
            let response = server
                .client
                .get(server.url(list))
                .query(&[("search", raw)])
                .bearer_auth(&server.key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["results"], json!([]), "search for {raw:?} in {list}");
        }
    }

    // The text around each secret is unchanged, in every position.
    let detail = server.trace("redact-span-log").await;
    let node = &detail["span_tree"][0];
    let masked = expected_masked(node["input"].as_str().unwrap());
    assert_eq!(node["input"], json!(masked));
    assert_eq!(
        node["output"],
        json!({"answer": masked, "list": [masked, 7]})
    );
    assert_eq!(node["prompt_messages"][0]["content"], json!(masked));
    assert_eq!(node["completion_message"]["content"], json!(masked));
    assert_eq!(node["tools"][0]["function"]["description"], json!(masked));
    assert_eq!(node["metadata"]["ticket"], json!(masked));
    assert_eq!(node["metadata"]["nested"]["deep"], json!([masked]));
    assert_eq!(node["metadata"]["patched"], json!(masked));
    assert_eq!(node["note"], json!(masked));
    assert_eq!(node["error_message"], json!(masked));
    assert_eq!(node["unknown_field"], json!(masked));
    assert_eq!(node["span_name"], json!("lookup for [REDACTED:email]"));
    assert_eq!(node["customer_identifier"], json!("[REDACTED:email]"));
    assert_eq!(node["thread_identifier"], json!("[REDACTED:phone]"));
    assert_eq!(node["customer_params"]["email"], json!("[REDACTED:email]"));
    assert_eq!(node["scores"]["review"]["explanation"], json!(masked));
    assert_eq!(node["model"], json!("gpt-4o"));
    assert_eq!(detail["customer_identifier"], json!("[REDACTED:email]"));

    for trace in [0x11u8, 0x22, 0x33] {
        let detail = server.trace(&hex::encode([trace; 16])).await;
        let node = &detail["span_tree"][0];
        assert_eq!(node["input"], json!(masked), "{node}");
        assert_eq!(node["output"], json!(masked));
        assert_eq!(node["prompt_messages"][0]["content"], json!(masked));
        assert_eq!(node["error_message"], json!(masked));
        assert_eq!(node["span_name"], json!("call [REDACTED:email]"));
        assert_eq!(node["metadata"]["ticket"], json!(masked));
        assert_eq!(node["customer_identifier"], json!("[REDACTED:email]"));
    }

    // Each rule's matches are counted.
    let metrics = server.metrics_text().await;
    for rule in [
        "email",
        "phone",
        "credit_card",
        "ip_address",
        "api_key",
        "jwt",
        "bearer_token",
        "employee_id",
    ] {
        let line = metrics
            .lines()
            .find(|line| {
                line.starts_with(&format!("tracehouse_redactions_total{{rule=\"{rule}\"}} "))
            })
            .unwrap_or_else(|| panic!("no counter for {rule}: {metrics}"));
        let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 5, "{line}");
    }
}

/// A `tracehouse serve --redact` process whose log (stderr, at debug level) goes to a file.
struct LoggedServer {
    child: std::process::Child,
    base: String,
    key: String,
    log: PathBuf,
}

impl LoggedServer {
    fn start(dir: &Path, rules: &Path) -> Self {
        let addr_file = dir.join("addr");
        let log = dir.join("server.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "off"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--redact")
            .arg(rules)
            .arg("--addr-file")
            .arg(&addr_file)
            .env("RUST_LOG", "debug")
            .env_remove("TRACEHOUSE_CONFIG")
            .env_remove("TRACEHOUSE_REDACT")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut key = None;
        for line in stdout.lines().map_while(Result::ok) {
            if line.starts_with("th_") {
                key = Some(line);
                break;
            }
        }
        let key = key.expect("the first start prints a key");
        let base = format!("http://{}", std::fs::read_to_string(&addr_file).unwrap());
        Self {
            child,
            base,
            key,
            log,
        }
    }

    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// The built binary with `--redact examples/...` stores nothing raw and logs nothing raw, even
/// at debug level, while requests carry secrets in every position.
#[tokio::test]
async fn serve_with_redact_never_logs_a_raw_value() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, rules_toml()).unwrap();
    let server = LoggedServer::start(dir.path(), &rules);
    let client = reqwest::Client::new();
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        client
            .post(format!("{}{path}", server.base))
            .bearer_auth(&server.key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let body = serde_json::to_vec(&json!([span_log("logged", "s1")])).unwrap();
    let response = post("/api/v1/traces/ingest", "application/json", body)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let otlp = serde_json::to_vec(&otlp_json(&otlp_request(0x44))).unwrap();
    let response = post("/v1/traces", "application/json", otlp).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let protobuf = otlp_request(0x55).encode_to_vec();
    let response = post("/v1/traces", "application/x-protobuf", protobuf)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A bad item among good ones: rejections are logged, their content is not.
    let mixed =
        serde_json::to_vec(&json!([{"input": SENTENCE}, span_log("logged", "s2")])).unwrap();
    let response = post("/api/v1/traces/ingest", "application/json", mixed)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);

    let read = |path: &'static str| {
        let request = client
            .get(format!("{}{path}", server.base))
            .bearer_auth(&server.key);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let trace = read("/api/traces/logged/").await;
    assert!(trace.contains("[REDACTED:email]"), "{trace}");
    assert_clean("the binary's trace fetch", &trace);
    let export = read("/api/traces/export/?format=jsonl").await;
    assert_eq!(export.lines().count(), 4, "{export}");
    assert_clean("the binary's export", &export);

    let log = server.stop();
    assert!(log.contains("DEBUG"), "the log ran at debug level: {log}");
    assert_clean("the server log", &log);
}

/// A rules file with a bad regex stops `serve` before it listens, naming the rule.
#[test]
fn serve_refuses_a_bad_rules_file_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let check = |rules: &str, expected: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, rules).unwrap();
        let output = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--redact")
            .arg(&path)
            .env_remove("TRACEHOUSE_CONFIG")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid redaction rules file"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(output.stdout.is_empty(), "it never listened");
    };
    check(
        "[[rules]]\nname = \"ticket_number\"\nregex = \"TICKET-([0-9\"\n",
        "redaction rule \"ticket_number\": invalid regex",
    );
    check(
        "[[rules]]\nname = \"customer\"\ndetector = \"email\"\naction = \"hash\"\n",
        "redaction rule \"customer\" uses action \"hash\" but the rules file has no hash_key",
    );
    check(
        "[[rules]]\ndetector = \"emails\"\n",
        "unknown variant `emails`",
    );
}

/// `import --redact` into a local store: what the store holds, and `export` gives back, is
/// redacted like what the server stores.
#[test]
fn offline_import_redacts_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, rules_toml()).unwrap();
    let input = dir.path().join("spans.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\n",
            serde_json::to_string(&span_log("imported", "s1")).unwrap()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let import = Command::new(BIN)
        .arg("import")
        .arg(&input)
        .arg("--data-dir")
        .arg(&data)
        .arg("--redact")
        .arg(&rules)
        .args(["--quiet"])
        .env_remove("TRACEHOUSE_REDACT")
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let export = Command::new(BIN)
        .arg("export")
        .arg("--data-dir")
        .arg(&data)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(export.status.success());
    let exported = String::from_utf8(export.stdout).unwrap();
    assert_clean("the offline export", &exported);
    let span: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(
        span["input"],
        json!(expected_masked(span["input"].as_str().unwrap()))
    );
    assert_eq!(span["customer_identifier"], json!("[REDACTED:email]"));
}

/// The shipped example turns on every built-in detector with the mask action.
#[test]
fn example_rules_file_masks_with_every_builtin() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let config: RedactionConfig = toml::from_str(&text).unwrap();
    let detectors: Vec<&str> = config
        .rules
        .iter()
        .map(|rule| rule.detector.unwrap().name())
        .collect();
    assert_eq!(
        detectors,
        [
            "email",
            "phone",
            "credit_card",
            "ip_address",
            "api_key",
            "jwt",
            "bearer_token"
        ]
    );
    assert!(
        config
            .rules
            .iter()
            .all(|rule| rule.action == tracehouse_ingest::redact::Action::Mask)
    );
    assert!(Redaction::compile(&config).is_ok());
}
