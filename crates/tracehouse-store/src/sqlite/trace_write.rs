//! The writer's side of trace aggregates: each group commit updates the `traces` row, the root
//! candidates (`trace_roots`) and the facets (`trace_facets`) of the traces it touched by
//! deltas, never by reading a trace's spans back.
//!
//! While a commit writes spans, [`TraceWrites`] keeps per touched trace its stored
//! [`TraceState`] (loaded once per commit), adds each written span and removes each replaced
//! span's stored facts. At the end of the commit ([`TraceWrites::flush`]) it settles, per trace:
//! - the root candidates of the spans written (parentless spans, and spans whose parent is not
//!   stored), and the adoption of stored orphans whose parent arrived;
//! - the root: the first candidate in key order, read by one index seek, and its name and
//!   grouping values, read from the root span only when the root changed;
//! - the facets: rows added or removed as a value's span count leaves or reaches zero, and
//!   restamped when the trace's start moved;
//! - the `traces` row, with the state beside the summary.
//!
//! So a span's write costs the same whatever its trace's length and arrival order. The one
//! exception is a re-sent span that moves an extreme of its trace inward (see
//! `tracehouse_core::trace_state`): that trace's state is rebuilt from its stored columns.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{OptionalExtension, Transaction, params};
use tracehouse_core::query::SpanColumn;
use tracehouse_core::trace_state::{RootInfo, RootKind, SpanFacts, TraceState};
use tracehouse_core::{ProjectId, Span, TraceId};

use super::SqliteError;
use super::rows::{FACT_COLUMNS, StoredFacts, UPSERT_TRACE, upsert_trace};

/// Where a span written in this commit stood before it.
struct Written<'a> {
    /// The last copy written in this commit.
    span: &'a Span,
    /// Start of the copy stored before this commit, if there was one: its root candidate row,
    /// if any, is keyed by it.
    stored_before: Option<i64>,
}

/// One touched trace's pending work.
struct TraceWork<'a> {
    /// A `traces` row existed before this commit.
    existed: bool,
    /// What the facets were before this commit (`None` for a new trace, or a row written
    /// before states were kept, whose facets must then be rewritten whole).
    before: Option<Before>,
    /// The state with this commit's spans counted in and their replaced copies counted out.
    state: TraceState,
    written: HashMap<&'a str, Written<'a>>,
}

impl TraceWork<'_> {
    /// The trace was stored without a usable state (written before states were kept): its
    /// state is rebuilt from the stored spans and its facets rewritten whole.
    fn state_lost(&self) -> bool {
        self.existed && self.before.is_none()
    }
}

/// A trace of a project, as the cache keys it.
type TraceKey = (ProjectId, TraceId);

/// Traces kept in each generation of [`TraceCache`].
const TRACE_CACHE_GENERATION: usize = 4096;

/// The states of recently written traces, kept by the writer across commits: an exporter sends
/// a trace in many requests, and reading and parsing its state from `traces` on every one of
/// them was a tenth of the writer's time.
///
/// Two generations bound it (at most twice [`TRACE_CACHE_GENERATION`] states, a few MB): a
/// full young generation becomes the old one and the old one is dropped. The writer is the
/// only writer of trace states in this process; another process writing the database file
/// (`tracehouse import` or `keys` on the data directory) changes SQLite's `data_version`, and
/// the cache is emptied before the next commit.
#[derive(Default)]
pub(crate) struct TraceCache {
    young: HashMap<TraceKey, TraceState>,
    old: HashMap<TraceKey, TraceState>,
    data_version: Option<i64>,
}

