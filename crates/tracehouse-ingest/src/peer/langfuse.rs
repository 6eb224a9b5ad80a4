//! Langfuse exports: a trace with its observations and scores (`GET /api/public/traces/{id}`),
//! observation rows (the public API's v1 and v2 pages, the blob-storage export's `observations`
//! and `observations_v2` JSONL), and the rows that carry no observation (trace lists, the UI's
//! traces-table export, blob `traces` and `scores` files listed apart).
//!
//! Langfuse is not OpenTelemetry-shaped: observations map to span-log fields directly. API rows
//! are camelCase with parsed JSON; blob rows are snake_case with JSON as text and zone-less UTC
//! times. Generations become LLM spans with model, token usage and cost; a trace's session and
//! user become every span's thread and customer, its tags and metadata its root's metadata;
//! scores become the scores of the observation they name, or of the root.

use serde_json::{Map, Value, json};

use super::{
    Item, MappingReport, PeerSource, Score, ScorePatch, add_score, object_of, put, text_of,
    time_field,
};
use crate::DecodeError;

/// The items of one Langfuse record; a score row listed apart goes to `scores`.
pub(crate) fn record_items(
    record: Value,
    report: &mut MappingReport,
    scores: &mut Vec<ScorePatch>,
) -> Result<Vec<Item>, DecodeError> {
    let mut object = object_of(record, PeerSource::Langfuse)?;
    // Trace lists name their observations by id only; a trace detail holds them whole.
    let detailed = object
        .get("observations")
        .and_then(Value::as_array)
        .is_some_and(|observations| observations.iter().all(Value::is_object));
    if let Some(Value::Array(observations)) = object.remove("observations").filter(|_| detailed) {
        let scores = object.remove("scores");
        let trace = TraceFields::of(&object);
        let mut items: Vec<Item> = observations
            .into_iter()
            .map(|observation| match observation {
                Value::Object(observation) => observation_item(observation, Some(&trace), report),
                _ => Err(tracehouse_core::FieldError::new(
                    "",
                    "an observation must be a JSON object",
                )),
            })
            .collect();
        add_trace_fields(&mut items, &trace, report);
        for score in scores
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            attach_score(&mut items, score, report);
        }
        return Ok(items);
    }
    let is_score = object.contains_key("dataType") || object.contains_key("data_type");
    let is_observation = object.contains_key("type")
        && (object.contains_key("traceId") || object.contains_key("trace_id"));
    if is_observation {
        return Ok(vec![observation_item(object, None, report)]);
    }
    let listed_apart = ["projectId", "project_id", "observations"]
        .iter()
        .any(|key| object.contains_key(*key));
    if !is_score && !listed_apart && object.contains_key("timestamp") {
        return Ok(vec![ui_trace_item(object, report)]);
    }
    if object.contains_key("exportSource") {
        report.dropped(
            "manifest",
            "the blob export's run manifest: file names and row counts",
        );
    } else if is_score {
        let named = score_of(&Value::Object(object));
        let patch = named.and_then(|named| {
            named
                .score
                .for_span(named.trace.as_deref(), named.observation.as_deref())
        });
        match patch {
            Some(patch) => {
                report.mapped("score", "scores of the stored observation (or trace root)");
                scores.push(patch);
            }
            None => report.dropped("score", "names no trace or observation"),
        }
    } else {
        report.dropped(
            "trace",
            "a trace row without observations: its spans are in the observation exports",
        );
    }
    Ok(Vec::new())
}

/// Standard columns of the UI's traces-table export; any other column is a score (its values
/// as a list, one per score of that name).
const UI_TRACE_COLUMNS: &[&str] = &[
    "id",
    "timestamp",
    "name",
    "userId",
    "sessionId",
    "release",
    "version",
    "environment",
    "tags",
    "bookmarked",
    "public",
    "input",
    "output",
    "metadata",
    "comments",
];

