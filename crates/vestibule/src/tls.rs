//! TLS for the HTTPS API: the self-signed certificate made at init, loading the
//! configured pair, fingerprints, and the client side's pinned verification.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// A self-signed certificate and its key, both PEM, for `names`.
pub fn self_signed(names: Vec<String>) -> Result<(String, String)> {
    let certified =
        rcgen::generate_simple_self_signed(names).context("cannot make a TLS certificate")?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

/// `SHA256:<base64>` of a certificate's DER, the form `serve` prints.
pub fn fingerprint(der: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(der)))
}

/// The server's rustls configuration and its certificate's fingerprint.
pub fn server_config(cert: &Path, key: &Path) -> Result<(rustls::ServerConfig, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot parse TLS certificate {}", cert.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("{} holds no certificate", cert.display());
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read TLS key {}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("TLS certificate and key do not fit together")?;
    Ok((config, fingerprint))
}

/// Accepts exactly the server certificate with a pinned fingerprint, and checks
/// the handshake signatures as usual.
#[derive(Debug)]
pub struct PinnedCertificate {
    pub fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedCertificate {
    pub fn new(fingerprint: String) -> Self {
        Self {
            fingerprint,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if presented == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the gateway's TLS certificate is {presented}, not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_loads_and_fingerprints_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("c.pem"), &cert).unwrap();
        std::fs::write(dir.path().join("k.pem"), &key).unwrap();
        let (_config, first) =
            server_config(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        let (_config, second) =
            server_config(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        assert_eq!(first, second);
        assert!(first.starts_with("SHA256:") && first.len() == 50, "{first}");
    }
}
