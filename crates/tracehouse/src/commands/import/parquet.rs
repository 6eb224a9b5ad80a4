//! Parquet inputs (Phoenix's spans dataframe and TraceDataset, MLflow's `search_traces()`
//! table): record batches read with the `parquet` crate's arrow reader, each row handed on as
//! the JSON object arrow-json writes for it. Nested lists and structs stay JSON, timestamps
//! become RFC 3339 text with every digit the column holds, so the ingest mappers see the same
//! record a JSONL export of the same table gives, and decoding stays pure (this module is the
//! IO). Memory is one record batch at a time.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;

use anyhow::Context;
use arrow_json::writer::{LineDelimited, WriterBuilder};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

/// Rows decoded per record batch.
const ROWS_PER_BATCH: usize = 1024;

/// The rows of one Parquet file, in order, as JSON objects.
pub(super) struct ParquetRows {
    reader: ParquetRecordBatchReader,
    pending: VecDeque<Vec<u8>>,
    /// Rows in the file, for progress.
    pub(super) total_rows: u64,
    /// The file's size, for progress.
    pub(super) file_size: u64,
}

/// Opens `path` and positions it after `skip` rows (a checkpoint's).
pub(super) fn open(path: &Path, skip: u64) -> anyhow::Result<ParquetRows> {
    let name = path.display();
    let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let file_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{name} is not a readable Parquet file"))?;
    let total_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let reader = builder
        .with_batch_size(ROWS_PER_BATCH)
        .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
        .build()
        .with_context(|| format!("cannot read {name}"))?;
    Ok(ParquetRows {
        reader,
        pending: VecDeque::new(),
        total_rows,
        file_size,
    })
}

impl ParquetRows {
    /// The next row as JSON text, `None` after the last.
    pub(super) fn next_row(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                return Ok(Some(row));
            }
            let Some(batch) = self.reader.next() else {
                return Ok(None);
            };
            let batch = batch.context("cannot read a record batch")?;
            let mut text = Vec::with_capacity(batch.get_array_memory_size());
            let mut writer = WriterBuilder::new().build::<_, LineDelimited>(&mut text);
            writer
                .write(&batch)
                .and_then(|()| writer.finish())
                .context("cannot turn a record batch into JSON")?;
            drop(writer);
            self.pending.extend(
                text.split(|byte| *byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
}
