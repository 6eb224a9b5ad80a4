//! Crash safety: a 2xx means committed. The server is killed with SIGKILL in the middle of a
//! load, restarted on the same data directory, and every acknowledged span must be readable.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::{BIN, ServeProcess};

async fn readable_spans_of_run(base: &str, key: &str, run_id: &str) -> u64 {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/request-logs/list/?page_size=1"))
        .bearer_auth(key)
        .json(
            &json!({"filters": {"trace_unique_id": {"operator": "startswith", "value": [run_id]}}}),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = crate::util::answer(response).await;
    assert!(status.is_success(), "{body}");
    body["count"].as_u64().unwrap()
}

async fn stored_spans(base: &str, key: &str) -> u64 {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/request-logs/list/?page_size=1"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let (status, body) = crate::util::answer(response).await;
    assert!(status.is_success(), "{body}");
    body["count"].as_u64().unwrap()
}

async fn wait_until_spans_arrive(base: &str, key: &str, stored_before: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while stored_spans(base, key).await <= stored_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the load generator never sent a span"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Cycles default to 3 (CI); `TRACEHOUSE_CRASH_CYCLES=20` runs the long version.
#[tokio::test]
async fn acknowledged_spans_survive_kill_9() {
    let cycles: usize = std::env::var("TRACEHOUSE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = ServeProcess::start(&data_dir);
    let key = server.printed_key().unwrap();
    let mut random = fastrand::Rng::with_seed(cycles as u64);
    let mut total_acknowledged = 0;
    for cycle in 0..cycles {
        let stored_before = stored_spans(&server.base, &key).await;
        let load = Command::new(BIN)
            .args(["bench", "ingest", "--url", &server.base, "--key", &key])
            .args([
                "--spans",
                "30000",
                "--connections",
                "4",
                "--json",
                "--no-verify",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The generator builds its bodies before it sends (slow in debug builds): the kill is
        // timed from the first stored span, so it lands in the middle of the load.
        wait_until_spans_arrive(&server.base, &key, stored_before).await;
        tokio::time::sleep(Duration::from_millis(random.u64(100..900))).await;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let output = tokio::task::spawn_blocking(move || load.wait_with_output().unwrap())
            .await
            .unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let acknowledged = report["spans_accepted"].as_u64().unwrap();
        let run_id = report["run_id"].as_str().unwrap().to_owned();

        server = ServeProcess::start(&data_dir);
        let readable = readable_spans_of_run(&server.base, &key, &run_id).await;
        // Spans committed but not yet acknowledged when the kill came may also be there.
        assert!(
            readable >= acknowledged,
            "cycle {cycle}: {acknowledged} spans acknowledged, only {readable} readable after kill -9"
        );
        assert_eq!(
            readable % 10,
            0,
            "cycle {cycle}: requests commit whole, 10-span traces"
        );
        total_acknowledged += acknowledged;
    }
    assert!(
        total_acknowledged > 0,
        "the kills came before any request was acknowledged"
    );
    drop(server);
    let connection = rusqlite::Connection::open(data_dir.join("tracehouse.db")).unwrap();
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
