//! The command line, as the user types it. Raw values only: `config` validates them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A single-binary server for LLM application traces: ingest span logs, assemble traces, read them back.
#[derive(Debug, Parser)]
#[command(name = "tracehouse", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the HTTP server (ingest and read API). On first start of an empty store it creates
    /// and prints an API key for the `default` project.
    Serve(ServeArgs),
    /// Manage API keys offline, on the same store the server uses (the server may be running).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Measure a running server on this machine (load generators; loopback targets only).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Bulk-load span logs or OTLP JSON from files, directories, globs or stdin, straight into
    /// the local store (the server need not run) or into a running server (`--url`).
    ///
    /// Memory stays flat on inputs of any size; bad items are counted and written to
    /// `--rejects` without stopping the run. An interrupted import continues from its checkpoint
    /// when the same command is run again: `.tracehouse-import-<hash>.json` in the data
    /// directory (or, with `--url`, the current directory), updated after every committed batch
    /// and removed when the import completes. Re-running a finished import is safe too: a span
    /// sent twice replaces itself. Exit status: 0 when every item was imported, 2 when some were
    /// rejected, 1 on an error.
    Import(ImportArgs),
    /// Write the spans of a project to a file or stdout, streaming from the store in (trace id,
    /// span id) order with constant memory. `export --format jsonl` imported into an empty data
    /// directory and exported again gives the same bytes.
    Export(ExportArgs),
    /// Copy every project's spans from one store to another (a SQLite data directory into
    /// ClickHouse, or back), streaming in bounded batches with a progress bar, then verify
    /// that span and trace counts and every trace's aggregates match. API keys are not copied.
    Migrate(MigrateArgs),
    /// List projects and set a project's own retention, offline on the store the server uses
    /// (the server may be running; it reads the values at its next sweep).
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Apply retention now, as `serve` does in the background, and print what it removed.
    #[command(subcommand)]
    Retention(RetentionCommand),
}

/// How long data is kept: the server-wide values and per-project ones. A project's values
/// from `projects set` win over `--project-retention` (and the config file's `[projects.NAME]`),
/// which win over `--retention-days` and `--content-retention-days`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RetentionArgs {
    /// Remove traces whose last activity (latest span end) is older than this many days;
    /// 0 keeps them forever.
    #[arg(
        long,
        env = "TRACEHOUSE_RETENTION_DAYS",
        default_value_t = 0,
        value_name = "DAYS"
    )]
    pub(crate) retention_days: u32,

    /// Drop the content (input, output, messages, tools, and their search index rows) of spans
    /// older than this many days, keeping ids, names, times, model, tokens, cost, status,
    /// identifiers and metadata, so lists, filters, trees and the dashboard still answer.
    /// Must be shorter than --retention-days; 0 keeps content as long as the trace.
    #[arg(
        long,
        env = "TRACEHOUSE_CONTENT_RETENTION_DAYS",
        default_value_t = 0,
        value_name = "DAYS"
    )]
    pub(crate) content_retention_days: u32,

    /// A project's own retention: `NAME=DAYS` or `NAME=DAYS,CONTENT_DAYS` (either may be empty
    /// to keep the server's value). Repeat per project; in the config file, a
    /// `[projects.NAME]` table with `retention-days` and `content-retention-days`.
    #[arg(long, value_name = "NAME=DAYS[,CONTENT_DAYS]", value_parser = parse_project_retention)]
    pub(crate) project_retention: Vec<ProjectRetentionArg>,
}

/// A `--project-retention` value, not yet validated as a project name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectRetentionArg {
    pub(crate) project: String,
    pub(crate) days: Option<u32>,
    pub(crate) content_days: Option<u32>,
}

