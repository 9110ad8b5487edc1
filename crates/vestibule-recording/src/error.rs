//! The crate's one error type.
//!
//! The variants a session can meet (`Unavailable`, `BufferFull`, `Failed`) have a
//! Display meant for the person at the keyboard: short and without paths. The
//! detail an operator needs goes to `detail()` and the logs.

/// What can go wrong with recordings.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// A new recording cannot be started (storage missing, not writable, full,
    /// or object storage unreachable). The session must be refused.
    #[error("recording storage unavailable")]
    Unavailable { detail: String },
    /// The recorder holds `buffer_limit` bytes that storage has not taken yet.
    /// The session must end without forwarding the bytes that were refused.
    #[error("recording storage cannot keep up")]
    BufferFull { limit: usize },
    /// Writing the recording failed mid-session; the session must end.
    #[error("recording storage failed")]
    Failed,
    #[error("invalid recording configuration: {0}")]
    Config(String),
    #[error("no recording {0}")]
    NotFound(String),
    #[error("invalid recording id {0:?}")]
    BadId(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording metadata {path}: {source}")]
    Meta {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("object storage, {what}: {source}")]
    ObjectStore {
        what: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{0}")]
    Usage(String),
}

impl RecordingError {
    /// The operator-facing reason behind a refusal, for the logs.
    pub fn detail(&self) -> Option<&str> {
        match self {
            RecordingError::Unavailable { detail } => Some(detail),
            _ => None,
        }
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        RecordingError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn unavailable(detail: impl Into<String>) -> Self {
        RecordingError::Unavailable {
            detail: detail.into(),
        }
    }
}
