//! Versioned schema migrations for ClickHouse: a later release upgrades every older database.
//!
//! Only what ClickHouse 18.16 and current releases both run: integer nanosecond timestamps,
//! `Nullable` and `Array` columns, `ReplacingMergeTree`; no Map/JSON/Bool/DateTime64, skip
//! indexes, TTL or CODEC clauses.

use super::ClickHouseError;
use super::client::Client;

/// A table a migration creates.
///
/// On a single server it is created as `name`. On a cluster, each node gets the data table
/// `name_local` and a `Distributed` table `name` over the cluster's `name_local`s, sharded by
/// `shard_key`; every query names `name`, so the code is the same in both modes. Every version
/// of a row has the same shard key, so replaced versions meet on one shard and `FINAL` (run per
/// shard) collapses them.
struct Table {
    name: &'static str,
    /// Everything after the table name: columns, engine, keys.
    body: &'static str,
    shard_key: &'static str,
}

/// One schema version: tables to create, then statements run once per node when a database
/// of an older version upgrades, then tables to drop.
struct Migration {
    tables: &'static [Table],
    /// Materialized views over `tables`, created on each node's own tables (`{local}` as in
    /// `upgrade`), after the tables and before the upgrade copies rows in.
    views: &'static [View],
    /// Statements that move an older version's data into `tables`, with `{local}` standing for
    /// `_local` on a cluster node and nothing on a single server: each node copies its own
    /// shard, which every table shards alike by `cityHash64(trace_id)`.
    upgrade: &'static [&'static str],
    /// Tables (by their query name) the upgrade empties of meaning; dropped after it.
    drop: &'static [&'static str],
}

/// A materialized view a migration creates: `sql` creates it, with `{local}` as in
/// [`Migration::upgrade`]; `name` is how a later migration's `drop` names it.
struct View {
    name: &'static str,
    sql: &'static str,
}

/// Every migration ever shipped, in order. Never change the columns or keys of a table that has
/// been released: add another. Statements are idempotent (`IF NOT EXISTS`, and an upgrade that
/// runs twice copies rows whose duplicates collapse) so two servers starting at once against an
/// empty database both succeed, which also means a storage `SETTINGS` change reaches new
/// databases only (reads and writes are the same on both; `tracehouse migrate` into a new
/// database rebuilds an old one).
const MIGRATIONS: &[Migration] = &[
    Migration {
        tables: VERSION_1,
        views: &[],
        upgrade: &[],
        drop: &[],
    },
    Migration {
        tables: VERSION_2,
        views: VERSION_2_VIEWS,
        upgrade: &[
            // Every live span of version 1, keeping the instant it was first seen (the snapshot
            // bound of paging). The materialized view of version 2 writes their trace starts.
            "INSERT INTO span_versions{local} (project_id, trace_id, span_id, parent_id, name, \
             log_type, start_ns, end_ns, latency, times_inferred, model, provider_id, status, \
             status_code, error_message, prompt_tokens, completion_tokens, total_tokens, cost, \
             customer_identifier, session_identifier, thread_identifier, trace_group_identifier, \
             environment, workflow_name, path, content, trace_name, meta_keys, \
             meta_text, meta_num, meta_is_num, ingested_ns, version, deleted) \
             SELECT project_id, trace_id, span_id, parent_id, name, log_type, start_ns, end_ns, \
             latency, times_inferred, model, provider_id, status, status_code, error_message, \
             prompt_tokens, completion_tokens, total_tokens, cost, customer_identifier, \
             session_identifier, thread_identifier, trace_group_identifier, environment, \
             workflow_name, path, content, trace_name, meta_keys, meta_text, \
             meta_num, meta_is_num, first_seen_ns, version, deleted \
             FROM (SELECT * FROM spans{local} FINAL) WHERE deleted = 0",
        ],
        drop: &["spans", "traces"],
    },
    Migration {
        tables: VERSION_3,
        views: VERSION_3_VIEWS,
        upgrade: &[
            // Every span row so far, counted as the new view counts rows from now on. Rows
            // inserted while this runs are counted twice, which only makes their traces look
            // rewritten (read the exact, slower way).
            "INSERT INTO trace_span_counts{local} \
             SELECT project_id, trace_id, countState() AS rows, \
             uniqState(cityHash64(span_id)) AS spans \
             FROM span_versions{local} GROUP BY project_id, trace_id",
        ],
        drop: &["trace_versions_writer", "trace_versions"],
    },
    Migration {
        tables: VERSION_4,
        views: &[],
        upgrade: &[
            // Keys made before scopes keep doing everything.
            "INSERT INTO access_keys{local} (id, project_id, project_name, key_hash, prefix, \
             label, created_at_ns, revoked_at_ns, version, scopes) \
             SELECT id, project_id, project_name, key_hash, prefix, label, created_at_ns, \
             revoked_at_ns, version, 'admin' FROM api_keys{local}",
        ],
        drop: &["api_keys"],
    },
    Migration {
        tables: VERSION_5,
        views: &[],
        upgrade: &[],
        drop: &[],
    },
    Migration {
        tables: VERSION_6,
        views: &[],
        upgrade: &[],
        drop: &[],
    },
    Migration {
        tables: VERSION_7,
        views: &[],
        upgrade: &[],
        drop: &[],
    },
];

