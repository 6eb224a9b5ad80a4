//! Shared test harness: a real server on an ephemeral port over a temporary SQLite store.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tracehouse_core::{ProjectName, SpanStore, StoreObserver};
use tracehouse_server::{AppState, Limits, Metrics};
use tracehouse_store::{SqliteConfig, SqliteStore};

/// Path of a shared fixture captured from the vendor's clients.
pub(crate) fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(name)
}

pub(crate) fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub(crate) fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// An in-process server; dropped, it shuts down.
pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) key: String,
    pub(crate) store: Arc<dyn SpanStore>,
    pub(crate) client: reqwest::Client,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with_limits(Limits::default()).await
    }

    pub(crate) async fn start_with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut config = SqliteConfig::in_data_dir(dir.path());
        config.observer = Some(Arc::clone(&metrics) as Arc<dyn StoreObserver>);
        let store: Arc<dyn SpanStore> = Arc::new(SqliteStore::open(config).unwrap());
        let key = store
            .create_key(&ProjectName::default_project(), "test")
            .await
            .unwrap()
            .secret;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::with_limits(Arc::clone(&store), limits, metrics);
        tokio::spawn(tracehouse_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            key,
            store,
            client: reqwest::Client::new(),
            _dir: dir,
            shutdown: Some(shutdown),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A key of another project, for isolation tests.
    pub(crate) async fn key_for(&self, project: &str) -> String {
        self.store
            .create_key(&project.parse().unwrap(), "other")
            .await
            .unwrap()
            .secret
    }

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url(path))
            .header("authorization", format!("Bearer {}", self.key))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.unwrap()).await
    }

    pub(crate) async fn ingest(&self, body: &Value) -> (StatusCode, Value) {
        self.post_raw(
            "/api/v1/traces/ingest",
            serde_json::to_vec(body).unwrap(),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// POSTs a JSON body with the server's key.
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    pub(crate) async fn get_with_key(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .header("authorization", format!("Bearer {key}"))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_with_key(path, &self.key).await
    }

    pub(crate) async fn trace(&self, trace_id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/traces/{trace_id}/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Status and JSON body; a non-JSON body fails the test, since every answer must be JSON.
pub(crate) async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("answer {status} is not JSON: {text}"))
    };
    (status, body)
}

/// Every span of a `span_tree`, depth first, as (span_unique_id, depth).
pub(crate) fn flatten_tree(nodes: &Value) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Value, usize)> = nodes
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|n| (n, 0))
        .collect();
    while let Some((node, depth)) = stack.pop() {
        out.push((node["span_unique_id"].as_str().unwrap().to_owned(), depth));
        stack.extend(
            node["children"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .map(|c| (c, depth + 1)),
        );
    }
    out
}

/// The node of `span_id` in a `span_tree`.
pub(crate) fn find_node<'a>(nodes: &'a Value, span_id: &str) -> Option<&'a Value> {
    let mut stack: Vec<&Value> = nodes.as_array()?.iter().collect();
    while let Some(node) = stack.pop() {
        if node["span_unique_id"] == span_id {
            return Some(node);
        }
        stack.extend(node["children"].as_array()?.iter());
    }
    None
}

/// The peak resident memory of a running process (`VmHWM`), in KiB; `None` once it has exited.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
