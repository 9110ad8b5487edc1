//! Authorization: decides whether a person may reach a target as a login (and
//! forward ports through it), returning allow or deny with the ids of the policies
//! that decided, and mints the proof values that opening a target connection
//! requires.
//!
//! Decisions are taken by Cedar (`cedar-policy`) against the published schema
//! ([`SCHEMA`]): policies written by operators under `DATA_DIR/policies/*.cedar`
//! ([`PolicyDir`]) and the policies that roles stand for ([`role_policy`]).
//!
//! Owns: the [`PolicyEngine`] interface, the Cedar engine, the policy files'
//! loading and validation, and the grant types [`SessionGrant`] and
//! [`ForwardGrant`]. Their fields are private and they have no public
//! constructor, so code outside this crate can hold a grant only by asking
//! [`Authorizer`] for one: no code path can connect to a target unauthorized.
//! Must not touch: the network or the database. The caller loads the person's
//! roles (a [`Subject`]), the target and the request's context (time, address,
//! ticket, grant); this crate only reads policy files and decides.

mod cedar;
mod context;
mod grant;
mod policy_dir;
mod reload;
mod roles;

pub use cedar::CedarEngine;
pub use context::{GrantContext, RequestContext};
pub use grant::{ForwardGrant, SessionGrant};
pub use policy_dir::{PolicyDir, PolicyError, PolicyProblem, PolicySetInfo, set_digest};
pub use reload::{ReloadFailure, ReloadObserver, ReloadReport, ReloadTrigger};
pub use roles::role_policy;

use vestibule_core::{Role, Target};

/// The authorization schema policies are validated against (Cedar syntax).
pub const SCHEMA: &str = include_str!("vestibule.cedarschema");

/// The person asking, with the roles and groups they hold at the time of asking.
#[derive(Debug, Clone)]
pub struct Subject {
    pub person: String,
    pub roles: Vec<Role>,
    pub groups: Vec<String>,
}

impl Subject {
    pub fn new(person: impl Into<String>, roles: Vec<Role>) -> Self {
        Self {
            person: person.into(),
            roles,
            groups: Vec::new(),
        }
    }
}

/// What kind of session the person opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind<'a> {
    Shell,
    Exec { command: &'a str },
    Sftp,
}

/// A recording rule policy may turn on for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingRule {
    /// The session may go on unrecorded when recording storage fails.
    Optional,
    /// What the person types is kept too.
    Keystrokes,
}

/// What the person wants to do on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Open a session as `login`.
    Session {
        login: &'a str,
        kind: SessionKind<'a>,
    },
    /// Forward a TCP connection through the target (as `login`) to `host:port`.
    PortForward {
        login: &'a str,
        host: &'a str,
        port: u16,
    },
    /// Whether a recording rule applies to a session as `login`.
    Recording { login: &'a str, rule: RecordingRule },
    /// Ask for just-in-time access to the target as `login`.
    RequestAccess { login: &'a str, duration_secs: u64 },
    /// Approve someone else's request for the target as `login`.
    ApproveRequest {
        login: &'a str,
        requester: &'a str,
        duration_secs: u64,
    },
}

impl Action<'_> {
    /// The Cedar action id, e.g. `ssh.shell`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Session { kind, .. } => match kind {
                SessionKind::Shell => "ssh.shell",
                SessionKind::Exec { .. } => "ssh.exec",
                SessionKind::Sftp => "ssh.sftp",
            },
            Self::PortForward { .. } => "ssh.port_forward",
            Self::Recording {
                rule: RecordingRule::Optional,
                ..
            } => "recording.optional",
            Self::Recording {
                rule: RecordingRule::Keystrokes,
                ..
            } => "recording.keystrokes",
            Self::RequestAccess { .. } => "request.create",
            Self::ApproveRequest { .. } => "request.approve",
        }
    }

    pub fn login(&self) -> &str {
        match self {
            Self::Session { login, .. }
            | Self::PortForward { login, .. }
            | Self::Recording { login, .. }
            | Self::RequestAccess { login, .. }
            | Self::ApproveRequest { login, .. } => login,
        }
    }
}

