//! What the engine tells an observer about each attempt to load its policy
//! files. The engine knows nothing of the audit trail or metrics: the binary
//! attaches an observer that turns reports into audit events and counters.

use std::fmt;
use std::sync::Arc;

use crate::{PolicyError, PolicyProblem, PolicySetInfo};

/// What started a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// The set loaded when the gateway started (reported when an observer
    /// is attached, since the observer exists only after the first load).
    Startup,
    /// A decision noticed that the files changed.
    FileChange,
    /// SIGHUP, or any explicit [`crate::CedarEngine::reload_because`].
    Signal,
}

impl ReloadTrigger {
    /// The stable name used in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Startup => "startup",
            ReloadTrigger::FileChange => "file_change",
            ReloadTrigger::Signal => "sighup",
        }
    }
}

impl fmt::Display for ReloadTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a load was refused: the error's text and, for a set with problems,
/// each problem with its file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailure {
    pub message: String,
    pub problems: Vec<PolicyProblem>,
}

impl From<&PolicyError> for ReloadFailure {
    fn from(error: &PolicyError) -> Self {
        Self {
            message: error.to_string(),
            problems: match error {
                PolicyError::Invalid { problems } => problems.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// One load attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub trigger: ReloadTrigger,
    /// The set in force after the attempt: the new one, or after a failure
    /// the previous one, which stays in force.
    pub in_force: PolicySetInfo,
    /// `None` when the files were loaded.
    pub failure: Option<ReloadFailure>,
}

impl ReloadReport {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// Called with every [`ReloadReport`]. It runs on the thread that made the
/// decision which noticed the change, so it must not block.
pub type ReloadObserver = Arc<dyn Fn(&ReloadReport) + Send + Sync>;
