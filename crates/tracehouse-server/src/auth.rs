//! API key authentication: every data route resolves the caller's key to a project.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tracehouse_core::{ApiKeyHash, Project};

use crate::AppState;
use crate::error::ApiError;

/// The project of the API key a request presented. Extracting it answers 401 when the key
/// is missing, unknown or revoked, before the body is read.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Project);

/// The key from `Authorization: Bearer <key>` or, as some OTLP exporters send it, `x-api-key`.
/// gRPC metadata are HTTP/2 headers, so OTLP/gRPC reads its key here too.
fn presented_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            ApiError::Unauthorized("Authorization header is not valid text".to_owned())
        })?;
        let (scheme, key) = value.trim().split_once(' ').unwrap_or(("", ""));
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(ApiError::Unauthorized(
                "Authorization header must be \"Bearer <api key>\"".to_owned(),
            ));
        }
        return Ok(key.trim());
    }
    if let Some(value) = headers.get("x-api-key") {
        return value
            .to_str()
            .map(str::trim)
            .map_err(|_| ApiError::Unauthorized("x-api-key header is not valid text".to_owned()));
    }
    Err(ApiError::Unauthorized(
        "missing API key: send \"Authorization: Bearer <api key>\" (create one with `tracehouse keys create`)".to_owned(),
    ))
}

/// The project of the key in `headers`, after taking one request from the key's rate limit.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Project, ApiError> {
    let key = ApiKeyHash::of_secret(presented_key(headers)?);
    match state.store.authenticate(&key).await? {
        Some(project) => {
            state.guard.check_rate(&key)?;
            Ok(project)
        }
        None => Err(ApiError::Unauthorized(
            "invalid or revoked API key".to_owned(),
        )),
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers).await.map(Authenticated)
    }
}
