//! `PATCH /api/request-logs/{id}/` and `PATCH /api/request-logs/batch-update/`: the fields of a
//! stored log that a person may change after the fact (feedback, a note, metadata, the custom
//! identifier). Everything else a log says is what the application recorded, and stays.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};
use tracehouse_core::spanlog::json_type_name;
use tracehouse_core::{Project, Span};

use crate::AppState;
use crate::auth::AdminKey;
use crate::error::ApiError;
use crate::read_api::model::span_json;
use crate::read_api::resolve_span;
use crate::redaction::SpanRedactor;

/// The fields an update may set, and what each must be.
const UPDATABLE: &[(&str, &str)] = &[
    (
        "metadata",
        "an object (merged into the log's metadata; a null value removes a key)",
    ),
    ("note", "a string"),
    ("positive_feedback", "true or false"),
    ("custom_identifier", "a string"),
];

/// Keys of a batch item that say which log it updates rather than what to change.
const ADDRESS_KEYS: &[&str] = &["id", "unique_id", "trace_unique_id", "span_unique_id"];

/// One validated update: the fields to set (a `null` clears one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogUpdate {
    fields: Map<String, Value>,
}

impl LogUpdate {
    /// Validates an update body; `at` prefixes field names in errors (`logs[2].`) for batches.
    fn parse(body: Map<String, Value>, at: &str) -> Result<Self, ApiError> {
        if body.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "{at}nothing to update: send any of {}",
                updatable_names()
            )));
        }
        for (key, value) in &body {
            let Some((_, expected)) = UPDATABLE.iter().find(|(name, _)| name == key) else {
                return Err(ApiError::BadRequest(format!(
                    "{at}{key} cannot be changed: a log's recorded fields stay as sent; only {} can",
                    updatable_names()
                )));
            };
            let fits = matches!(
                (key.as_str(), value),
                (_, Value::Null)
                    | ("metadata", Value::Object(_))
                    | ("note" | "custom_identifier", Value::String(_))
                    | ("positive_feedback", Value::Bool(_))
            );
            if !fits {
                return Err(ApiError::BadRequest(format!(
                    "{at}{key} must be {expected} or null, got {}",
                    json_type_name(value)
                )));
            }
        }
        Ok(Self { fields: body })
    }

    /// Applies the update to a span's content.
    pub(crate) fn apply(&self, span: &mut Span) {
        for (key, value) in &self.fields {
            match (key.as_str(), value) {
                ("metadata", Value::Object(patch)) => {
                    let metadata = span
                        .content
                        .entry("metadata")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !metadata.is_object() {
                        *metadata = Value::Object(Map::new());
                    }
                    if let Value::Object(metadata) = metadata {
                        for (name, new) in patch {
                            if new.is_null() {
                                metadata.shift_remove(name);
                            } else {
                                metadata.insert(name.clone(), new.clone());
                            }
                        }
                    }
                }
                (_, Value::Null) => {
                    span.content.shift_remove(key);
                }
                _ => {
                    span.content.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

fn updatable_names() -> String {
    let names: Vec<&str> = UPDATABLE.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

fn object_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "body is empty: send a JSON object with any of {}",
            updatable_names()
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))
}

/// Stores updated spans: a span sent again replaces the stored one, and every index (metadata
/// filters, search) follows it, in both stores. The project's redaction rules run first, since
/// a note or metadata value is text a person sent like any ingested span's. Returns the spans'
/// JSON as stored, for the answer.
async fn store_updated(
    state: &AppState,
    project: &Project,
    spans: Vec<Span>,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let spans = SpanRedactor::for_project(state, &project.name)
        .apply_off_runtime(spans)
        .await?;
    let stored = spans.iter().map(span_json).collect();
    state.store.write_spans(project.id, spans).await?;
    Ok(stored)
}

/// `PATCH /api/request-logs/{id}/`: changes `metadata` (merged), `note`, `positive_feedback` or
/// `custom_identifier` of one log and answers the log as stored.
pub(crate) async fn update_log(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let update = match object_body(&body)? {
        Value::Object(fields) => LogUpdate::parse(fields, "")?,
        other => {
            return Err(ApiError::BadRequest(format!(
                "body must be a JSON object, got {}",
                json_type_name(&other)
            )));
        }
    };
    let trace = query.get("trace_unique_id").map(String::as_str);
    let mut span = resolve_span(&state, project.id, &id, trace).await?;
    update.apply(&mut span);
    let answer = store_updated(&state, &project, vec![span])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("an updated log went missing".to_owned()))?;
    Ok(Json(answer))
}

/// `PATCH /api/request-logs/batch-update/`: the same change for many logs at once, as an array
/// of objects (or `{"logs": [...]}`), each naming its log by `id` (or `span_unique_id` with
/// `trace_unique_id`). Every item is checked and every log found before anything is stored:
/// one bad item refuses the whole batch, naming its index.
pub(crate) async fn batch_update_logs(
    State(state): State<AppState>,
    AdminKey(project): AdminKey,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let items = match object_body(&body)? {
        Value::Array(items) => items,
        Value::Object(mut object) => match object
            .shift_remove("logs")
            .or_else(|| object.shift_remove("data"))
        {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::BadRequest(
                    "body must be an array of updates, or {\"logs\": [...]}".to_owned(),
                ));
            }
        },
        other => {
            return Err(ApiError::BadRequest(format!(
                "body must be an array of updates, got {}",
                json_type_name(&other)
            )));
        }
    };
    let limit = state.limits.max_spans_per_request;
    if items.len() > limit {
        return Err(ApiError::TooManyItems {
            count: items.len(),
            limit,
        });
    }
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to update: the batch is empty".to_owned(),
        ));
    }
    // Spans by their position in `updated`, so two items for one log apply in order.
    let mut updated: Vec<Span> = Vec::new();
    let mut position: HashMap<(String, String), usize> = HashMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("logs[{index}].");
        let Value::Object(mut fields) = item else {
            return Err(ApiError::BadRequest(format!(
                "logs[{index}] must be an object, got {}",
                json_type_name(&item)
            )));
        };
        let mut address = Map::new();
        for key in ADDRESS_KEYS {
            if let Some(value) = fields.shift_remove(*key) {
                address.insert((*key).to_owned(), value);
            }
        }
        let text = |key: &str| address.get(key).and_then(Value::as_str);
        let (raw, trace) = match (text("id").or(text("unique_id")), text("span_unique_id")) {
            (Some(id), _) => (id, None),
            (None, Some(span)) => (span, text("trace_unique_id")),
            (None, None) => {
                return Err(ApiError::BadRequest(format!(
                    "{at}id is missing: name the log by its id (or span_unique_id and trace_unique_id)"
                )));
            }
        };
        let update = LogUpdate::parse(fields, &at)?;
        let span =
            resolve_span(&state, project.id, raw, trace)
                .await
                .map_err(|error| match error {
                    ApiError::NotFound(message) => ApiError::NotFound(format!("{at}id: {message}")),
                    ApiError::Ambiguous {
                        message,
                        candidates,
                    } => ApiError::Ambiguous {
                        message: format!("{at}id: {message}"),
                        candidates,
                    },
                    other => other,
                })?;
        let key = (
            span.trace_id.as_str().to_owned(),
            span.span_id.as_str().to_owned(),
        );
        let slot = *position.entry(key).or_insert_with(|| {
            updated.push(span);
            updated.len() - 1
        });
        if let Some(span) = updated.get_mut(slot) {
            update.apply(span);
        }
    }
    let count = updated.len();
    let results: Vec<Value> = store_updated(&state, &project, updated)
        .await?
        .into_iter()
        .map(Value::Object)
        .collect();
    Ok(Json(json!({
        "message": format!("updated {count} logs"),
        "updated": count,
        "results": results,
    })))
}

