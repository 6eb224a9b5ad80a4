//! The reading stage: inputs in order, cut into batches of raw items, each batch carrying the
//! position where the next one starts.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::Value;

use super::checkpoint::Position;
use super::decode::{RawBatch, RawItem, Reject, item_value};
use super::inputs::{self, FileFormat, Source};
use super::scan::{JsonScanner, LineScanner, ScanPosition, Scanned};
use super::{csv_rows, parquet};
use crate::cli::ImportFormat;

/// A batch is closed at this many bytes of items even below its item count, which keeps the
/// memory of a batch (and a request body with `--url`) bounded whatever the items' size.
pub(super) const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// A reject for what could not be read of an input at `position` (no item to show).
fn unreadable(name: &str, reason: String, position: Position) -> Reject {
    Reject {
        file: name.to_owned(),
        line: None,
        index: Some(position.next_index),
        span_index: None,
        field: String::new(),
        reason,
        item: Value::Null,
    }
}

/// What the reading stage needs.
pub(super) struct Reader {
    pub(super) sources: Arc<Vec<Source>>,
    pub(super) format: ImportFormat,
    pub(super) batch_size: usize,
    /// Where to start (a checkpoint's position, or the start of the first input).
    pub(super) start: Position,
    /// Compressed bytes read, for progress.
    pub(super) bytes_read: Arc<AtomicU64>,
}

/// Either scanner, behind one interface.
enum Scanner {
    Json(JsonScanner<inputs::Stream>),
    Lines(LineScanner<inputs::Stream>),
}

impl Scanner {
    fn next_item(&mut self) -> std::io::Result<Scanned> {
        match self {
            Scanner::Json(scanner) => scanner.next_item(),
            Scanner::Lines(scanner) => scanner.next_item(),
        }
    }

    fn position(&self) -> ScanPosition {
        match self {
            Scanner::Json(scanner) => scanner.position(),
            Scanner::Lines(scanner) => scanner.position(),
        }
    }
}

/// Batches being filled for one input.
struct Batcher<'a, F> {
    seq: u64,
    batch_size: usize,
    send: &'a mut F,
    current: Option<RawBatch>,
    item_bytes: usize,
    start_offset: u64,
}

impl<F: FnMut(RawBatch) -> bool> Batcher<'_, F> {
    fn batch(&mut self, file: usize, format: FileFormat, at: Position) -> &mut RawBatch {
        let seq = self.seq;
        self.current.get_or_insert_with(|| RawBatch {
            seq,
            file,
            format,
            items: Vec::new(),
            rejects: Vec::new(),
            end: at,
            bytes: 0,
        })
    }

    /// Sends the current batch (even empty: it still moves the checkpoint); false to stop.
    fn flush(&mut self, end: Position, file: usize, format: FileFormat) -> bool {
        let mut batch = self.current.take().unwrap_or(RawBatch {
            seq: self.seq,
            file,
            format,
            items: Vec::new(),
            rejects: Vec::new(),
            end,
            bytes: 0,
        });
        batch.end = end;
        self.seq += 1;
        self.item_bytes = 0;
        (self.send)(batch)
    }

    fn full(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|b| b.items.len() + b.rejects.len() >= self.batch_size)
            || self.item_bytes >= MAX_BATCH_BYTES
    }
}

