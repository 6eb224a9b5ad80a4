//! ClickHouse's HTTP interface: statements out, JSONEachRow rows back, and SQL literals.
//!
//! ClickHouse 18.16 (the server Debian ships) has no server-side query parameters, so every
//! user value becomes SQL text through [`string_literal`] and the other literal functions
//! here, and nowhere else.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ClickHouseError;

/// Settings sent with every read, as URL parameters (the only way 18.16 takes them).
///
/// Reads filter rows after `FINAL` has collapsed replaced versions. Moving a filter to
/// PREWHERE or pushing it into the `FINAL` subquery would filter before the collapse and could
/// let an older version of a replaced span match, so both optimisations are turned off.
/// 64-bit integers come back as JSON numbers so they parse straight into Rust integers.
/// Key lists of a page of up to 1000 traces with ids of up to 256 bytes can pass the default
/// 256 KiB query size, so reads allow 16 MiB.
const READ_SETTINGS: &[(&str, &str)] = &[
    ("optimize_move_to_prewhere", "0"),
    ("enable_optimize_predicate_expression", "0"),
    ("output_format_json_quote_64bit_integers", "0"),
    ("max_query_size", "16777216"),
];

/// Settings sent with every insert. On a cluster, an insert into a `Distributed` table
/// returns only once every shard has written its rows; by default it would return after
/// queueing them locally, which would acknowledge data the shards may not have and break
/// reading one's own writes. Single servers ignore the setting.
const INSERT_SETTINGS: &[(&str, &str)] = &[("insert_distributed_sync", "1")];

/// Where the server is and who we are to it.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    database: String,
    user: String,
    password: Option<String>,
}

/// ClickHouse error codes that mean "try again later" rather than "this query is wrong".
const TRANSIENT_CODES: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    164, // READONLY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    252, // TOO_MANY_PARTS
    279, // ALL_CONNECTION_TRIES_FAILED
    319, // UNKNOWN_STATUS_OF_INSERT
];

impl Client {
    pub(crate) fn new(
        base: &str,
        database: &str,
        user: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ClickHouseError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2).min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| ClickHouseError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            database: database.to_owned(),
            user: user.to_owned(),
            password: password.map(str::to_owned),
        })
    }

    /// The same client speaking to another server (a further node of a cluster).
    pub(crate) fn for_node(&self, base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    /// The server's HTTP URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Runs `sql` with `body` as its data (inserts) and returns the answer text.
    /// `in_database` is false only for statements that must run before the database exists.
    async fn send(
        &self,
        sql: &str,
        body: Option<Vec<u8>>,
        settings: &[(&str, &str)],
        in_database: bool,
        timeout: Option<Duration>,
    ) -> Result<String, ClickHouseError> {
        let mut params: Vec<(&str, &str)> = settings.to_vec();
        if in_database {
            params.push(("database", &self.database));
        }
        // Without a body the statement itself is the body; with one, it travels in `query`.
        let request = match body {
            Some(data) => {
                params.push(("query", sql));
                self.http.post(format!("{}/", self.base)).body(data)
            }
            None => self
                .http
                .post(format!("{}/", self.base))
                .body(sql.to_owned()),
        };
        let request = match timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        };
        let started = std::time::Instant::now();
        let response = request
            .query(&params)
            .basic_auth(&self.user, self.password.as_deref())
            .send()
            .await
            .map_err(ClickHouseError::from_http)?;
        let status = response.status();
        let text = response.text().await.map_err(ClickHouseError::from_http)?;
        // What an operator needs to find the slow statement behind a slow request.
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1000.0,
            bytes = text.len(),
            sql = %sql.chars().take(300).collect::<String>(),
            "clickhouse statement"
        );
        if status.is_success() {
            return Ok(text);
        }
        let code = parse_error_code(&text);
        Err(ClickHouseError::Server {
            status: status.as_u16(),
            code,
            transient: status.is_server_error()
                && code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
                || status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
            message: text.trim().chars().take(2000).collect(),
        })
    }

    /// A statement with no result (DDL, ALTER).
    pub(crate) async fn execute(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.send(sql, None, &[], true, None).await.map(drop)
    }

    /// A statement that may run far longer than a request should (a schema upgrade copying
    /// every row), allowed up to `limit`.
    pub(crate) async fn execute_long(
        &self,
        sql: &str,
        limit: Duration,
    ) -> Result<(), ClickHouseError> {
        self.send(sql, None, &[], true, Some(limit)).await.map(drop)
    }

    /// A statement run outside the store's database (creating it).
    pub(crate) async fn execute_global(&self, sql: &str) -> Result<(), ClickHouseError> {
        self.send(sql, None, &[], false, None).await.map(drop)
    }

    /// Inserts rows given as JSONEachRow lines (rows without floats: ClickHouse 18.16 parses
    /// decimal floats inexactly); returns only after the server answered OK, which for a
    /// MergeTree insert means the data is written to a part on disk.
    pub(crate) async fn insert(&self, table: &str, rows: String) -> Result<(), ClickHouseError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.send(
            &format!("INSERT INTO {table} FORMAT JSONEachRow"),
            Some(rows.into_bytes()),
            INSERT_SETTINGS,
            true,
            None,
        )
        .await
        .map(drop)
    }

    /// Inserts rows encoded as RowBinary for `columns`, in their order. Binary carries every
    /// Float64 bit for bit, which text formats parsed by 18.16 do not.
    pub(crate) async fn insert_binary(
        &self,
        table: &str,
        columns: &str,
        rows: Vec<u8>,
    ) -> Result<(), ClickHouseError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.send(
            &format!("INSERT INTO {table} ({columns}) FORMAT RowBinary"),
            Some(rows),
            INSERT_SETTINGS,
            true,
            None,
        )
        .await
        .map(drop)
    }

    /// A SELECT whose rows deserialize into `T`; `FORMAT JSONEachRow` is appended here.
    pub(crate) async fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<Vec<T>, ClickHouseError> {
        let text = self
            .send(
                &format!("{sql} FORMAT JSONEachRow"),
                None,
                READ_SETTINGS,
                true,
                None,
            )
            .await?;
        text.lines()
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_str(line).map_err(ClickHouseError::Decode))
            .collect()
    }

    /// A SELECT of exactly one row.
    pub(crate) async fn row<T: DeserializeOwned>(&self, sql: &str) -> Result<T, ClickHouseError> {
        self.rows(sql)
            .await?
            .pop()
            .ok_or_else(|| ClickHouseError::Corrupt(format!("no row from: {sql}")))
    }

    /// Whether the server answers at all (`/ping`).
    pub(crate) async fn ping(&self) -> Result<(), ClickHouseError> {
        let response = self
            .http
            .get(format!("{}/ping", self.base))
            .send()
            .await
            .map_err(ClickHouseError::from_http)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ClickHouseError::Server {
                status: response.status().as_u16(),
                code: None,
                transient: true,
                message: "ping failed".to_owned(),
            })
        }
    }
}

