//! Starting a session channel's recording: fail closed unless policy marks
//! recording optional for this person and target (`recording.optional`), and
//! keep keystrokes when policy asks (`recording.keystrokes`).

use vestibule_authz::{RecordingRule, RequestContext};
use vestibule_recording::{RecordingMeta, SessionKind as RecordingKind, SessionRecorder};

use super::observed::Started;
use super::session::SessionContext;
use crate::route;

/// What the person is told when their session cannot be recorded.
pub(crate) const REFUSED: &str = "recording storage unavailable, session refused";

/// The recorder for a session, `Ok(None)` when it goes on unrecorded (policy
/// allows that and storage failed), or `Err` with the line for the person.
pub(crate) async fn start(
    ctx: &SessionContext,
    started: &Started,
) -> Result<Option<SessionRecorder>, &'static str> {
    let shared = &ctx.shared;
    let Some(store) = &shared.settings.recordings else {
        return Ok(None);
    };
    let rule = |rule| async move {
        let Ok(subject) = route::subject(shared, &ctx.person).await else {
            return false;
        };
        let Ok(Some(target)) = shared.settings.store.target(&started.target).await else {
            return false;
        };
        let mut context = RequestContext::now(ctx.auth_method);
        context.source_ip = ctx.peer.map(|p| p.ip());
        context.ticket = started.ticket.clone();
        shared
            .settings
            .authorizer
            .recording_rule(&subject, &target, &started.login, rule, &context)
    };
    let meta = RecordingMeta {
        session_id: started.session_id.clone(),
        person: ctx.person.clone(),
        target: started.target.clone(),
        login: started.login.clone(),
        ticket: started.ticket.clone(),
        kind: started.recording.clone(),
        started_at: chrono::Utc::now(),
        via_jump: ctx.via_jump,
        record_input: matches!(started.recording, RecordingKind::Pty { .. })
            && rule(RecordingRule::Keystrokes).await,
    };
    match store.start(meta).await {
        Ok(recorder) => Ok(Some(recorder)),
        Err(error) => {
            let optional = rule(RecordingRule::Optional).await;
            tracing::error!(
                %error,
                detail = error.detail().unwrap_or_default(),
                session = %started.session_id,
                optional,
                "cannot start the session's recording"
            );
            if optional { Ok(None) } else { Err(REFUSED) }
        }
    }
}
