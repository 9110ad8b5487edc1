//! The writer task and its handle. One task owns the log; callers queue
//! events on a bounded channel. The task takes everything queued (up to a
//! batch limit), writes it, syncs once and only then acknowledges every event
//! of the batch, so many concurrent `append`s cost one sync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::batch::{Ack, Batch, Command, Control, ShutdownAck};
use crate::index::AuditIndex;
use crate::indexer::{self, IndexProgress};
use crate::key::AuditKey;
use crate::logstate::{CommitFailure, CommitOutcome, LogOptions, LogState};
use crate::{AuditError, AuditEvent};

/// How the writer batches, checkpoints and rotates.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Sign a checkpoint after this many events...
    pub checkpoint_every: u64,
    /// ...or this long after the first event not yet covered by one.
    pub checkpoint_interval: Duration,
    /// Start a new file once the current one reaches this size.
    pub max_file_bytes: u64,
    /// Most events written (and synced) together.
    pub max_batch: usize,
    /// Events that may wait for the writer; `append` waits for room beyond
    /// this, `record` drops.
    pub queue_capacity: usize,
    /// How long a batch of `record` events alone (nobody waits on them)
    /// stays open for more before it is written and synced. A connection's
    /// events then share a sync or two instead of one each; an `append`, a
    /// checkpoint or a shutdown closes the batch at once.
    pub record_linger: Duration,
    /// Where committed events are indexed for search, if anywhere. A task
    /// follows the durable head, so the database never delays a commit.
    pub index: Option<AuditIndex>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            max_file_bytes: 64 * 1024 * 1024,
            max_batch: 1024,
            queue_capacity: 8192,
            record_linger: DEFAULT_RECORD_LINGER,
            index: None,
        }
    }
}

/// Long enough for the events at a session's end (ended, recording stored)
/// to share a commit, short enough that a SIEM sees them at once.
const DEFAULT_RECORD_LINGER: Duration = Duration::from_millis(50);

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Events written and synced since start.
    pub events_written: u64,
    /// Group commits (syncs) since start.
    pub batches: u64,
    /// The last durable seq.
    pub seq: u64,
    /// Checkpoints signed since start.
    pub checkpoints: u64,
    /// `record` events dropped because the queue was full or the writer gone.
    pub dropped: u64,
    /// Events whose batch could not be made durable.
    pub failed: u64,
    /// Head witness replacements that failed (the log itself was fine).
    pub witness_failures: u64,
    /// The last seq in the search index (0 without one).
    pub indexed_seq: u64,
    /// Failed attempts to index (each retried).
    pub index_failures: u64,
}

#[derive(Default)]
struct Counters {
    events_written: AtomicU64,
    batches: AtomicU64,
    seq: AtomicU64,
    checkpoints: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    witness_failures: AtomicU64,
    index: Arc<IndexProgress>,
}

/// Starts the writer task.
pub struct AuditWriter;

impl AuditWriter {
    /// Open (or create) the log in `dir`, continue its chain, and start the
    /// task that owns it. The task ends after [`AuditHandle::shutdown`] or
    /// when every handle is dropped, signing a last checkpoint either way.
    pub async fn spawn(
        dir: impl Into<PathBuf>,
        key: AuditKey,
        options: WriterOptions,
    ) -> Result<(AuditHandle, JoinHandle<Result<(), AuditError>>), AuditError> {
        let dir = dir.into();
        let key = Arc::new(key);
        let log_options = LogOptions {
            checkpoint_every: options.checkpoint_every.max(1),
            max_file_bytes: options.max_file_bytes.max(1),
        };
        let opened = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || LogState::open(&dir, key, log_options))
                .await
                .map_err(|_| AuditError::WriterStopped)??
        };
        Ok(Self::start(dir, opened, options).await)
    }

    async fn start(
        dir: PathBuf,
        state: LogState,
        options: WriterOptions,
    ) -> (AuditHandle, JoinHandle<Result<(), AuditError>>) {
        let counters = Arc::new(Counters::default());
        counters.seq.store(state.seq(), Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (head_tx, head_rx) = watch::channel(state.seq());
        let indexer = options.index.clone().map(|index| {
            tokio::spawn(indexer::follow(
                index,
                dir.clone(),
                head_rx.clone(),
                counters.index.clone(),
            ))
        });
        let handle = AuditHandle {
            tx,
            counters: counters.clone(),
            head: head_rx,
            dir,
        };
        let task = tokio::spawn(run(state, rx, counters, head_tx, options, indexer));
        (handle, task)
    }

    #[cfg(test)]
    pub(crate) async fn spawn_with_state(
        dir: PathBuf,
        state: LogState,
        options: WriterOptions,
    ) -> (AuditHandle, JoinHandle<Result<(), AuditError>>) {
        Self::start(dir, state, options).await
    }
}

