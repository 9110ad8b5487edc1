//! One session channel (shell, exec or subsystem) from request to end: collect
//! the person's terminal and environment, resolve and authorize the target,
//! open the same kind of session there, then hand both channels to the pump.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, EnvRequest, PtyRequest, client};
use vestibule_authz::SessionKind;

use super::observed::{Started, bridge_observed};
use super::request;
use vestibule_recording::SessionKind as RecordingKind;

use super::links::LinkCache;
use super::{TICKET_ENV, env_allowed, picker};
use crate::Shared;
use crate::back::{BackError, TargetLink};
use crate::events::SessionEvent;
use crate::pump;
use crate::route::{self, Ask, RouteError, new_session_id};

/// Where this connection's sessions go.
#[derive(Debug, Clone)]
pub(crate) enum Destination {
    /// A target named in the user name or by ProxyJump, and the login if given.
    Named {
        target: String,
        login: Option<String>,
    },
    /// No target named: offer the picker.
    Choose,
}

/// What a session task needs from its connection.
pub(crate) struct SessionContext {
    pub shared: std::sync::Arc<Shared>,
    pub person: String,
    pub destination: Destination,
    pub links: LinkCache,
    pub handle: russh::server::Handle,
    pub peer: Option<SocketAddr>,
    pub via_jump: bool,
    /// How the person authenticated (`publickey`, `certificate`, `password`).
    pub auth_method: &'static str,
}

/// The terminal the person asked for.
pub(crate) struct PtySpec {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
    pub modes: Vec<(russh::Pty, u32)>,
}

#[derive(Default)]
struct Setup {
    pty: Option<PtySpec>,
    env: Vec<(String, String)>,
    ticket: Option<String>,
}

enum Command {
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

impl Command {
    fn session_kind(&self) -> SessionKind<'_> {
        match self {
            Self::Shell => SessionKind::Shell,
            Self::Exec(command) => SessionKind::Exec {
                command: std::str::from_utf8(command).unwrap_or("(not UTF-8)"),
            },
            Self::Subsystem(_) => SessionKind::Sftp,
        }
    }

    fn kind(&self) -> String {
        match self {
            Self::Shell => "shell".into(),
            Self::Exec(command) => format!("exec: {}", String::from_utf8_lossy(command)),
            Self::Subsystem(name) => format!("subsystem: {name}"),
        }
    }
}

/// A session channel's task. A plain function returning the block: an
/// `async fn` keeps its arguments twice (as arguments and as the locals they
/// are moved into), for the session's whole life.
#[allow(clippy::manual_async_fn)] // on purpose, as said above
pub(crate) fn run(
    ctx: SessionContext,
    mut channel: Channel<Msg>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        // Only the bridge and the target connection outlive this block: the
        // set-up is boxed and gone before the bridge starts. Awaited in place,
        // its states (authorizing, connecting to the target, the picker, a
        // request for access) would size this task for the session's life.
        let (bridge, _link) = {
            let Some((setup, command)) = requested(&mut channel).await else {
                return;
            };
            let Some(Prepared {
                started,
                person,
                remote,
                link,
            }) = Box::pin(prepare(&ctx, channel, setup, command)).await
            else {
                return;
            };
            let kind = pump::ChannelKind::Session;
            (bridge_observed(&ctx, started, kind, person, remote), link)
        };
        bridge.await;
    }
}

/// Collect the person's terminal and environment up to the request that
/// starts the session; `None` if the channel closes first.
async fn requested(channel: &mut Channel<Msg>) -> Option<(Setup, Command)> {
    let mut setup = Setup::default();
    while let Some(msg) = channel.wait().await {
        let command = match msg {
            ChannelMsg::RequestPty(pty) => {
                let PtyRequest {
                    term,
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                    terminal_modes,
                    ..
                } = *pty;
                setup.pty = Some(PtySpec {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: terminal_modes,
                });
                continue;
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(pty) = setup.pty.as_mut() {
                    (pty.cols, pty.rows, pty.pix_width, pty.pix_height) =
                        (col_width, row_height, pix_width, pix_height);
                }
                continue;
            }
            ChannelMsg::SetEnv(env) => {
                let EnvRequest {
                    variable_name,
                    variable_value,
                    ..
                } = *env;
                if variable_name == TICKET_ENV {
                    setup.ticket = Some(variable_value).filter(|t| !t.trim().is_empty());
                } else if env_allowed(&variable_name) {
                    setup.env.push((variable_name, variable_value));
                }
                continue;
            }
            ChannelMsg::RequestShell { .. } => Command::Shell,
            ChannelMsg::Exec { command, .. } => Command::Exec(command),
            ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => Command::Subsystem(name),
            ChannelMsg::Close => return None,
            _ => continue,
        };
        return Some((setup, command));
    }
    None
}

