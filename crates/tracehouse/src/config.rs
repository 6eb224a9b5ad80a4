//! Validation of raw arguments into typed configuration; nothing after this sees raw strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use std::collections::BTreeMap;

use tracehouse_core::{PriceTable, ProjectName, Retention, RetentionOverride};
use tracehouse_ingest::redact::{Redaction, RedactionConfig};
use tracehouse_server::Limits;
use tracehouse_store::{ClickHouseConfig, SqliteConfig, Synchronous};

use crate::cli::{ClickHouseArgs, GrpcListen, RetentionArgs, ServeArgs, StoreArgs, SyncMode};

/// Which backend to open, and how.
#[derive(Debug, Clone)]
pub(crate) enum StoreConfig {
    Sqlite(SqliteConfig),
    ClickHouse(ClickHouseConfig),
}

/// A store URL, parsed.
#[derive(Debug, PartialEq, Eq)]
enum StoreUrl {
    Sqlite(PathBuf),
    ClickHouse {
        /// `http://host:port` of each node's HTTP interface; queries go to the first.
        bases: Vec<String>,
        database: String,
        user: Option<String>,
        password: Option<String>,
        /// `?cluster=NAME`: shard over this `remote_servers` cluster.
        cluster: Option<String>,
    },
}

impl StoreConfig {
    pub(crate) fn from_args(args: &StoreArgs) -> anyhow::Result<Self> {
        let url = match &args.store {
            None => StoreUrl::Sqlite(args.data_dir.join(tracehouse_store::sqlite::DATABASE_FILE)),
            Some(url) => parse_store_url(url)?,
        };
        Ok(match url {
            StoreUrl::Sqlite(path) => {
                let mut config = SqliteConfig::new(path);
                config.synchronous = match args.sqlite_synchronous {
                    SyncMode::Normal => Synchronous::Normal,
                    SyncMode::Full => Synchronous::Full,
                };
                StoreConfig::Sqlite(config)
            }
            StoreUrl::ClickHouse {
                mut bases,
                database,
                user,
                password,
                cluster,
            } => {
                let first = bases.remove(0);
                let mut config = ClickHouseConfig::new(first, database);
                config.other_nodes = bases;
                config.cluster = cluster;
                // Credentials in the URL win over the environment, which keeps them out of
                // shell history and process listings when preferred.
                if let Some(user) = user.or_else(|| args.clickhouse.clickhouse_user.clone()) {
                    config.user = user;
                }
                config.password = password.or_else(|| args.clickhouse.clickhouse_password.clone());
                config.timeout =
                    Duration::from_secs(args.clickhouse.clickhouse_timeout_secs.max(1));
                config.writers = usize::from(args.clickhouse.clickhouse_writers);
                config.rows_per_insert = args.clickhouse.clickhouse_rows_per_insert;
                config.insert_linger =
                    Duration::from_millis(args.clickhouse.clickhouse_insert_linger_ms);
                StoreConfig::ClickHouse(config)
            }
        })
    }

    /// A store given as one word, as `migrate` takes it: a store URL (`sqlite:PATH`,
    /// `clickhouse://...`) or else a data directory.
    pub(crate) fn from_location(raw: &str, clickhouse: &ClickHouseArgs) -> anyhow::Result<Self> {
        let is_url = raw.starts_with("sqlite:") || raw.starts_with("clickhouse:");
        Self::from_args(&StoreArgs {
            data_dir: PathBuf::from(if is_url { "." } else { raw }),
            store: is_url.then(|| raw.to_owned()),
            clickhouse: clickhouse.clone(),
            sqlite_synchronous: SyncMode::Normal,
        })
    }

    /// The store as a user should see it in messages: never the password.
    pub(crate) fn display_name(&self) -> String {
        match self {
            StoreConfig::Sqlite(sqlite) => format!("sqlite:{}", sqlite.path.display()),
            StoreConfig::ClickHouse(clickhouse) => match &clickhouse.cluster {
                None => format!("clickhouse:{}/{}", clickhouse.url, clickhouse.database),
                Some(cluster) => format!(
                    "clickhouse:{}/{} (cluster {cluster})",
                    clickhouse.url, clickhouse.database
                ),
            },
        }
    }
}

