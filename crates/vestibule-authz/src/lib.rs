//! Authorization: decides whether a person may reach a target as a login (and
//! forward ports through it), returning allow or deny with the reason, and mints the
//! proof values that opening a target connection requires.
//!
//! Owns: the [`PolicyEngine`] interface, the role-based engine, and the grant types
//! [`SessionGrant`] and [`ForwardGrant`]. Their fields are private and they have no
//! public constructor, so code outside this crate can hold a grant only by asking
//! [`Authorizer`] for one: no code path can connect to a target unauthorized.
//! Must not touch: the network, the database or the clock of a session. The caller
//! loads the person's roles (a [`Subject`]) and the target; this crate only decides.

mod grant;
mod roles;

pub use grant::{ForwardGrant, SessionGrant};
pub use roles::RolePolicy;

use vestibule_core::{Role, Target};

/// The person asking, with the roles granted to them at the time of asking.
#[derive(Debug, Clone)]
pub struct Subject {
    pub person: String,
    pub roles: Vec<Role>,
}

/// What the person wants to do on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Open a session (shell, exec, subsystem) as `login`.
    Session { login: &'a str },
    /// Forward a TCP connection through the target to `host:port`.
    PortForward { host: &'a str, port: u16 },
}

/// A decision with the rule that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { because: String },
    Deny(Denial),
}

/// Why access was refused. The `Display` form is the line shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("{person} may not use target {target}")]
    TargetNotGranted { person: String, target: String },
    #[error("{person} may not log in to {target} as {login}")]
    LoginNotGranted {
        person: String,
        target: String,
        login: String,
    },
    #[error("{person} may not forward ports through {target}")]
    PortForwardingNotGranted { person: String, target: String },
}

/// A source of decisions. Deny by default: an engine allows only what a rule grants.
pub trait PolicyEngine: Send + Sync {
    fn decide(&self, subject: &Subject, target: &Target, action: Action<'_>) -> Decision;

    /// The logins the subject may use on the target, for pickers and defaults.
    fn allowed_logins(&self, subject: &Subject, target: &Target) -> Vec<String>;
}

/// The one place grants are minted: asks the engine, and on allow returns the proof.
pub struct Authorizer {
    engine: Box<dyn PolicyEngine>,
}

impl Authorizer {
    pub fn new(engine: Box<dyn PolicyEngine>) -> Self {
        Self { engine }
    }

    /// Authorizer over the role rules of the first issue: deny by default.
    pub fn roles() -> Self {
        Self::new(Box::new(RolePolicy))
    }

    pub fn authorize_session(
        &self,
        subject: &Subject,
        target: &Target,
        login: &str,
    ) -> Result<SessionGrant, Denial> {
        match self
            .engine
            .decide(subject, target, Action::Session { login })
        {
            Decision::Allow { because } => {
                // Certificates for the session carry permit-port-forwarding
                // only when forwarding through this target is allowed at all.
                let any_forward = Action::PortForward { host: "*", port: 0 };
                let may_forward_ports = matches!(
                    self.engine.decide(subject, target, any_forward),
                    Decision::Allow { .. }
                );
                Ok(SessionGrant::new(
                    subject.person.clone(),
                    target.clone(),
                    login.to_owned(),
                    because,
                    may_forward_ports,
                ))
            }
            Decision::Deny(denial) => Err(denial),
        }
    }

    /// Forwarding is decided inside an authorized session: the grant for the
    /// session is the proof that the target itself may be reached.
    pub fn authorize_forward(
        &self,
        subject: &Subject,
        session: &SessionGrant,
        host: &str,
        port: u16,
    ) -> Result<ForwardGrant, Denial> {
        match self.engine.decide(
            subject,
            session.target(),
            Action::PortForward { host, port },
        ) {
            Decision::Allow { because } => {
                Ok(ForwardGrant::new(session, host.to_owned(), port, because))
            }
            Decision::Deny(denial) => Err(denial),
        }
    }

    pub fn allowed_logins(&self, subject: &Subject, target: &Target) -> Vec<String> {
        self.engine.allowed_logins(subject, target)
    }
}