fn parse_project_retention(text: &str) -> Result<ProjectRetentionArg, String> {
    let usage = "expected NAME=DAYS or NAME=DAYS,CONTENT_DAYS, such as support=30,7";
    let Some((project, values)) = text.split_once('=') else {
        return Err(usage.to_owned());
    };
    let (days, content_days) = values.split_once(',').unwrap_or((values, ""));
    let number = |value: &str| -> Result<Option<u32>, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        value
            .parse()
            .map(Some)
            .map_err(|_| format!("{value:?} is not a number of days: {usage}"))
    };
    if project.trim().is_empty() {
        return Err(usage.to_owned());
    }
    Ok(ProjectRetentionArg {
        project: project.trim().to_owned(),
        days: number(days)?,
        content_days: number(content_days)?,
    })
}

/// A duration as `90s`, `30m`, `24h`, `7d`, or a number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let usage = "expected a number with s, m, h or d (such as 24h), or seconds";
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let seconds_per: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(usage.to_owned()),
    };
    let number: u64 = number.parse().map_err(|_| usage.to_owned())?;
    number
        .checked_mul(seconds_per)
        .filter(|seconds| *seconds > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?} must be positive and below 500 billion years: {usage}"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectsCommand {
    /// List projects with their spans, traces and own retention (`-`: the server's).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a project's own retention (the project is created when new). Values not given are
    /// left as they were.
    Set {
        /// The project's name.
        name: String,
        /// Days to keep its traces (0: forever), instead of the server's --retention-days.
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<u32>,
        /// Days to keep its spans' content (0: as long as the traces), instead of the server's
        /// --content-retention-days.
        #[arg(long, value_name = "DAYS")]
        content_retention_days: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Remove what retention removes, now, project by project, and print the counts.
    Run(RetentionRunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RetentionRunArgs {
    /// A TOML file as for `serve --config`: its retention and store settings apply (other
    /// settings are ignored).
    #[arg(long, env = "TRACEHOUSE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) retention: RetentionArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Traces (and spans whose content expires) per step.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportFormat {
    /// Per file: OTLP JSON when the first object starts with `resourceSpans`, a JSON array or
    /// `{"data": [...]}` when the file starts with one, JSONL when the first line is a whole
    /// object (and for `.jsonl`/`.ndjson` names), else a stream of JSON values.
    Auto,
    /// A JSON array of span logs, `{"data": [...]}`, single span-log objects, or several of these
    /// one after another; arrays of any size are streamed item by item.
    Json,
    /// One span-log object per line.
    Jsonl,
    /// OTLP JSON `ExportTraceServiceRequest`s, one per file or one per line.
    OtlpJson,
}

/// The tool an import's inputs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportSource {
    /// Per record, by its fields: Phoenix, MLflow or Langfuse exports as below, OTLP JSON,
    /// else span logs.
    Auto,
    /// Arize Phoenix: REST span pages, the UI's "Download selection" (JSONL and OTLP JSON),
    /// the spans dataframe (JSONL or Parquet) and the "Save All Traces" TraceDataset Parquet.
    Phoenix,
    /// MLflow tracing: `Trace.to_json()` files or arrays, `search_traces()` rows (JSONL or
    /// Parquet), `mlflow traces search/get` output and the REST `batchGet` body.
    Mlflow,
    /// Langfuse: API traces with their observations and scores, observation pages (v1, v2),
    /// the blob-storage export's observation files, the UI's traces-table export (JSON, JSONL
    /// or CSV).
    Langfuse,
    /// OTLP JSON requests, one per file or per line (the OpenTelemetry Collector's `file`
    /// exporter writes these, plain or compressed).
    Otlp,
    /// tracehouse span logs (what `export --format jsonl` writes).
    SpanLog,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Files, directories (read recursively: `*.json`, `*.jsonl`, `*.ndjson`, `*.parquet` and
    /// `*.csv`, the first three optionally `.gz` or `.zst`; dot files skipped), glob patterns
    /// (quote them), or `-` for stdin. Gzip and zstd are recognised by their magic bytes,
    /// whatever the name, Parquet by its own, and CSV by its `.csv` name.
    #[arg(required = true, value_name = "INPUT")]
    pub(crate) inputs: Vec<String>,

    /// Input format, for every input.
    #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
    pub(crate) format: ImportFormat,

    /// The tool the inputs were exported from; `auto` recognises each record by its fields.
    /// See the README's mapping tables for what each tool's fields become.
    #[arg(long, value_enum, default_value_t = ImportSource::Auto)]
    pub(crate) from: ImportSource,

    /// Local store to import into (ignored with `--url`).
    #[command(flatten)]
    pub(crate) store: StoreArgs,

    /// Import through a running tracehouse at this base URL instead of the local store: batches
    /// are POSTed to /api/v1/traces/ingest, retried with backoff on 429, 5xx and transport
    /// errors, and a batch the server acknowledged is never sent again.
    #[arg(long, value_name = "URL", requires = "key", conflicts_with = "store")]
    pub(crate) url: Option<String>,

    /// API key for `--url`; the key decides the project.
    #[arg(long, env = "TRACEHOUSE_API_KEY", hide_env_values = true)]
    pub(crate) key: Option<String>,

    /// Project to import into, for local imports (created if new).
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub(crate) project: String,

    /// Write every rejected item as one JSON line: `file`, `line` and/or `index`, `field`,
    /// `reason` and the `item` itself, so it can be fixed and imported again on its own.
    #[arg(long, value_name = "FILE")]
    pub(crate) rejects: Option<PathBuf>,

    /// Read and validate everything, write nothing, and print a report: files, spans, traces,
    /// time range, models, invalid items by reason, duplicate span ids (same and conflicting
    /// content), orphans, parent cycles, traces with several roots, spans without times.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// No progress bar (it is also hidden when stdout is not a terminal).
    #[arg(long, short)]
    pub(crate) quiet: bool,

    /// Print the summary (or the dry-run report) as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,

    /// Parallelism: decoding threads for local imports (default: cores - 1), concurrent
    /// requests with `--url` (default 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) concurrency: Option<u32>,

    /// Items per batch: one store transaction, or one request with `--url`. A batch is also
    /// closed at 8 MiB of input and at the end of each file.
    #[arg(long, default_value_t = 2000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch_size: u32,

    /// Where to keep the checkpoint instead of the default (see above).
    #[arg(long, value_name = "FILE")]
    pub(crate) checkpoint: Option<PathBuf>,

    /// Ignore an existing checkpoint and import everything from the start.
    #[arg(long)]
    pub(crate) restart: bool,

    /// Redaction rules (TOML, as `serve --redact`) applied to every span before it is written,
    /// with --project's rules. With --url the server's own rules apply instead.
    #[arg(
        long,
        env = "TRACEHOUSE_REDACT",
        value_name = "FILE",
        conflicts_with = "url"
    )]
    pub(crate) redact: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormatArg {
    /// One span per line in the read API's JSON shape; imports back exactly.
    Jsonl,
    /// One JSON array of spans.
    Json,
    /// One row per span: typed fields, then input, output, metadata and the other fields as
    /// JSON text.
    Csv,
    /// One OTLP JSON ExportTraceServiceRequest per line (lossy; spans without OTLP-sized hex ids
    /// are skipped and counted).
    OtlpJson,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormatArg::Jsonl)]
    pub(crate) format: ExportFormatArg,

    /// Write to this file (replaced atomically when the export completes) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,

    /// Gzip the output.
    #[arg(long)]
    pub(crate) gzip: bool,

    /// A condition `FIELD OP VALUE` on span fields, as the read API's filters: OP is `=`, `!=`,
    /// `>`, `>=`, `<`, `<=`, `~` (contains) or `^=` (starts with); FIELD a span field (`model`,
    /// `log_type`, `status`, `cost`, `customer_identifier`, ...) or `metadata__<key>`. Repeat
    /// for more: conditions are AND-ed. Example: --filter model=gpt-4o --filter 'cost>0.01'.
    #[arg(long, value_name = "FIELD=VALUE")]
    pub(crate) filter: Vec<String>,

    /// Only spans starting at or after this time (ISO-8601 or epoch).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,

    /// Only spans starting at or before this time (ISO-8601 or epoch).
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,

    /// Only spans of this trace (repeat for several).
    #[arg(long, value_name = "ID")]
    pub(crate) trace: Vec<String>,

    /// Only spans whose name, input or output contain every word.
    #[arg(long, value_name = "WORDS")]
    pub(crate) search: Option<String>,

    /// Project to export.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub(crate) project: String,

    /// No summary line on stderr.
    #[arg(long, short)]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Send generated agent traces and report spans/s, latency, errors and readability.
    ///
    /// Reports spans/s, request latency, errors, trace-fetch latency under load, and whether
    /// every acknowledged span is readable afterwards. Spans carry 1-2 KB of text each. By
    /// default they arrive as OpenTelemetry SDKs export them (`--shape realistic`). All bodies
    /// are built before the clock starts.
    Ingest(BenchIngestArgs),
    /// Time the read API's calls of the web viewer and API clients: p50, p95 and max of each.
    ///
    /// Ten calls: a trace fetch, the newest traces and spans, traces, spans and a summary
    /// filtered by model, spans filtered by metadata, span and trace search for a common word,
    /// and the cost-by-model timeseries over all the data. What to ask is discovered from the
    /// data first (printed; override with --model, --word, --metadata, --trace): the most
    /// common model, metadata pair and word among the newest 200 spans, the trace with the
    /// most spans among the newest 50 traces, and the time range from the oldest to the newest
    /// span. Every call runs once to warm up, then in --calls rounds of every call, one
    /// request at a time (rounds, so a changing load weighs on every call alike). The table
    /// also gives each answer's status, `count` (and `count_is_exact` when the server sends
    /// it) and rows returned, and the store's span and trace counts. Exit status 1 when any
    /// answer was not 2xx or a filtered answer held a row that does not match its filter.
    Read(BenchReadArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireFormat {
    /// Span-log JSON to /api/v1/traces/ingest.
    SpanLog,
    /// OTLP protobuf to /v1/traces.
    Otlp,
}

/// How `bench ingest` groups spans into traces and requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchShape {
    /// As OpenTelemetry SDKs (BatchSpanProcessor) export: each span sent when it ends, children
    /// before parents and the root last, many traces in flight at once, so one trace arrives
    /// across many requests; random 128-bit trace and 64-bit span ids.
    Realistic,
    /// Whole 10-span traces one after another with sequential ids (agent, chain, 4 chat calls,
    /// 3 tools, a retriever), the load of earlier releases, for comparison.
    WholeTraces,
}

