//! Trace reads over append-only span versions: a trace's aggregates are computed when it is
//! read, from the latest version of each of its spans, with core's `summarize`, so they are
//! exact whatever order, server or number of re-sends its spans came in.
//!
//! A trace fetch reads that trace's rows only (the sorting key starts with the trace id). The
//! trace list sorted by start time walks an index newest (or oldest) first and computes the
//! exact aggregates of the traces it meets until a page is certain:
//!
//! - `trace_starts` has a row per trace per insert, holding the earliest start among that
//!   insert's spans of the trace. A trace's start is never later than any of its rows. Newest
//!   first, the walk reads a window of recent starts (ten minutes, then four times wider),
//!   takes per trace its smallest row start in the window (`seen`), and meets the `L` traces
//!   with the newest `seen` (the last at `b`). Every trace not met starts at or before `b`, or
//!   before the window. The traces met are computed in `seen` order; one whose exact start is
//!   after `b` (and after every uncomputed trace's `seen`) is placed for good. When the placed
//!   traces fill the page the walk stops; otherwise it meets four times as many, or widens the
//!   window. For most traces `seen` is the exact start, so about a page of traces is computed.
//!   Oldest first is the mirror image over the whole index.
//! - With span conditions, newest first walks the matching span rows instead: a trace starts no
//!   later than any of its spans, so the same argument holds.
//!
//! Other orders (cost, duration, ...) have no index: they visit every candidate trace in
//! chunks, keeping the best page in a bounded heap, and count exactly.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use tracehouse_core::groups::{GroupFold, GroupQuery, Grouping, TraceGroup, mean};
use tracehouse_core::query::{
    Condition, Direction, FilterValue, Operator, Page, SpanColumn, SpanField, TraceColumn,
    TraceQuery,
};
use tracehouse_core::trace_filter::{trace_matches, trace_order};
use tracehouse_core::{
    Listing, LogType, ProjectId, Span, StoreError, StoredTrace, TraceId, TraceListItem,
    TraceSummary, summarize,
};

use super::client::{Client, string_literal};
use super::query::{count, in_list, span_filter_sql};
use super::rows::{SPAN_COLUMNS, SpanVersionRead, VERSION_COLUMNS};

/// Trace ids per statement of the exact step: a few hundred primary-key ranges per read.
const TRACES_PER_READ: usize = 500;

/// Traces the first step of a walk meets per trace of the page it must fill.
const MET_PER_WANTED_TRACE: u64 = 2;

/// Candidates per chunk when a list visits every trace.
const TRACES_PER_CHUNK: usize = 2000;

/// A trace as computed from its latest span versions.
pub(crate) struct Assembled {
    pub(crate) spans: Vec<Span>,
    /// Whether the latest version of one of its spans met the read's `hit` condition.
    pub(crate) has_hit: bool,
    /// When the first of its live span versions was written: the snapshot bound of paging.
    pub(crate) first_seen_ns: i64,
}

/// The columns `summarize` needs; [`SpanRead`](super::rows::SpanRead) takes the others (the
/// content above all) as empty. They are left out rather than aliased to empty values, so a
/// condition selected beside them still sees the stored columns.
const LIGHT_COLUMNS: &str = "trace_id, span_id, parent_id, name, log_type, start_ns, end_ns, \
     times_inferred, model, provider_id, status, prompt_tokens, completion_tokens, total_tokens, \
     cost, customer_identifier, session_identifier, thread_identifier, trace_group_identifier, \
     environment, trace_name";