/// Version 5: each project's own retention (`projects set`); a newer row replaces the older,
/// and a NULL value means the server's.
const VERSION_5: &[Table] = &[Table {
    name: "project_retention",
    body: "(
        project_id Int64,
        retention_days Nullable(UInt32),
        content_retention_days Nullable(UInt32),
        version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY project_id",
    shard_key: "cityHash64(project_id)",
}];

/// Version 1: spans replaced in place, and per-trace aggregates that every write recomputed
/// from the trace's stored spans (a read before every insert).
const VERSION_1: &[Table] = &[
    // Project ids are derived from the name (see `keys::project_id`), so the same name gets
    // the same id on every server without coordination.
    Table {
        name: "projects",
        body: "(
        id Int64,
        name String,
        created_at_ns Int64
    ) ENGINE = ReplacingMergeTree ORDER BY name",
        shard_key: "cityHash64(name)",
    },
    // A key row is rewritten with a higher version to revoke it. It carries its project's name
    // so authenticating a request is one lookup.
    Table {
        name: "api_keys",
        body: "(
        id Int64,
        project_id Int64,
        project_name String,
        key_hash String,
        prefix String,
        label String,
        created_at_ns Int64,
        revoked_at_ns Nullable(Int64),
        version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY key_hash",
        shard_key: "cityHash64(key_hash)",
    },
    // One row per (project, trace, span) after merges; a re-sent span is a new row with a
    // higher version and a deleted span a tombstone row (`deleted = 1`). Reads use FINAL, so
    // replaced versions never show even before a merge. The sort key is the access path of
    // trace assembly; partitions by month of the span's start bound time-range scans.
    // ClickHouse reads whole granules: with its default 8,192 rows each, fetching one trace
    // or recomputing the traces a write touched read 8,192 rows per trace (14 MB for one
    // trace's spans at 1M spans). 1,024-row granules read an eighth of that, for a primary
    // index of one mark per 1,024 spans.
    Table {
        name: "spans",
        body: "(
        project_id Int64,
        trace_id String,
        span_id String,
        parent_id Nullable(String),
        name String,
        log_type String,
        start_ns Int64,
        end_ns Int64,
        latency Float64,
        times_inferred UInt8,
        model Nullable(String),
        provider_id Nullable(String),
        status String,
        status_code Nullable(Int64),
        error_message Nullable(String),
        prompt_tokens Nullable(UInt64),
        completion_tokens Nullable(UInt64),
        total_tokens Nullable(UInt64),
        cost Nullable(Float64),
        customer_identifier Nullable(String),
        session_identifier Nullable(String),
        thread_identifier Nullable(String),
        trace_group_identifier Nullable(String),
        environment Nullable(String),
        workflow_name Nullable(String),
        path Nullable(String),
        content String,
        trace_name Nullable(String),
        search_text String,
        meta_keys Array(String),
        meta_text Array(String),
        meta_num Array(Float64),
        meta_is_num Array(UInt8),
        ingested_ns Int64,
        first_seen_ns Int64,
        version UInt64,
        deleted UInt8
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(toDateTime(intDiv(start_ns, 1000000000)))
    ORDER BY (project_id, trace_id, span_id)
    SETTINGS index_granularity = 1024",
        shard_key: "cityHash64(trace_id)",
    },
    // Aggregates per trace, recomputed from the stored spans after every write that touches
    // the trace (core's `summarize`), so listing traces never scans spans. Every write reads
    // the rows of the traces it touches, so granules are small here too.
    Table {
        name: "traces",
        body: "(
        project_id Int64,
        trace_id String,
        root_span_id Nullable(String),
        name String,
        start_ns Int64,
        end_ns Int64,
        duration Float64,
        span_count UInt64,
        llm_call_count UInt64,
        error_count UInt64,
        total_prompt_tokens UInt64,
        total_completion_tokens UInt64,
        total_tokens UInt64,
        total_cost Float64,
        environment Nullable(String),
        customer_identifier Nullable(String),
        session_identifier Nullable(String),
        thread_identifier Nullable(String),
        trace_group_identifier Nullable(String),
        models Array(String),
        first_seen_ns Int64,
        version UInt64,
        deleted UInt8
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(toDateTime(intDiv(start_ns, 1000000000)))
    ORDER BY (project_id, trace_id)
    SETTINGS index_granularity = 1024",
        shard_key: "cityHash64(trace_id)",
    },
];

