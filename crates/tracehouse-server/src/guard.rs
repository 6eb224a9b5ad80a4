//! What every request passes before its handler: a request id, the header size limit, the bound
//! on requests in flight, and the metrics of `/metrics`. Per-key rate limits are applied where
//! the key is known, in `auth`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tracehouse_core::{ApiKeyHash, GroupCommit, StoreObserver};
use tracehouse_ingest::redact::RedactionCounts;
use tracing::Instrument;

use crate::error::ApiError;
use crate::{AppState, Limits};

tokio::task_local! {
    /// The id of the request being handled, for error bodies and logs.
    static REQUEST_ID: String;
}

/// The current request's id, inside a handler.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A client's own request id is kept when it is short, printable ASCII; otherwise one is made.
fn request_id_of(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("{:016x}", fastrand::u64(..)), str::to_owned)
}

/// The state every request shares: built once from the limits.
pub(crate) struct Guard {
    in_flight: Arc<Semaphore>,
    rate: Option<DefaultKeyedRateLimiter<ApiKeyHash>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Guard {
    pub(crate) fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let rate = limits
            .rate_limit_per_second
            .and_then(NonZeroU32::new)
            .map(|per_second| {
                let burst = limits
                    .rate_limit_burst
                    .and_then(NonZeroU32::new)
                    .unwrap_or(per_second);
                RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
            });
        Self {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight_requests.max(1))),
            rate,
            metrics,
        }
    }

    /// A slot among the requests in flight (HTTP and gRPC share them), held until dropped;
    /// `None` when all are taken.
    pub(crate) fn try_enter(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.in_flight).try_acquire_owned().ok()
    }

    /// Takes one request's worth from the key's token bucket, or says when to come back.
    pub(crate) fn check_rate(&self, key: &ApiKeyHash) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

/// Paths that must answer even when the server is saturated: liveness and metrics.
fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/api/healthz" | "/metrics")
}

/// The middleware: runs the request inside its id's scope, refuses oversized headers and
/// requests beyond the in-flight bound, and records the answer.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request_id_of(&request);
    let header_value = HeaderValue::from_str(&id).ok();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let guard = Arc::clone(&state.guard);
    let limit = state.limits.max_header_bytes;
    // Log lines of this request carry its id, the one its answer and error body show.
    let log_span = tracing::info_span!("request", request_id = %id);
    let mut response = REQUEST_ID
        .scope(
            id,
            async move {
                let header_bytes: usize = request
                    .headers()
                    .iter()
                    .map(|(name, value)| name.as_str().len() + value.len())
                    .sum();
                if header_bytes > limit {
                    return ApiError::HeadersTooLarge {
                        bytes: header_bytes,
                        limit,
                    }
                    .into_response();
                }
                let _permit = if is_exempt(request.uri().path()) {
                    None
                } else {
                    match guard.try_enter() {
                        Some(permit) => Some(permit),
                        None => {
                            return ApiError::Unavailable(
                                "too many requests in flight; retry shortly".to_owned(),
                            )
                            .into_response();
                        }
                    }
                };
                next.run(request).await
            }
            .instrument(log_span),
        )
        .await;
    if let Some(value) = header_value {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    state.guard.metrics.request_answered(
        route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    field: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedactionLabels {
    rule: String,
}

/// The server's own metrics, in Prometheus' text format at `/metrics`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    spans_accepted: Counter,
    spans_rejected: Family<RejectLabels, Counter>,
    redactions: Family<RedactionLabels, Counter>,
    commits: Counter,
    failed_commits: Counter,
    commit_seconds: Histogram,
    commit_requests: Histogram,
    commit_spans: Histogram,
    writer_queue: Gauge,
    database_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tracehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            request_seconds.clone(),
        );
        let spans_accepted = Counter::default();
        registry.register(
            "spans_accepted",
            "Spans validated and committed",
            spans_accepted.clone(),
        );
        let spans_rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "spans_rejected",
            "Items rejected by validation, by the field at fault",
            spans_rejected.clone(),
        );
        let redactions = Family::<RedactionLabels, Counter>::default();
        registry.register(
            "redactions",
            "Matches masked, hashed or dropped by the redaction rules before storing, by rule",
            redactions.clone(),
        );
        let commits = Counter::default();
        registry.register(
            "store_commits",
            "Group commits of the store's writer",
            commits.clone(),
        );
        let failed_commits = Counter::default();
        registry.register(
            "store_failed_commits",
            "Group commits that failed as a whole",
            failed_commits.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "store_commit_duration_seconds",
            "Time of one group commit",
            commit_seconds.clone(),
        );
        let commit_requests = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "store_commit_requests",
            "Requests answered per group commit",
            commit_requests.clone(),
        );
        let commit_spans = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register(
            "store_commit_spans",
            "Spans written per group commit",
            commit_spans.clone(),
        );
        let writer_queue = Gauge::default();
        registry.register(
            "store_writer_queue",
            "Requests waiting for the writer after the last commit",
            writer_queue.clone(),
        );
        let database_bytes = Gauge::default();
        registry.register(
            "store_database_bytes",
            "Size of the database after the last commit",
            database_bytes.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            spans_accepted,
            spans_rejected,
            redactions,
            commits,
            failed_commits,
            commit_seconds,
            commit_requests,
            commit_spans,
            writer_queue,
            database_bytes,
        }
    }

    pub(crate) fn request_answered(
        &self,
        route: String,
        method: String,
        status: u16,
        took: Duration,
    ) {
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Counts an ingest request's outcome.
    pub(crate) fn spans_ingested<'a>(
        &self,
        accepted: usize,
        rejected_fields: impl Iterator<Item = &'a str>,
    ) {
        self.spans_accepted.inc_by(accepted as u64);
        for field in rejected_fields {
            let field = if field.is_empty() { "(item)" } else { field };
            self.spans_rejected
                .get_or_create(&RejectLabels {
                    field: field.to_owned(),
                })
                .inc();
        }
    }

    /// Counts what the redaction rules of one request did.
    pub(crate) fn redacted(&self, counts: &RedactionCounts) {
        for (rule, matches) in counts.iter() {
            self.redactions
                .get_or_create(&RedactionLabels {
                    rule: rule.to_owned(),
                })
                .inc_by(matches);
        }
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl StoreObserver for Metrics {
    fn group_committed(&self, commit: &GroupCommit) {
        self.commits.inc();
        if commit.failed {
            self.failed_commits.inc();
        }
        self.commit_seconds.observe(commit.seconds);
        self.commit_requests.observe(commit.requests as f64);
        self.commit_spans.observe(commit.spans as f64);
        self.writer_queue
            .set(i64::try_from(commit.queued_after).unwrap_or(i64::MAX));
        if let Some(bytes) = commit.database_bytes {
            self.database_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}

/// `GET /metrics`: Prometheus text exposition. No key: it holds counts, never span data.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .guard
        .metrics
        .render()
        .map_err(|error| ApiError::Internal(format!("cannot render metrics: {error}")))?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