/// Undoes `%XX` escapes in URL userinfo (a password may contain `@` or `:`).
fn percent_decode(raw: &str) -> anyhow::Result<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = raw
                .get(index + 1..index + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .context("invalid %-escape in store URL credentials")?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).context("store URL credentials are not UTF-8")
}

fn parse_clickhouse_url(url: &str, rest: &str) -> anyhow::Result<StoreUrl> {
    let usage = "use clickhouse://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME] (HTTP ports, 8123 by default)";
    let Some(rest) = rest.strip_prefix("//") else {
        bail!("store URL {url:?} is not a ClickHouse URL: {usage}");
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut bases = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() {
            bail!("store URL has an empty host: {usage}");
        }
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:8123")
        };
        bases.push(format!("http://{host}"));
    }
    let database = database.trim_end_matches('/');
    let database = if database.is_empty() {
        "tracehouse"
    } else {
        database
    };
    let plain_name = |name: &str| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    };
    if !plain_name(database) {
        bail!("ClickHouse database name {database:?} must be letters, digits and underscores");
    }
    let mut cluster = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("cluster", name)) if plain_name(name) => cluster = Some(name.to_owned()),
            _ => bail!("store URL parameter {pair:?} is not understood: {usage}"),
        }
    }
    if bases.len() > 1 && cluster.is_none() {
        bail!(
            "several ClickHouse hosts need ?cluster=NAME (their remote_servers cluster): {usage}"
        );
    }
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, password)) => {
                (Some(percent_decode(user)?), Some(percent_decode(password)?))
            }
            None => (Some(percent_decode(info)?), None),
        },
    };
    Ok(StoreUrl::ClickHouse {
        bases,
        database: database.to_owned(),
        user: user.filter(|u| !u.is_empty()),
        password,
        cluster,
    })
}

fn parse_store_url(url: &str) -> anyhow::Result<StoreUrl> {
    let Some((scheme, rest)) = url.split_once(':') else {
        bail!(
            "store URL {url:?} has no scheme: use sqlite:PATH or clickhouse://HOST:PORT/DATABASE"
        );
    };
    match scheme {
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                bail!(
                    "store URL {url:?} has no path: use sqlite:PATH, e.g. sqlite:./data/tracehouse.db"
                );
            }
            Ok(StoreUrl::Sqlite(PathBuf::from(path)))
        }
        "clickhouse" => parse_clickhouse_url(url, rest),
        other => {
            bail!(
                "store URL scheme {other:?} is not supported: use sqlite:PATH or clickhouse://HOST:PORT/DATABASE"
            )
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
    /// The OTLP/gRPC listener's address; `None`: no gRPC listener.
    pub(crate) grpc_listen: Option<SocketAddr>,
    pub(crate) grpc_addr_file: Option<PathBuf>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) cors_origins: Option<Vec<String>>,
    /// `--redact`: compiled redaction rules.
    pub(crate) redaction: Option<Redaction>,
    /// How long a span may run before reads show it as abandoned.
    pub(crate) running_timeout: Duration,
    /// Retention and how the background sweep paces itself.
    pub(crate) retention: RetentionPolicy,
    pub(crate) retention_interval: Duration,
    pub(crate) retention_batch: usize,
}

/// How long data is kept: the server's policy and the projects' own values from the command
/// line or config file (the store's `projects set` values are read at each sweep).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RetentionPolicy {
    pub(crate) server: Retention,
    pub(crate) projects: BTreeMap<ProjectName, RetentionOverride>,
}

impl RetentionPolicy {
    pub(crate) fn from_args(args: &RetentionArgs) -> anyhow::Result<Self> {
        let server = Retention::new(args.retention_days, args.content_retention_days)
            .context("invalid --content-retention-days")?;
        let mut projects = BTreeMap::new();
        for entry in &args.project_retention {
            let name: ProjectName = entry.project.parse().with_context(|| {
                format!("invalid project in --project-retention {:?}", entry.project)
            })?;
            let own = RetentionOverride {
                days: entry.days,
                content_days: entry.content_days,
            };
            server
                .overridden_by(own)
                .with_context(|| format!("invalid retention for project {:?}", entry.project))?;
            projects.insert(name, own);
        }
        Ok(Self { server, projects })
    }
}

