//! Trace aggregates kept one span at a time, so that writing a span costs the same whether its
//! trace has one stored span or ten thousand.
//!
//! [`TraceState`] is a fold over [`SpanFacts`]: a store adds each span it writes and removes
//! the stored copy of each span it replaces, reading that copy's facts from its columns.
//! `trace::summarize` is the same fold over all of a trace's spans plus the root rule of
//! [`root_of`], so a state kept incrementally and a fresh summary agree by construction (a
//! store test checks it over random splits, orders and re-sends).
//!
//! Sums are exact and independent of order: costs are summed as integer femto-dollars, so a span
//! added and later subtracted leaves no rounding behind. A minimum or maximum cannot be
//! un-taken: removing the span that held one makes it unknown ([`TraceState::is_exact`] turns
//! false, unless a span added afterwards is at least as extreme) and the store then rebuilds the
//! state from the trace's stored facts. That happens only when a re-sent span moves its trace's
//! first start, last end or earliest grouping value inward, or takes its model away.
//!
//! The root is chosen by the store from what it indexes (see [`root_of`] for the rule) and
//! handed in with [`TraceState::set_root`]; the state keeps the root's name and grouping values
//! so it need not read the root again until the root changes.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::ids::TraceId;
use crate::query::SpanColumn;
use crate::span::{LogType, Span, SpanStatus};
use crate::time::Timestamp;
use crate::trace::TraceSummary;

/// Grouping fields a trace takes from its root (else its earliest span that has one), in the
/// order of [`SpanFacts::grouping`] and [`RootInfo::grouping`].
pub const GROUPING_FIELDS: [SpanColumn; 5] = [
    SpanColumn::Environment,
    SpanColumn::CustomerIdentifier,
    SpanColumn::SessionIdentifier,
    SpanColumn::ThreadIdentifier,
    SpanColumn::TraceGroupIdentifier,
];

/// Span fields whose distinct values a trace keeps (its models, and the facets a store indexes
/// so trace lists filter by span fields), in the order of [`SpanFacts::distinct`].
pub const DISTINCT_FIELDS: [SpanColumn; 6] = [
    SpanColumn::Model,
    SpanColumn::LogType,
    SpanColumn::Status,
    SpanColumn::ProviderId,
    SpanColumn::Environment,
    SpanColumn::CustomerIdentifier,
];

/// Where [`DISTINCT_FIELDS`] holds the status, whose counts tell how many spans run.
const STATUS_FIELD: usize = 2;

/// Femto-dollars per dollar: costs are summed as integers of this unit.
const FEMTO_PER_DOLLAR: f64 = 1e15;

