//! Retention on ClickHouse: old traces hidden behind tombstones in bulk, whole day partitions
//! dropped once nothing live is left in them, and content expired by rewriting each old span's
//! row with the same version, so the rewrite replaces exactly that row and never a newer one.
//!
//! Every statement here only appends rows or drops partitions without a live row, so it
//! needs no agreement with writers: a span written while a sweep runs has a newer version than
//! anything the sweep writes, and is kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use tracehouse_core::retention::{CONTENT_EXPIRED_FIELD, expire_content};
use tracehouse_core::{
    Cutoffs, Project, ProjectId, ProjectName, RetentionOverride, RetentionStep, Timestamp,
};

use super::ClickHouseError;
use super::client::{Client, RowBinary, string_literal};
use super::keys;
use super::rows::{
    SPAN_COLUMNS, SPAN_INSERT_COLUMNS, SpanInsert, SpanRead, encode_span_tombstone,
    encode_trace_start_tombstone, json_lines,
};
use super::writer::write_tombstones;
use crate::now_ns;

/// Nanoseconds in a day, the partition of `span_versions` and `trace_starts`.
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// The partition expression both tables share, for rows' `start_ns`.
const DAY_OF_START: &str = "toYYYYMMDD(toDateTime(intDiv(start_ns, 1000000000)))";

/// Where retention runs: the query node, and every node's own tables for partition work.
pub(crate) struct Nodes<'a> {
    pub(crate) client: &'a Client,
    /// Each node's client, the query node first.
    pub(crate) all: &'a [Client],
    /// `_local` on a cluster, where every node holds its shard in `name_local`.
    pub(crate) local: &'a str,
}

#[derive(Deserialize, serde::Serialize)]
struct RetentionRow {
    project_id: i64,
    retention_days: Option<u32>,
    content_retention_days: Option<u32>,
    #[serde(alias = "newest")]
    version: u64,
}

/// Every project with its stored retention, ordered by name.
pub(crate) async fn project_retention(
    client: &Client,
) -> Result<Vec<(Project, RetentionOverride)>, ClickHouseError> {
    let rows: Vec<RetentionRow> = client
        .rows(
            "SELECT project_id, argMax(retention_days, version) AS retention_days, \
             argMax(content_retention_days, version) AS content_retention_days, \
             max(version) AS newest FROM project_retention GROUP BY project_id",
        )
        .await?;
    let stored: HashMap<i64, RetentionOverride> = rows
        .into_iter()
        .map(|row| {
            (
                row.project_id,
                RetentionOverride {
                    days: row.retention_days,
                    content_days: row.content_retention_days,
                },
            )
        })
        .collect();
    Ok(keys::list_projects(client)
        .await?
        .into_iter()
        .map(|project| {
            let retention = stored.get(&project.id.0).copied().unwrap_or_default();
            (project, retention)
        })
        .collect())
}

/// Stores a project's retention over what it had; a newer row replaces the older.
pub(crate) async fn set_project_retention(
    client: &Client,
    name: &ProjectName,
    retention: RetentionOverride,
) -> Result<(Project, RetentionOverride), ClickHouseError> {
    let project = keys::create_project(client, name).await?;
    let before = project_retention(client)
        .await?
        .into_iter()
        .find(|(listed, _)| listed.id == project.id)
        .map_or_else(RetentionOverride::default, |(_, stored)| stored);
    let stored = before.or(retention);
    client
        .insert(
            "project_retention",
            json_lines(&[RetentionRow {
                project_id: project.id.0,
                retention_days: stored.days,
                content_retention_days: stored.content_days,
                version: u64::try_from(now_ns()).unwrap_or(0),
            }])?,
        )
        .await?;
    Ok((project, stored))
}

/// One step over every project of the plan, then, once nothing is left to remove, the drop of
/// every day partition with no live row left.
pub(crate) async fn apply(
    nodes: &Nodes<'_>,
    plan: &[(ProjectId, Cutoffs)],
    now: Timestamp,
    limit: usize,
) -> Result<RetentionStep, ClickHouseError> {
    let limit = limit.max(1);
    let mut total = RetentionStep {
        done: true,
        ..RetentionStep::default()
    };
    for (project, cutoffs) in plan {
        if let Some(before) = cutoffs.data_before {
            total.merge(remove_traces(nodes.client, *project, before, limit).await?);
        }
        if let Some(before) = cutoffs.content_before {
            total.merge(expire_contents(nodes, *project, before, now, limit).await?);
        }
        if !total.done {
            return Ok(total);
        }
    }
    let latest_cutoff = plan.iter().filter_map(|(_, c)| c.data_before).max();
    if let Some(before) = latest_cutoff {
        total.days_dropped = drop_dead_days(nodes, before).await?;
    }
    Ok(total)
}