/// A session that may start: authorized, the target's channel open.
struct Prepared {
    started: Started,
    person: Channel<Msg>,
    remote: Channel<client::Msg>,
    /// The target connection, kept for as long as the session.
    link: TargetLink,
}

/// Resolve and authorize the target and open the session there; `None` once
/// the person has been told why it cannot start.
async fn prepare(
    ctx: &SessionContext,
    mut channel: Channel<Msg>,
    mut setup: Setup,
    command: Command,
) -> Option<Prepared> {
    let with_pty = setup.pty.is_some();
    let (target, login) = match &ctx.destination {
        Destination::Named { target, login } => (target.clone(), login.clone()),
        Destination::Choose => match (&command, setup.pty.as_mut()) {
            (Command::Shell, Some(pty)) => match picker::choose(ctx, &mut channel, pty).await {
                Some((target, login)) => (target, Some(login)),
                None => {
                    end_quietly(&channel).await;
                    return None;
                }
            },
            _ => {
                fail_channel(&channel, &no_target_message(ctx).await, with_pty).await;
                return None;
            }
        },
    };
    let ask = Ask {
        person: &ctx.person,
        target: &target,
        login: login.as_deref(),
        kind: command.session_kind(),
        peer: ctx.peer,
        auth_method: ctx.auth_method,
        ticket: setup.ticket.as_deref(),
    };
    let mut prompted_ticket = None;
    // Session set-up time, for metrics: from here to the first byte moving,
    // minus any time the person spends at a prompt.
    let mut asked = Instant::now();
    let authorized = match route::authorize(&ctx.shared, &ask).await {
        Ok(authorized) => authorized,
        Err(RouteError::TicketRequired { denial, login }) if with_pty => {
            let ticket = request::ask_ticket(&mut channel, &denial).await?;
            asked = Instant::now();
            let ask = Ask {
                login: Some(&login),
                ticket: Some(&ticket),
                ..ask
            };
            match route::authorize(&ctx.shared, &ask).await {
                Ok(authorized) => {
                    prompted_ticket = Some(ticket);
                    authorized
                }
                Err(error) => {
                    fail_channel(&channel, &error.to_string(), with_pty).await;
                    return None;
                }
            }
        }
        Err(RouteError::MayRequest { denial, login, .. }) if with_pty => {
            let ask = Ask {
                login: Some(&login),
                ..ask
            };
            let authorized = request::file_and_wait(ctx, &mut channel, &ask, &denial).await?;
            asked = Instant::now();
            authorized
        }
        Err(error) => {
            fail_channel(&channel, &error.to_string(), with_pty).await;
            return None;
        }
    };
    if prompted_ticket.is_some() {
        setup.ticket = prompted_ticket;
    }
    let grant = &authorized.grant;
    // Each session gets its own target connection: russh pauses a whole
    // connection when one channel's queue is full, so sharing one would let a
    // stalled session stall its neighbours.
    let session_id = new_session_id();
    let opened = match TargetLink::connect(&ctx.shared, grant, &session_id).await {
        Ok(link) => open_remote(&link, &setup, &command)
            .await
            .map(|remote| (link, remote)),
        Err(error) => Err(error),
    };
    let (link, remote) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            ctx.shared
                .settings
                .events
                .publish(SessionEvent::TargetFailed {
                    person: ctx.person.clone(),
                    target: target.clone(),
                    reason: error.to_string(),
                });
            fail_channel(&channel, &error.to_string(), with_pty).await;
            return None;
        }
    };
    let started = Started {
        asked,
        session_id,
        target: grant.target().name.clone(),
        login: grant.login().to_owned(),
        kind: command.kind(),
        because: grant.because(),
        ticket: setup.ticket.clone(),
        roles: authorized.roles.clone(),
        jit: authorized.jit.clone(),
        recording: recording_kind(&command, setup.pty.as_ref()),
    };
    Some(Prepared {
        started,
        person: channel,
        remote,
        link,
    })
}