/// `Code: 252, e.displayText() = ...` → 252.
fn parse_error_code(text: &str) -> Option<u32> {
    let rest = text.trim_start().strip_prefix("Code:")?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A ClickHouse string literal holding exactly `value`.
///
/// Inside quotes ClickHouse interprets backslash escapes, so backslash and quote are escaped,
/// and NUL and line breaks are written as escapes so the statement stays one clean line.
/// Every other character, including any Unicode, stands for itself.
pub(crate) fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

/// A Float64 literal holding exactly `value`: its IEEE bits, since ClickHouse 18.16 parses
/// decimal literals inexactly (off by an ulp) and rejects subnormal ones. Non-finite values
/// never reach here (the query parser rejects them), but map to NULL rather than to a number.
pub(crate) fn float_literal(value: f64) -> String {
    if value.is_finite() {
        format!(
            "reinterpretAsFloat64(unhex('{}'))",
            hex::encode(value.to_le_bytes())
        )
    } else {
        "NULL".to_owned()
    }
}

/// Builds RowBinary rows: little-endian numbers, LEB128-prefixed strings and arrays, a NULL
/// flag byte before every Nullable value.
#[derive(Default)]
pub(crate) struct RowBinary(Vec<u8>);

impl RowBinary {
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn length(&mut self, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn f64(&mut self, value: f64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn str(&mut self, value: &str) {
        self.length(value.len());
        self.0.extend_from_slice(value.as_bytes());
    }

    /// A Nullable value: the flag, then the value when present.
    pub(crate) fn nullable<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.0.push(1),
            Some(value) => {
                self.0.push(0);
                write(self, value);
            }
        }
    }

    pub(crate) fn array<T>(&mut self, values: &[T], mut write: impl FnMut(&mut Self, &T)) {
        self.length(values.len());
        for value in values {
            write(self, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_clickhouse_interprets() {
        assert_eq!(string_literal("plain"), "'plain'");
        assert_eq!(string_literal("it's"), "'it\\'s'");
        assert_eq!(string_literal("a\\'b"), "'a\\\\\\'b'");
        assert_eq!(string_literal("nul\0x\n"), "'nul\\0x\\n'");
        assert_eq!(string_literal("é😀"), "'é😀'");
        assert_eq!(
            float_literal(0.5),
            "reinterpretAsFloat64(unhex('000000000000e03f'))"
        );
        assert_eq!(float_literal(f64::NAN), "NULL");
    }

    #[test]
    fn row_binary_encodes_lengths_as_leb128_and_nulls_as_flags() {
        let mut row = RowBinary::default();
        row.str(&"x".repeat(300));
        row.nullable(None::<i64>, RowBinary::i64);
        row.nullable(Some(1u8), RowBinary::u8);
        let bytes = row.into_bytes();
        assert_eq!(&bytes[..2], &[0xac, 0x02]);
        assert_eq!(&bytes[302..], &[1, 0, 1]);
    }

    #[test]
    fn error_codes_are_read_from_the_answer() {
        assert_eq!(
            parse_error_code("Code: 252, e.displayText() = DB::Exception: Too many parts"),
            Some(252)
        );
        assert_eq!(parse_error_code("garbage"), None);
    }
}
