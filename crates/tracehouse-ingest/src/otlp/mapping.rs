//! OTLP span attributes to span-log fields: the one table of conventions ([`RULES`]), and the
//! [`Mapper`] that applies it.
//!
//! Every attribute ends up somewhere: either it provides a field, or it is kept in `metadata`
//! under its own key. That includes attributes a rule refuses (a model sent as a number is fine,
//! a model sent as a list is not) and attributes that lose to a better source of the same field
//! (`gen_ai.request.model` when `gen_ai.response.model` is present).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Number, Value};

use super::messages::{IndexedAttribute, IndexedList, build_indexed, semconv_messages};
use super::value::parse_json_text;

/// How an attribute's value becomes a field's value. A value of the wrong type is refused
/// (kept in metadata) rather than rejecting the span: span-log validation would reject a
/// `temperature` of `"warm"`, and a sloppy instrumentation should not cost the user the span.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A non-blank string; numbers and booleans are written out.
    Text,
    /// A number, also from its text.
    Number,
    /// A non-negative integer, also from its text.
    Count,
    /// `true`/`false`, also from that text.
    Flag,
    /// Any value, as is.
    Any,
    /// A log type through the convention's vocabulary; `None` for a word it does not map.
    LogType(fn(&str) -> Option<String>),
    /// An object, or JSON text holding one: each entry becomes an entry of the target object.
    Entries,
    /// `<prefix>N.<path>` attributes rebuilt into a list.
    Indexed(IndexedList),
    /// A GenAI semantic-convention message list (JSON text or structured).
    SemconvMessages,
}

/// One convention: the attribute `key` (or every key starting with it, for a prefix rule), the
/// span-log field it fills, and how. `target` is a field (`model`), an entry of an object field
/// (`usage.reasoning_tokens`), or for a prefix rule or [`Kind::Entries`] an object field whose
/// entries are named by the rest of the key or the object's keys (`metadata.*`).
#[derive(Debug)]
struct Rule {
    key: &'static str,
    prefix: bool,
    target: &'static str,
    kind: Kind,
}

const fn exact(key: &'static str, target: &'static str, kind: Kind) -> Rule {
    Rule {
        key,
        prefix: false,
        target,
        kind,
    }
}

const fn prefix(key: &'static str, target: &'static str, kind: Kind) -> Rule {
    Rule {
        key,
        prefix: true,
        target,
        kind,
    }
}

