//! Ingest routes: span logs (`/v1/traces/ingest` and the OpenAI-agents variant), OTLP/HTTP
//! (`/v1/traces`, `/v2/traces`) and the logging API's create (`/request-logs/`); `otlp` is the
//! export both OTLP transports share.

pub(crate) mod body;
pub(crate) mod model;
pub(crate) mod otlp;
mod request_logs;
mod rest_handler;

use axum::Router;
use axum::routing::post;

use crate::{AppState, routes};

/// The span-log and OTLP routes, under every prefix clients use.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for path in ["/v1/traces/ingest", "/openai/v1/traces/ingest"] {
        for variant in routes::variants(path) {
            router = router.route(&variant, post(rest_handler::ingest_span_logs));
        }
    }
    for path in ["/request-logs", "/request-logs/create"] {
        for variant in routes::variants(path) {
            router = router.route(&variant, post(request_logs::create_request_logs));
        }
    }
    for path in ["/v1/traces", "/v2/traces"] {
        for variant in routes::variants(path) {
            router = router.route(&variant, post(rest_handler::ingest_otlp));
        }
    }
    router
}
