//! `vestibule lock`, `vestibule sessions` and `vestibule request`: the access
//! broker's commands. They write the database the running gateway watches, which
//! ends locked or killed sessions within a second.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use vestibule_authz::{Action, RequestContext, Subject};
use vestibule_store::{AccessRequest, LockKind, Store};

use crate::admin::{self, print_list};
use crate::cli::{ListArgs, LockCommand, RequestCommand, SessionsCommand};
use crate::datadir::DataDir;
use crate::login::parse_ttl;
use crate::outbox::operator;
use crate::policy::open_authorizer;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-11-28 12:00:00Z`-style UTC time for tables.
fn when(unix: i64) -> String {
    let age = now() - unix;
    match age {
        a if a < 0 => format!("in {}", span(-a)),
        a => format!("{} ago", span(a)),
    }
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub async fn lock(dir: &DataDir, command: LockCommand) -> Result<()> {
    let store = admin::store(dir).await?;
    match command {
        LockCommand::Add {
            user,
            target,
            role,
            ttl,
            reason,
        } => {
            let (kind, value) = match (user, target, role) {
                (Some(user), _, _) => (LockKind::User, user),
                (_, Some(target), _) => (LockKind::Target, target),
                (_, _, Some(role)) => (LockKind::Role, role),
                _ => bail!("say what to lock: --user, --target or --role"),
            };
            if reason.trim().is_empty() {
                bail!("a lock needs a --reason: the people it stops see it");
            }
            exists(&store, kind, &value).await?;
            let ttl = ttl.as_deref().map(parse_ttl).transpose()?;
            let ttl = ttl.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
            let lock = store
                .add_lock(kind, &value, &reason, &operator(), ttl)
                .await?;
            println!("Lock {} added: {}", lock.id, lock.message());
            Ok(())
        }
        LockCommand::List(list) => {
            let locks = store.active_locks().await?;
            print_list(&list, &locks, |l| {
                vec![
                    l.id.clone(),
                    format!("{:?}", l.kind).to_lowercase(),
                    l.value.clone(),
                    l.expires_at.map_or_else(
                        || "until removed".into(),
                        |e| format!("expires {}", when(e)),
                    ),
                    l.reason.clone(),
                ]
            })
        }
        LockCommand::Remove { id } => {
            store.remove_lock(&id).await?;
            println!("Lock {id} removed");
            Ok(())
        }
    }
}

async fn exists(store: &Store, kind: LockKind, value: &str) -> Result<()> {
    let found = match kind {
        LockKind::User => store.user_credentials(value).await?.is_some(),
        LockKind::Target => store.target(value).await?.is_some(),
        LockKind::Role => store.list_roles().await?.iter().any(|r| r.name == value),
    };
    if !found {
        bail!("no {} named {value}", format!("{kind:?}").to_lowercase());
    }
    Ok(())
}

pub async fn sessions(dir: &DataDir, command: SessionsCommand) -> Result<()> {
    let store = admin::store(dir).await?;
    match command {
        SessionsCommand::List(list) => {
            let live = store.live_sessions().await?;
            if !list.json && live.is_empty() {
                println!("No live sessions");
                return Ok(());
            }
            print_list(&list, &live, |s| {
                vec![
                    s.id.clone(),
                    s.person.clone(),
                    format!("{}@{}", s.login, s.target),
                    s.kind.clone(),
                    format!("since {}", when(s.started_at)),
                    format!("up {} down {}", s.bytes_to_target, s.bytes_from_target),
                    s.ticket.clone().unwrap_or_else(|| "-".into()),
                ]
            })
        }
        SessionsCommand::Watch(_) => unreachable_watch(),
        SessionsCommand::Kill { id, reason } => {
            store
                .request_session_kill(&id, &reason)
                .await
                .with_context(|| format!("cannot end session {id}"))?;
            println!("Session {id} will end within a second");
            Ok(())
        }
    }
}

/// `sessions watch` is served by the recordings module (main dispatches it).
fn unreachable_watch() -> Result<()> {
    bail!("sessions watch is handled with the recordings")
}

pub async fn request(dir: &DataDir, command: RequestCommand) -> Result<()> {
    let store = admin::store(dir).await?;
    let settings = dir.load_config()?.access_requests;
    match command {
        RequestCommand::Create {
            user,
            target,
            login,
            duration,
            reason,
        } => {
            let duration = parse_ttl(&duration)?;
            let authorizer = open_authorizer(dir)?;
            let target_record = store
                .target(&target)
                .await?
                .with_context(|| format!("no target named {target}"))?;
            store
                .user_credentials(&user)
                .await?
                .with_context(|| format!("no user named {user}"))?;
            let subject = Subject::new(user.clone(), store.roles_of(&user).await?);
            let action = Action::RequestAccess {
                login: &login,
                duration_secs: duration,
            };
            let mut context = RequestContext::now("cli");
            context.reason = Some(reason.clone());
            let verdict = authorizer.explain(&subject, &target_record, action, &context);
            if !verdict.allowed {
                bail!(
                    "{user} may not request {login} on {target} (policy: {})",
                    verdict.policies_text()
                );
            }
            let request = store
                .create_request(
                    &user,
                    &target,
                    &login,
                    i64::try_from(duration).unwrap_or(i64::MAX),
                    &reason,
                    i64::from(settings.approvals_required.max(1)),
                )
                .await?;
            println!(
                "Request {} filed: {user} as {login} on {target} for {}; needs {} approval(s)",
                request.id,
                span(request.duration_secs),
                request.approvals_needed
            );
            Ok(())
        }
        RequestCommand::List { all, list } => {
            let requests = store.list_requests(all).await?;
            if !list.json && requests.is_empty() {
                println!("No requests");
                return Ok(());
            }
            print_requests(&list, &requests)
        }
        RequestCommand::Approve { id, approver } => {
            let request = store
                .request(&id)
                .await?
                .with_context(|| format!("no request {id}"))?;
            may_decide(dir, &store, &request, &approver).await?;
            let request = store.approve_request(&id, &approver).await?;
            match request.expires_at {
                Some(expires) if request.is_active_grant(now()) => println!(
                    "Request {id} approved: {} may log in to {} as {} until {} ({})",
                    request.person,
                    request.target,
                    request.login,
                    expires,
                    when(expires)
                ),
                _ => println!(
                    "Approval recorded: {} of {} needed",
                    request.approvers.len(),
                    request.approvals_needed
                ),
            }
            Ok(())
        }
        RequestCommand::Deny {
            id,
            approver,
            reason,
        } => {
            let request = store
                .request(&id)
                .await?
                .with_context(|| format!("no request {id}"))?;
            may_decide(dir, &store, &request, &approver).await?;
            store.deny_request(&id, &approver, &reason).await?;
            println!("Request {id} denied");
            Ok(())
        }
    }
}

/// Policy decides who may approve or deny (action request.approve); nobody
/// decides their own request.
async fn may_decide(
    dir: &DataDir,
    store: &Store,
    request: &AccessRequest,
    approver: &str,
) -> Result<()> {
    if request.person == approver {
        bail!("nobody approves their own request");
    }
    store
        .user_credentials(approver)
        .await?
        .with_context(|| format!("no user named {approver}"))?;
    let target = store
        .target(&request.target)
        .await?
        .with_context(|| format!("target {} no longer exists", request.target))?;
    let subject = Subject::new(approver, store.roles_of(approver).await?);
    let action = Action::ApproveRequest {
        login: &request.login,
        requester: &request.person,
        duration_secs: u64::try_from(request.duration_secs).unwrap_or(0),
    };
    let mut context = RequestContext::now("cli");
    context.reason = Some(request.reason.clone());
    let verdict = open_authorizer(dir)?.explain(&subject, &target, action, &context);
    if !verdict.allowed {
        bail!(
            "{approver} may not approve requests for {} on {} (policy: {})",
            request.login,
            request.target,
            verdict.policies_text()
        );
    }
    Ok(())
}

fn print_requests(list: &ListArgs, requests: &[AccessRequest]) -> Result<()> {
    print_list(list, requests, |r| {
        vec![
            r.id.clone(),
            format!("{:?}", r.state).to_lowercase(),
            r.person.clone(),
            format!("{}@{}", r.login, r.target),
            span(r.duration_secs),
            format!("{}/{} approvals", r.approvers.len(), r.approvals_needed),
            r.expires_at.map_or_else(
                || format!("filed {}", when(r.created_at)),
                |e| format!("ends {}", when(e)),
            ),
            r.reason.clone(),
        ]
    })
}