impl Reader {
    /// Reads every input from the start position on, handing out batches in order; stops early
    /// when `send` returns false (the import is over).
    pub(super) fn run(self, mut send: impl FnMut(RawBatch) -> bool) {
        let names: Vec<String> = self.sources.iter().map(Source::display).collect();
        let mut batcher = Batcher {
            seq: 0,
            batch_size: self.batch_size.max(1),
            send: &mut send,
            current: None,
            item_bytes: 0,
            start_offset: 0,
        };
        let sources = Arc::clone(&self.sources);
        let inputs = sources.iter().zip(&names).enumerate().skip(self.start.file);
        for (file, (source, name)) in inputs {
            let start = if file == self.start.file {
                self.start
            } else {
                Position::start_of(file)
            };
            let next_file = Position::start_of(file + 1);
            let unreadable =
                |reason: String, position: Position| unreadable(name, reason, position);
            if let Some(format @ (FileFormat::Parquet | FileFormat::Csv)) = start.format {
                // A resumed Parquet or CSV input: its rows are counted, not its bytes.
                if !self.read_rows(format, source, name, file, start, &mut batcher) {
                    return;
                }
                continue;
            }
            let opened = inputs::open(source, start.scan.offset, Arc::clone(&self.bytes_read))
                .and_then(|stream| match start.format {
                    Some(format) if start.scan.offset > 0 => Ok((format, stream)),
                    _ => inputs::detect(source, self.format, stream),
                });
            let (format, stream) = match opened {
                Ok(opened) => opened,
                Err(error) => {
                    let format = start.format.unwrap_or(FileFormat::Json);
                    let reject = unreadable(format!("{error:#}"), start);
                    batcher.batch(file, format, start).rejects.push(reject);
                    if !batcher.flush(next_file, file, format) {
                        return;
                    }
                    continue;
                }
            };
            let mut scanner = match format {
                FileFormat::Parquet | FileFormat::Csv => {
                    drop(stream);
                    if !self.read_rows(format, source, name, file, start, &mut batcher) {
                        return;
                    }
                    continue;
                }
                FileFormat::Jsonl => Scanner::Lines(LineScanner::new(stream, start.scan)),
                FileFormat::Json => Scanner::Json(JsonScanner::new(stream, start.scan, false)),
                FileFormat::OtlpJson => Scanner::Json(JsonScanner::new(stream, start.scan, true)),
            };
            let mut position = Position {
                format: Some(format),
                ..start
            };
            batcher.start_offset = position.scan.offset;
            loop {
                let found = match scanner.next_item() {
                    Ok(found) => found,
                    Err(error) => {
                        let reject = unreadable(
                            format!("cannot read the rest of this input: {error}"),
                            position,
                        );
                        batcher.batch(file, format, position).rejects.push(reject);
                        break;
                    }
                };
                let index = position.next_index;
                match found {
                    Scanned::End => break,
                    Scanned::Item { bytes, line } => {
                        batcher.item_bytes += bytes.len();
                        batcher.batch(file, format, position).items.push(RawItem {
                            bytes,
                            line,
                            index,
                        });
                    }
                    Scanned::Invalid {
                        reason,
                        bytes,
                        line,
                    } => {
                        let reject = Reject {
                            file: name.clone(),
                            line: Some(line),
                            index: Some(index),
                            span_index: None,
                            field: String::new(),
                            reason,
                            item: if bytes.is_empty() {
                                Value::Null
                            } else {
                                item_value(&bytes)
                            },
                        };
                        batcher.batch(file, format, position).rejects.push(reject);
                    }
                }
                position.next_index += 1;
                position.scan = scanner.position();
                if batcher.full() {
                    let covered = position.scan.offset - batcher.start_offset;
                    batcher.batch(file, format, position).bytes = covered;
                    batcher.start_offset = position.scan.offset;
                    if !batcher.flush(position, file, format) {
                        return;
                    }
                }
            }
            // The last batch of an input ends at the start of the next, so a checkpoint taken
            // there moves on to the next input.
            let covered = scanner.position().offset - batcher.start_offset;
            batcher.batch(file, format, position).bytes = covered;
            if !batcher.flush(next_file, file, format) {
                return;
            }
        }
    }
}

impl Reader {
    /// Reads the rows of a Parquet or CSV input from `start` on; false when the import is
    /// over. A row is an item whose `line` is its 1-based row number (after the header).
    fn read_rows<F: FnMut(RawBatch) -> bool>(
        &self,
        format: FileFormat,
        source: &Source,
        name: &str,
        file: usize,
        start: Position,
        batcher: &mut Batcher<'_, F>,
    ) -> bool {
        let next_file = Position::start_of(file + 1);
        let reject = |reason: String, position: Position| unreadable(name, reason, position);
        let opened = match (source, format) {
            (Source::File(path), FileFormat::Csv) => {
                csv_rows::open(path, start.next_index).map(RowReader::Csv)
            }
            (Source::File(path), _) => {
                parquet::open(path, start.next_index).map(RowReader::Parquet)
            }
            (Source::Stdin, _) => Err(anyhow::anyhow!(
                "Parquet and CSV cannot be read from stdin; name the file instead"
            )),
        };
        let mut rows = match opened {
            Ok(rows) => rows,
            Err(error) => {
                batcher
                    .batch(file, format, start)
                    .rejects
                    .push(reject(format!("{error:#}"), start));
                return batcher.flush(next_file, file, format);
            }
        };
        // Progress and throughput count the file's bytes read so far (for Parquet, in
        // proportion to the rows read).
        let mut reached = rows.bytes_reached(start.next_index);
        let mut position = Position {
            format: Some(format),
            ..start
        };
        loop {
            let row = match rows.next_row() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(error) => {
                    let reason = format!("cannot read the rest of this input: {error:#}");
                    batcher
                        .batch(file, format, position)
                        .rejects
                        .push(reject(reason, position));
                    break;
                }
            };
            let index = position.next_index;
            batcher.item_bytes += row.len();
            batcher.batch(file, format, position).items.push(RawItem {
                bytes: row,
                line: index + 1,
                index,
            });
            position.next_index += 1;
            // Rows consumed, so that a checkpoint here resumes by rows.
            position.scan.offset = position.next_index;
            if batcher.full() {
                let now = rows.bytes_reached(position.next_index);
                let covered = now.saturating_sub(reached);
                reached = now;
                self.bytes_read
                    .fetch_add(covered, std::sync::atomic::Ordering::Relaxed);
                batcher.batch(file, format, position).bytes = covered;
                if !batcher.flush(position, file, format) {
                    return false;
                }
            }
        }
        let covered = rows
            .bytes_reached(position.next_index)
            .saturating_sub(reached);
        self.bytes_read
            .fetch_add(covered, std::sync::atomic::Ordering::Relaxed);
        batcher.batch(file, format, position).bytes = covered;
        batcher.flush(next_file, file, format)
    }
}

