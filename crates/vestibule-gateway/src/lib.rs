//! The SSH gateway: the front end people connect to with the stock OpenSSH client,
//! and the back end that reaches targets on their behalf.
//!
//! A connection is one pipeline: authenticate the person (`vestibule-identity`), resolve
//! what they asked for into a target and login and have it authorized ([`route`],
//! which yields a `vestibule_authz::SessionGrant`), connect to the target with
//! that grant ([`back`], logging in with a per-session certificate from
//! [`certs`] or the static gateway key), then move bytes both ways ([`pump`]).
//! ProxyJump runs a second, inner SSH server inside a direct-tcpip channel,
//! feeding the same pipeline (`front::jump`). Recording, audit and metrics
//! observe sessions through one bounded event stream ([`events`]), never by
//! calls in the data path.
//!
//! Owns: the SSH protocol on both sides, algorithm choice, host-key checking of
//! targets, the messages people see on their terminal.
//! Must not touch: the database schema (it asks `vestibule-store`), authorization
//! rules (it asks `vestibule-authz`), CA key files (`vestibule-ca`),
//! configuration files and the gateway's key files (the binary loads them).

pub mod algorithms;
pub mod back;
pub mod certs;
pub mod events;
mod front;
mod live;
pub mod pump;
mod quickack;
pub mod route;
mod threads;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use vestibule_authz::Authorizer;
use vestibule_ca::{Keyring, LiveKeyring};
use vestibule_store::Store;

use threads::SessionThreads;

pub use certs::CertificateSettings;
pub use events::{EventSink, SessionEvent};

/// Everything a running gateway needs, loaded by the caller.
pub struct GatewaySettings {
    /// The gateway's SSH host key, shown to people (also on ProxyJump inner hops).
    pub host_key: PrivateKey,
    /// The static key the gateway logs in to legacy targets with.
    pub client_key: PrivateKey,
    /// How long to wait for a target to accept a TCP connection and finish the
    /// SSH handshake.
    pub target_connect_timeout: Duration,
    pub user_ca: Arc<LiveKeyring>,
    pub host_ca: LiveKeyring,
    pub certificates: CertificateSettings,
    pub store: Store,
    pub authorizer: Authorizer,
    pub events: EventSink,
    pub access_requests: AccessRequestSettings,
    /// The gateway-wide list of CA keys that certify targets registered with
    /// `--global-host-ca` (one key or `@cert-authority` line per line).
    pub target_host_cas: Option<std::path::PathBuf>,
    /// Where sessions are recorded; `None` records nothing (tests of other parts).
    pub recordings: Option<vestibule_recording::RecordingStore>,
    /// Single sign-on for SSH logins (keyboard-interactive), when configured.
    pub sso: Option<vestibule_sso::SshApprovals>,
    pub identity: IdentitySettings,
    /// The ciphers people's clients may choose from (the client picks).
    pub front_ciphers: algorithms::FrontCiphers,
    /// Threads that carry sessions (each connection stays on one); 0 is one
    /// per core.
    pub session_threads: usize,
}

/// Second factors and brute-force limits.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Shared with the HTTPS login, so both count the same failures.
    pub limiter: Arc<vestibule_identity::limiter::Limiter>,
    /// Everyone needs a second factor; people not enrolled are refused.
    pub require_mfa: bool,
    /// With `require_mfa`, people not enrolled enrol after their first factor
    /// (instead of being refused).
    pub enroll_at_first_login: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            limiter: Arc::new(vestibule_identity::limiter::Limiter::new(
                vestibule_identity::limiter::LimiterSettings::default(),
            )),
            require_mfa: false,
            enroll_at_first_login: true,
        }
    }
}

/// Just-in-time access: how requests filed over SSH are made and waited for.
#[derive(Debug, Clone)]
pub struct AccessRequestSettings {
    /// How long a grant filed at the SSH prompt lasts.
    pub duration: Duration,
    /// Approvals (by people other than the requester) a request needs.
    pub approvals_required: i64,
    /// How long a person's session waits for approval.
    pub wait_timeout: Duration,
    /// How long sessions may outlive the grant they rest on.
    pub grace: Duration,
}

impl Default for AccessRequestSettings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3600),
            approvals_required: 1,
            wait_timeout: Duration::from_secs(300),
            grace: Duration::from_secs(60),
        }
    }
}

/// The front end's russh configuration, rebuilt when the host CA rotates or the
/// host certificate nears the end of its life.
struct FrontConfig {
    built: Instant,
    keyring: Arc<Keyring>,
    config: Arc<russh::server::Config>,
}

/// What every connection shares. Read-only after start except the front config,
/// which is read once per accepted connection: nothing here is locked on the data
/// path.
pub(crate) struct Shared {
    pub settings: GatewaySettings,
    pub client_key: Arc<PrivateKey>,
    pub client_config: Arc<russh::client::Config>,
    /// For targets verified by a host CA: also asks for host certificates.
    pub certified_client_config: Arc<russh::client::Config>,
    front: RwLock<Option<FrontConfig>>,
    live: Arc<live::LiveSessions>,
    jump_certs: certs::JumpCertCache,
}