/// A `--seed`: the 8 hex digits of a run id.
fn parse_seed(text: &str) -> Result<u32, String> {
    let hex = !text.is_empty() && text.len() <= 8 && text.bytes().all(|b| b.is_ascii_hexdigit());
    match u32::from_str_radix(text, 16) {
        Ok(seed) if hex => Ok(seed),
        _ => Err("expected 1 to 8 hex digits, such as 1a2b3c4d".to_owned()),
    }
}

#[derive(Debug, Args)]
pub(crate) struct BenchIngestArgs {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// API key to send with every request.
    #[arg(long, env = "TRACEHOUSE_API_KEY", hide_env_values = true)]
    pub(crate) key: String,
    /// Wire format of the requests.
    #[arg(long, value_enum, default_value_t = WireFormat::SpanLog)]
    pub(crate) format: WireFormat,
    /// How spans are grouped into traces and requests.
    #[arg(long, value_enum, default_value_t = BenchShape::Realistic)]
    pub(crate) shape: BenchShape,
    /// Spans per trace (at least 2; default 50): an agent root over steps that each hold a chat
    /// call and tool calls, and a final chat call. Only with `--shape realistic`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub(crate) trace_len: Option<u64>,
    /// Traces open at once (default 200): their spans interleave in the order they end, and a
    /// new trace starts whenever one ends. Only with `--shape realistic`.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) in_flight: Option<u64>,
    /// Spans to send in total (rounded up to whole traces). Bodies are built in memory first,
    /// about 2 KB per span.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub(crate) spans: u64,
    /// Spans per request: the generated stream of spans is cut into requests of this many.
    #[arg(long, default_value_t = 100)]
    pub(crate) spans_per_request: usize,
    /// Distinct `customer_identifier`s the traces are spread over.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) customers: u64,
    /// Distinct `thread_identifier`s the traces are spread over (0: traces name no thread). A
    /// thread's traces all belong to one customer (`thread-N` to `customer-(N mod customers)`),
    /// as a conversation belongs to one user.
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: u64,
    /// Every span also sends its customer's `name` and `email` in `customer_params`, and every
    /// model call a `time_to_first_token`, as SDKs that set them do (the users list shows both).
    #[arg(long)]
    pub(crate) profiles: bool,
    /// Seed of the generator, as 8 hex digits (default: random). It is also the run id the
    /// report prints, so a run's ids and texts can be generated again.
    #[arg(long, value_name = "HEX", value_parser = parse_seed)]
    pub(crate) seed: Option<u32>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Stop sending after this many seconds even if spans remain.
    #[arg(long, default_value_t = 120)]
    pub(crate) max_seconds: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Skip the check that every acknowledged span is readable.
    #[arg(long)]
    pub(crate) no_verify: bool,
}

