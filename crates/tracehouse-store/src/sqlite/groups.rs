//! Threads and customers: traces grouped by `thread_identifier` or `customer_identifier`,
//! summed in SQL from the `traces` rows the writer keeps, so a list never reads a span.
//!
//! `traces_by_thread` and `traces_by_customer` are covering indexes in key order: the GROUP BY
//! walks one of them without a sort and without touching the table. The page's groups then get
//! what a sum cannot give (the median duration, the first trace, a thread's customer) from
//! their own traces, read off the same index. The sums are those of
//! `tracehouse_core::groups::GroupFold`, which the conformance tests compare against.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};
use tracehouse_core::groups::{
    GroupColumn, GroupQuery, Grouping, TraceGroup, dollars, femto, median,
};
use tracehouse_core::store::CustomerProfile;
use tracehouse_core::{Listing, ProjectId, Timestamp, TraceId};

use super::SqliteError;
use super::query::{
    Where, collect_rows, column_condition, count, direction, page_clause, trace_clauses,
    traces_with_matching_span,
};

fn key_column(grouping: Grouping) -> &'static str {
    match grouping {
        Grouping::Thread => "t.thread_identifier",
        Grouping::Customer => "t.customer_identifier",
    }
}

fn group_expression(grouping: Grouping, column: GroupColumn) -> &'static str {
    match column {
        GroupColumn::Key => key_column(grouping),
        GroupColumn::FirstSeen => "min(t.start_ns)",
        GroupColumn::LastSeen => "max(t.end_ns)",
        GroupColumn::TraceCount => "count(*)",
        // A thread has no threads to count; the distinct count would cost a temporary B-tree.
        GroupColumn::ThreadCount => match grouping {
            Grouping::Thread => "0",
            Grouping::Customer => "count(DISTINCT nullif(t.thread_identifier, ''))",
        },
        GroupColumn::Requests => "sum(t.span_count)",
        GroupColumn::LlmCallCount => "sum(t.llm_call_count)",
        GroupColumn::ErrorCount => "sum(t.error_count)",
        GroupColumn::TotalCost => "total(t.total_cost)",
        GroupColumn::TotalTokens => "sum(t.total_tokens)",
        GroupColumn::TotalPromptTokens => "sum(t.total_prompt_tokens)",
        GroupColumn::TotalCompletionTokens => "sum(t.total_completion_tokens)",
        GroupColumn::AverageLatency => "avg(t.duration)",
    }
}

