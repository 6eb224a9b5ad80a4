//! Versioned schema migrations: a later release opens every older database.

use rusqlite_migration::{HookError, M, Migrations};
use tracehouse_core::query::SpanColumn;
use tracehouse_core::trace_state::DISTINCT_FIELDS;

/// Span fields kept as trace facets (`trace_facets.facet` is the field's API name): every
/// field whose distinct values a trace's state counts, so the writer adds and removes facet
/// rows as those counts go from and to zero. `query` answers equality filters on them from
/// the facets.
pub(crate) const FACET_COLUMNS: [SpanColumn; 6] = DISTINCT_FIELDS;

/// Every migration ever shipped, in order. Never edit one that has been released: add another.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        // v2's rollups were filled by a hook running the writer's code of the day; today's
        // code writes v4's columns, so v4's hook fills them instead, for every older database.
        M::up(V2),
        M::up(V3),
        // Rollups gain latency totals: recomputed from the stored spans with the writer's code.
        M::up_with_hook(V4, |transaction: &rusqlite::Transaction<'_>| {
            super::rollup::backfill_rollups(transaction)
                .map_err(|error| HookError::Hook(error.to_string()))
        }),
        M::up(V5),
        M::up(V6),
        M::up(V7),
        // What spans stored before sent: their time to first token and customer profiles.
        M::up_with_hook(V8, |transaction: &rusqlite::Transaction<'_>| {
            super::groups::backfill_v8(transaction)
                .map_err(|error| HookError::Hook(error.to_string()))
        }),
    ])
}

/// v6: retention and running spans. Projects may keep their own retention (NULL: the
/// server's); a span whose content expired records when, and the spans whose content has not
/// expired are indexed by start, so a sweep finds the next ones to expire without walking
/// those already done. A trace counts its running spans (0 for every trace stored before,
/// when no span could be running).
const V6: &str = r#"
        ALTER TABLE traces ADD COLUMN running_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE projects ADD COLUMN retention_days INTEGER;
        ALTER TABLE projects ADD COLUMN content_retention_days INTEGER;
        ALTER TABLE spans ADD COLUMN content_expired_ns INTEGER;
        CREATE INDEX spans_content_live ON spans (project_id, start_ns)
            WHERE content_expired_ns IS NULL;
"#;

/// v8: what users lists show beyond trace sums. The profile fields customers' spans send in
/// `customer_params`, one row per customer and field holding the latest value written (the
/// writer upserts them blind); and model calls' time to first token as a column, with a
/// partial index by trace holding only the spans that have one, so a customer's average reads
/// their traces' entries and no span row.
const V8: &str = r#"
        CREATE TABLE customer_params (
            project_id INTEGER NOT NULL,
            customer_identifier TEXT NOT NULL,
            field TEXT NOT NULL,
            value TEXT NOT NULL,
            ingested_ns INTEGER NOT NULL,
            PRIMARY KEY (project_id, customer_identifier, field)
        ) WITHOUT ROWID;
        ALTER TABLE spans ADD COLUMN ttft REAL;
        CREATE INDEX spans_ttft ON spans (project_id, trace_id, ttft) WHERE ttft IS NOT NULL;
"#;

/// v7: threads and customers. Covering indexes of the trace columns a thread or customer sums,
/// in key order, so grouping walks one index without a sort or a table read; and the
/// customers' profiles (`PATCH /api/users/{id}/`).
const V7: &str = r#"
        CREATE INDEX traces_by_thread ON traces (project_id, thread_identifier, start_ns,
            end_ns, duration, span_count, llm_call_count, error_count, total_prompt_tokens,
            total_completion_tokens, total_tokens, total_cost, customer_identifier, trace_id)
            WHERE thread_identifier IS NOT NULL;
        CREATE INDEX traces_by_customer ON traces (project_id, customer_identifier, start_ns,
            end_ns, duration, span_count, llm_call_count, error_count, total_prompt_tokens,
            total_completion_tokens, total_tokens, total_cost, thread_identifier, trace_id)
            WHERE customer_identifier IS NOT NULL;
        CREATE TABLE customer_profiles (
            project_id INTEGER NOT NULL,
            customer_identifier TEXT NOT NULL,
            profile TEXT NOT NULL,
            updated_ns INTEGER NOT NULL,
            PRIMARY KEY (project_id, customer_identifier)
        ) WITHOUT ROWID;
"#;

/// v5: key scopes and last use. Keys made before scopes keep doing everything (`admin`).
const V5: &str = r#"
        ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
        ALTER TABLE api_keys ADD COLUMN last_used_ns INTEGER;
"#;