/// A decision with the policies that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed, or the forbids
    /// that denied. Empty for a deny by default.
    pub policy_ids: Vec<String>,
    /// The `@reason("...")` annotations of the forbids that denied, meant for
    /// the person (e.g. "production needs a ticket: ssh -o SetEnv=VESTIBULE_TICKET=...").
    pub reasons: Vec<String>,
    /// A deciding forbid is annotated `@ticket("required")`: giving a ticket
    /// may lift it, so the gateway may ask the person for one.
    pub wants_ticket: bool,
    /// Policies that could not be evaluated for this request (they count as not
    /// applying), with Cedar's message.
    pub errors: Vec<String>,
}

impl Verdict {
    /// The policy ids as one audit string, `default-deny` when none decided.
    pub fn policies_text(&self) -> String {
        if self.policy_ids.is_empty() {
            "default-deny".to_owned()
        } else {
            self.policy_ids.join(",")
        }
    }
}

/// A refusal: what the person is told, and the decision behind it (for the audit trail).
#[derive(Debug, Clone)]
pub struct Refused {
    pub denial: Denial,
    pub verdict: Verdict,
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
    #[error("{person} may not {action} on {target} as {login}")]
    ActionNotGranted {
        person: String,
        target: String,
        login: String,
        action: &'static str,
    },
    #[error("access to {target} as {login} refused: {reason}")]
    Forbidden {
        target: String,
        login: String,
        reason: String,
    },
}

/// A source of decisions. Deny by default: an engine allows only what a policy permits.
pub trait PolicyEngine: Send + Sync {
    fn decide(
        &self,
        subject: &Subject,
        target: &Target,
        action: Action<'_>,
        context: &RequestContext,
    ) -> Verdict;

    /// Logins worth asking about for this subject and target (the decision is
    /// still taken per login): those roles name, those policies compare
    /// `context.login` with, and the target's default.
    fn candidate_logins(&self, subject: &Subject, target: &Target) -> Vec<String>;
}

/// A shared engine (the binary keeps a handle to reload it on SIGHUP).
impl<E: PolicyEngine + ?Sized> PolicyEngine for std::sync::Arc<E> {
    fn decide(
        &self,
        subject: &Subject,
        target: &Target,
        action: Action<'_>,
        context: &RequestContext,
    ) -> Verdict {
        (**self).decide(subject, target, action, context)
    }

    fn candidate_logins(&self, subject: &Subject, target: &Target) -> Vec<String> {
        (**self).candidate_logins(subject, target)
    }
}

/// The one place grants are minted: asks the engine, and on allow returns the proof.
pub struct Authorizer {
    engine: Box<dyn PolicyEngine>,
}

impl Authorizer {
    pub fn new(engine: Box<dyn PolicyEngine>) -> Self {
        Self { engine }
    }

    /// An authorizer over the role policies only (no policy files).
    pub fn roles_only() -> Result<Self, PolicyError> {
        Ok(Self::new(Box::new(CedarEngine::without_files()?)))
    }

    /// The raw decision, for `policy explain` and the audit trail.
    pub fn explain(
        &self,
        subject: &Subject,
        target: &Target,
        action: Action<'_>,
        context: &RequestContext,
    ) -> Verdict {
        self.engine.decide(subject, target, action, context)
    }

    /// Authorize a session. On deny the [`Verdict`] comes back too, so the caller
    /// can record which policies refused.
    pub fn authorize_session(
        &self,
        subject: &Subject,
        target: &Target,
        login: &str,
        kind: SessionKind<'_>,
        context: &RequestContext,
    ) -> Result<SessionGrant, Box<Refused>> {
        let action = Action::Session { login, kind };
        let verdict = self.engine.decide(subject, target, action, context);
        if !verdict.allowed {
            let denial = self.denial(subject, target, action, &verdict, context);
            return Err(Box::new(Refused { denial, verdict }));
        }
        // Certificates for the session carry permit-port-forwarding only when
        // forwarding through this target is allowed at all.
        let any_forward = Action::PortForward {
            login,
            host: "*",
            port: 0,
        };
        let may_forward_ports = self
            .engine
            .decide(subject, target, any_forward, context)
            .allowed;
        Ok(SessionGrant::new(
            subject.person.clone(),
            target.clone(),
            login.to_owned(),
            verdict,
            may_forward_ports,
        ))
    }

