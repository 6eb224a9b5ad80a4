//! Retention through the built binary (issue 21): `projects set`/`list`, `retention run` on
//! SQLite and ClickHouse, and a soak of `serve` with 1-day retention whose SQLite file stays
//! bounded while back-dated spans keep arriving.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{ServeProcess, tracehouse};
use crate::clickhouse::export;
use crate::util::{clickhouse_url, drop_database, fresh_database};

const DAY_SECS: f64 = 86_400.0;

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A span log that started `days_ago` days ago and lasted a second.
fn span_log(trace: &str, span: &str, days_ago: f64, input: &str) -> Value {
    json!({
        "trace_unique_id": trace, "span_unique_id": span, "span_name": "call",
        "start_time": now_secs() - days_ago * DAY_SECS, "latency": 1.0,
        "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5,
        "input": input, "output": format!("answer to {input}"), "metadata": {"team": "a"},
    })
}

/// Imports span logs into a project through `tracehouse import`.
fn import(store: &[&str], project: &str, spans: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spans.jsonl");
    let lines: Vec<String> = spans.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let mut args = vec![
        "import",
        file.to_str().unwrap(),
        "--quiet",
        "--project",
        project,
    ];
    args.extend_from_slice(store);
    let (ok, _, stderr) = tracehouse(&args);
    assert!(ok, "import: {stderr}");
}

/// Each exported span of a project by `trace/span`.
fn exported(store: &[&str], project: &str) -> Vec<(String, Value)> {
    String::from_utf8(export(store, project))
        .unwrap()
        .lines()
        .map(|line| {
            let span: Value = serde_json::from_str(line).unwrap();
            let key = format!(
                "{}/{}",
                span["trace_unique_id"].as_str().unwrap(),
                span["span_unique_id"].as_str().unwrap()
            );
            (key, span)
        })
        .collect()
}

/// The whole offline workflow on one store: import back-dated spans, give a project its own
/// retention, list it, run retention and check what it printed and what is left.
fn projects_and_retention_run(store: &[&str]) {
    import(
        store,
        "support",
        &[
            span_log("ancient", "a", 10.0, "ancient secret"),
            span_log("ancient", "b", 9.5, "ancient child"),
            span_log("middle", "a", 3.0, "middle secret"),
            span_log("fresh", "a", 0.01, "fresh words"),
        ],
    );
    import(
        store,
        "keep",
        &[span_log("ancient", "a", 10.0, "kept forever")],
    );

    let mut set = vec!["projects", "set", "support", "--retention-days", "5"];
    set.extend_from_slice(store);
    let (ok, stdout, stderr) = tracehouse(&set);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        "project \"support\": retention 5 days, content retention the server's"
    );
    let mut set = vec![
        "projects",
        "set",
        "support",
        "--content-retention-days",
        "2",
    ];
    set.extend_from_slice(store);
    let (ok, stdout, _) = tracehouse(&set);
    assert!(ok);
    assert_eq!(
        stdout.trim(),
        "project \"support\": retention 5 days, content retention 2 days"
    );
    let mut bad = vec![
        "projects",
        "set",
        "support",
        "--retention-days",
        "2",
        "--content-retention-days",
        "2",
    ];
    bad.extend_from_slice(store);
    let (ok, _, stderr) = tracehouse(&bad);
    assert!(!ok);
    assert!(
        stderr.contains("must be shorter than retention"),
        "{stderr}"
    );

    let mut list = vec!["projects", "list"];
    list.extend_from_slice(store);
    let (ok, stdout, stderr) = tracehouse(&list);
    assert!(ok, "{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "PROJECT",
                "TRACES",
                "SPANS",
                "RETENTION",
                "CONTENT",
                "RETENTION"
            ],
            vec!["keep", "1", "1", "-", "-"],
            vec!["support", "3", "4", "5", "days", "2", "days"],
        ],
        "{stdout}"
    );

    let mut run = vec!["retention", "run"];
    run.extend_from_slice(store);
    let (ok, stdout, stderr) = tracehouse(&run);
    assert!(ok, "{stderr}");
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with(
            "project \"support\" (retention 5 days, content 2 days): removed 1 traces (2 spans), expired the content of 1 spans"
        ),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last().unwrap(),
        "removed 1 traces (2 spans), expired the content of 1 spans"
    );

    let support = exported(store, "support");
    let keys: Vec<&str> = support.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["fresh/a", "middle/a"]);
    let middle = &support[1].1;
    assert!(
        middle.get("input").is_none() && middle.get("output").is_none(),
        "{middle}"
    );
    assert!(middle["content_expired_at"].is_string(), "{middle}");
    assert_eq!(middle["metadata"], json!({"team": "a"}));
    assert_eq!(middle["prompt_tokens"], json!(10));
    assert_eq!(support[0].1["input"], json!("fresh words"));
    let keep = exported(store, "keep");
    assert_eq!(keep.len(), 1);
    assert_eq!(keep[0].1["input"], json!("kept forever"));

    // A second run finds nothing; a server-wide policy now reaches the other project.
    let (ok, stdout, _) = tracehouse(&run);
    assert!(ok);
    assert!(
        stdout.contains("removed 0 traces (0 spans), expired the content of 0 spans"),
        "{stdout}"
    );
    let mut everywhere = vec!["retention", "run", "--retention-days", "7"];
    everywhere.extend_from_slice(store);
    let (ok, stdout, _) = tracehouse(&everywhere);
    assert!(ok);
    assert!(
        stdout.contains(
            "project \"keep\" (retention 7 days, content forever): removed 1 traces (1 spans)"
        ),
        "{stdout}"
    );
    assert!(exported(store, "keep").is_empty());
}

