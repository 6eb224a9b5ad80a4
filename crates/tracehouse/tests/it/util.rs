//! Shared test harness: a real server on an ephemeral port over a temporary SQLite store, or
//! over a fresh database on the ClickHouse server named by `TRACEHOUSE_CLICKHOUSE_URL`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tracehouse_core::{ProjectName, SpanStore, StoreObserver};
use tracehouse_ingest::redact::Redaction;
use tracehouse_server::{AppState, Limits, Metrics};
use tracehouse_store::{ClickHouseConfig, ClickHouseStore, SqliteConfig, SqliteStore};

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

/// The ClickHouse server's URL from `TRACEHOUSE_CLICKHOUSE_URL`. Without it ClickHouse tests
/// are skipped with a line on stderr, except under CI (`CI=true`) or
/// `TRACEHOUSE_CLICKHOUSE_TESTS=required` (as `scripts/test` sets), where they fail.
pub(crate) fn clickhouse_url() -> Option<String> {
    env_or_skip("TRACEHOUSE_CLICKHOUSE_URL").map(|url| url.trim_end_matches('/').to_owned())
}

/// The nodes of the 2-shard test cluster `tracehouse`, from `TRACEHOUSE_CLICKHOUSE_CLUSTER_URLS`
/// (comma-separated HTTP URLs), with the same skip-or-fail rule.
pub(crate) fn cluster_urls() -> Option<Vec<String>> {
    env_or_skip("TRACEHOUSE_CLICKHOUSE_CLUSTER_URLS").map(|urls| {
        urls.split(',')
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .collect()
    })
}