/// Version 2: append-only ingest. A group commit inserts its spans and nothing else, reading
/// nothing first; a materialized view on that insert writes one row per trace of the batch into
/// `trace_starts`, the index the trace list walks newest first. Trace aggregates are computed at
/// read time from the spans of the traces being shown (see `clickhouse::traces`).
const VERSION_2: &[Table] = &[
    // Every version of every span: a re-sent span is a new row with a higher version, a
    // deleted span a tombstone row (`deleted = 1`); reads take each span's highest version.
    // Partitions are days of the span's start, so retention can drop whole days. Granules of
    // 512 rows keep a trace fetch to a few hundred rows per part.
    Table {
        name: "span_versions",
        body: "(
        project_id Int64,
        trace_id String,
        span_id String,
        parent_id Nullable(String),
        name String,
        log_type String,
        start_ns Int64,
        end_ns Int64,
        latency Float64,
        times_inferred UInt8,
        model Nullable(String),
        provider_id Nullable(String),
        status String,
        status_code Nullable(Int64),
        error_message Nullable(String),
        prompt_tokens Nullable(UInt64),
        completion_tokens Nullable(UInt64),
        total_tokens Nullable(UInt64),
        cost Nullable(Float64),
        customer_identifier Nullable(String),
        session_identifier Nullable(String),
        thread_identifier Nullable(String),
        trace_group_identifier Nullable(String),
        environment Nullable(String),
        workflow_name Nullable(String),
        path Nullable(String),
        content String,
        trace_name Nullable(String),
        meta_keys Array(String),
        meta_text Array(String),
        meta_num Array(Float64),
        meta_is_num Array(UInt8),
        ingested_ns Int64,
        version UInt64,
        deleted UInt8
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMMDD(toDateTime(intDiv(start_ns, 1000000000)))
    ORDER BY (project_id, trace_id, span_id)
    SETTINGS index_granularity = 512",
        shard_key: "cityHash64(trace_id)",
    },
    // One row per trace per insert into `span_versions`: the earliest start among that insert's
    // spans of the trace (over spans with real times when it has any, as a trace's start is).
    // A trace's start is never later than any of its rows, so the list walks this index
    // newest first and stops after a page (see `clickhouse::traces`). A deleted trace's rows
    // are replaced by tombstones with the same keys.
    Table {
        name: "trace_starts",
        body: "(
        project_id Int64,
        start_ns Int64,
        trace_id String,
        ingested_ns Int64,
        version UInt64,
        deleted UInt8
    ) ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMMDD(toDateTime(intDiv(start_ns, 1000000000)))
    ORDER BY (project_id, start_ns, trace_id)",
        shard_key: "cityHash64(trace_id)",
    },
    // Per trace, how many rows its spans have and how many spans (by a 64-bit hash of the id:
    // a collision only makes a trace look rewritten, which is read the slower, exact way):
    // equal exactly when every span of the trace was written once and never deleted. Scans over many spans read such
    // traces' rows as they are and collapse versions (`FINAL`) only for the others.
    Table {
        name: "trace_versions",
        body: "(
        project_id Int64,
        trace_id String,
        rows AggregateFunction(count),
        spans AggregateFunction(uniqExact, UInt64)
    ) ENGINE = AggregatingMergeTree
    ORDER BY (project_id, trace_id)",
        shard_key: "cityHash64(trace_id)",
    },
];

