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

use tracehouse_core::Project;
use tracehouse_ingest::Rejection;

use crate::error::ApiError;
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

/// Writes a batch's valid spans to `project`, returning once they are committed, and counts
/// what was taken and refused (by field) in the server's metrics: every ingest route's last
/// step. Answers how many spans were stored, and the refusals.
pub(super) async fn commit_batch(
    state: &AppState,
    project: &Project,
    spans: Vec<tracehouse_core::Span>,
    rejected: Vec<Rejection>,
) -> Result<(usize, Vec<Rejection>), ApiError> {
    let accepted = spans.len();
    if accepted > 0 {
        state.store.write_spans(project.id, spans).await?;
    }
    state
        .guard
        .metrics
        .spans_ingested(accepted, rejected.iter().map(|r| r.field.as_str()));
    if !rejected.is_empty() {
        tracing::debug!(project = %project.name, accepted, rejected = rejected.len(), "items of a batch rejected");
    }
    Ok((accepted, rejected))
}

/// The status and message of a batch answer: 200 when every item was stored, 207 when some,
/// 400 when none; `verb` and `noun` say what storing means for the route ("ingested spans").
pub(super) fn batch_status(
    accepted: usize,
    rejected: usize,
    verb: &str,
    noun: &str,
) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    match (accepted, rejected) {
        (_, 0) => (StatusCode::OK, format!("{verb} {accepted} {noun}")),
        (0, bad) => (
            StatusCode::BAD_REQUEST,
            format!("no {noun} {verb}: all {bad} items were rejected"),
        ),
        (_, bad) => (
            StatusCode::MULTI_STATUS,
            format!("{verb} {accepted} {noun}, rejected {bad} items"),
        ),
    }
}
