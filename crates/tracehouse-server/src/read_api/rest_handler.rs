//! Handlers of the read routes.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value};
use tracehouse_core::TraceId;

use super::model::trace_json;
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;

/// `GET /api/traces/{trace_unique_id}/`: one trace of the key's project with its span tree.
pub(super) async fn get_trace(
    State(state): State<AppState>,
    Authenticated(project): Authenticated,
    Path(trace_id): Path<String>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let not_found = || ApiError::NotFound(format!("trace {trace_id:?} not found"));
    let id = TraceId::try_from(trace_id.as_str()).map_err(|_| not_found())?;
    match state.store.get_trace(project.id, &id).await? {
        Some(trace) => Ok(Json(trace_json(&trace))),
        None => Err(not_found()),
    }
}
