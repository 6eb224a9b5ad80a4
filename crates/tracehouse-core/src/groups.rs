//! Traces grouped by conversation (thread) or by customer: the aggregates behind the threads and
//! users lists.
//!
//! A trace belongs to the thread and the customer its summary names ([`TraceSummary`]'s
//! `thread_identifier` and `customer_identifier`: the root's value, else the first span's), so
//! a group is a fold over trace summaries. [`GroupFold`] is that fold, the definition every
//! store must agree with: stores that keep trace aggregates (SQLite) compute the same sums in
//! SQL, the others (ClickHouse) feed it the summaries they compute.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::ids::TraceId;
use crate::query::{
    Condition, Direction, FieldType, Page, QueryError, Sort, TraceColumn, TraceQuery,
    parse_condition, parse_trace_filters,
};
use crate::span::Span;
use crate::store::Listing;
use crate::time::Timestamp;
use crate::trace::TraceSummary;
use crate::trace_filter::{TraceValue, value_matches};

/// What traces are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grouping {
    /// `thread_identifier`: a conversation.
    Thread,
    /// `customer_identifier`: a user of the application.
    Customer,
}

impl Grouping {
    /// The trace column holding the group's key.
    pub fn key_column(self) -> TraceColumn {
        match self {
            Grouping::Thread => TraceColumn::ThreadIdentifier,
            Grouping::Customer => TraceColumn::CustomerIdentifier,
        }
    }

    /// The key's API name.
    pub fn key_name(self) -> &'static str {
        self.key_column().api_name()
    }

    /// The group a trace belongs to, `None` when it names none (an empty key counts as none).
    pub fn key_of(self, summary: &TraceSummary) -> Option<&str> {
        let key = match self {
            Grouping::Thread => summary.thread_identifier.as_deref(),
            Grouping::Customer => summary.customer_identifier.as_deref(),
        };
        key.filter(|key| !key.is_empty())
    }
}

/// A group aggregate that can be filtered and sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupColumn {
    /// The key (`thread_identifier` or `customer_identifier`).
    Key,
    /// `first_seen`: the earliest trace start.
    FirstSeen,
    /// `last_seen`: the latest trace end.
    LastSeen,
    /// `trace_count`.
    TraceCount,
    /// `thread_count`: distinct threads (customers only).
    ThreadCount,
    /// `number_of_requests` (also `total_requests`): spans.
    Requests,
    /// `llm_call_count`.
    LlmCallCount,
    /// `error_count`.
    ErrorCount,
    /// `total_cost`.
    TotalCost,
    /// `total_tokens`.
    TotalTokens,
    /// `total_prompt_tokens`.
    TotalPromptTokens,
    /// `total_completion_tokens`.
    TotalCompletionTokens,
    /// `average_latency`: mean trace duration in seconds.
    AverageLatency,
    /// `active_days`: distinct UTC days on which a trace started (customers only).
    ActiveDays,
    /// `name`: the profile's display name (customers only).
    Name,
    /// `email`: the profile's email (customers only).
    Email,
}

const GROUP_COLUMNS: &[(&str, GroupColumn, FieldType)] = &[
    ("first_seen", GroupColumn::FirstSeen, FieldType::Time),
    ("last_seen", GroupColumn::LastSeen, FieldType::Time),
    ("trace_count", GroupColumn::TraceCount, FieldType::Number),
    ("thread_count", GroupColumn::ThreadCount, FieldType::Number),
    (
        "number_of_requests",
        GroupColumn::Requests,
        FieldType::Number,
    ),
    ("total_requests", GroupColumn::Requests, FieldType::Number),
    (
        "llm_call_count",
        GroupColumn::LlmCallCount,
        FieldType::Number,
    ),
    ("error_count", GroupColumn::ErrorCount, FieldType::Number),
    ("total_cost", GroupColumn::TotalCost, FieldType::Number),
    ("total_tokens", GroupColumn::TotalTokens, FieldType::Number),
    (
        "total_prompt_tokens",
        GroupColumn::TotalPromptTokens,
        FieldType::Number,
    ),
    (
        "total_completion_tokens",
        GroupColumn::TotalCompletionTokens,
        FieldType::Number,
    ),
    (
        "average_latency",
        GroupColumn::AverageLatency,
        FieldType::Number,
    ),
    ("active_days", GroupColumn::ActiveDays, FieldType::Number),
    ("name", GroupColumn::Name, FieldType::String),
    ("email", GroupColumn::Email, FieldType::String),
];

