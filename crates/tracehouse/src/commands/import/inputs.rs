//! What to read: inputs named on the command line expanded into a list of sources, each opened
//! as a stream of decompressed bytes, with its format detected.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::cli::ImportFormat;

/// Read buffer of every input; large reads keep system calls and decompressor calls rare.
const READ_BUFFER: usize = 256 * 1024;
/// The first (and last) four bytes of a Parquet file.
pub(super) const PARQUET_MAGIC: &[u8] = b"PAR1";
/// Bytes looked at to tell formats apart.
const SNIFF_BYTES: u64 = 64 * 1024;

/// One input: a file or stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    File(PathBuf),
    Stdin,
}

impl Source {
    /// How rejects and messages name it.
    pub(super) fn display(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Stdin => "-".to_owned(),
        }
    }

    /// Size on disk, for the progress bar (stdin has none).
    pub(super) fn size(&self) -> Option<u64> {
        match self {
            Source::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
            Source::Stdin => None,
        }
    }
}

/// The format of one input, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum FileFormat {
    Json,
    Jsonl,
    OtlpJson,
    /// Rows of a Parquet file, each handed on as the JSON object of its columns.
    Parquet,
    /// Rows of a CSV file after its header, each handed on as the JSON object of its columns.
    Csv,
}

/// File names a directory walk picks up.
fn importable_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.ends_with(".parquet") || name.ends_with(".csv") {
        return true;
    }
    let base = [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(&name);
    [".json", ".jsonl", ".ndjson"]
        .iter()
        .any(|extension| base.ends_with(extension))
}

fn walk(directory: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<(PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(directory)
        .with_context(|| format!("cannot read directory {}", directory.display()))?
    {
        let entry =
            entry.with_context(|| format!("cannot read directory {}", directory.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Dot files include import checkpoints, which must never be imported themselves.
        if name.starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir || importable_name(&name) {
            entries.push((entry.path(), is_dir));
        }
    }
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands files, directories, globs and `-` into sources, in the order given, each once.
pub(super) fn expand(inputs: &[String]) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    let add = |source: Source, sources: &mut Vec<Source>| {
        if !sources.contains(&source) {
            sources.push(source);
        }
    };
    for input in inputs {
        if input == "-" {
            add(Source::Stdin, &mut sources);
            continue;
        }
        let path = Path::new(input);
        let mut found = Vec::new();
        if path.is_dir() {
            walk(path, &mut found)?;
            if found.is_empty() {
                bail!(
                    "directory {input} has no .json, .jsonl, .ndjson (optionally .gz or .zst), .parquet or .csv files"
                );
            }
        } else if path.exists() {
            found.push(path.to_path_buf());
        } else if input.contains(['*', '?', '[']) {
            let matches =
                glob::glob(input).with_context(|| format!("invalid glob pattern {input:?}"))?;
            for entry in matches {
                let matched = entry.with_context(|| format!("cannot read a match of {input:?}"))?;
                if matched.is_dir() {
                    walk(&matched, &mut found)?;
                } else {
                    found.push(matched);
                }
            }
            if found.is_empty() {
                bail!("pattern {input:?} matches no file");
            }
        } else {
            bail!("no such file or directory: {input}");
        }
        for file in found {
            let absolute = std::path::absolute(&file).unwrap_or(file);
            add(Source::File(absolute), &mut sources);
        }
    }
    Ok(sources)
}

/// Counts the bytes read from the underlying file (compressed size), for the progress bar.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.counter.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Decompressed bytes of one source.
pub(super) type Stream = Box<dyn BufRead + Send>;

/// Opens a source, decompressing gzip or zstd (recognised by magic bytes), and positions the
/// stream at decompressed byte `offset`. Compressed bytes read are added to `counter`.
pub(super) fn open(
    source: &Source,
    offset: u64,
    counter: Arc<AtomicU64>,
) -> anyhow::Result<Stream> {
    let name = source.display();
    let mut raw: Box<dyn Read + Send> = match source {
        Source::Stdin => Box::new(io::stdin()),
        Source::File(path) => {
            Box::new(File::open(path).with_context(|| format!("cannot open {name}"))?)
        }
    };
    let mut magic = Vec::with_capacity(4);
    (&mut raw)
        .take(4)
        .read_to_end(&mut magic)
        .with_context(|| format!("cannot read {name}"))?;
    let compressed =
        magic.starts_with(&[0x1f, 0x8b]) || magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    // A plain file is positioned by seeking; anything else by reading up to the offset.
    let mut skip = offset;
    if !compressed && offset > 0 {
        if let Source::File(path) = source {
            let mut file = File::open(path).with_context(|| format!("cannot open {name}"))?;
            file.seek(SeekFrom::Start(offset))
                .with_context(|| format!("cannot seek in {name}"))?;
            counter.fetch_add(offset, Ordering::Relaxed);
            raw = Box::new(file);
            magic.clear();
            skip = 0;
        }
    }
    let counted = Counting {
        inner: Cursor::new(magic.clone()).chain(raw),
        counter,
    };
    let mut stream: Stream = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            READ_BUFFER,
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, counted)),
        ))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
            READ_BUFFER,
            counted,
        ))
        .with_context(|| format!("cannot start zstd decompression of {name}"))?;
        Box::new(BufReader::with_capacity(READ_BUFFER, decoder))
    } else {
        Box::new(BufReader::with_capacity(READ_BUFFER, counted))
    };
    if skip > 0 {
        let skipped = io::copy(&mut (&mut stream).take(skip), &mut io::sink())
            .with_context(|| format!("cannot read {name}"))?;
        if skipped < skip {
            bail!("{name} is shorter than when the checkpoint was written");
        }
    }
    Ok(stream)
}