/// The conventions, by field. The first rule matching an attribute applies; when several
/// attributes fill one field, the one whose rule comes first wins. `keywordsai.*` attributes
/// (the SDKs' former name) are looked up as `respan.*`.
const RULES: &[Rule] = &[
    // Kind of span: an explicit log type first, then each framework's vocabulary.
    exact(
        "respan.entity.log_type",
        "log_type",
        Kind::LogType(explicit_log_type),
    ),
    exact(
        "traceloop.span.kind",
        "log_type",
        Kind::LogType(traceloop_span_kind),
    ),
    exact(
        "openinference.span.kind",
        "log_type",
        Kind::LogType(openinference_span_kind),
    ),
    exact(
        "gen_ai.operation.name",
        "log_type",
        Kind::LogType(genai_operation),
    ),
    exact(
        "llm.request.type",
        "log_type",
        Kind::LogType(llm_request_type),
    ),
    // Workflow structure and payload.
    exact("traceloop.workflow.name", "span_workflow_name", Kind::Text),
    exact("traceloop.entity.path", "span_path", Kind::Text),
    // Only used when the span itself has no name: the OTLP name comes first.
    exact("traceloop.entity.name", "span_name", Kind::Text),
    exact("traceloop.entity.input", "input", Kind::Any),
    exact("input.value", "input", Kind::Any),
    exact("traceloop.entity.output", "output", Kind::Any),
    exact("output.value", "output", Kind::Any),
    // Model, provider and request parameters; the model that answered beats the one asked for.
    exact("gen_ai.response.model", "model", Kind::Text),
    exact("gen_ai.request.model", "model", Kind::Text),
    exact("llm.model_name", "model", Kind::Text),
    exact("gen_ai.system", "provider_id", Kind::Text),
    exact("gen_ai.provider.name", "provider_id", Kind::Text),
    exact("llm.provider", "provider_id", Kind::Text),
    exact("llm.system", "provider_id", Kind::Text),
    exact("gen_ai.request.temperature", "temperature", Kind::Number),
    exact("gen_ai.request.max_tokens", "max_tokens", Kind::Count),
    exact("gen_ai.request.top_p", "top_p", Kind::Number),
    exact(
        "gen_ai.request.frequency_penalty",
        "frequency_penalty",
        Kind::Number,
    ),
    exact("llm.frequency_penalty", "frequency_penalty", Kind::Number),
    exact(
        "gen_ai.request.presence_penalty",
        "presence_penalty",
        Kind::Number,
    ),
    exact("llm.presence_penalty", "presence_penalty", Kind::Number),
    exact("llm.is_streaming", "stream", Kind::Flag),
    // Messages and tools. A list of several completions (n > 1) gives `completion_message`
    // (the first) and `completion_messages` (all).
    prefix(
        "gen_ai.prompt.",
        "prompt_messages",
        Kind::Indexed(IndexedList::Messages),
    ),
    exact(
        "gen_ai.input.messages",
        "prompt_messages",
        Kind::SemconvMessages,
    ),
    prefix(
        "llm.input_messages.",
        "prompt_messages",
        Kind::Indexed(IndexedList::OpenInferenceMessages),
    ),
    prefix(
        "gen_ai.completion.",
        "completion_message",
        Kind::Indexed(IndexedList::Messages),
    ),
    exact(
        "gen_ai.output.messages",
        "completion_message",
        Kind::SemconvMessages,
    ),
    prefix(
        "llm.output_messages.",
        "completion_message",
        Kind::Indexed(IndexedList::OpenInferenceMessages),
    ),
    prefix(
        "llm.request.functions.",
        "tools",
        Kind::Indexed(IndexedList::Functions),
    ),
    // Token counts; cache and reasoning counts go to `usage`, which span logs also carry.
    exact("gen_ai.usage.prompt_tokens", "prompt_tokens", Kind::Count),
    exact("gen_ai.usage.input_tokens", "prompt_tokens", Kind::Count),
    exact("llm.token_count.prompt", "prompt_tokens", Kind::Count),
    exact(
        "gen_ai.usage.completion_tokens",
        "completion_tokens",
        Kind::Count,
    ),
    exact(
        "gen_ai.usage.output_tokens",
        "completion_tokens",
        Kind::Count,
    ),
    exact(
        "llm.token_count.completion",
        "completion_tokens",
        Kind::Count,
    ),
    exact("llm.usage.total_tokens", "total_tokens", Kind::Count),
    exact("gen_ai.usage.total_tokens", "total_tokens", Kind::Count),
    exact("llm.token_count.total", "total_tokens", Kind::Count),
    exact(
        "gen_ai.usage.cache_read_input_tokens",
        "usage.cache_read_input_tokens",
        Kind::Count,
    ),
    exact(
        "gen_ai.usage.cache_read.input_tokens",
        "usage.cache_read_input_tokens",
        Kind::Count,
    ),
    exact(
        "llm.token_count.prompt_details.cache_read",
        "usage.cache_read_input_tokens",
        Kind::Count,
    ),
    exact(
        "gen_ai.usage.cache_creation_input_tokens",
        "usage.cache_creation_input_tokens",
        Kind::Count,
    ),
    exact(
        "gen_ai.usage.cache_creation.input_tokens",
        "usage.cache_creation_input_tokens",
        Kind::Count,
    ),
    exact(
        "llm.token_count.prompt_details.cache_write",
        "usage.cache_creation_input_tokens",
        Kind::Count,
    ),
    exact(
        "gen_ai.usage.reasoning_tokens",
        "usage.reasoning_tokens",
        Kind::Count,
    ),
    exact(
        "llm.token_count.completion_details.reasoning",
        "usage.reasoning_tokens",
        Kind::Count,
    ),
    // Cost as the application reported it (OpenInference); without it the price table prices
    // the tokens.
    exact("llm.cost.total", "cost", Kind::Number),
    // Grouping: the Respan SDK's parameters first, then other conventions' equivalents.
    exact(
        "respan.customer_params.customer_identifier",
        "customer_identifier",
        Kind::Text,
    ),
    prefix("respan.customer_params.", "customer_params.*", Kind::Any),
    exact(
        "respan.threads.thread_identifier",
        "thread_identifier",
        Kind::Text,
    ),
    exact(
        "respan.sessions.session_identifier",
        "session_identifier",
        Kind::Text,
    ),
    exact(
        "respan.trace.trace_group_identifier",
        "trace_group_identifier",
        Kind::Text,
    ),
    exact("respan.environment", "environment", Kind::Text),
    exact("user.id", "customer_identifier", Kind::Text),
    exact("session.id", "session_identifier", Kind::Text),
    exact("gen_ai.conversation.id", "thread_identifier", Kind::Text),
    exact("deployment.environment.name", "environment", Kind::Text),
    exact("deployment.environment", "environment", Kind::Text),
    // The user's own metadata and properties.
    prefix("respan.metadata.", "metadata.*", Kind::Any),
    exact("respan.metadata", "metadata.*", Kind::Entries),
    exact("metadata", "metadata.*", Kind::Entries),
    prefix("traceloop.association.properties.", "metadata.*", Kind::Any),
    prefix("respan.properties.", "properties.*", Kind::Any),
    exact("respan.properties", "properties.*", Kind::Entries),
];