/// Collapses stored versions to each span's latest; spans whose latest version is a tombstone
/// are gone. Ties between equal versions (two servers in the same nanosecond) go to the row
/// read last.
pub(crate) fn collapse(
    rows: Vec<SpanVersionRead>,
) -> Result<HashMap<String, Assembled>, StoreError> {
    /// One write of a span: its version, when it was written, whether it was a tombstone.
    struct Write {
        version: u64,
        ingested_ns: i64,
        deleted: bool,
    }
    struct Versions {
        latest: SpanVersionRead,
        writes: Vec<Write>,
    }
    let mut spans: HashMap<(String, String), Versions> = HashMap::new();
    for row in rows {
        let write = Write {
            version: row.version,
            ingested_ns: row.ingested_ns,
            deleted: row.deleted != 0,
        };
        let key = (row.span.trace_id.clone(), row.span.span_id.clone());
        match spans.get_mut(&key) {
            Some(versions) => {
                if row.version >= versions.latest.version {
                    versions.latest = row;
                }
                versions.writes.push(write);
            }
            None => {
                spans.insert(
                    key,
                    Versions {
                        latest: row,
                        writes: vec![write],
                    },
                );
            }
        }
    }
    let mut traces: HashMap<String, Assembled> = HashMap::new();
    for ((trace_id, _), Versions { latest, writes }) in spans {
        if latest.deleted != 0 {
            continue;
        }
        // First seen: the earliest write after the span's last tombstone.
        let last_tombstone = writes
            .iter()
            .filter(|write| write.deleted)
            .map(|write| write.version)
            .max();
        let first_seen = writes
            .iter()
            .filter(|write| !write.deleted && last_tombstone.is_none_or(|t| write.version > t))
            .map(|write| write.ingested_ns)
            .min()
            .unwrap_or(latest.ingested_ns);
        let span = latest.span.into_span()?;
        let trace = traces.entry(trace_id).or_insert_with(|| Assembled {
            spans: Vec::new(),
            has_hit: false,
            first_seen_ns: i64::MAX,
        });
        trace.has_hit |= latest.hit != 0;
        trace.first_seen_ns = trace.first_seen_ns.min(first_seen);
        trace.spans.push(span);
    }
    Ok(traces)
}

/// The live spans of each of `trace_ids` that has any, with `columns` (the full
/// [`SPAN_COLUMNS`] or [`LIGHT_COLUMNS`]).
async fn assemble(
    client: &Client,
    project: ProjectId,
    trace_ids: &[&str],
    columns: &str,
) -> Result<HashMap<String, Assembled>, StoreError> {
    let mut traces = HashMap::new();
    for chunk in trace_ids.chunks(TRACES_PER_READ) {
        // PREWHERE on the sorting key: only the granules holding these traces are read, and
        // their other columns only where a row matched.
        let rows: Vec<SpanVersionRead> = client
            .rows(&format!(
                "SELECT {columns}, {VERSION_COLUMNS} FROM span_versions \
                 PREWHERE project_id = {}{}",
                project.0,
                in_list("trace_id", chunk.iter().copied())
            ))
            .await?;
        traces.extend(collapse(rows)?);
    }
    Ok(traces)
}

pub(crate) async fn get_trace(
    client: &Client,
    project: ProjectId,
    trace_id: &TraceId,
) -> Result<Option<StoredTrace>, StoreError> {
    let mut traces = assemble(client, project, &[trace_id.as_str()], SPAN_COLUMNS).await?;
    let Some(trace) = traces.remove(trace_id.as_str()) else {
        return Ok(None);
    };
    let mut spans = trace.spans;
    let Some(summary) = summarize(&spans) else {
        return Ok(None);
    };
    spans.sort_by(|a, b| (a.start, &a.span_id).cmp(&(b.start, &b.span_id)));
    Ok(Some(StoredTrace { summary, spans }))
}

/// A candidate trace's exact aggregates, and whether it meets the whole query.
struct Computed {
    summary: TraceSummary,
    matches: bool,
}

/// Computes the traces of `trace_ids` exactly and judges them against `query`.
async fn compute(
    client: &Client,
    project: ProjectId,
    query: &TraceQuery,
    trace_ids: &[&str],
) -> Result<HashMap<String, Computed>, StoreError> {
    // Span conditions are judged on each span's latest version, by the same SQL that lists
    // spans, in the same read.
    let columns = if query.spans.is_empty() {
        LIGHT_COLUMNS.to_owned()
    } else {
        format!(
            "{LIGHT_COLUMNS}, toUInt8(ifNull({}, 0)) AS hit",
            span_filter_sql(&query.spans)
        )
    };
    let assembled = assemble(client, project, trace_ids, &columns).await?;
    let mut computed = HashMap::with_capacity(assembled.len());
    for (trace_id, trace) in assembled {
        let Some(summary) = summarize(&trace.spans) else {
            continue;
        };
        let start = summary.start.unix_nanos();
        let matches = query
            .start_from
            .is_none_or(|from| start >= from.unix_nanos())
            && query.start_to.is_none_or(|to| start <= to.unix_nanos())
            && query
                .as_of
                .is_none_or(|as_of| trace.first_seen_ns <= as_of.unix_nanos())
            && query
                .conditions
                .iter()
                .all(|condition| trace_matches(&summary, condition))
            && (query.spans.is_empty() || trace.has_hit);
        computed.insert(trace_id, Computed { summary, matches });
    }
    Ok(computed)
}

