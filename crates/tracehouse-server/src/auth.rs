//! API key authentication: every data route resolves the caller's key to a project, and
//! checks that the key's scopes allow what the route does (each handler names the scope it
//! needs by the extractor it takes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tracehouse_core::{ApiKeyHash, KeyGrant, Project, Scope};

use crate::AppState;
use crate::error::ApiError;

/// The project of a key with the `ingest` scope (or `admin`): every ingest route. Extracting
/// it answers 401 when the key is missing, unknown or revoked, 403 when it lacks the scope,
/// before the body is read.
#[derive(Debug, Clone)]
pub struct IngestKey(pub Project);

/// The project of a key with the `read` scope (or `admin`): every read route.
#[derive(Debug, Clone)]
pub struct ReadKey(pub Project);

/// The project of a key with the `admin` scope: deletes, updates of logs, scores.
#[derive(Debug, Clone)]
pub struct AdminKey(pub Project);

/// What any valid key grants, whatever its scopes (`/api/projects/current/` tells a client
/// what it holds).
#[derive(Debug, Clone)]
pub struct AnyKey(pub KeyGrant);

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

/// How often a server records that a key was used (`keys list` shows it to the minute).
const KEY_USE_RECORD_INTERVAL: Duration = Duration::from_secs(60);
/// Keys whose last recorded use a server remembers; past it, it starts over.
const KEY_USES_REMEMBERED: usize = 10_000;

/// When this server last recorded each key's use, so it writes at most one row a minute per key.
#[derive(Debug, Default)]
pub(crate) struct KeyUses {
    recorded: Mutex<HashMap<ApiKeyHash, Instant>>,
}

impl KeyUses {
    /// Whether a use at `now` should be recorded; if so, remembers it as recorded.
    fn due(&self, key: &ApiKeyHash, now: Instant) -> bool {
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        if recorded
            .get(key)
            .is_some_and(|last| now.duration_since(*last) < KEY_USE_RECORD_INTERVAL)
        {
            return false;
        }
        if recorded.len() >= KEY_USES_REMEMBERED {
            recorded.clear();
        }
        recorded.insert(key.clone(), now);
        true
    }
}

/// What the key in `headers` grants, after taking one request from its rate limit; `needed`
/// is the scope the route requires (`None`: any valid key).
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    needed: Option<Scope>,
) -> Result<KeyGrant, ApiError> {
    let key = ApiKeyHash::of_secret(presented_key(headers)?);
    let Some(grant) = state.store.authenticate(&key).await? else {
        return Err(ApiError::Unauthorized(
            "invalid or revoked API key".to_owned(),
        ));
    };
    state.guard.check_rate(&key)?;
    if let Some(needed) = needed {
        if !grant.scopes.allow(needed) {
            return Err(ApiError::Forbidden(format!(
                "this key has the {} scope; this needs the {} scope (or admin): create a key \
                 with `tracehouse keys create --scope {}`",
                grant.scopes,
                needed.as_str(),
                needed.as_str()
            )));
        }
    }
    if state.key_uses.due(&key, Instant::now()) {
        let store = Arc::clone(&state.store);
        let at = crate::now();
        // Recording a use is bookkeeping: the request does not wait for it, and a failure
        // only leaves `keys list` a minute behind.
        tokio::spawn(async move {
            if let Err(error) = store.record_key_use(&key, at).await {
                tracing::debug!(error = %error, "could not record a key's use");
            }
        });
    }
    Ok(grant)
}

macro_rules! scoped_extractor {
    ($name:ident, $scope:expr) => {
        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                authenticate(state, &parts.headers, Some($scope))
                    .await
                    .map(|grant| $name(grant.project))
            }
        }
    };
}

scoped_extractor!(IngestKey, Scope::Ingest);
scoped_extractor!(ReadKey, Scope::Read);
scoped_extractor!(AdminKey, Scope::Admin);

impl FromRequestParts<AppState> for AnyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers, None).await.map(AnyKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_is_recorded_at_most_once_a_minute_per_key() {
        let uses = KeyUses::default();
        let (a, b) = (ApiKeyHash::of_secret("a"), ApiKeyHash::of_secret("b"));
        let start = Instant::now();
        assert!(uses.due(&a, start));
        assert!(!uses.due(&a, start + Duration::from_secs(59)));
        assert!(uses.due(&b, start + Duration::from_secs(59)));
        assert!(uses.due(&a, start + KEY_USE_RECORD_INTERVAL));
    }
}
