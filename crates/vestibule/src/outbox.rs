//! Admin commands and recording replays in the audit trail. The CLI is another
//! process than the gateway, which alone writes the audit chain, so the CLI
//! queues its events in the database (an outbox) and the running gateway moves
//! them into the chain.

use std::time::Duration;

use vestibule_audit::{Action, AuditEvent, AuditHandle, Outcome};
use vestibule_metrics::Metrics;
use vestibule_recording::cli::RecordingsCommand;
use vestibule_store::Store;

use crate::changes::AdminChange;
use crate::cli::{
    BreakglassCommand, CaCommand, Command, LockCommand, MfaCommand, RequestCommand, RoleCommand,
    SessionsCommand, TargetCommand, UserCommand,
};

/// The audit action a command stands for, or `None` if it changes nothing.
pub fn action_of(command: &Command) -> Option<Action> {
    Some(match command {
        Command::Lock(LockCommand::Add { .. }) => Action::LockAdd,
        Command::Lock(LockCommand::Remove { .. }) => Action::LockRemove,
        Command::Request(RequestCommand::Create { .. }) => Action::RequestCreate,
        Command::Request(RequestCommand::Approve { .. }) => Action::RequestApprove,
        Command::Request(RequestCommand::Deny { .. }) => Action::RequestDeny,
        Command::Sessions(SessionsCommand::Kill { .. })
        | Command::User(
            UserCommand::Add { .. }
            | UserCommand::Remove { .. }
            | UserCommand::Mfa(MfaCommand::Enroll { .. } | MfaCommand::Remove { .. }),
        )
        | Command::Breakglass(BreakglassCommand::Issue { .. })
        | Command::Target(TargetCommand::Add { .. } | TargetCommand::Remove { .. })
        | Command::Role(
            RoleCommand::Add { .. }
            | RoleCommand::Grant { .. }
            | RoleCommand::Revoke { .. }
            | RoleCommand::Remove { .. },
        )
        | Command::Ca(CaCommand::Rotate { .. } | CaCommand::Revoke { .. })
        | Command::Recordings(RecordingsCommand::Hold { .. } | RecordingsCommand::Sweep { .. }) => {
            Action::AdminChange
        }
        _ => return None,
    })
}

/// Who ran the CLI, as the audit trail names them.
pub fn operator() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Queue the audit event for a command that succeeded (or failed, with why),
/// with the state of the object it changed before and after it ran.
pub async fn record(
    store: &Store,
    action: Action,
    change: Option<AdminChange>,
    outcome: Result<(), String>,
) {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut event = AuditEvent::new(
        action,
        if outcome.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        },
    )
    .user(operator())
    .detail("command", argv.join(" "));
    if let Some(change) = change {
        event = event
            .detail(
                "object",
                format!("{}:{}", change.object_type, change.object_id),
            )
            .detail("object_type", change.object_type)
            .detail("object_id", change.object_id)
            .change(change.before, change.after);
    }
    if let Err(reason) = outcome {
        event = event.reason(reason);
    }
    queue(store, &event).await;
}

/// A recording read back by the CLI (`play`, `recordings export`, `sessions
/// watch`): queued like an admin change, and counted by the gateway's
/// replay metric when it moves the event into the chain.
pub async fn record_replay(
    store: &Store,
    operation: &str,
    requested: &str,
    found: Option<(&str, &str)>,
    outcome: Result<(), String>,
) {
    let mut event = AuditEvent::new(
        Action::RecordingReplay,
        if outcome.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        },
    )
    .user(operator())
    .detail("operation", operation)
    .detail("requested", requested);
    if let Some((recording, session)) = found {
        event = event.detail("recording_id", recording).session(session);
    }
    if let Err(reason) = outcome {
        event = event.reason(reason);
    }
    queue(store, &event).await;
}

async fn queue(store: &Store, event: &AuditEvent) {
    match serde_json::to_string(event) {
        Ok(json) => {
            if let Err(error) = store.outbox_push(&json).await {
                eprintln!("vestibule: warning: cannot queue the audit record: {error}");
            }
        }
        Err(error) => eprintln!("vestibule: warning: cannot encode the audit record: {error}"),
    }
}

/// Move queued CLI events into the audit chain, oldest first, for the life of
/// the gateway. Replays are counted here: the CLI has no metrics endpoint.
pub async fn drain(store: Store, audit: AuditHandle, metrics: Metrics) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let queued = match store.outbox_peek(256).await {
            Ok(queued) => queued,
            Err(error) => {
                tracing::warn!(%error, "cannot read the audit outbox");
                continue;
            }
        };
        let Some(&(last, _)) = queued.last() else {
            continue;
        };
        let mut durable = true;
        for (id, json) in &queued {
            let event = match serde_json::from_str::<AuditEvent>(json) {
                Ok(event) => event,
                Err(error) => {
                    // Kept in the chain as what it is, not dropped.
                    AuditEvent::new(Action::AdminChange, Outcome::Unknown)
                        .reason(format!("unreadable outbox entry {id}: {error}"))
                        .detail("raw", json.as_str())
                }
            };
            let replay = (*event.action() == Action::RecordingReplay)
                .then(|| event.outcome() == Outcome::Success);
            if let Err(error) = audit.append(event).await {
                tracing::error!(%error, "cannot move CLI events into the audit trail");
                durable = false;
                break;
            }
            // Counted when durable: the metric then agrees with the trail.
            if let Some(success) = replay {
                metrics.replay_retrieval(success);
            }
        }
        if durable && let Err(error) = store.outbox_done(last).await {
            tracing::warn!(%error, "cannot clear the audit outbox");
        }
    }
}
