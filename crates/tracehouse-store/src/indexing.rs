//! What every backend indexes beside a span, derived one way so filters and search answer
//! alike on each: metadata flattened to scalars (for `metadata__*` filters and grouping) and
//! the bounded text that search reads.

use serde_json::Value;

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