fn explicit_log_type(word: &str) -> Option<String> {
    Some(word.trim().to_ascii_lowercase()).filter(|word| !word.is_empty())
}

fn traceloop_span_kind(word: &str) -> Option<String> {
    let word = word.trim().to_ascii_lowercase();
    matches!(word.as_str(), "workflow" | "task" | "agent" | "tool").then_some(word)
}

fn openinference_span_kind(word: &str) -> Option<String> {
    match word.trim().to_ascii_lowercase().as_str() {
        "" | "unknown" => None,
        "llm" => Some("chat".to_owned()),
        other => Some(other.to_owned()),
    }
}

fn genai_operation(word: &str) -> Option<String> {
    let kind = match word.trim() {
        "chat" => "chat",
        "text_completion" => "completion",
        "embeddings" => "embedding",
        "generate_content" => "generation",
        "execute_tool" => "tool",
        "create_agent" | "invoke_agent" => "agent",
        _ => return None,
    };
    Some(kind.to_owned())
}

fn llm_request_type(word: &str) -> Option<String> {
    let word = word.trim().to_ascii_lowercase();
    matches!(word.as_str(), "chat" | "completion" | "embedding").then_some(word)
}

/// The rule for an attribute key, with its position in [`RULES`] and, for a prefix rule, the
/// rest of the key.
fn rule_for(key: &str) -> Option<(usize, &'static Rule, &str)> {
    let lookup: Cow<'_, str> = match key.strip_prefix("keywordsai.") {
        Some(rest) => Cow::Owned(format!("respan.{rest}")),
        None => Cow::Borrowed(key),
    };
    RULES.iter().enumerate().find_map(|(position, rule)| {
        let rest_len = if rule.prefix {
            let rest = lookup.strip_prefix(rule.key)?;
            (!rest.is_empty()).then_some(rest.len())?
        } else {
            (lookup == rule.key).then_some(0)?
        };
        // The rest is a suffix of both spellings of the key.
        let rest = key.get(key.len() - rest_len..).unwrap_or_default();
        Some((position, rule, rest))
    })
}

