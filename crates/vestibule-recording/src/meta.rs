//! Recording metadata: what the gateway says about a session, and the sidecar
//! `<id>.meta.json` kept for each recording (the index `list` reads, with no
//! gateway running).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::RecordingError;
use crate::digest::RecordingDigest;
use crate::events::Stream;

/// What the gateway knows about a session channel when it starts recording it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub session_id: String,
    pub person: String,
    pub target: String,
    pub login: String,
    pub ticket: Option<String>,
    pub kind: SessionKind,
    pub started_at: DateTime<Utc>,
    pub via_jump: bool,
    /// Keep what the person typed (policy); output is always kept.
    pub record_input: bool,
}

/// The kind of channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionKind {
    /// An interactive terminal; `command` when a PTY was asked for with a
    /// command (`ssh -t host cmd`).
    Pty {
        term: String,
        cols: u16,
        rows: u16,
        #[serde(default)]
        command: Option<String>,
    },
    Exec {
        command: String,
    },
    /// `sftp` is decoded into file operations; other subsystems are counted.
    Subsystem {
        name: String,
    },
    /// A `-L` forward or a ProxyJump tunnel's direct-tcpip channel.
    Forward {
        host: String,
        port: u16,
    },
}

impl SessionKind {
    /// One short phrase for listings and transcripts.
    pub fn describe(&self) -> String {
        match self {
            SessionKind::Pty {
                command: Some(c), ..
            } => format!("pty: {c}"),
            SessionKind::Pty { .. } => "shell".to_owned(),
            SessionKind::Exec { command } => format!("exec: {command}"),
            SessionKind::Subsystem { name } => format!("subsystem: {name}"),
            SessionKind::Forward { host, port } => format!("forward: {host}:{port}"),
        }
    }
}

/// How a recording's bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// asciicast v2 (PTY sessions).
    Asciicast,
    /// JSON lines with the channel's data (exec).
    Transcript,
    /// JSON lines with byte counts only (scp, rsync, forwards, other subsystems).
    CountsOnly,
    /// JSON lines with decoded SFTP file operations and byte counts.
    Sftp,
}

impl Mode {
    /// The mode a channel of this kind is recorded in.
    pub fn for_kind(kind: &SessionKind) -> Mode {
        match kind {
            SessionKind::Pty { .. } => Mode::Asciicast,
            SessionKind::Exec { command } if is_file_transfer(command) => Mode::CountsOnly,
            SessionKind::Exec { .. } => Mode::Transcript,
            SessionKind::Subsystem { name } if name == "sftp" => Mode::Sftp,
            SessionKind::Subsystem { .. } | SessionKind::Forward { .. } => Mode::CountsOnly,
        }
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            Mode::Asciicast => "cast",
            _ => "jsonl",
        }
    }
}

/// scp and rsync carry file content; only the command and the byte counts are
/// kept for them.
pub fn is_file_transfer(command: &str) -> bool {
    let c = command.trim_start();
    c.starts_with("scp ") || c.starts_with("rsync --server")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A recorder is writing it (or its process died and no store has been
    /// opened since).
    Recording,
    /// Every byte handed to the recorder is in the file.
    Complete,
    /// Something is missing: a crash, a storage failure, refused bytes.
    Incomplete,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Recording => "recording",
            State::Complete => "complete",
            State::Incomplete => "incomplete",
        }
    }
}

