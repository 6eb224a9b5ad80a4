//! A span's scores: evaluations kept in its content under `scores`, one per evaluator (its
//! slug, else its id), in the shape the vendor's score API returns. The feedback API writes
//! them and `import` carries peer tools' annotations, assessments and scores into them.

use serde_json::{Map, Value, json};

/// The value fields of a score; the first one set names its `score_value_type`.
pub const SCORE_VALUE_FIELDS: [&str; 4] = [
    "numerical_value",
    "string_value",
    "boolean_value",
    "categorical_value",
];

/// Fills the fields every stored score has: `log_id`, both evaluator names, the value type,
/// every value field (`null` when unset) and `is_passed` (an explicit verdict, else the
/// boolean value's).
pub fn complete_score(score: &mut Map<String, Value>, log_id: &str) {
    score.insert("log_id".to_owned(), json!(log_id));
    for field in ["evaluator_slug", "evaluator_id"] {
        score.entry(field).or_insert(Value::Null);
    }
    let kind = SCORE_VALUE_FIELDS
        .iter()
        .find(|name| score.get(**name).is_some_and(|value| !value.is_null()))
        .map(|name| name.trim_end_matches("_value"));
    score.insert("score_value_type".to_owned(), json!(kind));
    for name in SCORE_VALUE_FIELDS {
        score.entry(name).or_insert(Value::Null);
    }
    // A pass/fail verdict given explicitly wins; a boolean score is its own verdict.
    let derived = score.get("boolean_value").and_then(Value::as_bool);
    match score.get("is_passed") {
        Some(Value::Bool(_)) => {}
        _ => {
            score.insert("is_passed".to_owned(), json!(derived));
        }
    }
}