#[derive(Deserialize)]
struct Candidate {
    trace_id: String,
    start_ns: i64,
}

#[derive(Deserialize)]
struct StoredVersion {
    trace_id: String,
    span_id: String,
    start_ns: i64,
    end_ns: i64,
    version: u64,
    deleted: u8,
}

/// Hides up to `limit` traces whose latest live span ends before `before`. Candidates are
/// traces that started before it, walked in start order past those still active.
async fn remove_traces(
    client: &Client,
    project: ProjectId,
    before: Timestamp,
    limit: usize,
) -> Result<RetentionStep, ClickHouseError> {
    let mut step = RetentionStep {
        done: true,
        ..RetentionStep::default()
    };
    let mut after = (i64::MIN, String::new());
    loop {
        let candidates: Vec<Candidate> = client
            .rows(&format!(
                "SELECT trace_id, start_ns FROM (SELECT trace_id, start_ns, deleted FROM trace_starts FINAL \
                 WHERE project_id = {p} AND start_ns < {b} AND start_ns >= {s}) \
                 WHERE deleted = 0 AND (start_ns > {s} OR (start_ns = {s} AND trace_id > {t})) \
                 ORDER BY start_ns, trace_id LIMIT {limit}",
                p = project.0,
                b = before.unix_nanos(),
                s = after.0,
                t = string_literal(&after.1),
            ))
            .await?;
        let Some(last) = candidates.last() else {
            return Ok(step);
        };
        after = (last.start_ns, last.trace_id.clone());
        let exhausted = candidates.len() < limit;
        let ids: BTreeSet<&str> = candidates.iter().map(|c| c.trace_id.as_str()).collect();
        let (traces, spans) = tombstone_expired(client, project, &ids, before).await?;
        step.traces_removed += traces;
        step.spans_removed += spans;
        if exhausted {
            return Ok(step);
        }
        if step.traces_removed >= limit as u64 {
            step.done = false;
            return Ok(step);
        }
    }
}

/// Tombstones every trace of `ids` whose live spans all end before `before`, each with a
/// version just above its newest row, so rows written after the versions were read win.
async fn tombstone_expired(
    client: &Client,
    project: ProjectId,
    ids: &BTreeSet<&str>,
    before: Timestamp,
) -> Result<(u64, u64), ClickHouseError> {
    let list = ids
        .iter()
        .map(|id| string_literal(id))
        .collect::<Vec<_>>()
        .join(", ");
    let versions: Vec<StoredVersion> = client
        .rows(&format!(
            "SELECT trace_id, span_id, start_ns, end_ns, version, deleted FROM span_versions \
             PREWHERE project_id = {} AND trace_id IN ({list})",
            project.0
        ))
        .await?;
    let mut by_trace: BTreeMap<&str, Vec<&StoredVersion>> = BTreeMap::new();
    for row in &versions {
        by_trace.entry(row.trace_id.as_str()).or_default().push(row);
    }
    let mut expired: HashMap<&str, u64> = HashMap::new();
    let mut tombstones = RowBinary::default();
    let mut spans_removed = 0u64;
    for (trace_id, rows) in &by_trace {
        let mut latest: HashMap<&str, &StoredVersion> = HashMap::new();
        for row in rows {
            let entry = latest.entry(row.span_id.as_str()).or_insert(row);
            if row.version > entry.version {
                *entry = row;
            }
        }
        let live: Vec<&&StoredVersion> = latest.values().filter(|r| r.deleted == 0).collect();
        if live.is_empty() || live.iter().any(|r| r.end_ns >= before.unix_nanos()) {
            continue;
        }
        let version = rows.iter().map(|r| r.version).max().unwrap_or(0) + 1;
        let distinct: BTreeSet<(&str, i64)> = rows
            .iter()
            .map(|r| (r.span_id.as_str(), r.start_ns))
            .collect();
        for (span_id, start_ns) in distinct {
            encode_span_tombstone(
                &mut tombstones,
                project,
                trace_id,
                span_id,
                start_ns,
                version,
            );
        }
        spans_removed += live.len() as u64;
        expired.insert(trace_id, version);
    }
    if expired.is_empty() {
        return Ok((0, 0));
    }
    let list = expired
        .keys()
        .map(|id| string_literal(id))
        .collect::<Vec<_>>()
        .join(", ");
    let starts: Vec<Candidate> = client
        .rows(&format!(
            "SELECT DISTINCT trace_id, start_ns FROM trace_starts \
             WHERE project_id = {} AND trace_id IN ({list})",
            project.0
        ))
        .await?;
    let mut index = RowBinary::default();
    for start in &starts {
        if let Some(version) = expired.get(start.trace_id.as_str()) {
            encode_trace_start_tombstone(
                &mut index,
                project,
                &start.trace_id,
                start.start_ns,
                *version,
            );
        }
    }
    write_tombstones(client, tombstones, index).await?;
    Ok((expired.len() as u64, spans_removed))
}

