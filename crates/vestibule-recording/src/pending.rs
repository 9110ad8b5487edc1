//! The finished recordings this process knows to be waiting in the spool for
//! object storage, kept in memory so the backlog gauge and the upload retry
//! cost nothing per recording ever made (session 9 found the periodic work
//! reading every recording's metadata).
//!
//! Filled from one listing when the store opens, then kept by this process's
//! own finishes and uploads. Another process (the CLI's `recordings retry`)
//! can upload one of them; the next retry re-reads each listed recording's
//! metadata and drops what is no longer pending, so the figure is right again
//! within one retry interval.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::meta::{RecordingInfo, State};

#[derive(Debug, Default)]
pub(crate) struct PendingUploads {
    /// Recording id to its size in bytes.
    waiting: Mutex<BTreeMap<String, u64>>,
}

impl PendingUploads {
    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `info` waits for an upload.
    pub(crate) fn waits(info: &RecordingInfo) -> bool {
        info.upload_pending && info.state != State::Recording
    }

    /// Record what the metadata now says about one recording.
    pub(crate) fn note(&self, info: &RecordingInfo) {
        let mut waiting = self.waiting();
        if Self::waits(info) {
            waiting.insert(info.id.clone(), info.bytes);
        } else {
            waiting.remove(&info.id);
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        self.waiting().remove(id);
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.waiting().keys().cloned().collect()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.waiting().values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, bytes: u64, pending: bool, state: State) -> RecordingInfo {
        let meta = crate::meta::RecordingMeta {
            session_id: "s".into(),
            person: "alice".into(),
            target: "web1".into(),
            login: "root".into(),
            ticket: None,
            kind: crate::meta::SessionKind::Exec {
                command: "true".into(),
            },
            started_at: chrono::Utc::now(),
            via_jump: false,
            record_input: false,
        };
        let location = crate::meta::Location::Local {
            path: std::path::PathBuf::from(format!("/spool/{id}")),
        };
        let mut info = RecordingInfo::new(
            id.to_owned(),
            &meta,
            crate::meta::Mode::Transcript,
            location,
        );
        info.bytes = bytes;
        info.upload_pending = pending;
        info.state = state;
        info
    }

    #[test]
    fn follows_what_the_metadata_says() {
        let pending = PendingUploads::default();
        pending.note(&info("a", 10, true, State::Complete));
        pending.note(&info("b", 5, true, State::Incomplete));
        pending.note(&info("c", 7, true, State::Recording));
        pending.note(&info("d", 3, false, State::Complete));
        assert_eq!(pending.bytes(), 15);
        assert_eq!(pending.ids(), vec!["a".to_owned(), "b".to_owned()]);
        pending.note(&info("a", 10, false, State::Complete));
        pending.forget("b");
        assert_eq!(pending.bytes(), 0);
        assert!(pending.ids().is_empty());
    }
}