/// Reads and compiles a redaction rules file; the error names the file and the rule at fault.
pub(crate) fn load_redaction(path: &Path) -> anyhow::Result<Redaction> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read redaction rules file {}", path.display()))?;
    let config: RedactionConfig = toml::from_str(&text)
        .with_context(|| format!("invalid redaction rules file {}", path.display()))?;
    Redaction::compile(&config)
        .with_context(|| format!("invalid redaction rules file {}", path.display()))
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
        let grpc_listen = match args.grpc_listen {
            GrpcListen::Off => None,
            GrpcListen::On(address) => Some(address),
        };
        if grpc_listen.is_none() && args.grpc_addr_file.is_some() {
            bail!("--grpc-addr-file needs a gRPC listener, but --grpc-listen is off");
        }
        if grpc_listen == Some(args.listen) && args.listen.port() != 0 {
            bail!(
                "--grpc-listen and --listen are both {}: gRPC needs a port of its own (4317 by default)",
                args.listen
            );
        }
        let mut store = StoreConfig::from_args(&args.store)?;
        match &mut store {
            StoreConfig::Sqlite(sqlite) => sqlite.max_database_bytes = args.max_db_bytes,
            StoreConfig::ClickHouse(_) if args.max_db_bytes.is_some() => {
                bail!("--max-db-bytes caps the SQLite store only; size ClickHouse on its side")
            }
            StoreConfig::ClickHouse(_) => {}
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
            redaction: args.redact.as_deref().map(load_redaction).transpose()?,
            addr_file: args.addr_file,
            grpc_listen,
            grpc_addr_file: args.grpc_addr_file,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            running_timeout: args.running_timeout,
            retention: RetentionPolicy::from_args(&args.retention)?,
            retention_interval: Duration::from_secs(args.retention_interval_secs),
            retention_batch: args.retention_batch as usize,
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
            StoreUrl::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(
            parse_store_url("sqlite://rel/x.db").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("rel/x.db"))
        );
        assert!(parse_store_url("sqlite:").is_err());
        assert!(parse_store_url("/tmp/x.db").is_err());
        assert!(parse_store_url("postgres://h/db").is_err());
    }

    #[test]
    fn clickhouse_urls() {
        assert_eq!(
            parse_store_url("clickhouse://127.0.0.1:8123/tracehouse").unwrap(),
            StoreUrl::ClickHouse {
                bases: vec!["http://127.0.0.1:8123".to_owned()],
                database: "tracehouse".to_owned(),
                user: None,
                password: None,
                cluster: None,
            }
        );
        assert_eq!(
            parse_store_url("clickhouse://ann:p%40ss%3Aw@ch.local/traces/").unwrap(),
            StoreUrl::ClickHouse {
                bases: vec!["http://ch.local:8123".to_owned()],
                database: "traces".to_owned(),
                user: Some("ann".to_owned()),
                password: Some("p@ss:w".to_owned()),
                cluster: None,
            }
        );
        assert_eq!(
            parse_store_url("clickhouse://a:1,b:2/db?cluster=two").unwrap(),
            StoreUrl::ClickHouse {
                bases: vec!["http://a:1".to_owned(), "http://b:2".to_owned()],
                database: "db".to_owned(),
                user: None,
                password: None,
                cluster: Some("two".to_owned()),
            }
        );
        assert!(parse_store_url("clickhouse://a:1,b:2/db").is_err());
        assert!(parse_store_url("clickhouse://a:1/db?cluster=x;y").is_err());
        assert!(parse_store_url("clickhouse://a:1/db?colour=red").is_err());
        assert!(parse_store_url("clickhouse:h/db").is_err());
        assert!(parse_store_url("clickhouse:///db").is_err());
        assert!(parse_store_url("clickhouse://h:8123/bad-name").is_err());
        assert!(parse_store_url("clickhouse://h:8123/x;drop").is_err());
    }
}