/// What one span contributes to its trace's aggregates: the span's own columns, no content.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanFacts<'a> {
    /// The span's id.
    pub span_id: &'a str,
    /// Its parent's id, if it names one.
    pub parent_id: Option<&'a str>,
    /// Start of the work.
    pub start: Timestamp,
    /// End of the work.
    pub end: Timestamp,
    /// The client sent no time; such a span sets its trace's range only when no span has one.
    pub times_inferred: bool,
    /// A model call (see [`LogType::is_llm_call`]).
    pub llm_call: bool,
    /// Error status.
    pub error: bool,
    /// Token counts.
    pub prompt_tokens: Option<u64>,
    /// Token counts.
    pub completion_tokens: Option<u64>,
    /// Token counts.
    pub total_tokens: Option<u64>,
    /// Cost in USD.
    pub cost: Option<f64>,
    /// Values of [`GROUPING_FIELDS`], in order.
    pub grouping: [Option<&'a str>; 5],
    /// Values of [`DISTINCT_FIELDS`], in order.
    pub distinct: [Option<&'a str>; 6],
}

impl<'a> SpanFacts<'a> {
    /// The facts of a span.
    pub fn of(span: &'a Span) -> Self {
        let grouping = &span.grouping;
        Self {
            span_id: span.span_id.as_str(),
            parent_id: span.parent_id.as_ref().map(|parent| parent.as_str()),
            start: span.start,
            end: span.end,
            times_inferred: span.times_inferred,
            llm_call: span.log_type.is_llm_call(),
            error: span.status == SpanStatus::Error,
            prompt_tokens: span.usage.prompt_tokens,
            completion_tokens: span.usage.completion_tokens,
            total_tokens: span.usage.total_tokens,
            cost: span.cost,
            grouping: [
                grouping.environment.as_deref(),
                grouping.customer_identifier.as_deref(),
                grouping.session_identifier.as_deref(),
                grouping.thread_identifier.as_deref(),
                grouping.trace_group_identifier.as_deref(),
            ],
            distinct: [
                span.model.as_deref(),
                Some(span.log_type.as_str()),
                Some(span.status.as_str()),
                span.provider_id.as_deref(),
                grouping.environment.as_deref(),
                grouping.customer_identifier.as_deref(),
            ],
        }
    }

    /// Whether a stored log type (lowercase, as [`LogType::as_str`] gives it) is a model call.
    pub fn is_llm_call_kind(log_type: &str) -> bool {
        LogType::LLM_KINDS.contains(&log_type)
    }

    /// Whether the span is a root candidate of the first kind: it names no parent, or itself.
    pub fn is_parentless(&self) -> bool {
        self.parent_id.is_none_or(|parent| parent == self.span_id)
    }

    fn key(&self) -> SpanKey {
        SpanKey {
            start: self.start.unix_nanos(),
            span_id: self.span_id.to_owned(),
        }
    }
}

/// A span's place in start order: start, then span id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpanKey {
    /// Start in nanoseconds since the epoch.
    #[serde(rename = "s")]
    pub start: i64,
    /// The span's id.
    #[serde(rename = "i")]
    pub span_id: String,
}

/// The root of a trace as far as its aggregates need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootInfo {
    /// The root span's id.
    #[serde(rename = "i")]
    pub span_id: String,
    /// The trace's name: the root's `trace_name` when it sent one, else its span name.
    #[serde(rename = "n")]
    pub name: String,
    /// The root's values of [`GROUPING_FIELDS`].
    #[serde(rename = "g")]
    pub grouping: [Option<String>; 5],
}

impl RootInfo {
    /// The root information of a span.
    pub fn of(span: &Span) -> Self {
        let name = span
            .content
            .get("trace_name")
            .and_then(serde_json::Value::as_str)
            .filter(|name| !name.is_empty())
            .unwrap_or(&span.name)
            .to_owned();
        let facts = SpanFacts::of(span);
        Self {
            span_id: span.span_id.as_str().to_owned(),
            name,
            grouping: facts.grouping.map(|value| value.map(str::to_owned)),
        }
    }
}

/// The smallest key of a set of spans, or its lower bound once the span holding it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Least<K> {
    #[serde(rename = "k")]
    key: Option<K>,
    /// `key` is only a lower bound of the members (its holder was removed).
    #[serde(rename = "u", default, skip_serializing_if = "std::ops::Not::not")]
    unknown: bool,
}

impl<K> Default for Least<K> {
    fn default() -> Self {
        Self {
            key: None,
            unknown: false,
        }
    }
}

impl<K: Ord + Clone> Least<K> {
    fn add(&mut self, key: &K) {
        // A key at or below the bound is below every member, so it is the least for sure.
        if self.key.as_ref().is_none_or(|least| key <= least) {
            self.key = Some(key.clone());
            self.unknown = false;
        }
    }

    fn remove(&mut self, key: &K) {
        if !self.unknown && self.key.as_ref() == Some(key) {
            self.unknown = true;
        }
    }
}

/// The time range of a set of spans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Extent {
    #[serde(rename = "n")]
    count: u64,
    /// Least start.
    #[serde(rename = "s")]
    start: Least<i64>,
    /// Greatest end, negated so [`Least`] serves both ends.
    #[serde(rename = "e")]
    end: Least<i64>,
}