impl TraceCache {
    /// Empties the cache if another connection committed since the last call.
    pub(crate) fn check_other_writers(
        &mut self,
        connection: &rusqlite::Connection,
    ) -> Result<(), SqliteError> {
        let version: i64 = connection.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if self.data_version != Some(version) {
            self.young.clear();
            self.old.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Takes a trace's state out; it comes back with [`TraceCache::keep`] once a commit with
    /// the trace's new state succeeded, so a failed commit leaves no stale state behind.
    fn take(&mut self, key: &TraceKey) -> Option<TraceState> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    /// Keeps the committed states of a group commit's traces.
    pub(crate) fn keep(&mut self, states: Vec<(TraceKey, TraceState)>) {
        for (key, state) in states {
            if self.young.len() >= TRACE_CACHE_GENERATION {
                self.old = std::mem::take(&mut self.young);
            }
            self.young.insert(key, state);
        }
    }

    /// Forgets a deleted trace.
    pub(crate) fn forget(&mut self, project: ProjectId, trace_id: &TraceId) {
        let key = (project, trace_id.clone());
        self.young.remove(&key);
        self.old.remove(&key);
    }
}

/// Changes to `project_totals` in one commit: spans and traces added (or, negative, deleted).
#[derive(Default)]
pub(crate) struct ProjectTotals {
    changes: HashMap<ProjectId, (i64, i64)>,
}

impl ProjectTotals {
    pub(crate) fn add(&mut self, project: ProjectId, spans: i64, traces: i64) {
        let change = self.changes.entry(project).or_default();
        change.0 += spans;
        change.1 += traces;
    }

    /// Applies the changes; a project that got new rows is stamped with this commit's time, the
    /// first-seen time of those rows (reads use it to skip a snapshot bound nothing can pass).
    pub(crate) fn flush(
        self,
        transaction: &Transaction<'_>,
        ingested_ns: i64,
    ) -> Result<(), SqliteError> {
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO project_totals (project_id, spans, traces, last_write_ns) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (project_id) DO UPDATE SET spans = spans + excluded.spans, \
             traces = traces + excluded.traces, \
             last_write_ns = max(last_write_ns, excluded.last_write_ns)",
        )?;
        for (project, (spans, traces)) in self.changes {
            if spans != 0 || traces != 0 {
                upsert.execute(params![project.0, spans, traces, ingested_ns])?;
            }
        }
        Ok(())
    }
}

/// What the writer needs of a trace's stored state once this commit's spans changed it: its
/// facet values and its start, to bring the facet rows along. (The root it had stays in the
/// state until the new root is set.) Far smaller than a copy of the state.
struct Before {
    facets: Vec<(SpanColumn, String)>,
    start_ns: Option<i64>,
}

impl Before {
    fn of(state: &TraceState) -> Self {
        Self {
            facets: state
                .distinct_values()
                .map(|(column, value)| (column, value.to_owned()))
                .collect(),
            start_ns: state.time_range().map(|(start, _)| start.unix_nanos()),
        }
    }
}

/// The traces touched by one group commit.
pub(crate) struct TraceWrites<'a, 'c> {
    traces: HashMap<(ProjectId, &'a TraceId), TraceWork<'a>>,
    cache: &'c mut TraceCache,
}

impl<'a, 'c> TraceWrites<'a, 'c> {
    pub(crate) fn new(cache: &'c mut TraceCache) -> Self {
        Self {
            traces: HashMap::new(),
            cache,
        }
    }

    /// Counts in a span just written; `replaced` is the copy it overwrote.
    pub(crate) fn written(
        &mut self,
        transaction: &Transaction<'_>,
        project: ProjectId,
        span: &'a Span,
        replaced: Option<&StoredFacts>,
    ) -> Result<(), SqliteError> {
        let work = self.work(transaction, project, &span.trace_id)?;
        if let Some(replaced) = replaced {
            work.state.remove(&replaced.facts());
        }
        work.state.add(&SpanFacts::of(span));
        work.written
            .entry(span.span_id.as_str())
            .and_modify(|written| written.span = span)
            .or_insert(Written {
                span,
                stored_before: replaced.map(|stored| stored.start_ns),
            });
        Ok(())
    }

    /// Drops the pending work of a trace that is being deleted in this commit.
    pub(crate) fn discard(&mut self, project: ProjectId, trace_id: &TraceId) {
        self.traces
            .retain(|(p, t), _| !(*p == project && *t == trace_id));
        self.cache.forget(project, trace_id);
    }

    fn work(
        &mut self,
        transaction: &Transaction<'_>,
        project: ProjectId,
        trace_id: &'a TraceId,
    ) -> Result<&mut TraceWork<'a>, SqliteError> {
        use std::collections::hash_map::Entry;
        match self.traces.entry((project, trace_id)) {
            Entry::Occupied(work) => Ok(work.into_mut()),
            Entry::Vacant(slot) => {
                if let Some(cached) = self.cache.take(&(project, trace_id.clone())) {
                    return Ok(slot.insert(TraceWork {
                        existed: true,
                        before: Some(Before::of(&cached)),
                        state: cached,
                        written: HashMap::new(),
                    }));
                }
                let stored: Option<Option<String>> = transaction
                    .prepare_cached(
                        "SELECT state FROM traces WHERE project_id = ?1 AND trace_id = ?2",
                    )?
                    .query_row(params![project.0, trace_id.as_str()], |row| row.get(0))
                    .optional()?;
                let state = match &stored {
                    Some(Some(text)) => serde_json::from_str::<TraceState>(text).ok(),
                    _ => None,
                };
                Ok(slot.insert(TraceWork {
                    existed: stored.is_some(),
                    before: state.as_ref().map(Before::of),
                    state: state.unwrap_or_default(),
                    written: HashMap::new(),
                }))
            }
        }
    }

