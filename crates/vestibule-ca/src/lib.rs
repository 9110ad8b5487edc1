//! Vestibule's two SSH certificate authorities: the user CA, whose short-lived
//! certificates log the gateway in to targets (and people in to the gateway), and
//! the host CA, which certifies the gateway's host key so clients never see a
//! trust-on-first-use prompt.
//!
//! Owns: the CA key directories under the data dir (`ca/user`, `ca/host`), their
//! rotation, issuing certificates, and checking the certificates people present
//! (CA, type, validity window, principal, critical options).
//! Must not touch: the network, the database (the caller records what was
//! issued), or authorization (the caller decides what a certificate may say).

mod cidr;
mod issue;
mod keyring;
mod verify;

pub use issue::{HostCertRequest, IssuedCertificate, UserCertRequest};
pub use keyring::{CaDirectory, CaKind, Keyring, LiveKeyring};
pub use verify::{CertRejection, verify_host_certificate};

use russh::keys::ssh_key;

/// What can go wrong with CA keys or issuing.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CA key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("cannot parse CA key {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: ssh_key::Error,
    },
    #[error("the {0} CA has no key; run `vestibule init` or restore ca/{0}/")]
    NoKey(CaKind),
    #[error("the {kind} CA has {count} key(s): {hint}")]
    Rotation {
        kind: CaKind,
        count: usize,
        hint: &'static str,
    },
    #[error("cannot {what}: {source}")]
    Crypto {
        what: &'static str,
        #[source]
        source: ssh_key::Error,
    },
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
