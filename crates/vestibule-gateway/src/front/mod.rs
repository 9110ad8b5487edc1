//! The front end: the SSH server people connect to (and, for ProxyJump, the inner
//! server the gateway runs inside a direct-tcpip channel).

mod factors;
mod forward;
pub(crate) mod jump;
mod lapsed;
mod links;
mod observed;
mod picker;
mod recording;
mod request;
mod session;
mod sso;

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::{Certificate, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use vestibule_core::ConnectionRequest;

use crate::Shared;
use crate::algorithms::is_modern_signature;
use crate::events::SessionEvent;
use links::LinkCache;
use session::{Destination, SessionContext};
use vestibule_identity::{self as identity, IdentityError};

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

/// Environment variables a person may pass to the target.
fn env_allowed(name: &str) -> bool {
    name == "TERM" || name == "LANG" || name.starts_with("LC_") || name == TICKET_ENV
}

/// The variable a person names their ticket in (`ssh -o SetEnv=VESTIBULE_TICKET=INC-1234`).
/// It is attached to the session, not passed to the target.
const TICKET_ENV: &str = "VESTIBULE_TICKET";

enum Role {
    /// A connection from a person's client.
    Outer,
    /// The inner server of a ProxyJump hop: the person is already known; the
    /// inner user name is the login on `target` (the name the client asked for).
    Jump {
        person: String,
        target: String,
        auth_method: &'static str,
    },
}

/// One SSH connection's state, as russh's server handler.
pub struct Connection {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    role: Role,
    /// Set once authentication succeeds: the person, where they go, and how
    /// they proved who they are.
    authenticated: Option<(String, Destination, &'static str)>,
    /// The first factor passed; a TOTP code is still due.
    pending_second_factor: Option<(ConnectionRequest, &'static str)>,
    /// A single sign-on login under way (keyboard-interactive).
    sso: Option<sso::SsoLogin>,
    /// Authentication is refused and the person may be told why (their key
    /// or first factor is proven): only this explanation is left to send, by
    /// keyboard-interactive.
    explanation: Option<String>,
    /// The first factor passed; the person is enrolling a second factor
    /// (the secret offered to them is stored only after a correct code).
    enrolling: Option<(
        ConnectionRequest,
        &'static str,
        vestibule_identity::mfa::Enrolment,
    )>,
    links: LinkCache,
}

impl Connection {
    pub(crate) fn outer(shared: Arc<Shared>, peer: Option<SocketAddr>) -> Self {
        Self {
            shared,
            peer,
            role: Role::Outer,
            authenticated: None,
            pending_second_factor: None,
            sso: None,
            explanation: None,
            enrolling: None,
            links: LinkCache::default(),
        }
    }

    pub(crate) fn jump(
        shared: Arc<Shared>,
        peer: Option<SocketAddr>,
        person: String,
        target: String,
        auth_method: &'static str,
    ) -> Self {
        Self {
            shared,
            peer,
            role: Role::Jump {
                person,
                target,
                auth_method,
            },
            authenticated: None,
            pending_second_factor: None,
            sso: None,
            explanation: None,
            enrolling: None,
            links: LinkCache::default(),
        }
    }

    fn context(&self, handle: russh::server::Handle) -> Option<SessionContext> {
        let (person, destination, auth_method) = self.authenticated.clone()?;
        Some(SessionContext {
            shared: self.shared.clone(),
            person,
            destination,
            auth_method,
            links: self.links.clone(),
            handle,
            peer: self.peer,
            via_jump: matches!(self.role, Role::Jump { .. }),
        })
    }

    /// The inner hop of ProxyJump authenticates on the strength of the outer one.
    fn accept_jump(&mut self, login: &str) -> Option<Auth> {
        let Role::Jump {
            person,
            target,
            auth_method,
        } = &self.role
        else {
            return None;
        };
        self.authenticated = Some((
            person.clone(),
            Destination::Named {
                target: target.clone(),
                login: Some(login.to_owned()),
            },
            auth_method,
        ));
        Some(Auth::Accept)
    }

    fn succeed(&mut self, request: ConnectionRequest, method: &'static str) -> Auth {
        self.shared
            .settings
            .events
            .publish(SessionEvent::Authenticated {
                person: request.person.clone(),
                method,
                peer: self.peer,
            });
        let destination = match request.target {
            Some(target) => Destination::Named {
                target,
                login: request.login,
            },
            None => Destination::Choose,
        };
        self.authenticated = Some((request.person, destination, method));
        Auth::Accept
    }

    fn fail(&self, user: &str, method: &'static str, reason: String) -> Auth {
        self.shared
            .settings
            .events
            .publish(SessionEvent::AuthenticationFailed {
                user: user.to_owned(),
                method,
                peer: self.peer,
                reason,
            });
        Auth::reject()
    }

    /// russh proved possession of the certified key; the CA, type, window,
    /// principal and options are checked here. The person must exist.
    async fn check_certificate(
        &self,
        person: &str,
        certificate: &Certificate,
    ) -> Result<(), String> {
        let keyring = self
            .shared
            .settings
            .user_ca
            .current()
            .map_err(|e| e.to_string())?;
        keyring
            .verify_user(certificate, person, self.peer.map(|p| p.ip()))
            .map_err(|rejection| {
                format!(
                    "{rejection} (key ID {:?}, serial {})",
                    certificate.key_id(),
                    certificate.serial()
                )
            })?;
        let store = &self.shared.settings.store;
        match store.revocation(certificate.serial()).await {
            Ok(None) => {}
            Ok(Some(reason)) => {
                return Err(format!(
                    "certificate serial {} is revoked: {reason}",
                    certificate.serial()
                ));
            }
            // Fail closed: a revocation that cannot be checked is assumed.
            Err(error) => return Err(format!("cannot check revocation: {error}")),
        }
        match store.user_credentials(person).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("unknown user".into()),
            Err(error) => Err(error.to_string()),
        }
    }

    async fn key_belongs(
        &self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Option<ConnectionRequest>, IdentityError> {
        let Ok(request) = ConnectionRequest::parse(user) else {
            return Ok(None);
        };
        let known =
            identity::has_public_key(&self.shared.settings.store, &request.person, key).await?;
        Ok(known.then_some(request))
    }
}

/// Whether the certificate was issued by `vestibule login` to this person after
/// a verified TOTP code (the CA signed the key ID, so it cannot be forged).
fn certified_with_totp(person: &str, certificate: &Certificate) -> bool {
    certificate.key_id()
        == format!(
            "vestibule:{person}:{}",
            vestibule_identity::mfa::LOGIN_WITH_TOTP
        )
}

/// The last part of the key ID of a certificate `vestibule login --sso` issued
/// after a single sign-on whose `amr` named a second factor.
pub const SSO_WITH_MFA: &str = "sso+mfa";

/// Whether the CA issued the certificate to this person with this kind of login.
fn certified_with(person: &str, certificate: &Certificate, kind: &str) -> bool {
    certificate.key_id() == format!("vestibule:{person}:{kind}")
}

impl russh::server::Handler for Connection {
    type Error = FrontError;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        Ok(self.accept_jump(user).unwrap_or_else(Auth::reject))
    }

    // Every well-formed offer with a modern algorithm is let through to the
    // signature: russh offers a certificate's inner key here without saying it
    // is a certificate, and answering differently for known and unknown keys
    // would tell a prober which keys and users exist. The real checks are in
    // `auth_publickey` and `auth_openssh_certificate`, after the signature.
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if let Some(accept) = self.accept_jump(user) {
            return Ok(accept);
        }
        let well_formed = ConnectionRequest::parse(user).is_ok();
        Ok(if well_formed && is_modern_signature(offer.algorithm) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if let Some(accept) = self.accept_jump(user) {
            return Ok(accept);
        }
        if !is_modern_signature(key.algorithm) {
            return Ok(self.fail(user, "publickey", "SHA-1 signature refused".into()));
        }
        Ok(match self.key_belongs(user, key.public_key).await {
            Ok(Some(request)) => self.first_factor_passed(user, request, "publickey").await,
            Ok(None) => self.refuse_unknown_key(user, key.public_key).await,
            Err(error) => self.fail(user, "publickey", error.to_string()),
        })
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        if let Some(accept) = self.accept_jump(user) {
            return Ok(accept);
        }
        let Ok(request) = ConnectionRequest::parse(user) else {
            return Ok(self.fail(user, "certificate", "malformed user name".into()));
        };
        Ok(
            match self.check_certificate(&request.person, certificate).await {
                Ok(()) => {
                    tracing::debug!(person = %request.person, key_id = certificate.key_id(), serial = certificate.serial(), "certificate accepted");
                    if certified_with_totp(&request.person, certificate) {
                        self.succeed(request, "certificate+totp")
                    } else if certified_with(&request.person, certificate, SSO_WITH_MFA) {
                        self.succeed(request, "certificate+mfa")
                    } else if certified_with(
                        &request.person,
                        certificate,
                        vestibule_identity::breakglass::LOGIN_WITH_BREAKGLASS,
                    ) {
                        // Redeemed (and audited as critical) at the HTTPS API.
                        self.succeed(request, "breakglass")
                    } else {
                        self.first_factor_passed(user, request, "certificate").await
                    }
                }
                Err(reason) => self.fail(user, "certificate", reason),
            },
        )
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if matches!(self.role, Role::Jump { .. }) {
            return Ok(Auth::reject());
        }
        Ok(self.password(user, password).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if matches!(self.role, Role::Jump { .. }) {
            return Ok(Auth::reject());
        }
        Ok(self.keyboard_interactive(user, response).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(context) = self.context(session.handle()) else {
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(session::run(context, channel));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(context) = self.context(session.handle()) else {
            return Ok(());
        };
        let originator = (originator_address.to_owned(), originator_port);
        match &context.destination {
            Destination::Named { .. } => {
                tokio::spawn(forward::run(
                    context,
                    host.to_owned(),
                    port,
                    originator,
                    channel,
                    reply,
                ));
            }
            Destination::Choose => {
                tokio::spawn(jump::run(context, host.to_owned(), port, channel, reply));
            }
        }
        Ok(())
    }

    // Replies to channel requests are sent here, in order, because russh keeps one
    // "wants reply" flag per channel that the next request overwrites. Failures
    // after this point reach the person as a message and an exit status.
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(session.channel_success(channel)?)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if env_allowed(name) {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(session.channel_success(channel)?)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(session.channel_success(channel)?)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(session.channel_failure(channel)?)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if let Some((person, _, _)) = &self.authenticated {
            self.shared
                .settings
                .events
                .publish(SessionEvent::AccessDenied {
                    person: person.clone(),
                    target: "-".into(),
                    login: None,
                    action: "ssh.remote_forward",
                    reason: format!("remote port forwarding ({address}:{port}) is not allowed"),
                    policies: None,
                });
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_allowlist() {
        for ok in ["TERM", "LANG", "LC_ALL", "LC_CTYPE"] {
            assert!(super::env_allowed(ok));
        }
        for bad in ["LD_PRELOAD", "PATH", "lang", "EVIL"] {
            assert!(!super::env_allowed(bad));
        }
    }
}
