//! `tracehouse serve`: open the store, make sure a key exists, serve until told to stop.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracehouse_core::{ProjectName, SpanStore, StoreObserver};
use tracehouse_server::{AppState, Metrics};

use super::open_store;
use crate::cli::ServeArgs;
use crate::config::{ServeConfig, StoreConfig};

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::validate(args)?;
    let metrics = Arc::new(Metrics::new());
    let mut store_config = config.store.clone();
    match &mut store_config {
        StoreConfig::Sqlite(sqlite) => {
            sqlite.observer = Some(Arc::clone(&metrics) as Arc<dyn StoreObserver>);
        }
        StoreConfig::ClickHouse(clickhouse) => {
            clickhouse.observer = Some(Arc::clone(&metrics) as Arc<dyn StoreObserver>);
        }
    }
    let store = open_store(&store_config).await?;
    let first_key = create_first_key(store.as_ref()).await?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let grpc_listener = match config.grpc_listen {
        Some(grpc_address) => Some(TcpListener::bind(grpc_address).await.with_context(|| {
            format!(
                "cannot listen on {grpc_address} for OTLP/gRPC (--grpc-listen; `off` disables it)"
            )
        })?),
        None => None,
    };
    let grpc_address = grpc_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("cannot read the bound gRPC address")?;
    // The gRPC file first: a script that waits for --addr-file finds both.
    if let (Some(path), Some(grpc_address)) = (&config.grpc_addr_file, grpc_address) {
        std::fs::write(path, grpc_address.to_string())
            .with_context(|| format!("cannot write gRPC address file {}", path.display()))?;
    }
    if let Some(path) = &config.addr_file {
        std::fs::write(path, address.to_string())
            .with_context(|| format!("cannot write address file {}", path.display()))?;
    }
    announce(&format!(
        "tracehouse listening on http://{address} (store {})",
        store.describe()
    ));
    match grpc_address {
        Some(grpc_address) => {
            announce(&format!("tracehouse OTLP/gRPC listening on {grpc_address}"));
        }
        None => tracing::info!("OTLP/gRPC listener off"),
    }
    if let Some(secret) = first_key {
        announce(
            "created an API key for project \"default\"; it is shown only now, store it safely:",
        );
        announce(&secret);
    }

    let mut state = AppState::with_limits(store, config.limits, metrics);
    state.prices = Arc::new(config.prices);
    state.running_timeout = config.running_timeout;
    if let Some(origins) = config.cors_origins {
        state = state.with_cors_origins(origins);
    }
    if let Some(redaction) = config.redaction {
        state = state.with_redaction(Arc::new(redaction));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut stop_rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    // Always running: `projects set` may give a project a retention while the server runs.
    let retention = tokio::spawn(super::retention::run_in_background(
        Arc::clone(&state.store),
        config.retention.clone(),
        config.retention_interval,
        config.retention_batch,
        stop_rx.clone(),
    ));
    let grpc_server = grpc_listener.map(|grpc_listener| {
        tokio::spawn(tracehouse_server::serve_grpc(
            grpc_listener,
            state.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    let server = tokio::spawn(tracehouse_server::serve(listener, state, stopped(stop_rx)));
    shutdown_signal().await;
    tracing::info!(
        grace_secs = config.shutdown_grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    // Both listeners drain within one grace period.
    let drained = async {
        let http = server
            .await
            .context("server task panicked")?
            .context("server failed");
        let grpc = match grpc_server {
            Some(grpc_server) => grpc_server
                .await
                .context("gRPC server task panicked")?
                .context("gRPC server failed"),
            None => Ok(()),
        };
        http.and(grpc)
    };
    // The sweep stops between steps; a step in flight is one short commit.
    let _ = retention.await;
    match tokio::time::timeout(config.shutdown_grace, drained).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!("in-flight requests did not finish within the grace period"),
    }
    Ok(ExitCode::SUCCESS)
}

/// On the first start of a store without keys, creates one so the user can send data at once.
async fn create_first_key(store: &dyn SpanStore) -> anyhow::Result<Option<String>> {
    if !store
        .list_keys()
        .await
        .context("cannot read keys")?
        .is_empty()
    {
        return Ok(None);
    }
    let key = store
        .create_key(
            &ProjectName::default_project(),
            "created on first start",
            tracehouse_core::Scopes::ADMIN,
        )
        .await
        .context("cannot create the first API key")?;
    Ok(Some(key.secret))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Prints a start-up line on stdout. A server whose stdout was closed (`serve | head -1`)
/// keeps serving: `println!` would panic on the broken pipe, so the failure is logged instead.
fn announce(line: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        tracing::warn!(error = %error, "cannot write the start-up line to stdout");
    }
}