#[derive(Deserialize)]
struct IndexRow {
    trace_id: String,
    seen: i64,
}

/// Where a start-time walk (and `visit_all`) reads its candidates, narrowed by what the query
/// lets it skip and to rows starting at or after `lower`, and the expression of a row's
/// start bound.
fn walk_source(
    project: ProjectId,
    query: &TraceQuery,
    lower: Option<i64>,
) -> (String, &'static str) {
    if query.spans.is_empty() {
        // A trace's first index row was written by its first insert and one of its rows holds
        // its start, so `as_of` and `start_to` may narrow the index rows; a matching span may
        // have been written later, or start later, than its trace: those are judged exactly.
        let mut narrowed = String::new();
        if let Some(as_of) = query.as_of {
            narrowed.push_str(&format!(" AND ingested_ns <= {}", as_of.unix_nanos()));
        }
        if let Some(to) = query.start_to {
            narrowed.push_str(&format!(" AND start_ns <= {}", to.unix_nanos()));
        }
        if let Some(lower) = lower {
            narrowed.push_str(&format!(" AND start_ns >= {lower}"));
        }
        (
            format!(
                "trace_starts WHERE project_id = {} AND deleted = 0{narrowed}",
                project.0
            ),
            "start_ns",
        )
    } else {
        // Spans whose times were inferred say nothing about their trace's start: they sort
        // first, so they are always met before the bound is trusted, whatever the range.
        // The range is a `PREWHERE`: recent spans lie together in the sort order (by trace),
        // so a filter or search over content reads the range's granules, not the table's.
        let range = lower
            .map(|lower| format!(" PREWHERE (start_ns >= {lower} OR times_inferred = 1)"))
            .unwrap_or_default();
        (
            format!(
                "span_versions{range} WHERE project_id = {} AND deleted = 0 AND {}",
                project.0,
                span_filter_sql(&query.spans)
            ),
            "if(times_inferred = 1, toInt64(9223372036854775807), start_ns)",
        )
    }
}

/// Widths of the windows a newest-first walk of `trace_starts` tries before reading the whole
/// index: ten minutes back from the newest possible start, then four times wider each time.
/// The index is sorted by start, so a window reads only its own granules.
const FIRST_WINDOW_NS: i64 = 10 * 60 * 1_000_000_000;
const WINDOW_GROWTH: i64 = 4;
const WINDOWS: u32 = 9;

/// A trace met by a walk: its smallest row start seen so far (an upper bound on its start when
/// walking newest first, its start when oldest first), and its exact aggregates once computed.
struct Met {
    seen: i64,
    computed: Option<Computed>,
}