/// A `--metadata KEY=VALUE`: the key (nested keys joined with `__`) and the raw value.
fn parse_metadata_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err("expected KEY=VALUE, such as bench_run=1a2b3c4d".to_owned()),
    }
}

#[derive(Debug, Args)]
pub(crate) struct BenchReadArgs {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// API key to send with every request; the key decides the project that is read.
    #[arg(long, env = "TRACEHOUSE_API_KEY", hide_env_values = true)]
    pub(crate) key: String,
    /// Timed rounds: each call is timed this many times, after a warm-up round.
    #[arg(long, default_value_t = 40, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) calls: u32,
    /// Model for the calls filtered by model (default: the most common one among the newest
    /// 200 spans).
    #[arg(long, value_name = "MODEL")]
    pub(crate) model: Option<String>,
    /// Word for the span and trace search calls (default: the word of four or more letters
    /// found in the most of the newest 200 spans' names, inputs and outputs).
    #[arg(long, value_name = "WORD")]
    pub(crate) word: Option<String>,
    /// Metadata pair for the call filtered by `metadata__KEY` (default: the pair found in the
    /// most of the newest 200 spans). VALUE is matched as a number when it reads as one, else
    /// as text.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_metadata_pair)]
    pub(crate) metadata: Option<(String, String)>,
    /// Trace to fetch (default: the one with the most spans among the newest 50 traces).
    #[arg(long, value_name = "ID")]
    pub(crate) trace: Option<String>,
    /// Thread to fetch with `/api/log_thread/{id}/` (default: the thread of the newest trace
    /// among the newest 50 that names one).
    #[arg(long, value_name = "ID")]
    pub(crate) thread: Option<String>,
    /// Customer to fetch with `/api/users/{id}/` (default: the customer of the newest trace
    /// among the newest 50 that names one).
    #[arg(long, value_name = "ID")]
    pub(crate) customer: Option<String>,
    /// Seconds one call may take before it counts as failed.
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where the data lives; every subcommand that opens a store takes these.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Directory of the embedded SQLite database (created if missing).
    #[arg(
        long,
        env = "TRACEHOUSE_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,