#[test]
fn projects_set_and_retention_run_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    projects_and_retention_run(&["--data-dir", data_dir]);
}

#[test]
fn projects_set_and_retention_run_on_clickhouse() {
    let Some(url) = clickhouse_url() else { return };
    let database = fresh_database();
    let store = format!(
        "clickhouse://{}/{database}",
        url.trim_start_matches("http://")
    );
    projects_and_retention_run(&["--store", &store]);
    drop_database(&url, &database);
}

/// Text that does not compress, so the file grows with what is stored.
fn noise(seed: u64, bytes: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..bytes).map(|_| rng.alphanumeric()).collect()
}

/// Ingests back-dated spans at a steady rate into `serve --retention-days 1` and checks the
/// database file stops growing: every round's spans are removed by the background sweep and
/// their pages handed back, while the spans within the retention stay.
#[tokio::test]
async fn sqlite_file_stays_bounded_under_steady_ingest_with_one_day_retention() {
    const ROUNDS: usize = 12;
    const REQUESTS_PER_ROUND: usize = 5;
    const SPANS_PER_REQUEST: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start_with_flags(
        dir.path(),
        &[
            "--retention-days",
            "1",
            "--retention-interval-secs",
            "1",
            "--retention-batch",
            "200",
        ],
    );
    let key = server.printed_key().unwrap();
    let client = reqwest::Client::new();
    let database = dir.path().join("tracehouse.db");
    let mut sizes = Vec::new();
    let mut rates = Vec::new();
    for round in 0..ROUNDS {
        let started = Instant::now();
        for request in 0..REQUESTS_PER_ROUND {
            let spans: Vec<Value> = (0..SPANS_PER_REQUEST)
                .map(|index| {
                    let seed = (round * 1_000_000 + request * 1000 + index) as u64;
                    span_log(
                        &format!("old-{round}-{request}-{}", index / 10),
                        &format!("s{index}"),
                        2.0,
                        &noise(seed, 2000),
                    )
                })
                .chain(std::iter::once(span_log(
                    &format!("recent-{round}-{request}"),
                    "s",
                    0.001,
                    "recent",
                )))
                .collect();
            let response = client
                .post(format!("{}/api/v1/traces/ingest", server.base))
                .bearer_auth(&key)
                .json(&spans)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        }
        rates.push(
            (REQUESTS_PER_ROUND * (SPANS_PER_REQUEST + 1)) as f64 / started.elapsed().as_secs_f64(),
        );
        // Let a sweep (every second) and the checkpoint run.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sizes.push(std::fs::metadata(&database).unwrap().len());
    }
    eprintln!("database bytes after each round: {sizes:?}");
    eprintln!("ingest spans/s per round (sweeps running): {rates:?}");
    let ingested_bytes = (ROUNDS * REQUESTS_PER_ROUND * SPANS_PER_REQUEST * 2000) as u64;
    let early = sizes[..3].iter().copied().max().unwrap();
    let late = sizes[ROUNDS - 4..].iter().copied().max().unwrap();
    assert!(
        late <= early + early / 2,
        "the file kept growing: {sizes:?} (ingested {ingested_bytes} bytes of content)"
    );
    assert!(late < ingested_bytes / 3, "{sizes:?}");
    // What is within the retention stays: every recent trace, and none of the old ones.
    let (status, page) = {
        let response = client
            .get(format!("{}/api/traces/list/?page_size=1000", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        crate::util::answer(response).await
    };
    assert!(status.is_success(), "{page}");
    let ids: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| trace["trace_unique_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().filter(|id| id.starts_with("recent-")).count(),
        ROUNDS * REQUESTS_PER_ROUND,
        "{ids:?}"
    );
    assert!(
        ids.iter().filter(|id| id.starts_with("old-")).count()
            <= REQUESTS_PER_ROUND * SPANS_PER_REQUEST / 10,
        "{ids:?}"
    );
    assert!(server.terminate());
}