/// A gateway ready to accept connections.
pub struct Gateway {
    shared: Arc<Shared>,
}

/// Failure to run the gateway's listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("SSH listener failed: {0}")]
    Listener(#[from] std::io::Error),
    #[error("cannot certify the gateway's host key: {0}")]
    HostCertificate(#[from] vestibule_ca::CaError),
    #[error(transparent)]
    SessionThreads(#[from] threads::ThreadsError),
}

impl Gateway {
    pub fn new(settings: GatewaySettings) -> Self {
        let client_config = Arc::new(algorithms::client_config());
        let certified_client_config = Arc::new(algorithms::certified_client_config());
        let client_key = Arc::new(settings.client_key.clone());
        Self {
            shared: Arc::new(Shared {
                settings,
                client_key,
                client_config,
                certified_client_config,
                front: RwLock::new(None),
                live: Arc::default(),
                jump_certs: certs::JumpCertCache::default(),
            }),
        }
    }

    /// Accept connections on `listener` until it fails.
    pub async fn serve(&self, listener: TcpListener) -> Result<(), ServeError> {
        // Fail at start, not at the first connection, if the host CA is unusable.
        self.shared.front_config().await?;
        match self.shared.settings.store.end_orphaned_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                sessions = n,
                "sessions left open by a previous run marked ended"
            ),
            Err(error) => tracing::error!(%error, "cannot close sessions of a previous run"),
        }
        let supervisor = tokio::spawn(live::supervise(
            self.shared.live.clone(),
            self.shared.settings.store.clone(),
            self.shared.settings.access_requests.grace,
        ));
        let _stop_supervisor = AbortOnDrop(supervisor);
        let threads = match self.shared.settings.session_threads {
            0 => SessionThreads::default_count(),
            n => n,
        };
        let threads = SessionThreads::start(threads).await?;
        tracing::info!(threads = threads.len(), "session threads started");
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await?;
                    continue;
                }
            };
            // Taken off this runtime's reactor to join the session thread's.
            let socket = match socket.into_std() {
                Ok(socket) => socket,
                Err(error) => {
                    tracing::warn!(%error, %peer, "cannot hand over an accepted connection");
                    continue;
                }
            };
            let shared = self.shared.clone();
            threads.spawn(move || async move {
                let socket = match tokio::net::TcpStream::from_std(socket) {
                    Ok(socket) => quickack::QuickAckStream::new(socket),
                    Err(error) => {
                        tracing::warn!(%error, %peer, "cannot take over an accepted connection");
                        return;
                    }
                };
                let config = match shared.front_config().await {
                    Ok(config) => config,
                    Err(error) => {
                        tracing::error!(%error, "cannot certify the host key; refusing connection");
                        return;
                    }
                };
                let handler = front::Connection::outer(shared, Some(peer));
                match russh::server::run_stream(config, socket, handler).await {
                    Ok(session) => {
                        if let Err(error) = session.await {
                            tracing::debug!(%error, %peer, "connection ended with an error");
                        }
                    }
                    Err(error) => tracing::debug!(%error, %peer, "handshake failed"),
                }
            });
        }
    }
}

/// Whether the listener can go on after `accept` failed. Out of descriptors
/// or memory is a moment under load: wait for sessions to end, then go on, so
/// one burst does not stop the gateway. A connection that the client reset
/// before it was taken is its own problem.
async fn accept_failed(error: std::io::Error) -> Result<(), ServeError> {
    use rustix::io::Errno;
    match error.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::CONNABORTED | Errno::INTR | Errno::AGAIN | Errno::PROTO) => Ok(()),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
            tracing::error!(%error, "cannot accept a connection; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
        _ => Err(ServeError::Listener(error)),
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Shared {
    /// The current front-end configuration, rebuilding it when needed.
    async fn front_config(&self) -> Result<Arc<russh::server::Config>, vestibule_ca::CaError> {
        let keyring = self.settings.host_ca.current()?;
        let renew_after = certs::GATEWAY_HOST_CERT_TTL / 4;
        if let Ok(front) = self.front.read()
            && let Some(front) = front.as_ref()
            && Arc::ptr_eq(&front.keyring, &keyring)
            && front.built.elapsed() < renew_after
        {
            return Ok(front.config.clone());
        }
        let host_key = &self.settings.host_key;
        let certificate = certs::host(
            self,
            host_key.public_key(),
            self.settings.certificates.host_names.clone(),
            "vestibule:gateway".into(),
            certs::GATEWAY_HOST_CERT_TTL,
        )
        .await?;
        let config = Arc::new(algorithms::server_config(
            self.settings.sso.is_some(),
            &self.settings.front_ciphers,
            host_key.clone(),
            vec![certificate],
        ));
        if let Ok(mut front) = self.front.write() {
            *front = Some(FrontConfig {
                built: Instant::now(),
                keyring,
                config: config.clone(),
            });
        }
        Ok(config)
    }
}