/// Where the recording's content is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "storage", rename_all = "snake_case")]
pub enum Location {
    Local { path: PathBuf },
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local { path } => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Bytes that crossed the channel (handed to the recorder and accepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Target to person (stdout).
    pub output: u64,
    /// Target to person on the extended (stderr) stream.
    pub stderr: u64,
    /// Person to target.
    pub input: u64,
}

impl Traffic {
    pub(crate) fn add(&mut self, stream: Stream, len: u64) {
        match stream {
            Stream::Output => self.output += len,
            Stream::Stderr => self.stderr += len,
            Stream::Input => self.input += len,
        }
    }
}

/// The sidecar metadata of one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub id: String,
    pub session_id: String,
    pub person: String,
    pub target: String,
    pub login: String,
    pub ticket: Option<String>,
    pub kind: SessionKind,
    pub via_jump: bool,
    pub record_input: bool,
    pub mode: Mode,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    /// Size of the stored file.
    pub bytes: u64,
    /// The stored file's hash, set when it stops growing. Recordings made
    /// before the algorithm was named keep a bare hex SHA-256 under `sha256`.
    #[serde(alias = "sha256")]
    pub digest: Option<RecordingDigest>,
    pub state: State,
    pub location: Location,
    /// Finished but still in the spool: the upload to S3 has not succeeded yet.
    #[serde(default)]
    pub upload_pending: bool,
    #[serde(default)]
    pub legal_hold: bool,
    #[serde(default)]
    pub exit_status: Option<u32>,
    #[serde(default)]
    pub traffic: Traffic,
    /// Why the recording is incomplete.
    #[serde(default)]
    pub problem: Option<String>,
}

impl RecordingInfo {
    pub(crate) fn new(id: String, meta: &RecordingMeta, mode: Mode, location: Location) -> Self {
        RecordingInfo {
            id,
            session_id: meta.session_id.clone(),
            person: meta.person.clone(),
            target: meta.target.clone(),
            login: meta.login.clone(),
            ticket: meta.ticket.clone(),
            kind: meta.kind.clone(),
            via_jump: meta.via_jump,
            record_input: meta.record_input,
            mode,
            started: meta.started_at,
            ended: None,
            bytes: 0,
            digest: None,
            state: State::Recording,
            location,
            upload_pending: false,
            legal_hold: false,
            exit_status: None,
            traffic: Traffic::default(),
            problem: None,
        }
    }
}

/// Ids name files, so they are kept to a safe alphabet.
pub(crate) fn check_id(id: &str) -> Result<(), RecordingError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecordingError::BadId(id.to_owned()))
    }
}