/// The list sorted by start time, by walking an index in that order (see the module doc).
/// Returns the page, the matches placed, and whether the walk saw every candidate (then the
/// matches placed are all there are).
async fn walk_by_start(
    client: &Client,
    project: ProjectId,
    query: &TraceQuery,
) -> Result<(Vec<TraceSummary>, u64, bool), StoreError> {
    let descending = query.sort.direction == Direction::Descending;
    // Whether a start is placed before `than` in the list's order.
    let before = |start: i64, than: i64| {
        if descending {
            start > than
        } else {
            start < than
        }
    };
    let order = if descending { "DESC" } else { "ASC" };
    // One match past the page tells whether a next page exists.
    let wanted = query.page.offset() + query.page.size + 1;
    let mut limit = wanted.saturating_mul(MET_PER_WANTED_TRACE).max(32);
    let floor = query.start_from.map(|from| from.unix_nanos());
    // Newest first: windows back from the newest start the query allows over the index, or
    // windows of the newest spans (their width in spans, not time) when spans are filtered.
    let windowed = descending;
    // The first span window (a few dozen traces) rarely holds a page of matching traces.
    let span_windows = if descending && !query.spans.is_empty() {
        let mut windows = super::query::recent_windows(client, project).await?;
        if windows.len() > 1 {
            windows.remove(0);
        }
        windows
    } else {
        Vec::new()
    };
    let top = query
        .start_to
        .map_or_else(crate::now_ns, |to| to.unix_nanos());
    let mut window = 0u32;
    let mut met: HashMap<String, Met> = HashMap::new();
    // Traces met without a live span (deleted): not computed again when met again.
    let mut dead: BTreeSet<String> = BTreeSet::new();
    loop {
        let window_start = windowed.then(|| {
            if !query.spans.is_empty() {
                usize::try_from(window)
                    .ok()
                    .and_then(|window| span_windows.get(window).copied())
            } else if window >= WINDOWS {
                None
            } else {
                let width = FIRST_WINDOW_NS.saturating_mul(WINDOW_GROWTH.pow(window));
                Some(top.saturating_sub(width))
            }
        });
        let lower = match (window_start.flatten(), floor) {
            (Some(start), Some(floor)) => Some(start.max(floor)),
            (start, floor) => start.or(floor),
        };
        let (source, key) = walk_source(project, query, lower);
        // One row per trace in the range: its smallest row start there (`seen`), which is its
        // start unless it has rows below the range. The traces with the newest (or oldest)
        // `seen` are met; every trace not met starts at or past the last one's `seen`, or
        // below the range.
        let rows: Vec<IndexRow> = client
            .rows(&format!(
                "SELECT trace_id, min(at) AS seen FROM \
                 (SELECT trace_id, {key} AS at FROM {source}) \
                 GROUP BY trace_id ORDER BY seen {order}, trace_id {order} LIMIT {limit}"
            ))
            .await?;
        let full = rows.len() as u64 == limit;
        let bound = if full {
            rows.last().map(|row| row.seen)
        } else {
            // The range is read to its end: only what lies below its lower edge is unseen.
            match lower {
                Some(lower) if lower > floor.unwrap_or(i64::MIN) => Some(lower.saturating_sub(1)),
                _ => None,
            }
        };
        let exhausted = bound.is_none();
        for row in rows.iter().filter(|row| !dead.contains(&row.trace_id)) {
            let entry = met.entry(row.trace_id.clone()).or_insert(Met {
                seen: row.seen,
                computed: None,
            });
            entry.seen = entry.seen.min(row.seen);
        }
        // Compute met traces in the order their bounds allow, until the page is certain.
        loop {
            let pending_edge = met
                .values()
                .filter(|trace| trace.computed.is_none())
                .map(|trace| trace.seen)
                .reduce(|a, b| if before(a, b) { a } else { b });
            let placed = |start: i64| {
                bound.is_none_or(|bound| before(start, bound))
                    && pending_edge.is_none_or(|edge| before(start, edge))
            };
            let settled = met
                .values()
                .filter_map(|trace| trace.computed.as_ref())
                .filter(|trace| trace.matches && placed(trace.summary.start.unix_nanos()))
                .count() as u64;
            if settled >= wanted || pending_edge.is_none() {
                if settled >= wanted || exhausted {
                    let mut page: Vec<&TraceSummary> = met
                        .values()
                        .filter_map(|trace| trace.computed.as_ref())
                        .filter(|trace| trace.matches && placed(trace.summary.start.unix_nanos()))
                        .map(|trace| &trace.summary)
                        .collect();
                    page.sort_by(|a, b| {
                        trace_order(a, b, TraceColumn::StartTime, query.sort.direction)
                    });
                    let total = page.len() as u64;
                    return Ok((page_of(page, query.page), total, exhausted));
                }
                break;
            }
            let mut pending: Vec<(&String, i64)> = met
                .iter()
                .filter(|(_, trace)| trace.computed.is_none())
                .map(|(id, trace)| (id, trace.seen))
                .collect();
            pending.sort_by(|a, b| {
                if before(a.1, b.1) {
                    std::cmp::Ordering::Less
                } else if before(b.1, a.1) {
                    std::cmp::Ordering::Greater
                } else {
                    a.0.cmp(b.0)
                }
            });
            let batch = usize::try_from(wanted.saturating_sub(settled))
                .unwrap_or(usize::MAX)
                .max(16);
            let ids: Vec<String> = pending
                .into_iter()
                .take(batch)
                .map(|(id, _)| id.clone())
                .collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut fresh = compute(client, project, query, &refs).await?;
            for id in ids {
                match fresh.remove(&id) {
                    Some(computed) => {
                        if let Some(trace) = met.get_mut(&id) {
                            trace.computed = Some(computed);
                        }
                    }
                    // No live span: deleted, or gone since the walk met it.
                    None => {
                        met.remove(&id);
                        dead.insert(id);
                    }
                }
            }
        }
        if full {
            limit = limit.saturating_mul(4);
        } else {
            window += 1;
        }
    }
}

