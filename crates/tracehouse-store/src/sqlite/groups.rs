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
use serde_json::Value;
use tracehouse_core::groups::{
    GroupColumn, GroupQuery, Grouping, TraceGroup, dollars, femto, mean, median,
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

/// A trace's start floored to its UTC day (in nanoseconds, also before 1970, as
/// `tracehouse_core::groups::utc_day` floors it): `active_days` counts its distinct values.
const DAY_OF_START: &str = "(t.start_ns - ((t.start_ns % 86400000000000) + 86400000000000) \
     % 86400000000000)";

/// A customer's profile text field: the value set through the API, else the latest one their
/// spans sent (`CustomerProfile::field`), looked up once per group by primary key.
fn profile_text(field: &str, project: &str) -> String {
    format!(
        "coalesce((SELECT json_extract(p.profile, '$.{field}') FROM customer_profiles p \
         WHERE p.project_id = {project} AND p.customer_identifier = t.customer_identifier), \
         (SELECT json_extract(c.value, '$') FROM customer_params c \
         WHERE c.project_id = {project} AND c.customer_identifier = t.customer_identifier \
         AND c.field = '{field}'))"
    )
}

/// The SQL of a group column; `project` is the placeholder of the project id.
fn group_expression(grouping: Grouping, column: GroupColumn, project: &str) -> String {
    let customers = grouping == Grouping::Customer;
    match column {
        GroupColumn::Key => key_column(grouping).to_owned(),
        GroupColumn::FirstSeen => "min(t.start_ns)".to_owned(),
        GroupColumn::LastSeen => "max(t.end_ns)".to_owned(),
        GroupColumn::TraceCount => "count(*)".to_owned(),
        // Threads have none of these; a distinct count would cost a temporary B-tree each.
        GroupColumn::ThreadCount if customers => {
            "count(DISTINCT nullif(t.thread_identifier, ''))".to_owned()
        }
        GroupColumn::ActiveDays if customers => format!("count(DISTINCT {DAY_OF_START})"),
        GroupColumn::Name if customers => profile_text("name", project),
        GroupColumn::Email if customers => profile_text("email", project),
        GroupColumn::ThreadCount | GroupColumn::ActiveDays => "0".to_owned(),
        GroupColumn::Name | GroupColumn::Email => "NULL".to_owned(),
        GroupColumn::Requests => "sum(t.span_count)".to_owned(),
        GroupColumn::LlmCallCount => "sum(t.llm_call_count)".to_owned(),
        GroupColumn::ErrorCount => "sum(t.error_count)".to_owned(),
        GroupColumn::TotalCost => "total(t.total_cost)".to_owned(),
        GroupColumn::TotalTokens => "sum(t.total_tokens)".to_owned(),
        GroupColumn::TotalPromptTokens => "sum(t.total_prompt_tokens)".to_owned(),
        GroupColumn::TotalCompletionTokens => "sum(t.total_completion_tokens)".to_owned(),
        GroupColumn::AverageLatency => "avg(t.duration)".to_owned(),
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
    let project_param = clause.bind(SqlValue::Integer(project.0));
    let expression = |column| group_expression(grouping, column, &project_param);
    let having: Vec<String> = query
        .conditions
        .iter()
        .map(|condition| column_condition(&expression(condition.field), condition, &mut clause))
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
         count(*) OVER (), {days}, {name}, {email} \
         {grouped} ORDER BY {sort} {order}, {key} {order} {page}",
        threads = expression(GroupColumn::ThreadCount),
        days = expression(GroupColumn::ActiveDays),
        name = expression(GroupColumn::Name),
        email = expression(GroupColumn::Email),
        sort = expression(query.sort.column),
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
            active_days: row.get(14)?,
            name: row.get(15)?,
            email: row.get(16)?,
        };
        Ok((sums, unsigned(row.get(13)?)))
    })?;
    let total = match rows.first() {
        Some((_, total)) => *total,
        None if query.page.number > 1 => count(
            connection,
            // Selecting the project's placeholder uses every parameter bound, as the page's
            // query does through the profile columns.
            &format!("SELECT count(*) FROM (SELECT {project_param} {grouped})"),
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
            active_days: unsigned(sums.active_days),
            average_ttft: of_group.ttft.and_then(|(sum, count)| mean(sum, count)),
            name: sums.name,
            email: sums.email,
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
    active_days: i64,
    name: Option<String>,
    email: Option<String>,
}

/// What a page's group needs from its traces one by one.
struct GroupTraces {
    first: TraceId,
    customer: Option<String>,
    durations: Vec<f64>,
    series_femto: Vec<i128>,
    /// For customers: the sum and number of their model calls' times to first token.
    ttft: Option<(f64, u64)>,
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
                ttft: None,
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
    if query.grouping == Grouping::Customer {
        // The model calls of the same traces that report a time to first token, off the
        // partial index that holds only those spans.
        let sql = format!(
            "SELECT {key}, total(m.ttft), count(m.ttft) FROM traces t \
             JOIN spans m INDEXED BY spans_ttft ON m.project_id = t.project_id \
             AND m.trace_id = t.trace_id AND m.ttft IS NOT NULL \
             WHERE {} GROUP BY {key}",
            clause.text()
        );
        let sums = collect_rows(connection, &sql, &clause.params, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, f64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for (group_key, sum, count) in sums {
            if let Some(traces) = by_key.get_mut(&group_key) {
                traces.ttft = Some((sum, unsigned(count)));
            }
        }
    }
    Ok(by_key)
}

pub(crate) fn customer_profiles(
    connection: &Connection,
    project: ProjectId,
    customers: &[String],
) -> Result<Vec<CustomerProfile>, SqliteError> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let mut clause = Where::default();
    let project_param = clause.bind(SqlValue::Integer(project.0));
    let placeholders: Vec<String> = customers
        .iter()
        .map(|c| clause.bind(SqlValue::Text(c.clone())))
        .collect();
    let placeholders = placeholders.join(", ");
    // Both kinds of rows in one pass: a PATCHed profile (kind 0) or one field a span sent
    // (kind 1, its field name in `field`).
    let sql = format!(
        "SELECT customer_identifier, 0, NULL, profile, updated_ns FROM customer_profiles \
         WHERE project_id = {project_param} AND customer_identifier IN ({placeholders}) \
         UNION ALL SELECT customer_identifier, 1, field, value, ingested_ns FROM customer_params \
         WHERE project_id = {project_param} AND customer_identifier IN ({placeholders})"
    );
    let rows = collect_rows(connection, &sql, &clause.params, |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, i64>(4)?,
        ))
    })?;
    let mut profiles: HashMap<String, CustomerProfile> = HashMap::new();
    for (customer, kind, field, text, at) in rows {
        let profile =
            CustomerProfile::assembling(&mut profiles, customer, Timestamp::from_unix_nanos(at));
        match (kind, field) {
            (0, _) => profile.fields = serde_json::from_str(&text)?,
            (_, Some(field)) => {
                profile.ingested.insert(field, serde_json::from_str(&text)?);
            }
            (_, None) => {
                return Err(SqliteError::Corrupt(
                    "a customer_params row without a field".to_owned(),
                ));
            }
        }
    }
    let mut profiles: Vec<CustomerProfile> = profiles.into_values().collect();
    profiles.sort_by(|a, b| a.customer_identifier.cmp(&b.customer_identifier));
    Ok(profiles)
}

