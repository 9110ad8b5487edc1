//! Following a live recording read-only (`sessions watch`): tail -f on the
//! file until its metadata leaves state "recording" or its writer is gone.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use tokio::io::AsyncReadExt;

use crate::RecordingError;
use crate::meta::{Location, RecordingInfo, State, meta_path, read_meta};
use crate::store::{RecordingStore, blocking};

/// How often an idle live recording is polled.
const POLL: Duration = Duration::from_millis(200);

/// A recording's content as it grows.
pub struct Follower {
    info: RecordingInfo,
    source: Source,
}

enum Source {
    Live {
        file: tokio::fs::File,
        path: PathBuf,
        meta: PathBuf,
        buf: Vec<u8>,
        ended: bool,
    },
    Stored(BoxStream<'static, Result<Bytes, RecordingError>>),
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("id", &self.info.id)
            .finish_non_exhaustive()
    }
}

/// Still written by a live process: the metadata says so and the writer's
/// lock is held.
fn still_recording(meta: &Path, path: &Path) -> Result<bool, RecordingError> {
    if read_meta(meta)?.state != State::Recording {
        return Ok(false);
    }
    let f = File::open(path).map_err(|e| RecordingError::io("open", path, e))?;
    Ok(match f.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(e)) => return Err(RecordingError::io("lock", path, e)),
    })
}

impl RecordingStore {
    /// Follow a recording (by id, or the newest of a session id) from its
    /// beginning. A finished one is simply read to its end.
    pub async fn follow(&self, id_or_session: &str) -> Result<Follower, RecordingError> {
        let info = self.find(id_or_session).await?;
        let source = match &info.location {
            Location::Local { path } if info.state == State::Recording => Source::Live {
                file: tokio::fs::File::open(path)
                    .await
                    .map_err(|e| RecordingError::io("open", path, e))?,
                path: path.clone(),
                meta: meta_path(self.dir(), &info.id),
                buf: vec![0u8; 64 << 10],
                ended: false,
            },
            _ => Source::Stored(self.content(&info).await?),
        };
        Ok(Follower { info, source })
    }
}

impl Follower {
    /// The metadata as it was when following began.
    pub fn info(&self) -> &RecordingInfo {
        &self.info
    }

    /// The next bytes of the file; None once the recording has ended and
    /// everything has been read.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RecordingError> {
        match &mut self.source {
            Source::Stored(s) => s.try_next().await,
            Source::Live {
                file,
                path,
                meta,
                buf,
                ended,
            } => loop {
                let n = file
                    .read(buf)
                    .await
                    .map_err(|e| RecordingError::io("read", path, e))?;
                if n > 0 {
                    return Ok(Some(Bytes::copy_from_slice(&buf[..n])));
                }
                if *ended {
                    return Ok(None);
                }
                let (m, p) = (meta.clone(), path.clone());
                if !blocking(move || still_recording(&m, &p)).await? {
                    // One more read drains what the last flush wrote.
                    *ended = true;
                    continue;
                }
                tokio::time::sleep(POLL).await;
            },
        }
    }
}
