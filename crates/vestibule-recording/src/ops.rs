//! Operations on stored recordings: list, look up, hold, verify, read,
//! export, and the retention sweep.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use chrono::Utc;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::RecordingError;
use crate::digest::{ContentHasher, HashAlgorithm, RecordingDigest};
use crate::meta::{self, Location, RecordingInfo, State, check_id, meta_path, update_meta};
use crate::store::{RecordingStore, blocking};

/// What `verify` found for one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum VerifyOutcome {
    Ok,
    /// The file changed since its hash was recorded.
    Mismatch {
        expected: RecordingDigest,
        actual: RecordingDigest,
    },
    /// The content cannot be read.
    Missing {
        reason: String,
    },
    /// Still being written: no hash yet.
    Unfinished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub id: String,
    #[serde(flatten)]
    pub outcome: VerifyOutcome,
}

impl RecordingStore {
    /// Every recording's metadata, oldest first.
    pub async fn list(&self) -> Result<Vec<RecordingInfo>, RecordingError> {
        let dir = self.inner.dir.clone();
        blocking(move || meta::list_meta(&dir)).await
    }

    /// Bytes of finished recordings waiting in the spool for object storage,
    /// from the set this process keeps (see `pending`): no I/O. An upload by
    /// another process shows here after this process's next retry.
    pub fn upload_backlog_bytes(&self) -> u64 {
        self.inner.pending.bytes()
    }

    pub async fn get(&self, id: &str) -> Result<RecordingInfo, RecordingError> {
        check_id(id)?;
        let path = meta_path(&self.inner.dir, id);
        let id = id.to_owned();
        blocking(move || {
            if !path.exists() {
                return Err(RecordingError::NotFound(id));
            }
            meta::read_meta(&path)
        })
        .await
    }

    /// A recording by its id, or the newest one of a session id.
    pub async fn find(&self, id_or_session: &str) -> Result<RecordingInfo, RecordingError> {
        if check_id(id_or_session).is_ok() {
            match self.get(id_or_session).await {
                Err(RecordingError::NotFound(_)) => {}
                other => return other,
            }
        }
        self.list()
            .await?
            .into_iter()
            .rev()
            .find(|i| i.session_id == id_or_session)
            .ok_or_else(|| RecordingError::NotFound(id_or_session.to_owned()))
    }

    /// Set or release the legal hold (the sweep never deletes a held recording).
    pub async fn set_hold(&self, id: &str, hold: bool) -> Result<RecordingInfo, RecordingError> {
        self.get(id).await?;
        let dir = self.inner.dir.clone();
        let id = id.to_owned();
        let info = blocking(move || Ok(update_meta(&dir, &id, |i| i.legal_hold = hold)?.1)).await?;
        self.put_meta_copy(&info).await;
        Ok(info)
    }