/// A row-counted input: Parquet or CSV.
enum RowReader {
    Parquet(parquet::ParquetRows),
    Csv(csv_rows::CsvRows),
}

impl RowReader {
    fn next_row(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            RowReader::Parquet(rows) => rows.next_row(),
            RowReader::Csv(rows) => rows.next_row(),
        }
    }

    /// How far into the file `rows_read` rows reach, in bytes.
    fn bytes_reached(&self, rows_read: u64) -> u64 {
        match self {
            RowReader::Parquet(rows) => {
                rows_read.saturating_mul(rows.file_size / rows.total_rows.max(1))
            }
            RowReader::Csv(rows) => rows.bytes_read(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(
        sources: Vec<Source>,
        batch_size: usize,
        start: Position,
    ) -> Vec<(u64, usize, Vec<u64>, usize, Position)> {
        let reader = Reader {
            sources: Arc::new(sources),
            format: ImportFormat::Auto,
            batch_size,
            start,
            bytes_read: Arc::new(AtomicU64::new(0)),
        };
        let mut batches = Vec::new();
        reader.run(|batch| {
            batches.push((
                batch.seq,
                batch.file,
                batch.items.iter().map(|i| i.index).collect(),
                batch.rejects.len(),
                batch.end,
            ));
            true
        });
        batches
    }

    #[test]
    fn batches_end_where_the_next_starts_and_at_each_input_end() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "{\"i\": 0}\n{\"i\": 1}\n{\"i\": 2}\n").unwrap();
        let b = dir.path().join("b.json");
        std::fs::write(&b, "[{\"i\": 0}, {\"i\": 1}").unwrap();
        let batches = read_all(
            vec![Source::File(a.clone()), Source::File(b.clone())],
            2,
            Position::start_of(0),
        );
        let shape: Vec<(u64, usize, Vec<u64>, usize)> = batches
            .iter()
            .map(|(seq, file, items, rejects, _)| (*seq, *file, items.clone(), *rejects))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 0, vec![0, 1], 0),
                (1, 0, vec![2], 0),
                (2, 1, vec![0, 1], 0),
                (3, 1, vec![], 1),
            ]
        );
        assert_eq!(batches[1].4, Position::start_of(1));
        assert_eq!(batches[3].4, Position::start_of(2));
        // Resuming at the end of the first batch reads exactly the rest.
        let resumed = read_all(vec![Source::File(a), Source::File(b)], 2, batches[0].4);
        assert_eq!(resumed.len(), 3);
        assert_eq!(resumed[0].2, vec![2]);
    }

    #[test]
    fn parquet_rows_are_items_and_a_checkpoint_resumes_at_its_row() {
        let parquet = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/peer-exports/phoenix/spans_dataframe.parquet");
        let sources = vec![Source::File(parquet.clone())];
        let batches = read_all(sources.clone(), 20, Position::start_of(0));
        let rows: Vec<Vec<u64>> = batches.iter().map(|b| b.2.clone()).collect();
        let expected: Vec<Vec<u64>> =
            vec![(0..20).collect(), (20..40).collect(), (40..49).collect()];
        assert_eq!(rows, expected);
        assert_eq!(batches[0].4.format, Some(FileFormat::Parquet));
        assert_eq!(batches[2].4, Position::start_of(1));
        let resumed = read_all(sources, 20, batches[0].4);
        assert_eq!(resumed[0].2, (20..40).collect::<Vec<u64>>());
        assert_eq!(resumed.len(), 2);

        // Half a file has no footer: one reject naming the input, then the next input.
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.parquet");
        let bytes = std::fs::read(&parquet).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let good = dir.path().join("good.jsonl");
        std::fs::write(&good, "{\"i\": 0}\n").unwrap();
        let batches = read_all(
            vec![Source::File(cut), Source::File(good)],
            10,
            Position::start_of(0),
        );
        assert_eq!((batches[0].3, batches[1].2.len()), (1, 1));
    }

    #[test]
    fn an_unreadable_input_is_a_reject_and_the_next_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.jsonl");
        std::fs::write(&good, "{\"i\": 0}\n").unwrap();
        let batches = read_all(
            vec![
                Source::File(dir.path().join("gone.json")),
                Source::File(good),
            ],
            10,
            Position::start_of(0),
        );
        assert_eq!(batches.len(), 2);
        assert_eq!((batches[0].3, batches[1].2.len()), (1, 1));
    }
}
