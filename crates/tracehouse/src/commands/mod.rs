//! One module per subcommand.

mod bench;
mod bench_read;
mod export;
mod import;
mod keys;
mod migrate;
mod projects;
mod retention;
mod serve;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tracehouse_core::SpanStore;
use tracehouse_store::{ClickHouseStore, SqliteStore};

use crate::cli::{BenchCommand, Cli, Command, RetentionCommand};
use crate::config::StoreConfig;

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Bench(BenchCommand::Ingest(args)) => bench::run_ingest(args).await,
            Command::Bench(BenchCommand::Read(args)) => bench_read::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Projects(command) => projects::run(command).await,
            Command::Retention(RetentionCommand::Run(args)) => retention::run(args).await,
        }
    })
}

/// Opens the configured store; the only place that names a backend type.
pub(crate) async fn open_store(config: &StoreConfig) -> anyhow::Result<Arc<dyn SpanStore>> {
    match config {
        StoreConfig::Sqlite(sqlite) => {
            let sqlite = sqlite.clone();
            let path = sqlite.path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(sqlite))
                .await
                .context("store opener panicked")?
                .with_context(|| format!("cannot open SQLite store at {}", path.display()))?;
            Ok(Arc::new(store))
        }
        StoreConfig::ClickHouse(clickhouse) => {
            let store = ClickHouseStore::open(clickhouse.clone())
                .await
                .with_context(|| {
                    format!("cannot open ClickHouse store {}", config.display_name())
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