/// Inside the writer's transaction: the profile fields a batch's spans sent, each replacing
/// the field's stored value (written blind, no read first; an unchanged value is not
/// rewritten, so a client that sends the same `customer_params` with every span dirties no
/// page).
pub(crate) fn put_ingested_profiles(
    connection: &Connection,
    project: ProjectId,
    profiles: &[(String, Vec<(String, String)>)],
    ingested_ns: i64,
) -> Result<(), SqliteError> {
    if profiles.is_empty() {
        return Ok(());
    }
    let mut upsert = connection.prepare_cached(
        "INSERT INTO customer_params (project_id, customer_identifier, field, value, ingested_ns) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (project_id, customer_identifier, field) \
         DO UPDATE SET value = excluded.value, ingested_ns = excluded.ingested_ns \
         WHERE value <> excluded.value",
    )?;
    for (customer, fields) in profiles {
        for (field, value) in fields {
            upsert.execute(rusqlite::params![
                project.0,
                customer,
                field,
                value,
                ingested_ns
            ])?;
        }
    }
    Ok(())
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

/// Schema v8's hook: fills `spans.ttft` and `customer_params` from the spans stored before,
/// as the writer fills them for new spans (a field sent by several spans keeps the value of
/// the one written last). Reads the spans in chunks by rowid, so no update meets an open read.
pub(crate) fn backfill_v8(transaction: &rusqlite::Transaction<'_>) -> Result<(), SqliteError> {
    const CHUNK: i64 = 10_000;
    // (project, customer, field) -> (value as JSON text, when written)
    let mut params: HashMap<(i64, String, String), (String, i64)> = HashMap::new();
    let mut after = i64::MIN;
    loop {
        let mut ttfts: Vec<(i64, f64)> = Vec::new();
        let mut last = None;
        {
            let mut select = transaction.prepare_cached(
                "SELECT rowid, project_id, log_type, customer_identifier, content, ingested_ns \
                 FROM spans WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )?;
            let mut rows = select.query(rusqlite::params![after, CHUNK])?;
            while let Some(row) = rows.next()? {
                let rowid: i64 = row.get(0)?;
                last = Some(rowid);
                let text = super::content::decode(row.get_ref(4)?)?;
                // Most spans have neither; spare them the parse.
                if !text.contains("time_to_first_token") && !text.contains("customer_params") {
                    continue;
                }
                let Ok(Value::Object(content)) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let llm_call = tracehouse_core::trace_state::SpanFacts::is_llm_call_kind(
                    &row.get::<_, String>(2)?,
                );
                if let Some(ttft) = tracehouse_core::groups::ttft_of(llm_call, &content) {
                    ttfts.push((rowid, ttft));
                }
                let Some(customer) = row.get::<_, Option<String>>(3)?.filter(|c| !c.is_empty())
                else {
                    continue;
                };
                let project: i64 = row.get(1)?;
                let written: i64 = row.get(5)?;
                let fields =
                    tracehouse_core::groups::profile_fields_of(content.get("customer_params"));
                for (field, value) in fields {
                    let key = (project, customer.clone(), field);
                    let value = serde_json::to_string(&value)?;
                    match params.entry(key) {
                        Entry::Occupied(mut entry) => {
                            if written >= entry.get().1 {
                                entry.insert((value, written));
                            }
                        }
                        Entry::Vacant(entry) => {
                            entry.insert((value, written));
                        }
                    }
                }
            }
        }
        let mut update =
            transaction.prepare_cached("UPDATE spans SET ttft = ?2 WHERE rowid = ?1")?;
        for (rowid, ttft) in ttfts {
            update.execute(rusqlite::params![rowid, ttft])?;
        }
        match last {
            Some(rowid) => after = rowid,
            None => break,
        }
    }
    let mut insert = transaction.prepare_cached(
        "INSERT OR REPLACE INTO customer_params \
         (project_id, customer_identifier, field, value, ingested_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for ((project, customer, field), (value, written)) in params {
        insert.execute(rusqlite::params![project, customer, field, value, written])?;
    }
    Ok(())
}
