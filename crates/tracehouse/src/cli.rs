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
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Send generated traces (10 spans each: agent, chain, 4 chat calls, 3 tools, a retriever;
    /// 1-2 KB of text per span) and report spans/s, request latency, errors, and whether every
    /// acknowledged span is readable afterwards. All bodies are built before the clock starts.
    Ingest(BenchIngestArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireFormat {
    /// Span-log JSON to /api/v1/traces/ingest.
    SpanLog,
    /// OTLP protobuf to /v1/traces.
    Otlp,
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
    /// Spans to send in total (rounded up to whole traces). Bodies are built in memory first,
    /// about 2 KB per span.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub(crate) spans: u64,
    /// Spans per request.
    #[arg(long, default_value_t = 100)]
    pub(crate) spans_per_request: usize,
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

    /// Store URL, overriding --data-dir: `sqlite:PATH` (a database file).
    #[arg(long, env = "TRACEHOUSE_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,

    /// SQLite durability: `normal` survives process crashes (kill -9); `full` also survives
    /// power loss, at the cost of an fsync per group commit.
    #[arg(long, env = "TRACEHOUSE_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SyncMode::Normal)]
    pub(crate) sqlite_synchronous: SyncMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SyncMode {
    Normal,
    Full,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (use port 0 for any free port).
    #[arg(
        long,
        env = "TRACEHOUSE_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub(crate) listen: SocketAddr,

    #[command(flatten)]
    pub(crate) store: StoreArgs,

    /// Largest request body accepted, in bytes (compressed size for gzip bodies).
    #[arg(long, env = "TRACEHOUSE_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024, value_name = "BYTES")]
    pub(crate) max_body_bytes: usize,

    /// Largest request body after gzip inflation, in bytes.
    #[arg(long, env = "TRACEHOUSE_MAX_INFLATED_BYTES", default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    pub(crate) max_inflated_bytes: usize,

    /// A JSON price file `{"model-prefix": {"input": usd_per_1m, "output": usd_per_1m}}` that
    /// extends and overrides the builtin table used when a span has tokens but no cost.
    #[arg(long, env = "TRACEHOUSE_PRICES", value_name = "FILE")]
    pub(crate) prices: Option<PathBuf>,

    /// Write the bound address to this file once listening (for scripts using port 0).
    #[arg(long, value_name = "FILE")]
    pub(crate) addr_file: Option<PathBuf>,

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
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (ids, projects, prefixes; never the secrets).
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
}
