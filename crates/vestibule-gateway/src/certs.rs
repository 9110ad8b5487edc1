//! The certificates the gateway issues: per-session user certificates that log
//! it in to targets, and host certificates for its own host key and for the
//! inner hosts of ProxyJump hops. Every one is recorded in the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::keys::ssh_key::{Algorithm, Certificate, PrivateKey, PublicKey};
use vestibule_authz::SessionGrant;
use vestibule_ca::{CaError, HostCertRequest, IssuedCertificate, Keyring, UserCertRequest};
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
        key_fingerprint: Some(issued.key_fingerprint.clone()),
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
            not_after: None,
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

/// Inner ProxyJump host certificates by principals, reused while more than
/// half their lifetime remains and the host CA is the one that signed them.
/// Issuing one per hop cost a signature, a store write and a durable audit
/// event on every `ssh -J` connection, for a certificate that names only the
/// gateway's own key and the target, and changes only with them.
#[derive(Default)]
pub(crate) struct JumpCertCache(Mutex<HashMap<Vec<String>, CachedJumpCert>>);

struct CachedJumpCert {
    /// Held, so a rotated CA (a new keyring) never matches by address.
    ca: Arc<Keyring>,
    certificate: Certificate,
    valid_before: u64,
}

/// Targets whose certificates the cache keeps at most; past it, it starts over.
const JUMP_CACHE_ENTRIES: usize = 4096;

impl JumpCertCache {
    fn get(&self, principals: &[String], ca: &Arc<Keyring>, now: u64) -> Option<Certificate> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = map.get(principals)?;
        let fresh = cached.valid_before.saturating_sub(now) > JUMP_HOST_CERT_TTL.as_secs() / 2;
        (fresh && Arc::ptr_eq(&cached.ca, ca)).then(|| cached.certificate.clone())
    }

    fn put(&self, principals: Vec<String>, ca: Arc<Keyring>, issued: &IssuedCertificate) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= JUMP_CACHE_ENTRIES && !map.contains_key(&principals) {
            map.clear();
        }
        map.insert(
            principals,
            CachedJumpCert {
                ca,
                certificate: issued.certificate.clone(),
                valid_before: issued.valid_before,
            },
        );
    }
}

pub(crate) fn unix_now() -> u64 {
    u64::try_from(crate::live::unix_now()).unwrap_or(0)
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
    let ca = shared.settings.host_ca.current()?;
    if let Some(certificate) = shared.jump_certs.get(&principals, &ca, unix_now()) {
        return Ok(certificate);
    }
    let issued = ca.issue_host(HostCertRequest {
        public_key: shared.settings.host_key.public_key(),
        principals: principals.clone(),
        key_id: format!("vestibule:jump:{target}"),
        valid_for: JUMP_HOST_CERT_TTL,
    })?;
    record(shared, "host", &issued).await;
    shared.jump_certs.put(principals, ca, &issued);
    Ok(issued.certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vestibule_ca::{CaDirectory, CaKind};

    #[test]
    fn jump_certificates_are_reused_until_half_their_life_or_a_new_ca() {
        let root =
            std::env::temp_dir().join(format!("vestibule-jump-cache-{}", std::process::id()));
        let dir = CaDirectory::new(&root, CaKind::Host);
        dir.create().unwrap();
        let ca = Arc::new(dir.load().unwrap());
        let host_key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let principals = vec!["web1".to_owned(), "10.0.0.5".to_owned()];
        let issued = ca
            .issue_host(HostCertRequest {
                public_key: host_key.public_key(),
                principals: principals.clone(),
                key_id: "vestibule:jump:web1".into(),
                valid_for: JUMP_HOST_CERT_TTL,
            })
            .unwrap();
        let cache = JumpCertCache::default();
        let now = unix_now();
        assert!(cache.get(&principals, &ca, now).is_none());
        cache.put(principals.clone(), ca.clone(), &issued);
        assert_eq!(
            cache.get(&principals, &ca, now),
            Some(issued.certificate.clone())
        );
        assert!(
            cache.get(&principals[..1], &ca, now).is_none(),
            "other principals"
        );
        let later = issued.valid_before - JUMP_HOST_CERT_TTL.as_secs() / 2;
        assert!(
            cache.get(&principals, &ca, later).is_none(),
            "half its life gone"
        );
        let reloaded = Arc::new(dir.load().unwrap());
        assert!(
            cache.get(&principals, &reloaded, now).is_none(),
            "another keyring"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