fn page_of(sorted: Vec<&TraceSummary>, page: Page) -> Vec<TraceSummary> {
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let size = usize::try_from(page.size).unwrap_or(usize::MAX);
    sorted
        .into_iter()
        .skip(offset)
        .take(size)
        .cloned()
        .collect()
}

/// Any other order: every candidate trace computed, chunk by chunk, the best
/// `offset + size` kept.
async fn visit_all(
    client: &Client,
    project: ProjectId,
    query: &TraceQuery,
) -> Result<(Vec<TraceSummary>, u64), StoreError> {
    let keep = usize::try_from(query.page.offset() + query.page.size).unwrap_or(usize::MAX);
    let order = |a: &TraceSummary, b: &TraceSummary| {
        trace_order(a, b, query.sort.column, query.sort.direction)
    };
    let mut best: Vec<TraceSummary> = Vec::new();
    let mut total = 0u64;
    for_each_matching(client, project, query, |chunk| {
        total += chunk.len() as u64;
        best.extend(chunk);
        // Bounded: never more than a chunk past the page is held.
        best.sort_by(order);
        best.truncate(keep);
    })
    .await?;
    let page = page_of(best.iter().collect(), query.page);
    Ok((page, total))
}

/// Every trace matching `query`, computed chunk by chunk (in trace id order) and handed to
/// `visit` a chunk at a time, so memory stays bounded by the chunk.
async fn for_each_matching(
    client: &Client,
    project: ProjectId,
    query: &TraceQuery,
    mut visit: impl FnMut(Vec<TraceSummary>),
) -> Result<(), StoreError> {
    #[derive(Deserialize)]
    struct Candidate {
        trace_id: String,
    }
    // The candidates a start-time walk would meet, in trace id order instead.
    let (source, _) = walk_source(project, query, None);
    let mut after: Option<String> = None;
    loop {
        let position = after
            .as_deref()
            .map(|id| format!(" AND trace_id > {}", string_literal(id)))
            .unwrap_or_default();
        let candidates: Vec<Candidate> = client
            .rows(&format!(
                "SELECT DISTINCT trace_id FROM {source}{position} ORDER BY trace_id \
                 LIMIT {TRACES_PER_CHUNK}"
            ))
            .await?;
        let Some(last) = candidates.last() else {
            break;
        };
        after = Some(last.trace_id.clone());
        let ids: Vec<&str> = candidates.iter().map(|c| c.trace_id.as_str()).collect();
        visit(
            compute(client, project, query, &ids)
                .await?
                .into_values()
                .filter(|trace| trace.matches)
                .map(|trace| trace.summary)
                .collect(),
        );
        if candidates.len() < TRACES_PER_CHUNK {
            break;
        }
    }
    Ok(())
}