/// The span-log field an attribute key fills under the conventions, when a rule takes it
/// (`metadata.*` for the user's metadata); for reports of what an import mapped.
pub(crate) fn target_of(key: &str) -> Option<&'static str> {
    rule_for(key).map(|(_, rule, _)| rule.target)
}

/// A converted value, and the value as sent when conversion changed it (kept if it loses).
struct Converted {
    value: Value,
    sent: Option<Value>,
}

fn convert(kind: Kind, value: Value) -> Result<Converted, Value> {
    let changed = |value, sent| {
        Ok(Converted {
            value,
            sent: Some(sent),
        })
    };
    match (kind, value) {
        (_, Value::Null) => Err(Value::Null),
        (Kind::Text, Value::String(text)) if !text.trim().is_empty() => Ok(Converted {
            value: Value::String(text),
            sent: None,
        }),
        (Kind::Text, sent @ (Value::Number(_) | Value::Bool(_))) => {
            changed(Value::String(sent.to_string()), sent)
        }
        (Kind::Number, Value::Number(number)) => Ok(Converted {
            value: Value::Number(number),
            sent: None,
        }),
        (Kind::Number, Value::String(text)) => {
            match text.trim().parse::<f64>().ok().and_then(Number::from_f64) {
                Some(number) => changed(Value::Number(number), Value::String(text)),
                None => Err(Value::String(text)),
            }
        }
        (Kind::Count, sent) => match count_of(&sent) {
            Some(count) if sent.as_u64() == Some(count) => Ok(Converted {
                value: sent,
                sent: None,
            }),
            Some(count) => changed(Value::from(count), sent),
            None => Err(sent),
        },
        (Kind::Flag, Value::Bool(flag)) => Ok(Converted {
            value: Value::Bool(flag),
            sent: None,
        }),
        (Kind::Flag, Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => changed(Value::Bool(true), Value::String(text)),
            "false" => changed(Value::Bool(false), Value::String(text)),
            _ => Err(Value::String(text)),
        },
        (Kind::LogType(vocabulary), Value::String(text)) => match vocabulary(&text) {
            Some(kind) => changed(Value::String(kind), Value::String(text)),
            None => Err(Value::String(text)),
        },
        (Kind::SemconvMessages, sent) => match semconv_messages(sent.clone()) {
            Ok(messages) => changed(messages, sent),
            Err(_) => Err(sent),
        },
        (Kind::Any, value) => Ok(Converted { value, sent: None }),
        (_, other) => Err(other),
    }
}

fn count_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// An object, or JSON text holding one.
fn entries_of(value: Value) -> Result<Map<String, Value>, Value> {
    match value {
        Value::Object(entries) => Ok(entries),
        Value::String(text) => match parse_json_text(&text) {
            Some(Value::Object(entries)) => Ok(entries),
            _ => Err(Value::String(text)),
        },
        other => Err(other),
    }
}

