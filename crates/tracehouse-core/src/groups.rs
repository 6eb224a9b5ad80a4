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

use serde_json::Value;

use crate::ids::TraceId;
use crate::query::{
    Condition, Direction, FieldType, Page, QueryError, Sort, TraceColumn, TraceQuery,
    parse_condition, parse_trace_filters,
};
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
];

impl GroupColumn {
    /// Looks a column up by its API name; `thread_count` exists for customers only.
    pub fn from_api(name: &str, grouping: Grouping) -> Option<(GroupColumn, FieldType)> {
        if name == grouping.key_name() {
            return Some((GroupColumn::Key, FieldType::String));
        }
        GROUP_COLUMNS
            .iter()
            .find(|(n, column, _)| {
                *n == name
                    && (*column != GroupColumn::ThreadCount || grouping == Grouping::Customer)
            })
            .map(|(_, column, kind)| (*column, *kind))
    }

    /// Every API name of a grouping, for error messages.
    pub fn api_names(grouping: Grouping) -> impl Iterator<Item = &'static str> {
        std::iter::once(grouping.key_name()).chain(
            GROUP_COLUMNS
                .iter()
                .filter(move |(_, column, _)| {
                    *column != GroupColumn::ThreadCount || grouping == Grouping::Customer
                })
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
    durations: Vec<f64>,
}

/// Groups trace summaries, then filters, sorts and pages the groups: the definition of every
/// group aggregate.
#[derive(Debug)]
pub struct GroupFold {
    grouping: Grouping,
    keys: Option<HashSet<String>>,
    series: Option<CostSeries>,
    groups: HashMap<String, Building>,
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
        }
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
                durations: Vec::new(),
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
        if let Some(bucket) = series.and_then(|s| s.bucket_of(summary.start)) {
            building.series_femto[bucket] += femto(summary.total_cost);
        }
    }

    /// The page of groups that meet the query's group conditions, in its order, with the
    /// exact number of such groups.
    pub fn finish(self, query: &GroupQuery) -> Listing<TraceGroup> {
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
                if self.grouping == Grouping::Customer {
                    group.thread_count = building.threads.len() as u64;
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
        Listing {
            total,
            total_is_exact: true,
            items: groups.into_iter().skip(offset).take(size).collect(),
        }
    }
}

/// Budget periods a customer profile may name.
pub const BUDGET_DURATIONS: [&str; 3] = ["daily", "weekly", "monthly"];

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
}
