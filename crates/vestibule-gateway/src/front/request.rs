//! Just-in-time access over SSH: a person who may only request a target is
//! offered to file the request at their terminal, and the session goes on once
//! enough others approve it (or ends when it is denied or the wait runs out).

use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use vestibule_authz::Denial;
use vestibule_store::RequestState;

use super::session::{SessionContext, fail_channel};
use crate::events::SessionEvent;
use crate::route::{self, Ask, Authorized};

/// Longest reason accepted at the prompt.
const MAX_REASON: usize = 200;

pub(crate) async fn file_and_wait(
    ctx: &SessionContext,
    channel: &mut Channel<Msg>,
    ask: &Ask<'_>,
    denial: &Denial,
) -> Option<Authorized> {
    let settings = &ctx.shared.settings.access_requests;
    let login = ask.login.unwrap_or_default();
    let prompt = format!(
        "vestibule: {denial}.\r\nYou may request access to {} as {login} for {}.\r\nReason (e.g. INC-1234 disk full), empty to cancel: ",
        ask.target,
        human(settings.duration),
    );
    say(channel, &prompt).await;
    let reason = read_line(channel).await?;
    if reason.is_empty() {
        say(channel, "\r\nvestibule: no request filed\r\n").await;
        let _ = channel.exit_status(1).await;
        let _ = channel.close().await;
        return None;
    }
    let store = &ctx.shared.settings.store;
    let filed = store
        .create_request(
            ask.person,
            ask.target,
            login,
            settings.duration.as_secs() as i64,
            &reason,
            settings.approvals_required,
        )
        .await;
    let request = match filed {
        Ok(request) => request,
        Err(error) => {
            tracing::error!(%error, "cannot file an access request");
            fail_channel(
                channel,
                "cannot file the request, see the gateway log",
                true,
            )
            .await;
            return None;
        }
    };
    ctx.shared
        .settings
        .events
        .publish(SessionEvent::AccessRequested {
            request_id: request.id.clone(),
            person: ask.person.to_owned(),
            target: ask.target.to_owned(),
            login: login.to_owned(),
            reason: reason.clone(),
        });
    let waiting = format!(
        "\r\nRequest {} filed; waiting up to {} for approval (an approver runs: vestibule request approve {}). Ctrl-C gives up.\r\n",
        request.id,
        human(settings.wait_timeout),
        request.id
    );
    say(channel, &waiting).await;
    let deadline = Instant::now() + settings.wait_timeout;
    loop {
        let poll = tokio::time::sleep(Duration::from_millis(500));
        tokio::select! {
            () = poll => {}
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) if data.contains(&3) => {
                    fail_channel(channel, &format!("gave up waiting; request {} stays pending", request.id), true).await;
                    return None;
                }
                Some(ChannelMsg::Close | ChannelMsg::Eof) | None => return None,
                Some(_) => continue,
            },
        }
        let current = match store.request(&request.id).await {
            Ok(Some(current)) => current,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(%error, "cannot read an access request");
                continue;
            }
        };
        match current.state {
            RequestState::Pending if Instant::now() < deadline => continue,
            RequestState::Pending => {
                let message = format!(
                    "no approval within {}; request {} stays pending, connect again once it is approved",
                    human(settings.wait_timeout),
                    request.id
                );
                fail_channel(channel, &message, true).await;
                return None;
            }
            RequestState::Approved => {
                say(channel, "vestibule: request approved\r\n").await;
                return match route::authorize(&ctx.shared, ask).await {
                    Ok(authorized) => Some(authorized),
                    Err(error) => {
                        fail_channel(channel, &error.to_string(), true).await;
                        None
                    }
                };
            }
            RequestState::Denied | RequestState::Cancelled => {
                let why = current.deny_reason.unwrap_or_default();
                fail_channel(
                    channel,
                    &format!("request {} was denied: {why}", request.id),
                    true,
                )
                .await;
                return None;
            }
        }
    }
}

/// Ask the person for a ticket at their terminal (a policy requires one and
/// they gave none with `SetEnv=VESTIBULE_TICKET`). `None` when they cancel.
pub(crate) async fn ask_ticket(channel: &mut Channel<Msg>, denial: &Denial) -> Option<String> {
    let prompt = format!(
        "vestibule: {denial}\r\nTicket for this session (e.g. INC-1234), empty to cancel: "
    );
    say(channel, &prompt).await;
    let ticket = read_line(channel).await?;
    say(channel, "\r\n").await;
    if ticket.is_empty() {
        fail_channel(channel, "no ticket given", true).await;
        return None;
    }
    Some(ticket)
}

async fn say(channel: &Channel<Msg>, text: &str) {
    let _ = channel
        .data_bytes(Bytes::from(text.as_bytes().to_vec()))
        .await;
}

/// A line typed at the person's terminal (raw mode: we echo and edit).
/// `None` when the person hung up or pressed Ctrl-C/Ctrl-D.
async fn read_line(channel: &mut Channel<Msg>) -> Option<String> {
    let mut line = String::new();
    while let Some(msg) = channel.wait().await {
        let ChannelMsg::Data { data } = msg else {
            if matches!(msg, ChannelMsg::Close | ChannelMsg::Eof) {
                return None;
            }
            continue;
        };
        for &byte in data.iter() {
            match byte {
                b'\r' | b'\n' => return Some(line.trim().to_owned()),
                3 | 4 => {
                    say(channel, "\r\n").await;
                    let _ = channel.exit_status(1).await;
                    let _ = channel.close().await;
                    return None;
                }
                0x7f | 8 if line.pop().is_some() => {
                    say(channel, "\x08 \x08").await;
                }
                0x20..=0x7e if line.len() < MAX_REASON => {
                    line.push(char::from(byte));
                    say(channel, &(char::from(byte)).to_string()).await;
                }
                _ => {}
            }
        }
    }
    None
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 3600 == 0 && s >= 3600 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
