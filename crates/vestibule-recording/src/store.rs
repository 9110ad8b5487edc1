//! The store: opening it (and recovering what a crashed process left), starting
//! recordings, closing them, and shipping them to S3.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::RecordingError;
use crate::config::RecordingConfig;
use crate::digest::{ContentHasher, HashAlgorithm, RecordingDigest};
use crate::events::{Encoder, header};
use crate::meta::{
    self, Location, Mode, RecordingInfo, RecordingMeta, State, Traffic, data_path, new_id,
    update_meta,
};
use crate::pending::PendingUploads;
use crate::recorder::{Active, Ending, RecordingSummary, SessionRecorder, Shared};
use crate::records::{RecordBuffer, tally};
use crate::s3::S3Backend;
use crate::sink::Sink;
use crate::writer::{self, WriterEnd, WriterSetup};

/// Recording storage. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct RecordingStore {
    pub(crate) inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    pub(crate) config: RecordingConfig,
    pub(crate) dir: PathBuf,
    pub(crate) s3: Option<S3Backend>,
    /// Why object storage is considered down; None when it is up.
    s3_problem: Mutex<Option<String>>,
    /// Finished recordings waiting in the spool for object storage.
    pub(crate) pending: PendingUploads,
}

impl std::fmt::Debug for RecordingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingStore")
            .field("dir", &self.inner.dir)
            .field("s3", &self.inner.s3.as_ref().map(|s| &s.bucket))
            .finish()
    }
}

/// Run blocking file work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RecordingError> + Send + 'static,
) -> Result<T, RecordingError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RecordingError::Io {
            what: "background task",
            path: String::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Hash and size of a file.
pub(crate) fn hash_file(
    path: &Path,
    algorithm: HashAlgorithm,
) -> Result<(RecordingDigest, u64), RecordingError> {
    let mut f = File::open(path).map_err(|e| RecordingError::io("open", path, e))?;
    let mut h = ContentHasher::new(algorithm);
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| RecordingError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.finish(), total))
}

fn check_free(dir: &Path, min_free: u64) -> Result<(), RecordingError> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| RecordingError::unavailable(format!("statvfs {}: {e}", dir.display())))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < min_free {
        return Err(RecordingError::unavailable(format!(
            "{} has {free} bytes free, below recording.min_free_bytes ({min_free})",
            dir.display()
        )));
    }
    Ok(())
}

/// Cut a record a crash left half written, so every record parses; returns
/// the byte counts the whole records hold.
fn cut_torn_tail_and_count(f: &mut File) -> std::io::Result<Traffic> {
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(0))?;
    let mut records = RecordBuffer::default();
    let mut traffic = Traffic::default();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        records.feed(&buf[..n]);
        let Ok(()) = records.drain(|record| {
            tally(&record, &mut traffic);
            Ok::<_, std::convert::Infallible>(())
        });
    }
    if records.consumed < len {
        f.set_len(records.consumed)?;
        f.sync_all()?;
    }
    Ok(traffic)
}

/// Recordings whose writer is gone but which still say "recording" become
/// incomplete, with the hash of what reached the disk. One that cannot be
/// repaired is reported and left for the next open.
fn recover(dir: &Path, s3: bool, algorithm: HashAlgorithm) -> Result<Vec<String>, RecordingError> {
    let mut recovered = Vec::new();
    for info in meta::list_meta(dir)? {
        if info.state != State::Recording {
            continue;
        }
        match recover_one(dir, &info, s3, algorithm) {
            Ok(true) => recovered.push(info.id),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(recording = %info.id, error = %e, "cannot recover a recording")
            }
        }
    }
    Ok(recovered)
}

/// False when the recording's writer is still alive.
fn recover_one(
    dir: &Path,
    info: &RecordingInfo,
    s3: bool,
    algorithm: HashAlgorithm,
) -> Result<bool, RecordingError> {
    let Location::Local { path } = &info.location else {
        return Ok(false);
    };
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(RecordingError::io("open", path, e)),
    };
    let (digest, bytes, ended, traffic) = match file {
        Some(mut f) => {
            match f.try_lock() {
                Ok(()) => {}
                // Its writer is alive (another process, or this one).
                Err(TryLockError::WouldBlock) => return Ok(false),
                Err(TryLockError::Error(e)) => return Err(RecordingError::io("lock", path, e)),
            }
            let traffic = cut_torn_tail_and_count(&mut f)
                .map_err(|e| RecordingError::io("repair", path, e))?;
            let (digest, bytes) = hash_file(path, algorithm)?;
            let ended = f
                .metadata()
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now());
            (Some(digest), bytes, ended, Some(traffic))
        }
        None => (None, 0, Utc::now(), None),
    };
    let (changed, _) = update_meta(dir, &info.id, |i| {
        if i.state != State::Recording {
            return false;
        }
        i.state = State::Incomplete;
        i.ended = Some(ended);
        i.bytes = bytes;
        i.digest = digest;
        // Counts are written only when a recording finishes: what the file
        // holds is the best account left of what crossed the channel.
        if let Some(traffic) = traffic {
            i.traffic = traffic;
        }
        i.upload_pending = s3 && bytes > 0;
        i.problem = Some("the recording process stopped before the session ended".into());
        true
    })?;
    Ok(changed)
}

