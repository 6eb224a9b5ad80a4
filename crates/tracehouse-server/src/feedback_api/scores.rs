//! Scores, as the vendor's API documents them: `POST/GET /api/logs/{id}/scores/` and
//! `GET/PATCH/DELETE /api/logs/{id}/scores/{score_id}/`.
//!
//! A log holds at most one score per evaluator. Scores live in the span's content under
//! `scores`, keyed by evaluator (its slug, else its id), which is the shape the vendor's span
//! detail returns; writing the span again through `write_spans` keeps both stores and their
//! `scores__<evaluator>` filter index in step without a store method of their own.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tracehouse_core::ids::MAX_ID_LEN;
use tracehouse_core::spanlog::json_type_name;
use tracehouse_core::{LogId, Project, ProjectId, Span};

use crate::auth::{AdminKey, ReadKey};
use crate::error::ApiError;
use crate::read_api::resolve_span;
use crate::redaction::SpanRedactor;
use crate::{AppState, now};

/// The value fields of a score, and what each must be.
const VALUE_FIELDS: &[(&str, &str)] = &[
    ("numerical_value", "a number"),
    ("string_value", "a string"),
    ("boolean_value", "true or false"),
    ("categorical_value", "an array of strings"),
];

/// Most scores one log may hold.
const MAX_SCORES_PER_LOG: usize = 64;

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

/// Checks one field of a score body.
fn check_field(key: &str, value: &Value) -> Result<(), ApiError> {
    if value.is_null() {
        return Ok(());
    }
    let fits = match key {
        "numerical_value" => value.as_f64().is_some_and(f64::is_finite),
        "string_value" | "explanation" => value.is_string(),
        "boolean_value" | "is_passed" => value.is_boolean(),
        "categorical_value" => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        "evaluator_slug" | "evaluator_id" => value.as_str().is_some_and(|text| {
            !text.trim().is_empty()
                && text.len() <= MAX_ID_LEN
                && !text.chars().any(char::is_control)
        }),
        _ => {
            return Err(bad(format!(
                "{key} is not a score field: a score takes evaluator_slug or evaluator_id, \
                 any of numerical_value, string_value, boolean_value, categorical_value, and \
                 is_passed, explanation"
            )));
        }
    };
    if fits {
        return Ok(());
    }
    let expected = VALUE_FIELDS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, expected)| *expected)
        .unwrap_or(match key {
            "is_passed" => "true or false",
            "explanation" => "a string",
            _ => "a non-empty string without control characters",
        });
    Err(bad(format!(
        "{key} must be {expected}, got {}",
        json_type_name(value)
    )))
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(
            "body is empty: send a score, e.g. {\"evaluator_slug\": \"helpfulness\", \"numerical_value\": 4}".to_owned(),
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(bad(format!(
            "body must be a JSON object, got {}",
            json_type_name(&other)
        ))),
        Err(error) => Err(bad(format!("body is not valid JSON: {error}"))),
    }
}

fn has_value(score: &Map<String, Value>) -> bool {
    VALUE_FIELDS
        .iter()
        .any(|(name, _)| score.get(*name).is_some_and(|value| !value.is_null()))
}

fn no_value_error() -> ApiError {
    bad(
        "a score needs a value: numerical_value, string_value, boolean_value or categorical_value"
            .to_owned(),
    )
}

/// The scores a log holds, keyed by evaluator; a log whose client sent `scores` of another
/// shape cannot take API scores without losing what it sent.
fn scores_of(span: &Span) -> Result<Map<String, Value>, ApiError> {
    match span.content.get("scores") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(scores)) => Ok(scores.clone()),
        Some(other) => Err(bad(format!(
            "this log's scores field was sent as {} by its client; scores can only be added to \
             logs whose scores are an object keyed by evaluator",
            json_type_name(other)
        ))),
    }
}

fn set_scores(span: &mut Span, scores: Map<String, Value>) {
    if scores.is_empty() {
        span.content.shift_remove("scores");
    } else {
        span.content
            .insert("scores".to_owned(), Value::Object(scores));
    }
}

/// The evaluator key of a score and the score's derived fields, filled in place.
fn complete(score: &mut Map<String, Value>, log_id: &str) {
    tracehouse_core::score::complete_score(score, log_id);
}

