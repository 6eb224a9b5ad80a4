//! `tracehouse import` and `tracehouse export` end to end: the real binary on real files, the
//! local store and a running server, every input format, rejects, the dry-run report, resume
//! after a kill, the export round trip and flat memory on a large input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::BIN;
use crate::util::{TestServer, fixture_bytes, fixture_path, gzip, peak_rss_kib};

pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TRACEHOUSE_DATA_DIR")
        .env_remove("TRACEHOUSE_STORE")
        .env_remove("TRACEHOUSE_API_KEY")
        .output()
        .unwrap()
}

/// Runs the binary, which must succeed; its stdout.
pub(crate) fn run_ok(args: &[&str]) -> Vec<u8> {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub(crate) fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(2),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Imports `inputs` into `data_dir` with `--json` and returns the summary.
fn import(data_dir: &Path, inputs: &[&str], extra: &[&str]) -> Value {
    let mut args = vec![
        "import",
        "--quiet",
        "--json",
        "--data-dir",
        path_str(data_dir),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(inputs);
    stdout_json(&run(&args))
}

/// Exports every span of the default project in `format` to the file `out`.
pub(crate) fn export_to(data_dir: &Path, format: &str, out: &Path) {
    run_ok(&[
        "export",
        "--quiet",
        "--format",
        format,
        "--data-dir",
        path_str(data_dir),
        "--out",
        path_str(out),
    ]);
}

/// Exports every span of the default project as JSONL and returns the lines.
fn export_lines(data_dir: &Path) -> Vec<Value> {
    let stdout = run_ok(&[
        "export",
        "--quiet",
        "--format",
        "jsonl",
        "--data-dir",
        path_str(data_dir),
    ]);
    String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn span_ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|span| span["span_unique_id"].as_str().unwrap().to_owned())
        .collect()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// The 18 spans of the vendor's sample, as JSONL.
fn sample_jsonl() -> Vec<u8> {
    let items =
        serde_json::from_slice::<Vec<Value>>(&fixture_bytes("respan-logs-sample.json")).unwrap();
    let mut out = Vec::new();
    for item in items {
        serde_json::to_writer(&mut out, &item).unwrap();
        out.push(b'\n');
    }
    out
}

#[test]
fn every_input_format_plain_gzip_and_zstd_imports_the_same_spans() {
    let dir = tempfile::tempdir().unwrap();
    let array = fixture_bytes("respan-logs-sample.json");
    let wrapper = fixture_bytes("respan-logs-data-wrapper-capture.json");
    let otlp = fixture_bytes("otlp-json-sdk-capture.json");
    let inputs: [(&str, Vec<u8>, u64); 4] = [
        ("array.json", array, 18),
        ("wrapper.json", wrapper.clone(), 0),
        ("spans.jsonl", sample_jsonl(), 18),
        ("otlp.json", otlp, 0),
    ];
    let wrapper_spans = serde_json::from_slice::<Value>(&wrapper).unwrap()["data"]
        .as_array()
        .unwrap()
        .len() as u64;
    let otlp_spans = {
        let request: Value =
            serde_json::from_slice(&fixture_bytes("otlp-json-sdk-capture.json")).unwrap();
        request["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["scopeSpans"].as_array().unwrap())
            .map(|s| s["spans"].as_array().unwrap().len() as u64)
            .sum::<u64>()
    };
    for (name, plain, expected) in inputs {
        let expected = match name {
            "wrapper.json" => wrapper_spans,
            "otlp.json" => otlp_spans,
            _ => expected,
        };
        assert!(expected > 0, "{name}: fixture has spans");
        let variants = [
            (name.to_owned(), plain.clone()),
            (format!("{name}.gz"), gzip(&plain)),
            (format!("{name}.zst"), zstd(&plain)),
        ];
        let mut exports = Vec::new();
        for (file_name, bytes) in variants {
            let file = dir.path().join(&file_name);
            std::fs::write(&file, bytes).unwrap();
            let data_dir = dir.path().join(format!("data-{file_name}"));
            let summary = import(&data_dir, &[path_str(&file)], &[]);
            assert_eq!(summary["imported"], expected, "{file_name}: {summary}");
            assert_eq!(summary["rejected"], 0, "{file_name}: {summary}");
            let lines = export_lines(&data_dir);
            assert_eq!(lines.len() as u64, expected, "{file_name}");
            exports.push(span_ids(&lines));
        }
        assert_eq!(
            exports[0], exports[1],
            "{name}: gzip imports what plain does"
        );
        assert_eq!(
            exports[0], exports[2],
            "{name}: zstd imports what plain does"
        );
    }
}

#[test]
fn stdin_imports_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args([
            "import",
            "--quiet",
            "--json",
            "--data-dir",
            path_str(&data_dir),
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&gzip(&sample_jsonl()))
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let summary = stdout_json(&output);
    assert_eq!(summary["imported"], 18, "{summary}");
    let lines = export_lines(&data_dir);
    assert_eq!(lines.len(), 18);
}

/// Twelve lines with known problems: the numbers the dry run must report, and the rejects a
/// real import must write.
const CRAFTED: &str = r#"{"trace_unique_id":"t1","span_unique_id":"a","span_name":"root","start_time":"2025-01-01T00:00:00Z","timestamp":"2025-01-01T00:00:01Z","model":"gpt-4o"}
{"trace_unique_id":"t1","span_unique_id":"b","span_parent_id":"a","start_time":"2025-01-01T00:00:00Z","timestamp":"2025-01-01T00:00:01Z","model":"gpt-4o-mini"}
{"trace_unique_id":"t1","span_unique_id":"b","span_parent_id":"a","start_time":"2025-01-01T00:00:00Z","timestamp":"2025-01-01T00:00:01Z","model":"gpt-4o-mini"}
{"trace_unique_id":"t1","span_unique_id":"a","span_name":"renamed","start_time":"2025-01-01T00:00:00Z","timestamp":"2025-01-01T00:00:01Z","model":"gpt-4o"}
{"trace_unique_id":"t2","span_unique_id":"c","span_parent_id":"ghost","start_time":"2025-01-02T00:00:00Z"}
{"trace_unique_id":"t3","span_unique_id":"x","span_parent_id":"y"}
{"trace_unique_id":"t3","span_unique_id":"y","span_parent_id":"x"}
{"trace_unique_id":"t4","span_unique_id":"r1","start_time":"2025-01-03T00:00:00Z"}
{"trace_unique_id":"t4","span_unique_id":"r2","start_time":"2025-01-03T00:00:00Z"}
{"span_unique_id":"no-trace"}
not json
{"trace_unique_id":"t5","span_unique_id":"z","prompt_tokens":"many"}
"#;

#[test]
fn dry_run_reports_what_the_file_holds_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crafted.jsonl");
    std::fs::write(&file, CRAFTED).unwrap();
    let data_dir = dir.path().join("data");
    let report = import(&data_dir, &[path_str(&file)], &["--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["files"], 1);
    assert_eq!(report["items"], 12);
    assert_eq!(report["spans"], 9);
    assert_eq!(report["distinct_spans"], 7);
    assert_eq!(report["traces"], 4);
    assert_eq!(report["time_range"]["start"], "2025-01-01T00:00:00Z");
    assert_eq!(report["time_range"]["end"], "2025-01-03T00:00:00Z");
    assert_eq!(report["spans_without_times"], 2);
    // Counted per span read, duplicates included.
    assert_eq!(report["models"], json!({"gpt-4o": 2, "gpt-4o-mini": 2}));
    assert_eq!(report["invalid"]["total"], 3);
    assert_eq!(
        report["invalid"]["by_reason"]["trace_unique_id: trace_unique_id is required"],
        1
    );
    assert_eq!(
        report["invalid"]["by_reason"]["prompt_tokens: prompt_tokens must be a non-negative integer, got a string"],
        1
    );
    assert_eq!(
        report["duplicate_span_ids"],
        json!({"total": 2, "same_content": 1, "conflicting_content": 1})
    );
    assert_eq!(report["orphans"], 1);
    assert_eq!(report["parent_cycles"], 1);
    assert_eq!(report["spans_in_parent_cycles"], 2);
    assert_eq!(report["traces_with_multiple_roots"], 1);
    // Nothing was written, not even an empty database.
    assert!(!data_dir.join("tracehouse.db").exists());
}

#[test]
fn bad_items_are_rejected_to_a_file_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crafted.jsonl");
    std::fs::write(&file, CRAFTED).unwrap();
    let data_dir = dir.path().join("data");
    let rejects = dir.path().join("rejects.jsonl");
    let output = run(&[
        "import",
        "--quiet",
        "--json",
        "--data-dir",
        path_str(&data_dir),
        "--rejects",
        path_str(&rejects),
        path_str(&file),
    ]);
    assert_eq!(output.status.code(), Some(2), "some items were rejected");
    let summary = stdout_json(&output);
    assert_eq!(summary["imported"], 9, "{summary}");
    assert_eq!(summary["rejected"], 3, "{summary}");
    let mut rejected: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    rejected.sort_by_key(|r| r["line"].as_u64());
    let file_name = path_str(&file);
    assert_eq!(
        rejected,
        vec![
            json!({"file": file_name, "line": 10, "index": 9, "field": "trace_unique_id",
                   "reason": "trace_unique_id is required", "item": {"span_unique_id": "no-trace"}}),
            json!({"file": file_name, "line": 11, "index": 10, "field": "",
                   "reason": "not valid JSON: expected ident at line 1 column 2", "item": "not json"}),
            json!({"file": file_name, "line": 12, "index": 11, "field": "prompt_tokens",
                   "reason": "prompt_tokens must be a non-negative integer, got a string",
                   "item": {"trace_unique_id": "t5", "span_unique_id": "z", "prompt_tokens": "many"}}),
        ]
    );
    // In (trace id, span id) order; the last of two versions of a span wins, as on ingest.
    let lines = export_lines(&data_dir);
    assert_eq!(span_ids(&lines), ["a", "b", "c", "x", "y", "r1", "r2"]);
    assert_eq!(lines[0]["span_name"], "renamed");
}

/// Spans a round trip must keep exactly: unknown fields at every depth, unicode, a span whose
/// content `disable_log` dropped, a span without times, numbers of every kind.
fn generated_spans(traces: usize) -> Vec<Value> {
    let mut spans = Vec::new();
    for trace in 0..traces {
        let trace_id = format!("gen-{trace:04}");
        spans.push(json!({
            "trace_unique_id": trace_id, "span_unique_id": format!("{trace_id}-root"),
            "span_name": "agent.workflow", "log_type": "workflow",
            "start_time": format!("2025-03-01T10:{:02}:00.123456Z", trace % 60),
            "timestamp": format!("2025-03-01T10:{:02}:05Z", trace % 60),
            "customer_identifier": "客户-α", "metadata": {"nested": {"deep": [1, 2.5, "ü"]}, "flag": true},
            "x_unknown_field": {"keeps": ["its", "shape"], "emoji": "🚀"},
        }));
        spans.push(json!({
            "trace_unique_id": trace_id, "span_unique_id": format!("{trace_id}-chat"),
            "span_parent_id": format!("{trace_id}-root"), "span_name": "answer.chat",
            "log_type": "chat", "model": "gpt-4o", "prompt_tokens": 120 + trace, "completion_tokens": 30,
            "start_time": format!("2025-03-01T10:{:02}:01Z", trace % 60), "latency": 1.25,
            "input": [{"role": "user", "content": "Grüße, «quoted» \"text\" \\ and\nnewlines"}],
            "output": {"role": "assistant", "content": "ok ✓"},
        }));
        spans.push(json!({
            "trace_unique_id": trace_id, "span_unique_id": format!("{trace_id}-secret"),
            "span_parent_id": format!("{trace_id}-root"), "log_type": "chat", "model": "gpt-4o-mini",
            "disable_log": true, "input": "never stored", "output": "never stored",
            "prompt_tokens": 5, "completion_tokens": 7, "start_time": "2025-03-01T10:00:02Z",
            "timestamp": "2025-03-01T10:00:03Z",
        }));
        spans.push(json!({
            "trace_unique_id": trace_id, "span_unique_id": format!("{trace_id}-untimed"),
            "span_parent_id": format!("{trace_id}-root"), "span_name": "late.tool", "log_type": "tool",
            "status": "error", "error_message": "tool failed: <script>alert(1)</script>",
        }));
    }
    spans
}

#[test]
fn export_import_export_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.json");
    std::fs::write(
        &generated,
        serde_json::to_vec(&generated_spans(40)).unwrap(),
    )
    .unwrap();
    let first_dir = dir.path().join("first");
    let summary = import(
        &first_dir,
        &[
            path_str(&fixture_path("respan-logs-sample.json")),
            path_str(&generated),
        ],
        &[],
    );
    assert_eq!(summary["imported"], 18 + 160, "{summary}");
    for (format, gzip_flag) in [
        ("jsonl", false),
        ("jsonl", true),
        ("json", false),
        ("csv", false),
    ] {
        let name = format!("{format}{}", if gzip_flag { ".gz" } else { "" });
        let export = |data_dir: &Path, out: &Path| {
            let mut args = vec![
                "export",
                "--quiet",
                "--format",
                format,
                "--data-dir",
                path_str(data_dir),
            ];
            args.extend(["--out", path_str(out)]);
            if gzip_flag {
                args.push("--gzip");
            }
            let output = run(&args);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let first = dir.path().join(format!("first.{name}"));
        export(&first_dir, &first);
        if format == "csv" {
            let mut reader = csv::Reader::from_path(&first).unwrap();
            let header = reader.headers().unwrap().clone();
            assert_eq!(&header[0], "trace_unique_id");
            let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            assert_eq!(rows.len(), 18 + 160, "a row per span");
            continue;
        }
        let second_dir = dir.path().join(format!("second-{name}"));
        let summary = import(&second_dir, &[path_str(&first)], &[]);
        assert_eq!(summary["imported"], 178, "{name}: {summary}");
        let second = dir.path().join(format!("second.{name}"));
        export(&second_dir, &second);
        assert!(
            std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap(),
            "{name}: the second export differs from the first"
        );
    }
    // What the round trip kept, checked on the values a user would look at.
    let lines = export_lines(&first_dir);
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|s| s["span_unique_id"] == id)
            .unwrap()
            .clone()
    };
    let root = by_id("gen-0003-root");
    assert_eq!(root["customer_identifier"], "客户-α");
    assert_eq!(
        root["x_unknown_field"],
        json!({"keeps": ["its", "shape"], "emoji": "🚀"})
    );
    assert_eq!(root["metadata"]["nested"], json!({"deep": [1, 2.5, "ü"]}));
    let secret = by_id("gen-0003-secret");
    assert_eq!(secret["prompt_tokens"], 5);
    assert!(secret.get("input").is_none_or(Value::is_null), "{secret}");
    let untimed = by_id("gen-0003-untimed");
    assert_eq!(untimed["times_inferred"], true);
    assert_eq!(untimed["status"], "error");
}

#[test]
fn otlp_json_export_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let otlp = fixture_path("otlp-json-sdk-capture.json");
    let summary = import(&data_dir, &[path_str(&otlp)], &[]);
    let imported = summary["imported"].as_u64().unwrap();
    assert!(imported > 0);
    let out = dir.path().join("spans.otlp.jsonl");
    export_to(&data_dir, "otlp-json", &out);
    let again = dir.path().join("again");
    let summary = import(&again, &[path_str(&out)], &["--format", "otlp-json"]);
    assert_eq!(summary["imported"], imported, "{summary}");
    let (first, second) = (export_lines(&data_dir), export_lines(&again));
    assert_eq!(span_ids(&first), span_ids(&second));
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["model"], b["model"]);
        assert_eq!(a["prompt_tokens"], b["prompt_tokens"]);
        assert_eq!(a["span_parent_id"], b["span_parent_id"]);
    }
}