impl Extent {
    fn add(&mut self, facts: &SpanFacts<'_>) {
        self.count += 1;
        self.start.add(&facts.start.unix_nanos());
        self.end.add(&negate(facts.end.unix_nanos()));
    }

    fn remove(&mut self, facts: &SpanFacts<'_>) {
        self.count = self.count.saturating_sub(1);
        if self.count == 0 {
            *self = Extent::default();
        } else {
            self.start.remove(&facts.start.unix_nanos());
            self.end.remove(&negate(facts.end.unix_nanos()));
        }
    }

    fn is_exact(&self) -> bool {
        !self.start.unknown && !self.end.unknown
    }

    fn is_empty(&self) -> bool {
        *self == Extent::default()
    }

    fn range(&self) -> Option<(Timestamp, Timestamp)> {
        match (self.start.key, self.end.key) {
            (Some(start), Some(end)) if self.count > 0 => Some((
                Timestamp::from_unix_nanos(start),
                Timestamp::from_unix_nanos(negate(end)),
            )),
            _ => None,
        }
    }
}

fn negate(nanos: i64) -> i64 {
    // Timestamps never reach i64::MIN; saturate rather than overflow if one did.
    nanos.checked_neg().unwrap_or(i64::MAX)
}

/// The earliest span with a non-empty value of one grouping field, and that value.
type EarliestValue = Least<(SpanKey, String)>;

fn femto_dollars(cost: Option<f64>) -> i128 {
    // `as` saturates on overflow and maps NaN to 0: costs are validated finite before this.
    cost.map_or(0, |cost| (cost * FEMTO_PER_DOLLAR).round() as i128)
}

/// The aggregates of one trace in a form that takes spans in and out one at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceState {
    // Short names: the state is stored with its trace and rewritten on every write to it.
    #[serde(rename = "n")]
    spans: u64,
    #[serde(rename = "l")]
    llm_calls: u64,
    #[serde(rename = "e")]
    errors: u64,
    #[serde(rename = "pt")]
    prompt_tokens: u64,
    #[serde(rename = "ct")]
    completion_tokens: u64,
    #[serde(rename = "tt")]
    total_tokens: u64,
    #[serde(rename = "c")]
    cost_femto: i128,
    /// Spans that carried a time.
    #[serde(rename = "t", default)]
    timed: Extent,
    /// Spans whose times are their receive time.
    #[serde(rename = "u", default, skip_serializing_if = "Extent::is_empty")]
    untimed: Extent,
    /// The earliest span of all: the root when every span sits on a parent cycle.
    #[serde(rename = "f")]
    first: Least<SpanKey>,
    /// Per [`GROUPING_FIELDS`] entry.
    #[serde(rename = "g")]
    grouping: [EarliestValue; 5],
    /// Per [`DISTINCT_FIELDS`] entry: each value and how many spans have it.
    #[serde(rename = "d")]
    distinct: [BTreeMap<String, u64>; 6],
    #[serde(rename = "r")]
    root: Option<RootInfo>,
}

