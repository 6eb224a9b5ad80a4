//! Read routes: traces and spans as the vendor's API returns them.

pub(crate) mod export;
mod metrics;
pub(crate) mod model;
pub(crate) mod params;
mod rest_handler;

pub(crate) use rest_handler::{ListRequest, resolve_span};

use axum::Router;
use axum::routing::{get, patch};

use crate::{AppState, routes};

/// The read routes, with and without the `/api` prefix.
pub(crate) fn router() -> Router<AppState> {
    use rest_handler::*;
    let table = [
        ("/traces/list", get(list_traces).post(list_traces)),
        // A static segment wins over `{trace_id}` in axum's router, so this never reads as a
        // trace id.
        (
            "/traces/export",
            get(export::export_spans).post(export::export_spans),
        ),
        (
            "/traces/{trace_id}",
            get(get_trace).post(get_trace).delete(delete_trace),
        ),
        ("/request-logs/list", get(list_spans).post(list_spans)),
        (
            "/request-logs/summary",
            get(summarize_spans).post(summarize_spans),
        ),
        (
            "/request-logs/batch-update",
            patch(crate::feedback_api::updates::batch_update_logs),
        ),
        (
            "/request-logs/{span_id}",
            get(get_span).patch(crate::feedback_api::updates::update_log),
        ),
        ("/projects/current", get(current_project)),
        (
            "/metrics/timeseries",
            get(metrics::timeseries).post(metrics::timeseries),
        ),
        ("/metrics/top", get(metrics::top).post(metrics::top)),
    ];
    let mut router = Router::new();
    for (path, handler) in table {
        for variant in routes::variants(path) {
            router = router.route(&variant, handler.clone());
        }
    }
    router
}
