//! Checking the certificates people present to the gateway. russh proves only
//! that the client holds the certified key; everything else is checked here.

use std::net::IpAddr;

use russh::keys::ssh_key::Certificate;
use russh::keys::ssh_key::certificate::CertType;

use crate::{Keyring, cidr, now_unix};

/// Why a presented certificate is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRejection {
    #[error("not a user certificate")]
    NotAUserCertificate,
    #[error("not a host certificate")]
    NotAHostCertificate,
    #[error("not signed by a trusted {0} CA")]
    UntrustedCa(crate::CaKind),
    #[error("certificate expired at {valid_before} (unix time)")]
    Expired { valid_before: u64 },
    #[error("certificate not valid before {valid_after} (unix time)")]
    NotYetValid { valid_after: u64 },
    #[error("certificate is not valid for {0}")]
    WrongPrincipal(String),
    #[error("certificate may not be used from {0}")]
    SourceAddress(String),
    #[error("certificate carries the critical option {0}, which the gateway cannot honour")]
    UnsupportedOption(String),
}

/// Check a host certificate a target presents against the CA keys trusted for
/// it: a host certificate, signed by one of `cas`, valid now, for one of `names`.
pub fn verify_host_certificate(
    certificate: &Certificate,
    cas: &[russh::keys::ssh_key::PublicKey],
    names: &[&str],
) -> Result<(), CertRejection> {
    if certificate.cert_type() != CertType::Host {
        return Err(CertRejection::NotAHostCertificate);
    }
    let fingerprints: Vec<_> = cas
        .iter()
        .map(|ca| ca.fingerprint(russh::keys::HashAlg::Sha256))
        .collect();
    check_window(certificate, &fingerprints, crate::CaKind::Host)?;
    let principals = certificate.valid_principals();
    match names
        .iter()
        .find(|name| principals.iter().any(|p| p == *name))
    {
        Some(_) => Ok(()),
        None => Err(CertRejection::WrongPrincipal(names.join(" or "))),
    }
}

/// Signature, CA and validity window, each failure told apart.
fn check_window(
    certificate: &Certificate,
    fingerprints: &[russh::keys::ssh_key::Fingerprint],
    kind: crate::CaKind,
) -> Result<(), CertRejection> {
    // validate_at checks the signature and the CA together; the window is
    // checked separately to say which side of it failed.
    let within = certificate.valid_after().saturating_add(1);
    if certificate.validate_at(within, fingerprints).is_err() {
        return Err(CertRejection::UntrustedCa(kind));
    }
    let now = now_unix();
    if now < certificate.valid_after() {
        return Err(CertRejection::NotYetValid {
            valid_after: certificate.valid_after(),
        });
    }
    if now >= certificate.valid_before() {
        return Err(CertRejection::Expired {
            valid_before: certificate.valid_before(),
        });
    }
    Ok(())
}

impl Keyring {
    /// Check a user certificate presented by `principal`, from `peer`.
    pub fn verify_user(
        &self,
        certificate: &Certificate,
        principal: &str,
        peer: Option<IpAddr>,
    ) -> Result<(), CertRejection> {
        if certificate.cert_type() != CertType::User {
            return Err(CertRejection::NotAUserCertificate);
        }
        check_window(certificate, &self.trusted_fingerprints(), self.kind())?;
        if !certificate
            .valid_principals()
            .iter()
            .any(|p| p == principal)
        {
            return Err(CertRejection::WrongPrincipal(principal.to_owned()));
        }
        for (name, value) in certificate.critical_options().iter() {
            match name.as_str() {
                "source-address" => {
                    let allowed = peer.is_some_and(|ip| cidr::list_contains(value, ip));
                    if !allowed {
                        return Err(CertRejection::SourceAddress(
                            peer.map_or_else(|| "an unknown address".into(), |ip| ip.to_string()),
                        ));
                    }
                }
                other => return Err(CertRejection::UnsupportedOption(other.to_owned())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use russh::keys::ssh_key::{Algorithm, PrivateKey};

    use crate::{CaDirectory, CaKind, UserCertRequest};

    use super::*;

    fn keyring() -> (tempfile::TempDir, crate::Keyring) {
        let root = tempfile::tempdir().unwrap();
        let dir = CaDirectory::new(root.path(), CaKind::User);
        dir.create().unwrap();
        let ring = dir.load().unwrap();
        (root, ring)
    }

    fn person_key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
    }

    fn request<'a>(
        key: &'a PrivateKey,
        valid_for: u64,
        source: Option<&str>,
    ) -> UserCertRequest<'a> {
        UserCertRequest {
            public_key: key.public_key(),
            principals: vec!["alice".into()],
            key_id: "vestibule:alice:test".into(),
            valid_for: Duration::from_secs(valid_for),
            not_after: None,
            backdate: Duration::from_secs(30),
            extensions: vec!["permit-pty", "permit-pty"],
            source_address: source.map(str::to_owned),
        }
    }

    #[test]
    fn issued_certificates_verify() {
        let (_root, ring) = keyring();
        let key = person_key();
        let issued = ring.issue_user(request(&key, 120, None)).unwrap();
        assert_ne!(issued.serial, 0);
        assert_eq!(issued.valid_before - issued.valid_after, 150);
        assert_eq!(issued.certificate.extensions().len(), 1);
        assert_eq!(ring.verify_user(&issued.certificate, "alice", None), Ok(()));
        assert_eq!(
            ring.verify_user(&issued.certificate, "bob", None),
            Err(CertRejection::WrongPrincipal("bob".into()))
        );
    }

    #[test]
    fn validity_never_passes_not_after() {
        let (_root, ring) = keyring();
        let key = person_key();
        let now = crate::now_unix();
        let capped = UserCertRequest {
            not_after: Some(now + 10),
            ..request(&key, 3600, None)
        };
        let issued = ring.issue_user(capped).unwrap();
        assert_eq!(issued.valid_before, now + 10);
        assert_eq!(issued.certificate.valid_before(), now + 10);
        let loose = UserCertRequest {
            not_after: Some(now + 7200),
            ..request(&key, 60, None)
        };
        let issued = ring.issue_user(loose).unwrap();
        assert!(issued.valid_before <= crate::now_unix() + 60);
    }

    #[test]
    fn expired_foreign_and_misplaced_certificates_fail() {
        let (_root, ring) = keyring();
        let (_other_root, other) = keyring();
        let key = person_key();
        let expired = ring.issue_user(request(&key, 0, None)).unwrap().certificate;
        assert!(matches!(
            ring.verify_user(&expired, "alice", None),
            Err(CertRejection::Expired { .. })
        ));
        let foreign = other
            .issue_user(request(&key, 60, None))
            .unwrap()
            .certificate;
        assert_eq!(
            ring.verify_user(&foreign, "alice", None),
            Err(CertRejection::UntrustedCa(CaKind::User))
        );
        let fenced = ring
            .issue_user(request(&key, 60, Some("10.0.0.0/8")))
            .unwrap()
            .certificate;
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(ring.verify_user(&fenced, "alice", Some(inside)), Ok(()));
        assert!(ring.verify_user(&fenced, "alice", Some(outside)).is_err());
        assert!(ring.verify_user(&fenced, "alice", None).is_err());
    }
}
