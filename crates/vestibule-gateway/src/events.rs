//! The one stream through which the rest of the system observes sessions:
//! authentication results, authorization decisions, session starts and ends.
//! Audit, recording and metrics subscribe here instead of being called from the
//! protocol code.
//!
//! The stream is bounded and publishing never waits: if the consumer falls
//! behind, events are counted as dropped rather than stalling a session. The one
//! exception is [`EventSink::publish_durable`], for events that must be in the
//! audit trail before the action goes on (a session start): it waits for the
//! audit writer's group commit and fails if the event cannot be made durable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use vestibule_audit::{Action, AuditEvent, AuditHandle, Level, Outcome};
use vestibule_metrics::Metrics;
use vestibule_recording::{HashAlgorithm, RecordingDigest};

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
    /// A person enrolled a second factor at their first login (published
    /// before `Authenticated`).
    MfaEnrolled {
        person: String,
        /// The first factor it followed (`publickey`, `password`, ...).
        method: &'static str,
        peer: Option<SocketAddr>,
    },
    /// A break-glass token let a person in (published besides `Authenticated`).
    BreakglassUsed {
        person: String,
        token: String,
        peer: Option<SocketAddr>,
    },
    AccessAllowed {
        person: String,
        target: String,
        login: String,
        action: &'static str,
        policies: String,
        peer: Option<SocketAddr>,
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
        /// From the person's request to the first byte moving.
        setup: Duration,
    },
    SessionEnded {
        session_id: String,
        /// What the session was (`shell`, `exec: ...`, `subsystem: sftp`, ...).
        kind: String,
        person: String,
        target: String,
        login: String,
        duration: Duration,
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
    CertificateIssued {
        kind: &'static str,
        serial: u64,
        key_id: String,
        principals: Vec<String>,
        valid_before: u64,
    },
    CertificateSigningFailed {
        kind: &'static str,
        reason: String,
    },
    /// The first session of a just-in-time grant: the end of "time to grant".
    GrantFirstUsed {
        request_id: String,
        person: String,
        target: String,
        requested_at: i64,
        approved_at: i64,
        first_session_at: i64,
    },
    SessionRefused {
        session_id: String,
        person: String,
        target: String,
        login: String,
        reason: String,
    },
    RecordingStored {
        session_id: String,
        recording_id: String,
        digest: RecordingDigest,
        bytes: u64,
        complete: bool,
    },
    RecordingFailed {
        session_id: String,
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
    sender: mpsc::Sender<Published>,
    dropped: Arc<AtomicU64>,
    audit: Option<AuditHandle>,
}

/// An event on its way to the consumer, and whether it is in the audit trail already.
#[derive(Debug)]
pub struct Published {
    pub event: SessionEvent,
    pub audited: bool,
}

/// Why a durable event could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("the audit trail cannot record the session: {0}")]
pub struct NotDurable(#[from] vestibule_audit::AuditError);

impl EventSink {
    /// A sink and the receiver its consumer reads from.
    pub fn bounded(capacity: usize) -> (Self, mpsc::Receiver<Published>) {
        let (sender, receiver) = mpsc::channel(capacity);
        (
            Self {
                sender,
                dropped: Arc::new(AtomicU64::new(0)),
                audit: None,
            },
            receiver,
        )
    }

    /// Record events in this audit trail too (durable ones before they return).
    pub fn with_audit(mut self, audit: AuditHandle) -> Self {
        self.audit = Some(audit);
        self
    }

    pub fn publish(&self, event: SessionEvent) {
        self.send(Published {
            event,
            audited: false,
        });
    }

    /// Publish once the audit trail holds the event durably; an error means
    /// the action it describes must not go on.
    pub async fn publish_durable(&self, event: SessionEvent) -> Result<(), NotDurable> {
        if let Some(audit) = &self.audit {
            audit.append(to_audit(&event)).await?;
        }
        self.send(Published {
            event,
            audited: self.audit.is_some(),
        });
        Ok(())
    }

    fn send(&self, published: Published) {
        if self.sender.try_send(published).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events lost because the consumer was behind or gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The consumer: a structured log line per event, the audit trail for those
/// not recorded durably already, and the metrics.
pub async fn consume(
    mut events: mpsc::Receiver<Published>,
    audit: Option<AuditHandle>,
    metrics: Option<Metrics>,
) {
    while let Some(Published { event, audited }) = events.recv().await {
        tracing::info!(target: "vestibule::audit", ?event);
        if let (Some(audit), false) = (&audit, audited) {
            audit.record(to_audit(&event));
        }
        if let Some(metrics) = &metrics {
            count(metrics, &event);
        }
    }
}

/// The `protocol` label of a session kind.
/// `digest` names its algorithm; `sha256` (bare hex) is kept beside it for a
/// SHA-256 recording, as the trail had it before the algorithm was a choice,
/// so existing SIEM rules go on matching.
fn recording_stored(
    session_id: &str,
    recording_id: &str,
    digest: RecordingDigest,
    bytes: u64,
    complete: bool,
) -> AuditEvent {
    let outcome = if complete {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let event = AuditEvent::new(Action::RecordingStored, outcome)
        .session(session_id)
        .detail("recording_id", recording_id)
        .detail("digest", digest.to_string())
        .detail("bytes", bytes)
        .detail("complete", complete);
    match digest.algorithm() {
        HashAlgorithm::Sha256 => event.detail("sha256", digest.hex()),
        HashAlgorithm::Blake3 => event,
    }
}

fn protocol(kind: &str) -> &'static str {
    match kind {
        "shell" => "shell",
        k if k.starts_with("subsystem: sftp") => "sftp",
        k if k.starts_with("exec: scp ") => "scp",
        k if k.starts_with("exec: rsync ") => "rsync",
        k if k.starts_with("exec") => "exec",
        k if k.starts_with("port-forward") => "port_forward",
        _ => "other",
    }
}

fn count(metrics: &Metrics, event: &SessionEvent) {
    match event {
        SessionEvent::Authenticated { method, .. } => metrics.auth_attempt(method, "success"),
        SessionEvent::AuthenticationFailed { method, reason, .. } => {
            let result = if reason.contains("locked out") {
                "locked_out"
            } else {
                "failure"
            };
            metrics.auth_attempt(method, result);
        }
        SessionEvent::BreakglassUsed { .. } => metrics.breakglass_use(),
        SessionEvent::AccessAllowed { .. } => metrics.policy_decision("allow"),
        SessionEvent::AccessDenied { .. } => metrics.policy_decision("deny"),
        SessionEvent::SessionStarted { kind, setup, .. } => {
            metrics.session_started(protocol(kind));
            metrics.session_setup(*setup);
        }
        SessionEvent::SessionEnded {
            kind,
            bytes_to_target,
            bytes_from_target,
            duration,
            ..
        } => metrics.session_ended(
            protocol(kind),
            *bytes_to_target,
            *bytes_from_target,
            *duration,
        ),
        SessionEvent::RecordingStored { complete, .. } => metrics.recording_finished(*complete),
        SessionEvent::RecordingFailed { .. } => metrics.recording_failure("finish"),
        SessionEvent::SessionRefused { reason, .. } if reason.contains("recording") => {
            metrics.recording_failure("storage_unavailable");
        }
        SessionEvent::CertificateIssued { kind, .. } => metrics.certificate_issued(kind),
        SessionEvent::CertificateSigningFailed { kind, .. } => {
            metrics.certificate_signing_failed(kind);
        }
        SessionEvent::GrantFirstUsed {
            requested_at,
            first_session_at,
            ..
        } => metrics.time_to_grant(Duration::from_secs(
            u64::try_from(first_session_at - requested_at).unwrap_or(0),
        )),
        _ => {}
    }
}

/// The audit trail's form of an event.
pub fn to_audit(event: &SessionEvent) -> AuditEvent {
    let with_peer = |e: AuditEvent, peer: &Option<SocketAddr>| match peer {
        Some(peer) => e.source(*peer),
        None => e,
    };
    match event {
        SessionEvent::Authenticated {
            person,
            method,
            peer,
        } => with_peer(
            AuditEvent::new(Action::AuthenticationSuccess, Outcome::Success)
                .user(person)
                .auth_method(*method),
            peer,
        ),
        SessionEvent::AuthenticationFailed {
            user,
            method,
            peer,
            reason,
        } => with_peer(
            AuditEvent::new(Action::AuthenticationFailure, Outcome::Failure)
                .user(user)
                .auth_method(*method)
                .reason(reason),
            peer,
        ),
        SessionEvent::MfaEnrolled {
            person,
            method,
            peer,
        } => with_peer(
            AuditEvent::new(Action::MfaEnroll, Outcome::Success)
                .user(person)
                .auth_method(*method)
                .detail("factor", "totp")
                .detail("via", "ssh"),
            peer,
        ),
        SessionEvent::BreakglassUsed {
            person,
            token,
            peer,
        } => with_peer(
            AuditEvent::new(Action::BreakglassUse, Outcome::Success)
                .user(person)
                .auth_method("breakglass")
                .reason(format!("break-glass token {token} used")),
            peer,
        ),
        SessionEvent::AccessAllowed {
            person,
            target,
            login,
            action,
            policies,
            peer,
        } => with_peer(
            AuditEvent::new(Action::AuthorizationAllow, Outcome::Success)
                .user(person)
                .target(target)
                .login(login)
                .policy_ids(policies.split(','))
                .detail("action", *action),
            peer,
        ),
        SessionEvent::AccessDenied {
            person,
            target,
            login,
            action,
            reason,
            policies,
        } => {
            let mut e = AuditEvent::new(Action::AuthorizationDeny, Outcome::Failure)
                .user(person)
                .target(target)
                .reason(reason)
                .detail("action", *action);
            if let Some(login) = login {
                e = e.login(login);
            }
            if let Some(policies) = policies {
                e = e.policy_ids(policies.split(','));
            }
            e
        }
        SessionEvent::SessionStarted {
            session_id,
            person,
            target,
            login,
            kind,
            via_jump,
            because,
            ticket,
            peer,
            setup,
        } => {
            let mut e = AuditEvent::new(Action::SessionStart, Outcome::Success)
                .user(person)
                .target(target)
                .login(login)
                .session(session_id)
                .policy_ids(because.split(','))
                .detail("kind", kind.as_str())
                .detail("via_jump", *via_jump)
                .detail("setup_ms", setup.as_millis() as u64);
            if let Some(ticket) = ticket {
                e = e.ticket(ticket);
            }
            with_peer(e, peer)
        }
        SessionEvent::SessionEnded {
            session_id,
            kind: _,
            person,
            target,
            login,
            duration,
            bytes_to_target,
            bytes_from_target,
            exit_status,
            outcome,
        } => {
            let mut e = AuditEvent::new(Action::SessionEnd, Outcome::Success)
                .user(person)
                .target(target)
                .login(login)
                .session(session_id)
                .bytes(*bytes_to_target, *bytes_from_target)
                .duration(*duration)
                .detail("end", outcome.as_str());
            if let Some(status) = exit_status {
                e = e.exit_status(i64::from(*status));
            }
            e
        }
        SessionEvent::AccessRequested {
            request_id,
            person,
            target,
            login,
            reason,
        } => AuditEvent::new(Action::RequestCreate, Outcome::Success)
            .user(person)
            .target(target)
            .login(login)
            .reason(reason)
            .detail("request_id", request_id.as_str()),
        SessionEvent::CertificateIssued {
            kind,
            serial,
            key_id,
            principals,
            valid_before,
        } => AuditEvent::new(Action::CertificateIssue, Outcome::Success)
            .detail("kind", *kind)
            .detail("serial", serial.to_string())
            .detail("key_id", key_id.as_str())
            .detail("principals", principals.clone())
            .detail("valid_before", *valid_before),
        SessionEvent::CertificateSigningFailed { kind, reason } => {
            AuditEvent::new(Action::CertificateIssue, Outcome::Failure)
                .detail("kind", *kind)
                .reason(reason)
                .level(Level::Error)
        }
        SessionEvent::GrantFirstUsed {
            request_id,
            person,
            target,
            requested_at,
            approved_at,
            first_session_at,
        } => AuditEvent::new(Action::Other("request.first_use".into()), Outcome::Success)
            .user(person)
            .target(target)
            .detail("request_id", request_id.as_str())
            .detail("time_to_approval_secs", approved_at - requested_at)
            .detail("time_to_grant_secs", first_session_at - requested_at),
        SessionEvent::SessionRefused {
            session_id,
            person,
            target,
            login,
            reason,
        } => AuditEvent::new(Action::SessionStart, Outcome::Failure)
            .user(person)
            .target(target)
            .login(login)
            .session(session_id)
            .reason(reason)
            .level(Level::Error),
        SessionEvent::RecordingStored {
            session_id,
            recording_id,
            digest,
            bytes,
            complete,
        } => recording_stored(session_id, recording_id, *digest, *bytes, *complete),
        SessionEvent::RecordingFailed { session_id, reason } => {
            AuditEvent::new(Action::RecordingStored, Outcome::Failure)
                .session(session_id)
                .reason(reason)
                .level(Level::Error)
        }
        SessionEvent::TargetFailed {
            person,
            target,
            reason,
        } => AuditEvent::new(Action::TargetFailure, Outcome::Failure)
            .user(person)
            .target(target)
            .reason(reason)
            .level(Level::Warning),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakglass_use_is_critical() {
        let event = to_audit(&SessionEvent::BreakglassUsed {
            person: "oncall".into(),
            token: "0123".into(),
            peer: Some("192.0.2.9:4000".parse().unwrap()),
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"]["action"], "breakglass.use");
        assert_eq!(json["log"]["level"], "critical");
        assert_eq!(json["source"]["ip"], "192.0.2.9");
        assert_eq!(json["user"]["name"], "oncall");
    }

    #[test]
    fn a_stored_recording_is_audited_with_its_named_digest() {
        let stored = |algorithm| {
            let event = to_audit(&SessionEvent::RecordingStored {
                session_id: "s1".into(),
                recording_id: "r1".into(),
                digest: RecordingDigest::of(algorithm, b"session"),
                bytes: 7,
                complete: true,
            });
            serde_json::to_value(&event).unwrap()["vestibule"]["details"].clone()
        };
        let blake3 = stored(HashAlgorithm::Blake3);
        let expected = RecordingDigest::of(HashAlgorithm::Blake3, b"session");
        assert_eq!(blake3["digest"], expected.to_string());
        assert!(blake3.get("sha256").is_none(), "{blake3}");
        let sha256 = stored(HashAlgorithm::Sha256);
        let expected = RecordingDigest::of(HashAlgorithm::Sha256, b"session");
        assert_eq!(sha256["digest"], expected.to_string());
        assert_eq!(sha256["sha256"], expected.hex());
        assert_eq!(sha256["bytes"], 7);
    }

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
