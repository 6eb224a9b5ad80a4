//! MLflow tracing exports: `Trace.to_json()` (`{"info", "data": {"spans"}}`, alone or many in
//! an array or a CLI `{"traces": [...]}`), `search_traces()` rows (the trace as JSON text in
//! `trace`), and the REST `batchGet` body (`{"traces": [{"trace_info", "spans"}]}` with
//! protobuf-JSON attribute lists). REST search pages hold trace infos without spans.
//!
//! Span ids are base64; attribute values are JSON text (`"\"CHAT_MODEL\""`) in `to_json` and
//! typed `KeyValue`s in REST. MLflow's attributes are translated to the OpenInference keys the
//! OTLP mapping knows (span type, inputs and outputs, model, token usage, cost), the trace's
//! session and user (`mlflow.trace.session`, `mlflow.trace.user`) go on every span, the
//! trace's own metadata and tags on its root, and assessments become scores of the span they
//! name (or of the root).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{
    AttributeSpan, Item, MappingReport, PeerSource, Score, add_score, events_of, nanos_of,
    object_of, string_at,
};
use crate::DecodeError;

/// The items of one MLflow record.
pub(crate) fn record_items(
    record: Value,
    report: &mut MappingReport,
) -> Result<Vec<Item>, DecodeError> {
    let mut object = object_of(record, PeerSource::Mlflow)?;
    if let Some(Value::Array(traces)) = object.remove("traces") {
        let mut items = Vec::new();
        for trace in traces {
            items.extend(trace_items(object_of(trace, PeerSource::Mlflow)?, report)?);
        }
        return Ok(items);
    }
    trace_items(object, report)
}