/// Create the file, write and sync the header, and write the metadata: the
/// three things that prove storage works before the session may start.
fn create_recording(
    dir: &Path,
    min_free: u64,
    meta: &RecordingMeta,
    mode: Mode,
    direct_io: bool,
) -> Result<(RecordingInfo, Sink, Vec<u8>), RecordingError> {
    check_free(dir, min_free)?;
    let id = new_id(meta.started_at);
    let path = data_path(dir, &id, mode);
    let fail = |what: &str, e: std::io::Error| {
        RecordingError::unavailable(format!("{what} {}: {e}", path.display()))
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| fail("create", e))?;
    let info = RecordingInfo::new(id, meta, mode, Location::Local { path: path.clone() });
    let head = header(&info);
    let result = (|| {
        file.try_lock()
            .map_err(|e| fail("lock", std::io::Error::other(e.to_string())))?;
        file.write_all(&head)
            .and_then(|()| file.sync_data())
            .map_err(|e| fail("write", e))?;
        meta::create_meta(dir, &info).map_err(|e| RecordingError::unavailable(e.to_string()))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&path);
        let _ = fs::remove_file(meta::meta_path(dir, &info.id));
        return Err(e);
    }
    let sink = Sink::new(file, &path, head.len() as u64, direct_io);
    Ok((info, sink, head))
}

