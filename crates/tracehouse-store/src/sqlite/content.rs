//! Span content as stored: JSON text, compressed with zstd once it is long enough to gain.
//!
//! Content is most of a span's bytes (prompts, completions, tool input and output). Stored
//! compressed, a span takes fewer pages, so the writer writes fewer WAL frames per commit and
//! more of a growing database stays in cache. Rows written before compression (and short
//! contents) stay JSON text; readers take either, through [`decode`] in Rust and the
//! `span_content` SQL function in queries that look inside the JSON.

use std::cell::RefCell;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

use super::SqliteError;

/// Shorter JSON is stored as text: zstd's frame overhead would eat the gain.
const COMPRESS_FROM_BYTES: usize = 256;

/// zstd's fastest standard level: compression runs on the request's thread, beside decoding,
/// and higher levels bought little on span content for several times the CPU.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    // A zstd context allocates its tables when created; one per thread, reused for every span,
    // instead of one per span (which cost more than compressing).
    static COMPRESSOR: RefCell<std::io::Result<zstd::bulk::Compressor<'static>>> =
        RefCell::new(zstd::bulk::Compressor::new(ZSTD_LEVEL));
    static DECOMPRESSOR: RefCell<std::io::Result<zstd::bulk::Decompressor<'static>>> =
        RefCell::new(zstd::bulk::Decompressor::new());
}

/// Decompresses one frame written by [`StoredContent::encode`], which records its size.
fn decompress(
    decompressor: &mut std::io::Result<zstd::bulk::Decompressor<'static>>,
    compressed: &[u8],
) -> std::io::Result<Vec<u8>> {
    let decompressor = decompressor
        .as_mut()
        .map_err(|error| std::io::Error::new(error.kind(), error.to_string()))?;
    let size = zstd::zstd_safe::get_frame_content_size(compressed)
        .ok()
        .flatten()
        .ok_or_else(|| std::io::Error::other("frame does not record its size"))?;
    let size = usize::try_from(size)
        .ok()
        .filter(|size| *size <= MAX_CONTENT_BYTES)
        .ok_or_else(|| std::io::Error::other("frame claims an impossible size"))?;
    decompressor.decompress(compressed, size)
}

/// Larger than any content ingest accepts (bodies are bounded well below it); a frame
/// claiming more is corrupt, and is not given the memory.
const MAX_CONTENT_BYTES: usize = 1 << 30;

/// A span's content in its stored form.
pub(crate) enum StoredContent {
    Text(String),
    Compressed(Vec<u8>),
}

impl StoredContent {
    pub(crate) fn encode(json: String) -> Result<Self, SqliteError> {
        if json.len() < COMPRESS_FROM_BYTES {
            return Ok(Self::Text(json));
        }
        let compressed = COMPRESSOR
            .with(|compressor| match &mut *compressor.borrow_mut() {
                Ok(compressor) => compressor.compress(json.as_bytes()),
                Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
            })
            .map_err(|error| SqliteError::Content(error.to_string()))?;
        Ok(if compressed.len() < json.len() {
            Self::Compressed(compressed)
        } else {
            Self::Text(json)
        })
    }
}

impl ToSql for StoredContent {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Self::Compressed(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

/// The JSON text of a stored content value.
pub(crate) fn decode(value: ValueRef<'_>) -> Result<String, SqliteError> {
    match value {
        ValueRef::Text(text) => String::from_utf8(text.to_vec())
            .map_err(|_| SqliteError::Corrupt("span content is not UTF-8".to_owned())),
        ValueRef::Blob(compressed) => {
            let bytes = DECOMPRESSOR
                .with(|decompressor| decompress(&mut decompressor.borrow_mut(), compressed))
                .map_err(|error| SqliteError::Corrupt(format!("span content: {error}")))?;
            String::from_utf8(bytes)
                .map_err(|_| SqliteError::Corrupt("span content is not UTF-8".to_owned()))
        }
        _ => Err(SqliteError::Corrupt(
            "span content is neither text nor compressed".to_owned(),
        )),
    }
}

/// Registers `span_content(content)`: the JSON text of a stored content value, for the
/// queries that read inside it with SQLite's JSON functions.
pub(crate) fn register_sql_function(connection: &Connection) -> Result<(), SqliteError> {
    connection.create_scalar_function(
        "span_content",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |context| {
            decode(context.get_raw(0))
                .map_err(|error| rusqlite::Error::UserFunctionError(Box::new(error)))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_json_stays_text_and_long_json_round_trips_compressed() {
        let short = r#"{"input":"hi"}"#.to_owned();
        assert!(matches!(
            StoredContent::encode(short.clone()).unwrap(),
            StoredContent::Text(ref text) if *text == short
        ));
        let long = format!(r#"{{"input":"{}"}}"#, "refund policy ".repeat(100));
        let StoredContent::Compressed(bytes) = StoredContent::encode(long.clone()).unwrap() else {
            panic!("long content was not compressed");
        };
        assert!(bytes.len() < long.len() / 4);
        assert_eq!(decode(ValueRef::Blob(&bytes)).unwrap(), long);
        assert_eq!(decode(ValueRef::Text(short.as_bytes())).unwrap(), short);
    }

    #[test]
    fn sql_reads_inside_either_form() {
        let connection = Connection::open_in_memory().unwrap();
        register_sql_function(&connection).unwrap();
        let long = format!(r#"{{"trace_name":"n","input":"{}"}}"#, "x y ".repeat(200));
        let StoredContent::Compressed(bytes) = StoredContent::encode(long).unwrap() else {
            panic!("long content was not compressed");
        };
        for stored in [
            rusqlite::types::Value::Blob(bytes),
            rusqlite::types::Value::Text(r#"{"trace_name":"n"}"#.to_owned()),
        ] {
            let name: String = connection
                .query_row(
                    "SELECT json_extract(span_content(?1), '$.trace_name')",
                    [stored],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(name, "n");
        }
        let garbage: rusqlite::Result<String> =
            connection.query_row("SELECT span_content(X'00ff')", [], |row| row.get(0));
        assert!(garbage.is_err());
    }
}
