//! Black-box tests of the built binary: CLI, config, startup, first key, restart, signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::util::fixture_json;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tracehouse");

/// A `tracehouse serve` process; killed when dropped.
pub(crate) struct ServeProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
    stdout_lines: Vec<String>,
}

/// `tracehouse serve` on any free port, writing its address to `addr_file`, with stdout piped
/// and none of the caller's tracehouse environment: add the store and other flags.
fn serve_command(addr_file: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(addr_file)
        .env_remove("TRACEHOUSE_DATA_DIR")
        .env_remove("TRACEHOUSE_STORE")
        .env_remove("TRACEHOUSE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

impl ServeProcess {
    /// Starts the binary on a free port and waits until it prints its address (and, on a fresh
    /// store, its first key).
    pub(crate) fn start(data_dir: &Path) -> Self {
        Self::start_with_flags(data_dir, &[])
    }

    /// As [`Self::start`], with more `serve` flags.
    pub(crate) fn start_with_flags(data_dir: &Path, flags: &[&str]) -> Self {
        let mut args = vec![std::ffi::OsStr::new("--data-dir"), data_dir.as_os_str()];
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        Self::start_with(&args, &data_dir.with_extension("addr"))
    }

    /// Starts the binary with these store (and other `serve`) arguments, writing its address
    /// to `addr_file`.
    pub(crate) fn start_with(store_args: &[&std::ffi::OsStr], addr_file: &Path) -> Self {
        let addr_file = addr_file.to_path_buf();
        let _ = std::fs::remove_file(&addr_file);
        // Tests run in parallel: the gRPC listener takes any free port unless a test says.
        let grpc_listen: &[&str] = if store_args.iter().any(|arg| *arg == "--grpc-listen") {
            &[]
        } else {
            &["--grpc-listen", "127.0.0.1:0"]
        };
        let mut child = serve_command(&addr_file)
            .args(grpc_listen)
            .args(store_args)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(
            first.starts_with("tracehouse listening on http://127.0.0.1:"),
            "{first}"
        );
        let mut stdout_lines = vec![first];
        // The key, if any, follows at once; a short wait is enough to tell.
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(500)) {
            stdout_lines.push(line);
        }
        let base = format!(
            "http://{}",
            std::fs::read_to_string(&addr_file).unwrap().trim()
        );
        Self {
            child,
            base,
            stdout_lines,
        }
    }

    pub(crate) fn printed_key(&self) -> Option<String> {
        self.stdout_lines
            .last()
            .filter(|l| l.starts_with("th_"))
            .cloned()
    }

    /// Sends SIGTERM and returns whether the process exited successfully.
    pub(crate) fn terminate(mut self) -> bool {
        self.signal_term();
        let status = self.child.wait().unwrap();
        status.success()
    }

    /// Sends SIGTERM without waiting.
    pub(crate) fn signal_term(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn tracehouse(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("TRACEHOUSE_DATA_DIR")
        .env_remove("TRACEHOUSE_STORE")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn get_trace(base: &str, key: &str, trace_id: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/traces/{trace_id}/"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    crate::util::answer(response).await
}

#[tokio::test]
async fn first_start_prints_a_key_and_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = ServeProcess::start(&data_dir);
    let key = server
        .printed_key()
        .expect("first start prints a key on the last line");
    assert!(
        server
            .stdout_lines
            .iter()
            .any(|l| l.contains("\"default\""))
    );

    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/traces/ingest", server.base))
        .bearer_auth(&key)
        .json(&fixture_json("respan-logs-sample.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(server.terminate(), "SIGTERM exits cleanly");

    let restarted = ServeProcess::start(&data_dir);
    assert_eq!(
        restarted.printed_key(),
        None,
        "a key is printed only for an empty store"
    );
    let (status, trace) =
        get_trace(&restarted.base, &key, "4fd81b946f97464789a28b50dd253a90").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trace["span_count"], 18);
    assert!(data_dir.join("tracehouse.db").exists());
}

#[tokio::test]
async fn keys_create_list_revoke_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();

    let (ok, stdout, stderr) = tracehouse(&[
        "keys",
        "create",
        "--project",
        "team-a",
        "--label",
        "ci",
        "--data-dir",
        data,
    ]);
    assert!(ok, "{stderr}");
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("th_") && key.len() == 67, "{stdout}");

    // --store sqlite:PATH reaches the same database.
    let store_url = format!("sqlite:{}", data_dir.join("tracehouse.db").display());
    let (ok, listing, _) = tracehouse(&["keys", "list", "--store", &store_url]);
    assert!(ok);
    let row = listing.lines().find(|l| l.contains("team-a")).unwrap();
    assert!(row.contains(&key[..10]) && row.contains("ci"), "{listing}");
    assert!(!listing.contains(&key), "the secret is never listed");
    let id = row.split_whitespace().next().unwrap().to_owned();

    let server = ServeProcess::start(&data_dir);
    assert_eq!(
        server.printed_key(),
        None,
        "a store with keys gets no new key"
    );
    let (status, _) = get_trace(&server.base, &key, "none").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "valid key, unknown trace");

    let (ok, stdout, _) = tracehouse(&["keys", "revoke", &id, "--data-dir", data]);
    assert!(ok);
    assert!(stdout.contains("revoked key"), "{stdout}");
    let (status, _) = get_trace(&server.base, &key, "none").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked key stops working at once"
    );

    let (ok, _, stderr) = tracehouse(&["keys", "revoke", "999", "--data-dir", data]);
    assert!(!ok);
    assert!(stderr.contains("api key 999 not found"), "{stderr}");
    let (ok, _, stderr) = tracehouse(&[
        "keys",
        "create",
        "--project",
        "bad name",
        "--data-dir",
        data,
    ]);
    assert!(!ok);
    assert!(stderr.contains("project name"), "{stderr}");
}

