//! tracehouse's HTTP API: routing, authentication, limits and the mapping of errors to answers.
//!
//! # Layout
//! - [`router`] builds the whole API from an [`AppState`]; [`serve`] runs it on a listener.
//! - `ingest_api`: ingest routes (span logs, OTLP/HTTP, the logging API's create), and the
//!   OTLP export both OTLP transports share.
//! - `feedback_api`: what people add to stored logs (`PATCH` of feedback fields, scores).
//! - `grpc`: OTLP/gRPC ingest ([`grpc_service`], [`serve_grpc`] on a second listener).
//! - `read_api`: trace and span reads, exports, and the JSON shapes of spans and traces;
//!   [`span_to_json`] and [`ExportEncoder`] give the binary's offline `export` the same bytes.
//! - `redaction`: the configured redaction rules, applied to every written span between
//!   decoding and `write_spans` (ingest routes, OTLP/gRPC, log updates and scores).
//! - `auth`: API key extraction; `error`: `ApiError` and its HTTP mapping.
//! - `ui`: the web trace viewer, embedded HTML/CSS/JS served at `/` and under `/ui/`.
//!
//! Architecture invariant: OTLP types are named only in `grpc` (the gRPC service's messages);
//! every OTLP body is decoded by `tracehouse-ingest`.
//! Architecture invariant: this crate holds an `Arc<dyn SpanStore>` and never names a backend.
//! It binds no socket and reads no environment: the binary hands it a listener and a config.

mod auth;
mod error;
mod feedback_api;
mod groups_api;
mod grpc;
mod guard;
mod ingest_api;
mod read_api;
mod redaction;
mod routes;
mod ui;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use tracehouse_core::{PriceTable, Span, SpanStore, Timestamp};
use tracehouse_ingest::redact::Redaction;

pub use auth::{AdminKey, AnyKey, IngestKey, ReadKey};
pub use error::ApiError;
pub use grpc::{GrpcService, grpc_service, serve_grpc};
pub use guard::Metrics;
pub use read_api::export::{ExportEncoder, ExportError, ExportFormat};

/// What one request, and all of them together, may use. Together with the store's bounded
/// write queue these bound the server's memory: at most `max_in_flight_requests` bodies of at
/// most `max_inflated_bytes` each are held at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted, as sent (compressed or not). Default 32 MiB.
    pub max_body_bytes: usize,
    /// Largest body after gzip inflation. Default 256 MiB.
    pub max_inflated_bytes: usize,
    /// Most items (spans) one ingest request may carry (413 above). Default and most: 100,000.
    pub max_spans_per_request: usize,
    /// Largest total size of a request's header names and values (431 above). Default 64 KiB.
    pub max_header_bytes: usize,
    /// Requests handled at once; more are answered 503 with `Retry-After`. Default 64.
    pub max_in_flight_requests: usize,
    /// Time a client has to send its whole body (408 after). Default 60 s.
    pub request_body_timeout: std::time::Duration,
    /// Requests per second per API key (token bucket); `None`: unlimited (the default).
    pub rate_limit_per_second: Option<u32>,
    /// Requests a key may send at once before the rate applies; `None`: one second's worth.
    pub rate_limit_burst: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_inflated_bytes: 256 * 1024 * 1024,
            max_spans_per_request: tracehouse_ingest::spanlog::MAX_ITEMS_PER_REQUEST,
            max_header_bytes: 64 * 1024,
            max_in_flight_requests: 64,
            request_body_timeout: std::time::Duration::from_secs(60),
            rate_limit_per_second: None,
            rate_limit_burst: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where spans and keys live.
    pub store: Arc<dyn SpanStore>,
    /// Prices for spans that carry tokens but no cost.
    pub prices: Arc<PriceTable>,
    pub(crate) limits: Limits,
    /// Cross-origin browser access: `None` (the default) sends no CORS headers at all.
    pub(crate) cors_origins: Option<Vec<String>>,
    pub(crate) guard: Arc<guard::Guard>,
    /// When this server last recorded each key's use.
    pub(crate) key_uses: Arc<auth::KeyUses>,
    /// Redaction rules applied to spans before they are written; `None`: none configured.
    pub(crate) redaction: Option<Arc<Redaction>>,
    /// How long a span may run before reads show it (and its trace) as `abandoned`.
    pub running_timeout: std::time::Duration,
}

/// `--running-timeout`'s default: a day.
pub const DEFAULT_RUNNING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

impl AppState {
    /// State with the builtin price table and default limits.
    pub fn new(store: Arc<dyn SpanStore>) -> Self {
        Self::with_limits(store, Limits::default(), Arc::new(Metrics::new()))
    }

    /// State with these limits, recording into `metrics` (which the store may also be
    /// reporting its commits to).
    pub fn with_limits(store: Arc<dyn SpanStore>, limits: Limits, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            prices: Arc::new(PriceTable::builtin()),
            guard: Arc::new(guard::Guard::new(&limits, metrics)),
            limits,
            cors_origins: None,
            key_uses: Arc::new(auth::KeyUses::default()),
            redaction: None,
            running_timeout: DEFAULT_RUNNING_TIMEOUT,
        }
    }

    /// Which running spans reads show as abandoned, as of now.
    pub(crate) fn running_clock(&self) -> read_api::model::RunningClock {
        let timeout = i64::try_from(self.running_timeout.as_nanos()).unwrap_or(i64::MAX);
        read_api::model::RunningClock {
            abandoned_before: Timestamp::from_unix_nanos(
                now().unix_nanos().saturating_sub(timeout),
            ),
        }
    }

    /// Applies these redaction rules to every span before it is stored: on every ingest route,
    /// OTLP/gRPC, and the updates of stored logs (metadata, note, scores).
    pub fn with_redaction(mut self, redaction: Arc<Redaction>) -> Self {
        self.redaction = Some(redaction);
        self
    }

    /// Allows browsers on these origins (`*` for any) to call the API.
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = Some(origins);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

pub(crate) fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_nanos(nanos)
}

/// One span as the read API returns it (`/api/request-logs/{id}/`, list results): the content
/// as sent, then every typed field, `timestamp` repeated as `end_time`, and `times_inferred: true`
/// on spans that carried no time. Exports write exactly this, and `span_from_log` reads it back
/// to the same span, so export, import and export again gives the same bytes.
pub fn span_to_json(span: &Span) -> Map<String, Value> {
    read_api::model::span_json(span)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "store": state.store.describe(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// The OpenAPI description of every route, written by hand beside the routes it describes.
const OPENAPI_DOCUMENT: &str = include_str!("../assets/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::CONTENT_ENCODING,
            axum::http::HeaderName::from_static("x-api-key"),
        ]);
    if origins.iter().any(|origin| origin == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let allowed: Vec<axum::http::HeaderValue> = origins
        .iter()
        .filter_map(|origin| axum::http::HeaderValue::from_str(origin).ok())
        .collect();
    layer.allow_origin(AllowOrigin::list(allowed))
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let body_timeout = state.limits.request_body_timeout;
    let cors = state.cors_origins.as_deref().map(cors_layer);
    let router = Router::new()
        .route("/healthz", get(health))
        .route("/api/healthz", get(health))
        .route("/metrics", get(guard::metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/openapi.json", get(openapi))
        .merge(ingest_api::router())
        .merge(read_api::router())
        .merge(feedback_api::router())
        .merge(groups_api::router())
        .merge(ui::router())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(TraceLayer::new_for_http());
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (their writes commit before they are answered).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