/// A row of the UI's traces-table export: the only record of its trace there, so it becomes
/// one span standing for the trace (its span id derived from the trace id, so a re-import
/// replaces it), with the row's scores.
fn ui_trace_item(mut row: Map<String, Value>, report: &mut MappingReport) -> Item {
    use sha2::Digest as _;
    let trace_id = row
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let digest = sha2::Sha256::digest(format!("langfuse-trace:{trace_id}").as_bytes());
    let mut item = Map::new();
    put(
        &mut item,
        report,
        "id",
        "trace_unique_id",
        Some(Value::String(trace_id)),
    );
    item.insert(
        "span_unique_id".to_owned(),
        Value::String(hex::encode(&digest[..8])),
    );
    let start = time_field(row.get("timestamp").unwrap_or(&Value::Null), "start_time")?;
    if let Some(start) = start {
        item.insert("timestamp".to_owned(), Value::String(start.clone()));
        put(
            &mut item,
            report,
            "timestamp",
            "start_time",
            Some(Value::String(start)),
        );
    }
    put(
        &mut item,
        report,
        "name",
        "span_name",
        row.get("name").cloned(),
    );
    item.insert("log_type".to_owned(), json!("workflow"));
    put(
        &mut item,
        report,
        "userId",
        "customer_identifier",
        row.get("userId").cloned(),
    );
    put(
        &mut item,
        report,
        "sessionId",
        "session_identifier",
        row.get("sessionId").cloned(),
    );
    put(
        &mut item,
        report,
        "environment",
        "environment",
        row.get("environment").cloned(),
    );
    for field in ["input", "output"] {
        put(
            &mut item,
            report,
            field,
            field,
            row.get(field).cloned().map(decoded),
        );
    }
    let mut metadata = Map::new();
    if let Some(Value::Object(entries)) = row.get("metadata") {
        for (name, value) in entries {
            let value = decoded(value.clone());
            match name.as_str() {
                "resourceAttributes" => {
                    item.insert("resource".to_owned(), value);
                }
                "scope" => {
                    item.insert("scope".to_owned(), value);
                }
                _ => {
                    metadata.insert(name.clone(), value);
                }
            }
            report.mapped(&format!("metadata.{name}"), "metadata");
        }
    }
    for field in ["tags", "release", "version", "comments"] {
        let value = row.get(field).cloned().map(decoded).unwrap_or(Value::Null);
        let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
        if !empty {
            report.mapped(field, &format!("metadata.{field}"));
            metadata.insert(field.to_owned(), value);
        }
    }
    if !metadata.is_empty() {
        item.insert("metadata".to_owned(), Value::Object(metadata));
    }
    for field in ["bookmarked", "public"] {
        if row.contains_key(field) {
            report.dropped(field, "a Langfuse UI flag");
        }
    }
    row.retain(|key, _| !UI_TRACE_COLUMNS.contains(&key.as_str()));
    for (evaluator, values) in row {
        let Some(value) = decoded(values).as_array().and_then(|v| v.last().cloned()) else {
            continue;
        };
        let (number, text) = match value {
            Value::Number(_) => (Some(value), None),
            other => (None, text_of(&other)),
        };
        report.mapped(&evaluator, "scores");
        add_score(
            &mut item,
            Score {
                id: format!("langfuse-ui-{evaluator}"),
                number,
                text,
                flag: None,
                explanation: None,
                source: None,
                created_at: None,
                evaluator,
            },
        );
    }
    Ok(item)
}

/// What a trace gives its observations.
struct TraceFields {
    session: Option<Value>,
    user: Option<Value>,
    tags: Option<Value>,
    metadata: Map<String, Value>,
    release: Option<Value>,
}

impl TraceFields {
    fn of(trace: &Map<String, Value>) -> Self {
        let get = |camel: &str, snake: &str| {
            trace
                .get(camel)
                .or_else(|| trace.get(snake))
                .filter(|v| !v.is_null())
                .cloned()
        };
        Self {
            session: get("sessionId", "session_id"),
            user: get("userId", "user_id"),
            tags: get("tags", "tags").filter(|t| t.as_array().is_some_and(|t| !t.is_empty())),
            metadata: trace
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            release: get("release", "release"),
        }
    }
}

/// A trace's tags and metadata go on its root observations.
fn add_trace_fields(items: &mut [Item], trace: &TraceFields, report: &mut MappingReport) {
    for item in items.iter_mut().flatten() {
        if item.contains_key("span_parent_id") {
            continue;
        }
        let metadata = item.entry("metadata").or_insert_with(|| json!({}));
        let Value::Object(metadata) = metadata else {
            continue;
        };
        for (key, value) in &trace.metadata {
            if !metadata.contains_key(key) {
                metadata.insert(key.clone(), decoded(value.clone()));
            }
        }
        if let Some(tags) = &trace.tags {
            metadata.insert("tags".to_owned(), tags.clone());
            report.mapped("trace.tags", "metadata.tags");
        }
        if let Some(release) = &trace.release {
            metadata.insert("release".to_owned(), release.clone());
            report.mapped("trace.release", "metadata.release");
        }
    }
}

