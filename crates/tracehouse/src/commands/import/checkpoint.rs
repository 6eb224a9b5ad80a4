//! The checkpoint of an import: how far it has committed, so the same command run again
//! continues there instead of starting over.
//!
//! It lives in `.tracehouse-import-<hash>.json` beside the database (with `--url`, in the current
//! directory), where `<hash>` identifies the command: the inputs, the format, the target and
//! the project. It is rewritten (atomically, by rename) after every committed batch and removed
//! when the import completes. If an input changed since it was written, the import starts over.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::inputs::{FileFormat, Source};
use super::scan::ScanPosition;

const VERSION: u32 = 1;

/// A point between two items of the input list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Position {
    /// Index of the input in the expanded list.
    pub(super) file: usize,
    /// That input's format, known once it was opened (a resumed import does not detect again).
    pub(super) format: Option<FileFormat>,
    /// Where in the (decompressed) input.
    pub(super) scan: ScanPosition,
    /// The index the next item of this input gets.
    pub(super) next_index: u64,
}

impl Position {
    /// The start of input `file`.
    pub(super) fn start_of(file: usize) -> Self {
        Self {
            file,
            format: None,
            scan: ScanPosition::START,
            next_index: 0,
        }
    }
}

/// An input as it was when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct InputStamp {
    path: String,
    size: u64,
    modified_ns: u128,
}

/// Size and modification time of every input, to notice inputs that changed.
pub(super) fn stamps(sources: &[Source]) -> Vec<InputStamp> {
    sources
        .iter()
        .map(|source| {
            let metadata = match source {
                Source::File(path) => std::fs::metadata(path).ok(),
                Source::Stdin => None,
            };
            InputStamp {
                path: source.display(),
                size: metadata.as_ref().map_or(0, |m| m.len()),
                modified_ns: metadata
                    .and_then(|m| m.modified().ok())
                    .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |elapsed| elapsed.as_nanos()),
            }
        })
        .collect()
}

/// What an interrupted import had done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    pub(super) version: u32,
    /// Identifies the command (see the module docs).
    pub(super) command: String,
    pub(super) inputs: Vec<InputStamp>,
    /// Everything before this is committed.
    pub(super) position: Position,
    /// Batches after `position` that were acknowledged out of order (HTTP imports send several
    /// at once), numbered from 0 for the first batch after `position`. Batches are cut the same
    /// way on every run with the same `batch_size`, so they are recognised and not sent again.
    pub(super) acked_ahead: Vec<u64>,
    pub(super) batch_size: u32,
    /// Totals so far, including the batches of `acked_ahead`.
    pub(super) items: u64,
    pub(super) imported: u64,
    pub(super) rejected: u64,
    pub(super) bytes: u64,
    /// Length of the rejects file that matches these totals; a resumed run cuts it back to this.
    pub(super) rejects_len: u64,
}

impl Checkpoint {
    pub(super) fn new(command: String, inputs: Vec<InputStamp>, batch_size: u32) -> Self {
        Self {
            version: VERSION,
            command,
            inputs,
            position: Position::start_of(0),
            acked_ahead: Vec::new(),
            batch_size,
            items: 0,
            imported: 0,
            rejected: 0,
            bytes: 0,
            rejects_len: 0,
        }
    }
}

/// A hash naming the command, so that only the same import resumes from a checkpoint.
pub(super) fn command_hash(
    sources: &[Source],
    format: &str,
    target: &str,
    project: &str,
) -> String {
    let mut hasher = Sha256::new();
    for part in [format, target, project] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for source in sources {
        hasher.update(source.display().as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// The default checkpoint file for a command hash in `directory`.
pub(super) fn default_path(directory: &Path, hash: &str) -> PathBuf {
    directory.join(format!(".tracehouse-import-{hash}.json"))
}

/// Reads a checkpoint; `None` when there is none. A file that cannot be parsed is an error, not
/// a silent restart: the user decides (`--restart`).
pub(super) fn load(path: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read checkpoint {}", path.display()));
        }
    };
    let checkpoint: Checkpoint = serde_json::from_str(&text).with_context(|| {
        format!(
            "checkpoint {} is not readable; remove it or pass --restart",
            path.display()
        )
    })?;
    Ok(Some(checkpoint))
}

/// Writes a checkpoint atomically: a crash leaves the old one or the new one, never half.
pub(super) fn save(path: &Path, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        serde_json::to_writer(&mut file, checkpoint)?;
        file.write_all(b"\n")?;
        std::fs::rename(&temporary, path)
    };
    write().with_context(|| format!("cannot write checkpoint {}", path.display()))
}

/// Removes a checkpoint once its import is complete.
pub(super) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_names_commands() {
        let dir = tempfile::tempdir().unwrap();
        let sources = vec![Source::File(dir.path().join("a.jsonl")), Source::Stdin];
        let hash = command_hash(&sources, "auto", "sqlite:/x", "default");
        assert_eq!(hash.len(), 16);
        assert_ne!(hash, command_hash(&sources, "auto", "sqlite:/y", "default"));
        let path = default_path(dir.path(), &hash);
        assert_eq!(load(&path).unwrap(), None);
        let mut checkpoint = Checkpoint::new(hash, stamps(&sources), 10);
        checkpoint.position.next_index = 7;
        save(&path, &checkpoint).unwrap();
        assert_eq!(load(&path).unwrap(), Some(checkpoint));
        remove(&path);
        assert_eq!(load(&path).unwrap(), None);
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path).is_err());
    }
}
