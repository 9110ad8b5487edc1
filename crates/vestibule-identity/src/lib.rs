//! Authentication of people: public keys and argon2id passwords, shared by the
//! SSH front end and the HTTP API.
//!
//! Owns: password hashing and checking, matching offered keys against a person's
//! registered keys, generating the gateway's own keys, TOTP second factors
//! ([`totp`], [`mfa`]), brute-force limits ([`limiter`]) and break-glass tokens
//! ([`breakglass`]).
//! Must not touch: sessions, the network, authorization.
//!
//! An unknown user and a wrong credential are indistinguishable to the client:
//! both are rejected the same way, and a password check for an unknown user
//! still runs a full argon2 verification against a dummy hash.

pub mod breakglass;
pub mod limiter;
pub mod mfa;
pub mod totp;

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use russh::keys::PublicKey;
use subtle::ConstantTimeEq;
use vestibule_store::{Store, StoreError};

/// Why a credential could not be checked (as opposed to being wrong).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    #[error("password check was interrupted")]
    Interrupted,
}

/// A new Ed25519 key, for the gateway's own keys.
pub fn generate_ed25519() -> Result<russh::keys::PrivateKey, IdentityError> {
    russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
        .map_err(|e| IdentityError::Crypto(e.to_string()))
}

/// Hash a password for storage (argon2id, random salt, PHC string).
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| IdentityError::Crypto(e.to_string()))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("vestibule-dummy-password").unwrap_or_default())
}

/// Whether `password` is the person's password. Runs argon2 off the async threads.
pub async fn verify_password(
    store: &Store,
    person: &str,
    password: String,
) -> Result<bool, IdentityError> {
    let stored = store
        .user_credentials(person)
        .await?
        .and_then(|c| c.password_hash);
    let known = stored.is_some();
    let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
    let matches = tokio::task::spawn_blocking(move || {
        let password = zeroize::Zeroizing::new(password);
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|_| IdentityError::Interrupted)?;
    Ok(known && matches)
}

/// Whether `offered` is one of the person's registered keys.
pub async fn has_public_key(
    store: &Store,
    person: &str,
    offered: &PublicKey,
) -> Result<bool, IdentityError> {
    let Some(credentials) = store.user_credentials(person).await? else {
        return Ok(false);
    };
    let Ok(offered_blob) = offered.to_bytes() else {
        return Ok(false);
    };
    Ok(credentials.public_keys.iter().any(|line| {
        PublicKey::from_openssh(line)
            .ok()
            .and_then(|k| k.to_bytes().ok())
            .is_some_and(|blob| bool::from(blob.ct_eq(&offered_blob)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }
}
