//! Validation of raw arguments into typed configuration; nothing after this sees raw strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tracehouse_core::PriceTable;
use tracehouse_server::Limits;
use tracehouse_store::{SqliteConfig, Synchronous};

use crate::cli::{ServeArgs, StoreArgs, SyncMode};

/// Which backend to open, and how.
#[derive(Debug, Clone)]
pub(crate) enum StoreConfig {
    Sqlite(SqliteConfig),
}

impl StoreConfig {
    pub(crate) fn from_args(args: &StoreArgs) -> anyhow::Result<Self> {
        let path = match &args.store {
            None => args.data_dir.join(tracehouse_store::sqlite::DATABASE_FILE),
            Some(url) => parse_store_url(url)?,
        };
        let mut config = SqliteConfig::new(path);
        config.synchronous = match args.sqlite_synchronous {
            SyncMode::Normal => Synchronous::Normal,
            SyncMode::Full => Synchronous::Full,
        };
        Ok(StoreConfig::Sqlite(config))
    }
}

fn parse_store_url(url: &str) -> anyhow::Result<PathBuf> {
    let Some((scheme, rest)) = url.split_once(':') else {
        bail!("store URL {url:?} has no scheme: use sqlite:PATH");
    };
    match scheme {
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                bail!(
                    "store URL {url:?} has no path: use sqlite:PATH, e.g. sqlite:./data/tracehouse.db"
                );
            }
            Ok(PathBuf::from(path))
        }
        other => {
            bail!("store URL scheme {other:?} is not supported by this build: use sqlite:PATH")
        }
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) store: StoreConfig,
    pub(crate) limits: Limits,
    pub(crate) prices: PriceTable,
    pub(crate) addr_file: Option<PathBuf>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) cors_origins: Option<Vec<String>>,
}

fn load_prices(path: Option<&Path>) -> anyhow::Result<PriceTable> {
    let mut table = PriceTable::builtin();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read price file {}", path.display()))?;
        let overrides = PriceTable::parse(&text)
            .with_context(|| format!("invalid price file {}", path.display()))?;
        table.extend_with(overrides);
    }
    Ok(table)
}

impl ServeConfig {
    pub(crate) fn validate(args: ServeArgs) -> anyhow::Result<Self> {
        if args.max_body_bytes == 0 || args.max_inflated_bytes < args.max_body_bytes {
            bail!(
                "--max-body-bytes must be positive and at most --max-inflated-bytes ({} > {})",
                args.max_body_bytes,
                args.max_inflated_bytes
            );
        }
        if args.max_spans_per_request == 0 || args.max_spans_per_request > 100_000 {
            bail!("--max-spans-per-request must be between 1 and 100000");
        }
        if args.max_in_flight == 0 {
            bail!("--max-in-flight must be at least 1");
        }
        if args.request_body_timeout_secs == 0 {
            bail!("--request-body-timeout-secs must be at least 1");
        }
        let mut store = StoreConfig::from_args(&args.store)?;
        match &mut store {
            StoreConfig::Sqlite(sqlite) => sqlite.max_database_bytes = args.max_db_bytes,
        }
        let cors_origins: Vec<String> = args
            .cors_origin
            .iter()
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        Ok(Self {
            listen: args.listen,
            store,
            limits: Limits {
                max_body_bytes: args.max_body_bytes,
                max_inflated_bytes: args.max_inflated_bytes,
                max_spans_per_request: args.max_spans_per_request,
                max_header_bytes: args.max_header_bytes,
                max_in_flight_requests: args.max_in_flight,
                request_body_timeout: Duration::from_secs(args.request_body_timeout_secs),
                rate_limit_per_second: Some(args.rate_limit).filter(|rate| *rate > 0),
                rate_limit_burst: args.rate_limit_burst,
            },
            cors_origins: (!cors_origins.is_empty()).then_some(cors_origins),
            prices: load_prices(args.prices.as_deref())?,
            addr_file: args.addr_file,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            parse_store_url("sqlite:/tmp/x.db").unwrap(),
            PathBuf::from("/tmp/x.db")
        );
        assert_eq!(
            parse_store_url("sqlite://rel/x.db").unwrap(),
            PathBuf::from("rel/x.db")
        );
        assert!(parse_store_url("sqlite:").is_err());
        assert!(parse_store_url("/tmp/x.db").is_err());
        assert!(parse_store_url("postgres://h/db").is_err());
    }
}