    /// Store URL, overriding --data-dir: `sqlite:PATH` (a database file) or
    /// `clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE` (ClickHouse's HTTP port; the
    /// database is created if missing).
    #[arg(long, env = "TRACEHOUSE_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,

    #[command(flatten)]
    pub(crate) clickhouse: ClickHouseArgs,

    /// SQLite durability: `normal` survives process crashes (kill -9); `full` also survives
    /// power loss, at the cost of an fsync per group commit.
    #[arg(long, env = "TRACEHOUSE_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SyncMode::Normal)]
    pub(crate) sqlite_synchronous: SyncMode,
}

/// Credentials and limits for `clickhouse://` stores.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClickHouseArgs {
    /// ClickHouse user, when the store URL names none (default: `default`).
    #[arg(long, env = "TRACEHOUSE_CLICKHOUSE_USER", value_name = "USER")]
    pub(crate) clickhouse_user: Option<String>,

    /// ClickHouse password, when the store URL carries none.
    #[arg(
        long,
        env = "TRACEHOUSE_CLICKHOUSE_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub(crate) clickhouse_password: Option<String>,

    /// Seconds a ClickHouse statement may take; a slower server makes writes answer 503.
    #[arg(
        long,
        env = "TRACEHOUSE_CLICKHOUSE_TIMEOUT_SECS",
        default_value_t = 30,
        value_name = "SECS"
    )]
    pub(crate) clickhouse_timeout_secs: u64,

    /// Inserts the server keeps in flight at once. More overlap one insert's wait with the
    /// next batch, which helps when few clients send small requests; each insert makes parts
    /// ClickHouse later merges, so raise it only when ingest latency, not ClickHouse's CPU,
    /// is the limit.
    #[arg(
        long,
        env = "TRACEHOUSE_CLICKHOUSE_WRITERS",
        default_value_t = 1,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=16)
    )]
    pub(crate) clickhouse_writers: u16,

    /// Rows per shard an insert waits for while concurrent requests keep arriving. Each insert
    /// creates a part per table on every shard it reaches, and a part costs about as much to
    /// write and merge at 100 rows as at 1,000, so fuller inserts leave ClickHouse more CPU for
    /// rows. A lone request is never held back.
    #[arg(
        long,
        env = "TRACEHOUSE_CLICKHOUSE_ROWS_PER_INSERT",
        default_value_t = 1_000,
        value_name = "ROWS"
    )]
    pub(crate) clickhouse_rows_per_insert: usize,

    /// The longest an insert waits for those rows, in milliseconds (0: insert at once).
    #[arg(
        long,
        env = "TRACEHOUSE_CLICKHOUSE_INSERT_LINGER_MS",
        default_value_t = 20,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(0..=1000)
    )]
    pub(crate) clickhouse_insert_linger_ms: u64,
}