/// v4: trace aggregates kept by deltas. `traces.state` holds each trace's
/// `tracehouse_core::trace_state::TraceState` as JSON (NULL for traces written before: the
/// writer rebuilds it from the stored spans the first time such a trace is touched), and
/// `trace_roots` indexes the spans that can be a trace's root, so a write finds the root
/// without reading the trace; `project_totals` counts each project's spans and traces.
const V4: &str = r#"
        ALTER TABLE traces ADD COLUMN state TEXT;

        -- Latency sums per rollup row, so summaries the rollups answer have exact averages.
        -- The rows are recounted by the migration's hook.
        ALTER TABLE span_rollup_hourly ADD COLUMN latency_total REAL NOT NULL DEFAULT 0;
        DELETE FROM span_rollup_hourly;
        DELETE FROM span_latency_hourly;

        -- The root candidates of each trace: kind 0 for spans that name no parent (or
        -- themselves), kind 1 for spans whose parent is not stored (yet), with that parent's
        -- id. The root is the first row in key order, else the trace's earliest span.
        CREATE TABLE trace_roots (
            project_id INTEGER NOT NULL,
            trace_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            start_ns INTEGER NOT NULL,
            span_id TEXT NOT NULL,
            parent_id TEXT,
            PRIMARY KEY (project_id, trace_id, kind, start_ns, span_id)
        ) WITHOUT ROWID;
        -- A span that arrives adopts the orphans that name it as their parent.
        CREATE INDEX trace_roots_by_parent ON trace_roots (project_id, trace_id, parent_id)
            WHERE kind = 1;

        -- Metadata rows carry their span's start, so a list filtered by a metadata value reads
        -- its newest page off one index range; a span's rows are distinct (key and value).
        ALTER TABLE span_metadata ADD COLUMN start_ns INTEGER NOT NULL DEFAULT 0;
        UPDATE span_metadata SET start_ns = coalesce(
            (SELECT s.start_ns FROM spans s WHERE s.rowid = span_metadata.span_rowid), 0);
        DELETE FROM span_metadata WHERE rowid NOT IN (
            SELECT min(rowid) FROM span_metadata GROUP BY span_rowid, key, text_value, num_value);
        DROP INDEX span_metadata_by_text;
        DROP INDEX span_metadata_by_number;
        CREATE INDEX span_metadata_by_text ON span_metadata (project_id, key, text_value, start_ns);
        CREATE INDEX span_metadata_by_number ON span_metadata (project_id, key, num_value, start_ns);

        -- Spans and traces per project, kept by the writer with every commit, so an unfiltered
        -- list's count and the project's stats never count rows.
        -- `last_write_ns` is the newest first-seen time of the project's rows.
        CREATE TABLE project_totals (
            project_id INTEGER PRIMARY KEY,
            spans INTEGER NOT NULL,
            traces INTEGER NOT NULL,
            last_write_ns INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO project_totals (project_id, spans, traces, last_write_ns)
            SELECT p.id, (SELECT count(*) FROM spans s WHERE s.project_id = p.id),
                   (SELECT count(*) FROM traces t WHERE t.project_id = p.id),
                   max(coalesce((SELECT max(first_seen_ns) FROM spans s WHERE s.project_id = p.id), 0),
                       coalesce((SELECT max(first_seen_ns) FROM traces t WHERE t.project_id = p.id), 0))
            FROM projects p;

        INSERT INTO trace_roots (project_id, trace_id, kind, start_ns, span_id, parent_id)
            SELECT project_id, trace_id, 0, start_ns, span_id, NULL FROM spans
            WHERE parent_id IS NULL OR parent_id = span_id;
        INSERT INTO trace_roots (project_id, trace_id, kind, start_ns, span_id, parent_id)
            SELECT s.project_id, s.trace_id, 1, s.start_ns, s.span_id, s.parent_id FROM spans s
            WHERE s.parent_id IS NOT NULL AND s.parent_id <> s.span_id
              AND NOT EXISTS (SELECT 1 FROM spans p WHERE p.project_id = s.project_id
                              AND p.trace_id = s.trace_id AND p.span_id = s.parent_id);
"#;

/// v3: `spans.content` may hold zstd-compressed JSON (a BLOB) beside JSON text. Nothing to
/// convert (old rows stay text and read as before); the version only makes a release that
/// cannot read compressed content refuse to open the database instead of failing on reads.
const V3: &str = "SELECT 1;";

/// v2: the hourly rollups of the metrics API (filled from stored spans by the hook).
const V2: &str = r#"
        -- Additive measures per project, UTC hour of span start, and group-by dimension value
        -- ('' dimension: all spans). `value` is '' when the span lacks the field and
        -- '=' || value otherwise. Rewritten in the writer's transaction with the spans.
        CREATE TABLE span_rollup_hourly (
            project_id INTEGER NOT NULL,
            dimension TEXT NOT NULL,
            value TEXT NOT NULL,
            hour_ns INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            cost REAL NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            PRIMARY KEY (project_id, dimension, hour_ns, value)
        ) WITHOUT ROWID;

        -- Span latencies per project, UTC hour, dimension value and logarithmic bin (see
        -- `rollup::latency_bin`), for percentiles without reading spans. Kept for the model
        -- dimension only (`rollup::LATENCY_DIMENSION`), which also answers ungrouped ones.
        CREATE TABLE span_latency_hourly (
            project_id INTEGER NOT NULL,
            dimension TEXT NOT NULL,
            value TEXT NOT NULL,
            hour_ns INTEGER NOT NULL,
            bin INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (project_id, dimension, hour_ns, value, bin)
        ) WITHOUT ROWID;
"#;

/// v1: spans, traces, keys and their secondary indexes.
const V1: &str = r#"
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at_ns INTEGER NOT NULL
        );

        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            key_hash BLOB NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            created_at_ns INTEGER NOT NULL,
            revoked_at_ns INTEGER
        );

        -- Hot fields are columns so filters and aggregates never parse JSON;
        -- everything else a client sent is kept verbatim in `content`.
        CREATE TABLE spans (
            project_id INTEGER NOT NULL,
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            parent_id TEXT,
            name TEXT NOT NULL,
            log_type TEXT NOT NULL,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
            latency REAL NOT NULL,
            times_inferred INTEGER NOT NULL,
            model TEXT,
            provider_id TEXT,
            status TEXT NOT NULL,
            status_code INTEGER,
            error_message TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_tokens INTEGER,
            cost REAL,
            customer_identifier TEXT,
            session_identifier TEXT,
            thread_identifier TEXT,
            trace_group_identifier TEXT,
            environment TEXT,
            workflow_name TEXT,
            path TEXT,
            content TEXT NOT NULL,
            ingested_ns INTEGER NOT NULL,
            -- Set on first insert and kept on replacement: the snapshot bound of stable paging.
            first_seen_ns INTEGER NOT NULL,
            PRIMARY KEY (project_id, trace_id, span_id)
        );
        CREATE INDEX spans_by_time ON spans (project_id, start_ns, trace_id, span_id);
        CREATE INDEX spans_by_span_id ON spans (project_id, span_id);
        CREATE INDEX spans_by_model ON spans (project_id, model, start_ns);

        -- Metadata flattened to one row per scalar (nested keys joined with "__", array
        -- elements under their array's key), so metadata__<key> filters use an index.
        CREATE TABLE span_metadata (
            span_rowid INTEGER NOT NULL,
            project_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            text_value TEXT,
            num_value REAL
        );
        CREATE INDEX span_metadata_by_text ON span_metadata (project_id, key, text_value);
        CREATE INDEX span_metadata_by_number ON span_metadata (project_id, key, num_value);
        CREATE INDEX span_metadata_by_span ON span_metadata (span_rowid);

        -- Full-text index over span name, input and output; rowid is the span's rowid.
        CREATE VIRTUAL TABLE span_search USING fts5 (
            name, input, output, content = '', contentless_delete = 1
        );

        -- Aggregates per trace, rewritten in the same transaction as the spans they sum,
        -- so listing traces never scans spans.
        CREATE TABLE traces (
            project_id INTEGER NOT NULL,
            trace_id TEXT NOT NULL,
            root_span_id TEXT,
            name TEXT NOT NULL,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
            duration REAL NOT NULL,
            span_count INTEGER NOT NULL,
            llm_call_count INTEGER NOT NULL,
            error_count INTEGER NOT NULL,
            total_prompt_tokens INTEGER NOT NULL,
            total_completion_tokens INTEGER NOT NULL,
            total_tokens INTEGER NOT NULL,
            total_cost REAL NOT NULL,
            environment TEXT,
            customer_identifier TEXT,
            session_identifier TEXT,
            thread_identifier TEXT,
            trace_group_identifier TEXT,
            models TEXT NOT NULL,
            updated_ns INTEGER NOT NULL,
            first_seen_ns INTEGER NOT NULL,
            PRIMARY KEY (project_id, trace_id)
        );
        CREATE INDEX traces_by_time ON traces (project_id, start_ns, trace_id);
        CREATE INDEX traces_by_cost ON traces (project_id, total_cost);

        -- Distinct values of common span fields per trace, stamped with the trace's start:
        -- "traces with a span whose model is X, in this time range" becomes one index range.
        CREATE TABLE trace_facets (
            project_id INTEGER NOT NULL,
            facet TEXT NOT NULL,
            value TEXT NOT NULL,
            start_ns INTEGER NOT NULL,
            trace_id TEXT NOT NULL
        );
        CREATE INDEX trace_facets_lookup ON trace_facets (project_id, facet, value, start_ns, trace_id);
        CREATE INDEX trace_facets_by_trace ON trace_facets (project_id, trace_id);
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }
}