fn env_or_skip(variable: &str) -> Option<String> {
    if let Ok(value) = std::env::var(variable) {
        if !value.trim().is_empty() {
            return Some(value.trim().to_owned());
        }
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("TRACEHOUSE_CLICKHOUSE_TESTS").is_ok_and(|v| v == "required");
    assert!(
        !required,
        "{variable} is not set but ClickHouse tests are required (CI=true or TRACEHOUSE_CLICKHOUSE_TESTS=required); run scripts/test, or start servers with scripts/clickhouse"
    );
    eprintln!(
        "skipping ClickHouse test: {variable} is not set (scripts/clickhouse start DIR / start-cluster DIR start servers)"
    );
    None
}

/// A database name no other test uses, so tests run in parallel on one server.
pub(crate) fn fresh_database() -> String {
    format!("th_it_{}_{}", std::process::id(), fastrand::u64(..))
}

/// Drops a ClickHouse database, best effort; plain HTTP/1.0 over a socket so it can run in
/// `Drop` without a runtime.
pub(crate) fn drop_database(url: &str, database: &str) {
    use std::io::Read;
    let Some(address) = url.strip_prefix("http://") else {
        return;
    };
    if let Ok(mut stream) = std::net::TcpStream::connect(address) {
        let body = format!("DROP DATABASE IF EXISTS {database}");
        let request = format!(
            "POST / HTTP/1.0\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

/// Which store a test server runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    /// A fresh database on this ClickHouse server (HTTP URL).
    ClickHouse(String),
    /// A fresh database on the 2-shard cluster `tracehouse` of these nodes.
    Cluster(Vec<String>),
}

impl Backend {
    /// ClickHouse at `TRACEHOUSE_CLICKHOUSE_URL`, or `None` when the test is to be skipped.
    pub(crate) fn clickhouse() -> Option<Self> {
        clickhouse_url().map(Backend::ClickHouse)
    }

    /// The cluster at `TRACEHOUSE_CLICKHOUSE_CLUSTER_URLS`, or `None` when skipped.
    pub(crate) fn cluster() -> Option<Self> {
        cluster_urls().map(Backend::Cluster)
    }
}

/// Runs each listed `async fn name(backend: Backend)` once per backend, as `sqlite::name`,
/// `clickhouse::name` and `cluster::name`: the same assertions hold for every store.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::util::Backend::Sqlite).await;
                }
            )*
        }
        mod clickhouse {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = crate::util::Backend::clickhouse() {
                        super::$name(backend).await;
                    }
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = crate::util::Backend::cluster() {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}
pub(crate) use on_every_store;

/// An in-process server; dropped, it shuts down.
pub(crate) struct TestServer {
    pub(crate) base: String,
    /// The OTLP/gRPC listener, as `http://127.0.0.1:PORT`.
    pub(crate) grpc_base: String,
    pub(crate) key: String,
    pub(crate) store: Arc<dyn SpanStore>,
    pub(crate) client: reqwest::Client,
    _dir: tempfile::TempDir,
    /// The ClickHouse nodes and database to drop afterwards.
    clickhouse: Option<(Vec<String>, String)>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with_limits(Limits::default()).await
    }

    pub(crate) async fn start_on(backend: Backend) -> Self {
        Self::start_redacting(backend, None).await
    }

    /// A server on `backend` that applies these redaction rules to every span it stores.
    pub(crate) async fn start_redacting(
        backend: Backend,
        redaction: Option<Arc<Redaction>>,
    ) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let metrics = Arc::new(Metrics::new());
                let mut config = SqliteConfig::in_data_dir(dir.path());
                config.observer = Some(Arc::clone(&metrics) as Arc<dyn StoreObserver>);
                let store: Arc<dyn SpanStore> = Arc::new(SqliteStore::open(config).unwrap());
                let mut server =
                    Self::start_with_everything(store, Limits::default(), metrics, redaction).await;
                server._dir = dir;
                server
            }
            Backend::ClickHouse(url) => {
                let database = fresh_database();
                let store =
                    ClickHouseStore::open(ClickHouseConfig::new(url.clone(), database.clone()))
                        .await
                        .unwrap();
                let mut server = Self::start_with_everything(
                    Arc::new(store),
                    Limits::default(),
                    Arc::new(Metrics::new()),
                    redaction,
                )
                .await;
                server.clickhouse = Some((vec![url], database));
                server
            }
            Backend::Cluster(urls) => {
                let database = fresh_database();
                let mut config = ClickHouseConfig::new(urls[0].clone(), database.clone());
                config.cluster = Some("tracehouse".to_owned());
                config.other_nodes = urls[1..].to_vec();
                let store = ClickHouseStore::open(config).await.unwrap();
                let mut server = Self::start_with_everything(
                    Arc::new(store),
                    Limits::default(),
                    Arc::new(Metrics::new()),
                    redaction,
                )
                .await;
                server.clickhouse = Some((urls, database));
                server
            }
        }
    }

    pub(crate) async fn start_with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut config = SqliteConfig::in_data_dir(dir.path());
        config.observer = Some(Arc::clone(&metrics) as Arc<dyn StoreObserver>);
        let store: Arc<dyn SpanStore> = Arc::new(SqliteStore::open(config).unwrap());
        let mut server = Self::start_with_store_and_metrics(store, limits, metrics).await;
        server._dir = dir;
        server
    }

    /// A server over any store.
    pub(crate) async fn start_with_store(store: Arc<dyn SpanStore>, limits: Limits) -> Self {
        Self::start_with_store_and_metrics(store, limits, Arc::new(Metrics::new())).await
    }

    async fn start_with_store_and_metrics(
        store: Arc<dyn SpanStore>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::start_with_everything(store, limits, metrics, None).await
    }

    async fn start_with_everything(
        store: Arc<dyn SpanStore>,
        limits: Limits,
        metrics: Arc<Metrics>,
        redaction: Option<Arc<Redaction>>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = store
            .create_key(
                &ProjectName::default_project(),
                "test",
                tracehouse_core::Scopes::ADMIN,
            )
            .await
            .unwrap()
            .secret;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_base = format!("http://{}", grpc_listener.local_addr().unwrap());
        let shutdown = tokio::sync::watch::Sender::new(false);
        let stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let mut state = AppState::with_limits(Arc::clone(&store), limits, metrics);
        if let Some(redaction) = redaction {
            state = state.with_redaction(redaction);
        }
        tokio::spawn(tracehouse_server::serve_grpc(
            grpc_listener,
            state.clone(),
            stopped(shutdown.subscribe()),
        ));
        tokio::spawn(tracehouse_server::serve(
            listener,
            state,
            stopped(shutdown.subscribe()),
        ));
        Self {
            base,
            grpc_base,
            key,
            store,
            client: reqwest::Client::new(),
            _dir: dir,
            clickhouse: None,
            shutdown: Some(shutdown),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The ClickHouse nodes and the database of this server's store, if it is ClickHouse.
    pub(crate) fn clickhouse_database(&self) -> Option<(&[String], &str)> {
        self.clickhouse
            .as_ref()
            .map(|(nodes, database)| (nodes.as_slice(), database.as_str()))
    }

    /// A key of another project, for isolation tests.
    /// A new key of this server's project with these scopes (`"read"`, `"ingest,read"`).
    pub(crate) async fn key_with_scopes(&self, scopes: &str) -> String {
        self.store
            .create_key(
                &tracehouse_core::ProjectName::default_project(),
                scopes,
                scopes.parse().unwrap(),
            )
            .await
            .unwrap()
            .secret
    }

    pub(crate) async fn key_for(&self, project: &str) -> String {
        self.store
            .create_key(
                &project.parse().unwrap(),
                "other",
                tracehouse_core::Scopes::ADMIN,
            )
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

    /// Sends a JSON body with the server's key.
    pub(crate) async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// POSTs a JSON body with the server's key.
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// PATCHes a JSON body with the server's key.
    pub(crate) async fn patch_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PATCH, path, body).await
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

    /// The server's `/metrics` page (Prometheus text; no key needed).
    pub(crate) async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
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
            let _ = shutdown.send(true);
        }
        if let Some((urls, database)) = self.clickhouse.take() {
            for url in urls {
                drop_database(&url, &database);
            }
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
