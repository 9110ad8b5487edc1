//! The back end: SSH connections from the gateway to targets.
//!
//! A connection can only be made with a `SessionGrant`, and a forwarded channel
//! only with a `ForwardGrant`: the authorizer's proofs. The target's host key is
//! checked against the pinned key (or recorded at first contact for
//! trust-on-first-use targets) before the gateway authenticates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::net::TcpStream;
use vestibule_authz::{ForwardGrant, SessionGrant};
use vestibule_core::{HostKeyPolicy, TargetCredential};
use vestibule_store::Store;

use crate::quickack::QuickAckStream;
use crate::{Shared, certs};

/// Why the gateway could not reach or use a target. `Display` is the line shown
/// to the person.
#[derive(Debug, thiserror::Error)]
pub enum BackError {
    #[error("target {target} unreachable: {reason}")]
    Unreachable { target: String, reason: String },
    #[error(
        "host key of target {target} does not match the pinned key (pinned {expected}, presented {presented}); refusing to connect"
    )]
    HostKeyMismatch {
        target: String,
        expected: String,
        presented: String,
    },
    #[error(
        "target {target} refused the gateway's key for login {login} (its authorized_keys needs the line `vestibule gateway-key` prints)"
    )]
    AuthRejected { target: String, login: String },
    #[error(
        "target {target} refused the gateway's certificate for login {login} (its sshd_config needs TrustedUserCAKeys with the keys `vestibule ca export user` prints, and the login must exist)"
    )]
    CertificateRejected { target: String, login: String },
    #[error("cannot issue a certificate for target {target}: {source}")]
    Certificate {
        target: String,
        #[source]
        source: vestibule_ca::CaError,
    },
    #[error("host certificate of target {target} refused: {reason}; refusing to connect")]
    HostCertificate { target: String, reason: String },
    #[error("target {target} refused to open {what}")]
    Refused { target: String, what: String },
    #[error("SSH error talking to target {target}: {source}")]
    Ssh {
        target: String,
        #[source]
        source: russh::Error,
    },
}

/// An authenticated SSH connection to one target as one login.
pub struct TargetLink {
    handle: client::Handle<TargetHostCheck>,
    target: String,
    login: String,
}

