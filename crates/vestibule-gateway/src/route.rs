//! From what a person asked for to an authorized target: look the target up,
//! settle the login, ask the authorizer. The result is a `SessionGrant` or a
//! [`RouteError`] whose text is the line the person sees.

use std::net::SocketAddr;

use vestibule_authz::{
    ForwardGrant, GrantContext, Refused, RequestContext, SessionGrant, SessionKind, Subject,
    Verdict,
};
use vestibule_core::Target;
use vestibule_store::{AccessRequest, StoreError};

use crate::Shared;
use crate::events::SessionEvent;

pub use vestibule_authz::Denial;

/// Why a person's request cannot be served. `Display` is the line shown to them
/// (after `vestibule: `).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no target named {0}")]
    NoSuchTarget(String),
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error("{0}")]
    Locked(String),
    #[error(
        "{denial}; you may request access: ssh -t {person}:{login}@{target}@bastion files a request and waits for approval"
    )]
    MayRequest {
        denial: Denial,
        person: String,
        target: String,
        login: String,
    },
    #[error("{denial}")]
    TicketRequired { denial: Denial, login: String },
    #[error(
        "say which login to use on {target}, e.g. ssh {person}:LOGIN@{target}@bastion (you may use: {allowed})"
    )]
    LoginNeeded {
        person: String,
        target: String,
        allowed: String,
    },
    /// Details go to the gateway's log, not to the person.
    #[error("internal error, see the gateway log")]
    Internal(#[from] StoreError),
}

/// What a person asks for, with what is known about how they asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub person: &'a str,
    pub target: &'a str,
    pub login: Option<&'a str>,
    pub kind: SessionKind<'a>,
    pub peer: Option<SocketAddr>,
    pub auth_method: &'a str,
    pub ticket: Option<&'a str>,
}

impl Ask<'_> {
    pub(crate) fn context(&self, grant: Option<&AccessRequest>) -> RequestContext {
        let mut context = RequestContext::now(self.auth_method);
        context.source_ip = self.peer.map(|p| p.ip());
        // The front end names the factors in the method: `publickey+totp`, `breakglass`.
        context.mfa = self.auth_method.ends_with("+totp") || self.auth_method.ends_with("+mfa");
        context.break_glass = self.auth_method == "breakglass";
        context.ticket = self.ticket.map(str::to_owned);
        context.grant = grant.map(|g| GrantContext {
            id: g.id.clone(),
            expires_unix: g.expires_at.unwrap_or(0),
        });
        context
    }
}

/// An authorized session: the proof, and what the live-session registry needs.
pub(crate) struct Authorized {
    pub grant: SessionGrant,
    pub roles: Vec<String>,
    /// The just-in-time grant the session rests on (it ends with it).
    pub jit: Option<AccessRequest>,
}

pub(crate) async fn subject(shared: &Shared, person: &str) -> Result<Subject, StoreError> {
    Ok(Subject::new(
        person,
        shared.settings.store.roles_of(person).await?,
    ))
}

/// Authorize a session on the asked target as the asked login, or as the
/// target's default login, or as the only login the person may use there.
pub(crate) async fn authorize(shared: &Shared, ask: &Ask<'_>) -> Result<Authorized, RouteError> {
    let result = authorize_inner(shared, ask).await;
    if let Err((error, verdict)) = &result {
        match error {
            RouteError::Internal(e) => tracing::error!(error = %e, "store error while authorizing"),
            _ => shared.settings.events.publish(SessionEvent::AccessDenied {
                person: ask.person.to_owned(),
                target: ask.target.to_owned(),
                login: ask.login.map(str::to_owned),
                action: ask.kind_name(),
                reason: error.to_string(),
                policies: verdict.as_ref().map(Verdict::policies_text),
            }),
        }
    }
    result.map_err(|(error, _)| error)
}

impl Ask<'_> {
    fn kind_name(&self) -> &'static str {
        vestibule_authz::Action::Session {
            login: "",
            kind: self.kind,
        }
        .name()
    }
}

type Refusal = (RouteError, Option<Verdict>);

