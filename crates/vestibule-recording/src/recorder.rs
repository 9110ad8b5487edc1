//! The hot path: one [`SessionRecorder`] per session channel.
//!
//! Each call encodes into the recorder's own buffer under the recorder's own
//! mutex (shared only with its writer task, which holds it just long enough to
//! swap buffers), so sessions never contend with each other. A call returns
//! `Err` when the bytes could not be taken; the gateway then must not forward
//! them and must end the session.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::RecordingError;
use crate::batch::{Batch, Payload};
use crate::digest::RecordingDigest;
use crate::events::{Encoder, Stream};
use crate::meta::{Location, Mode, Traffic};
use crate::store::RecordingStore;
use crate::writer::WriterEnd;

/// What the writer is asked to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Running,
    /// `finish()` was called.
    Finish,
    /// The recorder was dropped without `finish()`.
    Abandon,
}

/// State shared by a recorder and its writer task.
pub(crate) struct Shared {
    pub(crate) state: Mutex<Active>,
    pub(crate) wake: Notify,
    /// Notified by the writer after each write, for [`SessionRecorder::ready`].
    pub(crate) drained: Notify,
}

pub(crate) struct Active {
    /// Encoded events not yet handed to the writer.
    pub(crate) buf: Batch,
    /// Bytes the writer took and has not written yet.
    pub(crate) in_flight: usize,
    pub(crate) limit: usize,
    /// Buffer size at which the writer is woken before its next tick.
    pub(crate) wake_at: usize,
    pub(crate) woken: bool,
    pub(crate) start: Instant,
    pub(crate) enc: Encoder,
    pub(crate) traffic: Traffic,
    pub(crate) counts_written: Traffic,
    pub(crate) exit_status: Option<u32>,
    /// Bytes were refused (buffer limit): the recording cannot be complete.
    pub(crate) refused: bool,
    /// The writer failed; set by the writer.
    pub(crate) failed: bool,
    pub(crate) ending: Ending,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Active> {
        // A panic while holding this lock leaves plain buffers behind, which
        // are still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The outcome of a finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub id: String,
    /// The stored file's hash.
    pub digest: RecordingDigest,
    /// Size of the stored file.
    pub bytes: u64,
    /// Every byte handed to the recorder is in the file.
    pub complete: bool,
    pub location: Location,
    /// S3 storage: the upload has not succeeded yet; the file waits in the
    /// spool and the store's maintenance task retries it.
    pub upload_pending: bool,
}

/// Records one session channel. Methods take `&self` so both directions of a
/// pump can share it; `finish` consumes it.
pub struct SessionRecorder {
    pub(crate) shared: Arc<Shared>,
    pub(crate) writer: Option<JoinHandle<WriterEnd>>,
    pub(crate) store: RecordingStore,
    pub(crate) id: String,
    pub(crate) mode: Mode,
}

impl std::fmt::Debug for SessionRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecorder")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl SessionRecorder {
    /// The recording's id (for `play`, `export`, `sessions watch`).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Bytes from the target to the person (stdout, or the terminal).
    pub fn output(&self, data: &[u8]) -> Result<(), RecordingError> {
        self.data(Stream::Output, Payload::Borrowed(data))
    }

    /// Bytes from the target's extended data (stderr) stream.
    pub fn stderr(&self, data: &[u8]) -> Result<(), RecordingError> {
        self.data(Stream::Stderr, Payload::Borrowed(data))
    }

    /// Bytes from the person to the target. Kept only when the metadata asked
    /// for input recording (SFTP requests are always decoded, never kept).
    pub fn input(&self, data: &[u8]) -> Result<(), RecordingError> {
        self.data(Stream::Input, Payload::Borrowed(data))
    }

    /// [`SessionRecorder::output`] for a buffer the caller shares: binary
    /// output is then kept by reference until written, not copied.
    pub fn output_shared(&self, data: &Bytes) -> Result<(), RecordingError> {
        self.data(Stream::Output, Payload::Shared(data))
    }

    /// [`SessionRecorder::stderr`] for a shared buffer.
    pub fn stderr_shared(&self, data: &Bytes) -> Result<(), RecordingError> {
        self.data(Stream::Stderr, Payload::Shared(data))
    }

    /// [`SessionRecorder::input`] for a shared buffer.
    pub fn input_shared(&self, data: &Bytes) -> Result<(), RecordingError> {
        self.data(Stream::Input, Payload::Shared(data))
    }