/// Threads or customers: ClickHouse stores no trace aggregates, so every matching trace is
/// computed and folded by the definition itself, [`GroupFold`].
pub(crate) async fn list_trace_groups(
    client: &Client,
    project: ProjectId,
    query: &GroupQuery,
) -> Result<Listing<TraceGroup>, StoreError> {
    let mut traces = query.traces.clone();
    if let Some(keys) = &query.keys
        && traces.spans.is_empty()
    {
        // A trace of a group has a span naming the group (its root's value or its first
        // span's), so the candidates can be the traces of such spans.
        let column = match query.grouping {
            Grouping::Thread => SpanColumn::ThreadIdentifier,
            Grouping::Customer => SpanColumn::CustomerIdentifier,
        };
        traces.spans.conditions.push(Condition {
            field: SpanField::Column(column),
            operator: Operator::In,
            values: keys.iter().cloned().map(FilterValue::Text).collect(),
        });
    }
    let customers = query.grouping == Grouping::Customer;
    let mut fold = GroupFold::new(query);
    if customers {
        let names = super::profiles::profile_names(client, project, query.keys.as_deref()).await?;
        fold = fold.with_names(names).keep_trace_ids();
    }
    for_each_matching(client, project, &traces, |chunk| {
        for summary in &chunk {
            fold.add(summary);
        }
    })
    .await?;
    let (mut listing, trace_ids) = fold.finish_with_trace_ids(query);
    if customers && !listing.items.is_empty() {
        let ttft = trace_ttft(client, project, &listing.items).await?;
        for group in &mut listing.items {
            let (mut sum, mut count) = (0.0, 0u64);
            for trace in trace_ids.get(&group.key).into_iter().flatten() {
                if let Some((trace_sum, trace_count)) = ttft.get(trace.as_str()) {
                    sum += trace_sum;
                    count += trace_count;
                }
            }
            group.average_ttft = mean(sum, count);
        }
    }
    Ok(listing)
}

/// Per trace of the traces that name these customers, the sum and number of the times to
/// first token its model calls report (`groups::llm_ttft`, read from the content of each
/// span's latest version: the content column of those traces' granules only).
async fn trace_ttft(
    client: &Client,
    project: ProjectId,
    groups: &[TraceGroup],
) -> Result<HashMap<String, (f64, u64)>, StoreError> {
    #[derive(Deserialize)]
    struct TraceTtft {
        trace_id: String,
        sum: f64,
        count: u64,
    }
    let customers: Vec<String> = groups.iter().map(|g| string_literal(&g.key)).collect();
    let llm_kinds: Vec<String> = LogType::LLM_KINDS
        .iter()
        .map(|kind| string_literal(kind))
        .collect();
    // -1 marks a span without one, so the latest version decides whether it has one.
    let rows: Vec<TraceTtft> = client
        .rows(&format!(
            "SELECT trace_id, sum(ttft) AS sum, count() AS count FROM ( \
               SELECT trace_id, span_id, argMax(ttft, version) AS ttft, \
                 argMax(deleted, version) AS gone FROM ( \
                   SELECT trace_id, span_id, version, deleted, \
                     if(log_type IN ({kinds}) AND visitParamHas(content, 'time_to_first_token'), \
                        visitParamExtractFloat(content, 'time_to_first_token'), -1.0) AS ttft \
                   FROM span_versions WHERE project_id = {project} AND trace_id GLOBAL IN ( \
                     SELECT trace_id FROM span_versions WHERE project_id = {project} \
                     AND customer_identifier IN ({customers}))) \
               GROUP BY trace_id, span_id) \
             WHERE gone = 0 AND ttft >= 0 GROUP BY trace_id",
            kinds = llm_kinds.join(", "),
            project = project.0,
            customers = customers.join(", "),
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.trace_id, (row.sum, row.count)))
        .collect())
}

#[derive(Deserialize)]
struct RootContent {
    trace_id: String,
    span_id: String,
    content: String,
}