    /// Forwarding is decided inside an authorized session: the grant for the
    /// session is the proof that the target itself may be reached.
    pub fn authorize_forward(
        &self,
        subject: &Subject,
        session: &SessionGrant,
        host: &str,
        port: u16,
        context: &RequestContext,
    ) -> Result<ForwardGrant, Box<Refused>> {
        let action = Action::PortForward {
            login: session.login(),
            host,
            port,
        };
        let verdict = self
            .engine
            .decide(subject, session.target(), action, context);
        if verdict.allowed {
            Ok(ForwardGrant::new(
                session,
                host.to_owned(),
                port,
                verdict.policies_text(),
            ))
        } else {
            let denial = self.denial(subject, session.target(), action, &verdict, context);
            Err(Box::new(Refused { denial, verdict }))
        }
    }

    /// The logins the subject may open a shell as on the target.
    pub fn allowed_logins(
        &self,
        subject: &Subject,
        target: &Target,
        context: &RequestContext,
    ) -> Vec<String> {
        self.logins_where(subject, target, context, |login| Action::Session {
            login,
            kind: SessionKind::Shell,
        })
    }

    /// Whether policy turns `rule` on for this session.
    pub fn recording_rule(
        &self,
        subject: &Subject,
        target: &Target,
        login: &str,
        rule: RecordingRule,
        context: &RequestContext,
    ) -> bool {
        self.engine
            .decide(subject, target, Action::Recording { login, rule }, context)
            .allowed
    }

    /// The logins the subject may request just-in-time access for.
    pub fn requestable_logins(
        &self,
        subject: &Subject,
        target: &Target,
        context: &RequestContext,
    ) -> Vec<String> {
        self.logins_where(subject, target, context, |login| Action::RequestAccess {
            login,
            duration_secs: 0,
        })
    }

    fn logins_where(
        &self,
        subject: &Subject,
        target: &Target,
        context: &RequestContext,
        action: impl for<'a> Fn(&'a str) -> Action<'a>,
    ) -> Vec<String> {
        self.engine
            .candidate_logins(subject, target)
            .into_iter()
            .filter(|login| {
                self.engine
                    .decide(subject, target, action(login), context)
                    .allowed
            })
            .collect()
    }

    fn denial(
        &self,
        subject: &Subject,
        target: &Target,
        action: Action<'_>,
        verdict: &Verdict,
        context: &RequestContext,
    ) -> Denial {
        let person = subject.person.clone();
        let login = action.login().to_owned();
        if !verdict.policy_ids.is_empty() {
            let reason = if verdict.reasons.is_empty() {
                format!("forbidden by policy {}", verdict.policy_ids.join(", "))
            } else {
                verdict.reasons.join("; ")
            };
            return Denial::Forbidden {
                target: target.name.clone(),
                login,
                reason,
            };
        }
        match action {
            Action::PortForward { .. } => Denial::PortForwardingNotGranted {
                person,
                target: target.name.clone(),
            },
            Action::Session { kind, .. } => {
                let shell = Action::Session {
                    login: &login,
                    kind: SessionKind::Shell,
                };
                if kind != SessionKind::Shell
                    && self.engine.decide(subject, target, shell, context).allowed
                {
                    return Denial::ActionNotGranted {
                        person,
                        target: target.name.clone(),
                        login,
                        action: action.name(),
                    };
                }
                if self.allowed_logins(subject, target, context).is_empty() {
                    Denial::TargetNotGranted {
                        person,
                        target: target.name.clone(),
                    }
                } else {
                    Denial::LoginNotGranted {
                        person,
                        target: target.name.clone(),
                        login,
                    }
                }
            }
            Action::RequestAccess { .. }
            | Action::ApproveRequest { .. }
            | Action::Recording { .. } => Denial::ActionNotGranted {
                person,
                target: target.name.clone(),
                login,
                action: action.name(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
