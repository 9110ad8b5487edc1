//! Break-glass tokens: one-time passwords an administrator issues for a named
//! account, for when the normal way in (an identity provider, a second factor)
//! is unavailable.
//!
//! Only a SHA-256 hash is stored. A token carries 160 random bits, so a fast hash
//! is enough: there is nothing to guess from it.

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vestibule_store::Store;
use zeroize::Zeroizing;

use crate::IdentityError;

/// What every token starts with, so a password can be told apart without a lookup.
pub const PREFIX: &str = "vbg_";

/// A new token, shown once to the administrator who issues it.
pub fn generate_token() -> Zeroizing<String> {
    let bytes: Zeroizing<[u8; 20]> = Zeroizing::new(rand::random());
    Zeroizing::new(format!(
        "{PREFIX}{}",
        BASE32_NOPAD.encode(bytes.as_ref()).to_ascii_lowercase()
    ))
}

/// Whether a password looks like a break-glass token.
pub fn is_token(password: &str) -> bool {
    password.starts_with(PREFIX)
}

/// The stored form of a token: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token that was just used.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The token's id (never the token).
    pub id: String,
    /// When the token would have expired (Unix seconds): what it lets in may
    /// not outlive this.
    pub expires_at: i64,
}

/// Use a token for `account`: the token, when it is valid, unexpired and
/// unused, which it is no longer afterwards.
pub async fn redeem(
    store: &Store,
    account: &str,
    token: &str,
) -> Result<Option<Redeemed>, IdentityError> {
    let offered = hash_token(token);
    let candidates = store.breakglass_candidates(account).await?;
    let matched = candidates
        .into_iter()
        .find(|(_, hash, _)| bool::from(hash.as_bytes().ct_eq(offered.as_bytes())));
    let Some((id, _, expires_at)) = matched else {
        return Ok(None);
    };
    // Two concurrent uses race on one conditional update; only one wins.
    Ok(store
        .use_breakglass(&id)
        .await?
        .then_some(Redeemed { id, expires_at }))
}

/// The last part of the key ID of a certificate `vestibule login --breakglass`
/// issued (`vestibule:NAME:breakglass`). The CA signs the key ID, so the SSH
/// front end takes such a certificate as a break-glass login.
pub const LOGIN_WITH_BREAKGLASS: &str = "breakglass";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(*a, *b);
        assert!(is_token(&a));
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
        assert!(!is_token("hunter2"));
    }
}