fn trace_items(
    mut trace: Map<String, Value>,
    report: &mut MappingReport,
) -> Result<Vec<Item>, DecodeError> {
    // A `search_traces()` row: the whole trace is JSON text in `trace` (twice encoded when the
    // object columns were dumped to text for Parquet).
    if let Some(text) = trace.get("trace").cloned() {
        let mut inner = text;
        while let Value::String(json_text) = &inner {
            inner = serde_json::from_str(json_text).map_err(|e| DecodeError::from_json(&e))?;
        }
        for column in trace.keys().filter(|k| *k != "trace") {
            report.dropped(column, "a column search_traces() derives from the trace");
        }
        return trace_items(object_of(inner, PeerSource::Mlflow)?, report);
    }
    let info = trace
        .remove("info")
        .or_else(|| trace.remove("trace_info"))
        .unwrap_or(Value::Null);
    let spans = match trace.remove("data") {
        Some(mut data) => data.get_mut("spans").map(Value::take),
        None => trace.remove("spans"),
    };
    let Some(Value::Array(spans)) = spans else {
        report.dropped(
            "trace info",
            "a trace listed without its spans (REST search pages)",
        );
        return Ok(Vec::new());
    };
    let info = info.as_object().cloned().unwrap_or_default();
    let metadata = info
        .get("trace_metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let session = metadata.get("mlflow.trace.session").cloned();
    let user = metadata.get("mlflow.trace.user").cloned();
    let mut trace_metadata = Map::new();
    for (key, value) in &metadata {
        if !key.starts_with("mlflow.") {
            trace_metadata.insert(key.clone(), value.clone());
        } else if key != "mlflow.trace.session" && key != "mlflow.trace.user" {
            report.dropped(
                &format!("trace_metadata.{key}"),
                "MLflow's own bookkeeping, or a trace total the spans add up to",
            );
        }
    }
    let tags: Vec<Value> = info
        .get("tags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(key, _)| !key.starts_with("mlflow."))
        .map(|(key, _)| Value::String(key.clone()))
        .collect();

    let mut items: Vec<Item> = Vec::with_capacity(spans.len());
    let mut root = None;
    for span in spans {
        let Value::Object(span) = span else {
            items.push(Err(tracehouse_core::FieldError::new(
                "",
                "an MLflow span must be a JSON object",
            )));
            continue;
        };
        let is_root = span
            .get("parent_span_id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        let item = span_item(span, session.clone(), user.clone(), report);
        if is_root && root.is_none() && item.is_ok() {
            root = Some(items.len());
        }
        items.push(item);
    }
    if let Some(Ok(root)) = root.and_then(|at| items.get_mut(at)) {
        if !trace_metadata.is_empty() || !tags.is_empty() {
            let entry = root.entry("metadata").or_insert_with(|| json!({}));
            if let Value::Object(entry) = entry {
                for (key, value) in trace_metadata {
                    report.mapped(&format!("trace_metadata.{key}"), "metadata");
                    entry.insert(key, value);
                }
                if !tags.is_empty() {
                    report.mapped("tags", "metadata.tags");
                    entry.insert("tags".to_owned(), Value::Array(tags));
                }
            }
        }
    }
    for assessment in info
        .get("assessments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(score) = score_of(assessment) else {
            report.dropped("assessments", "neither a feedback nor an expectation value");
            continue;
        };
        let span_id = assessment.get("span_id").and_then(Value::as_str);
        let target = items.iter_mut().flatten().find(|item| match span_id {
            Some(id) => item.get("span_unique_id").and_then(Value::as_str) == Some(id),
            None => !item.contains_key("span_parent_id"),
        });
        match target {
            Some(item) => {
                report.mapped("assessments", "scores");
                add_score(item, score);
            }
            None => report.dropped("assessments", "names a span the trace does not have"),
        }
    }
    Ok(items)
}

fn score_of(assessment: &Value) -> Option<Score> {
    let value = assessment
        .get("feedback")
        .or_else(|| assessment.get("expectation"))
        .and_then(|v| v.get("value"))?;
    let evaluator = assessment
        .get("assessment_name")
        .and_then(Value::as_str)?
        .to_owned();
    let (number, text, flag) = match value {
        Value::Bool(flag) => (None, None, Some(*flag)),
        Value::Number(_) => (Some(value.clone()), None, None),
        Value::String(text) => (None, Some(text.clone()), None),
        other => (None, Some(other.to_string()), None),
    };
    Some(Score {
        id: string_at(assessment, "/assessment_id").unwrap_or_default(),
        number,
        text,
        flag,
        explanation: string_at(assessment, "/rationale"),
        source: string_at(assessment, "/source/source_type"),
        created_at: string_at(assessment, "/create_time"),
        evaluator,
    })
}

fn base64_id(value: Option<&Value>) -> Vec<u8> {
    let Some(text) = value.and_then(Value::as_str) else {
        return Vec::new();
    };
    if text.len() == 16 || text.len() == 32 {
        if let Ok(bytes) = hex::decode(text) {
            return bytes;
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

/// An attribute value: JSON text (the `to_json` form) parsed, a protobuf-JSON `AnyValue` (the
/// REST form) unwrapped.
fn attribute_value(value: Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Value::Object(any) => any_value(any),
        other => other,
    }
}

fn any_value(mut any: Map<String, Value>) -> Value {
    for key in [
        "string_value",
        "stringValue",
        "bool_value",
        "boolValue",
        "double_value",
        "doubleValue",
    ] {
        if let Some(value) = any.remove(key).filter(|v| !v.is_null()) {
            return value;
        }
    }
    for key in ["int_value", "intValue"] {
        if let Some(value) = any.remove(key).filter(|v| !v.is_null()) {
            return match &value {
                Value::String(text) => text.parse::<i64>().map(Value::from).unwrap_or(value),
                _ => value,
            };
        }
    }
    for key in ["array_value", "arrayValue"] {
        if let Some(Value::Object(mut array)) = any.remove(key) {
            let values = array
                .remove("values")
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            return Value::Array(values.into_iter().map(attribute_value).collect());
        }
    }
    for key in ["kvlist_value", "kvlistValue"] {
        if let Some(Value::Object(mut list)) = any.remove(key) {
            return Value::Object(key_value_list(list.remove("values")));
        }
    }
    Value::Object(any)
}

fn key_value_list(values: Option<Value>) -> Map<String, Value> {
    values
        .and_then(|v| match v {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let mut entry = match entry {
                Value::Object(entry) => entry,
                _ => return None,
            };
            let key = entry.get("key")?.as_str()?.to_owned();
            let value = entry.remove("value").map_or(Value::Null, attribute_value);
            Some((key, value))
        })
        .collect()
}

fn attributes_of(value: Option<Value>) -> Vec<(String, Value)> {
    match value {
        Some(Value::Object(attributes)) => attributes
            .into_iter()
            .map(|(key, value)| (key, attribute_value(value)))
            .collect(),
        Some(list @ Value::Array(_)) => key_value_list(Some(list)).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// MLflow span types in OpenInference's vocabulary.
fn span_kind(mlflow: &str) -> &str {
    match mlflow {
        "CHAT_MODEL" | "LLM" => "LLM",
        other => other,
    }
}

fn span_item(
    mut span: Map<String, Value>,
    session: Option<Value>,
    user: Option<Value>,
    report: &mut MappingReport,
) -> Item {
    let time = |span: &Map<String, Value>, key: &str| {
        nanos_of(span.get(key).unwrap_or(&Value::Null))
            .map_err(|error| tracehouse_core::FieldError::new(key, error))
    };
    let start = time(&span, "start_time_unix_nano")?;
    let end = time(&span, "end_time_unix_nano")?;
    for (key, target) in [
        ("trace_id", "trace_unique_id"),
        ("span_id", "span_unique_id"),
        ("parent_span_id", "span_parent_id"),
        ("name", "span_name"),
        ("start_time_unix_nano", "start_time"),
        ("end_time_unix_nano", "timestamp"),
        ("status", "status"),
    ] {
        if span.contains_key(key) {
            report.mapped(key, target);
        }
    }
    let status = span.get("status").map(|status| {
        let code = status
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let message = status
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        (code.ends_with("ERROR"), message.to_owned())
    });
    let mut attributes = Vec::new();
    let mut inputs = Value::Null;
    let mut outputs = Value::Null;
    let mut kind = None;
    for (key, value) in attributes_of(span.remove("attributes")) {
        let renamed = match key.as_str() {
            "mlflow.traceRequestId" => {
                report.dropped("attributes.mlflow.traceRequestId", "the trace id again");
                continue;
            }
            "mlflow.spanType" => {
                kind = value.as_str().map(|k| span_kind(k).to_owned());
                report.mapped(&key, "log_type");
                continue;
            }
            "mlflow.spanInputs" => {
                inputs = value.clone();
                "input.value"
            }
            "mlflow.spanOutputs" => {
                outputs = value.clone();
                "output.value"
            }
            "mlflow.llm.model" => "gen_ai.response.model",
            "model" => "gen_ai.request.model",
            "mlflow.llm.provider" => "llm.provider",
            "temperature" => "gen_ai.request.temperature",
            "max_tokens" => "gen_ai.request.max_tokens",
            "mlflow.chat.tokenUsage" => {
                for (field, target) in [
                    ("input_tokens", "llm.token_count.prompt"),
                    ("output_tokens", "llm.token_count.completion"),
                    ("total_tokens", "llm.token_count.total"),
                    (
                        "cache_read_input_tokens",
                        "llm.token_count.prompt_details.cache_read",
                    ),
                ] {
                    if let Some(count) = value.get(field) {
                        attributes.push((target.to_owned(), count.clone()));
                    }
                }
                continue;
            }
            "mlflow.llm.cost" => {
                for (field, target) in [
                    ("total_cost", "llm.cost.total"),
                    ("input_cost", "llm.cost.prompt"),
                    ("output_cost", "llm.cost.completion"),
                ] {
                    if let Some(cost) = value.get(field) {
                        attributes.push((target.to_owned(), cost.clone()));
                    }
                }
                continue;
            }
            _ => {
                attributes.push((key, value));
                continue;
            }
        };
        attributes.push((renamed.to_owned(), value));
    }
    if let Some(kind) = &kind {
        attributes.push((
            "openinference.span.kind".to_owned(),
            Value::String(kind.clone()),
        ));
    }
    if let Some(session) = session {
        attributes.push(("session.id".to_owned(), session));
        report.mapped("trace_metadata.mlflow.trace.session", "thread_identifier");
    }
    if let Some(user) = user {
        attributes.push(("user.id".to_owned(), user));
        report.mapped("trace_metadata.mlflow.trace.user", "customer_identifier");
    }
    let events = events_of(
        span.remove("events"),
        &["time_unix_nano", "timestamp"],
        attributes_of,
    );
    let span = AttributeSpan {
        trace_id: base64_id(span.get("trace_id")),
        span_id: base64_id(span.get("span_id")),
        parent_span_id: base64_id(span.get("parent_span_id")),
        name: span
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        start,
        end,
        status,
        attributes,
        events,
    };
    let mut item = span.into_item(report)?;
    // Chat spans: the request's messages and the answer's, as span logs carry them.
    if kind.as_deref() == Some("LLM") {
        if let Some(messages) = inputs.get("messages").filter(|m| m.is_array()) {
            item.insert("prompt_messages".to_owned(), messages.clone());
            report.mapped("mlflow.spanInputs.messages", "prompt_messages");
        }
        if let Some(message) = outputs
            .pointer("/choices/0/message")
            .filter(|m| m.is_object())
        {
            item.insert("completion_message".to_owned(), message.clone());
            report.mapped("mlflow.spanOutputs.choices.N.message", "completion_message");
        }
    }
    Ok(item)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn to_json_traces_map_ids_types_usage_cost_and_assessments() {
        let record = json!({
            "info": {"trace_id": "tr-7fcde9c7fc21ee86f914d1d9891968a8", "state": "OK",
                "trace_metadata": {"mlflow.trace.session": "sess-1", "mlflow.trace.user": "cust-1", "channel": "web"},
                "tags": {"rag": "true", "mlflow.traceName": "x"},
                "assessments": [{"assessment_id": "a-1", "assessment_name": "hallucination",
                    "span_id": "cc01b819abd9f56e", "source": {"source_type": "LLM_JUDGE"},
                    "feedback": {"value": 0.0}, "rationale": "fine"},
                    {"assessment_id": "a-2", "assessment_name": "user_feedback", "feedback": {"value": true}}]},
            "data": {"spans": [
                {"trace_id": "f83px/wh7ob5FNHZiRloqA==", "span_id": "UTN56B8qZ3I=", "parent_span_id": null,
                 "name": "support_agent", "start_time_unix_nano": 1_796_404_882_673_070_177u64,
                 "end_time_unix_nano": 1_796_404_882_885_878_889u64, "status": {"code": "STATUS_CODE_OK"},
                 "attributes": {"mlflow.spanType": "\"AGENT\"", "mlflow.traceRequestId": "\"tr-x\""}},
                {"trace_id": "f83px/wh7ob5FNHZiRloqA==", "span_id": "zAG4GavZ9W4=", "parent_span_id": "UTN56B8qZ3I=",
                 "name": "Completions", "start_time_unix_nano": 1_796_404_882_767_455_091u64,
                 "end_time_unix_nano": 1_796_404_882_885_419_778u64, "status": {"code": "STATUS_CODE_OK"},
                 "attributes": {"mlflow.spanType": "\"CHAT_MODEL\"", "mlflow.llm.model": "\"gpt-4o-mini-2024-07-18\"",
                   "mlflow.chat.tokenUsage": "{\"input_tokens\": 864, \"output_tokens\": 125, \"total_tokens\": 989}",
                   "mlflow.llm.cost": "{\"input_cost\": 0.0001296, \"output_cost\": 7.5e-05, \"total_cost\": 0.0002046}",
                   "mlflow.spanInputs": "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"}}
            ]}
        });
        let decoded = super::super::decode_for_test(PeerSource::Mlflow, record);
        assert_eq!(decoded.decoded.rejected, vec![]);
        let [root, llm] = decoded.decoded.spans.as_slice() else {
            panic!("two spans expected");
        };
        assert_eq!(
            root.trace_id.to_string(),
            "7fcde9c7fc21ee86f914d1d9891968a8"
        );
        assert_eq!(root.start.unix_nanos(), 1_796_404_882_673_070_177);
        assert_eq!(root.log_type.as_str(), "agent");
        assert_eq!(llm.span_id.to_string(), "cc01b819abd9f56e");
        assert_eq!(llm.parent_id.as_ref(), Some(&root.span_id));
        assert_eq!(llm.log_type.as_str(), "chat");
        assert_eq!(llm.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(llm.usage.prompt_tokens, Some(864));
        assert_eq!(llm.cost, Some(0.0002046));
        assert_eq!(llm.grouping.thread_identifier.as_deref(), Some("sess-1"));
        assert_eq!(llm.content["prompt_messages"][0]["content"], "hi");
        assert_eq!(
            llm.content["scores"]["hallucination"]["numerical_value"],
            0.0
        );
        assert_eq!(
            root.content["scores"]["user_feedback"]["boolean_value"],
            true
        );
        assert_eq!(root.content["metadata"]["channel"], "web");
        assert_eq!(root.content["metadata"]["tags"], json!(["rag"]));
    }
}