async fn authorize_inner(shared: &Shared, ask: &Ask<'_>) -> Result<Authorized, Refusal> {
    let plain = |e: RouteError| (e, None);
    let store = &shared.settings.store;
    let target = store
        .target(ask.target)
        .await
        .map_err(|e| plain(e.into()))?
        .ok_or_else(|| plain(RouteError::NoSuchTarget(ask.target.to_owned())))?;
    let subject = subject(shared, ask.person)
        .await
        .map_err(|e| plain(e.into()))?;
    let roles: Vec<String> = subject.roles.iter().map(|r| r.name.clone()).collect();
    let locks = store.active_locks().await.map_err(|e| plain(e.into()))?;
    if let Some(lock) = locks
        .iter()
        .find(|l| l.covers(ask.person, &target.name, &roles))
    {
        return Err(plain(RouteError::Locked(lock.message())));
    }
    let authorizer = &shared.settings.authorizer;
    let login = match ask.login.or(target.default_login.as_deref()) {
        Some(login) => login.to_owned(),
        None => settle_login(shared, ask, &subject, &target)
            .await
            .map_err(plain)?,
    };
    let jit = store
        .active_grant(ask.person, &target.name, &login)
        .await
        .map_err(|e| plain(e.into()))?;
    let context = ask.context(jit.as_ref());
    match authorizer.authorize_session(&subject, &target, &login, ask.kind, &context) {
        Ok(grant) => {
            // The session rests on the just-in-time grant only if it would not
            // be allowed without it; then it ends when the grant does.
            let jit = match jit {
                Some(jit) => {
                    let without = ask.context(None);
                    let action = vestibule_authz::Action::Session {
                        login: &login,
                        kind: ask.kind,
                    };
                    (!authorizer
                        .explain(&subject, &target, action, &without)
                        .allowed)
                        .then_some(jit)
                }
                None => None,
            };
            shared.settings.events.publish(SessionEvent::AccessAllowed {
                person: ask.person.to_owned(),
                target: target.name.clone(),
                login: login.clone(),
                action: ask.kind_name(),
                policies: grant.because(),
                peer: ask.peer,
            });
            Ok(Authorized { grant, roles, jit })
        }
        Err(refused) => {
            let Refused { denial, verdict } = *refused;
            let requestable = verdict.policy_ids.is_empty()
                && authorizer
                    .explain(
                        &subject,
                        &target,
                        vestibule_authz::Action::RequestAccess {
                            login: &login,
                            duration_secs: 0,
                        },
                        &context,
                    )
                    .allowed;
            let error = if verdict.wants_ticket && ask.ticket.is_none() {
                RouteError::TicketRequired { denial, login }
            } else if requestable {
                RouteError::MayRequest {
                    denial,
                    person: ask.person.to_owned(),
                    target: target.name.clone(),
                    login,
                }
            } else {
                denial.into()
            };
            Err((error, Some(verdict)))
        }
    }
}

/// No login named and no default: the only one the person may use, if one.
async fn settle_login(
    shared: &Shared,
    ask: &Ask<'_>,
    subject: &Subject,
    target: &Target,
) -> Result<String, RouteError> {
    let context = ask.context(None);
    let allowed = shared
        .settings
        .authorizer
        .allowed_logins(subject, target, &context);
    match allowed.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(Denial::TargetNotGranted {
            person: ask.person.to_owned(),
            target: target.name.clone(),
        }
        .into()),
        many => Err(RouteError::LoginNeeded {
            person: ask.person.to_owned(),
            target: target.name.clone(),
            allowed: many.join(", "),
        }),
    }
}

/// The targets a person may use, each with the logins they may use there.
pub(crate) async fn reachable(
    shared: &Shared,
    person: &str,
) -> Result<Vec<(Target, Vec<String>)>, StoreError> {
    let subject = subject(shared, person).await?;
    let targets = shared.settings.store.list_targets().await?;
    let context = RequestContext::now("publickey");
    Ok(targets
        .into_iter()
        .filter_map(|target| {
            let logins = shared
                .settings
                .authorizer
                .allowed_logins(&subject, &target, &context);
            (!logins.is_empty()).then_some((target, logins))
        })
        .collect())
}

/// The registered target a ProxyJump request names: by name, or by its address.
pub(crate) async fn find_jump_target(
    shared: &Shared,
    host: &str,
    port: u32,
) -> Result<Option<Target>, StoreError> {
    if let Some(target) = shared.settings.store.target(host).await? {
        return Ok(Some(target));
    }
    let targets = shared.settings.store.list_targets().await?;
    Ok(targets
        .into_iter()
        .find(|t| t.host == host && u32::from(t.port) == port))
}

/// Authorize a forwarded TCP connection through a target the person may use.
pub(crate) async fn authorize_forward(
    shared: &Shared,
    ask: &Ask<'_>,
    host: &str,
    port: u16,
) -> Result<(Authorized, ForwardGrant), RouteError> {
    let session = authorize(shared, ask).await?;
    let subject = subject(shared, ask.person).await?;
    let context = ask.context(session.jit.as_ref());
    match shared.settings.authorizer.authorize_forward(
        &subject,
        &session.grant,
        host,
        port,
        &context,
    ) {
        Ok(forward) => Ok((session, forward)),
        Err(refused) => {
            let Refused { denial, verdict } = *refused;
            shared.settings.events.publish(SessionEvent::AccessDenied {
                person: ask.person.to_owned(),
                target: ask.target.to_owned(),
                login: Some(session.grant.login().to_owned()),
                action: "ssh.port_forward",
                reason: format!("{denial} (to {host}:{port})"),
                policies: Some(verdict.policies_text()),
            });
            Err(denial.into())
        }
    }
}

/// A fresh session id: 16 random hex digits.
pub(crate) fn new_session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_of(auth_method: &str) -> RequestContext {
        Ask {
            person: "alice",
            target: "web1",
            login: None,
            kind: SessionKind::Shell,
            peer: None,
            auth_method,
            ticket: None,
        }
        .context(None)
    }

    #[test]
    fn the_method_says_whether_the_login_was_multi_factor_or_break_glass() {
        for mfa in [
            "publickey+totp",
            "sso+totp",
            "sso+mfa",
            "certificate+mfa",
            "certificate+totp",
        ] {
            assert!(context_of(mfa).mfa, "{mfa}");
            assert!(!context_of(mfa).break_glass, "{mfa}");
        }
        for single in ["publickey", "sso", "certificate", "password"] {
            assert!(!context_of(single).mfa, "{single}");
        }
        let glass = context_of("breakglass");
        assert!(glass.break_glass && !glass.mfa);
    }
}