#[derive(Deserialize)]
struct ContentRow {
    #[serde(flatten)]
    span: SpanRead,
    ingested_ns: i64,
    version: u64,
}

/// Rewrites up to `limit` live spans started before `before` whose content has not expired,
/// oldest first, each with its own version; then merges each day partition it finished, so
/// the rewritten rows replace the originals on disk.
async fn expire_contents(
    nodes: &Nodes<'_>,
    project: ProjectId,
    before: Timestamp,
    now: Timestamp,
    limit: usize,
) -> Result<RetentionStep, ClickHouseError> {
    // Expired content opens with the marker (see `expire_content`); 18.16 has no `startsWith`.
    let opening = format!("{{\"{CONTENT_EXPIRED_FIELD}\"");
    let (marker, marker_len) = (string_literal(&opening), opening.len());
    let rows: Vec<ContentRow> = nodes
        .client
        .rows(&format!(
            "SELECT {SPAN_COLUMNS}, ingested_ns, version FROM (SELECT * FROM span_versions FINAL \
             WHERE project_id = {p} AND start_ns < {b}) \
             WHERE deleted = 0 AND substring(content, 1, {marker_len}) != {marker} \
             ORDER BY start_ns LIMIT {limit}",
            p = project.0,
            b = before.unix_nanos(),
        ))
        .await?;
    let done = rows.len() < limit;
    let mut days = BTreeSet::new();
    let mut encoded = RowBinary::default();
    let count = rows.len() as u64;
    for row in rows {
        let (ingested_ns, version) = (row.ingested_ns, row.version);
        let mut span = row.span.into_span()?;
        days.insert(span.start.unix_nanos().div_euclid(DAY_NS));
        expire_content(&mut span.content, now);
        SpanInsert::new(project, &span, ingested_ns, version)?.encode(&mut encoded);
    }
    nodes
        .client
        .insert_binary("span_versions", SPAN_INSERT_COLUMNS, encoded.into_bytes())
        .await?;
    // The last day may go on in the next step; every earlier one is finished.
    let finished: Vec<i64> = if done {
        days.into_iter().collect()
    } else {
        let last = days.last().copied();
        days.into_iter().filter(|day| Some(*day) != last).collect()
    };
    for day in finished {
        let partition = partition_of(day);
        for node in nodes.all {
            node.execute(&format!(
                "OPTIMIZE TABLE span_versions{} PARTITION {partition} FINAL",
                nodes.local
            ))
            .await?;
        }
    }
    Ok(RetentionStep {
        spans_content_expired: count,
        done,
        ..RetentionStep::default()
    })
}

/// The partition id of a day number (days since the epoch): `YYYYMMDD`.
fn partition_of(day: i64) -> String {
    Timestamp::from_unix_nanos(day * DAY_NS)
        .to_rfc3339()
        .get(..10)
        .unwrap_or_default()
        .replace('-', "")
}

#[derive(Deserialize)]
struct DeadDay {
    day: u32,
}

/// Drops, on every node, each day partition before `before` whose every row is hidden by a
/// tombstone in the same partition (tombstones are written into each partition a span's
/// versions occupy, so nothing a dropped day hid can come back).
async fn drop_dead_days(nodes: &Nodes<'_>, before: Timestamp) -> Result<u64, ClickHouseError> {
    let mut dropped = BTreeSet::new();
    for node in nodes.all {
        for (table, key) in [
            ("span_versions", "project_id, trace_id, span_id"),
            ("trace_starts", "project_id, start_ns, trace_id"),
        ] {
            let days: Vec<DeadDay> = node
                .rows(&format!(
                    "SELECT day FROM (SELECT {DAY_OF_START} AS day, argMax(deleted, version) AS dead \
                     FROM {table}{local} WHERE start_ns < {b} GROUP BY day, {key}) \
                     GROUP BY day HAVING min(dead) = 1",
                    local = nodes.local,
                    b = before.unix_nanos(),
                ))
                .await?;
            for day in days {
                node.execute(&format!(
                    "ALTER TABLE {table}{} DROP PARTITION {}",
                    nodes.local, day.day
                ))
                .await?;
                if table == "span_versions" {
                    dropped.insert(day.day);
                }
            }
        }
    }
    Ok(dropped.len() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_ids_are_utc_days() {
        assert_eq!(super::partition_of(0), "19700101");
        assert_eq!(super::partition_of(20_000), "20241004");
    }
}