impl GroupColumn {
    /// Whether `grouping` has this column: thread counts, active days and the profile's name
    /// and email describe customers only.
    pub fn applies_to(self, grouping: Grouping) -> bool {
        grouping == Grouping::Customer
            || !matches!(
                self,
                GroupColumn::ThreadCount
                    | GroupColumn::ActiveDays
                    | GroupColumn::Name
                    | GroupColumn::Email
            )
    }

    /// Looks a column up by its API name, among the columns of `grouping`.
    pub fn from_api(name: &str, grouping: Grouping) -> Option<(GroupColumn, FieldType)> {
        if name == grouping.key_name() {
            return Some((GroupColumn::Key, FieldType::String));
        }
        GROUP_COLUMNS
            .iter()
            .find(|(n, column, _)| *n == name && column.applies_to(grouping))
            .map(|(_, column, kind)| (*column, *kind))
    }

    /// Every API name of a grouping, for error messages.
    pub fn api_names(grouping: Grouping) -> impl Iterator<Item = &'static str> {
        std::iter::once(grouping.key_name()).chain(
            GROUP_COLUMNS
                .iter()
                .filter(move |(_, column, _)| column.applies_to(grouping))
                .map(|(n, _, _)| *n),
        )
    }
}

/// A threads or users list request.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupQuery {
    /// Thread or customer.
    pub grouping: Grouping,
    /// Which traces count: its conditions, span filter, time range and `as_of` (its sort and
    /// page are not used). Traces without a key never count.
    pub traces: TraceQuery,
    /// Conditions on the group aggregates, all must hold.
    pub conditions: Vec<Condition<GroupColumn>>,
    /// Order; ties are broken by the key in the same direction.
    pub sort: Sort<GroupColumn>,
    /// Which page.
    pub page: Page,
    /// Only these groups, when given (one user, one thread, or the groups of a page).
    pub keys: Option<Vec<String>>,
    /// Cost over time for each listed group, when asked.
    pub cost_series: Option<CostSeries>,
}

/// Buckets of equal length from `start`: the cost of a group's traces by their start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostSeries {
    /// Start of the first bucket.
    pub start: Timestamp,
    /// Bucket length in nanoseconds, positive.
    pub step_ns: i64,
    /// Number of buckets.
    pub buckets: usize,
}

impl CostSeries {
    /// The bucket holding `at`, `None` outside the series.
    pub fn bucket_of(&self, at: Timestamp) -> Option<usize> {
        let offset = at.unix_nanos().checked_sub(self.start.unix_nanos())?;
        if offset < 0 || self.step_ns <= 0 {
            return None;
        }
        usize::try_from(offset / self.step_ns)
            .ok()
            .filter(|bucket| *bucket < self.buckets)
    }

    /// `buckets` buckets of `step_ns` aligned to the step (UTC), the last holding `now`.
    pub fn ending_at(now: Timestamp, step_ns: i64, buckets: usize) -> Option<Self> {
        if step_ns <= 0 || buckets == 0 {
            return None;
        }
        let last = now.unix_nanos().div_euclid(step_ns).checked_mul(step_ns)?;
        let back = step_ns.checked_mul(i64::try_from(buckets - 1).ok()?)?;
        Some(Self {
            start: Timestamp::from_unix_nanos(last.checked_sub(back)?),
            step_ns,
            buckets,
        })
    }
}

impl GroupQuery {
    /// Every group of a grouping, most recently active first.
    pub fn new(grouping: Grouping) -> Self {
        Self {
            grouping,
            traces: TraceQuery::default(),
            conditions: Vec::new(),
            sort: Sort {
                column: GroupColumn::LastSeen,
                direction: Direction::Descending,
            },
            page: Page::default(),
            keys: None,
            cost_series: None,
        }
    }
}

/// One thread or customer and the aggregates of its traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceGroup {
    /// The thread or customer identifier.
    pub key: String,
    /// Earliest trace start.
    pub first_seen: Timestamp,
    /// Latest trace end.
    pub last_seen: Timestamp,
    /// Traces.
    pub trace_count: u64,
    /// Distinct threads among the traces (0 for threads).
    pub thread_count: u64,
    /// Spans of the traces.
    pub span_count: u64,
    /// Model calls.
    pub llm_call_count: u64,
    /// Spans with error status.
    pub error_count: u64,
    /// Sum of prompt tokens.
    pub total_prompt_tokens: u64,
    /// Sum of completion tokens.
    pub total_completion_tokens: u64,
    /// Sum of total tokens.
    pub total_tokens: u64,
    /// Sum of costs in USD.
    pub total_cost: f64,
    /// Mean trace duration in seconds.
    pub average_latency: f64,
    /// Median trace duration in seconds (nearest rank).
    pub latency_p50: f64,
    /// The earliest trace (by start, then id): where a thread's conversation begins. Every
    /// group a store lists has one; `None` only describes a customer known by profile alone.
    pub first_trace_id: Option<TraceId>,
    /// For threads: the customer of the earliest trace that names one.
    pub customer_identifier: Option<String>,
    /// Cost per bucket of the query's [`CostSeries`] (empty when none was asked).
    pub cost_series: Vec<f64>,
    /// For customers: distinct UTC days on which one of the traces started ([`utc_day`]).
    pub active_days: u64,
    /// For customers: mean time to first token (seconds) over the traces' model calls that
    /// report one ([`llm_ttft`]); `None` when none does. Stores fill it for the listed groups
    /// only: it is shown, not filtered or sorted on.
    pub average_ttft: Option<f64>,
    /// For customers: the profile's display name ([`CustomerProfile::field`] `name`).
    ///
    /// [`CustomerProfile::field`]: crate::store::CustomerProfile::field
    pub name: Option<String>,
    /// For customers: the profile's email.
    pub email: Option<String>,
}

