//! Arize Phoenix exports: spans as the REST API and the UI's "Download selection" JSONL write
//! them (`context.trace_id`, flattened attribute keys, `metadata.<key>` expanded), rows of the
//! spans dataframe (`context.span_id`, `attributes.<key>` columns with nested lists), both
//! forms of Phoenix's snake_case OTLP JSON (a whole request, or one span of an `otlpv1` page),
//! and the records that carry no span (trace and session summaries, annotations listed apart).
//!
//! Attributes are OpenInference: they go through the OTLP route's mapping. Annotations folded
//! into a span's attributes (`annotations.N.annotation.*`, `trace.annotations.N.annotation.*`)
//! become the span's scores, keyed by annotation name.

use serde_json::{Map, Value};

use super::{
    AttributeSpan, Item, MappingReport, PeerSource, Score, ScorePatch, add_score, events_of,
    hex_bytes, nanos_of, object_of, string_at,
};
use crate::DecodeError;
use crate::otlp::json::request_from_value;
use crate::otlp::request_to_logs;

/// The items of one Phoenix record; an annotation listed apart goes to `scores`.
pub(crate) fn record_items(
    record: Value,
    report: &mut MappingReport,
    scores: &mut Vec<ScorePatch>,
) -> Result<Vec<Item>, DecodeError> {
    let mut object = object_of(record, PeerSource::Phoenix)?;
    if object.contains_key("resource_spans") {
        return otlp_items(Value::Object(object), report);
    }
    if object.contains_key("span_id") && object.get("attributes").is_some_and(Value::is_array) {
        // One span of an `otlpv1` page: the request around it is implied.
        let request = serde_json::json!({"resource_spans": [{"scope_spans": [{"spans": [Value::Object(object)]}]}]});
        return otlp_items(request, report);
    }
    if object.contains_key("annotator_kind") || object.contains_key("annotation_name") {
        let record = Value::Object(object);
        match annotation_patch(&record) {
            Some(patch) => {
                report.mapped("annotation", "scores of the stored span (or trace root)");
                scores.push(patch);
            }
            None => report.dropped("annotation", "names no span or trace"),
        }
        return Ok(Vec::new());
    }
    let is_span = object.contains_key("context") || object.contains_key("context.span_id");
    if !is_span {
        report.dropped(
            "summary",
            "a trace, session or project summary: its spans are in the span exports",
        );
        return Ok(Vec::new());
    }
    let span = span_of(&mut object, report);
    Ok(vec![span])
}

/// A snake_case OTLP request through the OTLP decoder, then the annotations out of metadata.
fn otlp_items(request: Value, report: &mut MappingReport) -> Result<Vec<Item>, DecodeError> {
    let request = request_from_value(request)?;
    let mut items = request_to_logs(request);
    for item in items.iter_mut().flatten() {
        if let Some(Value::Object(metadata)) = item.get_mut("metadata") {
            let annotations = take_annotations(metadata);
            let keys: Vec<String> = metadata.keys().cloned().collect();
            for key in keys {
                report.kept(&format!("attributes.{key}"));
            }
            for score in annotations {
                report.mapped("annotations.N.annotation", "scores");
                add_score(item, score);
            }
        }
        report.mapped("span (OTLP JSON)", "span-log fields by the OTLP mapping");
    }
    Ok(items)
}

