//! One task per sink: wait for the durable head to pass the cursor, read a
//! batch from the log, deliver it (retrying with backoff until it is
//! delivered), then move the cursor.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Export, Pacing, SinkConfig, StartAt, file, syslog, webhook};
use crate::AuditError;
use crate::event::export_value;
use crate::reader::{LogTail, Record};

const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// How often an idle sink looks at the log when the head it watches is gone.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The sinks running side by side.
pub struct SinkSet {
    running: Vec<Running>,
    stop: watch::Sender<bool>,
    /// The current durable head: a sink stuck retrying still has a backlog
    /// that grows with it.
    head: watch::Receiver<u64>,
}

struct Running {
    name: String,
    kind: &'static str,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    cursor: AtomicU64,
    delivered: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A sink's state, for metrics (`backlog` is the queue depth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub name: String,
    pub kind: &'static str,
    /// The last seq delivered.
    pub cursor: u64,
    /// The last durable seq.
    pub head: u64,
    /// Events durable but not yet delivered.
    pub backlog: u64,
    pub delivered: u64,
    /// Failed delivery attempts (each retried).
    pub failures: u64,
    pub last_error: Option<String>,
}

pub(crate) enum Deliverer {
    File(file::FileSink),
    Syslog(Box<syslog::SyslogSink>),
    Webhook(webhook::WebhookSink),
}

impl Deliverer {
    async fn deliver(&mut self, batch: &[Export]) -> Result<(), String> {
        match self {
            Deliverer::File(sink) => sink.deliver(batch).await,
            Deliverer::Syslog(sink) => sink.deliver(batch).await,
            Deliverer::Webhook(sink) => sink.deliver(batch).await,
        }
    }
}