impl TraceGroup {
    /// A group with no traces yet, seen at `at`: what a fold starts from, and a customer known
    /// by profile alone.
    pub fn empty(key: &str, at: Timestamp) -> Self {
        Self {
            key: key.to_owned(),
            first_seen: at,
            last_seen: at,
            trace_count: 0,
            thread_count: 0,
            span_count: 0,
            llm_call_count: 0,
            error_count: 0,
            total_prompt_tokens: 0,
            total_completion_tokens: 0,
            total_tokens: 0,
            total_cost: 0.0,
            average_latency: 0.0,
            latency_p50: 0.0,
            first_trace_id: None,
            customer_identifier: None,
            cost_series: Vec::new(),
            active_days: 0,
            average_ttft: None,
            name: None,
            email: None,
        }
    }

    /// The value of `column`, compared as trace values are.
    pub fn value(&self, column: GroupColumn) -> TraceValue<'_> {
        #[allow(clippy::cast_precision_loss)]
        let count = |value: u64| TraceValue::Number(value as f64);
        match column {
            GroupColumn::Key => TraceValue::Text(Some(self.key.as_str())),
            GroupColumn::FirstSeen => TraceValue::Time(self.first_seen.unix_nanos()),
            GroupColumn::LastSeen => TraceValue::Time(self.last_seen.unix_nanos()),
            GroupColumn::TraceCount => count(self.trace_count),
            GroupColumn::ThreadCount => count(self.thread_count),
            GroupColumn::Requests => count(self.span_count),
            GroupColumn::LlmCallCount => count(self.llm_call_count),
            GroupColumn::ErrorCount => count(self.error_count),
            GroupColumn::TotalCost => TraceValue::Number(self.total_cost),
            GroupColumn::TotalTokens => count(self.total_tokens),
            GroupColumn::TotalPromptTokens => count(self.total_prompt_tokens),
            GroupColumn::TotalCompletionTokens => count(self.total_completion_tokens),
            GroupColumn::AverageLatency => TraceValue::Number(self.average_latency),
            GroupColumn::ActiveDays => count(self.active_days),
            GroupColumn::Name => TraceValue::Text(self.name.as_deref()),
            GroupColumn::Email => TraceValue::Text(self.email.as_deref()),
        }
    }
}

/// The order of two groups in a list sorted by `sort`, ties by key in the same direction.
pub fn group_order(a: &TraceGroup, b: &TraceGroup, sort: Sort<GroupColumn>) -> Ordering {
    let ascending = match (a.value(sort.column), b.value(sort.column)) {
        (TraceValue::Text(x), TraceValue::Text(y)) => x.cmp(&y),
        (TraceValue::Number(x), TraceValue::Number(y)) => x.total_cmp(&y),
        (TraceValue::Time(x), TraceValue::Time(y)) => x.cmp(&y),
        _ => Ordering::Equal,
    }
    .then_with(|| a.key.cmp(&b.key));
    match sort.direction {
        Direction::Ascending => ascending,
        Direction::Descending => ascending.reverse(),
    }
}

/// Costs are summed as integer femto-dollars, as trace aggregates are, so a series adds up
/// to the same total whatever the order of its traces.
#[allow(clippy::cast_possible_truncation)]
pub fn femto(cost: f64) -> i128 {
    (cost * 1e15).round() as i128
}

/// Femto-dollars back to dollars.
#[allow(clippy::cast_precision_loss)]
pub fn dollars(femto: i128) -> f64 {
    femto as f64 / 1e15
}

/// The median of durations by nearest rank: the smallest with at least half at or below it.
pub fn median(durations: &mut [f64]) -> f64 {
    if durations.is_empty() {
        return 0.0;
    }
    durations.sort_by(f64::total_cmp);
    durations[durations.len().div_ceil(2) - 1]
}

