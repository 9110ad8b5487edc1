//! The `[recording]` table of `vestibule.toml`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::RecordingError;
use crate::digest::HashAlgorithm;

/// Where finished recordings live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// In `dir`, next to their metadata.
    #[default]
    Local,
    /// In an S3 bucket; `dir` is the spool that holds live recordings and those
    /// whose upload has not succeeded yet.
    S3,
}

/// `[recording]`: how sessions are recorded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Off only for benchmarks and labs: sessions then go unrecorded.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub storage: StorageKind,
    /// Recordings (local storage) or the spool (S3); relative paths are taken
    /// from the data dir by [`RecordingConfig::in_data_dir`].
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// How often buffered session bytes are written (and synced) to disk.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Bytes one recording may hold in memory before its session is ended.
    #[serde(default = "default_buffer_limit")]
    pub buffer_limit_bytes: usize,
    /// New sessions are refused when the disk under `dir` has less free space.
    #[serde(default = "default_min_free")]
    pub min_free_bytes: u64,
    /// fdatasync at each periodic flush, so what was forwarded survives a power
    /// loss too, not only a crash of the gateway.
    #[serde(default = "yes")]
    pub sync_on_flush: bool,
    /// Write bursts of output with direct I/O (`O_DIRECT`), bypassing the
    /// page cache, where the file system supports it (see docs/recording.md).
    #[serde(default = "yes")]
    pub direct_io: bool,
    /// The integrity hash of new recordings: `blake3` (the default, a third
    /// of SHA-256's CPU per byte) or `sha256` where only FIPS-approved
    /// algorithms may be used. Existing recordings keep the hash they have.
    #[serde(default)]
    pub hash: HashAlgorithm,
    /// Finished recordings older than this are deleted by the sweep (unless on
    /// legal hold). None keeps them forever.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Required when `storage = "s3"`.
    #[serde(default)]
    pub s3: Option<S3Config>,
}

/// `[recording.s3]`: an S3-compatible bucket.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// e.g. `http://127.0.0.1:9000`; AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// When absent, taken from `AWS_ACCESS_KEY_ID` (and the other standard
    /// variables), which keeps the secret out of the file.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted
    /// servers need.
    #[serde(default)]
    pub path_style: bool,
    /// Prefix of the object keys.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Files larger than this are uploaded in parts of this size (S3's minimum
    /// part is 5 MiB).
    #[serde(default = "default_part_size")]
    pub part_size_bytes: usize,
    /// Attempts per upload at finish before it is left in the spool for the
    /// background retry.
    #[serde(default = "default_upload_attempts")]
    pub upload_attempts: u32,
    /// First pause between attempts; doubled after each.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// How often the maintenance task retries pending uploads and re-checks an
    /// unreachable bucket.
    #[serde(default = "default_retry_interval_secs")]
    pub retry_interval_secs: u64,
    /// Per request.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

// The secret must not reach logs through `{:?}`.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("recordings")
}
fn default_flush_interval_ms() -> u64 {
    1000
}
fn default_buffer_limit() -> usize {
    8 << 20
}
fn default_min_free() -> u64 {
    256 << 20
}
fn yes() -> bool {
    true
}
fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_prefix() -> String {
    "recordings/".to_owned()
}
fn default_part_size() -> usize {
    8 << 20
}
fn default_upload_attempts() -> u32 {
    3
}
fn default_retry_backoff_ms() -> u64 {
    500
}
fn default_retry_interval_secs() -> u64 {
    30
}
fn default_request_timeout_secs() -> u64 {
    30
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig::local(default_dir())
    }
}

impl RecordingConfig {
    /// Local storage in `dir` with every other setting at its default.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        RecordingConfig {
            enabled: true,
            storage: StorageKind::Local,
            dir: dir.into(),
            flush_interval_ms: default_flush_interval_ms(),
            buffer_limit_bytes: default_buffer_limit(),
            min_free_bytes: default_min_free(),
            sync_on_flush: true,
            direct_io: true,
            hash: HashAlgorithm::default(),
            retention_days: None,
            s3: None,
        }
    }

    /// `dir` resolved against the data dir when it is relative.
    pub fn in_data_dir(mut self, data_dir: &Path) -> Self {
        if self.dir.is_relative() {
            self.dir = data_dir.join(&self.dir);
        }
        self
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    pub(crate) fn validate(&self) -> Result<(), RecordingError> {
        if self.flush_interval_ms == 0 || self.flush_interval_ms > 60_000 {
            return Err(RecordingError::Config(
                "flush_interval_ms must be between 1 and 60000".into(),
            ));
        }
        if self.buffer_limit_bytes < 64 << 10 {
            return Err(RecordingError::Config(
                "buffer_limit_bytes must be at least 65536".into(),
            ));
        }
        match (self.storage, &self.s3) {
            (StorageKind::S3, None) => Err(RecordingError::Config(
                "storage = \"s3\" needs a [recording.s3] table".into(),
            )),
            (StorageKind::S3, Some(s3)) if s3.part_size_bytes < 5 << 20 => Err(
                RecordingError::Config("s3.part_size_bytes must be at least 5 MiB".into()),
            ),
            (StorageKind::S3, Some(s3)) if s3.bucket.is_empty() => {
                Err(RecordingError::Config("s3.bucket is empty".into()))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn s3(&self) -> Option<&S3Config> {
        match self.storage {
            StorageKind::S3 => self.s3.as_ref(),
            StorageKind::Local => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: RecordingConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.storage, StorageKind::Local);
        assert_eq!(c.flush_interval(), Duration::from_secs(1));
        assert_eq!(c.buffer_limit_bytes, 8 << 20);
        assert!(serde_json::from_str::<RecordingConfig>(r#"{"bogus": 1}"#).is_err());
        let c: RecordingConfig = serde_json::from_str(
            r#"{"storage": "s3", "s3": {"bucket": "b", "secret_access_key": "hunter2"}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c: RecordingConfig = serde_json::from_str(r#"{"storage": "s3"}"#).unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn relative_dir_is_under_the_data_dir() {
        let c = RecordingConfig::default().in_data_dir(Path::new("/var/lib/vestibule"));
        assert_eq!(c.dir, Path::new("/var/lib/vestibule/recordings"));
    }
}