impl TargetLink {
    /// Connect and authenticate to the target the grant names, as its login.
    pub(crate) async fn connect(
        shared: &Shared,
        grant: &SessionGrant,
        session_id: &str,
    ) -> Result<Self, BackError> {
        let target = grant.target();
        let name = target.name.clone();
        let timeout = shared.settings.target_connect_timeout;
        let unreachable = |reason: String| BackError::Unreachable {
            target: name.clone(),
            reason,
        };
        let stream = match tokio::time::timeout(
            timeout,
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        {
            Err(_) => return Err(unreachable(no_answer(timeout))),
            Ok(Err(e)) => return Err(unreachable(describe_io(&e))),
            Ok(Ok(stream)) => QuickAckStream::new(stream),
        };
        let verdict = Arc::new(Mutex::new(None));
        let policy = match &target.host_key {
            // No CA of its own: the gateway-wide list of target host CAs.
            HostKeyPolicy::CertifiedBy { ca_keys } if ca_keys.is_empty() => {
                HostKeyPolicy::CertifiedBy {
                    ca_keys: global_host_cas(shared, &name)?,
                }
            }
            policy => policy.clone(),
        };
        let check = TargetHostCheck {
            target: name.clone(),
            host: target.host.clone(),
            policy,
            store: shared.settings.store.clone(),
            mismatch: verdict.clone(),
        };
        let config = match target.host_key {
            HostKeyPolicy::CertifiedBy { .. } => shared.certified_client_config.clone(),
            _ => shared.client_config.clone(),
        };
        let connecting = client::connect_stream(config, stream, check);
        let mut handle = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "no SSH handshake within {}s",
                    timeout.as_secs()
                )));
            }
            Ok(Ok(handle)) => handle,
            Ok(Err(source)) => {
                let mismatch = verdict.lock().ok().and_then(|mut v| v.take());
                return Err(match mismatch {
                    Some(mismatch) => mismatch,
                    None if matches!(source, russh::Error::Disconnect | russh::Error::IO(_)) => {
                        unreachable(format!("connection closed during SSH handshake ({source})"))
                    }
                    None => BackError::Ssh {
                        target: name,
                        source,
                    },
                });
            }
        };
        let ssh_error = |source| BackError::Ssh {
            target: name.clone(),
            source,
        };
        let auth = match target.credential {
            TargetCredential::Certificate => {
                let (key, certificate) = certs::target_login(shared, grant, session_id)
                    .await
                    .map_err(|source| {
                        shared.settings.events.publish(
                            crate::events::SessionEvent::CertificateSigningFailed {
                                kind: "user",
                                reason: source.to_string(),
                            },
                        );
                        BackError::Certificate {
                            target: name.clone(),
                            source,
                        }
                    })?;
                handle
                    .authenticate_openssh_cert(grant.login(), key, certificate)
                    .await
                    .map_err(ssh_error)?
            }
            TargetCredential::StaticKey => {
                let rsa_hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(ssh_error)?
                    .flatten();
                let key = PrivateKeyWithHashAlg::new(shared.client_key.clone(), rsa_hash);
                handle
                    .authenticate_publickey(grant.login(), key)
                    .await
                    .map_err(ssh_error)?
            }
        };
        if !auth.success() {
            return Err(match target.credential {
                TargetCredential::Certificate => BackError::CertificateRejected {
                    target: name,
                    login: grant.login().to_owned(),
                },
                TargetCredential::StaticKey => BackError::AuthRejected {
                    target: name,
                    login: grant.login().to_owned(),
                },
            });
        }
        Ok(Self {
            handle,
            target: name,
            login: grant.login().to_owned(),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub(crate) async fn open_session(&self) -> Result<russh::Channel<client::Msg>, BackError> {
        self.handle
            .channel_open_session()
            .await
            .map_err(|e| self.refused("a session", e))
    }

    /// Open a forwarded TCP connection through the target; the grant proves it is
    /// allowed.
    pub(crate) async fn open_forward(
        &self,
        grant: &ForwardGrant,
        originator: (&str, u32),
    ) -> Result<russh::Channel<client::Msg>, BackError> {
        self.handle
            .channel_open_direct_tcpip(
                grant.host(),
                u32::from(grant.port()),
                originator.0,
                originator.1,
            )
            .await
            .map_err(|e| {
                self.refused(
                    &format!("a connection to {}:{}", grant.host(), grant.port()),
                    e,
                )
            })
    }

    fn refused(&self, what: &str, error: russh::Error) -> BackError {
        match error {
            russh::Error::ChannelOpenFailure(reason) => BackError::Refused {
                target: self.target.clone(),
                what: format!("{what}: {reason:?}"),
            },
            source => BackError::Ssh {
                target: self.target.clone(),
                source,
            },
        }
    }
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {}s", timeout.as_secs())
}

fn describe_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => "connection refused".into(),
        TimedOut => "connection timed out".into(),
        HostUnreachable => "no route to host".into(),
        NetworkUnreachable => "network unreachable".into(),
        _ => error.to_string(),
    }
}

/// Checks the target's host key during the handshake.
pub(crate) struct TargetHostCheck {
    target: String,
    /// The target's address, also acceptable as a host certificate principal.
    host: String,
    policy: HostKeyPolicy,
    store: Store,
    mismatch: Arc<Mutex<Option<BackError>>>,
}

fn fingerprint(line: &str) -> String {
    PublicKey::from_openssh(line)
        .map(|k| k.fingerprint(Default::default()).to_string())
        .unwrap_or_else(|_| "an unreadable key".into())
}

