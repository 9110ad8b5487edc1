//! A bridged channel from start to end, observed: recording, the session's
//! rows and audit events, the live-session registry, and its stopping by a
//! lock, a kill, the end of a grant or a recording failure.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use russh::server::Msg;
use russh::{Channel, ChannelId, client};
use vestibule_recording::{SessionKind as RecordingKind, SessionRecorder};
use vestibule_store::{AccessRequest, SessionStart};

use super::recording;
use super::session::{SessionContext, fail_channel};
use crate::events::SessionEvent;
use crate::live::{LiveHandle, LiveInfo};
use crate::pump;

/// What a session (or a forward) is, for the event that says it started.
pub(crate) struct Started {
    /// When the person asked for it (set-up time is measured from here).
    pub asked: std::time::Instant,
    pub session_id: String,
    pub target: String,
    pub login: String,
    pub kind: String,
    pub because: String,
    pub ticket: Option<String>,
    /// The person's roles, so a role lock can find the session.
    pub roles: Vec<String>,
    /// The just-in-time grant (an approved request) the session rests on.
    pub jit: Option<AccessRequest>,
    /// How the channel is recorded.
    pub recording: RecordingKind,
}

/// Run the pump between the two channels, bracketed by the start and end
/// records, until it ends or a lock, a kill or the end of a grant stops it.
///
/// A plain function returning the block, with the start and the end boxed:
/// this future lives as long as the session, and an `async fn` would hold its
/// arguments twice and size itself by its largest state (the durable audit
/// write, the recording's finish) instead of by the bridge.
pub(crate) fn bridge_observed<'a>(
    ctx: &'a SessionContext,
    started: Started,
    kind: pump::ChannelKind,
    person: Channel<Msg>,
    remote: Channel<client::Msg>,
) -> impl std::future::Future<Output = ()> + Send + 'a {
    let opening = Box::pin(open_observed(ctx, started, person));
    async move {
        let Some(Opened {
            session_id,
            recorder,
            mut live,
            record,
            started_at,
            person,
        }) = opening.await
        else {
            return;
        };
        let settings = &ctx.shared.settings;
        let person_id = person.id();
        let bridged = pump::bridge(
            person,
            remote,
            ctx.handle.clone(),
            kind,
            &live.counters,
            recorder.as_ref(),
        );
        let stopped = async {
            loop {
                if let Some(reason) = live.stop.borrow_and_update().clone() {
                    return reason;
                }
                if live.stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let (traffic, outcome) = tokio::select! {
            traffic = bridged => {
                let outcome = match &traffic.recording_failed {
                    Some(error) => {
                        tracing::error!(%error, detail = error.detail().unwrap_or_default(), session = %session_id, "recording failed; session ended");
                        end_stopped(ctx, person_id, &format!("{error}; session ended")).await;
                        format!("ended: {error}")
                    }
                    None if traffic.target_lost => {
                        let message = format!(
                            "target {} closed the connection without ending the session",
                            record.target
                        );
                        end_stopped(ctx, person_id, &message).await;
                        settings.events.publish(SessionEvent::TargetFailed {
                            person: ctx.person.clone(),
                            target: record.target.clone(),
                            reason: message.clone(),
                        });
                        format!("ended: {message}")
                    }
                    None if traffic.exit_signal => "signal".to_owned(),
                    None => "closed".to_owned(),
                };
                (traffic, outcome)
            }
            reason = stopped => {
                end_stopped(ctx, person_id, &reason).await;
                let traffic = pump::Traffic {
                    bytes_to_target: live.counters.to_target.load(Ordering::Relaxed),
                    bytes_from_target: live.counters.from_target.load(Ordering::Relaxed),
                    ..Default::default()
                };
                (traffic, format!("ended: {reason}"))
            }
        };
        let ended = Ended {
            record,
            started_at,
            traffic,
            outcome,
        };
        Box::pin(close_observed(ctx, &session_id, ended, recorder)).await;
    }
}

/// A session whose start is recorded: what its end needs.
struct Opened {
    session_id: String,
    recorder: Option<SessionRecorder>,
    live: LiveHandle,
    record: SessionStart,
    started_at: std::time::Instant,
    person: Channel<Msg>,
}

/// How a session went, for its end record.
struct Ended {
    record: SessionStart,
    started_at: std::time::Instant,
    traffic: pump::Traffic,
    outcome: String,
}

/// Start the recording, register the session as live and record its start
/// durably; `None` once the person has been told why it was refused.
async fn open_observed(
    ctx: &SessionContext,
    started: Started,
    person: Channel<Msg>,
) -> Option<Opened> {
    let settings = &ctx.shared.settings;
    let session_id = started.session_id.clone();
    // Recording starts first: a session that cannot be recorded is refused
    // before anything says it started.
    let recorder = match recording::start(ctx, &started).await {
        Ok(recorder) => recorder,
        Err(message) => {
            settings.events.publish(SessionEvent::SessionRefused {
                session_id: session_id.clone(),
                person: ctx.person.clone(),
                target: started.target.clone(),
                login: started.login.clone(),
                reason: message.to_owned(),
            });
            fail_channel(&person, message, true).await;
            return None;
        }
    };
    let live = ctx.shared.live.register(
        &session_id,
        LiveInfo {
            person: ctx.person.clone(),
            target: started.target.clone(),
            roles: started.roles,
            grant_expires: started.jit.as_ref().map(|j| j.expires_at.unwrap_or(0)),
        },
    );
    let record = SessionStart {
        id: session_id.clone(),
        person: ctx.person.clone(),
        target: started.target.clone(),
        login: started.login.clone(),
        kind: started.kind.clone(),
        via_jump: ctx.via_jump,
        ticket: started.ticket.clone(),
        grant_id: started.jit.as_ref().map(|j| j.id.clone()),
        source: ctx.peer.map(|p| p.to_string()),
    };
    if let Some(grant) = &started.jit {
        time_to_grant(ctx, grant).await;
    }
    if let Err(error) = settings.store.session_started(&record).await {
        tracing::error!(%error, session = %session_id, "cannot record the session start");
    }
    let started_at = std::time::Instant::now();
    let start_event = SessionEvent::SessionStarted {
        session_id: started.session_id,
        person: ctx.person.clone(),
        target: started.target.clone(),
        login: started.login.clone(),
        kind: started.kind,
        via_jump: ctx.via_jump,
        because: started.because,
        ticket: started.ticket,
        peer: ctx.peer,
        setup: started.asked.elapsed(),
    };
    // No byte moves before the audit trail holds the session's start.
    if let Err(error) = settings.events.publish_durable(start_event).await {
        tracing::error!(%error, session = %session_id, "session refused");
        let _ = settings
            .store
            .session_ended(
                &session_id,
                (0, 0),
                None,
                "refused: audit trail unavailable",
            )
            .await;
        if let Some(recorder) = recorder {
            let _ = recorder.finish().await;
        }
        fail_channel(&person, "audit trail unavailable, session refused", true).await;
        return None;
    }
    Some(Opened {
        session_id,
        recorder,
        live,
        record,
        started_at,
        person,
    })
}

/// Record the session's end, in the store and the audit trail, and close its
/// recording.
async fn close_observed(
    ctx: &SessionContext,
    session_id: &str,
    ended: Ended,
    recorder: Option<SessionRecorder>,
) {
    let settings = &ctx.shared.settings;
    let Ended {
        record,
        started_at,
        traffic,
        outcome,
    } = ended;
    let bytes = (traffic.bytes_to_target, traffic.bytes_from_target);
    if let Err(error) = settings
        .store
        .session_ended(session_id, bytes, traffic.exit_status, &outcome)
        .await
    {
        tracing::error!(%error, session = %session_id, "cannot record the session end");
    }
    settings.events.publish(SessionEvent::SessionEnded {
        session_id: session_id.to_owned(),
        kind: record.kind,
        person: ctx.person.clone(),
        target: record.target,
        login: record.login,
        duration: started_at.elapsed(),
        bytes_to_target: traffic.bytes_to_target,
        bytes_from_target: traffic.bytes_from_target,
        exit_status: traffic.exit_status,
        outcome,
    });
    if let Some(recorder) = recorder {
        finish_recording(ctx, session_id, recorder).await;
    }
}

/// The first session a just-in-time grant allows closes its "time to grant":
/// from the request to this session.
async fn time_to_grant(ctx: &SessionContext, grant: &AccessRequest) {
    let settings = &ctx.shared.settings;
    match settings.store.sessions_with_grant(&grant.id).await {
        Ok(0) => settings.events.publish(SessionEvent::GrantFirstUsed {
            request_id: grant.id.clone(),
            person: ctx.person.clone(),
            target: grant.target.clone(),
            requested_at: grant.created_at,
            approved_at: grant.decided_at.unwrap_or(grant.created_at),
            first_session_at: crate::live::unix_now(),
        }),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot count the grant's sessions"),
    }
}

/// Close the recording and say where it is and whether it is complete.
async fn finish_recording(ctx: &SessionContext, session_id: &str, recorder: SessionRecorder) {
    let events = &ctx.shared.settings.events;
    match recorder.finish().await {
        Ok(summary) => events.publish(SessionEvent::RecordingStored {
            session_id: session_id.to_owned(),
            recording_id: summary.id,
            digest: summary.digest,
            bytes: summary.bytes,
            complete: summary.complete,
        }),
        Err(error) => {
            tracing::error!(%error, detail = error.detail().unwrap_or_default(), session = %session_id, "cannot finish the recording");
            events.publish(SessionEvent::RecordingFailed {
                session_id: session_id.to_owned(),
                reason: error.to_string(),
            });
        }
    }
}

/// Tell the person why their session was ended, then end it.
async fn end_stopped(ctx: &SessionContext, id: ChannelId, reason: &str) {
    let line = format!("\r\nvestibule: {reason}\r\n");
    let handle = &ctx.handle;
    let _ = handle
        .extended_data(id, 1, Bytes::from(line.into_bytes()))
        .await;
    let _ = handle.exit_status_request(id, 1).await;
    let _ = handle.eof(id).await;
    let _ = handle.close(id).await;
}
