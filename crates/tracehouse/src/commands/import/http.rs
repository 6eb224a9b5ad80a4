//! Sending batches to a running server: one span-log request per batch, retried with
//! exponential backoff while the server is busy or unreachable.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::StatusCode;
use serde::Deserialize;

/// Attempts per batch before the import gives up (the checkpoint keeps what was done).
const MAX_ATTEMPTS: u32 = 12;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// A batch must be committed within this; the server answers only after its commit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The ingest route's answer (200, 207, or 400 when every item was rejected).
#[derive(Debug, Deserialize)]
pub(super) struct IngestAnswer {
    pub(super) accepted: u64,
    #[serde(default)]
    pub(super) rejected: Vec<RejectedItem>,
}

/// One item the server rejected, by its index in the body.
#[derive(Debug, Deserialize)]
pub(super) struct RejectedItem {
    pub(super) index: usize,
    #[serde(default)]
    pub(super) field: String,
    #[serde(default)]
    pub(super) error: String,
}

/// Where batches go.
#[derive(Clone)]
pub(super) struct HttpTarget {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    key: String,
}

impl HttpTarget {
    pub(super) fn new(base: &str, key: String) -> anyhow::Result<Self> {
        let base = reqwest::Url::parse(base).with_context(|| format!("invalid --url {base:?}"))?;
        let endpoint = base
            .join("/api/v1/traces/ingest")
            .context("cannot build the ingest URL")?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            client,
            endpoint,
            key,
        })
    }

    /// The base URL, for the checkpoint's name.
    pub(super) fn describe(&self) -> String {
        self.endpoint.to_string()
    }

    /// Checks the URL and the key before reading anything, so a typo fails at once.
    pub(super) async fn check(&self) -> anyhow::Result<()> {
        let url = self
            .endpoint
            .join("/api/projects/current/")
            .context("cannot build the project URL")?;
        let response = self
            .client
            .get(url)
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.endpoint))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                bail!("the server at {} refused the API key", self.endpoint)
            }
            status => bail!("the server at {} answered {status}", self.endpoint),
        }
    }

    /// Sends one batch until the server acknowledges it. Only transient failures are retried
    /// (429, 5xx, transport errors): after any other answer the batch is either acknowledged
    /// or the import stops, so an acknowledged batch is never sent twice.
    pub(super) async fn send(&self, body: Bytes) -> anyhow::Result<IngestAnswer> {
        let mut backoff = FIRST_BACKOFF;
        let mut last_failure = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let response = self
                .client
                .post(self.endpoint.clone())
                .bearer_auth(&self.key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    last_failure = format!("{error}");
                    tracing::debug!(attempt, error = %error, "ingest request failed; retrying");
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                // Honour the server's own estimate when it is longer than ours.
                if let Some(wait) = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok())
                {
                    backoff = backoff.max(Duration::from_secs(wait)).min(MAX_BACKOFF);
                }
                last_failure = format!("the server answered {status}");
                tracing::debug!(attempt, %status, "ingest request refused for now; retrying");
                continue;
            }
            let text = match response.text().await {
                Ok(text) => text,
                Err(error) => {
                    // The answer was lost on the way: nothing says the batch was stored, and
                    // sending it again is safe (a span sent twice replaces itself).
                    last_failure = format!("{error}");
                    continue;
                }
            };
            return match status {
                StatusCode::OK | StatusCode::MULTI_STATUS => serde_json::from_str(&text)
                    .with_context(|| format!("unexpected answer from the server: {text}")),
                StatusCode::BAD_REQUEST => match serde_json::from_str::<IngestAnswer>(&text) {
                    Ok(answer) => Ok(answer),
                    Err(_) => bail!("the server refused a batch: {text}"),
                },
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    bail!("the server refused the API key: {text}")
                }
                StatusCode::PAYLOAD_TOO_LARGE => {
                    bail!("a batch is larger than the server accepts: lower --batch-size ({text})")
                }
                other => bail!("the server answered {other}: {text}"),
            };
        }
        bail!("giving up on a batch after {MAX_ATTEMPTS} attempts: {last_failure}")
    }
}
