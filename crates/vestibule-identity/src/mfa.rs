//! A person's second factor, as stored: enrolment and code checks that refuse
//! replays.

use vestibule_store::Store;

use crate::{IdentityError, totp};

/// The last part of the key ID of a certificate `vestibule login` issued after
/// a verified code (`vestibule:NAME:login+totp`). The CA signs the key ID, so the
/// SSH front end takes such a certificate as both factors.
pub const LOGIN_WITH_TOTP: &str = "login+totp";

/// Whether the person has a second factor enrolled.
pub async fn enrolled(store: &Store, person: &str) -> Result<bool, IdentityError> {
    Ok(store.mfa(person).await?.is_some())
}

/// Whether `code` is the person's current code, not used before. A good code is
/// consumed: its step is recorded, so the same code fails the next time.
pub async fn verify_code(store: &Store, person: &str, code: &str) -> Result<bool, IdentityError> {
    let Some(record) = store.mfa(person).await? else {
        return Ok(false);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let Some(step) = totp::verify(&record.secret, code, now, record.last_step) else {
        return Ok(false);
    };
    // The conditional update settles a race between two uses of one code.
    Ok(store.accept_mfa_step(person, step).await?)
}
