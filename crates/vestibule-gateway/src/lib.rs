//! The SSH gateway: the front end people connect to with the stock OpenSSH client,
//! and the back end that reaches targets on their behalf.
//!
//! A connection is one pipeline: authenticate the person ([`identity`]), resolve
//! what they asked for into a target and login and have it authorized ([`route`],
//! which yields a `vestibule_authz::SessionGrant`), connect to the target with
//! that grant ([`back`]), then move bytes both ways ([`pump`]). ProxyJump runs a
//! second, inner SSH server inside a direct-tcpip channel, feeding the same
//! pipeline ([`front::jump`]). Recording, audit and metrics observe sessions
//! through one bounded event stream ([`events`]), never by calls in the data path.
//!
//! Owns: the SSH protocol on both sides, algorithm choice, host-key checking of
//! targets, the messages people see on their terminal.
//! Must not touch: the database schema (it asks `vestibule-store`), authorization
//! rules (it asks `vestibule-authz`), configuration files and key files (the
//! binary loads them and passes them in).

pub mod algorithms;
pub mod back;
pub mod events;
mod front;
pub mod identity;
pub mod pump;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Server as _;
use tokio::net::TcpListener;
use vestibule_authz::Authorizer;
use vestibule_store::Store;

pub use events::{EventSink, SessionEvent};

/// Everything a running gateway needs, loaded by the caller.
pub struct GatewaySettings {
    /// The gateway's SSH host key, shown to people (also on ProxyJump inner hops).
    pub host_key: PrivateKey,
    /// The key the gateway logs in to targets with.
    pub client_key: PrivateKey,
    /// How long to wait for a target to accept a TCP connection and finish the
    /// SSH handshake.
    pub target_connect_timeout: Duration,
    pub store: Store,
    pub authorizer: Authorizer,
    pub events: EventSink,
}

/// What every connection shares. Read-only after start: nothing here is locked on
/// the data path.
pub(crate) struct Shared {
    pub settings: GatewaySettings,
    pub client_key: Arc<PrivateKey>,
    pub server_config: Arc<russh::server::Config>,
    pub jump_config: Arc<russh::server::Config>,
    pub client_config: Arc<russh::client::Config>,
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
}

impl Gateway {
    pub fn new(settings: GatewaySettings) -> Self {
        let server_config = Arc::new(algorithms::server_config(settings.host_key.clone()));
        let jump_config = Arc::new(algorithms::jump_config(settings.host_key.clone()));
        let client_config = Arc::new(algorithms::client_config());
        let client_key = Arc::new(settings.client_key.clone());
        Self {
            shared: Arc::new(Shared {
                settings,
                client_key,
                server_config,
                jump_config,
                client_config,
            }),
        }
    }

    /// Accept connections on `listener` until it fails.
    pub async fn serve(&self, listener: TcpListener) -> Result<(), ServeError> {
        let mut acceptor = Acceptor {
            shared: self.shared.clone(),
        };
        acceptor
            .run_on_socket(self.shared.server_config.clone(), &listener)
            .await?;
        Ok(())
    }
}

struct Acceptor {
    shared: Arc<Shared>,
}

impl russh::server::Server for Acceptor {
    type Handler = front::Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> front::Connection {
        front::Connection::outer(self.shared.clone(), peer)
    }

    fn handle_session_error(&mut self, error: front::FrontError) {
        tracing::debug!(%error, "connection ended with an error");
    }
}