    /// Settles every touched trace: root candidates, root, facets and the `traces` row.
    /// Returns the traces' new states, for the cache once the commit succeeded.
    pub(crate) fn flush(
        self,
        transaction: &Transaction<'_>,
        ingested_ns: i64,
        totals: &mut ProjectTotals,
    ) -> Result<Vec<(TraceKey, TraceState)>, SqliteError> {
        let mut states = Vec::with_capacity(self.traces.len());
        let mut save = transaction.prepare_cached(UPSERT_TRACE)?;
        for ((project, trace_id), mut work) in self.traces {
            let first_candidate = update_root_candidates(transaction, project, trace_id, &work)?;
            // The root as the state had it; a rebuild forgets it.
            let mut kept_root = work.state.root().cloned();
            if work.state_lost() || !work.state.is_exact() {
                work.state = rebuild_state(transaction, project, trace_id)?;
            }
            let root_id = if work.existed {
                transaction
                    .prepare_cached(
                        "SELECT span_id FROM trace_roots WHERE project_id = ?1 AND trace_id = ?2 \
                         ORDER BY kind, start_ns, span_id LIMIT 1",
                    )?
                    .query_row(params![project.0, trace_id.as_str()], |row| {
                        row.get::<_, String>(0)
                    })
                    .optional()?
            } else {
                // Every candidate of a new trace was found in this commit.
                first_candidate
            };
            let root_id =
                root_id.or_else(|| work.state.first_span().map(|key| key.span_id.clone()));
            let root = match root_id {
                None => None,
                Some(id) => Some(match work.written.get(id.as_str()) {
                    Some(written) => RootInfo::of(written.span),
                    None => match kept_root.take().filter(|root| root.span_id == id) {
                        Some(unchanged) => unchanged,
                        None => load_root(transaction, project, trace_id, &id)?,
                    },
                }),
            };
            work.state.set_root(root);
            let Some(summary) = work.state.summary(trace_id) else {
                continue;
            };
            update_facets(
                transaction,
                project,
                trace_id,
                work.before.as_ref(),
                work.state_lost(),
                &work.state,
                summary.start.unix_nanos(),
            )?;
            upsert_trace(&mut save, project, &summary, &work.state, ingested_ns)?;
            if !work.existed {
                totals.add(project, 0, 1);
            }
            states.push(((project, trace_id.clone()), work.state));
        }
        Ok(states)
    }
}

/// Rewrites the root candidates of the spans written to a trace in this commit, and returns
/// the first of them in root order (kind, start, span id).
fn update_root_candidates(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    work: &TraceWork<'_>,
) -> Result<Option<String>, SqliteError> {
    let trace = trace_id.as_str();
    if work.existed {
        let mut remove_stale = transaction.prepare_cached(
            "DELETE FROM trace_roots WHERE project_id = ?1 AND trace_id = ?2 AND kind IN (0, 1) \
             AND start_ns = ?3 AND span_id = ?4",
        )?;
        let mut adopt = transaction.prepare_cached(
            "DELETE FROM trace_roots WHERE project_id = ?1 AND trace_id = ?2 AND parent_id = ?3 AND kind = 1",
        )?;
        for (span_id, written) in &work.written {
            match written.stored_before {
                Some(start_ns) => {
                    remove_stale.execute(params![project.0, trace, start_ns, span_id])?;
                }
                // Only a span new to the trace can be the parent a stored orphan waits for.
                None => {
                    adopt.execute(params![project.0, trace, span_id])?;
                }
            }
        }
    }
    let mut parent_stored = transaction.prepare_cached(
        "SELECT 1 FROM spans WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3",
    )?;
    let mut candidates: BTreeSet<(RootKind, i64, &str)> = BTreeSet::new();
    for (span_id, written) in &work.written {
        let facts = SpanFacts::of(written.span);
        let kind = match facts.parent_id {
            _ if facts.is_parentless() => Some(RootKind::Parentless),
            Some(parent) if work.written.contains_key(parent) => None,
            Some(parent) if work.existed => {
                let stored = parent_stored
                    .query_row(params![project.0, trace, parent], |_| Ok(()))
                    .optional()?
                    .is_some();
                (!stored).then_some(RootKind::Orphan)
            }
            _ => Some(RootKind::Orphan),
        };
        if let Some(kind) = kind {
            candidates.insert((kind, facts.start.unix_nanos(), *span_id));
        }
    }
    if !candidates.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT OR REPLACE INTO trace_roots (project_id, trace_id, kind, start_ns, span_id, parent_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (kind, start_ns, span_id) in &candidates {
            let parent = match kind {
                RootKind::Parentless => None,
                RootKind::Orphan => work
                    .written
                    .get(span_id)
                    .and_then(|written| written.span.parent_id.as_ref())
                    .map(|parent| parent.as_str()),
            };
            insert.execute(params![
                project.0,
                trace,
                *kind as i64,
                start_ns,
                span_id,
                parent
            ])?;
        }
    }
    Ok(candidates
        .first()
        .map(|(_, _, span_id)| (*span_id).to_owned()))
}

/// The state of a trace from its stored spans' columns: for traces written before states were
/// kept, and after a re-sent span moved an extreme inward.
fn rebuild_state(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
) -> Result<TraceState, SqliteError> {
    let stored: Vec<StoredFacts> = transaction
        .prepare_cached(&format!(
            "SELECT {FACT_COLUMNS} FROM spans WHERE project_id = ?1 AND trace_id = ?2"
        ))?
        .query_map(params![project.0, trace_id.as_str()], StoredFacts::from_row)?
        .collect::<Result<_, _>>()?;
    Ok(TraceState::from_facts(
        stored.iter().map(StoredFacts::facts),
    ))
}

/// The root information of a stored span; its `trace_name` is the one value read from content.
fn load_root(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    span_id: &str,
) -> Result<RootInfo, SqliteError> {
    let root = transaction
        .prepare_cached(
            "SELECT name, environment, customer_identifier, session_identifier, thread_identifier, \
             trace_group_identifier, json_extract(span_content(content), '$.trace_name') \
             FROM spans WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3",
        )?
        .query_row(params![project.0, trace_id.as_str(), span_id], |row| {
            let name: String = row.get(0)?;
            // A non-text trace_name is ignored, as `RootInfo::of` ignores it.
            let trace_name: Option<String> = row.get(6).ok().flatten();
            Ok(RootInfo {
                span_id: span_id.to_owned(),
                name: trace_name.filter(|t| !t.is_empty()).unwrap_or(name),
                grouping: [
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ],
            })
        })
        .optional()?;
    root.ok_or_else(|| {
        SqliteError::Corrupt(format!(
            "root candidate {span_id} of trace {trace_id} has no span"
        ))
    })
}

/// Brings a trace's facet rows from the values they had `before` to `after`'s distinct values, all
/// stamped with the trace's start.
fn update_facets(
    transaction: &Transaction<'_>,
    project: ProjectId,
    trace_id: &TraceId,
    before: Option<&Before>,
    rewrite_whole: bool,
    after: &TraceState,
    start_ns: i64,
) -> Result<(), SqliteError> {
    let trace = trace_id.as_str();
    let old: Vec<(SpanColumn, &str)> = before
        .map(|b| {
            b.facets
                .iter()
                .map(|(column, value)| (*column, value.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<(SpanColumn, &str)> = after.distinct_values().collect();
    if rewrite_whole {
        // The stored state that said which facet rows exist is gone: start from none.
        transaction
            .prepare_cached("DELETE FROM trace_facets INDEXED BY trace_facets_by_trace WHERE project_id = ?1 AND trace_id = ?2")?
            .execute(params![project.0, trace])?;
    } else {
        let old_start = before.and_then(|b| b.start_ns);
        if old_start.is_some_and(|old_start| old_start != start_ns) {
            transaction
                .prepare_cached("UPDATE trace_facets INDEXED BY trace_facets_by_trace SET start_ns = ?3 WHERE project_id = ?1 AND trace_id = ?2")?
                .execute(params![project.0, trace, start_ns])?;
        }
        let mut remove = transaction.prepare_cached(
            "DELETE FROM trace_facets INDEXED BY trace_facets_by_trace \
             WHERE project_id = ?1 AND trace_id = ?2 AND facet = ?3 AND value = ?4",
        )?;
        for (column, value) in &old {
            if !new.contains(&(*column, value)) {
                remove.execute(params![project.0, trace, column.api_name(), value])?;
            }
        }
    }
    let mut insert = transaction.prepare_cached(
        "INSERT INTO trace_facets (project_id, facet, value, start_ns, trace_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (column, value) in &new {
        if !rewrite_whole && old.contains(&(*column, value)) {
            continue;
        }
        insert.execute(params![
            project.0,
            column.api_name(),
            value,
            start_ns,
            trace
        ])?;
    }
    Ok(())
}
