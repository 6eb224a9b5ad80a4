//! What every backend indexes beside a span, derived one way so filters and search answer
//! alike on each: metadata flattened to scalars (for `metadata__*` filters and grouping) and
//! the bounded text that search reads.

use serde_json::{Map, Value};
use tracehouse_core::query::{FEEDBACK_INDEX_KEY, SCORES_INDEX_KEY};

/// Deepest metadata nesting that is indexed; deeper values stay in the content, unindexed.
const MAX_METADATA_DEPTH: usize = 8;
/// Most metadata entries indexed per span, so one span cannot bloat the index unboundedly.
const MAX_METADATA_ROWS: usize = 256;
/// Characters of each of input and output indexed for search.
pub(crate) const MAX_SEARCH_CHARS: usize = 64 * 1024;

/// One indexed metadata value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetadataScalar {
    /// Strings, and booleans as `true`/`false`.
    Text(String),
    /// Numbers.
    Number(f64),
}

/// Metadata as `(key path, value)` entries: nested keys joined with `__`, array elements under
/// their array's key, nulls left out.
pub(crate) fn flatten_metadata(metadata: &Value) -> Vec<(String, MetadataScalar)> {
    let mut out = Vec::new();
    flatten("", metadata, 0, &mut out);
    out
}

fn flatten(prefix: &str, value: &Value, depth: usize, out: &mut Vec<(String, MetadataScalar)>) {
    if out.len() >= MAX_METADATA_ROWS || depth > MAX_METADATA_DEPTH {
        return;
    }
    let scalar = match value {
        Value::Object(object) => {
            for (key, nested) in object {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}__{key}")
                };
                flatten(&path, nested, depth + 1, out);
            }
            return;
        }
        Value::Array(items) => {
            for item in items {
                flatten(prefix, item, depth + 1, out);
            }
            return;
        }
        Value::Null => return,
        Value::String(text) => MetadataScalar::Text(text.clone()),
        Value::Bool(flag) => MetadataScalar::Text(flag.to_string()),
        Value::Number(number) => MetadataScalar::Number(number.as_f64().unwrap_or(0.0)),
    };
    // A scalar as the whole metadata has no key to filter it by.
    if !prefix.is_empty() {
        out.push((prefix.to_owned(), scalar));
    }
}

/// Most scores indexed per span.
const MAX_SCORES: usize = 64;

/// What a span's content puts in the metadata index: its metadata flattened, then its
/// scores (`scores`, keyed by evaluator, as the scores API writes them) under
/// `[SCORES_INDEX_KEY, evaluator]`, by the map's key and by `evaluator_id` when that differs:
/// a numerical value as a number; string, boolean and categorical values as text.
pub(crate) fn index_entries(content: &Map<String, Value>) -> Vec<(String, MetadataScalar)> {
    let mut entries = content
        .get("metadata")
        .map(flatten_metadata)
        .unwrap_or_default();
    if let Some(Value::Bool(feedback)) = content.get("positive_feedback") {
        entries.push((
            FEEDBACK_INDEX_KEY.to_owned(),
            MetadataScalar::Text(feedback.to_string()),
        ));
    }
    let Some(Value::Object(scores)) = content.get("scores") else {
        return entries;
    };
    for (evaluator, score) in scores.iter().take(MAX_SCORES) {
        let mut values = Vec::new();
        if let Some(number) = score.get("numerical_value").and_then(Value::as_f64) {
            values.push(MetadataScalar::Number(number));
        }
        if let Some(text) = score.get("string_value").and_then(Value::as_str) {
            values.push(MetadataScalar::Text(text.to_owned()));
        }
        if let Some(flag) = score.get("boolean_value").and_then(Value::as_bool) {
            values.push(MetadataScalar::Text(flag.to_string()));
        }
        if let Some(Value::Array(items)) = score.get("categorical_value") {
            values.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|item| MetadataScalar::Text(item.to_owned())),
            );
        }
        let mut names = vec![evaluator.as_str()];
        if let Some(id) = score.get("evaluator_id").and_then(Value::as_str) {
            if id != evaluator && !id.is_empty() {
                names.push(id);
            }
        }
        for name in names {
            let key = format!("{SCORES_INDEX_KEY}__{name}");
            entries.extend(values.iter().map(|value| (key.clone(), value.clone())));
        }
    }
    entries
}

/// Text of a content field for search: strings as they are, other JSON as JSON, at most
/// [`MAX_SEARCH_CHARS`] characters.
pub(crate) fn searchable(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    match text.char_indices().nth(MAX_SEARCH_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn feedback_is_indexed_as_text_when_given() {
        let Value::Object(content) = json!({"positive_feedback": false, "metadata": {"a": "b"}})
        else {
            unreachable!()
        };
        assert_eq!(
            index_entries(&content),
            vec![
                ("a".to_owned(), MetadataScalar::Text("b".to_owned())),
                (
                    FEEDBACK_INDEX_KEY.to_owned(),
                    MetadataScalar::Text("false".to_owned())
                ),
            ]
        );
        let Value::Object(unset) = json!({"positive_feedback": null}) else {
            unreachable!()
        };
        assert!(index_entries(&unset).is_empty());
    }

    #[test]
    fn scores_are_indexed_beside_metadata_by_evaluator_slug_and_id() {
        let content = json!({
            "metadata": {"step": 2},
            "scores": {
                "helpfulness": {"evaluator_slug": "helpfulness", "evaluator_id": "ev-1",
                                "numerical_value": 4.5},
                "tone": {"evaluator_slug": "tone", "string_value": "warm",
                         "categorical_value": ["polite", "brief"], "boolean_value": true},
            },
        });
        let Value::Object(content) = content else {
            unreachable!()
        };
        let key = |name: &str| format!("{SCORES_INDEX_KEY}__{name}");
        assert_eq!(
            index_entries(&content),
            vec![
                ("step".to_owned(), MetadataScalar::Number(2.0)),
                (key("helpfulness"), MetadataScalar::Number(4.5)),
                (key("ev-1"), MetadataScalar::Number(4.5)),
                (key("tone"), MetadataScalar::Text("warm".to_owned())),
                (key("tone"), MetadataScalar::Text("true".to_owned())),
                (key("tone"), MetadataScalar::Text("polite".to_owned())),
                (key("tone"), MetadataScalar::Text("brief".to_owned())),
            ]
        );
    }

    use super::*;

    #[test]
    fn flattens_nested_objects_and_arrays() {
        let rows = flatten_metadata(
            &json!({"user": {"tier": 3, "name": "ann"}, "tags": ["a", "b"], "ok": true, "none": null}),
        );
        let text = |s: &str| MetadataScalar::Text(s.to_owned());
        assert_eq!(
            rows,
            vec![
                ("user__tier".to_owned(), MetadataScalar::Number(3.0)),
                ("user__name".to_owned(), text("ann")),
                ("tags".to_owned(), text("a")),
                ("tags".to_owned(), text("b")),
                ("ok".to_owned(), text("true")),
            ]
        );
        assert!(flatten_metadata(&json!("just text")).is_empty());
    }

    #[test]
    fn search_text_is_bounded() {
        let long = "x".repeat(MAX_SEARCH_CHARS + 10);
        assert_eq!(searchable(Some(&json!(long))).len(), MAX_SEARCH_CHARS);
        assert_eq!(searchable(Some(&json!({"a": 1}))), "{\"a\":1}");
        assert_eq!(searchable(None), "");
    }
}