/// A REST/UI span or a dataframe row.
fn span_of(object: &mut Map<String, Value>, report: &mut MappingReport) -> Item {
    let mut take = |key: &str| object.remove(key).unwrap_or(Value::Null);
    let context = take("context");
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let trace_id = context
        .get("trace_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| text(&take("context.trace_id")));
    let span_id = context
        .get("span_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| text(&take("context.span_id")));
    let parent = text(&take("parent_id"));
    let name = text(&take("name")).unwrap_or_default();
    let kind = text(&take("span_kind"));
    let status_code = text(&take("status_code"));
    let status_message = text(&take("status_message")).unwrap_or_default();
    let start = nanos_of(&take("start_time"));
    let end = nanos_of(&take("end_time"));
    let events = take("events");
    let nested = take("attributes");
    if !take("id").is_null() {
        report.dropped(
            "id",
            "Phoenix's row id (a Relay global id), not the span id",
        );
    }
    for (key, target) in [
        ("context.trace_id", "trace_unique_id"),
        ("context.span_id", "span_unique_id"),
        ("parent_id", "span_parent_id"),
        ("name", "span_name"),
        ("start_time", "start_time"),
        ("end_time", "timestamp"),
        ("status_code", "status"),
    ] {
        report.mapped(key, target);
    }

    // The REST shape nests attributes under `attributes` with flat keys; a dataframe row has
    // an `attributes.<key>` column each, whose values may be nested lists.
    let mut flat: Vec<(String, Value)> = Vec::new();
    if let Value::Object(attributes) = nested {
        for (key, value) in attributes {
            flatten(key, value, &mut flat);
        }
    }
    for (key, value) in std::mem::take(object) {
        match key.strip_prefix("attributes.") {
            Some(attribute) => flatten(attribute.to_owned(), value, &mut flat),
            None if value.is_null() => {}
            None => {
                report.dropped(&key, "not a span field Phoenix documents");
            }
        }
    }
    let mut attributes = regroup_metadata(flat);
    if let Some(kind) = kind {
        if !attributes
            .iter()
            .any(|(key, _)| key == "openinference.span.kind")
        {
            attributes.push(("openinference.span.kind".to_owned(), Value::String(kind)));
        }
    }
    let mut annotation_attributes = Map::new();
    attributes.retain(|(key, value)| {
        if is_annotation(key) {
            annotation_attributes.insert(key.clone(), value.clone());
            false
        } else {
            true
        }
    });
    let annotations = take_annotations(&mut annotation_attributes);
    let (start, end) = match (start, end) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(error), _) => return Err(tracehouse_core::FieldError::new("start_time", error)),
        (_, Err(error)) => return Err(tracehouse_core::FieldError::new("timestamp", error)),
    };
    let status = match status_code.as_deref() {
        Some("ERROR") => Some((true, status_message)),
        Some("OK") => Some((false, status_message)),
        _ => None,
    };
    let events = events_of(
        Some(events),
        &["timestamp"],
        |attributes| match attributes {
            Some(Value::Object(attributes)) => attributes.into_iter().collect(),
            _ => Vec::new(),
        },
    );
    let span = AttributeSpan {
        trace_id: hex_bytes(trace_id.as_deref(), 16),
        span_id: hex_bytes(span_id.as_deref(), 8),
        parent_span_id: hex_bytes(parent.as_deref(), 8),
        name,
        start,
        end,
        status,
        attributes,
        events,
    };
    let mut item = span.into_item(report)?;
    for score in annotations {
        report.mapped("annotations.N.annotation", "scores");
        add_score(&mut item, score);
    }
    Ok(item)
}

/// An annotation of the REST listings (`result.label`...) or of the annotations dataframe
/// (`result.label` as one key, `annotation_name`), for its span or its trace's root.
fn annotation_patch(record: &Value) -> Option<ScorePatch> {
    let result = |field: &str| {
        record
            .pointer(&format!("/result/{field}"))
            .or_else(|| record.get(format!("result.{field}")))
            .filter(|value| !value.is_null())
    };
    let evaluator = string_at(record, "/name").or_else(|| string_at(record, "/annotation_name"))?;
    let score = Score {
        id: string_at(record, "/id").unwrap_or_default(),
        number: result("score").cloned(),
        text: result("label").and_then(Value::as_str).map(str::to_owned),
        flag: None,
        explanation: result("explanation")
            .and_then(Value::as_str)
            .map(str::to_owned),
        source: string_at(record, "/annotator_kind"),
        created_at: string_at(record, "/created_at"),
        evaluator,
    };
    score.for_span(
        string_at(record, "/trace_id").as_deref(),
        string_at(record, "/span_id").as_deref(),
    )
}

fn is_annotation(key: &str) -> bool {
    key.starts_with("annotations.") || key.starts_with("trace.annotations.")
}

