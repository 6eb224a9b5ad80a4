//! tracehouse's HTTP API: routing, authentication, limits and the mapping of errors to answers.
//!
//! # Layout
//! - [`router`] builds the whole API from an [`AppState`]; [`serve`] runs it on a listener.
//! - `ingest_api`: span-log ingest routes.
//! - `read_api`: trace and span reads, exports, and the JSON shapes of spans and traces;
//!   [`span_to_json`] and [`ExportEncoder`] give the binary's offline `export` the same bytes.
//! - `auth`: API key extraction; `error`: `ApiError` and its HTTP mapping.
//! - `ui`: the web trace viewer, embedded HTML/CSS/JS served at `/` and under `/ui/`.
//!
//! Architecture invariant: this crate holds an `Arc<dyn SpanStore>` and never names a backend.
//! It binds no socket and reads no environment: the binary hands it a listener and a config.

mod auth;
mod error;
mod ingest_api;
mod read_api;
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
use tower_http::trace::TraceLayer;
use tracehouse_core::{PriceTable, Span, SpanStore, Timestamp};

pub use auth::Authenticated;
pub use error::ApiError;
pub use read_api::export::{ExportEncoder, ExportError, ExportFormat};

/// Request size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted, as sent (compressed or not). Default 32 MiB.
    pub max_body_bytes: usize,
    /// Largest body after gzip inflation. Default 256 MiB.
    pub max_inflated_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_inflated_bytes: 256 * 1024 * 1024,
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
    /// Request size limits.
    pub limits: Limits,
}

impl AppState {
    /// State with the builtin price table and default limits.
    pub fn new(store: Arc<dyn SpanStore>) -> Self {
        Self {
            store,
            prices: Arc::new(PriceTable::builtin()),
            limits: Limits::default(),
        }
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

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/api/healthz", get(health))
        .route("/openapi.json", get(openapi))
        .route("/api/openapi.json", get(openapi))
        .merge(ingest_api::router())
        .merge(read_api::router())
        .merge(ui::router())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