/// Sortable by start time, unique without coordination: `20250102T030405Z-1a2b3c4d`.
pub(crate) fn new_id(started: DateTime<Utc>) -> String {
    format!(
        "{}-{:08x}",
        started.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

pub(crate) const META_SUFFIX: &str = ".meta.json";

pub(crate) fn meta_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{META_SUFFIX}"))
}

pub(crate) fn data_path(dir: &Path, id: &str, mode: Mode) -> PathBuf {
    dir.join(format!("{id}.{}", mode.extension()))
}

pub(crate) fn read_meta(path: &Path) -> Result<RecordingInfo, RecordingError> {
    let text = fs::read(path).map_err(|e| RecordingError::io("read", path, e))?;
    serde_json::from_slice(&text).map_err(|source| RecordingError::Meta {
        path: path.display().to_string(),
        source,
    })
}

/// Replace the metadata file atomically (temp file, fsync, rename, fsync dir),
/// so a crash leaves the old or the new version, never a torn one.
pub(crate) fn write_meta(dir: &Path, info: &RecordingInfo) -> Result<(), RecordingError> {
    let path = meta_path(dir, &info.id);
    let tmp = dir.join(format!(".{}{META_SUFFIX}.tmp", info.id));
    let text = meta_text(&path, info)?;
    let write = || -> std::io::Result<()> {
        write_synced(&tmp, &text, false)?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| RecordingError::io("write", &path, e))
}

/// The first metadata of a new recording: no earlier version to replace, so
/// written in place (no temporary file and rename, which cost an inode apiece
/// at every session start). A crash before the sync leaves a file that does
/// not parse, which listings skip; its session had not started, so nothing it
/// forwarded is missing. The directory sync also makes the data file's name
/// durable.
pub(crate) fn create_meta(dir: &Path, info: &RecordingInfo) -> Result<(), RecordingError> {
    let path = meta_path(dir, &info.id);
    let text = meta_text(&path, info)?;
    let write = || -> std::io::Result<()> {
        write_synced(&path, &text, true)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| RecordingError::io("write", &path, e))
}

fn meta_text(path: &Path, info: &RecordingInfo) -> Result<Vec<u8>, RecordingError> {
    let mut text = serde_json::to_vec_pretty(info).map_err(|source| RecordingError::Meta {
        path: path.display().to_string(),
        source,
    })?;
    text.push(b'\n');
    Ok(text)
}

/// Write `text` to a file only its owner can read (the metadata names the
/// person, the target and the command) and sync it; `new`: the file must not
/// exist yet.
fn write_synced(path: &Path, text: &[u8], new: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut f = options.open(path)?;
    f.write_all(text)?;
    f.sync_all()
}

/// Read-modify-write of one recording's metadata under the store's metadata
/// lock, so that a hold set by the CLI and the recorder's final update (or two
/// processes' crash recovery) never overwrite each other.
pub(crate) fn update_meta<T>(
    dir: &Path,
    id: &str,
    change: impl FnOnce(&mut RecordingInfo) -> T,
) -> Result<(T, RecordingInfo), RecordingError> {
    let _guard = MetaLock::take(dir)?;
    let mut info = read_meta(&meta_path(dir, id))?;
    let out = change(&mut info);
    write_meta(dir, &info)?;
    Ok((out, info))
}

/// An exclusive flock on `<dir>/.meta.lock`, held only across one metadata
/// update (never on the data path).
pub(crate) struct MetaLock(File);

impl MetaLock {
    pub(crate) fn take(dir: &Path) -> Result<MetaLock, RecordingError> {
        let path = dir.join(".meta.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RecordingError::io("open", &path, e))?;
        f.lock().map_err(|e| RecordingError::io("lock", &path, e))?;
        Ok(MetaLock(f))
    }
}

impl Drop for MetaLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Every recording's metadata in `dir`, oldest first. Unreadable files are
/// reported in the log and skipped, so one bad file does not hide the rest.
pub(crate) fn list_meta(dir: &Path) -> Result<Vec<RecordingInfo>, RecordingError> {
    let listing = list_meta_and_unreadable(dir)?;
    for (_, e) in listing.unreadable {
        tracing::warn!(error = %e, "skipping unreadable recording metadata");
    }
    Ok(listing.infos)
}

/// What one pass over the recording directory found.
pub(crate) struct MetaListing {
    /// Every readable recording's metadata, oldest first.
    pub(crate) infos: Vec<RecordingInfo>,
    /// Ids whose metadata cannot be read, and why.
    pub(crate) unreadable: Vec<(String, RecordingError)>,
}

/// Like [`list_meta`], keeping the ids whose metadata cannot be read (for
/// `verify`, which must not pass over them).
pub(crate) fn list_meta_and_unreadable(dir: &Path) -> Result<MetaListing, RecordingError> {
    let entries = fs::read_dir(dir).map_err(|e| RecordingError::io("read", dir, e))?;
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RecordingError::io("read", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(META_SUFFIX) {
            continue;
        }
        match read_meta(&entry.path()) {
            Ok(info) => out.push(info),
            Err(e) => unreadable.push((name.trim_end_matches(META_SUFFIX).to_owned(), e)),
        }
    }
    out.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
    unreadable.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(MetaListing {
        infos: out,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let exec = |c: &str| SessionKind::Exec { command: c.into() };
        assert_eq!(Mode::for_kind(&exec("scp -t /tmp/x")), Mode::CountsOnly);
        assert_eq!(
            Mode::for_kind(&exec("rsync --server -vlogDtpre.iLsfxCIvu . /tmp")),
            Mode::CountsOnly
        );
        assert_eq!(Mode::for_kind(&exec("ls -l")), Mode::Transcript);
        assert_eq!(
            Mode::for_kind(&SessionKind::Subsystem {
                name: "sftp".into()
            }),
            Mode::Sftp
        );
    }

    #[test]
    fn ids() {
        let id = new_id(Utc::now());
        check_id(&id).unwrap();
        assert!(check_id("../etc/passwd").is_err());
        assert!(check_id("").is_err());
    }
}