#[test]
fn export_filters_select_spans() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let generated = dir.path().join("generated.json");
    std::fs::write(&generated, serde_json::to_vec(&generated_spans(5)).unwrap()).unwrap();
    import(&data_dir, &[path_str(&generated)], &[]);
    let ids = |filters: &[&str]| {
        let mut args = vec!["export", "--quiet", "--data-dir", path_str(&data_dir)];
        args.extend_from_slice(filters);
        let output = run(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        text.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["span_unique_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&["--filter", "model=gpt-4o", "--trace", "gen-0001"]),
        ["gen-0001-chat"]
    );
    assert_eq!(
        ids(&[
            "--filter",
            "prompt_tokens>=123",
            "--filter",
            "log_type=chat"
        ]),
        ["gen-0003-chat", "gen-0004-chat"]
    );
    assert_eq!(
        ids(&["--filter", "status=error", "--trace", "gen-0002"]),
        ["gen-0002-untimed"]
    );
    let bad = run(&[
        "export",
        "--data-dir",
        path_str(&data_dir),
        "--filter",
        "no operator",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no operator"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test]
async fn http_import_and_http_export_against_a_server() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.jsonl.gz");
    let mut jsonl = Vec::new();
    for span in generated_spans(30) {
        serde_json::to_writer(&mut jsonl, &span).unwrap();
        jsonl.push(b'\n');
    }
    std::fs::write(&generated, gzip(&jsonl)).unwrap();
    let (base, key, file) = (server.base.clone(), server.key.clone(), generated.clone());
    let output = tokio::task::spawn_blocking(move || {
        run(&[
            "import",
            "--quiet",
            "--json",
            "--url",
            &base,
            "--key",
            &key,
            "--batch-size",
            "7",
            path_str(&file),
        ])
    })
    .await
    .unwrap();
    let summary = stdout_json(&output);
    assert_eq!(summary["imported"], 120, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
    let (_, listed) = server.get("/api/request-logs/list/?page_size=1").await;
    assert_eq!(listed["count"], 120);
    let trace = server.trace("gen-0007").await;
    assert_eq!(trace["span_count"], 4);
    assert_eq!(trace["total_prompt_tokens"], 127 + 5);

    // The streaming export route, with a filter, as JSONL and gzip-compressed CSV.
    let response = server
        .client
        .get(server.url(
            "/api/traces/export/?format=jsonl&filters=%7B%22model%22%3A%7B%22value%22%3A%5B%22gpt-4o%22%5D%7D%7D",
        ))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let chats: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chats.len(), 30);
    assert!(chats.iter().all(|s| s["model"] == "gpt-4o"));
    let unauthenticated = server
        .client
        .get(server.url("/api/traces/export/?format=jsonl"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let bad_format = server
        .client
        .get(server.url("/api/traces/export/?format=xml"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_format.status(), 400);
    let message = bad_format.text().await.unwrap();
    assert!(message.contains("format"), "{message}");
}

/// A JSONL file of `spans` generated spans, each about 1.5 KB, written without holding it in
/// memory.
fn write_large_jsonl(path: &Path, spans: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let filler = "lorem ipsum dolor sit amet ".repeat(50);
    for index in 0..spans {
        let trace = index / 10;
        let span = json!({
            "trace_unique_id": format!("big-{trace:08}"), "span_unique_id": format!("big-{index:010}"),
            "span_parent_id": if index % 10 == 0 { Value::Null } else { json!(format!("big-{:010}", trace * 10)) },
            "log_type": "chat", "model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 20,
            "start_time": "2025-05-01T00:00:00Z", "latency": 0.5,
            "input": filler, "output": format!("answer {index}"),
        });
        serde_json::to_writer(&mut out, &span).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

/// Starts an import of `file` and returns the child with its peak RSS sampled until it exits.
fn import_watching_memory(
    data_dir: &Path,
    file: &Path,
    kill_after: Option<Duration>,
) -> (Output, u64) {
    let child = Command::new(BIN)
        .args([
            "import",
            "--quiet",
            "--json",
            "--data-dir",
            path_str(data_dir),
            path_str(file),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = std::time::Instant::now();
    let mut peak = 0;
    let mut child = child;
    loop {
        if let Some(rss) = peak_rss_kib(pid) {
            peak = peak.max(rss);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        // Killed once it has run that long and committed a batch, however loaded the machine.
        let due = kill_after.is_some_and(|after| started.elapsed() >= after);
        if due && !checkpoints(data_dir).is_empty() {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), peak)
}

/// Imports `file` into `data_dir` to the end; its peak RSS in KiB.
pub(crate) fn import_peak(data_dir: &Path, file: &Path) -> u64 {
    let (output, peak) = import_watching_memory(data_dir, file, None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    peak
}

fn checkpoints(data_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".tracehouse-import-")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Imports `file` into `data_dir`, killed after `kill_after` (once a batch is committed), then
/// again to the end: a checkpoint is left behind, the second run continues from it instead of
/// starting over, every span is imported once and the checkpoint is removed. The two runs'
/// peak RSS, in KiB.
pub(crate) fn import_killed_then_resumed(
    data_dir: &Path,
    file: &Path,
    spans: u64,
    kill_after: Duration,
) -> (u64, u64) {
    let (killed, first_peak) = import_watching_memory(data_dir, file, Some(kill_after));
    assert!(
        killed.status.code().is_none(),
        "the first run was killed, not finished"
    );
    assert_eq!(
        checkpoints(data_dir).len(),
        1,
        "a checkpoint is left behind"
    );
    let imported_before = export_count(data_dir);
    assert!(
        imported_before > 0 && imported_before < spans,
        "{imported_before}"
    );
    let (finished, peak) = import_watching_memory(data_dir, file, None);
    let summary = stdout_json(&finished);
    assert!(!summary["resumed_after"].is_null(), "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
    assert_eq!(summary["imported"], spans, "{summary}");
    let this_run = summary["imported_this_run"].as_u64().unwrap();
    assert!(
        this_run < spans,
        "the second run continued instead of starting over: {summary}"
    );
    assert!(
        checkpoints(data_dir).is_empty(),
        "the checkpoint is removed when done"
    );
    assert_eq!(export_count(data_dir), spans);
    (first_peak, peak)
}

/// A large import killed part way and run again finishes from its checkpoint, imports every
/// span exactly once, and keeps its memory flat throughout.
#[test]
fn large_import_keeps_memory_flat_and_resumes_after_kill() {
    let spans = 150_000; // about 250 MB of JSONL
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.jsonl");
    write_large_jsonl(&file, spans);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 200_000_000, "{size} bytes");
    let data_dir = dir.path().join("data");

    let (first_peak, peak) =
        import_killed_then_resumed(&data_dir, &file, spans as u64, Duration::from_secs(3));
    // Flat: a quarter-gigabyte input never takes a quarter gigabyte of memory.
    let limit_kib = 200 * 1024;
    assert!(
        first_peak < limit_kib && peak < limit_kib,
        "peak RSS {first_peak} KiB, {peak} KiB"
    );
}

fn export_count(data_dir: &Path) -> u64 {
    let output = run(&[
        "export",
        "--quiet",
        "--format",
        "jsonl",
        "--data-dir",
        path_str(data_dir),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout.iter().filter(|b| **b == b'\n').count() as u64
}