    /// Wait until the recorder holds less than half its buffer limit. A pump
    /// that awaits this before taking the next message turns a slow disk into
    /// backpressure (through the SSH window) instead of a session that ends
    /// at the limit. Returns at once in the steady state, and when the
    /// recorder has failed (the next call reports it).
    pub async fn ready(&self) {
        loop {
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a write finishing in between
            // is not missed.
            drained.as_mut().enable();
            {
                let a = self.shared.lock();
                if a.buf.len() + a.in_flight < a.limit / 2
                    || a.failed
                    || a.refused
                    || a.ending != Ending::Running
                {
                    return;
                }
            }
            drained.await;
        }
    }

    /// The person's terminal changed size.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), RecordingError> {
        self.event(|enc, t, buf| enc.resize(t, cols, rows, buf), |_| ())
    }

    /// The target reported the command's exit status.
    pub fn exit_status(&self, status: u32) -> Result<(), RecordingError> {
        self.event(
            |enc, t, buf| enc.exit_status(t, status, buf),
            |a| a.exit_status = Some(status),
        )
    }

    fn data(&self, stream: Stream, data: Payload<'_>) -> Result<(), RecordingError> {
        let len = data.as_slice().len() as u64;
        if len == 0 {
            return Ok(());
        }
        self.event(
            |enc, t, buf| enc.data(t, stream, data, buf),
            |a| a.traffic.add(stream, len),
        )
    }

    /// Encode under the lock; `accepted` runs under the same lock once the
    /// bytes are in.
    fn event(
        &self,
        encode: impl FnOnce(&mut Encoder, Duration, &mut Batch),
        accepted: impl FnOnce(&mut Active),
    ) -> Result<(), RecordingError> {
        let mut guard = self.shared.lock();
        let a = &mut *guard;
        if a.failed {
            return Err(RecordingError::Failed);
        }
        if a.refused || a.ending != Ending::Running {
            return Err(RecordingError::BufferFull { limit: a.limit });
        }
        let mark = a.buf.mark();
        encode(&mut a.enc, a.start.elapsed(), &mut a.buf);
        if a.buf.len() + a.in_flight > a.limit {
            a.buf.truncate(mark);
            a.refused = true;
            return Err(RecordingError::BufferFull { limit: a.limit });
        }
        accepted(a);
        let wake = !a.woken && a.buf.len() >= a.wake_at;
        if wake {
            a.woken = true;
        }
        drop(guard);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// End the recording: write what is buffered, sync, hash, record the
    /// metadata, and upload when the store is S3. An upload that fails is not
    /// an error here: the file stays in the spool (`upload_pending`).
    pub async fn finish(mut self) -> Result<RecordingSummary, RecordingError> {
        let end = self.stop(Ending::Finish).await;
        let (problem, traffic, exit_status) = {
            let a = self.shared.lock();
            let problem = a.refused.then(|| {
                format!(
                    "bytes refused: more than {} bytes waited for storage",
                    a.limit
                )
            });
            (problem, a.traffic, a.exit_status)
        };
        self.store
            .finalize(&self.id, end, problem, traffic, exit_status)
            .await
    }

    async fn stop(&mut self, how: Ending) -> WriterEnd {
        self.shared.lock().ending = how;
        self.shared.wake.notify_one();
        match self.writer.take() {
            Some(handle) => handle
                .await
                .unwrap_or_else(|e| WriterEnd::lost(e.to_string())),
            None => WriterEnd::lost("writer already stopped".into()),
        }
    }
}

impl Drop for SessionRecorder {
    fn drop(&mut self) {
        let Some(handle) = self.writer.take() else {
            return;
        };
        // Dropped without finish (a panic, or a forgotten call): write what
        // is buffered and mark the recording incomplete. Without a runtime the
        // next store open does it instead.
        self.shared.lock().ending = Ending::Abandon;
        self.shared.wake.notify_one();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let id = std::mem::take(&mut self.id);
        let shared = self.shared.clone();
        rt.spawn(async move {
            let end = handle
                .await
                .unwrap_or_else(|e| WriterEnd::lost(e.to_string()));
            let (traffic, exit_status) = {
                let a = shared.lock();
                (a.traffic, a.exit_status)
            };
            let problem = Some("the recorder was dropped before the session finished".into());
            if let Err(e) = store
                .finalize(&id, end, problem, traffic, exit_status)
                .await
            {
                tracing::warn!(recording = %id, error = %e, "could not close an abandoned recording");
            }
        });
    }
}
