//! The certificates the gateway issues: per-session user certificates that log
//! it in to targets, and host certificates for its own host key and for the
//! inner hosts of ProxyJump hops. Every one is recorded in the store.

use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::{Algorithm, Certificate, PrivateKey, PublicKey};
use vestibule_authz::SessionGrant;
use vestibule_ca::{CaError, HostCertRequest, IssuedCertificate, UserCertRequest};
use vestibule_store::CertificateRecord;

use crate::Shared;

/// How the gateway's certificates are made.
#[derive(Debug, Clone)]
pub struct CertificateSettings {
    /// Lifetime of the certificates that log the gateway in to targets: it only
    /// has to cover the handshake.
    pub target_cert_ttl: Duration,
    /// `source-address` for those certificates: the gateway's egress addresses.
    pub source_address: Option<String>,
    /// Names and addresses the gateway's own host certificate is valid for.
    pub host_names: Vec<String>,
}

/// Validity of the gateway's own host certificate; renewed well before.
pub(crate) const GATEWAY_HOST_CERT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Validity of an inner ProxyJump host certificate (the inner handshake is now).
const JUMP_HOST_CERT_TTL: Duration = Duration::from_secs(3600);
/// Validity starts this far back, for clock skew between gateway and target.
const BACKDATE: Duration = Duration::from_secs(30);

async fn record(shared: &Shared, kind: &str, issued: &IssuedCertificate) {
    let record = CertificateRecord {
        serial: issued.serial,
        kind: kind.to_owned(),
        key_id: issued.key_id.clone(),
        principals: issued.principals.clone(),
        valid_after: issued.valid_after,
        valid_before: issued.valid_before,
        ca_fingerprint: issued.ca_fingerprint.clone(),
    };
    if let Err(error) = shared.settings.store.record_certificate(&record).await {
        tracing::error!(%error, serial = issued.serial, "cannot record an issued certificate");
    }
    shared
        .settings
        .events
        .publish(crate::events::SessionEvent::CertificateIssued {
            kind: if kind == "host" { "host" } else { "user" },
            serial: issued.serial,
            key_id: issued.key_id.clone(),
            principals: issued.principals.clone(),
            valid_before: issued.valid_before,
        });
}

/// A fresh key and a certificate for it that lets the gateway log in to the
/// grant's target as the grant's login, naming the person and session.
pub(crate) async fn target_login(
    shared: &Shared,
    grant: &SessionGrant,
    session_id: &str,
) -> Result<(Arc<PrivateKey>, Certificate), CaError> {
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|source| {
        CaError::Crypto {
            what: "generate a session key",
            source,
        }
    })?;
    let mut extensions = vec!["permit-pty"];
    if grant.may_forward_ports() {
        extensions.push("permit-port-forwarding");
    }
    let settings = &shared.settings.certificates;
    let issued = shared
        .settings
        .user_ca
        .current()?
        .issue_user(UserCertRequest {
            public_key: key.public_key(),
            principals: vec![grant.login().to_owned()],
            key_id: format!("vestibule:{}:session:{session_id}", grant.person()),
            valid_for: settings.target_cert_ttl,
            backdate: BACKDATE,
            extensions,
            source_address: settings.source_address.clone(),
        })?;
    record(shared, "user", &issued).await;
    Ok((Arc::new(key), issued.certificate))
}

/// A host certificate for `host_key` valid for `principals`.
pub(crate) async fn host(
    shared: &Shared,
    host_key: &PublicKey,
    principals: Vec<String>,
    key_id: String,
    valid_for: Duration,
) -> Result<Certificate, CaError> {
    let issued = shared
        .settings
        .host_ca
        .current()?
        .issue_host(HostCertRequest {
            public_key: host_key,
            principals,
            key_id,
            valid_for,
        })?;
    record(shared, "host", &issued).await;
    Ok(issued.certificate)
}

/// The inner host certificate of a ProxyJump hop to `target`: valid for the
/// target's name and address, so the client's known_hosts check for the name it
/// typed succeeds through the host CA.
pub(crate) async fn jump_host(
    shared: &Shared,
    target: &str,
    address: Option<&str>,
) -> Result<Certificate, CaError> {
    let mut principals = vec![target.to_owned()];
    principals.extend(address.map(str::to_owned));
    principals.dedup();
    host(
        shared,
        shared.settings.host_key.public_key(),
        principals,
        format!("vestibule:jump:{target}"),
        JUMP_HOST_CERT_TTL,
    )
    .await
}
