//! The harness: a real server over a temporary SQLite store, a chromedriver of our own on a free
//! loopback port, and small helpers that wait for the page instead of sleeping.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tracehouse_core::{ProjectName, SpanStore};
use tracehouse_server::AppState;
use tracehouse_store::{SqliteConfig, SqliteStore};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a condition on the page may take before the test fails.
const PAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// An in-process server; dropped, it shuts down.
pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) key: String,
    store: Arc<dyn SpanStore>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SpanStore> =
            Arc::new(SqliteStore::open(SqliteConfig::in_data_dir(dir.path())).unwrap());
        let key = store
            .create_key(
                &ProjectName::default_project(),
                "browser",
                tracehouse_core::Scopes::ADMIN,
            )
            .await
            .unwrap()
            .secret;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tracehouse_server::serve(
            listener,
            AppState::new(Arc::clone(&store)),
            async move {
                let _ = stopped.await;
            },
        ));
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

    /// A new key of the project with these scopes (`"read"`, `"ingest"`).
    pub(crate) async fn key_with_scopes(&self, scopes: &str) -> String {
        self.store
            .create_key(
                &ProjectName::default_project(),
                scopes,
                scopes.parse().unwrap(),
            )
            .await
            .unwrap()
            .secret
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends span logs through the ingest route, as a client would; every span must be accepted.
    pub(crate) async fn ingest(&self, spans: &[Value]) {
        self.page_info().ingest_with(&self.client, spans).await;
    }

    /// What the page under test needs to know about the server.
    pub(crate) fn page_info(&self) -> Site {
        Site {
            base: self.base.clone(),
            key: self.key.clone(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The server's address and key, handed to the test body that drives the browser.
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) base: String,
    pub(crate) key: String,
}

impl Site {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends span logs through the ingest route (from inside a browser test, while the page
    /// is open); every span must be accepted.
    pub(crate) async fn ingest(&self, spans: &[Value]) {
        self.ingest_with(&reqwest::Client::new(), spans).await;
    }

    async fn ingest_with(&self, client: &reqwest::Client, spans: &[Value]) {
        // Big seeds go in several requests so no single body nears the size limit.
        for chunk in spans.chunks(500) {
            let response = client
                .post(self.url("/api/v1/traces/ingest"))
                .bearer_auth(&self.key)
                .json(&chunk)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_eq!(status, reqwest::StatusCode::OK, "ingest failed: {body}");
        }
    }
}

/// Whether browser tests can run here. Without chromedriver they are skipped with a line on
/// stderr, unless `TRACEHOUSE_BROWSER_TESTS=required` (set by `scripts/test`, which installs the
/// browser first) or `CI=true`: there a missing browser is a failure, not a skip.
pub(crate) fn browser_available(test: &str) -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let required = std::env::var("TRACEHOUSE_BROWSER_TESTS").is_ok_and(|v| v == "required")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    if required {
        panic!(
            "{CHROMEDRIVER} is missing: run scripts/browser-deps to install chromium and chromium-driver"
        );
    }
    eprintln!("skipping browser test {test}: {CHROMEDRIVER} is missing (run scripts/browser-deps)");
    false
}

/// One browser at a time: the machine has two cores, and parallel Chromiums make timings
/// flaky without testing anything more.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A chromedriver process of this test, in its own process group so that dropping it also
/// ends any browser it started.
struct Chromedriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
    log: PathBuf,
}

impl Chromedriver {
    async fn start() -> Self {
        use std::os::unix::process::CommandExt;

        let port = {
            let probe = StdListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {CHROMEDRIVER}: {e}"));
        let mut driver = Self {
            child,
            port,
            profile,
            log,
        };
        driver.wait_ready().await;
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let client = reqwest::Client::new();
        loop {
            if let Ok(response) = client.get(format!("{}/status", self.url())).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn session(&self) -> Client {
        let profile = self.profile.path().join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--window-size=1440,900",
                    "--force-prefers-reduced-motion",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("json! of an object is an object")
        };
        ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no browser session: {e}\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The session was closed already when the test got that far; this is the safety net
        // for a failed one, so no Chromium outlives its test.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `test` against a fresh headless Chromium, then closes the browser whether the test
/// passed or panicked, and passes the panic on.
pub(crate) async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _one = ONE_BROWSER.lock().await;
    let driver = Chromedriver::start().await;
    let client = driver.session().await;
    let outcome = tokio::spawn(test(client.clone())).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("browser test did not finish: {error}"),
        }
    }
}

/// Runs a script in the page and returns its value.
pub(crate) async fn js(client: &Client, script: &str, args: Vec<Value>) -> Value {
    client
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Number of elements matching `css`.
pub(crate) async fn count(client: &Client, css: &str) -> usize {
    let n = js(
        client,
        "return document.querySelectorAll(arguments[0]).length;",
        vec![json!(css)],
    )
    .await;
    usize::try_from(n.as_u64().unwrap()).unwrap()
}

/// The text of the first element matching `css` (`textContent`, so hidden text counts too).
pub(crate) async fn text(client: &Client, css: &str) -> String {
    let value = js(
        client,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        vec![json!(css)],
    )
    .await;
    value
        .as_str()
        .unwrap_or_else(|| panic!("no element matches {css}"))
        .to_owned()
}

/// The texts of every element matching `css`.
pub(crate) async fn texts(client: &Client, css: &str) -> Vec<String> {
    let value = js(
        client,
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
        vec![json!(css)],
    )
    .await;
    serde_json::from_value(value).unwrap()
}

/// Waits until `condition` (a script body returning a truthy value) holds.
pub(crate) async fn wait_until(client: &Client, what: &str, condition: &str, args: Vec<Value>) {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let value = js(client, condition, args.clone()).await;
        if value.as_bool() == Some(true) {
            return;
        }
        if Instant::now() > deadline {
            let url = client.current_url().await.map(|u| u.to_string());
            panic!("timed out waiting for {what} (last value {value}, page {url:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until exactly `n` elements match `css`.
pub(crate) async fn wait_count(client: &Client, css: &str, n: usize) {
    wait_until(
        client,
        &format!("{n} × {css}"),
        "return document.querySelectorAll(arguments[0]).length === arguments[1];",
        vec![json!(css), json!(n)],
    )
    .await;
}

/// Waits until an element matches `css`.
pub(crate) async fn wait_for(client: &Client, css: &str) {
    wait_until(
        client,
        css,
        "return document.querySelector(arguments[0]) !== null;",
        vec![json!(css)],
    )
    .await;
}

/// Clicks the first element matching `css`.
pub(crate) async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// Replaces the value of the input matching `css` by typing `value` into it.
pub(crate) async fn type_into(client: &Client, css: &str, value: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// The path and query of the page's URL.
pub(crate) async fn location(client: &Client) -> String {
    js(
        client,
        "return location.pathname + location.search;",
        vec![],
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

/// Opens the viewer and signs in with `key`, then waits for the list view.
pub(crate) async fn sign_in(client: &Client, site: &Site, path: &str) {
    client.goto(&site.url(path)).await.unwrap();
    wait_for(client, "#api-key").await;
    type_into(client, "#api-key", &site.key).await;
    click(client, "#sign-in button[type=submit]").await;
    wait_for(client, "#sign-out").await;
}

/// Saves a screenshot of the whole window as `target/ui-screenshots/<name>.png`.
pub(crate) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    // Let fonts and layout settle: a screenshot is for people to look at.
    js(
        client,
        "return document.fonts ? document.fonts.ready.then(() => true) : true;",
        vec![],
    )
    .await;
    let png = client.screenshot().await.unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}
