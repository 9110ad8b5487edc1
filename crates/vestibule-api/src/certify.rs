//! The certificate a login gives a person (password, key proof or single
//! sign-on alike), recorded before it is handed out.

use std::time::Duration;

use russh::keys::ssh_key::PublicKey;
use vestibule_ca::{IssuedCertificate, LiveKeyring, UserCertRequest};
use vestibule_store::{CertificateRecord, Store};

/// Why no certificate could be made; the details are for the gateway's log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertifyError {
    #[error(transparent)]
    Ca(#[from] vestibule_ca::CaError),
    #[error(transparent)]
    Store(#[from] vestibule_store::StoreError),
}

/// Sign `key` for `user` (principal = the user name) with `key_id`, valid for
/// `ttl` but never past `not_after` (backdated a minute for clock skew), and
/// record the certificate.
pub(crate) async fn person(
    user_ca: &LiveKeyring,
    store: &Store,
    user: &str,
    key: &PublicKey,
    key_id: String,
    ttl: Duration,
    not_after: Option<u64>,
) -> Result<IssuedCertificate, CertifyError> {
    let issued = user_ca.current()?.issue_user(UserCertRequest {
        public_key: key,
        principals: vec![user.to_owned()],
        key_id,
        valid_for: ttl,
        not_after,
        backdate: Duration::from_secs(60),
        extensions: vec!["permit-pty", "permit-port-forwarding"],
        source_address: None,
    })?;
    store
        .record_certificate(&CertificateRecord {
            serial: issued.serial,
            kind: "user".into(),
            key_id: issued.key_id.clone(),
            principals: issued.principals.clone(),
            valid_after: issued.valid_after,
            valid_before: issued.valid_before,
            ca_fingerprint: issued.ca_fingerprint.clone(),
            key_fingerprint: Some(issued.key_fingerprint.clone()),
        })
        .await?;
    Ok(issued)
}