impl TargetHostCheck {
    fn same_key(pinned: &str, presented: &PublicKey) -> bool {
        PublicKey::from_openssh(pinned).is_ok_and(|k| k.key_data() == presented.key_data())
    }

    fn refuse(&self, expected: &str, presented: &PublicKey) -> bool {
        self.reject(BackError::HostKeyMismatch {
            target: self.target.clone(),
            expected: fingerprint(expected),
            presented: presented.fingerprint(Default::default()).to_string(),
        })
    }

    /// Remember why the target's identity was refused, for the person's message.
    fn reject(&self, error: BackError) -> bool {
        tracing::warn!(%error, "target host key refused");
        if let Ok(mut slot) = self.mismatch.lock() {
            *slot = Some(error);
        }
        false
    }
}

/// The CA keys in the gateway-wide list (`ssh.target_host_cas`), read at each
/// connection so an edit applies at once. Unreadable or empty refuses (fail closed).
fn global_host_cas(shared: &Shared, target: &str) -> Result<Vec<String>, BackError> {
    let refuse = |reason: String| BackError::HostCertificate {
        target: target.to_owned(),
        reason,
    };
    let Some(path) = &shared.settings.target_host_cas else {
        return Err(refuse(
            "it trusts the gateway-wide host CA list, and none is configured (ssh.target_host_cas)"
                .into(),
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        refuse(format!(
            "cannot read the host CA list {}: {e}",
            path.display()
        ))
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            line.strip_prefix("@cert-authority")
                .and_then(|rest| rest.trim_start().split_once(char::is_whitespace))
                .map_or(line, |(_, key)| key.trim())
                .to_owned()
        })
        .collect();
    if keys.is_empty() {
        return Err(refuse(format!(
            "the host CA list {} is empty",
            path.display()
        )));
    }
    Ok(keys)
}

impl client::Handler for TargetHostCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match (&self.policy, presented) {
            (HostKeyPolicy::CertifiedBy { ca_keys }, PublicKeyOrCertificate::Certificate(cert)) => {
                let cas: Vec<PublicKey> = ca_keys
                    .iter()
                    .filter_map(|line| PublicKey::from_openssh(line).ok())
                    .collect();
                let names = [self.target.as_str(), self.host.as_str()];
                match vestibule_ca::verify_host_certificate(cert, &cas, &names) {
                    Ok(()) => Ok(true),
                    Err(rejection) => Ok(self.reject(BackError::HostCertificate {
                        target: self.target.clone(),
                        reason: rejection.to_string(),
                    })),
                }
            }
            (HostKeyPolicy::CertifiedBy { .. }, PublicKeyOrCertificate::PublicKey { .. }) => {
                Ok(self.reject(BackError::HostCertificate {
                    target: self.target.clone(),
                    reason: "it presented a plain host key, not a certificate".into(),
                }))
            }
            // A certificate is only trusted for targets that name their host CA.
            (_, PublicKeyOrCertificate::Certificate(_)) => Ok(false),
            (policy, PublicKeyOrCertificate::PublicKey { key, .. }) => {
                match policy.expected_key() {
                    Some(expected) => {
                        let expected = expected.to_owned();
                        Ok(Self::same_key(&expected, key) || self.refuse(&expected, key))
                    }
                    None => self.trust_first_key(key).await,
                }
            }
        }
    }
}

impl TargetHostCheck {
    async fn trust_first_key(&self, presented: &PublicKey) -> Result<bool, russh::Error> {
        let Ok(line) = presented.to_openssh() else {
            return Ok(false);
        };
        match self.store.record_first_host_key(&self.target, &line).await {
            Ok(pinned) => Ok(Self::same_key(&pinned, presented) || self.refuse(&pinned, presented)),
            Err(error) => {
                tracing::error!(%error, target = %self.target, "cannot record first host key");
                Ok(false)
            }
        }
    }
}