/// The materialized views of version 2, on each node's own tables (`{local}` as in
/// [`Migration::upgrade`]), so their rows are written by the same insert as the spans. The
/// second counts tombstones too: a deleted span makes its trace one with several versions.
const VERSION_2_VIEWS: &[View] = &[
    View {
        name: "trace_starts_writer",
        sql: "CREATE MATERIALIZED VIEW IF NOT EXISTS \
     trace_starts_writer{local} TO trace_starts{local} AS \
     SELECT project_id, \
     if(countIf(times_inferred = 0) > 0, minIf(start_ns, times_inferred = 0), min(start_ns)) AS start_ns, \
     trace_id, min(ingested_ns) AS ingested_ns, max(version) AS version, toUInt8(0) AS deleted \
     FROM span_versions{local} WHERE deleted = 0 GROUP BY project_id, trace_id",
    },
    View {
        name: "trace_versions_writer",
        sql: "CREATE MATERIALIZED VIEW IF NOT EXISTS trace_versions_writer{local} TO trace_versions{local} AS \
     SELECT project_id, trace_id, countState() AS rows, uniqExactState(cityHash64(span_id)) AS spans \
     FROM span_versions{local} GROUP BY project_id, trace_id",
    },
];

/// Version 3: `trace_versions` counted distinct spans with `uniqExact`, whose hash sets made
/// every merge of that table allocate and free per trace: with a part per insert, its merges
/// took three quarters of ClickHouse's CPU during ingest (BENCHMARKS.md). `trace_span_counts`
/// counts them with `uniq`, which holds up to 65,536 32-bit hashes in a flat table and is
/// exact until then, except that two spans whose hashes collide count as one. Both errors
/// only lower the count, so `rows > spans` still catches every trace with a span written twice
/// (plus a rare trace that was not, read the slower exact way), and a trace of more than
/// [`UNIQ_EXACT_UP_TO`] rows is always treated as rewritten.
const VERSION_3: &[Table] = &[Table {
    name: "trace_span_counts",
    body: "(
        project_id Int64,
        trace_id String,
        rows AggregateFunction(count),
        spans AggregateFunction(uniq, UInt64)
    ) ENGINE = AggregatingMergeTree
    ORDER BY (project_id, trace_id)",
    shard_key: "cityHash64(trace_id)",
}];

/// Version 4: key scopes, and when each key was last used. 18.16 cannot add a column only
/// where it is missing (`ADD COLUMN IF NOT EXISTS`), which an idempotent migration needs, so
/// keys move to a new table with the column; uses are rows of their own, so recording one
/// never rewrites (and so can never un-revoke) a key.
const VERSION_4: &[Table] = &[
    Table {
        name: "access_keys",
        body: "(
        id Int64,
        project_id Int64,
        project_name String,
        key_hash String,
        prefix String,
        label String,
        created_at_ns Int64,
        revoked_at_ns Nullable(Int64),
        version UInt64,
        scopes String
    ) ENGINE = ReplacingMergeTree(version) ORDER BY key_hash",
        shard_key: "cityHash64(key_hash)",
    },
    Table {
        name: "key_uses",
        body: "(
        key_hash String,
        used_ns Int64
    ) ENGINE = ReplacingMergeTree(used_ns) ORDER BY key_hash",
        shard_key: "cityHash64(key_hash)",
    },
];

/// Version 6: customers' profiles (`PATCH /api/users/{id}/`), a row per change; the newest
/// version is the profile.
const VERSION_6: &[Table] = &[Table {
    name: "customer_profiles",
    body: "(
        project_id Int64,
        customer_identifier String,
        profile String,
        updated_ns Int64,
        version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (project_id, customer_identifier)",
    shard_key: "cityHash64(customer_identifier)",
}];

/// Version 7: the profile fields customers' spans send in `customer_params`, a row per
/// customer, field and batch that sent it (the writer appends them beside the spans); the
/// newest version of a field is its value. Spans written before this version are not read
/// back for it.
const VERSION_7: &[Table] = &[Table {
    name: "customer_params",
    body: "(
        project_id Int64,
        customer_identifier String,
        field String,
        value String,
        ingested_ns Int64,
        version UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (project_id, customer_identifier, field)",
    shard_key: "cityHash64(customer_identifier)",
}];

/// Rows past which `uniq` samples instead of counting, so a trace with more is taken as
/// rewritten whatever its counts say.
pub(crate) const UNIQ_EXACT_UP_TO: u64 = 65_536;

