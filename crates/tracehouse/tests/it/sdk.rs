//! The vendor's real Python SDK (respan-tracing) and the stock OpenTelemetry Python exporter,
//! pointed at a live server the way a user would point them, and the traces read back.
//!
//! The Python side lives in `tests/sdk/` and runs in the virtualenv that `scripts/python-venv`
//! creates. Without it these tests skip with a note, except under `CI=true`, where they fail.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{TestServer, find_node, flatten_tree};

/// How long one script may take; it normally takes about a second.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The venv's interpreter: `TRACEHOUSE_PYTHON`, else `bin/python` of `TRACEHOUSE_PYTHON_VENV`
/// (relative to the workspace root), else of `target/python-venv`. `None` means skip; under CI
/// a missing interpreter fails the test instead.
fn venv_python() -> Option<PathBuf> {
    let root = workspace_root();
    let python = match std::env::var_os("TRACEHOUSE_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => {
            let venv = std::env::var_os("TRACEHOUSE_PYTHON_VENV")
                .map_or_else(|| PathBuf::from("target/python-venv"), PathBuf::from);
            root.join(venv).join("bin/python")
        }
    };
    if python.is_file() {
        return Some(python);
    }
    let why = format!(
        "no Python venv at {} (run scripts/python-venv, or set TRACEHOUSE_PYTHON)",
        python.display()
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// Runs `tests/sdk/<script>` with `args` and returns the trace id it printed last, or `None`
/// when there is no venv to run it in. A failed or timed-out script fails the test with its
/// output.
async fn run_script(script: &str, args: &[&str]) -> Option<String> {
    let python = venv_python()?;
    let path = workspace_root().join("tests/sdk").join(script);
    let (status, stdout, stderr) = run_with_timeout(&python, &path, args).await;
    assert!(
        status.success(),
        "{script} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let trace_id = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert!(
        trace_id.len() == 32
            && trace_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{script} printed no trace id last\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    Some(trace_id)
}

/// The child is polled rather than waited on, so the server, which shares this test's
/// runtime, keeps answering the script meanwhile.
async fn run_with_timeout(
    python: &Path,
    script: &Path,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let mut command = Command::new(python);
    command
        .arg(script)
        .args(args)
        .current_dir(workspace_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Nothing from the developer's shell may redirect the SDK or add exporters.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["RESPAN_", "KEYWORDSAI_", "OTEL_", "TRACELOOP_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} timed out after {SCRIPT_TIMEOUT:?}\n--- stderr\n{}",
                script.display(),
                stderr.join().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (status, stdout.join().unwrap(), stderr.join().unwrap())
}

/// The single child of `node`.
fn only_child(node: &Value) -> &Value {
    let children = node["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{node}");
    &children[0]
}

#[tokio::test]
async fn respan_sdk_workflow_task_and_chat_read_back_as_one_trace() {
    let server = TestServer::start().await;
    // A user passes the API root, as the SDK's default `https://api.respan.ai/api`; the SDK
    // posts OTLP JSON to `{base_url}/v2/traces`.
    let base_url = format!("{}/api", server.base);
    let Some(trace_id) = run_script("respan_sdk_trace.py", &[&base_url, &server.key]).await else {
        return;
    };

    let trace = server.trace(&trace_id).await;
    assert_eq!(trace["trace_unique_id"], trace_id.as_str());
    assert_eq!(trace["span_count"], 3, "{trace}");
    assert_eq!(trace["llm_call_count"], 1);
    assert_eq!(trace["error_count"], 0);
    assert_eq!(trace["total_prompt_tokens"], 24);
    assert_eq!(trace["total_completion_tokens"], 15);
    assert_eq!(trace["total_tokens"], 39);
    assert!(trace["total_cost"].as_f64().unwrap() > 0.0, "{trace}");
    assert_eq!(trace["customer_identifier"], "sdk-e2e-customer");
    assert_eq!(trace["models"], json!(["gpt-4o-mini-2024-07-18"]));

    // workflow > task > chat, one span per level.
    let tree = &trace["span_tree"];
    assert_eq!(tree.as_array().unwrap().len(), 1, "{tree}");
    let depths: Vec<usize> = flatten_tree(tree).into_iter().map(|(_, d)| d).collect();
    assert_eq!(depths, vec![0, 1, 2]);
    let workflow = &tree[0];
    let task = only_child(workflow);
    let chat = only_child(task);

    // The SDK exports bare kinds as span names by default (`workflow`, `task`) with the real
    // name in `traceloop.entity.name`; the server stores them as the legacy naming would,
    // `joke_workflow.workflow`, so traces keep meaningful names.
    assert_eq!(trace["name"], "joke_workflow.workflow");
    assert_eq!(trace["root_span_unique_id"], workflow["span_unique_id"]);
    assert_eq!(workflow["span_name"], "joke_workflow.workflow");
    assert_eq!(workflow["log_type"], "workflow");
    assert_eq!(workflow["span_parent_id"], Value::Null);
    assert_eq!(workflow["span_workflow_name"], "joke_workflow");
    assert_eq!(workflow["customer_identifier"], "sdk-e2e-customer");
    assert_eq!(workflow["metadata"]["suite"], "tracehouse-e2e");
    assert_eq!(workflow["status"], "success");
    assert_eq!(workflow["resource"]["service.name"], "tracehouse-sdk-e2e");
    let input: Value = serde_json::from_str(workflow["input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"args": ["opentelemetry"], "kwargs": {}}));
    let output: Value = serde_json::from_str(workflow["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["trace_id"], trace_id.as_str());

    assert_eq!(task["span_name"], "joke_creation.task");
    assert_eq!(task["log_type"], "task");
    assert_eq!(task["span_parent_id"], workflow["span_unique_id"]);
    assert_eq!(task["span_workflow_name"], "joke_workflow");
    assert_eq!(task["span_path"], "joke_creation");
    assert_eq!(
        task["output"],
        "\"Why did the span break up with the trace? It needed more context.\""
    );

    assert_eq!(chat["span_name"], "llm.gpt-4o-mini");
    assert_eq!(chat["log_type"], "chat");
    assert_eq!(chat["span_parent_id"], task["span_unique_id"]);
    assert_eq!(chat["otel_span_kind"], "client");
    assert_eq!(chat["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(chat["provider_id"], "openai");
    assert_eq!(chat["prompt_tokens"], 24);
    assert_eq!(chat["completion_tokens"], 15);
    assert_eq!(chat["total_tokens"], 39);
    assert_eq!(chat["cost"], trace["total_cost"]);
    assert_eq!(chat["temperature"], 0.7);
    assert_eq!(chat["status"], "success");
    assert_eq!(chat["error_message"], Value::Null);
    assert_eq!(
        chat["prompt_messages"],
        json!([
            {"role": "system", "content": "You are a funny assistant."},
            {"role": "user", "content": "Tell me a joke about opentelemetry"},
        ])
    );
    assert_eq!(
        chat["completion_message"],
        json!({
            "role": "assistant",
            "content": "Why did the span break up with the trace? It needed more context.",
            "finish_reason": "stop",
        })
    );

    // The trace is listed too.
    let (_, list) = server.get("/api/traces/list/").await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["trace_unique_id"], trace_id.as_str());
    assert_eq!(list["results"][0]["span_count"], 3);
}

#[tokio::test]
async fn stock_otel_python_exporter_reads_back_as_a_trace() {
    let server = TestServer::start().await;
    // The script sends protobuf to `{base}/v1/traces`, as the README tells a user to.
    let Some(trace_id) = run_script("otel_stock_exporter.py", &[&server.base, &server.key]).await
    else {
        return;
    };

    let trace = server.trace(&trace_id).await;
    assert_eq!(trace["span_count"], 2, "{trace}");
    assert_eq!(trace["name"], "answer_question");
    assert_eq!(trace["llm_call_count"], 1);
    assert_eq!(trace["error_count"], 0);
    assert_eq!(trace["total_prompt_tokens"], 11);
    assert_eq!(trace["total_completion_tokens"], 6);
    assert_eq!(trace["models"], json!(["gpt-4o-mini"]));

    let tree = &trace["span_tree"];
    assert_eq!(tree.as_array().unwrap().len(), 1, "{tree}");
    let parent = &tree[0];
    let chat = only_child(parent);
    assert_eq!(parent["span_name"], "answer_question");
    assert_eq!(parent["log_type"], "custom");
    assert_eq!(parent["span_parent_id"], Value::Null);
    assert_eq!(parent["metadata"]["user.question"], "What is OTLP?");
    assert_eq!(parent["resource"]["service.name"], "otel-stock-e2e");
    assert_eq!(parent["scope"]["name"], "tracehouse.e2e.stock");

    let chat_id = chat["span_unique_id"].as_str().unwrap();
    assert_eq!(find_node(tree, chat_id).unwrap(), chat);
    assert_eq!(chat["span_name"], "chat gpt-4o-mini");
    assert_eq!(chat["log_type"], "chat");
    assert_eq!(chat["span_parent_id"], parent["span_unique_id"]);
    assert_eq!(chat["otel_span_kind"], "client");
    assert_eq!(chat["model"], "gpt-4o-mini");
    assert_eq!(chat["provider_id"], "openai");
    assert_eq!(chat["prompt_tokens"], 11);
    assert_eq!(chat["completion_tokens"], 6);
    assert_eq!(chat["total_tokens"], 17);
    assert!(chat["cost"].as_f64().unwrap() > 0.0, "{chat}");
    assert_eq!(chat["status"], "success");
    assert_eq!(
        chat["prompt_messages"],
        json!([{"role": "user", "content": "What is OTLP?"}])
    );
    assert_eq!(
        chat["completion_message"],
        json!({"role": "assistant", "content": "The OpenTelemetry protocol."})
    );
}

#[tokio::test]
async fn vendor_logging_clients_create_get_and_list_logs() {
    let server = TestServer::start().await;
    // keywordsai's LogAPI and respan-api's spans client, each reading back what it created
    // through its own response models (the script fails if one does not validate).
    let Some(trace_id) = run_script("logging_clients.py", &[&server.base, &server.key]).await
    else {
        return;
    };

    let trace = server.trace(&trace_id).await;
    assert_eq!(trace["span_count"], 1, "{trace}");
    assert_eq!(trace["total_prompt_tokens"], 20);
    assert_eq!(trace["total_cost"], 0.0002);
    let (_, list) = server.get("/api/request-logs/list/?page_size=10").await;
    assert_eq!(list["count"], 2, "{list}");
    let mut by_client: Vec<(String, String, String)> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| {
            (
                log["metadata"]["source"].as_str().unwrap().to_owned(),
                log["thread_identifier"].as_str().unwrap().to_owned(),
                log["custom_identifier"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_client.sort();
    assert_eq!(
        by_client,
        vec![
            (
                "keywordsai".to_owned(),
                "kwai-thread".to_owned(),
                "kwai-custom".to_owned()
            ),
            (
                "respan-api".to_owned(),
                "respan-thread".to_owned(),
                "respan-custom".to_owned()
            ),
        ]
    );
}

/// Ids, clock readings and the SDK's per-process `service.instance.id`, which differ between
/// two runs of the same script; every other field of a trace and its spans must not.
const RUN_SPECIFIC: [&str; 14] = [
    "id",
    "unique_id",
    "trace_unique_id",
    "root_span_unique_id",
    "service.instance.id",
    "span_unique_id",
    "span_parent_id",
    "start_time",
    "timestamp",
    "end_time",
    "latency",
    "trace_start_time",
    "trace_end_time",
    "duration",
];

fn without_run_specific(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(key, _)| !RUN_SPECIFIC.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), without_run_specific(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_run_specific).collect()),
        other => other.clone(),
    }
}

/// The stock OTLP/gRPC exporter (`insecure=True`, key in the `authorization` metadata) against
/// the gRPC listener stores the same trace as the stock OTLP/HTTP exporter sending the same
/// spans: every field but ids and times reads back equal.
#[tokio::test]
async fn stock_otel_python_grpc_exporter_reads_back_like_the_http_one() {
    let server = TestServer::start().await;
    let Some(http_trace_id) = run_script(
        "otel_stock_exporter.py",
        &[&server.base, &server.key, "http"],
    )
    .await
    else {
        return;
    };
    let Some(grpc_trace_id) = run_script(
        "otel_stock_exporter.py",
        &[&server.grpc_base, &server.key, "grpc"],
    )
    .await
    else {
        return;
    };
    assert_ne!(grpc_trace_id, http_trace_id);

    let over_grpc = server.trace(&grpc_trace_id).await;
    assert_eq!(over_grpc["span_count"], 2, "{over_grpc}");
    assert_eq!(over_grpc["name"], "answer_question");
    assert_eq!(over_grpc["total_prompt_tokens"], 11);
    assert_eq!(over_grpc["total_completion_tokens"], 6);
    let chat = only_child(&over_grpc["span_tree"][0]);
    assert_eq!(chat["model"], "gpt-4o-mini");
    assert_eq!(
        chat["span_parent_id"],
        over_grpc["span_tree"][0]["span_unique_id"]
    );
    assert_eq!(
        chat["completion_message"],
        json!({"role": "assistant", "content": "The OpenTelemetry protocol."})
    );
    assert_eq!(over_grpc["trace_unique_id"], grpc_trace_id);

    let over_http = server.trace(&http_trace_id).await;
    assert_eq!(
        without_run_specific(&over_grpc),
        without_run_specific(&over_http),
        "\n--- grpc\n{over_grpc:#}\n--- http\n{over_http:#}"
    );
}

#[tokio::test]
async fn vendor_users_client_lists_retrieves_and_updates_users() {
    let server = TestServer::start().await;
    // respan-api's users client: list_customers (walked with its own pager), retrieve_user,
    // update_user and a NotFoundError, each answer validated by the client's models.
    let Some(trace_id) = run_script("users_client.py", &[&server.base, &server.key]).await else {
        return;
    };
    assert_eq!(
        server.trace(&trace_id).await["customer_identifier"],
        "sdk-ann"
    );
    let (_, ann) = server.get("/api/users/sdk-ann/").await;
    assert_eq!(ann["name"], "Ann Example");
    assert_eq!(ann["metadata"], json!({"plan": "pro"}));
    assert_eq!(ann["thread_count"], 2);
    assert_eq!(ann["number_of_requests"], 2);
    // The customer whose profile came in customer_params, with a time to first token.
    let (_, cid) = server.get("/api/users/sdk-cid/").await;
    assert_eq!(cid["email"], "cid@example.com");
    assert_eq!(cid["average_ttft"], 0.25);
    let (_, threads) = server
        .get("/api/log_threads/?customer_identifier=sdk-bob")
        .await;
    assert_eq!(threads["count"], 1, "{threads}");
    assert_eq!(threads["results"][0]["thread_identifier"], "sdk-thread-3");
    assert_eq!(
        threads["results"][0]["first_user_message"],
        "hello from sdk-bob"
    );
}