#[derive(Debug)]
struct Building {
    group: TraceGroup,
    /// Femto-dollars per bucket of the series, summed exactly and converted at the end.
    series_femto: Vec<i128>,
    first_start: (Timestamp, TraceId),
    customer_start: Option<(Timestamp, TraceId)>,
    threads: HashSet<String>,
    days: HashSet<i64>,
    durations: Vec<f64>,
    /// The group's traces, kept only when the fold was asked to ([`GroupFold::keep_trace_ids`]).
    trace_ids: Vec<TraceId>,
}

/// A customer's display name and email, as their profile gives them.
pub type ProfileNames = (Option<String>, Option<String>);

/// Groups trace summaries, then filters, sorts and pages the groups: the definition of every
/// group aggregate.
#[derive(Debug)]
pub struct GroupFold {
    grouping: Grouping,
    keys: Option<HashSet<String>>,
    series: Option<CostSeries>,
    groups: HashMap<String, Building>,
    names: HashMap<String, ProfileNames>,
    keep_trace_ids: bool,
}

/// Nanoseconds per day.
const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The UTC day (days since 1970-01-01, negative before) holding `at`: what `active_days`
/// counts distinct values of, over a customer's trace starts.
pub fn utc_day(at: Timestamp) -> i64 {
    at.unix_nanos().div_euclid(NANOS_PER_DAY)
}

/// A span's time to first token in seconds, when it is a model call that reports a finite,
/// non-negative one (`time_to_first_token`, which ingest also fills from `ttft`): what a
/// customer's `average_ttft` averages.
pub fn llm_ttft(span: &Span) -> Option<f64> {
    ttft_of(span.log_type.is_llm_call(), &span.content)
}

/// [`llm_ttft`] of a span stored as its content and whether it is a model call.
pub fn ttft_of(llm_call: bool, content: &Map<String, Value>) -> Option<f64> {
    if !llm_call {
        return None;
    }
    content
        .get("time_to_first_token")
        .and_then(Value::as_f64)
        .filter(|ttft| ttft.is_finite() && *ttft >= 0.0)
}

/// The mean of `count` values summing to `sum`; `None` for none.
#[allow(clippy::cast_precision_loss)]
pub fn mean(sum: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}

impl GroupFold {
    /// An empty fold for a query (only its grouping and `keys` matter here).
    pub fn new(query: &GroupQuery) -> Self {
        Self {
            grouping: query.grouping,
            keys: query
                .keys
                .as_ref()
                .map(|keys| keys.iter().cloned().collect()),
            series: query.cost_series,
            groups: HashMap::new(),
            names: HashMap::new(),
            keep_trace_ids: false,
        }
    }

    /// Gives customers their profile's name and email, for `name` and `email` conditions and
    /// sorting (customers absent from `names` have neither).
    pub fn with_names(mut self, names: HashMap<String, ProfileNames>) -> Self {
        self.names = names;
        self
    }

    /// Keeps each group's trace ids, for [`GroupFold::finish_with_trace_ids`].
    pub fn keep_trace_ids(mut self) -> Self {
        self.keep_trace_ids = true;
        self
    }

