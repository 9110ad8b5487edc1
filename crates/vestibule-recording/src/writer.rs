//! The background writer of one recording: every flush interval, or sooner
//! when the buffer passes its wake mark, it swaps the recorder's buffer for an
//! empty one and writes the full one on the blocking pool, off the data path.
//!
//! The file it holds carries an exclusive flock for the recording's lifetime;
//! a store opened later (by a new gateway or the CLI) reads a free lock on a
//! recording still marked "recording" as its writer having died.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::batch::Batch;
use crate::digest::ContentHasher;
use crate::recorder::{Ending, Shared};
use crate::sink::Sink;

/// Buffer capacity a quiet recording keeps (each of the two it swaps). A
/// terminal's line or prompt fits; a screenful grows the buffer for a round
/// and the next quiet round hands the memory back, so a thousand idle sessions
/// do not each hold a page.
pub(crate) const IDLE_CAPACITY: usize = 1 << 10;

/// What the writer leaves when it stops.
#[derive(Debug)]
pub(crate) struct WriterEnd {
    /// Still open, so the lock holds until the metadata says how it ended.
    pub(crate) file: Option<File>,
    /// Bytes in the file.
    pub(crate) written: u64,
    /// The hash of what was written; None when a failed write may have left
    /// part of a buffer behind, so the file must be hashed from disk.
    pub(crate) hasher: Option<ContentHasher>,
    pub(crate) error: Option<String>,
}

impl WriterEnd {
    pub(crate) fn lost(why: String) -> WriterEnd {
        WriterEnd {
            file: None,
            written: 0,
            hasher: None,
            error: Some(why),
        }
    }
}

pub(crate) struct WriterSetup {
    /// The data file, holding the header (already written and hashed).
    pub(crate) sink: Sink,
    pub(crate) hasher: ContentHasher,
    pub(crate) interval: Duration,
    pub(crate) sync: bool,
}

struct Written {
    sink: Sink,
    hasher: ContentHasher,
    buf: Batch,
    result: std::io::Result<()>,
}

/// What a write round does besides appending.
#[derive(Clone, Copy)]
struct Round {
    /// Write a burst's partial last block through the page cache too.
    flush_tail: bool,
    /// This is a tick (not the end): a quiet interval ends the burst.
    tick: bool,
    /// fdatasync before returning (the last round).
    sync: bool,
}

fn write_out(mut sink: Sink, mut hasher: ContentHasher, buf: Batch, round: Round) -> Written {
    let result = sink
        .append(buf.len(), buf.pieces(), &mut hasher)
        .and_then(|()| {
            if round.flush_tail {
                sink.flush_tail(round.tick)
            } else {
                Ok(())
            }
        })
        .and_then(|()| {
            if round.sync {
                sink.file().sync_data()
            } else {
                Ok(())
            }
        });
    Written {
        sink,
        hasher,
        buf,
        result,
    }
}

/// The periodic fdatasync runs beside the writes (on a second descriptor of
/// the same file), so a slow disk flush never stops the buffer from draining.
struct Syncer {
    fd: Option<Arc<File>>,
    running: Option<JoinHandle<std::io::Result<()>>>,
    /// Bytes were written since the last sync started.
    dirty: bool,
}

impl Syncer {
    /// Collect a finished sync's result; start another if bytes await one.
    async fn tick(&mut self) -> Result<(), String> {
        if self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            self.collect().await?;
        }
        if self.running.is_none()
            && self.dirty
            && let Some(fd) = &self.fd
        {
            let fd = fd.clone();
            self.dirty = false;
            self.running = Some(tokio::task::spawn_blocking(move || fd.sync_data()));
        }
        Ok(())
    }

    async fn collect(&mut self) -> Result<(), String> {
        match self.running.take() {
            None => Ok(()),
            Some(h) => match h.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("syncing the recording: {e}")),
                Err(e) => Err(format!("recording sync task: {e}")),
            },
        }
    }
}

pub(crate) async fn run(shared: Arc<Shared>, setup: WriterSetup) -> WriterEnd {
    let WriterSetup {
        sink,
        hasher,
        interval,
        sync,
    } = setup;
    let mut syncer = Syncer {
        // Without a second descriptor, syncs happen only at the end.
        fd: if sync {
            sink.file().try_clone().ok().map(Arc::new)
        } else {
            None
        },
        running: None,
        dirty: false,
    };
    let mut sink = Some(sink);
    let mut hasher = Some(hasher);
    let mut spare = Batch::default();
    let mut error = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            () = shared.wake.notified() => false,
        };
        let ending = {
            let mut guard = shared.lock();
            let a = &mut *guard;
            let t = a.start.elapsed();
            if ticked || a.ending != Ending::Running {
                a.enc
                    .on_flush(t, a.traffic, &mut a.counts_written, &mut a.buf);
            }
            if a.ending != Ending::Running {
                a.enc.on_end(t, &mut a.buf);
            }
            std::mem::swap(&mut a.buf, &mut spare);
            a.in_flight = spare.len();
            a.woken = false;
            a.ending
        };
        let last = ending != Ending::Running;
        if last && let Err(e) = syncer.collect().await {
            error = Some(e);
        }
        let round = Round {
            // Only a burst leaves bytes in memory; quiet sessions skip this.
            flush_tail: (ticked || last) && sink.as_ref().is_some_and(Sink::staging),
            tick: !last,
            // The last write syncs inline: finish() reports it as stored.
            sync: last && sync,
        };
        if error.is_none() && (!spare.is_empty() || round.flush_tail || round.sync) {
            let (Some(f), Some(h)) = (sink.take(), hasher.take()) else {
                break;
            };
            let buf = std::mem::take(&mut spare);
            match tokio::task::spawn_blocking(move || write_out(f, h, buf, round)).await {
                Ok(w) => {
                    let n = w.buf.len() as u64;
                    spare = w.buf;
                    sink = Some(w.sink);
                    if let Err(e) = w.result {
                        error = Some(format!("writing the recording: {e}"));
                        // Part of the buffer may be on disk: hash the file later.
                    } else {
                        hasher = Some(w.hasher);
                        syncer.dirty |= n > 0 || round.flush_tail;
                    }
                }
                Err(e) => error = Some(format!("recording writer task: {e}")),
            }
        }
        if ticked
            && error.is_none()
            && let Err(e) = syncer.tick().await
        {
            error = Some(e);
        }
        spare.recycle(IDLE_CAPACITY);
        {
            let mut a = shared.lock();
            a.in_flight = 0;
            if error.is_some() {
                a.failed = true;
            }
        }
        shared.drained.notify_waiters();
        if let Some(e) = &error {
            tracing::error!(error = %e, "recording failed; its session will be ended");
            break;
        }
        if last {
            break;
        }
    }
    // Without the sink (its write task was lost) the hasher is gone too, and
    // the file is hashed from disk: `written` is not used then.
    let written = sink.as_ref().map_or(0, Sink::len);
    let direct_bytes = sink.as_ref().map_or(0, |s| s.direct_bytes);
    tracing::debug!(written, direct_bytes, "recording writer done");
    WriterEnd {
        file: sink.map(Sink::into_file),
        written,
        hasher,
        error,
    }
}