/// The traces that count: the query's trace conditions, a key present, the keys asked for.
fn trace_rows(
    connection: &Connection,
    project: ProjectId,
    query: &GroupQuery,
    keys: Option<&[String]>,
) -> Result<Where, SqliteError> {
    let mut clause = Where::default();
    trace_clauses(connection, project, &query.traces, &mut clause)?;
    traces_with_matching_span(project, &query.traces.spans, &mut clause);
    let key = key_column(query.grouping);
    // Both terms, so the planner sees the partial indexes' own condition.
    clause
        .clauses
        .push(format!("{key} IS NOT NULL AND {key} <> ''"));
    if let Some(keys) = keys {
        let placeholders: Vec<String> = keys
            .iter()
            .map(|k| clause.bind(SqlValue::Text(k.clone())))
            .collect();
        clause
            .clauses
            .push(format!("{key} IN ({})", placeholders.join(", ")));
    }
    Ok(clause)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn list_trace_groups(
    connection: &Connection,
    project: ProjectId,
    query: &GroupQuery,
) -> Result<Listing<TraceGroup>, SqliteError> {
    let grouping = query.grouping;
    let key = key_column(grouping);
    let mut clause = trace_rows(connection, project, query, query.keys.as_deref())?;
    let where_sql = clause.text();
    let having: Vec<String> = query
        .conditions
        .iter()
        .map(|condition| {
            column_condition(
                group_expression(grouping, condition.field),
                condition,
                &mut clause,
            )
        })
        .collect();
    let having_sql = if having.is_empty() {
        String::new()
    } else {
        format!(" HAVING {}", having.join(" AND "))
    };
    let order = direction(query.sort.direction);
    let grouped = format!("FROM traces t WHERE {where_sql} GROUP BY {key}{having_sql}");
    let count_params = clause.params.clone();
    // The window counts the groups before LIMIT applies: one pass gives the page and the total.
    let sql = format!(
        "SELECT {key}, min(t.start_ns), max(t.end_ns), count(*), {threads}, sum(t.span_count), \
         sum(t.llm_call_count), sum(t.error_count), sum(t.total_prompt_tokens), \
         sum(t.total_completion_tokens), sum(t.total_tokens), total(t.total_cost), avg(t.duration), \
         count(*) OVER () {grouped} ORDER BY {sort} {order}, {key} {order} {page}",
        threads = group_expression(grouping, GroupColumn::ThreadCount),
        sort = group_expression(grouping, query.sort.column),
        page = page_clause(query.page, &mut clause),
    );
    let rows = collect_rows(connection, &sql, &clause.params, |row| {
        let sums = Sums {
            key: row.get(0)?,
            first_seen: row.get(1)?,
            last_seen: row.get(2)?,
            counts: [
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
                row.get(10)?,
            ],
            total_cost: row.get(11)?,
            average_latency: row.get(12)?,
        };
        Ok((sums, unsigned(row.get(13)?)))
    })?;
    let total = match rows.first() {
        Some((_, total)) => *total,
        None if query.page.number > 1 => count(
            connection,
            &format!("SELECT count(*) FROM (SELECT 1 {grouped})"),
            &count_params,
        )?,
        None => 0,
    };
    let keys: Vec<String> = rows.iter().map(|(sums, _)| sums.key.clone()).collect();
    let mut traces = page_traces(connection, project, query, &keys)?;
    let mut items = Vec::with_capacity(rows.len());
    for (sums, _) in rows {
        let Some(mut of_group) = traces.remove(&sums.key) else {
            // Written between the two reads: the next read shows it whole.
            continue;
        };
        let [
            traces_count,
            threads,
            spans,
            llm_calls,
            errors,
            prompt,
            completion,
            tokens,
        ] = sums.counts.map(unsigned);
        items.push(TraceGroup {
            key: sums.key,
            first_seen: Timestamp::from_unix_nanos(sums.first_seen),
            last_seen: Timestamp::from_unix_nanos(sums.last_seen),
            trace_count: traces_count,
            thread_count: match grouping {
                Grouping::Thread => 0,
                Grouping::Customer => threads,
            },
            span_count: spans,
            llm_call_count: llm_calls,
            error_count: errors,
            total_prompt_tokens: prompt,
            total_completion_tokens: completion,
            total_tokens: tokens,
            total_cost: sums.total_cost,
            average_latency: sums.average_latency,
            latency_p50: median(&mut of_group.durations),
            first_trace_id: Some(of_group.first),
            customer_identifier: match grouping {
                Grouping::Thread => of_group.customer,
                Grouping::Customer => None,
            },
            cost_series: of_group.series_femto.into_iter().map(dollars).collect(),
        });
    }
    Ok(Listing {
        total,
        total_is_exact: true,
        items,
    })
}

/// One group's sums as SQL gives them.
struct Sums {
    key: String,
    first_seen: i64,
    last_seen: i64,
    /// Traces, threads, spans, LLM calls, errors, prompt, completion and total tokens.
    counts: [i64; 8],
    total_cost: f64,
    average_latency: f64,
}

/// What a page's group needs from its traces one by one.
struct GroupTraces {
    first: TraceId,
    customer: Option<String>,
    durations: Vec<f64>,
    series_femto: Vec<i128>,
}

/// The traces of the page's groups, in start order: their first trace, the first customer
/// named, and every duration (for the median).
fn page_traces(
    connection: &Connection,
    project: ProjectId,
    query: &GroupQuery,
    keys: &[String],
) -> Result<HashMap<String, GroupTraces>, SqliteError> {
    let mut by_key: HashMap<String, GroupTraces> = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(by_key);
    }
    let clause = trace_rows(connection, project, query, Some(keys))?;
    let key = key_column(query.grouping);
    let sql = format!(
        "SELECT {key}, t.trace_id, t.duration, t.customer_identifier, t.start_ns, t.total_cost \
         FROM traces t WHERE {} ORDER BY {key}, t.start_ns, t.trace_id",
        clause.text()
    );
    let rows = collect_rows(connection, &sql, &clause.params, |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, f64>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, f64>(5)?,
        ))
    })?;
    let buckets = query.cost_series.map_or(0, |series| series.buckets);
    for (group_key, trace_id, duration, customer, start_ns, cost) in rows {
        let customer = customer.filter(|c| !c.is_empty());
        let traces = match by_key.entry(group_key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(GroupTraces {
                first: TraceId::try_from(trace_id)
                    .map_err(|e| SqliteError::Corrupt(format!("stored trace id: {e}")))?,
                customer: None,
                durations: Vec::new(),
                series_femto: vec![0; buckets],
            }),
        };
        if traces.customer.is_none() {
            traces.customer = customer;
        }
        traces.durations.push(duration);
        if let Some(bucket) = query
            .cost_series
            .and_then(|series| series.bucket_of(Timestamp::from_unix_nanos(start_ns)))
        {
            traces.series_femto[bucket] += femto(cost);
        }
    }
    Ok(by_key)
}

pub(crate) fn customer_profiles(
    connection: &Connection,
    project: ProjectId,
    customers: &[String],
) -> Result<Vec<CustomerProfile>, SqliteError> {
    let mut clause = Where::default();
    let project_param = clause.bind(SqlValue::Integer(project.0));
    let placeholders: Vec<String> = customers
        .iter()
        .map(|c| clause.bind(SqlValue::Text(c.clone())))
        .collect();
    if placeholders.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT customer_identifier, profile, updated_ns FROM customer_profiles \
         WHERE project_id = {project_param} AND customer_identifier IN ({}) \
         ORDER BY customer_identifier",
        placeholders.join(", ")
    );
    collect_rows(connection, &sql, &clause.params, |row| {
        let text: String = row.get(1)?;
        let fields: Map<String, Value> = serde_json::from_str(&text)?;
        Ok(CustomerProfile {
            customer_identifier: row.get(0)?,
            fields,
            updated_at: Timestamp::from_unix_nanos(row.get(2)?),
        })
    })
}

/// Inside the writer's transaction.
pub(crate) fn put_customer_profile(
    connection: &Connection,
    project: ProjectId,
    profile: &CustomerProfile,
) -> Result<(), SqliteError> {
    connection
        .prepare_cached(
            "INSERT INTO customer_profiles (project_id, customer_identifier, profile, updated_ns) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (project_id, customer_identifier) \
             DO UPDATE SET profile = excluded.profile, updated_ns = excluded.updated_ns",
        )?
        .execute(rusqlite::params![
            project.0,
            profile.customer_identifier,
            serde_json::to_string(&profile.fields)?,
            profile.updated_at.unix_nanos(),
        ])?;
    Ok(())
}