    /// Counts one trace (that already matched the query's trace conditions) into its group.
    pub fn add(&mut self, summary: &TraceSummary) {
        let Some(key) = self.grouping.key_of(summary) else {
            return;
        };
        if self.keys.as_ref().is_some_and(|keys| !keys.contains(key)) {
            return;
        }
        let start = (summary.start, summary.trace_id.clone());
        let series = self.series;
        let building = self
            .groups
            .entry(key.to_owned())
            .or_insert_with(|| Building {
                group: TraceGroup {
                    last_seen: summary.end,
                    first_trace_id: Some(summary.trace_id.clone()),
                    ..TraceGroup::empty(key, summary.start)
                },
                series_femto: vec![0; series.map_or(0, |s| s.buckets)],
                first_start: start.clone(),
                customer_start: None,
                threads: HashSet::new(),
                days: HashSet::new(),
                durations: Vec::new(),
                trace_ids: Vec::new(),
            });
        let group = &mut building.group;
        group.first_seen = group.first_seen.min(summary.start);
        group.last_seen = group.last_seen.max(summary.end);
        group.trace_count += 1;
        group.span_count += summary.span_count;
        group.llm_call_count += summary.llm_call_count;
        group.error_count += summary.error_count;
        group.total_prompt_tokens += summary.total_prompt_tokens;
        group.total_completion_tokens += summary.total_completion_tokens;
        group.total_tokens += summary.total_tokens;
        group.total_cost += summary.total_cost;
        if start < building.first_start {
            group.first_trace_id = Some(summary.trace_id.clone());
            building.first_start = start.clone();
        }
        if let Some(customer) = summary
            .customer_identifier
            .as_deref()
            .filter(|c| !c.is_empty())
            && building
                .customer_start
                .as_ref()
                .is_none_or(|at| start < *at)
        {
            group.customer_identifier = Some(customer.to_owned());
            building.customer_start = Some(start);
        }
        if let Some(thread) = summary
            .thread_identifier
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            building.threads.insert(thread.to_owned());
        }
        building.durations.push(summary.duration);
        building.days.insert(utc_day(summary.start));
        if self.keep_trace_ids {
            building.trace_ids.push(summary.trace_id.clone());
        }
        if let Some(bucket) = series.and_then(|s| s.bucket_of(summary.start)) {
            building.series_femto[bucket] += femto(summary.total_cost);
        }
    }

    /// The page of groups that meet the query's group conditions, in its order, with the
    /// exact number of such groups.
    pub fn finish(self, query: &GroupQuery) -> Listing<TraceGroup> {
        self.finish_with_trace_ids(query).0
    }

    /// [`GroupFold::finish`], and the trace ids of each listed group (empty unless the fold
    /// kept them).
    pub fn finish_with_trace_ids(
        mut self,
        query: &GroupQuery,
    ) -> (Listing<TraceGroup>, HashMap<String, Vec<TraceId>>) {
        let customers = self.grouping == Grouping::Customer;
        let mut trace_ids = HashMap::new();
        let mut groups: Vec<TraceGroup> = self
            .groups
            .into_values()
            .map(|mut building| {
                let group = &mut building.group;
                #[allow(clippy::cast_precision_loss)]
                let traces = group.trace_count.max(1) as f64;
                group.average_latency = building.durations.iter().sum::<f64>() / traces;
                group.latency_p50 = median(&mut building.durations);
                group.cost_series = building.series_femto.iter().map(|f| dollars(*f)).collect();
                if customers {
                    group.thread_count = building.threads.len() as u64;
                    group.active_days = building.days.len() as u64;
                    if let Some((name, email)) = self.names.remove(&group.key) {
                        group.name = name;
                        group.email = email;
                    }
                }
                if self.keep_trace_ids {
                    trace_ids.insert(group.key.clone(), std::mem::take(&mut building.trace_ids));
                }
                building.group
            })
            .filter(|group| {
                query
                    .conditions
                    .iter()
                    .all(|condition| value_matches(&group.value(condition.field), condition))
            })
            .collect();
        groups.sort_by(|a, b| group_order(a, b, query.sort));
        let total = groups.len() as u64;
        let offset = usize::try_from(query.page.offset()).unwrap_or(usize::MAX);
        let size = usize::try_from(query.page.size).unwrap_or(usize::MAX);
        let items: Vec<TraceGroup> = groups.into_iter().skip(offset).take(size).collect();
        trace_ids.retain(|key, _| items.iter().any(|group| &group.key == key));
        (
            Listing {
                total,
                total_is_exact: true,
                items,
            },
            trace_ids,
        )
    }
}

/// Budget periods a customer profile may name.
pub const BUDGET_DURATIONS: [&str; 3] = ["daily", "weekly", "monthly"];

/// The fields of a customer's profile, each with what its value must be: what `PATCH
/// /api/users/{id}/` may set and what a span's `customer_params` may send.
pub const PROFILE_FIELDS: &[(&str, &str)] = &[
    ("name", "a string"),
    ("email", "a string"),
    ("metadata", "an object"),
    ("period_budget", "a number"),
    ("total_budget", "a number"),
    ("markup_percentage", "a number"),
    ("budget_duration", "one of daily, weekly, monthly"),
    ("period_start", "an ISO-8601 time"),
    ("period_end", "an ISO-8601 time"),
];

/// Whether `value` is what profile field `name` must be (null never is); `None` when `name`
/// is no profile field.
pub fn profile_field_fits(name: &str, value: &Value) -> Option<bool> {
    PROFILE_FIELDS.iter().find(|(field, _)| *field == name)?;
    Some(match (name, value) {
        ("name" | "email", Value::String(_)) => true,
        ("metadata", Value::Object(_)) => true,
        ("period_budget" | "total_budget" | "markup_percentage", Value::Number(_)) => true,
        ("budget_duration", Value::String(text)) => BUDGET_DURATIONS.contains(&text.as_str()),
        ("period_start" | "period_end", Value::String(text)) => Timestamp::parse(text).is_ok(),
        _ => false,
    })
}