impl SinkSet {
    /// Start every sink in `configs`, reading the log in `dir` and waking on
    /// `head` (from [`crate::AuditHandle::head`]).
    pub async fn spawn(
        dir: &Path,
        configs: &[SinkConfig],
        head: watch::Receiver<u64>,
    ) -> Result<Self, AuditError> {
        let cursors = dir.join("sinks");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cursors)
            .map_err(AuditError::io("cannot create", &cursors))?;
        let mut prepared = Vec::new();
        for config in configs {
            config.validate()?;
            let deliverer = match config {
                SinkConfig::File(c) => Deliverer::File(file::FileSink::new(c)),
                SinkConfig::Syslog(c) => Deliverer::Syslog(Box::new(syslog::SyslogSink::new(c)?)),
                SinkConfig::Webhook(c) => Deliverer::Webhook(webhook::WebhookSink::new(c)?),
            };
            let path = cursors.join(format!("{}.cursor", config.name()));
            let cursor = match read_cursor(&path)? {
                Some(cursor) => {
                    if cursor > *head.borrow() {
                        tracing::warn!(
                            sink = config.name(),
                            cursor,
                            head = *head.borrow(),
                            "sink cursor is past the end of the audit log (was the log replaced?); it sends nothing until the log passes it; delete {} to start over",
                            path.display()
                        );
                    }
                    cursor
                }
                None => {
                    let start = match config.pacing().start {
                        StartAt::Beginning => 0,
                        StartAt::End => *head.borrow(),
                    };
                    write_cursor(&path, start).map_err(AuditError::io("cannot write", &path))?;
                    start
                }
            };
            prepared.push((config, deliverer, path, cursor));
        }
        let (stop, stop_rx) = watch::channel(false);
        let running = prepared
            .into_iter()
            .map(|(config, deliverer, path, cursor)| {
                let counters = Arc::new(Counters::default());
                counters.cursor.store(cursor, Ordering::Relaxed);
                let job = Job {
                    name: config.name().to_owned(),
                    dir: dir.to_owned(),
                    cursor_path: path,
                    pacing: config.pacing(),
                    counters: counters.clone(),
                };
                let task = tokio::spawn(job.run(deliverer, cursor, head.clone(), stop_rx.clone()));
                Running {
                    name: config.name().to_owned(),
                    kind: config.kind(),
                    counters,
                    task,
                }
            })
            .collect();
        Ok(Self {
            running,
            stop,
            head,
        })
    }

    pub fn stats(&self) -> Vec<SinkStats> {
        let head = *self.head.borrow();
        self.running
            .iter()
            .map(|r| {
                let c = &r.counters;
                let cursor = c.cursor.load(Ordering::Relaxed);
                SinkStats {
                    name: r.name.clone(),
                    kind: r.kind,
                    cursor,
                    head,
                    backlog: head.saturating_sub(cursor),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    failures: c.failures.load(Ordering::Relaxed),
                    last_error: c.last_error.lock().ok().and_then(|e| e.clone()),
                }
            })
            .collect()
    }

    /// Let every sink deliver what it can within `grace` (stopping at the
    /// first failure), then stop them. What is left is sent after the next
    /// start.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(true);
        let deadline = Instant::now() + grace;
        for running in self.running {
            let mut task = running.task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

struct Job {
    name: String,
    dir: PathBuf,
    cursor_path: PathBuf,
    pacing: Pacing,
    counters: Arc<Counters>,
}

impl Job {
    async fn run(
        self,
        mut deliverer: Deliverer,
        mut cursor: u64,
        mut head: watch::Receiver<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tail = Some(LogTail::new(&self.dir, cursor));
        let mut head_alive = true;
        loop {
            let durable = *head.borrow_and_update();
            let stopping = *stop.borrow();
            if durable <= cursor {
                if stopping {
                    return;
                }
                self.wait_for_more(&mut head, &mut head_alive, &mut stop)
                    .await;
                continue;
            }
            if !stopping && durable - cursor < self.pacing.batch_size as u64 {
                self.let_batch_fill(cursor, &mut head, &mut head_alive, &mut stop)
                    .await;
            }
            let limit = *head.borrow();
            let Some(reader) = tail.take() else { return };
            let batch_size = self.pacing.batch_size;
            let Ok((reader, read)) = tokio::task::spawn_blocking(move || {
                let mut reader = reader;
                let read = reader.read(batch_size, limit);
                (reader, read)
            })
            .await
            else {
                return;
            };
            tail = Some(reader);
            let records = match read {
                Ok(records) if !records.is_empty() => records,
                Ok(_) => {
                    // Head is ahead but nothing readable: wait rather than spin.
                    if self.pause(IDLE_POLL, &mut stop).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    self.failed(format!("cannot read the audit log: {e}"));
                    if self.pause(self.pacing.max_backoff, &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            let batch: Vec<Export> = records.into_iter().map(export).collect();
            if !self.deliver(&mut deliverer, &batch, &mut stop).await {
                return;
            }
            let Some(last) = batch.last() else { continue };
            cursor = last.seq;
            let path = self.cursor_path.clone();
            let saved = tokio::task::spawn_blocking(move || write_cursor(&path, cursor))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(e) = saved {
                // Delivery happened; a stale cursor only means a resend.
                tracing::warn!(sink = %self.name, error = %e, "cannot save the sink cursor");
            }
            self.counters.cursor.store(cursor, Ordering::Relaxed);
            self.counters
                .delivered
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }

    /// Deliver until it works; false when told to stop first.
    async fn deliver(
        &self,
        deliverer: &mut Deliverer,
        batch: &[Export],
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut backoff = MIN_BACKOFF;
        loop {
            match deliverer.deliver(batch).await {
                Ok(()) => {
                    if let Ok(mut last) = self.counters.last_error.lock() {
                        *last = None;
                    }
                    return true;
                }
                Err(e) => {
                    self.failed(e);
                    if *stop.borrow() || self.pause(backoff, stop).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(self.pacing.max_backoff.max(MIN_BACKOFF));
                }
            }
        }
    }

    fn failed(&self, error: String) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(sink = %self.name, %error, "audit sink delivery failed; will retry");
        if let Ok(mut last) = self.counters.last_error.lock() {
            *last = Some(error);
        }
    }

    /// Sleep; true if told to stop meanwhile.
    async fn pause(&self, duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            changed = stop.changed() => changed.is_err() || *stop.borrow(),
        }
    }

    async fn wait_for_more(
        &self,
        head: &mut watch::Receiver<u64>,
        head_alive: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) {
        if *head_alive {
            tokio::select! {
                changed = head.changed() => *head_alive = changed.is_ok(),
                _ = stop.changed() => {}
            }
        } else {
            // The writer is gone; its final head is already in `head`.
            let _ = self.pause(IDLE_POLL, stop).await;
        }
    }

    async fn let_batch_fill(
        &self,
        cursor: u64,
        head: &mut watch::Receiver<u64>,
        head_alive: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) {
        if self.pacing.batch_interval.is_zero() || !*head_alive {
            return;
        }
        let deadline = Instant::now() + self.pacing.batch_interval;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                changed = head.changed() => {
                    if changed.is_err() {
                        *head_alive = false;
                        return;
                    }
                    if head.borrow().saturating_sub(cursor) >= self.pacing.batch_size as u64 {
                        return;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

fn export(record: Record) -> Export {
    Export {
        document: export_value(record.event, record.seq, &record.hash),
        seq: record.seq,
        hash: record.hash,
    }
}

fn read_cursor(path: &Path) -> Result<Option<u64>, AuditError> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            AuditError::Config(format!(
                "{} does not hold a seq; delete it to restart that sink from its `start`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::Io {
            what: "cannot read",
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// Replace the cursor atomically; synced so a crash never leaves it empty.
fn write_cursor(path: &Path, seq: u64) -> io::Result<()> {
    let tmp = path.with_extension("cursor.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(format!("{seq}\n").as_bytes())?;
    file.sync_data()?;
    fs::rename(&tmp, path)
}
