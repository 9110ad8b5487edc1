//! Local port forwarding (`ssh -L`) through a named target: the connection is
//! opened by the target's sshd, so destinations are as the target sees them.

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};

use super::observed::{Started, bridge_observed};
use super::session::{Destination, SessionContext};
use crate::events::SessionEvent;
use crate::route::{self, Ask, RouteError, new_session_id};
use vestibule_authz::SessionKind;

pub(crate) async fn run(
    ctx: SessionContext,
    host: String,
    port: u32,
    originator: (String, u32),
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
) {
    let asked = std::time::Instant::now();
    let Destination::Named { target, login } = &ctx.destination else {
        return reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
    };
    let Ok(port) = u16::try_from(port) else {
        return reply.reject(ChannelOpenFailure::ConnectFailed).await;
    };
    let ask = Ask {
        person: &ctx.person,
        target,
        login: login.as_deref(),
        kind: SessionKind::Shell,
        peer: ctx.peer,
        auth_method: ctx.auth_method,
        ticket: None,
    };
    // Set-up awaits are boxed: in place, they would size this task (one per
    // forwarded connection) for the connection's life.
    let (authorized, forward_grant) =
        match Box::pin(route::authorize_forward(&ctx.shared, &ask, &host, port)).await {
            Ok(grants) => grants,
            Err(RouteError::Internal(_)) => {
                return reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
            Err(_) => {
                return reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
            }
        };
    let session_grant = &authorized.grant;
    let opened = match Box::pin(ctx.links.get(&ctx.shared, session_grant)).await {
        Ok(link) => {
            Box::pin(link.open_forward(&forward_grant, (&originator.0, originator.1))).await
        }
        Err(error) => Err(error),
    };
    let remote = match opened {
        Ok(remote) => remote,
        Err(error) => {
            ctx.shared
                .settings
                .events
                .publish(SessionEvent::TargetFailed {
                    person: ctx.person.clone(),
                    target: target.clone(),
                    reason: error.to_string(),
                });
            return reply.reject(ChannelOpenFailure::ConnectFailed).await;
        }
    };
    reply.accept().await;
    let started = Started {
        asked,
        session_id: new_session_id(),
        target: target.clone(),
        login: session_grant.login().to_owned(),
        kind: format!("port-forward: {host}:{port}"),
        because: forward_grant.because().to_owned(),
        ticket: None,
        roles: authorized.roles.clone(),
        jit: authorized.jit.clone(),
        recording: vestibule_recording::SessionKind::Forward {
            host: host.clone(),
            port,
        },
    };
    bridge_observed(
        &ctx,
        started,
        crate::pump::ChannelKind::Forward,
        channel,
        remote,
    )
    .await;
}