/// The profile fields a `customer_params` object sends: its other keys, and values that do not
/// fit their field, are left out, and a null sends nothing.
pub fn profile_fields_of(params: Option<&Value>) -> Map<String, Value> {
    let Some(Value::Object(params)) = params else {
        return Map::new();
    };
    params
        .iter()
        .filter(|(name, value)| profile_field_fits(name, value) == Some(true))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The profile fields a span sends for its customer in `customer_params`, with the customer;
/// `None` when the span names no customer or sends no profile field.
pub fn ingested_profile(span: &Span) -> Option<(&str, Map<String, Value>)> {
    let customer = span
        .grouping
        .customer_identifier
        .as_deref()
        .filter(|c| !c.is_empty())?;
    let fields = profile_fields_of(span.content.get("customer_params"));
    (!fields.is_empty()).then_some((customer, fields))
}

/// What a batch of spans sends for its customers' profiles, in the order the customers first
/// appear; a field sent twice keeps its later value, as later writes replace earlier ones.
pub fn ingested_profiles<'a>(
    spans: impl IntoIterator<Item = &'a Span>,
) -> Vec<(String, Map<String, Value>)> {
    let mut merged: Vec<(String, Map<String, Value>)> = Vec::new();
    for span in spans {
        let Some((customer, fields)) = ingested_profile(span) else {
            continue;
        };
        match merged.iter_mut().find(|(c, _)| c == customer) {
            Some((_, known)) => known.extend(fields),
            None => merged.push((customer.to_owned(), fields)),
        }
    }
    merged
}

/// The start (UTC) of the `daily`, `weekly` (from Monday) or `monthly` budget period holding
/// `now`; `None` for another duration.
pub fn budget_period_start(duration: &str, now: Timestamp) -> Option<Timestamp> {
    use chrono::{Datelike, NaiveTime};
    let date = chrono::DateTime::from_timestamp_nanos(now.unix_nanos()).date_naive();
    let first = match duration {
        "daily" => date,
        "weekly" => date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday())),
        "monthly" => date.with_day(1)?,
        _ => return None,
    };
    let nanos = first
        .and_time(NaiveTime::MIN)
        .and_utc()
        .timestamp_nanos_opt()?;
    Some(Timestamp::from_unix_nanos(nanos))
}