#[cfg(test)]
mod tests {
    use tracehouse_core::testing::span;

    use super::*;

    fn parse(body: Value) -> Result<LogUpdate, String> {
        match body {
            Value::Object(fields) => {
                LogUpdate::parse(fields, "logs[3].").map_err(|e| e.to_string())
            }
            _ => Err("not an object".to_owned()),
        }
    }

    #[test]
    fn only_feedback_fields_may_change_and_errors_name_them() {
        let error = parse(json!({"note": "ok", "model": "gpt-4o"})).unwrap_err();
        assert!(
            error.starts_with("logs[3].model cannot be changed"),
            "{error}"
        );
        let error = parse(json!({"positive_feedback": "yes"})).unwrap_err();
        assert_eq!(
            error,
            "logs[3].positive_feedback must be true or false or null, got a string"
        );
        let error = parse(json!({})).unwrap_err();
        assert!(error.starts_with("logs[3].nothing to update"), "{error}");
        assert!(parse(json!({"metadata": null, "note": null})).is_ok());
    }

    #[test]
    fn metadata_merges_and_nulls_clear() {
        let mut span = span(
            "t",
            "s",
            None,
            json!({"metadata": {"step": 1, "keep": "yes"}, "note": "old"}),
        );
        parse(json!({
            "metadata": {"step": 2, "keep": null, "new": true},
            "note": null, "positive_feedback": false, "custom_identifier": "c-9",
        }))
        .unwrap()
        .apply(&mut span);
        assert_eq!(span.content["metadata"], json!({"step": 2, "new": true}));
        assert!(!span.content.contains_key("note"));
        assert_eq!(span.content["positive_feedback"], json!(false));
        assert_eq!(span.content["custom_identifier"], json!("c-9"));
    }
}