pub(crate) async fn list_traces(
    client: &Client,
    project: ProjectId,
    query: &TraceQuery,
) -> Result<Listing<TraceListItem>, StoreError> {
    let by_start = query.sort.column == TraceColumn::StartTime
        && (query.sort.direction == Direction::Descending || query.spans.is_empty());
    if !by_start {
        let (page, total) = visit_all(client, project, query).await?;
        return Ok(Listing {
            total,
            total_is_exact: true,
            items: with_root_content(client, project, page).await?,
        });
    }
    let page = async {
        let (page, matched, exhausted) = walk_by_start(client, project, query).await?;
        let items = with_root_content(client, project, page).await?;
        Ok::<_, StoreError>((items, matched, exhausted))
    };
    let countable = query.conditions.is_empty()
        && query.spans.is_empty()
        && query.start_from.is_none()
        && query.start_to.is_none();
    if countable {
        // The count reads other rows than the page: both at once.
        let ((items, matched, exhausted), (count, exact)) =
            tokio::try_join!(page, count_traces(client, project, query))?;
        let (total, total_is_exact) = if exhausted {
            (matched, true)
        } else {
            (count.max(matched), exact)
        };
        Ok(Listing {
            total,
            total_is_exact,
            items,
        })
    } else {
        // Counting every match would compute every candidate; what the walk placed is a lower
        // bound that reaches past this page.
        let (items, matched, exhausted) = page.await?;
        Ok(Listing {
            total: matched,
            total_is_exact: exhausted,
            items,
        })
    }
}

/// Deleted traces whose tombstones a count handles one by one; more make it read with `FINAL`.
const TOMBSTONED_TRACES_CHECKED: usize = 1000;

/// The project's live traces first seen by the query's `as_of`, counted up to the page's count
/// limit. Without `FINAL`: traces never deleted count by their live rows, and the few deleted
/// ones are judged by the latest version of each of their rows.
async fn count_traces(
    client: &Client,
    project: ProjectId,
    query: &TraceQuery,
) -> Result<(u64, bool), StoreError> {
    #[derive(Deserialize)]
    struct Tombstoned {
        trace_id: String,
    }
    let limit = query.page.count_limit();
    let seen = query
        .as_of
        .map(|as_of| format!(" AND ingested_ns <= {}", as_of.unix_nanos()))
        .unwrap_or_default();
    let tombstoned: Vec<Tombstoned> = client
        .rows(&format!(
            "SELECT DISTINCT trace_id FROM trace_starts WHERE project_id = {} AND deleted = 1 \
             LIMIT {}",
            project.0,
            TOMBSTONED_TRACES_CHECKED + 1
        ))
        .await?;
    let n = if tombstoned.len() > TOMBSTONED_TRACES_CHECKED {
        count(
            client,
            &format!(
                "SELECT count() AS n FROM (SELECT DISTINCT trace_id FROM \
                 (SELECT trace_id, deleted, ingested_ns FROM trace_starts FINAL \
                 WHERE project_id = {}) WHERE deleted = 0{seen} LIMIT {})",
                project.0,
                limit + 1
            ),
        )
        .await?
    } else {
        let deleted = in_list("trace_id", tombstoned.iter().map(|t| t.trace_id.as_str()));
        let never_deleted = if tombstoned.is_empty() {
            String::new()
        } else {
            format!(" AND NOT ({})", deleted.trim_start_matches(" AND "))
        };
        let mut n = count(
            client,
            &format!(
                "SELECT count() AS n FROM (SELECT DISTINCT trace_id FROM trace_starts \
                 WHERE project_id = {} AND deleted = 0{seen}{never_deleted} LIMIT {})",
                project.0,
                limit + 1
            ),
        )
        .await?;
        if !tombstoned.is_empty() {
            n += count(
                client,
                &format!(
                    "SELECT uniqExact(trace_id) AS n FROM (SELECT trace_id, \
                     argMax(deleted, version) AS gone, argMax(ingested_ns, version) AS ingested_ns \
                     FROM trace_starts WHERE project_id = {}{deleted} GROUP BY trace_id, start_ns) \
                     WHERE gone = 0{seen}",
                    project.0
                ),
            )
            .await?;
        }
        n
    };
    Ok((n.min(limit), n <= limit))
}