/// Writes a changed span after the project's redaction rules, which reach the score text a
/// person sent (`string_value`, `explanation`) like any ingested text.
async fn store_span(state: &AppState, project: &Project, span: Span) -> Result<Span, ApiError> {
    let mut spans = SpanRedactor::for_project(state, &project.name)
        .apply_off_runtime(vec![span])
        .await?;
    let stored = spans
        .first()
        .cloned()
        .ok_or_else(|| ApiError::Internal("a redacted span went missing".to_owned()))?;
    state
        .store
        .write_spans(project.id, std::mem::take(&mut spans))
        .await?;
    Ok(stored)
}

/// The score under `key` as stored (after redaction), for the answer.
fn stored_score(span: &Span, key: &str) -> Value {
    span.content
        .get("scores")
        .and_then(|scores| scores.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The log of a path: its `id`, or a span id that names one span (`?trace_unique_id=`).
async fn log_of(
    state: &AppState,
    project: ProjectId,
    id: &str,
    query: &HashMap<String, String>,
) -> Result<(Span, String), ApiError> {
    let trace = query.get("trace_unique_id").map(String::as_str);
    let span = resolve_span(state, project, id, trace).await?;
    let log_id = LogId::of(&span.trace_id, &span.span_id).as_str().to_owned();
    Ok((span, log_id))
}

/// `POST /api/logs/{id}/scores/`: adds a score, or updates the log's score of the same
/// evaluator (`201` for a new score, `200` for an update), once committed.
pub(crate) async fn create_score(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    for (key, value) in &body {
        check_field(key, value)?;
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let (slug, evaluator_id) = (text("evaluator_slug"), text("evaluator_id"));
    let Some(evaluator) = slug.clone().or_else(|| evaluator_id.clone()) else {
        return Err(bad(
            "evaluator_slug is missing: name the evaluator by evaluator_slug or evaluator_id"
                .to_owned(),
        ));
    };
    if !has_value(&body) {
        return Err(no_value_error());
    }
    let (mut span, log_id) = log_of(&state, project.id, &id, &query).await?;
    let mut scores = scores_of(&span)?;
    let now = now().to_rfc3339();
    // The same evaluator, named by slug or by id, is one score.
    let existing = scores
        .iter()
        .find(|(key, score)| {
            **key == evaluator
                || (slug.is_some()
                    && score.get("evaluator_slug").and_then(Value::as_str) == slug.as_deref())
                || (evaluator_id.is_some()
                    && score.get("evaluator_id").and_then(Value::as_str) == evaluator_id.as_deref())
        })
        .map(|(key, score)| (key.clone(), score.clone()));
    let (key, mut score, status) = match existing {
        Some((key, Value::Object(mut score))) => {
            for (name, _) in VALUE_FIELDS {
                score.shift_remove(*name);
            }
            score.shift_remove("is_passed");
            (key, score, StatusCode::OK)
        }
        _ => {
            if scores.len() >= MAX_SCORES_PER_LOG {
                return Err(bad(format!(
                    "this log already has {MAX_SCORES_PER_LOG} scores, the most one log keeps"
                )));
            }
            let mut score = Map::new();
            score.insert(
                "id".to_owned(),
                json!(format!("{:032x}", fastrand::u128(..))),
            );
            score.insert("created_at".to_owned(), json!(now));
            (evaluator.clone(), score, StatusCode::CREATED)
        }
    };
    for (name, value) in body {
        score.insert(name, value);
    }
    score.insert("updated_at".to_owned(), json!(now));
    complete(&mut score, &log_id);
    scores.shift_remove(&key);
    scores.insert(key.clone(), Value::Object(score));
    set_scores(&mut span, scores);
    let stored = store_span(&state, &project, span).await?;
    Ok((status, Json(stored_score(&stored, &key))).into_response())
}

fn listing(span: &Span) -> Result<Vec<Value>, ApiError> {
    let mut scores: Vec<Value> = scores_of(span)?
        .into_iter()
        .map(|(_, score)| score)
        .collect();
    scores.sort_by(|a, b| {
        let created = |score: &Value| {
            score
                .get("created_at")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        created(a).cmp(&created(b))
    });
    Ok(scores)
}

/// `GET /api/logs/{id}/scores/`: the log's scores, oldest first, in the list envelope.
pub(crate) async fn list_scores(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (span, _) = log_of(&state, project.id, &id, &query).await?;
    let scores = listing(&span)?;
    Ok(Json(json!({
        "count": scores.len(),
        "next": null,
        "previous": null,
        "results": scores,
    })))
}

/// The evaluator key of the score with this id.
fn find_score(span: &Span, score_id: &str) -> Result<(Map<String, Value>, String), ApiError> {
    let scores = scores_of(span)?;
    let key = scores
        .iter()
        .find(|(_, score)| score.get("id").and_then(Value::as_str) == Some(score_id))
        .map(|(key, _)| key.clone())
        .ok_or_else(|| ApiError::NotFound(format!("score {score_id:?} not found on this log")))?;
    Ok((scores, key))
}

/// `GET /api/logs/{id}/scores/{score_id}/`.
pub(crate) async fn get_score(
    State(state): State<AppState>,
    ReadKey(project): ReadKey,
    Path((id, score_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (span, _) = log_of(&state, project.id, &id, &query).await?;
    let (scores, key) = find_score(&span, &score_id)?;
    Ok(Json(scores.get(&key).cloned().unwrap_or(Value::Null)))
}

/// `PATCH /api/logs/{id}/scores/{score_id}/`: changes a score's values (`null` clears one;
/// one must remain), `is_passed` or `explanation`; its evaluator stays.
pub(crate) async fn update_score(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
    Path((id, score_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = json_object(&body)?;
    for (key, value) in &body {
        if key == "evaluator_slug" || key == "evaluator_id" {
            return Err(bad(format!(
                "{key} cannot be changed: a score belongs to its evaluator; delete it and add \
                 one for the other evaluator"
            )));
        }
        check_field(key, value)?;
    }
    if body.is_empty() {
        return Err(bad(
            "nothing to update: send a value, is_passed or explanation".to_owned(),
        ));
    }
    let (mut span, log_id) = log_of(&state, project.id, &id, &query).await?;
    let (mut scores, key) = find_score(&span, &score_id)?;
    let Some(Value::Object(mut score)) = scores.shift_remove(&key) else {
        return Err(ApiError::NotFound(format!(
            "score {score_id:?} not found on this log"
        )));
    };
    if body.contains_key("boolean_value") && !body.contains_key("is_passed") {
        // The verdict followed the old boolean; let it follow the new one.
        score.shift_remove("is_passed");
    }
    for (name, value) in body {
        score.insert(name, value);
    }
    if !has_value(&score) {
        return Err(no_value_error());
    }
    score.insert("updated_at".to_owned(), json!(now().to_rfc3339()));
    complete(&mut score, &log_id);
    scores.insert(key.clone(), Value::Object(score));
    set_scores(&mut span, scores);
    let stored = store_span(&state, &project, span).await?;
    Ok(Json(stored_score(&stored, &key)))
}

/// `DELETE /api/logs/{id}/scores/{score_id}/`: `204` once committed.
pub(crate) async fn delete_score(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
    Path((id, score_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let (mut span, _) = log_of(&state, project.id, &id, &query).await?;
    let (mut scores, key) = find_score(&span, &score_id)?;
    scores.shift_remove(&key);
    set_scores(&mut span, scores);
    store_span(&state, &project, span).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_fields_are_checked_by_name() {
        assert!(check_field("numerical_value", &json!(4.5)).is_ok());
        assert!(check_field("categorical_value", &json!(["a", "b"])).is_ok());
        assert!(check_field("numerical_value", &Value::Null).is_ok());
        let message = |key: &str, value: Value| check_field(key, &value).unwrap_err().to_string();
        assert_eq!(
            message("numerical_value", json!("4")),
            "numerical_value must be a number, got a string"
        );
        assert_eq!(
            message("categorical_value", json!(["a", 1])),
            "categorical_value must be an array of strings, got an array"
        );
        assert!(message("evaluator_slug", json!("  ")).starts_with("evaluator_slug must be"));
        assert!(message("model", json!("x")).starts_with("model is not a score field"));
    }

    #[test]
    fn a_completed_score_says_its_kind_and_verdict() {
        let mut score = Map::new();
        score.insert("evaluator_slug".to_owned(), json!("safe"));
        score.insert("boolean_value".to_owned(), json!(false));
        complete(&mut score, "log-1");
        assert_eq!(score["score_value_type"], "boolean");
        assert_eq!(score["is_passed"], false);
        assert_eq!(score["log_id"], "log-1");
        assert_eq!(score["numerical_value"], Value::Null);
        assert_eq!(score["evaluator_id"], Value::Null);

        let mut score = Map::new();
        score.insert("numerical_value".to_owned(), json!(3));
        score.insert("is_passed".to_owned(), json!(true));
        complete(&mut score, "log-1");
        assert_eq!(score["score_value_type"], "numerical");
        assert_eq!(score["is_passed"], true);
    }
}
