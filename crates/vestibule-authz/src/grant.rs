//! Proof values. Only this crate can build them.

use vestibule_core::Target;

use crate::Verdict;

/// Proof that `person` may open sessions on `target` as `login`.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    person: String,
    target: Target,
    login: String,
    verdict: Verdict,
    may_forward_ports: bool,
}

impl SessionGrant {
    pub(crate) fn new(
        person: String,
        target: Target,
        login: String,
        verdict: Verdict,
        may_forward_ports: bool,
    ) -> Self {
        Self {
            person,
            target,
            login,
            verdict,
            may_forward_ports,
        }
    }

    /// Whether the person may forward ports through this target at all.
    pub fn may_forward_ports(&self) -> bool {
        self.may_forward_ports
    }

    pub fn person(&self) -> &str {
        &self.person
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    /// The policies that allowed it, for the audit trail (comma-separated ids).
    pub fn because(&self) -> String {
        self.verdict.policies_text()
    }

    /// The decision that allowed it.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }
}

/// Proof that the holder of a [`SessionGrant`] may forward to `host:port` through
/// the session's target.
#[derive(Debug, Clone)]
pub struct ForwardGrant {
    target: String,
    login: String,
    host: String,
    port: u16,
    because: String,
}

impl ForwardGrant {
    pub(crate) fn new(session: &SessionGrant, host: String, port: u16, because: String) -> Self {
        Self {
            target: session.target.name.clone(),
            login: session.login.clone(),
            host,
            port,
            because,
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn because(&self) -> &str {
        &self.because
    }
}