impl TraceState {
    /// The state of a trace whose spans have these facts (in any order).
    pub fn from_facts<'a>(facts: impl IntoIterator<Item = SpanFacts<'a>>) -> Self {
        let mut state = Self::default();
        for facts in facts {
            state.add(&facts);
        }
        state
    }

    /// Counts a span in.
    pub fn add(&mut self, facts: &SpanFacts<'_>) {
        self.spans += 1;
        self.llm_calls += u64::from(facts.llm_call);
        self.errors += u64::from(facts.error);
        // Token counts come from clients and may be absurd: saturate rather than overflow.
        self.prompt_tokens = self
            .prompt_tokens
            .saturating_add(facts.prompt_tokens.unwrap_or(0));
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(facts.completion_tokens.unwrap_or(0));
        self.total_tokens = self
            .total_tokens
            .saturating_add(facts.total_tokens.unwrap_or(0));
        self.cost_femto = self.cost_femto.saturating_add(femto_dollars(facts.cost));
        if facts.times_inferred {
            self.untimed.add(facts);
        } else {
            self.timed.add(facts);
        }
        let key = facts.key();
        self.first.add(&key);
        for (earliest, value) in self.grouping.iter_mut().zip(facts.grouping) {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                earliest.add(&(key.clone(), value.to_owned()));
            }
        }
        for (counts, value) in self.distinct.iter_mut().zip(facts.distinct) {
            if let Some(value) = value {
                *counts.entry(value.to_owned()).or_default() += 1;
            }
        }
    }

    /// Counts out a span that was counted in with these facts (a replaced or deleted span).
    pub fn remove(&mut self, facts: &SpanFacts<'_>) {
        self.spans = self.spans.saturating_sub(1);
        self.llm_calls = self.llm_calls.saturating_sub(u64::from(facts.llm_call));
        self.errors = self.errors.saturating_sub(u64::from(facts.error));
        self.prompt_tokens = self
            .prompt_tokens
            .saturating_sub(facts.prompt_tokens.unwrap_or(0));
        self.completion_tokens = self
            .completion_tokens
            .saturating_sub(facts.completion_tokens.unwrap_or(0));
        self.total_tokens = self
            .total_tokens
            .saturating_sub(facts.total_tokens.unwrap_or(0));
        self.cost_femto = self.cost_femto.saturating_sub(femto_dollars(facts.cost));
        if facts.times_inferred {
            self.untimed.remove(facts);
        } else {
            self.timed.remove(facts);
        }
        let key = facts.key();
        self.first.remove(&key);
        for (earliest, value) in self.grouping.iter_mut().zip(facts.grouping) {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                earliest.remove(&(key.clone(), value.to_owned()));
            }
        }
        for (counts, value) in self.distinct.iter_mut().zip(facts.distinct) {
            if let Some(value) = value {
                if let Some(count) = counts.get_mut(value) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        counts.remove(value);
                    }
                }
            }
        }
        if self.spans == 0 {
            *self = Self::default();
        }
    }

    /// Whether every aggregate is known; when not, rebuild the state with [`Self::from_facts`].
    pub fn is_exact(&self) -> bool {
        self.timed.is_exact()
            && self.untimed.is_exact()
            && !self.first.unknown
            && self.grouping.iter().all(|earliest| !earliest.unknown)
    }

    /// Number of spans counted in.
    pub fn span_count(&self) -> u64 {
        self.spans
    }

    /// The earliest span of the trace (start, then span id).
    pub fn first_span(&self) -> Option<&SpanKey> {
        self.first.key.as_ref()
    }

    /// The root last handed in.
    pub fn root(&self) -> Option<&RootInfo> {
        self.root.as_ref()
    }

    /// Sets the root, chosen by [`root_of`]'s rule.
    pub fn set_root(&mut self, root: Option<RootInfo>) {
        self.root = root;
    }

    /// The distinct values of each of [`DISTINCT_FIELDS`], with their span counts.
    pub fn distinct_values(&self) -> impl Iterator<Item = (SpanColumn, &str)> {
        DISTINCT_FIELDS
            .iter()
            .zip(&self.distinct)
            .flat_map(|(column, counts)| counts.keys().map(|value| (*column, value.as_str())))
    }

    /// The trace's start and end: over spans that carried a time, else over all.
    pub fn time_range(&self) -> Option<(Timestamp, Timestamp)> {
        self.timed.range().or_else(|| self.untimed.range())
    }

    /// The aggregates; `None` when no span is counted in.
    pub fn summary(&self, trace_id: &TraceId) -> Option<TraceSummary> {
        if self.spans == 0 {
            return None;
        }
        let (start, end) = self.time_range()?;
        let pick = |field: usize| -> Option<String> {
            self.root
                .as_ref()
                .and_then(|root| root.grouping[field].clone())
                .filter(|value| !value.is_empty())
                .or_else(|| {
                    self.grouping[field]
                        .key
                        .as_ref()
                        .map(|(_, value)| value.clone())
                })
        };
        Some(TraceSummary {
            trace_id: trace_id.clone(),
            root_span_id: self
                .root
                .as_ref()
                .and_then(|root| crate::ids::SpanId::try_from(root.span_id.clone()).ok()),
            name: self
                .root
                .as_ref()
                .map(|root| root.name.clone())
                .unwrap_or_default(),
            start,
            end,
            duration: end.seconds_since(start),
            span_count: self.spans,
            llm_call_count: self.llm_calls,
            error_count: self.errors,
            running_count: self.distinct[STATUS_FIELD]
                .get(SpanStatus::Running.as_str())
                .copied()
                .unwrap_or(0),
            total_prompt_tokens: self.prompt_tokens,
            total_completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            total_cost: self.cost_femto as f64 / FEMTO_PER_DOLLAR,
            environment: pick(0),
            customer_identifier: pick(1),
            session_identifier: pick(2),
            thread_identifier: pick(3),
            trace_group_identifier: pick(4),
            models: self.distinct[0]
                .keys()
                .filter(|model| !model.is_empty())
                .cloned()
                .collect(),
        })
    }
}

