//! Secrets the gateway must read back (TOTP secrets), sealed at rest with
//! ChaCha20-Poly1305 under a key kept outside the database
//! (`DATA_DIR/keys/mfa_secret_key`), so a copy of the database or of a backup
//! alone does not give anyone's second factor away.
//!
//! The row's owner is the associated data: a sealed secret copied to another
//! person's row does not open there.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::StoreError;

/// What a sealed value starts with; values without it are from before sealing.
pub(crate) const SEALED_PREFIX: &str = "v1:";

/// The 256-bit key that seals secrets.
pub struct SecretKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<hidden>)")
    }
}

/// Why a key file's contents are not a key.
#[derive(Debug, thiserror::Error)]
#[error("not a secret key: expected 64 hex digits")]
pub struct BadKey;

impl SecretKey {
    /// A fresh random key, as the text a key file holds (64 hex digits and a newline).
    pub fn generate_text() -> Zeroizing<String> {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        let mut text = Zeroizing::new(hex(bytes.as_ref()));
        text.push('\n');
        text
    }

    /// The key a key file holds.
    pub fn from_text(text: &str) -> Result<Self, BadKey> {
        let bytes = Zeroizing::new(unhex(text.trim()).ok_or(BadKey)?);
        if bytes.len() != 32 {
            return Err(BadKey);
        }
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seal `secret` for the row of `owner`: `v1:` and hex of nonce, ciphertext, tag.
    pub(crate) fn seal(&self, owner: &str, secret: &str) -> Result<String, StoreError> {
        // Random 96-bit nonces: a key seals one value per enrolment, far from
        // the birthday bound.
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut buffer = Zeroizing::new(secret.as_bytes().to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(owner.as_bytes()),
                &mut *buffer,
            )
            .map_err(|_| corrupt(owner, "cannot seal the secret"))?;
        Ok(format!(
            "{SEALED_PREFIX}{}{}",
            hex(&nonce_bytes),
            hex(&buffer)
        ))
    }

    /// Open a value [`seal`](Self::seal) made for `owner`.
    pub(crate) fn open(&self, owner: &str, sealed: &str) -> Result<Zeroizing<String>, StoreError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| corrupt(owner, "not a sealed value"))?;
        let bytes = unhex(body).ok_or_else(|| corrupt(owner, "not hex"))?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt(owner, "too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt(owner, "bad nonce"))?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut buffer)
            .map_err(|_| {
                corrupt(
                    owner,
                    "does not open with this key (another key, or another person's row)",
                )
            })?;
        let text = std::str::from_utf8(plain).map_err(|_| corrupt(owner, "not text"))?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

fn corrupt(owner: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        kind: "second factor of user",
        name: owner.to_owned(),
        reason: reason.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_for_their_owner_and_key() {
        let key = SecretKey::from_text(&SecretKey::generate_text()).unwrap();
        let sealed = key.seal("alice", "JBSWY3DPEHPK3PXP").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            key.open("alice", &sealed).unwrap().as_str(),
            "JBSWY3DPEHPK3PXP"
        );
        assert!(key.open("bob", &sealed).is_err());
        let other = SecretKey::from_text(&SecretKey::generate_text()).unwrap();
        assert!(other.open("alice", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.pop();
        tampered.push(if last == Some('0') { '1' } else { '0' });
        assert!(key.open("alice", &tampered).is_err());
        assert!(SecretKey::from_text("abcd").is_err());
        assert!(SecretKey::from_text("zz").is_err());
    }
}