/// A Langfuse score (API camelCase or blob snake_case), with the observation and trace it
/// names.
struct NamedScore {
    score: Score,
    observation: Option<String>,
    trace: Option<String>,
}

fn score_of(score: &Value) -> Option<NamedScore> {
    let field = |camel: &str, snake: &str| {
        score
            .get(camel)
            .or_else(|| score.get(snake))
            .filter(|v| !v.is_null())
    };
    let text = |camel: &str, snake: &str| {
        field(camel, snake)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let evaluator = text("name", "name")?;
    let data_type = text("dataType", "data_type").unwrap_or_else(|| "NUMERIC".to_owned());
    let value = field("value", "value").cloned();
    let (number, string, flag) = match data_type.as_str() {
        "BOOLEAN" => (
            None,
            None,
            value.as_ref().and_then(Value::as_f64).map(|v| v != 0.0),
        ),
        "CATEGORICAL" => (None, text("stringValue", "string_value"), None),
        _ => (value, None, None),
    };
    Some(NamedScore {
        score: Score {
            evaluator,
            number,
            text: string,
            flag,
            explanation: text("comment", "comment"),
            source: text("source", "source"),
            id: text("id", "id").unwrap_or_default(),
            created_at: text("timestamp", "timestamp"),
        },
        observation: text("observationId", "observation_id"),
        trace: text("traceId", "trace_id"),
    })
}

fn attach_score(items: &mut [Item], score: &Value, report: &mut MappingReport) {
    let Some(named) = score_of(score) else {
        report.dropped("scores", "a score without a name");
        return;
    };
    let observation = named.observation.as_deref();
    let target = items.iter_mut().flatten().find(|item| match observation {
        Some(id) => item.get("span_unique_id").and_then(Value::as_str) == Some(id),
        None => !item.contains_key("span_parent_id"),
    });
    let Some(item) = target else {
        report.dropped("scores", "names an observation the trace does not have");
        return;
    };
    report.mapped("scores", "scores");
    add_score(item, named.score);
}

/// JSON text parsed (blob exports keep JSON as text), anything else as it is.
fn decoded(value: Value) -> Value {
    match value {
        Value::String(text) if text.starts_with(['{', '[']) => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        other => other,
    }
}

/// Langfuse observation types in span-log log types.
fn log_type(kind: &str) -> String {
    match kind {
        "GENERATION" => "generation".to_owned(),
        "EMBEDDING" => "embedding".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// Fields Langfuse derives or keeps for itself, dropped with the reason.
const DERIVED: &[(&str, &str)] = &[
    (
        "projectId",
        "the Langfuse project; the import's project replaces it",
    ),
    (
        "project_id",
        "the Langfuse project; the import's project replaces it",
    ),
    ("latency", "derived from start and end"),
    ("createdAt", "Langfuse's ingestion time"),
    ("created_at", "Langfuse's ingestion time"),
    ("updatedAt", "Langfuse's ingestion time"),
    ("updated_at", "Langfuse's ingestion time"),
    ("usage", "the legacy copy of usageDetails"),
    ("promptTokens", "the legacy copy of usageDetails"),
    ("completionTokens", "the legacy copy of usageDetails"),
    ("totalTokens", "the legacy copy of usageDetails"),
    ("inputUsage", "a copy of usageDetails"),
    ("outputUsage", "a copy of usageDetails"),
    ("totalUsage", "a copy of usageDetails"),
    ("unit", "the legacy usage unit"),
    ("inputPrice", "Langfuse's price table"),
    ("outputPrice", "Langfuse's price table"),
    ("totalPrice", "Langfuse's price table"),
    ("input_price", "Langfuse's price table"),
    ("output_price", "Langfuse's price table"),
    ("total_price", "Langfuse's price table"),
    ("calculatedInputCost", "a copy of costDetails"),
    ("calculatedOutputCost", "a copy of costDetails"),
    ("inputCost", "a copy of costDetails"),
    ("outputCost", "a copy of costDetails"),
    ("modelId", "Langfuse's model table id"),
    ("model_id", "Langfuse's model table id"),
    ("internalModelId", "Langfuse's model table id"),
    ("usagePricingTierId", "Langfuse's price table"),
    ("usagePricingTierName", "Langfuse's price table"),
    ("usage_pricing_tier_id", "Langfuse's price table"),
    ("usage_pricing_tier_name", "Langfuse's price table"),
    ("traceName", "the root observation's name"),
    ("trace_name", "the root observation's name"),
    ("isRootObservation", "derived from the parent"),
    ("is_root_observation", "derived from the parent"),
    ("timeToFirstToken", "derived from completionStartTime"),
    ("time_to_first_token", "derived from completion_start_time"),
    ("bookmarked", "a Langfuse UI flag"),
    ("public", "a Langfuse UI flag"),
];

fn observation_item(
    mut row: Map<String, Value>,
    trace: Option<&TraceFields>,
    report: &mut MappingReport,
) -> Item {
    // Blob rows are snake_case: one spelling from here on.
    let mut take = |camel: &str, snake: &str| -> Option<(String, Value)> {
        let (key, value) = match row.remove(camel) {
            Some(value) => (camel, value),
            None => (snake, row.remove(snake)?),
        };
        let empty = value.is_null() || value.as_str().is_some_and(str::is_empty);
        (!empty).then(|| (key.to_owned(), value))
    };
    let mut item = Map::new();
    let mut direct = |item: &mut Map<String, Value>,
                      report: &mut MappingReport,
                      camel: &str,
                      snake: &str,
                      field: &str| {
        if let Some((key, value)) = take(camel, snake) {
            put(item, report, &key, field, Some(value));
        }
    };
    direct(&mut item, report, "traceId", "trace_id", "trace_unique_id");
    direct(&mut item, report, "id", "id", "span_unique_id");
    direct(
        &mut item,
        report,
        "parentObservationId",
        "parent_observation_id",
        "span_parent_id",
    );
    direct(&mut item, report, "name", "name", "span_name");
    direct(
        &mut item,
        report,
        "environment",
        "environment",
        "environment",
    );
    direct(
        &mut item,
        report,
        "userId",
        "user_id",
        "customer_identifier",
    );
    direct(
        &mut item,
        report,
        "sessionId",
        "session_id",
        "session_identifier",
    );
    for (camel, snake, field) in [
        ("startTime", "start_time", "start_time"),
        ("endTime", "end_time", "timestamp"),
    ] {
        if let Some((key, value)) = take(camel, snake) {
            let time = time_field(&value, field)?;
            put(&mut item, report, &key, field, time.map(Value::String));
        }
    }
    let kind = take("type", "type").and_then(|(_, v)| v.as_str().map(str::to_owned));
    if let Some(kind) = &kind {
        put(
            &mut item,
            report,
            "type",
            "log_type",
            Some(Value::String(log_type(kind))),
        );
    }
    let model = take("model", "model").or_else(|| take("providedModelName", "provided_model_name"));
    if let Some((key, model)) = model {
        put(&mut item, report, &key, "model", Some(model));
    }
    if let Some((key, parameters)) = take("modelParameters", "model_parameters") {
        if let Value::Object(parameters) = decoded(parameters) {
            for (name, value) in parameters {
                let field = match name.as_str() {
                    "temperature" | "max_tokens" | "top_p" | "frequency_penalty"
                    | "presence_penalty" => name.clone(),
                    _ => {
                        report.kept(&format!("{key}.{name}"));
                        item.entry("model_parameters").or_insert_with(|| json!({}));
                        if let Some(Value::Object(kept)) = item.get_mut("model_parameters") {
                            kept.insert(name, value);
                        }
                        continue;
                    }
                };
                put(
                    &mut item,
                    report,
                    &format!("{key}.{name}"),
                    &field,
                    Some(decoded(value)),
                );
            }
        }
    }
    if let Some((key, usage)) = take("usageDetails", "usage_details") {
        for (name, field) in [
            ("input", "prompt_tokens"),
            ("output", "completion_tokens"),
            ("total", "total_tokens"),
        ] {
            put(
                &mut item,
                report,
                &format!("{key}.{name}"),
                field,
                usage.get(name).cloned(),
            );
        }
        if let Some(cached) = usage
            .get("input_cached_tokens")
            .or_else(|| usage.get("cache_read_input_tokens"))
        {
            item.insert(
                "usage".to_owned(),
                json!({"cache_read_input_tokens": cached}),
            );
            report.mapped(
                &format!("{key}.input_cached_tokens"),
                "usage.cache_read_input_tokens",
            );
        }
    }
    let cost = take("calculatedTotalCost", "total_cost")
        .or_else(|| take("totalCost", "total_cost"))
        .filter(|(_, v)| v.as_f64().is_some());
    let details = take("costDetails", "cost_details");
    let detail_total = details
        .as_ref()
        .and_then(|(_, d)| d.get("total"))
        .filter(|v| v.as_f64().is_some());
    // Langfuse writes 0 for spans it did not price; only a priced generation has a cost.
    let cost = match (detail_total, cost) {
        (Some(total), _) => Some(("costDetails.total".to_owned(), total.clone())),
        (None, Some((key, cost)))
            if cost.as_f64() != Some(0.0) || kind.as_deref() == Some("GENERATION") =>
        {
            Some((key, cost))
        }
        _ => None,
    };
    if let Some((key, cost)) = cost {
        put(&mut item, report, &key, "cost", Some(cost));
    }
    if let Some((key, details)) =
        details.filter(|(_, d)| d.as_object().is_some_and(|d| !d.is_empty()))
    {
        report.kept(&key);
        item.insert("cost_details".to_owned(), details);
    }
    let level = take("level", "level").and_then(|(_, v)| v.as_str().map(str::to_owned));
    let message = take("statusMessage", "status_message");
    if level.as_deref() == Some("ERROR") {
        put(&mut item, report, "level", "status", Some(json!("error")));
        if let Some((key, message)) = message {
            put(&mut item, report, &key, "error_message", Some(message));
        }
    } else if let Some((key, message)) = message {
        report.kept(&key);
        item.insert("status_message".to_owned(), message);
    }
    let input = take("input", "input").map(|(_, v)| decoded(v));
    let output = take("output", "output").map(|(_, v)| decoded(v));
    let is_llm = matches!(kind.as_deref(), Some("GENERATION"));
    if let Some(input) = input {
        if is_llm
            && input
                .as_array()
                .is_some_and(|m| m.iter().all(|m| m.get("role").is_some()))
        {
            put(&mut item, report, "input", "prompt_messages", Some(input));
        } else {
            put(&mut item, report, "input", "input", Some(input));
        }
    }
    if let Some(output) = output {
        if is_llm && output.get("role").is_some() {
            put(
                &mut item,
                report,
                "output",
                "completion_message",
                Some(output),
            );
        } else {
            put(&mut item, report, "output", "output", Some(output));
        }
    }
    if let Some((key, Value::Object(metadata))) = take("metadata", "metadata") {
        let mut kept = Map::new();
        for (name, value) in metadata {
            let value = decoded(value);
            match name.as_str() {
                "resourceAttributes" => {
                    report.mapped(&format!("{key}.resourceAttributes"), "resource");
                    item.insert("resource".to_owned(), value);
                }
                "scope" => {
                    report.mapped(&format!("{key}.scope"), "scope");
                    item.insert("scope".to_owned(), value);
                }
                _ => {
                    report.mapped(&format!("{key}.{name}"), "metadata");
                    kept.insert(name, value);
                }
            }
        }
        if !kept.is_empty() {
            item.insert("metadata".to_owned(), Value::Object(kept));
        }
    }
    let tags = take("tags", "tags").filter(|(_, t)| t.as_array().is_some_and(|t| !t.is_empty()));
    if let Some((_, tags)) = tags {
        if let Value::Object(metadata) = item.entry("metadata").or_insert_with(|| json!({})) {
            metadata.insert("tags".to_owned(), tags);
            report.mapped("tags", "metadata.tags");
        }
    }
    if let Some(trace) = trace {
        for (value, field, source) in [
            (&trace.session, "session_identifier", "trace.sessionId"),
            (&trace.user, "customer_identifier", "trace.userId"),
        ] {
            if let Some(value) = value.clone().filter(|_| !item.contains_key(field)) {
                put(&mut item, report, source, field, Some(value));
            }
        }
    }
    for (key, why) in DERIVED {
        if row.remove(*key).is_some() {
            report.dropped(key, why);
        }
    }
    for (key, value) in row {
        if value.is_null()
            || value.as_str().is_some_and(str::is_empty)
            || value.as_array().is_some_and(Vec::is_empty)
            || value.as_object().is_some_and(Map::is_empty)
        {
            continue;
        }
        report.kept(&key);
        item.entry("langfuse").or_insert_with(|| json!({}));
        if let Some(Value::Object(kept)) = item.get_mut("langfuse") {
            kept.insert(key, decoded(value));
        }
    }
    if let Some(text) = item.get("span_unique_id").and_then(text_of) {
        item.insert("span_unique_id".to_owned(), Value::String(text));
    }
    Ok(item)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn decode(record: Value) -> super::super::PeerDecoded {
        super::super::decode_for_test(PeerSource::Langfuse, record)
    }

    #[test]
    fn blob_generations_become_llm_spans_with_usage_and_cost() {
        let decoded = decode(
            json!({"id": "dd4c3bfc6803f08b", "trace_id": "0e20000c167e4bfa9609d68689f78623",
            "project_id": "p", "type": "GENERATION", "parent_observation_id": "",
            "start_time": "2026-12-04 17:20:14.603972", "end_time": "2026-12-04 17:20:14.716",
            "name": "OpenAI-generation", "metadata": {"scope": "{\"name\":\"langfuse-sdk\"}", "channel": "web-chat"},
            "level": "DEFAULT", "provided_model_name": "gpt-4o-mini-2024-07-18",
            "model_parameters": "{\"temperature\":0.2,\"max_tokens\":512}",
            "usage_details": {"input": 864, "output": 125, "total": 989},
            "cost_details": {"input": 0.0001296, "output": 7.5e-05, "total": 0.0002046}, "total_cost": 0.0002046,
            "user_id": "cust-1", "session_id": "sess-1",
            "input": "[{\"role\":\"user\",\"content\":\"hi\"}]", "output": "{\"role\":\"assistant\",\"content\":\"hello\"}"}),
        );
        assert_eq!(decoded.decoded.rejected, vec![]);
        let span = &decoded.decoded.spans[0];
        assert_eq!(span.parent_id, None);
        assert_eq!(span.start.unix_nanos(), 1_796_404_814_603_972_000);
        assert_eq!(span.log_type.as_str(), "generation");
        assert_eq!(span.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(span.usage.prompt_tokens, Some(864));
        assert_eq!(span.cost, Some(0.0002046));
        assert_eq!(span.grouping.thread_identifier.as_deref(), Some("sess-1"));
        assert_eq!(span.grouping.customer_identifier.as_deref(), Some("cust-1"));
        assert_eq!(span.content["prompt_messages"][0]["content"], "hi");
        assert_eq!(span.content["scope"]["name"], "langfuse-sdk");
        assert_eq!(span.content["metadata"]["channel"], "web-chat");
    }

    #[test]
    fn ui_trace_rows_become_one_span_with_their_scores() {
        let decoded = decode(json!({"id": "21c933d121bc3f47ee9d935c3b151c9f",
            "timestamp": "2026-12-04T17:20:17.444Z", "name": "route_message", "userId": "cust-1",
            "sessionId": "sess-1", "tags": ["router"], "bookmarked": false, "public": false,
            "input": "{\"message\":\"hi\"}", "metadata": {"channel": "web-chat"},
            "comments": [], "user_feedback": [0], "correctness": null}));
        assert_eq!(decoded.decoded.rejected, vec![]);
        let span = &decoded.decoded.spans[0];
        assert_eq!(
            span.trace_id.to_string(),
            "21c933d121bc3f47ee9d935c3b151c9f"
        );
        assert_eq!(span.start.unix_nanos(), 1_796_404_817_444_000_000);
        assert_eq!(span.grouping.thread_identifier.as_deref(), Some("sess-1"));
        assert_eq!(span.content["input"]["message"], "hi");
        assert_eq!(span.content["metadata"]["tags"], json!(["router"]));
        assert_eq!(
            span.content["scores"]["user_feedback"]["numerical_value"],
            0
        );
        assert!(span.content["scores"].get("correctness").is_none());
    }

    #[test]
    fn trace_rows_and_scores_apart_give_no_span_and_say_why() {
        let decoded = decode(
            json!({"id": "t", "projectId": "p", "name": "x", "timestamp": "2026-12-04T17:20:15.978Z"}),
        );
        assert!(decoded.decoded.spans.is_empty());
        assert!(
            decoded
                .report
                .dropped
                .keys()
                .any(|k| k.starts_with("trace:"))
        );
    }
}
