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

/// How long a writer may hold a small batch open for more requests before inserting it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fill {
    /// The weight worth waiting for.
    pub(crate) spans: usize,
    /// The longest a batch is held open.
    pub(crate) linger: Duration,
}

/// Grows `batch` towards `fill.spans` while requests keep arriving, for at most `fill.linger`.
///
/// Only a batch that already holds several requests waits: that is the sign of concurrent
/// senders whose next requests are on their way, while a lone request (a quiet server, a
/// client calling synchronously) is written at once. Waiting also stops as soon as a quarter
/// of the linger passes with nothing new, since then every sender is waiting on this batch.
pub(crate) async fn fill_up<E, B: SpanBatch>(
    batch: &mut Vec<WriteJob<E, B>>,
    weight: &mut usize,
    jobs: &mut mpsc::Receiver<WriteJob<E, B>>,
    fill: Fill,
) {
    if batch.len() < 2 || fill.linger.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + fill.linger;
    let quiet_gap = fill.linger / 4;
    while *weight < fill.spans {
        let wait_until = deadline.min(tokio::time::Instant::now() + quiet_gap);
        match tokio::time::timeout_at(wait_until, jobs.recv()).await {
            Ok(Some(job)) => {
                *weight += job.op.weight();
                batch.push(job);
            }
            Ok(None) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spans: usize) -> WriteJob<(), Vec<Span>> {
        let (reply, _) = oneshot::channel();
        let span = tracehouse_core::testing::span("t", "s", None, serde_json::json!({}));
        WriteJob {
            project: ProjectId(1),
            op: WriteOp::Change(vec![span; spans]),
            reply,
        }
    }

    const FILL: Fill = Fill {
        spans: 300,
        linger: Duration::from_millis(400),
    };

    #[tokio::test(start_paused = true)]
    async fn a_lone_request_is_written_at_once() {
        let (_sender, mut jobs) = mpsc::channel(8);
        let mut batch = vec![job(100)];
        let mut weight = 100;
        let started = tokio::time::Instant::now();
        fill_up(&mut batch, &mut weight, &mut jobs, FILL).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(weight, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_wait_until_the_batch_is_full() {
        let (sender, mut jobs) = mpsc::channel(8);
        let mut batch = vec![job(100), job(100)];
        let mut weight = 200;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = sender.send(job(100)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Past the fill: left for the next batch.
            let _ = sender.send(job(100)).await;
            std::future::pending::<()>().await;
        });
        let started = tokio::time::Instant::now();
        fill_up(&mut batch, &mut weight, &mut jobs, FILL).await;
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!((batch.len(), weight), (3, 300));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_stops_when_nothing_arrives_for_a_quarter_of_the_linger() {
        let (_sender, mut jobs) = mpsc::channel(8);
        let mut batch = vec![job(100), job(100)];
        let mut weight = 200;
        let started = tokio::time::Instant::now();
        fill_up(&mut batch, &mut weight, &mut jobs, FILL).await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(weight, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_is_cut_off_at_the_linger() {
        let (sender, mut jobs) = mpsc::channel(64);
        let mut batch = vec![job(1), job(1)];
        let mut weight = 2;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(30)).await;
                if sender.send(job(1)).await.is_err() {
                    return;
                }
            }
        });
        let started = tokio::time::Instant::now();
        fill_up(&mut batch, &mut weight, &mut jobs, FILL).await;
        assert_eq!(started.elapsed(), Duration::from_millis(400));
        assert_eq!(weight, 2 + 13);
    }
}
