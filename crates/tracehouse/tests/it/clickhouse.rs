//! ClickHouse-only behaviour: the server going away mid-ingest, and the binary on a
//! `clickhouse://` store. (Everything both stores share runs in `ingest`, `otlp` and
//! `read_api` against both.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracehouse_server::Limits;
use tracehouse_store::{ClickHouseConfig, ClickHouseStore};

use crate::util::{
    Backend, TestServer, clickhouse_url, cluster_urls, drop_database, fresh_database,
};

/// A TCP proxy in front of ClickHouse that can be cut and restored, standing in for a
/// ClickHouse that stops and restarts (without stopping the server other tests share).
struct Switch {
    address: String,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Switch {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (accept_up, accept_connections) = (Arc::clone(&up), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    // Down: the connection is refused by closing it at once.
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                accept_connections
                    .lock()
                    .await
                    .push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
            }
        });
        Self {
            address,
            up,
            connections,
        }
    }

    /// ClickHouse "stops": open connections break, new ones are closed at once.
    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().await.drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn spans(trace: &str, count: usize) -> serde_json::Value {
    json!(
        (0..count)
            .map(
                |i| json!({"trace_unique_id": trace, "span_unique_id": format!("s{i}"),
                "start_time": "2025-06-01T00:00:00Z", "latency": 0.5, "model": "gpt-4o"})
            )
            .collect::<Vec<_>>()
    )
}

