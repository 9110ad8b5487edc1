use std::io;
use std::path::Path;
use std::sync::Arc;

/// What can go wrong with the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// An event could not be made durable (disk full, I/O error). The event is
    /// not in the log; the action it describes must not go ahead where that
    /// matters.
    #[error("audit event not durable: cannot {what} {path}: {source}")]
    Commit {
        what: &'static str,
        path: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("audit key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    KeyPermissions { path: String, mode: u32 },
    #[error("audit key {path}: {reason}")]
    KeyFormat { path: String, reason: String },
    #[error("invalid audit public key {0:?}: expected `ed25519:` followed by 32 bytes in base64")]
    PublicKey(String),
    /// The existing log cannot be continued safely; `vestibule audit verify`
    /// says more.
    #[error("cannot continue the audit log in {dir}: {reason}; run `vestibule audit verify`")]
    Chain { dir: String, reason: String },
    #[error("the audit writer has stopped")]
    WriterStopped,
    #[error("audit index: {0}")]
    Database(#[from] sqlx::Error),
    #[error("audit sink configuration: {0}")]
    Config(String),
    #[error(
        "invalid time {0:?}: expected RFC 3339 (2024-05-01T12:00:00Z) or a duration such as 30m, 2h, 7d"
    )]
    Time(String),
}

impl AuditError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AuditError {
        let path = path.display().to_string();
        move |source| AuditError::Io { what, path, source }
    }
}