    /// The stored bytes of a recording, wherever they are, in chunks.
    pub async fn content(
        &self,
        info: &RecordingInfo,
    ) -> Result<BoxStream<'static, Result<Bytes, RecordingError>>, RecordingError> {
        match &info.location {
            Location::Local { path } => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| RecordingError::io("open", path, e))?;
                let path = path.clone();
                Ok(
                    stream::try_unfold((file, path), |(mut file, path)| async move {
                        let mut buf = vec![0u8; 256 << 10];
                        let n = file
                            .read(&mut buf)
                            .await
                            .map_err(|e| RecordingError::io("read", &path, e))?;
                        if n == 0 {
                            return Ok(None);
                        }
                        buf.truncate(n);
                        Ok(Some((Bytes::from(buf), (file, path))))
                    })
                    .boxed(),
                )
            }
            Location::S3 { key, .. } => match &self.inner.s3 {
                Some(s3) => s3.get(key).await,
                None => Err(RecordingError::Config(format!(
                    "recording {} is in S3 but recording.storage is not s3",
                    info.id
                ))),
            },
        }
    }

    /// The whole content in memory (for replay).
    pub async fn read_all(&self, info: &RecordingInfo) -> Result<Vec<u8>, RecordingError> {
        let mut out = Vec::with_capacity(info.bytes as usize);
        let mut s = self.content(info).await?;
        while let Some(chunk) = s.try_next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Copy a recording's content to a file; returns the bytes written.
    pub async fn export(&self, id: &str, to: &Path) -> Result<u64, RecordingError> {
        let info = self.get(id).await?;
        let mut s = self.content(&info).await?;
        let mut f = tokio::fs::File::create(to)
            .await
            .map_err(|e| RecordingError::io("create", to, e))?;
        let mut n = 0u64;
        while let Some(chunk) = s.try_next().await? {
            f.write_all(&chunk)
                .await
                .map_err(|e| RecordingError::io("write", to, e))?;
            n += chunk.len() as u64;
        }
        f.flush()
            .await
            .map_err(|e| RecordingError::io("write", to, e))?;
        Ok(n)
    }

    /// Recompute the hash of one recording, or of all when `id` is None, with
    /// the algorithm its stored digest names. A recording whose metadata
    /// cannot be read (a changed digest among them) is reported, not skipped.
    pub async fn verify(&self, id: Option<&str>) -> Result<Vec<VerifyReport>, RecordingError> {
        let (infos, unreadable) = match id {
            Some(id) => (vec![self.get(id).await?], Vec::new()),
            None => {
                let dir = self.inner.dir.clone();
                let listing = blocking(move || meta::list_meta_and_unreadable(&dir)).await?;
                (listing.infos, listing.unreadable)
            }
        };
        let mut reports = Vec::with_capacity(infos.len() + unreadable.len());
        for (id, error) in unreadable {
            reports.push(VerifyReport {
                id,
                outcome: VerifyOutcome::Missing {
                    reason: format!("its metadata cannot be read: {error}"),
                },
            });
        }
        for info in infos {
            let outcome = match info.digest {
                None => VerifyOutcome::Unfinished,
                Some(expected) => match self.hash_content(&info, expected.algorithm()).await {
                    Ok(actual) if actual == expected => VerifyOutcome::Ok,
                    Ok(actual) => VerifyOutcome::Mismatch { expected, actual },
                    Err(e) => VerifyOutcome::Missing {
                        reason: e.to_string(),
                    },
                },
            };
            reports.push(VerifyReport {
                id: info.id,
                outcome,
            });
        }
        Ok(reports)
    }

    async fn hash_content(
        &self,
        info: &RecordingInfo,
        algorithm: HashAlgorithm,
    ) -> Result<RecordingDigest, RecordingError> {
        let mut h = ContentHasher::new(algorithm);
        let mut s = self.content(info).await?;
        while let Some(chunk) = s.try_next().await? {
            h.update(&chunk);
        }
        Ok(h.finish())
    }

    /// Delete finished recordings that ended more than `retention_days` ago,
    /// except those on legal hold. Each deletion is appended to `sweep.log`
    /// in the recording directory. Returns the deleted ids.
    pub async fn sweep(&self, retention_days: u32) -> Result<Vec<String>, RecordingError> {
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(retention_days));
        let mut deleted = Vec::new();
        for info in self.list().await? {
            if info.legal_hold
                || info.state == State::Recording
                || info.ended.unwrap_or(info.started) >= cutoff
            {
                continue;
            }
            if let Err(e) = self.delete(&info).await {
                tracing::warn!(recording = %info.id, error = %e, "retention could not delete a recording");
                continue;
            }
            tracing::info!(recording = %info.id, person = %info.person, target = %info.target, "recording deleted by retention");
            deleted.push(info.id);
        }
        Ok(deleted)
    }

    async fn delete(&self, info: &RecordingInfo) -> Result<(), RecordingError> {
        if let Location::S3 { key, .. } = &info.location {
            let s3 = self.inner.s3.as_ref().ok_or_else(|| {
                RecordingError::Config("a recording is in S3 but storage is not s3".into())
            })?;
            s3.delete(key).await?;
            s3.delete(&format!("{key}{}", meta::META_SUFFIX)).await?;
        }
        let dir = self.inner.dir.clone();
        let info = info.clone();
        blocking(move || {
            let _guard = meta::MetaLock::take(&dir)?;
            if let Location::Local { path } = &info.location {
                remove_if_present(path)?;
            }
            let log = dir.join("sweep.log");
            let line = serde_json::json!({
                "deleted_at": Utc::now(),
                "id": info.id,
                "session_id": info.session_id,
                "person": info.person,
                "target": info.target,
                "started": info.started,
                "ended": info.ended,
                "digest": info.digest,
                "location": info.location.to_string(),
            });
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.sync_data()))
                .map_err(|e| RecordingError::io("append", &log, e))?;
            remove_if_present(&meta_path(&dir, &info.id))
        })
        .await
    }
}

fn remove_if_present(path: &Path) -> Result<(), RecordingError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RecordingError::io("remove", path, e)),
    }
}