#[tokio::test]
async fn clickhouse_down_is_503_with_retry_after_and_nothing_acked_then_ingest_resumes() {
    let Some(url) = clickhouse_url() else { return };
    let switch = Switch::start(&url).await;
    let database = fresh_database();
    let mut config = ClickHouseConfig::new(format!("http://{}", switch.address), &database);
    config.timeout = std::time::Duration::from_secs(5);
    let store = ClickHouseStore::open(config).await.unwrap();
    let server = TestServer::start_with_store(Arc::new(store), Limits::default()).await;

    let (status, body) = server.ingest(&spans("before", 3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    switch.cut().await;
    for _ in 0..3 {
        let response = server
            .client
            .post(server.url("/api/v1/traces/ingest"))
            .bearer_auth(&server.key)
            .json(&spans("during", 5))
            .send()
            .await
            .unwrap();
        // Authentication reads ClickHouse too, so the answer is 503 whichever step failed.
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
    }
    let (status, _) = server.get("/api/traces/list/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    switch.restore();
    assert_eq!(
        server.get("/api/traces/during/").await.0,
        StatusCode::NOT_FOUND,
        "nothing of a refused request was stored"
    );
    let (status, body) = server.ingest(&spans("after", 4)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.trace("after").await["span_count"], 4);
    assert_eq!(server.trace("before").await["span_count"], 3);
    drop(server);
    drop_database(&url, &database);
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_at_start_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = ClickHouseConfig::new(format!("http://{address}"), "tracehouse");
    config.timeout = std::time::Duration::from_secs(2);
    let error = ClickHouseStore::open(config).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}

/// `engine_full` of every table in `database` on the node at `url`, by table name.
async fn engines(url: &str, database: &str) -> std::collections::BTreeMap<String, String> {
    let body = reqwest::Client::new()
        .post(format!("{url}/"))
        .body(format!(
            "SELECT name, engine_full FROM system.tables WHERE database = '{database}' FORMAT JSONEachRow"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                row["name"].as_str().unwrap().to_owned(),
                row["engine_full"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn spans_are_partitioned_by_day_and_index_their_traces_on_insert() {
    // Retention drops whole day partitions; a trace fetch reads whole granules.
    let backends = [
        clickhouse_url().map(Backend::ClickHouse),
        cluster_urls().map(Backend::Cluster),
    ];
    for backend in backends.into_iter().flatten() {
        let cluster = matches!(backend, Backend::Cluster(_));
        let server = TestServer::start_on(backend).await;
        let (nodes, database) = server.clickhouse_database().unwrap();
        let local = if cluster { "_local" } else { "" };
        for node in nodes {
            let tables = engines(node, database).await;
            let spans = &tables[&format!("span_versions{local}")];
            assert!(
                spans.contains(
                    "PARTITION BY toYYYYMMDD(toDateTime(intDiv(start_ns, 1000000000))) \
                     ORDER BY (project_id, trace_id, span_id) SETTINGS index_granularity = 512"
                ),
                "{node}: {spans}"
            );
            let starts = &tables[&format!("trace_starts{local}")];
            assert!(
                starts.contains(
                    "PARTITION BY toYYYYMMDD(toDateTime(intDiv(start_ns, 1000000000))) \
                     ORDER BY (project_id, start_ns, trace_id)"
                ),
                "{node}: {starts}"
            );
            assert!(
                tables.contains_key(&format!("trace_starts_writer{local}")),
                "{node}: the view writing trace starts"
            );
            for replaced in ["spans", "traces"] {
                assert!(!tables.contains_key(replaced), "{node}: {replaced} is gone");
            }
            if cluster {
                assert!(
                    tables["span_versions"].starts_with("Distributed("),
                    "{}",
                    tables["span_versions"]
                );
            }
        }
    }
}

/// Runs the built binary; (success, stdout, stderr).
fn tracehouse(args: &[&str]) -> (bool, Vec<u8>, String) {
    let output = std::process::Command::new(crate::cli::BIN)
        .args(args)
        .env_remove("TRACEHOUSE_DATA_DIR")
        .env_remove("TRACEHOUSE_STORE")
        .output()
        .unwrap();
    (
        output.status.success(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub(crate) fn export(store: &[&str], project: &str) -> Vec<u8> {
    let mut args = vec![
        "export",
        "--format",
        "jsonl",
        "--quiet",
        "--project",
        project,
    ];
    args.extend_from_slice(store);
    let (ok, stdout, stderr) = tracehouse(&args);
    assert!(ok, "export {store:?}: {stderr}");
    stdout
}

#[tokio::test]
async fn migrate_sqlite_to_clickhouse_and_back_exports_identically() {
    let Some(url) = clickhouse_url() else { return };
    let database = fresh_database();
    let clickhouse = format!(
        "clickhouse://{}/{database}",
        url.trim_start_matches("http://")
    );
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first_dir = first.path().to_str().unwrap();
    let second_dir = second.path().to_str().unwrap();

    // Two projects: the vendor's span-log captures (one with untimed spans) and the SDK's OTLP.
    for (project, fixture) in [
        ("default", "respan-logs-sample.json"),
        ("default", "respan-logs-data-wrapper-capture.json"),
        ("otlp", "otlp-json-sdk-capture.json"),
        ("otlp", "otlp-json-sample.json"),
    ] {
        let path = crate::util::fixture_path(fixture);
        let (ok, _, stderr) = tracehouse(&[
            "import",
            path.to_str().unwrap(),
            "--quiet",
            "--project",
            project,
            "--data-dir",
            first_dir,
        ]);
        assert!(ok, "import {fixture}: {stderr}");
    }

    let (ok, _, stderr) = tracehouse(&["migrate", "--from", first_dir, "--to", &clickhouse]);
    assert!(ok, "migrate to ClickHouse: {stderr}");
    assert!(stderr.contains("verified"), "{stderr}");
    let (ok, _, stderr) = tracehouse(&[
        "migrate",
        "--from",
        &clickhouse,
        "--to",
        second_dir,
        "--batch-size",
        "7",
    ]);
    assert!(ok, "migrate back: {stderr}");

    for project in ["default", "otlp"] {
        let original = export(&["--data-dir", first_dir], project);
        assert!(original.len() > 1000, "{project} exported too little");
        assert_eq!(
            String::from_utf8_lossy(&export(&["--store", &clickhouse], project)),
            String::from_utf8_lossy(&original),
            "{project}: ClickHouse export differs"
        );
        assert_eq!(
            String::from_utf8_lossy(&export(&["--data-dir", second_dir], project)),
            String::from_utf8_lossy(&original),
            "{project}: round-trip export differs"
        );
    }

    // Into a target that already holds other data, verification refuses to call it equal.
    let (ok, _, stderr) = tracehouse(&[
        "migrate",
        "--from",
        first_dir,
        "--to",
        second_dir,
        "--project",
        "default",
    ]);
    assert!(ok, "migrating the same spans again replaces them: {stderr}");
    drop_database(&url, &database);
}

#[tokio::test]
async fn the_binary_serves_and_manages_keys_on_a_clickhouse_store() {
    let Some(url) = clickhouse_url() else { return };
    let database = fresh_database();
    let store = format!(
        "clickhouse://{}/{database}",
        url.trim_start_matches("http://")
    );
    let dir = tempfile::tempdir().unwrap();
    let server = crate::cli::ServeProcess::start_with(
        &[
            std::ffi::OsStr::new("--store"),
            std::ffi::OsStr::new(&store),
        ],
        &dir.path().join("addr"),
    );
    let key = server
        .printed_key()
        .expect("a fresh ClickHouse store gets a first key");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v1/traces/ingest", server.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(crate::util::fixture_bytes("respan-logs-sample.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let list = crate::util::answer(
        client
            .get(format!("{}/api/traces/list/", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list.0, StatusCode::OK);
    assert_eq!(list.1["results"][0]["span_count"], 18);

    // Keys live in ClickHouse: created offline and usable at once; revoked offline, refused
    // once the server's cache of valid keys (10 s) lets go of it.
    let (ok, stdout, stderr) =
        tracehouse(&["keys", "create", "--project", "team", "--store", &store]);
    assert!(ok, "{stderr}");
    let second = String::from_utf8(stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let status = |key: String| {
        let request = client
            .get(format!("{}/api/traces/list/", server.base))
            .bearer_auth(key);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(second.clone()).await, StatusCode::OK);
    let (ok, listing, _) = tracehouse(&["keys", "list", "--store", &store]);
    assert!(ok);
    let listing = String::from_utf8(listing).unwrap();
    let row = listing.lines().find(|l| l.contains("team")).unwrap();
    let id = row.split_whitespace().next().unwrap().to_owned();
    let (ok, _, stderr) = tracehouse(&["keys", "revoke", &id, "--store", &store]);
    assert!(ok, "{stderr}");
    let revoked_at = std::time::Instant::now();
    while status(second.clone()).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(15),
            "a key revoked offline still works after 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(status(key).await, StatusCode::OK);
    drop(server);
    drop_database(&url, &database);
}