/// The name of a source without compression suffixes, lowercased.
fn base_name(source: &Source) -> String {
    let Source::File(path) = source else {
        return String::new();
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .map(str::to_owned)
        .unwrap_or(name)
}

/// Decides the format of a freshly opened source (see `ImportFormat::Auto`), reading at most
/// [`SNIFF_BYTES`]; the stream returned still starts at the beginning.
pub(super) fn detect(
    source: &Source,
    requested: ImportFormat,
    stream: Stream,
) -> anyhow::Result<(FileFormat, Stream)> {
    let name = base_name(source);
    let mut head = Vec::new();
    let mut stream = stream;
    (&mut stream)
        .take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let forced = match requested {
        _ if head.starts_with(PARQUET_MAGIC) || name.to_ascii_lowercase().ends_with(".csv") => None,
        ImportFormat::Json => Some(FileFormat::Json),
        ImportFormat::Jsonl => Some(FileFormat::Jsonl),
        ImportFormat::OtlpJson => Some(FileFormat::OtlpJson),
        ImportFormat::Auto => None,
    };
    // Parquet's magic number opens the file; it is read by row groups from the file itself.
    // CSV is known by its name (a header row is no JSON), and is read by rows too.
    let format = if head.starts_with(PARQUET_MAGIC) {
        FileFormat::Parquet
    } else if name.to_ascii_lowercase().ends_with(".csv") {
        FileFormat::Csv
    } else {
        sniff(&name, &head)
    };
    let rejoined: Stream = Box::new(BufReader::with_capacity(
        READ_BUFFER,
        Cursor::new(head).chain(stream),
    ));
    Ok((forced.unwrap_or(format), rejoined))
}

/// The format of an input from its name and first bytes.
pub(super) fn sniff(name: &str, head: &[u8]) -> FileFormat {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let Some(start) = head.iter().position(|b| !b.is_ascii_whitespace()) else {
        return FileFormat::Jsonl;
    };
    if head[start] == b'{' {
        if let Some(key) = first_key(&head[start + 1..]) {
            if key == "resourceSpans" || key == "resource_spans" {
                return FileFormat::OtlpJson;
            }
            if key == "data" {
                return FileFormat::Json;
            }
        }
    }
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        return FileFormat::Jsonl;
    }
    if head[start] != b'{' {
        return FileFormat::Json;
    }
    // One object per line is JSONL: per-line reading lets a broken line be rejected alone.
    let line_end = memchr::memchr(b'\n', &head[start..]).map(|at| start + at);
    let first_line = &head[start..line_end.unwrap_or(head.len())];
    let whole = serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
    if whole && (line_end.is_some() || head.len() < SNIFF_BYTES as usize) {
        FileFormat::Jsonl
    } else {
        FileFormat::Json
    }
}

/// The first key of an object whose `{` was just passed, when it is plain text.
fn first_key(rest: &[u8]) -> Option<String> {
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = rest[start..].strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats_from_content_first() {
        let span = br#"{"trace_unique_id": "t", "span_unique_id": "s"}"#;
        let two_lines = [&span[..], b"\n", &span[..], b"\n"].concat();
        assert_eq!(sniff("a.json", &two_lines), FileFormat::Jsonl);
        assert_eq!(sniff("a.json", span), FileFormat::Jsonl);
        assert_eq!(sniff("a.json", b"  [{\"a\": 1}]"), FileFormat::Json);
        assert_eq!(sniff("a.jsonl", b"[{\"a\": 1}]"), FileFormat::Jsonl);
        assert_eq!(sniff("a.json", b"{\"data\": [\n{}]}"), FileFormat::Json);
        assert_eq!(
            sniff("a.jsonl", b"{\"resourceSpans\": []}\n"),
            FileFormat::OtlpJson
        );
        assert_eq!(
            sniff("a.json", b"{\n  \"trace_unique_id\": \"t\",\n  \"x\": 1\n}"),
            FileFormat::Json
        );
        assert_eq!(
            sniff("a.json", b"\xEF\xBB\xBF{\"data\": []}"),
            FileFormat::Json
        );
        assert_eq!(sniff("a.json", b""), FileFormat::Jsonl);
    }

    #[test]
    fn directory_walks_pick_importable_names() {
        for name in [
            "a.json",
            "b.JSONL",
            "c.ndjson.gz",
            "d.json.zst",
            "e.parquet",
        ] {
            assert!(importable_name(name), "{name}");
        }
        for name in ["a.txt", "b.gz", "json", "c.json.bz2"] {
            assert!(!importable_name(name), "{name}");
        }
    }
}
