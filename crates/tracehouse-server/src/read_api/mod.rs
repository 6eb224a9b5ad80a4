//! Read routes: traces and spans as the vendor's API returns them.

pub(crate) mod model;
mod rest_handler;

use axum::Router;
use axum::routing::get;

use crate::{AppState, routes};

/// The read routes, with and without the `/api` prefix.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for variant in routes::variants("/traces/{trace_id}") {
        router = router.route(&variant, get(rest_handler::get_trace).post(rest_handler::get_trace));
    }
    router
}
