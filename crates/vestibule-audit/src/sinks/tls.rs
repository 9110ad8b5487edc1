//! TLS client settings for syslog over TLS and HTTPS webhooks, built with an
//! explicit provider so nothing here depends on a process-wide default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::AuditError;

/// Where Debian and Red Hat keep the system's CA bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// `ca_file` (PEM) or else the system bundle. With `required` false a
/// missing bundle gives an empty store (plain-HTTP webhooks need none).
pub(crate) fn client_config(
    sink: &str,
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    required: bool,
) -> Result<ClientConfig, AuditError> {
    let config_error = |message: String| AuditError::Config(format!("sink {sink}: {message}"));
    let mut roots = RootCertStore::empty();
    let bundle: Option<PathBuf> = match ca_file {
        Some(path) => Some(path.to_owned()),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    };
    match &bundle {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| config_error(format!("cannot read {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| config_error(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| config_error(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(config_error(format!(
                    "{} holds no certificate",
                    path.display()
                )));
            }
        }
        None if required => {
            return Err(config_error("no CA bundle found; set ca_file".to_owned()));
        }
        None => {}
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_root_certificates(roots);
    match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            refuse_readable_key(key).map_err(config_error)?;
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| config_error(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| config_error(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_error(e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(config_error(
            "cert_file and key_file go together".to_owned(),
        )),
    }
}

/// Like every key file of Vestibule's: refused if group or others can read it.
fn refuse_readable_key(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}
