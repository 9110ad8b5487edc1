//! From what a person asked for to an authorized target: look the target up,
//! settle the login, ask the authorizer. The result is a `SessionGrant` or a
//! [`RouteError`] whose text is the line the person sees.

use vestibule_authz::{Denial, SessionGrant, Subject};
use vestibule_core::Target;
use vestibule_store::StoreError;

use crate::Shared;
use crate::events::SessionEvent;

/// Why a person's request cannot be served. `Display` is the line shown to them
/// (after `vestibule: `).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no target named {0}")]
    NoSuchTarget(String),
    #[error(transparent)]
    Denied(#[from] Denial),
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

pub(crate) async fn subject(shared: &Shared, person: &str) -> Result<Subject, StoreError> {
    Ok(Subject {
        person: person.to_owned(),
        roles: shared.settings.store.roles_of(person).await?,
    })
}

/// Authorize `person` on the target called `target_name` as `login`, or as the
/// target's default login, or as the only login they may use there.
pub(crate) async fn authorize(
    shared: &Shared,
    person: &str,
    target_name: &str,
    login: Option<&str>,
) -> Result<SessionGrant, RouteError> {
    let result = authorize_inner(shared, person, target_name, login).await;
    if let Err(error) = &result {
        match error {
            RouteError::Internal(e) => tracing::error!(error = %e, "store error while authorizing"),
            _ => shared.settings.events.publish(SessionEvent::AccessDenied {
                person: person.to_owned(),
                target: target_name.to_owned(),
                login: login.map(str::to_owned),
                reason: error.to_string(),
            }),
        }
    }
    result
}

async fn authorize_inner(
    shared: &Shared,
    person: &str,
    target_name: &str,
    login: Option<&str>,
) -> Result<SessionGrant, RouteError> {
    let store = &shared.settings.store;
    let target = store
        .target(target_name)
        .await?
        .ok_or_else(|| RouteError::NoSuchTarget(target_name.to_owned()))?;
    let subject = subject(shared, person).await?;
    let authorizer = &shared.settings.authorizer;
    let login = match login.or(target.default_login.as_deref()) {
        Some(login) => login.to_owned(),
        None => {
            let allowed = authorizer.allowed_logins(&subject, &target);
            match allowed.as_slice() {
                [only] => only.clone(),
                [] => {
                    return Err(Denial::TargetNotGranted {
                        person: person.to_owned(),
                        target: target.name,
                    }
                    .into());
                }
                many => {
                    return Err(RouteError::LoginNeeded {
                        person: person.to_owned(),
                        target: target.name,
                        allowed: many.join(", "),
                    });
                }
            }
        }
    };
    Ok(authorizer.authorize_session(&subject, &target, &login)?)
}

/// The targets a person may use, each with the logins they may use there.
pub(crate) async fn reachable(
    shared: &Shared,
    person: &str,
) -> Result<Vec<(Target, Vec<String>)>, StoreError> {
    let subject = subject(shared, person).await?;
    let targets = shared.settings.store.list_targets().await?;
    Ok(targets
        .into_iter()
        .filter_map(|target| {
            let logins = shared.settings.authorizer.allowed_logins(&subject, &target);
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
    person: &str,
    target_name: &str,
    login: Option<&str>,
    host: &str,
    port: u16,
) -> Result<(SessionGrant, vestibule_authz::ForwardGrant), RouteError> {
    let session = authorize(shared, person, target_name, login).await?;
    let subject = subject(shared, person).await?;
    match shared
        .settings
        .authorizer
        .authorize_forward(&subject, &session, host, port)
    {
        Ok(forward) => Ok((session, forward)),
        Err(denial) => {
            shared.settings.events.publish(SessionEvent::AccessDenied {
                person: person.to_owned(),
                target: target_name.to_owned(),
                login: Some(session.login().to_owned()),
                reason: format!("{denial} (to {host}:{port})"),
            });
            Err(denial.into())
        }
    }
}

/// A fresh session id: 16 random hex digits.
pub(crate) fn new_session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