impl RecordingStore {
    /// Open (creating) the recording directory and mark recordings that a dead
    /// process left in state "recording" as incomplete. Object storage is not
    /// contacted here; see [`RecordingStore::check_storage`].
    pub async fn open(config: &RecordingConfig) -> Result<RecordingStore, RecordingError> {
        config.validate()?;
        let dir = config.dir.clone();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| RecordingError::io("create", &dir, e))?;
        let s3 = config.s3().map(S3Backend::new).transpose()?;
        let has_s3 = s3.is_some();
        let store = RecordingStore {
            inner: Arc::new(StoreInner {
                config: config.clone(),
                dir: dir.clone(),
                s3,
                s3_problem: Mutex::new(None),
                pending: PendingUploads::default(),
            }),
        };
        let algorithm = config.hash;
        let recovered = blocking(move || recover(&dir, has_s3, algorithm)).await?;
        for id in &recovered {
            tracing::warn!(recording = %id, "recording left unfinished by a previous process; marked incomplete");
        }
        if has_s3 {
            // The one listing of every recording; from here on the set is kept.
            for info in store.list().await? {
                store.inner.pending.note(&info);
            }
        }
        Ok(store)
    }

    /// The recording (or spool) directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn config(&self) -> &RecordingConfig {
        &self.inner.config
    }

    /// Free space, writability and, with S3, the bucket. Refreshes the S3
    /// health that `start` consults.
    pub async fn check_storage(&self) -> Result<(), RecordingError> {
        let dir = self.inner.dir.clone();
        let min_free = self.inner.config.min_free_bytes;
        blocking(move || {
            check_free(&dir, min_free)?;
            let probe = dir.join(".write-probe");
            File::create(&probe)
                .and_then(|mut f| f.write_all(b"ok"))
                .and_then(|()| fs::remove_file(&probe))
                .map_err(|e| {
                    RecordingError::unavailable(format!("writing in {}: {e}", dir.display()))
                })
        })
        .await?;
        if let Some(s3) = &self.inner.s3 {
            match s3.probe().await {
                Ok(()) => self.set_s3_problem(None),
                Err(e) => {
                    self.set_s3_problem(Some(e.to_string()));
                    return Err(RecordingError::unavailable(e.to_string()));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn s3_problem(&self) -> Option<String> {
        self.inner
            .s3_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_s3_problem(&self, problem: Option<String>) {
        *self
            .inner
            .s3_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = problem;
    }

    /// Start recording a session channel. Fails closed: an error means the
    /// session must be refused (its Display is meant for the person).
    pub async fn start(&self, meta: RecordingMeta) -> Result<SessionRecorder, RecordingError> {
        if let Some(problem) = self.s3_problem() {
            return Err(RecordingError::unavailable(format!(
                "object storage is down: {problem}"
            )));
        }
        let mode = Mode::for_kind(&meta.kind);
        let record_input = meta.record_input;
        let dir = self.inner.dir.clone();
        let min_free = self.inner.config.min_free_bytes;
        let direct_io = self.inner.config.direct_io;
        let (info, sink, head) =
            blocking(move || create_recording(&dir, min_free, &meta, mode, direct_io))
                .await
                .map_err(|e| match e {
                    RecordingError::Unavailable { .. } => e,
                    other => RecordingError::unavailable(other.to_string()),
                })?;
        let limit = self.inner.config.buffer_limit_bytes;
        let shared = Arc::new(Shared {
            state: Mutex::new(Active {
                // Small: most sessions are idle most of the time, and a thousand
                // of them must stay cheap; bulk output grows it (and the writer
                // gives the growth back once the burst is over).
                buf: crate::batch::Batch::with_capacity(
                    (limit / 2).min(crate::writer::IDLE_CAPACITY),
                ),
                in_flight: 0,
                limit,
                // Well before half: the writer drains in small batches, so
                // one slow write leaves most of the limit free.
                wake_at: (limit / 4).min(1 << 20),
                woken: false,
                start: Instant::now(),
                enc: Encoder::new(mode, record_input),
                traffic: Traffic::default(),
                counts_written: Traffic::default(),
                exit_status: None,
                refused: false,
                failed: false,
                ending: Ending::Running,
            }),
            wake: Notify::new(),
            drained: Notify::new(),
        });
        let mut hasher = ContentHasher::new(self.inner.config.hash);
        hasher.update(&head);
        let setup = WriterSetup {
            sink,
            hasher,
            interval: self.inner.config.flush_interval(),
            sync: self.inner.config.sync_on_flush,
        };
        let writer = tokio::spawn(writer::run(shared.clone(), setup));
        Ok(SessionRecorder {
            shared,
            writer: Some(writer),
            store: self.clone(),
            id: info.id,
            mode,
        })
    }

    /// Record how a recording ended, then ship it when storage is S3.
    pub(crate) async fn finalize(
        &self,
        id: &str,
        end: WriterEnd,
        problem: Option<String>,
        traffic: Traffic,
        exit_status: Option<u32>,
    ) -> Result<RecordingSummary, RecordingError> {
        let dir = self.inner.dir.clone();
        let s3 = self.inner.s3.is_some();
        let algorithm = self.inner.config.hash;
        let id = id.to_owned();
        let (info, digest) = blocking(move || {
            let WriterEnd {
                file,
                written,
                hasher,
                error,
            } = end;
            let path = match meta::read_meta(&meta::meta_path(&dir, &id))?.location {
                Location::Local { path } => path,
                Location::S3 { .. } => return Err(RecordingError::NotFound(id)),
            };
            let (digest, bytes) = match (hasher, &error) {
                (Some(h), None) => (h.finish(), written),
                _ => hash_file(&path, algorithm)?,
            };
            let problem = error.or(problem);
            let (_, info) = update_meta(&dir, &id, |i| {
                i.state = if problem.is_none() {
                    State::Complete
                } else {
                    State::Incomplete
                };
                i.ended = Some(Utc::now());
                i.bytes = bytes;
                i.digest = Some(digest);
                i.traffic = traffic;
                i.exit_status = exit_status;
                i.problem = problem;
                i.upload_pending = s3;
            })?;
            // The lock goes only now that the metadata says how it ended.
            drop(file);
            Ok((info, digest))
        })
        .await?;
        let info = self.upload(info).await;
        Ok(RecordingSummary {
            id: info.id,
            digest,
            bytes: info.bytes,
            complete: info.state == State::Complete,
            location: info.location,
            upload_pending: info.upload_pending,
        })
    }

    /// Upload a finished recording from the spool; on failure it stays there
    /// marked `upload_pending` and object storage is marked down.
    pub(crate) async fn upload(&self, info: RecordingInfo) -> RecordingInfo {
        let after = self.try_upload(info).await;
        self.inner.pending.note(&after);
        after
    }

    async fn try_upload(&self, info: RecordingInfo) -> RecordingInfo {
        let (Some(s3), Location::Local { path }) = (&self.inner.s3, &info.location) else {
            return info;
        };
        if !info.upload_pending || info.state == State::Recording {
            return info;
        }
        // Another process (the CLI, a second gateway) may be uploading it.
        let lock = {
            let path = path.clone();
            blocking(move || {
                let f = File::open(&path).map_err(|e| RecordingError::io("open", &path, e))?;
                Ok(f.try_lock().is_ok().then_some(f))
            })
            .await
        };
        let _lock = match lock {
            Ok(Some(f)) => f,
            Ok(None) => return info,
            Err(e) => {
                tracing::warn!(recording = %info.id, error = %e, "cannot upload a recording");
                return info;
            }
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&info.id)
            .to_owned();
        let key = s3.key(&name);
        let dir = self.inner.dir.clone();
        let id = info.id.clone();
        match s3.upload_file(path, &key).await {
            Ok(()) => {
                self.set_s3_problem(None);
                let location = Location::S3 {
                    bucket: s3.bucket.clone(),
                    key: key.clone(),
                };
                let spool = path.clone();
                let updated = blocking(move || {
                    let (_, info) = update_meta(&dir, &id, |i| {
                        i.location = location;
                        i.upload_pending = false;
                    })?;
                    fs::remove_file(&spool).map_err(|e| RecordingError::io("remove", &spool, e))?;
                    Ok(info)
                })
                .await;
                match updated {
                    Ok(new) => {
                        self.put_meta_copy(&new).await;
                        new
                    }
                    Err(e) => {
                        tracing::error!(recording = %info.id, error = %e, "uploaded, but the metadata update failed");
                        info
                    }
                }
            }
            Err(e) => {
                tracing::warn!(recording = %info.id, error = %e, "recording upload failed; kept in the spool");
                self.set_s3_problem(Some(e.to_string()));
                info
            }
        }
    }

    /// A copy of the metadata next to the object, so the bucket alone says
    /// what each recording is. Best effort: the local file is the index.
    pub(crate) async fn put_meta_copy(&self, info: &RecordingInfo) {
        let (Some(s3), Location::S3 { key, .. }) = (&self.inner.s3, &info.location) else {
            return;
        };
        let Ok(text) = serde_json::to_vec_pretty(info) else {
            return;
        };
        if let Err(e) = s3
            .put_bytes(&format!("{key}{}", meta::META_SUFFIX), text)
            .await
        {
            tracing::warn!(recording = %info.id, error = %e, "metadata copy not uploaded");
        }
    }

    /// Upload every finished recording still in the spool. Returns the ids
    /// uploaded now.
    pub async fn retry_uploads(&self) -> Result<Vec<String>, RecordingError> {
        if self.inner.s3.is_none() {
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        for id in self.inner.pending.ids() {
            // Another process may have uploaded or deleted it meanwhile.
            let info = match self.get(&id).await {
                Ok(info) => info,
                Err(RecordingError::NotFound(_)) => {
                    self.inner.pending.forget(&id);
                    continue;
                }
                // One unreadable metadata file must not hold back the others;
                // it stays listed for the next round.
                Err(e) => {
                    tracing::warn!(recording = %id, error = %e, "cannot read a recording waiting for upload");
                    continue;
                }
            };
            if !PendingUploads::waits(&info) {
                self.inner.pending.note(&info);
                continue;
            }
            let after = self.upload(info).await;
            if !after.upload_pending {
                done.push(after.id);
            } else if self.s3_problem().is_some() {
                break;
            }
        }
        Ok(done)
    }

    /// A task that, while this store lives, retries pending uploads (and so
    /// brings a recovered bucket back into service) and applies retention
    /// hourly when `retention_days` is set, telling `on_deleted` the ids each
    /// sweep deleted (for the audit trail, which this crate does not know).
    pub fn spawn_maintenance(
        &self,
        on_deleted: impl Fn(u32, Vec<String>) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let period = self
            .inner
            .s3
            .as_ref()
            .map_or(Duration::from_secs(60), |s| s.retry_interval);
        tokio::spawn(async move {
            let mut last_sweep: Option<Instant> = None;
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let store = RecordingStore { inner };
                if store.inner.s3.is_some() {
                    if store.s3_problem().is_some() {
                        let _ = store.check_storage().await;
                    }
                    if store.s3_problem().is_none()
                        && let Err(e) = store.retry_uploads().await
                    {
                        tracing::warn!(error = %e, "retrying recording uploads");
                    }
                }
                if let Some(days) = store.inner.config.retention_days
                    && last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
                {
                    last_sweep = Some(Instant::now());
                    match store.sweep(days).await {
                        Ok(deleted) if !deleted.is_empty() => on_deleted(days, deleted),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "recording retention sweep"),
                    }
                }
            }
        })
    }
}
