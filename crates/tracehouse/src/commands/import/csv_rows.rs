//! CSV inputs (Langfuse's traces-table "Export" as CSV): read with the `csv` crate, each row
//! handed on as the JSON object of its columns, so the ingest mappers see the same record the
//! JSON export of the same table gives. The exporter writes every value that is not a plain
//! string as JSON text (`"2026-12-04T17:20:17.444Z"` with its quotes, `false`, `["router"]`,
//! `{"channel": ...}`), so a cell that parses as JSON is that value, an empty cell is null, and
//! any other cell is its text. Like Parquet, a CSV input is counted in rows: a checkpoint
//! resumes after its last committed row. Memory is one row at a time.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};

/// The rows of one CSV file after its header, in order, as JSON objects.
pub(super) struct CsvRows {
    reader: csv::Reader<BufReader<File>>,
    header: Vec<String>,
    record: csv::StringRecord,
}

/// Opens `path`, reads its header and positions it after `skip` rows (a checkpoint's).
pub(super) fn open(path: &Path, skip: u64) -> anyhow::Result<CsvRows> {
    let name = path.display();
    let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(BufReader::new(file));
    let header = reader
        .headers()
        .with_context(|| format!("{name} has no readable CSV header"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = CsvRows {
        reader,
        header,
        record: csv::StringRecord::new(),
    };
    for _ in 0..skip {
        if !rows.advance()? {
            break;
        }
    }
    Ok(rows)
}

impl CsvRows {
    fn advance(&mut self) -> anyhow::Result<bool> {
        self.reader
            .read_record(&mut self.record)
            .context("cannot read a CSV row")
    }

    /// Bytes of the file read so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next row as JSON text, `None` after the last.
    pub(super) fn next_row(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        if !self.advance()? {
            return Ok(None);
        }
        let row: Map<String, Value> = self
            .header
            .iter()
            .zip(self.record.iter())
            .map(|(column, cell)| (column.clone(), cell_value(cell)))
            .collect();
        Ok(Some(serde_json::to_vec(&Value::Object(row))?))
    }
}

/// A cell's value: null when empty, the JSON it holds when it parses as JSON, else its text.
fn cell_value(cell: &str) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(cell).unwrap_or_else(|_| Value::String(cell.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_are_json_where_the_exporter_wrote_json_and_text_elsewhere() {
        assert_eq!(cell_value(""), Value::Null);
        assert_eq!(
            cell_value("\"2026-12-04T17:20:17.444Z\""),
            json!("2026-12-04T17:20:17.444Z")
        );
        assert_eq!(cell_value("false"), json!(false));
        assert_eq!(cell_value("[\"router\"]"), json!(["router"]));
        assert_eq!(cell_value("cust-50015"), json!("cust-50015"));
        assert_eq!(cell_value("0.5"), json!(0.5));
    }

    #[test]
    fn langfuse_csv_rows_equal_the_json_export_of_the_same_table() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/peer-exports/langfuse/ui-batch-export");
        let stem = "1796405718719-lf-traces-export-c7e17dx0gpkeozx9hoaeviles";
        let json: Vec<Value> =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        let mut rows = open(&dir.join(format!("{stem}.csv")), 0).unwrap();
        let mut from_csv = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            from_csv.push(serde_json::from_slice::<Value>(&row).unwrap());
        }
        assert_eq!(from_csv.len(), json.len());
        for (csv_row, json_row) in from_csv.iter().zip(&json) {
            for key in [
                "id",
                "timestamp",
                "name",
                "userId",
                "sessionId",
                "tags",
                "metadata",
            ] {
                assert_eq!(csv_row[key], json_row[key], "{key} of {}", json_row["id"]);
            }
        }
        // A checkpoint after 5 rows resumes at the sixth.
        let mut resumed = open(&dir.join(format!("{stem}.csv")), 5).unwrap();
        let sixth: Value = serde_json::from_slice(&resumed.next_row().unwrap().unwrap()).unwrap();
        assert_eq!(sixth["id"], json[5]["id"]);
    }
}
