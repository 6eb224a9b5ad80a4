//! WAL checkpoints on a thread of their own, so the writer only appends to the WAL.
//!
//! With SQLite's automatic checkpoints the committing connection copies WAL pages back into
//! the database file, and under ingest load that was a tenth of the writer thread's time:
//! time every request in the queue waited for. A passive checkpoint from another connection
//! runs beside the writer (WAL mode lets one checkpointer and one writer work at once), on
//! the core the writer is not using.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{SqliteError, Synchronous, configure};

/// Pause after a checkpoint: the hot pages of the indexes change in every commit, and copying
/// them back after each one would write them over and over.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// WAL pages at which the writer checkpoints by itself. Only reached if this thread cannot
/// keep up (a reader pinning an old snapshot, say); it bounds the WAL file all the same.
pub(crate) const WRITER_FALLBACK_PAGES: i64 = 65_536;

/// The writer's side: tells the checkpointer that a commit added to the WAL. Dropping it
/// stops the checkpointer after one last checkpoint.
pub(crate) struct CommitSignal(SyncSender<()>);

impl CommitSignal {
    pub(crate) fn committed(&self) {
        // A full channel already holds a pending wake-up; one is enough.
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Opens the checkpointer's connection and starts its thread.
pub(crate) fn start(path: &Path, synchronous: Synchronous) -> Result<CommitSignal, SqliteError> {
    let connection = Connection::open(path)?;
    // The same `synchronous` as the writer: with FULL the database file is fsynced after
    // each checkpoint, before the WAL frames it copied may be overwritten.
    configure(&connection, synchronous)?;
    let (signal, commits) = sync_channel(1);
    std::thread::Builder::new()
        .name("wal-checkpoint".to_owned())
        .spawn(move || run(&connection, &commits))
        .map_err(|e| SqliteError::Thread(format!("cannot start checkpoint thread: {e}")))?;
    Ok(CommitSignal(signal))
}

/// Least time between two warnings of failed checkpoints: on a full disk every checkpoint
/// fails, ten times a second, and one line a minute says as much.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

fn run(connection: &Connection, commits: &Receiver<()>) {
    let mut last_warning: Option<Instant> = None;
    while commits.recv().is_ok() {
        checkpoint(connection, &mut last_warning);
        std::thread::sleep(CHECKPOINT_INTERVAL);
    }
    checkpoint(connection, &mut last_warning);
}

fn checkpoint(connection: &Connection, last_warning: &mut Option<Instant>) {
    // PASSIVE never waits for readers or the writer: what it cannot copy now, the next one will.
    if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        if last_warning.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL) {
            *last_warning = Some(Instant::now());
            tracing::warn!(error = %error, "WAL checkpoint failed; the WAL grows until one succeeds");
        }
    }
}