/// Flattens a dataframe value into OpenInference keys: lists of objects by index
/// (`llm.input_messages.0.message.role`), objects by key, except `metadata` (the Entries
/// convention takes it whole) and lists of scalars (`tag.tags`). Nulls are absent values.
fn flatten(key: String, value: Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Null => {}
        Value::Object(entries) if key != "metadata" => {
            for (name, value) in entries {
                flatten(format!("{key}.{name}"), value, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for (index, value) in items.into_iter().enumerate() {
                flatten(format!("{key}.{index}"), value, out);
            }
        }
        other => out.push((key, other)),
    }
}

/// Phoenix's REST expands the `metadata` JSON into `metadata.<key>` attributes: they are
/// joined back into one object, which the OTLP mapping spreads over the span's metadata.
fn regroup_metadata(attributes: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut metadata = Map::new();
    let mut out = Vec::with_capacity(attributes.len());
    for (key, value) in attributes {
        match key.strip_prefix("metadata.") {
            Some(name) => {
                metadata.insert(name.to_owned(), value);
            }
            None if key == "metadata" => match value {
                Value::Object(entries) => metadata.extend(entries),
                Value::String(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(entries)) => metadata.extend(entries),
                    _ => out.push((key, Value::String(text))),
                },
                other => out.push((key, other)),
            },
            None => out.push((key, value)),
        }
    }
    if !metadata.is_empty() {
        out.push(("metadata".to_owned(), Value::Object(metadata)));
    }
    out
}