/// Counts every row of `span_versions`, tombstones included: a deleted span makes its trace
/// one with several versions.
const VERSION_3_VIEWS: &[View] = &[View {
    name: "trace_span_counts_writer",
    sql: "CREATE MATERIALIZED VIEW IF NOT EXISTS trace_span_counts_writer{local} \
     TO trace_span_counts{local} AS \
     SELECT project_id, trace_id, countState() AS rows, uniqState(cityHash64(span_id)) AS spans \
     FROM span_versions{local} GROUP BY project_id, trace_id",
}];

/// The statements creating `table`, for a single server or for a node of `cluster`.
fn create_statements(table: &Table, database: &str, cluster: Option<&str>) -> Vec<String> {
    match cluster {
        None => vec![format!(
            "CREATE TABLE IF NOT EXISTS {} {}",
            table.name, table.body
        )],
        Some(cluster) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {}_local {}",
                table.name, table.body
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {name} AS {name}_local \
                 ENGINE = Distributed({cluster}, {database}, {name}_local, {key})",
                name = table.name,
                key = table.shard_key
            ),
        ],
    }
}

/// Whether a migration after the one at `index` drops the table or view `name`.
fn dropped_later(index: usize, name: &str) -> bool {
    MIGRATIONS[index + 1..]
        .iter()
        .any(|later| later.drop.contains(&name))
}

/// Longest an upgrade's copy may run: it rewrites every stored span once.
const UPGRADE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Creates the database if needed and applies every migration this node has not seen yet.
/// On a cluster it runs once per node, each node keeping its own `schema_migrations`.
pub(crate) async fn migrate(
    client: &Client,
    database: &str,
    cluster: Option<&str>,
) -> Result<(), ClickHouseError> {
    client
        .execute_global(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .await?;
    client
        .execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied_ns Int64) \
             ENGINE = MergeTree ORDER BY version",
        )
        .await?;
    #[derive(serde::Deserialize)]
    struct Applied {
        version: u32,
    }
    let applied: Applied = client
        .row("SELECT max(version) AS version FROM schema_migrations")
        .await?;
    if usize::try_from(applied.version).unwrap_or(usize::MAX) > MIGRATIONS.len() {
        return Err(ClickHouseError::Config(format!(
            "database {database} has schema version {}, newer than this build knows ({}): upgrade tracehouse",
            applied.version,
            MIGRATIONS.len()
        )));
    }
    let local = if cluster.is_some() { "_local" } else { "" };
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let version = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if version <= applied.version {
            continue;
        }
        let fresh = applied.version == 0;
        for table in migration.tables {
            // A new database skips tables that a later version replaces.
            if fresh && dropped_later(index, table.name) {
                continue;
            }
            for statement in create_statements(table, database, cluster) {
                client.execute(&statement).await?;
            }
        }
        for view in migration.views {
            if fresh && dropped_later(index, view.name) {
                continue;
            }
            client.execute(&view.sql.replace("{local}", local)).await?;
        }
        // A database created at this version has nothing to copy or drop.
        if !fresh {
            for statement in migration.upgrade {
                tracing::info!(version, "upgrading the ClickHouse schema in place");
                client
                    .execute_long(&statement.replace("{local}", local), UPGRADE_TIME_LIMIT)
                    .await?;
            }
        }
        for table in migration.drop {
            client
                .execute(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
            if cluster.is_some() {
                client
                    .execute(&format!("DROP TABLE IF EXISTS {table}_local"))
                    .await?;
            }
        }
        client
            .insert(
                "schema_migrations",
                format!(
                    "{{\"version\":{version},\"applied_ns\":{}}}\n",
                    crate::now_ns()
                ),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_tables_are_local_plus_distributed() {
        let table = &MIGRATIONS[0].tables[2];
        assert_eq!(table.name, "spans");
        let single = create_statements(table, "db", None);
        assert_eq!(single.len(), 1);
        assert!(single[0].starts_with("CREATE TABLE IF NOT EXISTS spans ("));
        let cluster = create_statements(table, "db", Some("two"));
        assert!(cluster[0].starts_with("CREATE TABLE IF NOT EXISTS spans_local ("));
        assert!(cluster[1].ends_with("Distributed(two, db, spans_local, cityHash64(trace_id))"));
    }
}