/// How a session channel is recorded: a terminal as asciicast, the rest by kind.
fn recording_kind(command: &Command, pty: Option<&PtySpec>) -> RecordingKind {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match (command, pty) {
        (Command::Subsystem(name), _) => RecordingKind::Subsystem { name: name.clone() },
        (command, Some(pty)) => RecordingKind::Pty {
            term: pty.term.clone(),
            cols: u16::try_from(pty.cols).unwrap_or(u16::MAX),
            rows: u16::try_from(pty.rows).unwrap_or(u16::MAX),
            command: match command {
                Command::Exec(line) => Some(text(line)),
                _ => None,
            },
        },
        (Command::Exec(line), None) => RecordingKind::Exec {
            command: text(line),
        },
        (Command::Shell, None) => RecordingKind::Exec {
            command: "(shell without a terminal)".into(),
        },
    }
}

/// Open on the target the same kind of session the person asked for.
async fn open_remote(
    link: &TargetLink,
    setup: &Setup,
    command: &Command,
) -> Result<Channel<client::Msg>, BackError> {
    let mut remote = link.open_session().await?;
    let ssh = |source| BackError::Ssh {
        target: link.target().to_owned(),
        source,
    };
    if let Some(pty) = &setup.pty {
        remote
            .request_pty(
                true,
                &pty.term,
                pty.cols,
                pty.rows,
                pty.pix_width,
                pty.pix_height,
                &pty.modes,
            )
            .await
            .map_err(ssh)?;
        expect_reply(&mut remote, link, "a terminal").await?;
    }
    for (name, value) in &setup.env {
        remote
            .set_env(false, name.as_str(), value.as_str())
            .await
            .map_err(ssh)?;
    }
    let what = match command {
        Command::Shell => {
            remote.request_shell(true).await.map_err(ssh)?;
            "a shell"
        }
        Command::Exec(line) => {
            remote.exec(true, line.clone()).await.map_err(ssh)?;
            "the command"
        }
        Command::Subsystem(name) => {
            remote
                .request_subsystem(true, name.as_str())
                .await
                .map_err(ssh)?;
            "the subsystem"
        }
    };
    expect_reply(&mut remote, link, what).await?;
    Ok(remote)
}

async fn expect_reply(
    remote: &mut Channel<client::Msg>,
    link: &TargetLink,
    what: &str,
) -> Result<(), BackError> {
    let refused = || BackError::Refused {
        target: link.target().to_owned(),
        what: format!("{what} for {}", link.login()),
    };
    loop {
        match remote.wait().await {
            Some(ChannelMsg::Success) => return Ok(()),
            Some(ChannelMsg::Failure | ChannelMsg::Close | ChannelMsg::Eof) | None => {
                return Err(refused());
            }
            Some(_) => continue,
        }
    }
}

/// Tell the person why the session cannot go on, in one line on stderr, and end
/// the channel with exit status 1.
pub(crate) async fn fail_channel(channel: &Channel<Msg>, message: &str, with_pty: bool) {
    let end = if with_pty { "\r\n" } else { "\n" };
    let line = format!("vestibule: {message}{end}");
    let _ = channel
        .extended_data_bytes(1, Bytes::from(line.into_bytes()))
        .await;
    let _ = channel.exit_status(1).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

async fn end_quietly(channel: &Channel<Msg>) {
    let _ = channel.exit_status(0).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

async fn no_target_message(ctx: &SessionContext) -> String {
    let person = &ctx.person;
    let how = format!(
        "name a target: ssh {person}:TARGET@bastion, or ssh -J {person}@bastion LOGIN@TARGET"
    );
    match route::reachable(&ctx.shared, person).await {
        Ok(reachable) if reachable.is_empty() => {
            format!("{how}; you may not use any target yet (ask an administrator for a role)")
        }
        Ok(reachable) => {
            let list: Vec<String> = reachable
                .iter()
                .map(|(t, logins)| format!("{} ({})", t.name, logins.join(", ")))
                .collect();
            format!("{how}; yours: {}", list.join(", "))
        }
        Err(error) => {
            tracing::error!(%error, "cannot list targets");
            how
        }
    }
}
