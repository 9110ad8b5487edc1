//! Issuing certificates.

use std::time::Duration;

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};

use crate::{CaError, Keyring, now_unix};

/// A user certificate to issue.
pub struct UserCertRequest<'a> {
    pub public_key: &'a PublicKey,
    /// Logins the certificate is valid for.
    pub principals: Vec<String>,
    /// Shown in the target's auth log: who, and which session.
    pub key_id: String,
    pub valid_for: Duration,
    /// A Unix time validity must not pass, whatever `valid_for` says (e.g. the
    /// expiry of the break-glass token the certificate is issued for).
    pub not_after: Option<u64>,
    /// How far in the past validity starts, to absorb clock skew.
    pub backdate: Duration,
    /// OpenSSH extensions such as `permit-pty`.
    pub extensions: Vec<&'static str>,
    /// The `source-address` critical option (comma-separated CIDRs), if any.
    pub source_address: Option<String>,
}

/// A host certificate to issue.
pub struct HostCertRequest<'a> {
    pub public_key: &'a PublicKey,
    pub principals: Vec<String>,
    pub key_id: String,
    pub valid_for: Duration,
}

/// A certificate and the facts to record about it.
pub struct IssuedCertificate {
    pub certificate: Certificate,
    pub serial: u64,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    /// SHA-256 fingerprint of the CA key that signed it.
    pub ca_fingerprint: String,
    /// SHA-256 fingerprint of the key it certifies: when that key later comes
    /// alone, the gateway can tell its holder the certificate has expired.
    pub key_fingerprint: String,
}

fn crypto(what: &'static str) -> impl FnOnce(russh::keys::ssh_key::Error) -> CaError {
    move |source| CaError::Crypto { what, source }
}

/// A random serial; never 0, which OpenSSH treats as "no serial".
fn new_serial() -> u64 {
    loop {
        let serial = rand::random::<u64>();
        if serial != 0 {
            return serial;
        }
    }
}

struct Common<'a> {
    public_key: &'a PublicKey,
    cert_type: CertType,
    principals: Vec<String>,
    key_id: String,
    valid_after: u64,
    valid_before: u64,
    critical: Vec<(&'static str, String)>,
    extensions: Vec<&'static str>,
}

impl Keyring {
    fn sign(&self, c: Common<'_>) -> Result<IssuedCertificate, CaError> {
        let signer = self.signing_key()?;
        let serial = new_serial();
        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rng(),
            c.public_key.key_data().clone(),
            c.valid_after,
            c.valid_before,
        )
        .map_err(crypto("start a certificate"))?;
        builder
            .serial(serial)
            .and_then(|b| b.cert_type(c.cert_type))
            .and_then(|b| b.key_id(c.key_id.clone()))
            .map_err(crypto("fill in a certificate"))?;
        for principal in &c.principals {
            builder
                .valid_principal(principal.clone())
                .map_err(crypto("add a principal"))?;
        }
        for (name, value) in &c.critical {
            builder
                .critical_option(*name, value.clone())
                .map_err(crypto("add a critical option"))?;
        }
        for name in &c.extensions {
            builder
                .extension(*name, "")
                .map_err(crypto("add an extension"))?;
        }
        let certificate = builder.sign(signer).map_err(crypto("sign a certificate"))?;
        Ok(IssuedCertificate {
            serial,
            key_id: c.key_id,
            principals: c.principals,
            valid_after: c.valid_after,
            valid_before: c.valid_before,
            ca_fingerprint: signer.public_key().fingerprint(HashAlg::Sha256).to_string(),
            key_fingerprint: certificate
                .public_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            certificate,
        })
    }

    pub fn issue_user(&self, request: UserCertRequest<'_>) -> Result<IssuedCertificate, CaError> {
        let now = now_unix();
        let mut extensions = request.extensions;
        extensions.sort_unstable();
        extensions.dedup();
        self.sign(Common {
            public_key: request.public_key,
            cert_type: CertType::User,
            principals: request.principals,
            key_id: request.key_id,
            valid_after: now.saturating_sub(request.backdate.as_secs()),
            valid_before: now
                .saturating_add(request.valid_for.as_secs())
                .min(request.not_after.unwrap_or(u64::MAX)),
            critical: request
                .source_address
                .map(|a| vec![("source-address", a)])
                .unwrap_or_default(),
            extensions,
        })
    }

    pub fn issue_host(&self, request: HostCertRequest<'_>) -> Result<IssuedCertificate, CaError> {
        let now = now_unix();
        self.sign(Common {
            public_key: request.public_key,
            cert_type: CertType::Host,
            principals: request.principals,
            key_id: request.key_id,
            valid_after: now.saturating_sub(300),
            valid_before: now.saturating_add(request.valid_for.as_secs()),
            critical: Vec::new(),
            extensions: Vec::new(),
        })
    }
}