/// Cheap to clone; every clone queues onto the same writer.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    head: watch::Receiver<u64>,
    dir: PathBuf,
}

impl AuditHandle {
    /// Write `event` and return its seq once it is on disk and synced. An
    /// error means the event is not in the log.
    pub async fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let prepared = prepare(&event)?;
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Event {
                event: prepared,
                ack: Some(ack),
            })
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        done.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Queue `event` without waiting, for events whose durability need not
    /// precede anything. A full queue drops the event and counts it.
    pub fn record(&self, event: AuditEvent) {
        let queued = prepare(&event).ok().is_some_and(|prepared| {
            self.tx
                .try_send(Command::Event {
                    event: prepared,
                    ack: None,
                })
                .is_ok()
        });
        if !queued {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events `record` could not queue.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Sign a checkpoint now (after everything queued before this call);
    /// returns the seq of the last checkpoint.
    pub async fn checkpoint(&self) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint(ack))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        done.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Write everything queued, sign a final checkpoint and stop the writer.
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Shutdown(ack))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        done.await.map_err(|_| AuditError::WriterStopped)?
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WriterStats {
            events_written: load(&c.events_written),
            batches: load(&c.batches),
            seq: load(&c.seq),
            checkpoints: load(&c.checkpoints),
            dropped: load(&c.dropped),
            failed: load(&c.failed),
            witness_failures: load(&c.witness_failures),
            indexed_seq: load(&c.index.indexed),
            index_failures: load(&c.index.failures),
        }
    }

    /// The last durable seq, updated after every group commit; sinks wait on
    /// it.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn prepare(event: &AuditEvent) -> Result<String, AuditError> {
    let value = serde_json::to_value(event)
        .map_err(|e| AuditError::Config(format!("cannot encode audit event: {e}")))?;
    Ok(crate::chain::canonical(&value))
}

async fn run(
    state: LogState,
    rx: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
    head: watch::Sender<u64>,
    options: WriterOptions,
    indexer: Option<JoinHandle<()>>,
) -> Result<(), AuditError> {
    let (result, shutdown) = run_loop(state, rx, &counters, &head, &options).await;
    // Closing the head lets the indexer make its last pass; a clean shutdown
    // waits a little for it so the index is complete when the process ends.
    drop(head);
    if let Some(task) = indexer
        && tokio::time::timeout(INDEX_DRAIN, task).await.is_err()
    {
        tracing::warn!("the audit index is still catching up; it continues at the next start");
    }
    if let Some((ack, outcome)) = shutdown {
        let _ = ack.send(outcome);
    }
    result
}

const INDEX_DRAIN: Duration = Duration::from_secs(5);

async fn run_loop(
    state: LogState,
    mut rx: mpsc::Receiver<Command>,
    counters: &Counters,
    head: &watch::Sender<u64>,
    options: &WriterOptions,
) -> (
    Result<(), AuditError>,
    Option<(ShutdownAck, Result<(), AuditError>)>,
) {
    let mut state = Some(state);
    let max_batch = options.max_batch.max(1);
    let mut unsigned_since: Option<Instant> = None;
    loop {
        let pending = state.as_ref().is_some_and(|s| s.since_checkpoint() > 0);
        if pending && unsigned_since.is_none() {
            unsigned_since = Some(Instant::now());
        }
        let deadline = unsigned_since.map(|t| t + options.checkpoint_interval);
        let first = match deadline {
            Some(deadline) => tokio::select! {
                command = rx.recv() => Some(command),
                () = tokio::time::sleep_until(deadline) => None,
            },
            None => Some(rx.recv().await),
        };
        let timer = first.is_none();
        let mut closed = matches!(first, Some(None));
        let mut batch = Batch::default();
        if let Some(Some(command)) = first {
            let linger_until = Instant::now() + options.record_linger;
            batch.take(command);
            closed = batch.gather(&mut rx, max_batch, linger_until).await;
        }
        let Batch {
            events,
            acks,
            control,
        } = batch;
        let force_checkpoint = timer || closed || control.is_some();

        let Some(log) = state.take() else {
            return (Err(AuditError::WriterStopped), None);
        };
        let Ok((log, result)) = tokio::task::spawn_blocking(move || {
            let mut log = log;
            let result = log.commit(&events, force_checkpoint);
            (log, result)
        })
        .await
        else {
            return (Err(AuditError::WriterStopped), None);
        };
        let last_checkpoint = log.last_checkpoint();
        state = Some(log);

        let failure = match result {
            Ok(outcome) => {
                if outcome.checkpoint || timer {
                    unsigned_since = None;
                }
                acknowledge(&outcome, acks, counters, head);
                None
            }
            Err(failure) => {
                counters
                    .failed
                    .fetch_add(acks.len() as u64, Ordering::Relaxed);
                tracing::error!(file = %failure.path, error = %failure.source, events = acks.len(), "audit events not durable");
                for ack in acks.into_iter().flatten() {
                    let _ = ack.send(Err(failure.to_error()));
                }
                Some(failure)
            }
        };
        match control {
            Some(Control::Checkpoint(ack)) => {
                let _ = ack.send(match &failure {
                    None => Ok(last_checkpoint),
                    Some(f) => Err(f.to_error()),
                });
            }
            Some(Control::Shutdown(ack)) => {
                return (Ok(()), Some((ack, shutdown_result(failure.as_ref()))));
            }
            None => {}
        }
        if closed {
            return (Ok(()), None);
        }
    }
}