#[tokio::test]
async fn keys_rotate_replaces_a_key_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let server = ServeProcess::start(&data_dir);
    let old = server.printed_key().unwrap();
    let (ok, listing, _) = tracehouse(&["keys", "list", "--data-dir", data]);
    assert!(ok);
    let id = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let (ok, stdout, stderr) = tracehouse(&["keys", "rotate", &id, "--data-dir", data]);
    assert!(ok, "{stderr}");
    let new = stdout.lines().last().unwrap().to_owned();
    assert!(new.starts_with("th_") && new != old, "{stdout}");
    assert!(stdout.contains(&format!("revoked key {id}")), "{stdout}");
    let (status, _) = get_trace(&server.base, &old, "none").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old key stopped");
    let (status, _) = get_trace(&server.base, &new, "none").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the new key works, same project"
    );
    let (ok, listing, _) = tracehouse(&["keys", "list", "--data-dir", data]);
    assert!(ok);
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listing}");
    assert!(
        rows.iter()
            .all(|row| row.contains("default") && row.contains("created on first start")),
        "{listing}"
    );

    let (ok, _, stderr) = tracehouse(&["keys", "rotate", &id, "--data-dir", data]);
    assert!(!ok);
    assert!(stderr.contains("already revoked"), "{stderr}");
    let (ok, _, stderr) = tracehouse(&["keys", "rotate", "4242", "--data-dir", data]);
    assert!(!ok);
    assert!(stderr.contains("no key with id 4242"), "{stderr}");
}

