//! The `tracehouse` binary: parse the command line, set up logging, run, report errors.

mod cli;
mod commands;
mod config;
mod config_file;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match config_file::apply(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = cli::Cli::parse_from(args);
    // The server logs what it does; offline tools print their own summaries and only warn.
    let default_filter = match cli.command {
        cli::Command::Serve(_) => "info,rusqlite_migration=warn",
        _ => "warn",
    };
    init_tracing(default_filter);
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `RUST_LOG` overrides the default filter.
fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