/// Parses a threads or users `filters` object: group aggregates (and the key) become group
/// conditions, anything else a trace list accepts selects the traces that count.
pub fn parse_group_filters(filters: &Value, query: &mut GroupQuery) -> Result<(), QueryError> {
    let Some(object) = crate::query::filters_object(filters)? else {
        return Ok(());
    };
    for (name, spec) in object {
        if let Some((column, kind)) = GroupColumn::from_api(name, query.grouping) {
            // The key is also a trace column: filtering traces by it selects the same groups
            // and lets a store narrow the traces it reads.
            if column == GroupColumn::Key {
                let (trace_column, _) = TraceColumn::from_api(name)
                    .unwrap_or((query.grouping.key_column(), FieldType::String));
                query
                    .traces
                    .conditions
                    .push(parse_condition(name, trace_column, kind, spec)?);
            } else {
                query
                    .conditions
                    .push(parse_condition(name, column, kind, spec)?);
            }
            continue;
        }
        let single = Value::Object([(name.clone(), spec.clone())].into_iter().collect());
        parse_trace_filters(&single, &mut query.traces).map_err(|error| match error {
            QueryError::UnknownField { field, known } => QueryError::UnknownField {
                field,
                known: format!(
                    "{}, or any trace list filter ({known})",
                    GroupColumn::api_names(query.grouping)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            other => other,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::query::{FilterValue, Operator};
    use crate::trace::summarize;

    fn trace(
        id: &str,
        thread: &str,
        customer: Option<&str>,
        second: u32,
        cost: f64,
    ) -> TraceSummary {
        let mut fields = json!({
            "span_name": "turn", "log_type": "chat", "cost": cost,
            "thread_identifier": thread,
            "start_time": format!("2025-01-01T00:00:{second:02}Z"),
            "timestamp": format!("2025-01-01T00:00:{:02}Z", second + 2),
        });
        if let Some(customer) = customer {
            fields["customer_identifier"] = json!(customer);
        }
        summarize(&[crate::testing::span(id, "s", None, fields)]).unwrap()
    }

    fn fold(query: &GroupQuery, traces: &[TraceSummary]) -> Listing<TraceGroup> {
        let mut fold = GroupFold::new(query);
        for summary in traces {
            fold.add(summary);
        }
        fold.finish(query)
    }

    #[test]
    fn threads_sum_their_traces_in_any_order() {
        let traces = [
            trace("t3", "b", Some("bob"), 30, 0.5),
            trace("t2", "a", Some("ann"), 10, 0.25),
            trace("t1", "a", None, 0, 0.125),
        ];
        let query = GroupQuery::new(Grouping::Thread);
        let listing = fold(&query, &traces);
        assert_eq!(listing.total, 2);
        let keys: Vec<&str> = listing.items.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"], "most recently active first");
        let a = &listing.items[1];
        assert_eq!((a.trace_count, a.span_count, a.llm_call_count), (2, 2, 2));
        assert_eq!(a.first_trace_id.as_ref().map(TraceId::as_str), Some("t1"));
        assert_eq!(a.customer_identifier.as_deref(), Some("ann"));
        assert_eq!(a.first_seen.to_rfc3339(), "2025-01-01T00:00:00Z");
        assert_eq!(a.last_seen.to_rfc3339(), "2025-01-01T00:00:12Z");
        assert!((a.total_cost - 0.375).abs() < 1e-12);
        assert!((a.latency_p50 - 2.0).abs() < 1e-9);
    }

    #[test]
    fn customers_count_threads_and_filter_sort_and_page() {
        let traces = [
            trace("t1", "a", Some("ann"), 0, 1.0),
            trace("t2", "b", Some("ann"), 5, 1.0),
            trace("t3", "c", Some("bob"), 9, 0.5),
            trace("t4", "d", None, 9, 9.0),
        ];
        let mut query = GroupQuery::new(Grouping::Customer);
        parse_group_filters(
            &json!({"total_cost": {"operator": "gte", "value": [0.5]}}),
            &mut query,
        )
        .unwrap();
        query.sort = Sort {
            column: GroupColumn::TotalCost,
            direction: Direction::Descending,
        };
        let listing = fold(&query, &traces);
        assert_eq!(listing.total, 2, "the trace without a customer is nobody's");
        assert_eq!(listing.items[0].key, "ann");
        assert_eq!(listing.items[0].thread_count, 2);
        query.conditions[0].values = vec![FilterValue::Number(1.5)];
        assert_eq!(fold(&query, &traces).total, 1);
        query.page = Page { number: 2, size: 1 };
        assert!(fold(&query, &traces).items.is_empty());
    }

    #[test]
    fn cost_series_put_each_trace_in_the_bucket_of_its_start() {
        let traces = [
            trace("t1", "a", None, 0, 0.25),
            trace("t2", "a", None, 30, 0.5),
            trace("t3", "a", None, 57, 0.125),
        ];
        let mut query = GroupQuery::new(Grouping::Thread);
        let now = Timestamp::parse("2025-01-01T00:00:45Z").unwrap();
        query.cost_series = CostSeries::ending_at(now, 30_000_000_000, 2);
        assert_eq!(
            query.cost_series.map(|s| s.start.to_rfc3339()).as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        let listing = fold(&query, &traces);
        assert_eq!(listing.items[0].cost_series, [0.25, 0.625]);
        assert_eq!(
            listing.items[0].trace_count, 3,
            "the series does not narrow the totals"
        );
    }

    #[test]
    fn budget_periods_start_at_utc_day_week_and_month() {
        // A Thursday.
        let now = Timestamp::parse("2025-03-13T15:04:05Z").unwrap();
        let start = |duration| budget_period_start(duration, now).map(Timestamp::to_rfc3339);
        assert_eq!(start("daily").as_deref(), Some("2025-03-13T00:00:00Z"));
        assert_eq!(start("weekly").as_deref(), Some("2025-03-10T00:00:00Z"));
        assert_eq!(start("monthly").as_deref(), Some("2025-03-01T00:00:00Z"));
        assert_eq!(start("yearly"), None);
    }

    #[test]
    fn filters_split_into_group_and_trace_conditions() {
        let mut query = GroupQuery::new(Grouping::Thread);
        parse_group_filters(
            &json!({
                "thread_identifier": "t-1",
                "trace_count": {"operator": "gt", "value": [1]},
                "customer_identifier": {"operator": "icontains", "value": ["ac"]},
                "scores__quality": {"operator": "gte", "value": [4]},
            }),
            &mut query,
        )
        .unwrap();
        assert_eq!(query.conditions.len(), 1);
        assert_eq!(query.conditions[0].field, GroupColumn::TraceCount);
        assert_eq!(query.conditions[0].operator, Operator::Gt);
        assert_eq!(query.traces.conditions.len(), 2);
        assert_eq!(query.traces.spans.conditions.len(), 1);
        let error = parse_group_filters(&json!({"thread_count": 1}), &mut query).unwrap_err();
        assert!(error.to_string().contains("thread_count"), "{error}");
    }

    fn logged(trace: &str, span: &str, fields: Value) -> Span {
        crate::testing::span(trace, span, None, fields)
    }

    #[test]
    fn customer_params_send_profile_fields_the_later_span_winning() {
        let spans = [
            logged(
                "t1",
                "a",
                json!({"customer_params": {"customer_identifier": "ann", "name": "Ann",
                       "email": "ann@old.example", "period_budget": 5, "colour": "teal",
                       "budget_duration": "fortnightly", "metadata": {"plan": "free"}}}),
            ),
            logged(
                "t1",
                "b",
                json!({"customer_identifier": "bob", "customer_params": {"name": "Bob"}}),
            ),
            logged(
                "t2",
                "c",
                json!({"customer_params": {"customer_identifier": "ann", "name": "Ann B",
                       "email": null, "total_budget": "lots"}}),
            ),
            // No customer: nobody's profile.
            logged("t3", "d", json!({"customer_params": {"name": "Nobody"}})),
        ];
        let merged = ingested_profiles(&spans);
        let customers: Vec<&str> = merged.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(customers, ["ann", "bob"]);
        assert_eq!(
            Value::Object(merged[0].1.clone()),
            json!({"name": "Ann B", "email": "ann@old.example", "period_budget": 5,
                   "metadata": {"plan": "free"}})
        );
        assert_eq!(Value::Object(merged[1].1.clone()), json!({"name": "Bob"}));
        assert_eq!(profile_field_fits("colour", &json!("x")), None);
        assert_eq!(
            profile_field_fits("period_start", &json!("2025-01-01T00:00:00Z")),
            Some(true)
        );
        assert_eq!(
            profile_field_fits("period_start", &json!("soon")),
            Some(false)
        );
    }

    #[test]
    fn time_to_first_token_counts_for_model_calls_only() {
        let chat = logged("t", "a", json!({"log_type": "chat", "ttft": 0.25}));
        let tool = logged(
            "t",
            "b",
            json!({"log_type": "tool", "time_to_first_token": 3}),
        );
        let negative = logged(
            "t",
            "c",
            json!({"log_type": "chat", "time_to_first_token": -1}),
        );
        assert_eq!(llm_ttft(&chat), Some(0.25));
        assert_eq!(llm_ttft(&tool), None);
        assert_eq!(llm_ttft(&negative), None);
        assert_eq!(mean(0.75, 3), Some(0.25));
        assert_eq!(mean(0.0, 0), None);
    }

    #[test]
    fn customers_count_active_utc_days_and_filter_by_profile_names() {
        let day = |id: &str, customer: &str, start: &str| {
            summarize(&[logged(
                id,
                "s",
                json!({"customer_identifier": customer, "start_time": start, "latency": 1}),
            )])
            .unwrap()
        };
        let traces = [
            day("t1", "ann", "2025-01-01T23:59:59Z"),
            day("t2", "ann", "2025-01-02T00:00:01Z"),
            day("t3", "ann", "2025-01-02T12:00:00Z"),
            day("t4", "bob", "2025-01-02T12:00:00Z"),
        ];
        let names: HashMap<String, ProfileNames> = [(
            "bob".to_owned(),
            (
                Some("Bob Example".to_owned()),
                Some("bob@example.com".to_owned()),
            ),
        )]
        .into();
        let mut query = GroupQuery::new(Grouping::Customer);
        query.sort = Sort {
            column: GroupColumn::ActiveDays,
            direction: Direction::Descending,
        };
        let run = |query: &GroupQuery| {
            let mut fold = GroupFold::new(query)
                .with_names(names.clone())
                .keep_trace_ids();
            for summary in &traces {
                fold.add(summary);
            }
            fold.finish_with_trace_ids(query)
        };
        let (listing, trace_ids) = run(&query);
        let days: Vec<(&str, u64)> = listing
            .items
            .iter()
            .map(|g| (g.key.as_str(), g.active_days))
            .collect();
        assert_eq!(days, [("ann", 2), ("bob", 1)]);
        assert_eq!(listing.items[1].email.as_deref(), Some("bob@example.com"));
        assert_eq!(listing.items[0].name, None);
        assert_eq!(trace_ids["ann"].len(), 3);
        parse_group_filters(
            &json!({"name": {"operator": "icontains", "value": ["EXAMPLE"]}}),
            &mut query,
        )
        .unwrap();
        let (listing, trace_ids) = run(&query);
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.items[0].key, "bob");
        assert_eq!(
            trace_ids.keys().collect::<Vec<_>>(),
            ["bob"],
            "the page's only"
        );
        let error = parse_group_filters(
            &json!({"email": "x"}),
            &mut GroupQuery::new(Grouping::Thread),
        )
        .unwrap_err();
        assert!(error.to_string().contains("email"), "{error}");
    }
}
