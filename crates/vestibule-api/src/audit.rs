//! What the HTTPS API adds to the audit trail: logins (refused with the source
//! address, or succeeded) and the certificates they give. Recorded without
//! waiting: the API never stalls on the audit writer.

use std::net::SocketAddr;

use vestibule_audit::{Action, AuditEvent, AuditHandle, Outcome};

pub(crate) fn login_refused(
    audit: &Option<AuditHandle>,
    user: &str,
    peer: SocketAddr,
    method: &str,
    reason: &str,
) {
    if let Some(audit) = audit {
        audit.record(
            AuditEvent::new(Action::AuthenticationFailure, Outcome::Failure)
                .user(user)
                .source(peer)
                .auth_method(method)
                .reason(reason)
                .detail("via", "https"),
        );
    }
}

pub(crate) fn login_certified(
    audit: &Option<AuditHandle>,
    user: &str,
    peer: SocketAddr,
    method: &str,
    serial: u64,
    valid_before: u64,
) {
    if let Some(audit) = audit {
        audit.record(
            AuditEvent::new(Action::AuthenticationSuccess, Outcome::Success)
                .user(user)
                .source(peer)
                .auth_method(method)
                .detail("via", "https"),
        );
        audit.record(
            AuditEvent::new(Action::CertificateIssue, Outcome::Success)
                .user(user)
                .source(peer)
                .detail("kind", "user")
                .detail("serial", serial.to_string())
                .detail("valid_before", valid_before)
                .detail("via", "https"),
        );
    }
}

/// A person enrolled a second factor at their first HTTPS login.
pub(crate) fn mfa_enrolled(
    audit: &Option<AuditHandle>,
    user: &str,
    peer: SocketAddr,
    method: &str,
) {
    if let Some(audit) = audit {
        audit.record(
            AuditEvent::new(Action::MfaEnroll, Outcome::Success)
                .user(user)
                .source(peer)
                .auth_method(method)
                .detail("factor", "totp")
                .detail("via", "https"),
        );
    }
}

/// A break-glass token was redeemed at the HTTPS API (level `critical`, as
/// over SSH).
pub(crate) fn breakglass_used(
    audit: &Option<AuditHandle>,
    user: &str,
    peer: SocketAddr,
    token: &str,
) {
    if let Some(audit) = audit {
        audit.record(
            AuditEvent::new(Action::BreakglassUse, Outcome::Success)
                .user(user)
                .source(peer)
                .auth_method("breakglass")
                .reason(format!("break-glass token {token} used"))
                .detail("via", "https"),
        );
    }
}