/// Where a value goes: a field, or an entry of an object field.
type Place = (&'static str, Option<String>);

fn place_of(target: &'static str, entry_name: &str) -> Place {
    match target.split_once('.') {
        Some((field, "*")) => (field, Some(entry_name.to_owned())),
        Some((field, entry)) => (field, Some(entry.to_owned())),
        None => (target, None),
    }
}

/// A value holding a place, ranked by where its source stands (lower is better).
struct Slot {
    place: Place,
    rank: usize,
    /// The attribute key it came from, for metadata if it loses.
    source: String,
    value: Value,
    sent: Option<Value>,
    /// Resource attributes are all kept in `resource`; a losing one needs no metadata copy.
    keep_if_lost: bool,
}

/// Collects the fields of one span from its attributes and its resource's, then writes them
/// into the span-log item.
#[derive(Default)]
pub(super) struct Mapper {
    slots: Vec<Slot>,
    by_place: HashMap<Place, usize>,
    /// Indexed lists by rank, rebuilt once every attribute is seen.
    lists: BTreeMap<usize, (&'static Rule, Vec<IndexedAttribute>)>,
    /// Attributes no rule took, in order: they become `metadata` entries.
    unmapped: Vec<(String, Value)>,
}

impl Mapper {
    /// Fills a field from the span itself (the OTLP name): it outranks every attribute.
    pub(super) fn span_field(&mut self, field: &'static str, value: Value) {
        self.assign(Slot {
            place: (field, None),
            rank: 0,
            source: field.to_owned(),
            value,
            sent: None,
            keep_if_lost: false,
        });
    }

    /// Offers the span's attributes, in order.
    pub(super) fn span_attributes(&mut self, attributes: Vec<(String, Value)>) {
        for (key, value) in attributes {
            self.offer(key, value, 1, true);
        }
    }

    /// Offers the resource's attributes: below every span attribute, so that a service-wide
    /// `deployment.environment` only fills what the span did not say.
    pub(super) fn resource_attributes(&mut self, attributes: Vec<(String, Value)>) {
        for (key, value) in attributes {
            self.offer(key, value, 1 + RULES.len(), false);
        }
    }

    fn offer(&mut self, key: String, value: Value, rank_base: usize, keep_if_lost: bool) {
        let Some((position, rule, rest)) = rule_for(&key) else {
            if keep_if_lost {
                self.unmapped.push((key, value));
            }
            return;
        };
        let rank = rank_base + position;
        match rule.kind {
            Kind::Indexed(_) if !keep_if_lost => {}
            Kind::Indexed(_) => {
                let rest = rest.to_owned();
                let list = self.lists.entry(rank).or_insert_with(|| (rule, Vec::new()));
                list.1.push(IndexedAttribute { key, rest, value });
            }
            Kind::Entries => match entries_of(value) {
                Ok(entries) => {
                    for (name, value) in entries {
                        self.assign(Slot {
                            place: place_of(rule.target, &name),
                            rank,
                            source: format!("{key}.{name}"),
                            value,
                            sent: None,
                            keep_if_lost,
                        });
                    }
                }
                Err(value) => self.refuse(key, value, keep_if_lost),
            },
            kind => match convert(kind, value) {
                Ok(converted) => {
                    let place = place_of(rule.target, rest);
                    self.assign(Slot {
                        place,
                        rank,
                        source: key,
                        value: converted.value,
                        sent: converted.sent,
                        keep_if_lost,
                    });
                }
                Err(value) => self.refuse(key, value, keep_if_lost),
            },
        }
    }

    fn refuse(&mut self, key: String, value: Value, keep: bool) {
        if keep {
            self.unmapped.push((key, value));
        }
    }

    fn assign(&mut self, slot: Slot) {
        match self.by_place.get(&slot.place) {
            None => {
                self.by_place.insert(slot.place.clone(), self.slots.len());
                self.slots.push(slot);
            }
            Some(&held) if self.slots[held].rank <= slot.rank => self.lose(slot),
            Some(&held) => {
                let lost = std::mem::replace(&mut self.slots[held], slot);
                self.lose(lost);
            }
        }
    }

    fn lose(&mut self, slot: Slot) {
        if slot.keep_if_lost {
            self.unmapped
                .push((slot.source, slot.sent.unwrap_or(slot.value)));
        }
    }

    /// Writes every field into `item`, and what no field took into `item["metadata"]`.
    pub(super) fn finish(mut self, item: &mut Map<String, Value>) {
        for (rank, (rule, attributes)) in std::mem::take(&mut self.lists) {
            let place = place_of(rule.target, "");
            let outranked = self
                .by_place
                .get(&place)
                .is_some_and(|&held| self.slots[held].rank < rank);
            if outranked {
                self.unmapped.extend(
                    attributes
                        .into_iter()
                        .map(|attribute| (attribute.key, attribute.value)),
                );
                continue;
            }
            let Kind::Indexed(list) = rule.kind else {
                continue;
            };
            let mut unplaced = Vec::new();
            let built = build_indexed(list, attributes, &mut unplaced);
            self.unmapped.append(&mut unplaced);
            if let Some(value) = built {
                self.assign(Slot {
                    place,
                    rank,
                    source: rule.key.trim_end_matches('.').to_owned(),
                    value,
                    sent: None,
                    keep_if_lost: true,
                });
            }
        }

        for slot in self.slots {
            match slot.place {
                ("completion_message", None) => match slot.value {
                    Value::Array(mut messages) => {
                        if messages.len() > 1 {
                            item.insert(
                                "completion_messages".to_owned(),
                                Value::Array(messages.clone()),
                            );
                        }
                        if !messages.is_empty() {
                            item.insert("completion_message".to_owned(), messages.swap_remove(0));
                        }
                    }
                    other => {
                        item.insert("completion_message".to_owned(), other);
                    }
                },
                (field, None) => {
                    item.insert(field.to_owned(), slot.value);
                }
                (field, Some(entry)) => {
                    if let Value::Object(object) = item
                        .entry(field)
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        object.insert(entry, slot.value);
                    }
                }
            }
        }

        if self.unmapped.is_empty() {
            return;
        }
        if let Value::Object(metadata) = item
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
        {
            for (key, value) in self.unmapped {
                insert_unique(metadata, key, value);
            }
        }
    }
}

/// Inserts without overwriting: a key already taken (by `respan.metadata.<key>`, which is the
/// user's explicit metadata) gets a `#2`, `#3`... suffix, so nothing sent is lost.
fn insert_unique(object: &mut Map<String, Value>, key: String, value: Value) {
    if !object.contains_key(&key) {
        object.insert(key, value);
        return;
    }
    let mut suffix = 2;
    loop {
        let candidate = format!("{key}#{suffix}");
        if !object.contains_key(&candidate) {
            object.insert(candidate, value);
            return;
        }
        suffix += 1;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(attributes: Value) -> Map<String, Value> {
        let Value::Object(attributes) = attributes else {
            panic!("attributes must be an object");
        };
        let mut mapper = Mapper::default();
        mapper.span_attributes(attributes.into_iter().collect());
        let mut item = Map::new();
        mapper.finish(&mut item);
        item
    }

    #[test]
    fn every_rule_is_reachable_and_targets_a_place() {
        for (position, rule) in RULES.iter().enumerate() {
            let key = if rule.prefix {
                format!("{}x", rule.key)
            } else {
                rule.key.to_owned()
            };
            let found = rule_for(&key).map(|(found, _, _)| found);
            assert_eq!(
                found,
                Some(position),
                "{} is shadowed by an earlier rule",
                rule.key
            );
            let star = rule.target.ends_with(".*");
            let takes_names = (rule.prefix && !matches!(rule.kind, Kind::Indexed(_)))
                || matches!(rule.kind, Kind::Entries);
            assert_eq!(
                star, takes_names,
                "{}: a `.*` target needs a name",
                rule.key
            );
        }
    }

    #[test]
    fn first_listed_source_wins_and_losers_are_kept() {
        let item = map(json!({
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "llm.model_name": "other",
        }));
        assert_eq!(item.get("model"), Some(&json!("gpt-4o-2024-08-06")));
        assert_eq!(
            item.get("metadata"),
            Some(&json!({"gen_ai.request.model": "gpt-4o", "llm.model_name": "other"}))
        );
    }

    #[test]
    fn refused_values_stay_in_metadata_as_sent() {
        let item = map(json!({
            "gen_ai.request.temperature": "0.5",
            "gen_ai.request.max_tokens": -1,
            "gen_ai.request.model": ["a"],
            "llm.is_streaming": "TRUE",
            "respan.customer_params.customer_identifier": 42,
            "traceloop.span.kind": "unknown",
            "traceloop.entity.path": "",
        }));
        assert_eq!(item.get("temperature"), Some(&json!(0.5)));
        assert_eq!(item.get("stream"), Some(&json!(true)));
        assert_eq!(item.get("customer_identifier"), Some(&json!("42")));
        assert_eq!(
            item.get("metadata"),
            Some(&json!({
                "gen_ai.request.max_tokens": -1,
                "gen_ai.request.model": ["a"],
                "traceloop.span.kind": "unknown",
                "traceloop.entity.path": "",
            }))
        );
        for field in ["max_tokens", "model", "log_type", "span_path"] {
            assert!(!item.contains_key(field), "{field}");
        }
    }

    #[test]
    fn keywordsai_keys_read_as_respan() {
        let item = map(json!({
            "keywordsai.entity.log_type": "Agent",
            "keywordsai.metadata.plan": "pro",
            "keywordsai.customer_params.email": "a@b.c",
        }));
        assert_eq!(item.get("log_type"), Some(&json!("agent")));
        assert_eq!(item.get("metadata"), Some(&json!({"plan": "pro"})));
        assert_eq!(
            item.get("customer_params"),
            Some(&json!({"email": "a@b.c"}))
        );
    }

    #[test]
    fn metadata_never_overwrites() {
        let item = map(json!({
            "respan.metadata.plan": "pro",
            "respan.metadata": "{\"plan\": \"free\", \"run\": 1}",
            "plan": "raw attribute",
        }));
        assert_eq!(
            item.get("metadata"),
            Some(
                &json!({"plan": "pro", "run": 1, "respan.metadata.plan": "free", "plan#2": "raw attribute"})
            )
        );
    }

    #[test]
    fn losing_message_lists_are_kept_whole() {
        let item = map(json!({
            "gen_ai.input.messages": "[{\"role\": \"user\", \"parts\": [{\"type\": \"text\", \"content\": \"a\"}]}]",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "b",
            "llm.input_messages.0.message.content": "c",
        }));
        assert_eq!(
            item.get("prompt_messages"),
            Some(&json!([{"role": "user", "content": "b"}]))
        );
        let metadata = item.get("metadata").and_then(Value::as_object);
        let kept: Vec<&str> = metadata
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            kept,
            [
                "gen_ai.input.messages",
                "llm.input_messages.0.message.content"
            ]
        );
        let text = metadata
            .and_then(|m| m.get("gen_ai.input.messages"))
            .and_then(Value::as_str);
        assert!(
            text.is_some_and(|text| text.starts_with("[{\"role\": \"user\", \"parts\"")),
            "{text:?}"
        );
    }

    #[test]
    fn several_completions_give_the_first_and_the_list() {
        let item = map(json!({
            "gen_ai.completion.0.content": "a",
            "gen_ai.completion.1.content": "b",
        }));
        assert_eq!(
            item.get("completion_message"),
            Some(&json!({"content": "a"}))
        );
        assert_eq!(
            item.get("completion_messages"),
            Some(&json!([{"content": "a"}, {"content": "b"}]))
        );
    }

    #[test]
    fn resource_attributes_fill_only_what_the_span_left() {
        let mut mapper = Mapper::default();
        mapper.span_attributes(vec![("respan.environment".into(), json!("staging"))]);
        mapper.resource_attributes(vec![
            ("deployment.environment.name".into(), json!("prod")),
            ("user.id".into(), json!("u1")),
            ("service.name".into(), json!("svc")),
            ("gen_ai.prompt.0.content".into(), json!("ignored")),
        ]);
        let mut item = Map::new();
        mapper.finish(&mut item);
        assert_eq!(
            item,
            json!({"environment": "staging", "customer_identifier": "u1"})
                .as_object()
                .cloned()
                .unwrap()
        );
    }
}
