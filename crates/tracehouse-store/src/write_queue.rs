//! The bounded queue between request handlers and a backend's writer, the same for every
//! backend: what a request asks to change, how a handler waits for its commit, and how a
//! writer gathers the waiting requests into one group commit.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracehouse_core::{ProjectId, Span, StoreError, TraceId, WriteReceipt};

/// Spans to write, in whatever form a backend's writer wants them (plain spans, or spans
/// with work done ahead on the request's thread).
pub(crate) trait SpanBatch {
    /// How many spans the batch writes.
    fn span_count(&self) -> usize;
}

impl SpanBatch for Vec<Span> {
    fn span_count(&self) -> usize {
        self.len()
    }
}

/// A change to commit.
pub(crate) enum WriteOp<B = Vec<Span>> {
    /// A backend's batch: spans to insert or replace (and for SQLite, also key changes).
    Change(B),
    /// Delete a trace and its spans.
    DeleteTrace(TraceId),
}

impl<B: SpanBatch> WriteOp<B> {
    /// What the change counts for against a group commit's span bound.
    pub(crate) fn weight(&self) -> usize {
        match self {
            WriteOp::Change(spans) => spans.span_count(),
            WriteOp::DeleteTrace(_) => 1,
        }
    }
}

/// One request's change and the channel its answer goes back on; `E` is the backend's error.
pub(crate) struct WriteJob<E, B = Vec<Span>> {
    pub(crate) project: ProjectId,
    pub(crate) op: WriteOp<B>,
    pub(crate) reply: oneshot::Sender<Result<WriteReceipt, E>>,
}

/// Hands a change to the writer and waits for its commit. A queue that stays full for
/// `enqueue_timeout` is reported as `queue_full` instead of buffering without bound; a writer
/// that is gone, as `stopped`.
pub(crate) async fn submit<E: Into<StoreError>, B>(
    writer: &mpsc::Sender<WriteJob<E, B>>,
    enqueue_timeout: Duration,
    project: ProjectId,
    op: WriteOp<B>,
    queue_full: fn() -> E,
    stopped: fn() -> E,
) -> Result<WriteReceipt, StoreError> {
    let (reply, answer) = oneshot::channel();
    let job = WriteJob { project, op, reply };
    match tokio::time::timeout(enqueue_timeout, writer.send(job)).await {
        Err(_) => return Err(queue_full().into()),
        Ok(Err(_)) => return Err(stopped().into()),
        Ok(Ok(())) => {}
    }
    match answer.await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(stopped().into()),
    }
}

/// `first` and whatever else is already waiting, up to `max_batch_spans` of weight: one group
/// commit's jobs, with their total weight.
pub(crate) fn gather<E, B: SpanBatch>(
    first: WriteJob<E, B>,
    jobs: &mut mpsc::Receiver<WriteJob<E, B>>,
    max_batch_spans: usize,
) -> (Vec<WriteJob<E, B>>, usize) {
    let mut weight = first.op.weight();
    let mut batch = vec![first];
    while weight < max_batch_spans {
        match jobs.try_recv() {
            Ok(job) => {
                weight += job.op.weight();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    (batch, weight)
}