/// `tracehouse migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The store to copy from: a data directory, `sqlite:PATH` or
    /// `clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE`.
    #[arg(long, value_name = "STORE")]
    pub(crate) from: String,

    /// The store to copy into (same forms); created if missing, best empty.
    #[arg(long, value_name = "STORE")]
    pub(crate) to: String,

    /// Only this project (repeat for several); by default every project.
    #[arg(long, value_name = "NAME")]
    pub(crate) project: Vec<String>,

    /// Spans read and written per batch: what the migration holds in memory.
    #[arg(long, default_value_t = 5000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch_size: u32,

    /// No progress bar or summary (the bar is also hidden when stderr is not a terminal).
    #[arg(long, short)]
    pub(crate) quiet: bool,

    #[command(flatten)]
    pub(crate) clickhouse: ClickHouseArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SyncMode {
    Normal,
    Full,
}

/// `--grpc-listen`: where the OTLP/gRPC listener binds, or that there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcListen {
    /// `off`: no gRPC listener.
    Off,
    /// Bind this address.
    On(SocketAddr),
}

fn parse_grpc_listen(text: &str) -> Result<GrpcListen, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(GrpcListen::Off);
    }
    text.trim()
        .parse()
        .map(GrpcListen::On)
        .map_err(|_| format!("expected ADDRESS:PORT (such as 0.0.0.0:4317) or off, not {text:?}"))
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML file of these settings, keyed by flag name (`listen = "0.0.0.0:8080"`,
    /// `store = "clickhouse://..."`, `cors-origin = ["https://..."]`). The command line and
    /// environment variables override it.
    #[arg(long, env = "TRACEHOUSE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on (use port 0 for any free port).
    #[arg(
        long,
        env = "TRACEHOUSE_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub(crate) listen: SocketAddr,

    /// Address of the OTLP/gRPC listener (`TraceService/Export`, the port collectors and
    /// OpenTelemetry SDKs export to by default), or `off` for none. It takes the same API key
    /// (`authorization: Bearer <key>` or `x-api-key` metadata), gzip and limits as OTLP/HTTP on
    /// --listen. Use port 0 for any free port.
    #[arg(
        long,
        env = "TRACEHOUSE_GRPC_LISTEN",
        default_value = "127.0.0.1:4317",
        value_name = "ADDR|off",
        value_parser = parse_grpc_listen
    )]
    pub(crate) grpc_listen: GrpcListen,

    #[command(flatten)]
    pub(crate) store: StoreArgs,

    /// Largest request body accepted, in bytes (compressed size for gzip bodies).
    #[arg(long, env = "TRACEHOUSE_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024, value_name = "BYTES")]
    pub(crate) max_body_bytes: usize,

    /// Largest request body after gzip inflation, in bytes.
    #[arg(long, env = "TRACEHOUSE_MAX_INFLATED_BYTES", default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    pub(crate) max_inflated_bytes: usize,

    /// Most spans one ingest request may carry (413 above); at most 100000.
    #[arg(
        long,
        env = "TRACEHOUSE_MAX_SPANS_PER_REQUEST",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub(crate) max_spans_per_request: usize,

    /// Largest total size of a request's headers, in bytes (431 above).
    #[arg(long, env = "TRACEHOUSE_MAX_HEADER_BYTES", default_value_t = 64 * 1024, value_name = "BYTES")]
    pub(crate) max_header_bytes: usize,

    /// Requests handled at once; beyond it clients get 503 with Retry-After. With the body
    /// limits this bounds memory: at most this many bodies are held at a time.
    #[arg(
        long,
        env = "TRACEHOUSE_MAX_IN_FLIGHT",
        default_value_t = 64,
        value_name = "N"
    )]
    pub(crate) max_in_flight: usize,

    /// Seconds a client has to send its whole request body (408 after); slow clients cannot
    /// hold a request slot forever.
    #[arg(
        long,
        env = "TRACEHOUSE_REQUEST_BODY_TIMEOUT_SECS",
        default_value_t = 60,
        value_name = "SECS"
    )]
    pub(crate) request_body_timeout_secs: u64,

    /// Requests per second allowed per API key (token bucket; 429 with Retry-After above it).
    /// 0 turns rate limiting off.
    #[arg(
        long,
        env = "TRACEHOUSE_RATE_LIMIT",
        default_value_t = 0,
        value_name = "PER_SECOND"
    )]
    pub(crate) rate_limit: u32,

    /// Requests a key may send in a burst before --rate-limit applies (default: one second's worth).
    #[arg(long, env = "TRACEHOUSE_RATE_LIMIT_BURST", value_name = "N")]
    pub(crate) rate_limit_burst: Option<u32>,

    /// Let browsers on this origin call the API (repeat, or comma-separate; `*` for any).
    /// Without it no CORS headers are sent, so only same-origin pages (the viewer) can.
    #[arg(
        long,
        env = "TRACEHOUSE_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub(crate) cors_origin: Vec<String>,

    /// Largest size the SQLite database may grow to, in bytes; past it ingest answers 503
    /// (nothing is acknowledged that was not written) while reads go on.
    #[arg(long, env = "TRACEHOUSE_MAX_DB_BYTES", value_name = "BYTES")]
    pub(crate) max_db_bytes: Option<u64>,

    /// Redaction rules (TOML; see examples/redact.toml): built-in detectors (email, phone,
    /// credit_card, ip_address, api_key, jwt, bearer_token) and custom regexes, each scoped to
    /// fields and masking, hashing or dropping what it finds, per project if wanted. Applied to
    /// every span before it is stored, on every ingest route. A bad file stops the start.
    #[arg(long, env = "TRACEHOUSE_REDACT", value_name = "FILE")]
    pub(crate) redact: Option<PathBuf>,

    /// A JSON price file `{"model-prefix": {"input": usd_per_1m, "output": usd_per_1m}}` that
    /// extends and overrides the builtin table used when a span has tokens but no cost.
    #[arg(long, env = "TRACEHOUSE_PRICES", value_name = "FILE")]
    pub(crate) prices: Option<PathBuf>,

    /// Write the bound address to this file once listening (for scripts using port 0).
    #[arg(long, value_name = "FILE")]
    pub(crate) addr_file: Option<PathBuf>,

    /// Write the bound OTLP/gRPC address to this file once listening (for scripts using
    /// `--grpc-listen 127.0.0.1:0`). It is written before the --addr-file.
    #[arg(long, value_name = "FILE")]
    pub(crate) grpc_addr_file: Option<PathBuf>,

    /// How long a span may stay running (sent with a start and no end, or `status:
    /// "running"`) before reads and the viewer show it, and its trace, as `abandoned`:
    /// `90s`, `30m`, `24h`, `7d` or seconds. A span sent later with an end still closes.
    #[arg(
        long,
        env = "TRACEHOUSE_RUNNING_TIMEOUT",
        default_value = "24h",
        value_name = "DURATION",
        value_parser = parse_duration
    )]
    pub(crate) running_timeout: std::time::Duration,

    #[command(flatten)]
    pub(crate) retention: RetentionArgs,

    /// Seconds between background retention sweeps (with --retention-days,
    /// --content-retention-days or per-project retention); each sweep removes in steps of
    /// --retention-batch with a pause between steps, so ingest keeps its pace.
    #[arg(
        long,
        env = "TRACEHOUSE_RETENTION_INTERVAL_SECS",
        default_value_t = 3600,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) retention_interval_secs: u64,

    /// Traces (and spans whose content expires) per retention step: one short write each.
    #[arg(
        long,
        env = "TRACEHOUSE_RETENTION_BATCH",
        default_value_t = 100,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub(crate) retention_batch: u32,

    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(
        long,
        env = "TRACEHOUSE_SHUTDOWN_GRACE_SECS",
        default_value_t = 30,
        value_name = "SECS"
    )]
    pub(crate) shutdown_grace_secs: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; the key itself is printed alone on the last line of stdout, once.
    Create {
        /// Project the key writes to and reads from (created if new).
        #[arg(long, default_value = "default")]
        project: String,
        /// A note to recognise the key by in `keys list`.
        #[arg(long, default_value = "")]
        label: String,
        /// What the key may do: `ingest` (send spans, nothing else: for applications),
        /// `read` (read everything, change nothing: for people and dashboards) or `admin`
        /// (everything, deletes and updates included). Repeat it or separate with commas.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            value_delimiter = ',',
            default_value = "admin",
            value_parser = ["ingest", "read", "admin"]
        )]
        scopes: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys: id, project, scope, prefix, label, creation, last use, revocation (never
    /// the secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by its id from `keys list`; it stops working at once.
    Revoke {
        /// The key's id.
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace a key: create a new one for the same project, label and scopes, then revoke
    /// the old one. The new key is printed alone on the last line of stdout, once.
    Rotate {
        /// The id of the key to replace, from `keys list`.
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}
