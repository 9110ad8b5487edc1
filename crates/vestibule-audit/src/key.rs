//! The audit key: an Ed25519 key that signs checkpoints and the head witness.
//!
//! File format: one line, `ed25519-seed:` followed by the 32-byte seed in
//! base64. The file is created 0600 and refused if group or others can read it.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::AuditError;

const PRIVATE_PREFIX: &str = "ed25519-seed:";
const PUBLIC_PREFIX: &str = "ed25519:";

/// The private audit key. Signing only; verification needs the
/// [`AuditPublicKey`] alone.
pub struct AuditKey {
    signing: SigningKey,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.public_key())
    }
}

impl AuditKey {
    /// A fresh key in memory (tests, and the first start).
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::fill(&mut seed[..]);
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Load the key at `path`, or make one there (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match Self::load(path) {
            Err(AuditError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let key = Self::generate();
        match key.write_new(path) {
            Ok(()) => Ok(key),
            // Another process made it first: use theirs.
            Err(AuditError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Self::load(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Load an existing key, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let meta = fs::metadata(path).map_err(AuditError::io("cannot read audit key", path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AuditError::KeyPermissions {
                path: path.display().to_string(),
                mode,
            });
        }
        let text = Zeroizing::new(
            fs::read_to_string(path).map_err(AuditError::io("cannot read audit key", path))?,
        );
        let bad = |reason: &str| AuditError::KeyFormat {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let encoded = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| bad("expected a line starting with `ed25519-seed:`"))?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| bad("the seed is not valid base64"))?,
        );
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| bad("the seed is not 32 bytes"))?,
        );
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    fn write_new(&self, path: &Path) -> Result<(), AuditError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(AuditError::io("cannot create", parent))?;
        }
        let seed = Zeroizing::new(self.signing.to_bytes());
        let line = Zeroizing::new(format!("{PRIVATE_PREFIX}{}\n", STANDARD.encode(&seed[..])));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(AuditError::io("cannot create audit key", path))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(AuditError::io("cannot write audit key", path))
    }

    pub fn public_key(&self) -> AuditPublicKey {
        AuditPublicKey(self.signing.verifying_key())
    }

    /// An Ed25519 signature over `message`, in base64.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.signing.sign(message).to_bytes())
    }
}

/// The audit key's public half, written `ed25519:<base64>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuditPublicKey(VerifyingKey);

impl AuditPublicKey {
    pub(crate) fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(signature_b64) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

impl fmt::Display for AuditPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for AuditPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditPublicKey({self})")
    }
}

impl FromStr for AuditPublicKey {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || AuditError::PublicKey(text.to_owned());
        let encoded = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(bad)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| bad())?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let first = AuditKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let text = first.public_key().to_string();
        assert_eq!(text.parse::<AuditPublicKey>().unwrap(), first.public_key());
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        AuditKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = AuditKey::load_or_create(&path).unwrap_err();
        assert!(matches!(
            err,
            AuditError::KeyPermissions { mode: 0o640, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn rejects_malformed_files_and_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        fs::write(&path, "ed25519-seed:AAAA\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            AuditKey::load(&path),
            Err(AuditError::KeyFormat { .. })
        ));
        assert!("ed25519:AAAA".parse::<AuditPublicKey>().is_err());
        assert!("ssh-ed25519 AAAA".parse::<AuditPublicKey>().is_err());
    }

    #[test]
    fn signatures_verify_only_for_the_message() {
        let key = AuditKey::generate();
        let sig = key.sign(b"hello");
        assert!(key.public_key().verify(b"hello", &sig));
        assert!(!key.public_key().verify(b"hellO", &sig));
        assert!(!key.public_key().verify(b"hello", "not base64!"));
    }
}