/// `serve | head -1`, or a supervisor that closes the server's stdout: the start-up lines
/// cannot be written, and the server serves anyway.
#[tokio::test]
async fn serve_keeps_serving_when_its_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let mut child = serve_command(&addr_file)
        .args(["--grpc-listen", "off", "--data-dir"])
        .arg(dir.path().join("data"))
        .spawn()
        .unwrap();
    // The read end closes before the server prints its first line.
    drop(child.stdout.take());
    let started = std::time::Instant::now();
    let base = loop {
        if let Ok(address) = std::fs::read_to_string(&addr_file) {
            if !address.trim().is_empty() {
                break format!("http://{}", address.trim());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no address file"
        );
        assert!(child.try_wait().unwrap().is_none(), "serve exited at start");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Past the start-up lines: still running and answering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve exited after printing"
    );
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn scoped_keys_are_created_listed_used_and_rotated_with_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let create = |scope_args: &[&str]| {
        let mut args = vec!["keys", "create", "--project", "shop", "--data-dir", data];
        args.extend_from_slice(scope_args);
        tracehouse(&args)
    };
    let (ok, stdout, stderr) = create(&["--scope", "ingest", "--label", "app"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("(ingest)"), "{stdout}");
    let ingest = stdout.lines().last().unwrap().to_owned();
    let (ok, stdout, stderr) = create(&["--scope", "read", "--scope", "ingest", "--label", "both"]);
    assert!(ok, "{stderr}");
    let both = stdout.lines().last().unwrap().to_owned();
    let (ok, stdout, stderr) = create(&["--scope", "read", "--label", "people"]);
    assert!(ok, "{stderr}");
    let read = stdout.lines().last().unwrap().to_owned();
    let (ok, _, stderr) = create(&["--scope", "write"]);
    assert!(!ok);
    assert!(
        stderr.contains("write") && stderr.contains("ingest, read, admin"),
        "{stderr}"
    );

    let server = ServeProcess::start(&data_dir);
    let ingest_status = |key: String| {
        let base = server.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1/traces/ingest"))
                .bearer_auth(key)
                .json(&serde_json::json!([{"trace_unique_id": "t", "span_unique_id": "s"}]))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(ingest_status(ingest.clone()).await, StatusCode::OK);
    assert_eq!(ingest_status(both.clone()).await, StatusCode::OK);
    assert_eq!(ingest_status(read.clone()).await, StatusCode::FORBIDDEN);
    let (status, _) = get_trace(&server.base, &ingest, "t").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an ingest key reads nothing");
    let (status, trace) = get_trace(&server.base, &read, "t").await;
    assert_eq!(status, StatusCode::OK, "{trace}");

    // The listing shows scopes and that the keys were used; the read key, used last, was.
    let listed = || {
        let (ok, listing, stderr) = tracehouse(&["keys", "list", "--data-dir", data]);
        assert!(ok, "{stderr}");
        listing
    };
    let mut listing = listed();
    // Uses are recorded in the background, right after the request.
    for _ in 0..50 {
        if listing.lines().skip(1).all(|row| !row.contains("never")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        listing = listed();
    }
    assert!(
        listing.lines().next().unwrap().contains("SCOPE"),
        "{listing}"
    );
    assert!(
        listing.lines().next().unwrap().contains("LAST USED"),
        "{listing}"
    );
    let row = |label: &str| {
        listing
            .lines()
            .find(|row| row.contains(label))
            .unwrap_or_else(|| panic!("no {label} in {listing}"))
            .to_owned()
    };
    assert!(row("app").contains(" ingest "), "{listing}");
    assert!(row("both").contains(" ingest,read "), "{listing}");
    assert!(row("people").contains(" read "), "{listing}");
    for label in ["app", "both", "people"] {
        assert!(!row(label).contains("never"), "{label} was used: {listing}");
    }

    // Rotation keeps the scope.
    let id = row("people").split_whitespace().next().unwrap().to_owned();
    let (ok, stdout, stderr) = tracehouse(&["keys", "rotate", &id, "--data-dir", data]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("(read)"), "{stdout}");
    let rotated = stdout.lines().last().unwrap().to_owned();
    assert_eq!(ingest_status(rotated.clone()).await, StatusCode::FORBIDDEN);
    let (status, _) = get_trace(&server.base, &rotated, "t").await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn help_and_bad_config_are_explained() {
    let (ok, help, _) = tracehouse(&["serve", "--help"]);
    assert!(ok);
    for flag in [
        "--listen",
        "--data-dir",
        "--store",
        "TRACEHOUSE_LISTEN",
        "TRACEHOUSE_DATA_DIR",
        "127.0.0.1:8080",
        "--grpc-listen",
        "TRACEHOUSE_GRPC_LISTEN",
        "127.0.0.1:4317",
        "--grpc-addr-file",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
    let (ok, _, stderr) = tracehouse(&[
        "serve",
        "--store",
        "postgres://x/y",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(stderr.contains("not supported"), "{stderr}");
}

/// `serve --config FILE`: settings from a TOML file apply; the command line overrides them;
/// a misspelt setting stops the server before it starts, naming the setting.
#[tokio::test]
async fn serve_reads_settings_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("tracehouse.toml");
    std::fs::write(
        &config,
        "# limits for this test\nmax-body-bytes = 2000\nmax_inflated_bytes = 4000\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    // The harness passes --listen 127.0.0.1:0 on the command line, which wins over the file.
    let server = ServeProcess::start_with_flags(&data_dir, &["--config", config.to_str().unwrap()]);
    let key = server.printed_key().unwrap();
    let client = reqwest::Client::new();
    let big = serde_json::json!([{"trace_unique_id": "t", "span_unique_id": "s", "input": "x".repeat(3000)}]);
    let response = client
        .post(format!("{}/api/v1/traces/ingest", server.base))
        .bearer_auth(&key)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "the file's limit applies"
    );
    let small = serde_json::json!([{"trace_unique_id": "t", "span_unique_id": "s"}]);
    let response = client
        .post(format!("{}/api/v1/traces/ingest", server.base))
        .bearer_auth(&key)
        .json(&small)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(server);

    std::fs::write(&config, "max_body_byts = 2000\n").unwrap();
    let output = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env_remove("TRACEHOUSE_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown setting \"max_body_byts\""),
        "{stderr}"
    );
    assert!(stderr.contains("tracehouse.toml"), "{stderr}");
}

/// Runs `bench ingest --json` against `base` with these flags and returns its report, after
/// checking that it succeeded and that every span it sent was acknowledged and read back.
async fn bench_ingest(base: &str, key: &str, flags: &[&str], spans: u64) -> Value {
    let (base, key) = (base.to_owned(), key.to_owned());
    let flags: Vec<String> = flags.iter().map(|flag| (*flag).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["bench", "ingest", "--url", &base, "--key", &key])
            .args(&flags)
            .args(["--connections", "2", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["spans_sent"], spans, "{report}");
    assert_eq!(report["spans_accepted"], spans, "{report}");
    assert_eq!(report["verified_readable"], spans, "{report}");
    assert_eq!(
        report["errors_by_status"],
        serde_json::json!({}),
        "{report}"
    );
    report
}

/// The load generator end to end in both wire formats, whole-traces shape: every span it sends
/// is acknowledged, its own verification counts them back, and a trace has the promised shape
/// (an agent root over a chain with four chat calls and three tools, and a retriever task).
#[tokio::test]
async fn bench_ingest_sends_ten_span_traces_and_counts_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&dir.path().join("data"));
    let key = server.printed_key().unwrap();
    for format in ["span-log", "otlp"] {
        let flags = [
            "--shape",
            "whole-traces",
            "--format",
            format,
            "--spans",
            "300",
            "--spans-per-request",
            "50",
        ];
        let report = bench_ingest(&server.base, &key, &flags, 300).await;
        assert_eq!(report["requests"], 6, "{format}: {report}");
        assert_eq!(report["shape"], "whole-traces", "{format}");
        assert_eq!(report["trace_len"], 10, "{format}");
        assert_eq!(report["in_flight"], 1, "{format}");
        assert_eq!(report["requests_per_trace"], 1.0, "{format}");

        let run_id = report["run_id"].as_str().unwrap();
        let first = format!("{run_id}{:024x}", 0);
        assert_eq!(report["probe_trace_id"], first.as_str(), "{format}");
        let (status, trace) = get_trace(&server.base, &key, &first).await;
        assert_eq!(status, StatusCode::OK, "{format}: {trace}");
        assert_eq!(trace["span_count"], 10, "{format}");
        let tree = &trace["span_tree"];
        assert_eq!(tree.as_array().map(Vec::len), Some(1), "{format}: one root");
        let root = &tree[0];
        assert_eq!(root["span_name"], "support_agent.agent", "{format}");
        assert_eq!(root["log_type"], "agent", "{format}");
        let mut under_root: Vec<String> = root["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|child| format!("{}:{}", child["span_name"], child["log_type"]))
            .collect();
        under_root.sort();
        assert_eq!(
            under_root,
            [
                "\"answer.chain\":\"workflow\"",
                "\"retrieve_docs.task\":\"task\""
            ],
            "{format}"
        );
        let chain = root["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|child| child["span_name"] == "answer.chain")
            .unwrap();
        let mut under_chain: Vec<&str> = chain["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|child| child["log_type"].as_str().unwrap())
            .collect();
        under_chain.sort_unstable();
        assert_eq!(
            under_chain,
            ["chat", "chat", "chat", "chat", "tool", "tool", "tool"],
            "{format}"
        );
    }
}

/// The default, realistic shape end to end in both wire formats: traces sent as SDKs export
/// them (children first, the root last, 8 traces interleaved, each across several requests)
/// are all acknowledged and counted back by the run id in their metadata, and the trace the
/// fetch probe reads is a complete tree of the promised length.
#[tokio::test]
async fn bench_ingest_sends_interleaved_traces_as_they_end_and_counts_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&dir.path().join("data"));
    let key = server.printed_key().unwrap();
    for format in ["span-log", "otlp"] {
        let flags = [
            "--format",
            format,
            "--spans",
            "300",
            "--trace-len",
            "15",
            "--in-flight",
            "8",
            "--spans-per-request",
            "30",
        ];
        let report = bench_ingest(&server.base, &key, &flags, 300).await;
        assert_eq!(report["shape"], "realistic", "{format}: {report}");
        assert_eq!(report["trace_len"], 15, "{format}");
        assert_eq!(report["in_flight"], 8, "{format}");
        assert_eq!(report["traces"], 20, "{format}");
        assert_eq!(report["requests"], 10, "{format}");
        assert!(
            report["requests_per_trace"].as_f64().unwrap() > 1.5,
            "{format}: {report}"
        );

        let probe = report["probe_trace_id"].as_str().unwrap();
        assert_eq!(probe.len(), 32, "{format}");
        let (status, trace) = get_trace(&server.base, &key, probe).await;
        assert_eq!(status, StatusCode::OK, "{format}: {trace}");
        assert_eq!(trace["span_count"], 15, "{format}");
        let tree = &trace["span_tree"];
        assert_eq!(tree.as_array().map(Vec::len), Some(1), "{format}: one root");
        let root = &tree[0];
        assert_eq!(root["span_name"], "support_agent.agent", "{format}");
        assert_eq!(root["log_type"], "agent", "{format}");
        assert_eq!(trace["metadata"]["bench_run"], report["run_id"], "{format}");
        // Steps hold the chat and tool calls; the agent's last child writes the answer.
        let children = root["children"].as_array().unwrap();
        assert!(
            children
                .iter()
                .filter(|child| child["log_type"] == "workflow")
                .all(|step| step["children"].as_array().is_some_and(|c| !c.is_empty())),
            "{format}: {root}"
        );
        let kinds = |span: &Value| -> Vec<String> {
            let mut out = Vec::new();
            let mut stack = vec![span.clone()];
            while let Some(span) = stack.pop() {
                out.push(span["log_type"].as_str().unwrap_or("").to_owned());
                stack.extend(span["children"].as_array().cloned().unwrap_or_default());
            }
            out
        };
        let all = kinds(root);
        assert_eq!(all.len(), 15, "{format}");
        assert!(all.iter().any(|k| k == "chat"), "{format}: {all:?}");
        assert!(all.iter().any(|k| k == "workflow"), "{format}: {all:?}");
    }

    // The realistic knobs do not apply to whole traces.
    let output = Command::new(BIN)
        .args(["bench", "ingest", "--url", &server.base, "--key", &key])
        .args(["--shape", "whole-traces", "--trace-len", "20"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--shape realistic only"), "{stderr}");
}

/// Runs `bench read --json` against `base` with these flags; returns whether it succeeded and
/// its report.
async fn bench_read(base: &str, key: &str, flags: &[&str]) -> (bool, Value) {
    let (base, key) = (base.to_owned(), key.to_owned());
    let flags: Vec<String> = flags.iter().map(|flag| (*flag).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["bench", "read", "--url", &base, "--key", &key, "--json"])
            .args(&flags)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {stderr}"));
    (output.status.success(), report)
}

/// The read benchmark end to end on what `bench ingest` writes: it discovers a model, word,
/// metadata pair, trace, thread and customer from the data, every call answers 2xx with counts that fit the
/// store, the filtered rows match their filter, and a call that fails makes the run fail.
#[tokio::test]
async fn bench_read_times_every_call_on_discovered_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&dir.path().join("data"));
    let key = server.printed_key().unwrap();
    // Six traces over three threads of two customers (thread-N belongs to customer-(N mod 2)).
    let ingest = bench_ingest(
        &server.base,
        &key,
        &["--spans", "300", "--threads", "3", "--customers", "2"],
        300,
    )
    .await;

    let (ok, report) = bench_read(&server.base, &key, &["--calls", "3"]).await;
    assert!(ok, "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["span_count"], 300, "{report}");
    assert_eq!(report["trace_count"], 6, "50-span traces");
    assert_eq!(report["span_count_after"], 300, "nothing written meanwhile");
    let chosen = &report["chosen"];
    let model = chosen["model"]["value"].as_str().unwrap();
    assert!(
        ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gpt-4.1-mini"].contains(&model),
        "{chosen}"
    );
    assert_eq!(chosen["metadata"]["key"], "bench_run", "{chosen}");
    assert_eq!(chosen["metadata"]["value"], ingest["run_id"], "{chosen}");
    let word = chosen["word"]["value"].as_str().unwrap();
    assert!(
        word.len() >= 4 && word.bytes().all(|b| b.is_ascii_lowercase()),
        "{chosen}"
    );
    assert!(chosen["start_time"].as_str() < chosen["end_time"].as_str());

    let results: std::collections::HashMap<&str, &Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| (result["id"].as_str().unwrap(), result))
        .collect();
    assert_eq!(results.len(), 14, "{report}");
    for (id, result) in &results {
        assert_eq!(result["ok"], true, "{id}: {result}");
        assert!(result["skipped"].is_null(), "{id}: {result}");
        let status = result["status"].as_u64().unwrap();
        assert!((200..300).contains(&status), "{id}: {result}");
        assert_eq!(result["calls"], 3, "{id}");
        assert_eq!(result["errors"], 0, "{id}");
        assert_eq!(result["mismatched_rows"], 0, "{id}");
        let (p50, p95, max) = (
            result["p50_ms"].as_f64().unwrap(),
            result["p95_ms"].as_f64().unwrap(),
            result["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{id}: {result}");
    }
    let count = |id: &str| results[id]["count"].as_u64().unwrap();
    let rows = |id: &str| results[id]["rows"].as_u64().unwrap();
    assert_eq!((count("trace_fetch"), rows("trace_fetch")), (50, 50));
    assert_eq!((count("newest_traces"), rows("newest_traces")), (6, 6));
    assert_eq!((count("newest_spans"), rows("newest_spans")), (300, 50));
    let by_model = count("spans_by_model");
    assert!(0 < by_model && by_model < 300, "{by_model}");
    assert_eq!(rows("spans_by_model"), by_model.min(50));
    assert_eq!(
        count("summary_by_model"),
        by_model,
        "same filter, same spans"
    );
    assert!((1..=6).contains(&count("traces_by_model")));
    assert!(count("span_search") > 0 && rows("span_search") > 0);
    assert!((1..=6).contains(&count("trace_search")));
    assert_eq!(
        count("spans_by_metadata"),
        300,
        "every span carries the run"
    );
    assert!(rows("cost_by_model") >= 1, "{}", results["cost_by_model"]);
    assert_eq!((count("threads"), rows("threads")), (3, 3));
    assert_eq!(
        (count("thread_fetch"), rows("thread_fetch")),
        (2, 2),
        "two traces a thread"
    );
    assert_eq!(rows("users_by_cost"), 2);
    let customer = chosen["customer"]["value"].as_str().unwrap();
    assert!(["customer-0", "customer-1"].contains(&customer), "{chosen}");
    assert!(
        [100, 200].contains(&count("user_fetch")),
        "50-span traces: {}",
        results["user_fetch"]
    );
    assert!(results["cost_by_model"]["series"].as_u64().unwrap() >= 1);
    assert_eq!(
        results["summary_by_model"]["path"],
        "/api/request-logs/summary/"
    );
    assert_eq!(
        results["spans_by_model"]["body"],
        serde_json::json!({"filters": {"model": {"operator": "", "value": [model]}}})
    );

    // The filtered span list the benchmark timed holds that model only, as the API says.
    let (status, page) = crate::util::answer(
        reqwest::Client::new()
            .post(format!(
                "{}/api/request-logs/list/?page_size=1000",
                server.base
            ))
            .bearer_auth(&key)
            .json(&results["spans_by_model"]["body"])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let spans = page["results"].as_array().unwrap();
    assert_eq!(spans.len() as u64, by_model);
    assert!(spans.iter().all(|span| span["model"] == model));

    // A call answering 404 is reported and fails the run; the other calls still run.
    let (ok, report) = bench_read(
        &server.base,
        &key,
        &[
            "--calls",
            "1",
            "--trace",
            "no-such-trace",
            "--word",
            "refund",
        ],
    )
    .await;
    assert!(!ok, "{report}");
    assert_eq!(report["ok"], false);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["id"], "trace_fetch");
    assert_eq!(results[0]["status"], 404, "{report}");
    assert!(
        results[0]["error"].as_str().unwrap().contains("not found"),
        "{report}"
    );
    assert_eq!(report["chosen"]["word"]["why"], "given");
    assert!(
        results[1..].iter().all(|result| result["ok"] == true),
        "{report}"
    );
}
