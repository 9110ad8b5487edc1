//! The one stream through which the rest of the system observes sessions:
//! authentication results, authorization decisions, session starts and ends.
//! Audit, recording and metrics subscribe here instead of being called from the
//! protocol code.
//!
//! The stream is bounded and publishing never waits: if the consumer falls
//! behind, events are counted as dropped rather than stalling a session. (Where a
//! later consumer must fail closed, such as recording, it gets its own path.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

/// Something security-relevant that happened.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    Authenticated {
        person: String,
        method: &'static str,
        peer: Option<SocketAddr>,
    },
    AuthenticationFailed {
        user: String,
        method: &'static str,
        peer: Option<SocketAddr>,
        reason: String,
    },
    AccessDenied {
        person: String,
        target: String,
        login: Option<String>,
        /// The Cedar action asked for, e.g. `ssh.shell`.
        action: &'static str,
        reason: String,
        /// The policies that decided (`default-deny` when none did); `None`
        /// when the refusal came before policy (a lock, an unknown target).
        policies: Option<String>,
    },
    SessionStarted {
        session_id: String,
        person: String,
        target: String,
        login: String,
        kind: String,
        via_jump: bool,
        /// The policies that allowed it.
        because: String,
        ticket: Option<String>,
        peer: Option<SocketAddr>,
    },
    SessionEnded {
        session_id: String,
        bytes_to_target: u64,
        bytes_from_target: u64,
        exit_status: Option<u32>,
        outcome: String,
    },
    AccessRequested {
        request_id: String,
        person: String,
        target: String,
        login: String,
        reason: String,
    },
    TargetFailed {
        person: String,
        target: String,
        reason: String,
    },
}

/// The publishing side, cloned into every connection.
#[derive(Clone)]
pub struct EventSink {
    sender: mpsc::Sender<SessionEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// A sink and the receiver its consumer reads from.
    pub fn bounded(capacity: usize) -> (Self, mpsc::Receiver<SessionEvent>) {
        let (sender, receiver) = mpsc::channel(capacity);
        (
            Self {
                sender,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            receiver,
        )
    }

    pub fn publish(&self, event: SessionEvent) {
        if self.sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events lost because the consumer was behind or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The consumer used until the audit trail exists: structured log lines.
pub async fn log_events(mut events: mpsc::Receiver<SessionEvent>) {
    while let Some(event) = events.recv().await {
        tracing::info!(target: "vestibule::audit", ?event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_never_blocks() {
        let (sink, mut rx) = EventSink::bounded(1);
        for _ in 0..3 {
            sink.publish(SessionEvent::TargetFailed {
                person: "a".into(),
                target: "t".into(),
                reason: "r".into(),
            });
        }
        assert_eq!(sink.dropped(), 2);
        assert!(rx.try_recv().is_ok());
    }
}