/// How a span can be its trace's root, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RootKind {
    /// It names no parent, or itself.
    Parentless = 0,
    /// It names a parent that is not in the trace (yet).
    Orphan = 1,
}

/// The root of a trace: the earliest parentless span (start, then span id), else the earliest
/// span whose parent is not in the trace, else (every span sits on or below a parent cycle) the
/// earliest span. Stores keep the candidates of the first two kinds indexed, so finding the
/// root never reads the whole trace.
pub fn root_of<S: Borrow<Span>>(spans: &[S]) -> Option<&Span> {
    let ids: HashSet<&str> = spans
        .iter()
        .map(|span| span.borrow().span_id.as_str())
        .collect();
    let kind = |span: &Span| -> Option<RootKind> {
        match span.parent_id.as_ref() {
            None => Some(RootKind::Parentless),
            Some(parent) if *parent == span.span_id => Some(RootKind::Parentless),
            Some(parent) if !ids.contains(parent.as_str()) => Some(RootKind::Orphan),
            Some(_) => None,
        }
    };
    let order = |span: &Span| (span.start, span.span_id.as_str().to_owned());
    spans
        .iter()
        .map(Borrow::borrow)
        .filter_map(|span| kind(span).map(|kind| (kind, order(span), span)))
        .min_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .map(|(_, _, span)| span)
        .or_else(|| {
            spans
                .iter()
                .map(Borrow::borrow)
                .min_by(|a, b| order(a).cmp(&order(b)))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::trace::summarize;

    fn span(id: &str, parent: Option<&str>, start_second: u32, extra: serde_json::Value) -> Span {
        let mut log = json!({
            "span_name": format!("{id}.task"),
            "start_time": format!("2025-01-01T00:00:{start_second:02}Z"),
        });
        if let (Some(log), Some(extra)) = (log.as_object_mut(), extra.as_object()) {
            log.extend(extra.clone());
        }
        crate::testing::span("t", id, parent, log)
    }

    fn trace_id() -> TraceId {
        TraceId::try_from("t".to_owned()).unwrap()
    }

    fn state_of(spans: &[Span]) -> TraceState {
        let mut state = TraceState::from_facts(spans.iter().map(SpanFacts::of));
        state.set_root(root_of(spans).map(RootInfo::of));
        state
    }

    #[test]
    fn running_spans_are_counted_until_they_end() {
        assert_eq!(DISTINCT_FIELDS[STATUS_FIELD], SpanColumn::Status);
        let open = span("a", None, 0, json!({"status": "running"}));
        let child = span("b", Some("a"), 1, json!({"latency": 2.0}));
        let mut state = state_of(&[open.clone(), child.clone()]);
        let summary = state.summary(&trace_id()).unwrap();
        assert_eq!((summary.running_count, summary.duration), (1, 3.0));
        let closed = span("a", None, 0, json!({"latency": 5.0}));
        state.remove(&SpanFacts::of(&open));
        state.add(&SpanFacts::of(&closed));
        let summary = state.summary(&trace_id()).unwrap();
        assert_eq!((summary.running_count, summary.duration), (0, 5.0));
        assert_eq!(Some(summary), summarize(&[closed, child]));
    }

    #[test]
    fn removing_and_re_adding_a_span_gives_back_the_same_summary() {
        let spans = vec![
            span(
                "a",
                None,
                0,
                json!({"customer_identifier": "acme", "cost": 0.1}),
            ),
            span("b", Some("a"), 1, json!({"model": "gpt-4o", "cost": 0.2})),
            span(
                "c",
                Some("a"),
                9,
                json!({"environment": "prod", "cost": 0.3}),
            ),
        ];
        let mut state = state_of(&spans);
        let before = state.summary(&trace_id()).unwrap();
        state.remove(&SpanFacts::of(&spans[1]));
        state.add(&SpanFacts::of(&spans[1]));
        assert!(state.is_exact());
        assert_eq!(state.summary(&trace_id()).unwrap(), before);
        // Integer sums: 0.1 + 0.2 + 0.3 with no float residue.
        assert_eq!(before.total_cost, 0.6);
        assert_eq!(before.models, vec!["gpt-4o".to_owned()]);
        assert_eq!(before.environment.as_deref(), Some("prod"));
    }

    #[test]
    fn removing_the_span_that_held_an_extreme_asks_for_a_rebuild() {
        let spans = vec![
            span("a", None, 0, json!({})),
            span("b", Some("a"), 9, json!({})),
        ];
        let mut state = state_of(&spans);
        state.remove(&SpanFacts::of(&spans[1]));
        assert!(!state.is_exact(), "the last end left");
        // The same span re-sent with an end at least as late restores it.
        let mut later = spans[1].clone();
        later.end = later.end.plus_seconds(5.0).unwrap();
        state.add(&SpanFacts::of(&later));
        assert!(state.is_exact());
        assert_eq!(
            state.time_range().unwrap().1.to_rfc3339(),
            "2025-01-01T00:00:15Z"
        );
    }

    #[test]
    fn root_prefers_parentless_then_orphans_then_the_earliest_span() {
        let parentless = vec![
            span("x", Some("gone"), 0, json!({})),
            span("r", None, 5, json!({})),
        ];
        assert_eq!(root_of(&parentless).unwrap().span_id.as_str(), "r");
        let orphans = vec![
            span("a", Some("b"), 0, json!({})),
            span("b", Some("a"), 1, json!({})),
            span("x", Some("gone"), 3, json!({})),
        ];
        assert_eq!(root_of(&orphans).unwrap().span_id.as_str(), "x");
        let cycle = vec![
            span("b", Some("a"), 1, json!({})),
            span("a", Some("b"), 0, json!({})),
        ];
        assert_eq!(root_of(&cycle).unwrap().span_id.as_str(), "a");
        assert!(root_of::<Span>(&[]).is_none());
    }

    #[test]
    fn state_round_trips_through_json() {
        let spans = vec![
            span(
                "a",
                None,
                0,
                json!({"customer_identifier": "acme", "cost": 1e-9}),
            ),
            span(
                "b",
                Some("a"),
                1,
                json!({"model": "gpt-4o", "prompt_tokens": 7}),
            ),
        ];
        let state = state_of(&spans);
        let text = serde_json::to_string(&state).unwrap();
        let back: TraceState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.summary(&trace_id()), summarize(&spans));
    }
}