fn shutdown_result(failure: Option<&CommitFailure>) -> Result<(), AuditError> {
    match failure {
        None => Ok(()),
        Some(f) => Err(f.to_error()),
    }
}

fn acknowledge(
    outcome: &CommitOutcome,
    acks: Vec<Option<Ack>>,
    counters: &Counters,
    head: &watch::Sender<u64>,
) {
    let written = outcome.events.len() as u64;
    let seq = outcome
        .events
        .last()
        .map(|(seq, _)| *seq)
        .unwrap_or_else(|| counters.seq.load(Ordering::Relaxed));
    counters
        .events_written
        .fetch_add(written, Ordering::Relaxed);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.seq.store(seq, Ordering::Relaxed);
    if outcome.checkpoint {
        counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(e) = &outcome.witness_error {
        counters.witness_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "cannot replace the audit head witness");
    }
    for (ack, (seq, _)) in acks.into_iter().zip(&outcome.events) {
        if let Some(ack) = ack {
            let _ = ack.send(Ok(*seq));
        }
    }
    head.send_replace(seq);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logstate::Fault;
    use crate::{Action, Outcome};

    #[tokio::test]
    async fn a_failed_commit_reaches_append_callers() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let options = LogOptions {
            checkpoint_every: 100,
            max_file_bytes: 1 << 20,
        };
        let mut state = LogState::open(dir.path(), key, options).unwrap();
        state.fault = Some(Fault::Write);
        let (handle, task) =
            AuditWriter::spawn_with_state(dir.path().to_owned(), state, WriterOptions::default())
                .await;
        let event = || AuditEvent::new(Action::SessionStart, Outcome::Success);
        let err = handle.append(event()).await.unwrap_err();
        assert!(
            matches!(err, AuditError::Commit { what: "write", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not durable"), "{err}");
        assert_eq!(handle.append(event()).await.unwrap(), 1);
        let stats = handle.stats();
        assert_eq!((stats.failed, stats.events_written, stats.seq), (1, 1, 1));
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn records_wait_for_company_and_an_append_takes_them_along() {
        let dir = tempfile::tempdir().unwrap();
        let options = WriterOptions {
            record_linger: Duration::from_secs(1),
            ..WriterOptions::default()
        };
        let (handle, task) = AuditWriter::spawn(dir.path(), AuditKey::generate(), options)
            .await
            .unwrap();
        let event = || AuditEvent::new(Action::SessionStart, Outcome::Success);
        handle.record(event());
        tokio::time::sleep(Duration::from_millis(20)).await;
        handle.record(event());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(handle.stats().batches, 0, "nothing written while lingering");
        let started = std::time::Instant::now();
        assert_eq!(handle.append(event()).await.unwrap(), 3);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the append did not linger"
        );
        let stats = handle.stats();
        assert_eq!((stats.batches, stats.events_written), (1, 3));

        handle.record(event());
        let mut head = handle.head();
        tokio::time::timeout(Duration::from_secs(5), head.wait_for(|seq| *seq == 4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            handle.stats().batches,
            2,
            "a lone record is written after the linger"
        );
        handle.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    }
}