/// Takes `annotations.N.annotation.*` (span) and `trace.annotations.N.annotation.*` (trace)
/// entries out of `attributes` and returns them as scores.
fn take_annotations(attributes: &mut Map<String, Value>) -> Vec<Score> {
    let mut grouped: std::collections::BTreeMap<(bool, u64), Map<String, Value>> =
        Default::default();
    let keys: Vec<String> = attributes
        .keys()
        .filter(|k| is_annotation(k))
        .cloned()
        .collect();
    for key in keys {
        let (trace_level, rest) = match key.strip_prefix("trace.annotations.") {
            Some(rest) => (true, rest),
            None => (false, key.trim_start_matches("annotations.")),
        };
        let mut parts = rest.splitn(3, '.');
        let (Some(index), Some("annotation"), Some(field)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(index) = index.parse::<u64>() else {
            continue;
        };
        if let Some(value) = attributes.remove(&key) {
            grouped
                .entry((trace_level, index))
                .or_default()
                .insert(field.to_owned(), value);
        }
    }
    grouped
        .into_iter()
        .filter_map(|((trace_level, index), fields)| {
            let fields = Value::Object(fields);
            let evaluator = string_at(&fields, "/name")?;
            Some(Score {
                id: format!(
                    "phoenix-{}-{index}-{evaluator}",
                    if trace_level { "trace" } else { "span" }
                ),
                number: fields.get("score").cloned(),
                text: string_at(&fields, "/label"),
                flag: None,
                explanation: string_at(&fields, "/explanation"),
                source: string_at(&fields, "/annotator_kind"),
                created_at: None,
                evaluator,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(record: Value) -> super::super::PeerDecoded {
        super::super::decode_for_test(PeerSource::Phoenix, record)
    }

    #[test]
    fn rest_spans_map_openinference_attributes_and_annotations() {
        let decoded = decode(json!({
            "id": "U3Bhbjo0OQ==", "name": "ChatCompletion",
            "context": {"trace_id": "0d7eb7a4e2accfe9126bf9adb28286c5", "span_id": "4065c46aa98c8208"},
            "span_kind": "LLM", "parent_id": "271fa7c4f1dfe5b0",
            "start_time": "2026-12-04T17:20:17.447097+00:00", "end_time": "2026-12-04T17:20:17.485721+00:00",
            "status_code": "OK", "status_message": "",
            "attributes": {"llm.model_name": "gpt-4o-mini-2024-07-18", "llm.token_count.prompt": 101,
                "llm.token_count.completion": 16, "session.id": "sess-1", "user.id": "cust-1",
                "metadata.channel": "web-chat", "llm.cost.total": 0.25,
                "annotations.0.annotation.name": "intent_accuracy", "annotations.0.annotation.score": 1,
                "annotations.0.annotation.label": "correct", "annotations.0.annotation.annotator_kind": "HUMAN"},
            "events": []
        }));
        assert_eq!(decoded.decoded.rejected, vec![]);
        let span = &decoded.decoded.spans[0];
        assert_eq!(span.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(span.start.unix_nanos(), 1_796_404_817_447_097_000);
        assert_eq!(span.cost, Some(0.25));
        assert_eq!(span.grouping.thread_identifier.as_deref(), Some("sess-1"));
        assert_eq!(span.grouping.customer_identifier.as_deref(), Some("cust-1"));
        assert_eq!(span.content["metadata"]["channel"], "web-chat");
        let score = &span.content["scores"]["intent_accuracy"];
        assert_eq!(score["numerical_value"], 1);
        assert_eq!(score["string_value"], "correct");
        assert_eq!(score["source"], "HUMAN");
        assert!(decoded.report.dropped.keys().any(|k| k.starts_with("id:")));
    }

    #[test]
    fn annotations_listed_apart_are_patches_for_their_span_or_trace() {
        let decoded = decode(
            json!({"span_id": "fc289cd00f9da4c5", "annotation_name": "intent_accuracy",
            "annotator_kind": "HUMAN", "result.label": "correct", "result.score": 1.0,
            "result.explanation": null, "id": "U3BhbkFubm90YXRpb246NA=="}),
        );
        assert!(decoded.decoded.spans.is_empty());
        let [patch] = decoded.scores.as_slice() else {
            panic!("one patch expected: {:?}", decoded.scores);
        };
        assert_eq!(
            patch.span_id.as_ref().map(|s| s.as_str()),
            Some("fc289cd00f9da4c5")
        );
        assert_eq!(
            (patch.trace_id.is_none(), patch.evaluator.as_str()),
            (true, "intent_accuracy")
        );

        let decoded = decode(
            json!({"trace_id": "0d32494dbee43ca1548b75fd8fd94e67", "name": "summary_quality",
            "annotator_kind": "LLM", "result": {"label": "good", "score": 0.9, "explanation": "ok"}}),
        );
        let patch = &decoded.scores[0];
        let mut span = tracehouse_core::testing::span(
            "0d32494dbee43ca1548b75fd8fd94e67",
            "dc53bb7a4c8325fa",
            None,
            json!({}),
        );
        assert!(patch.span_id.is_none());
        patch.apply(&mut span);
        let score = &span.content["scores"]["summary_quality"];
        assert_eq!(
            (
                score["numerical_value"].as_f64(),
                score["string_value"].as_str()
            ),
            (Some(0.9), Some("good"))
        );
        assert_eq!(score["score_value_type"], "numerical");
        assert_eq!(score["explanation"], "ok");
    }

    #[test]
    fn dataframe_rows_flatten_nested_attribute_columns() {
        let decoded = decode(json!({
            "name": "ChatCompletion", "span_kind": "LLM", "parent_id": null,
            "start_time": 1_796_404_817_447u64, "end_time": 1_796_404_817_485u64,
            "status_code": "OK", "status_message": "", "events": [],
            "context.span_id": "4065c46aa98c8208", "context.trace_id": "0d7eb7a4e2accfe9126bf9adb28286c5",
            "attributes.llm.input_messages": [{"message.role": "user", "message.content": "hi"}],
            "attributes.llm.token_count.prompt": 101.0,
            "attributes.metadata": {"channel": "web-chat"},
            "attributes.tag.tags": ["router"]
        }));
        let span = &decoded.decoded.spans[0];
        assert_eq!(span.start.unix_nanos(), 1_796_404_817_447_000_000);
        assert_eq!(span.usage.prompt_tokens, Some(101));
        assert_eq!(span.content["prompt_messages"][0]["content"], "hi");
        assert_eq!(span.content["metadata"]["channel"], "web-chat");
    }
}