/// The page's items: each trace with its root span's input, output and metadata, read for the
/// page's roots only.
async fn with_root_content(
    client: &Client,
    project: ProjectId,
    page: Vec<TraceSummary>,
) -> Result<Vec<TraceListItem>, StoreError> {
    let roots: Vec<(&str, &str)> = page
        .iter()
        .filter_map(|summary| {
            Some((
                summary.trace_id.as_str(),
                summary.root_span_id.as_ref()?.as_str(),
            ))
        })
        .collect();
    let mut contents: HashMap<(String, String), serde_json::Map<String, serde_json::Value>> =
        HashMap::new();
    if !roots.is_empty() {
        let found: Vec<RootContent> = client
            .rows(&format!(
                "SELECT trace_id, span_id, argMax(content, version) AS content \
                 FROM span_versions PREWHERE project_id = {}{}{} GROUP BY trace_id, span_id",
                project.0,
                in_list("trace_id", roots.iter().map(|(trace, _)| *trace)),
                in_list("span_id", roots.iter().map(|(_, span)| *span))
            ))
            .await?;
        for row in found {
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&row.content) {
                contents.insert((row.trace_id, row.span_id), map);
            }
        }
    }
    Ok(page
        .into_iter()
        .map(|summary| {
            let mut content = summary.root_span_id.as_ref().and_then(|root| {
                contents.remove(&(
                    summary.trace_id.as_str().to_owned(),
                    root.as_str().to_owned(),
                ))
            });
            let mut take = |key: &str| content.as_mut().and_then(|map| map.remove(key));
            let (input, output, metadata) = (take("input"), take("output"), take("metadata"));
            TraceListItem {
                summary,
                input,
                output,
                metadata,
            }
        })
        .collect())
}

/// The project's live traces, exactly: every trace with a live `trace_starts` row.
pub(crate) async fn trace_count(client: &Client, project: ProjectId) -> Result<u64, StoreError> {
    count(
        client,
        &format!(
            "SELECT uniqExact(trace_id) AS n FROM \
             (SELECT trace_id, deleted FROM trace_starts FINAL WHERE project_id = {}) \
             WHERE deleted = 0",
            project.0
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::rows::SpanRead;

    fn version(span_id: &str, cost: f64, version: u64, deleted: u8) -> SpanVersionRead {
        let row = serde_json::json!({
            "trace_id": "t", "span_id": span_id, "parent_id": null, "name": span_id,
            "log_type": "chat", "start_ns": 1_000, "end_ns": 2_000, "latency": 0.0,
            "times_inferred": 0, "model": null, "provider_id": null, "status": "success",
            "status_code": null, "error_message": null, "prompt_tokens": null,
            "completion_tokens": null, "total_tokens": null, "cost": cost,
            "customer_identifier": null, "session_identifier": null, "thread_identifier": null,
            "trace_group_identifier": null, "environment": null, "workflow_name": null,
            "path": null, "content": "", "trace_name": null,
        });
        let span: SpanRead = serde_json::from_value(row).unwrap();
        SpanVersionRead {
            span,
            ingested_ns: i64::try_from(version).unwrap(),
            version,
            deleted,
            hit: 0,
        }
    }

    #[test]
    fn the_latest_version_of_each_span_counts_and_tombstones_hide() {
        let rows = vec![
            version("a", 1.0, 10, 0),
            version("a", 2.0, 30, 0),
            version("a", 9.0, 20, 0),
            version("b", 5.0, 10, 0),
            version("b", 0.0, 40, 1),
            version("c", 3.0, 10, 0),
            version("c", 0.0, 20, 1),
            version("c", 4.0, 50, 0),
        ];
        let traces = collapse(rows).unwrap();
        let trace = &traces["t"];
        let mut costs: Vec<(String, Option<f64>)> = trace
            .spans
            .iter()
            .map(|span| (span.span_id.as_str().to_owned(), span.cost))
            .collect();
        costs.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            costs,
            vec![("a".to_owned(), Some(2.0)), ("c".to_owned(), Some(4.0))]
        );
        // "c" was deleted and sent again at 50: it is first seen then, "a" at 10.
        assert_eq!(trace.first_seen_ns, 10);
        let only_c = collapse(vec![
            version("c", 3.0, 10, 0),
            version("c", 0.0, 20, 1),
            version("c", 4.0, 50, 0),
        ])
        .unwrap();
        assert_eq!(only_c["t"].first_seen_ns, 50);
    }

    #[test]
    fn a_trace_of_tombstones_only_is_gone() {
        let traces = collapse(vec![version("a", 1.0, 10, 0), version("a", 0.0, 20, 1)]).unwrap();
        assert!(traces.is_empty());
    }
}
