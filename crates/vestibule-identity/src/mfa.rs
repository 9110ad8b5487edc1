//! A person's second factor, as stored: enrolment (by an administrator or by
//! the person at first login) and code checks that refuse replays.

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use vestibule_store::Store;
use zeroize::Zeroizing;

use crate::{IdentityError, totp};

/// The last part of the key ID of a certificate `vestibule login` issued after
/// a verified code (`vestibule:NAME:login+totp`). The CA signs the key ID, so the
/// SSH front end takes such a certificate as both factors.
pub const LOGIN_WITH_TOTP: &str = "login+totp";

/// The issuer authenticator apps show next to the account.
pub const ISSUER: &str = "Vestibule";

/// Whether the person must log in with a second factor: everyone must
/// (`[identity] require_mfa`), or a role they hold says so.
pub async fn required(store: &Store, person: &str, everyone: bool) -> Result<bool, IdentityError> {
    if everyone {
        return Ok(true);
    }
    Ok(store.roles_of(person).await?.iter().any(|r| r.require_mfa))
}

/// Whether the person has a second factor enrolled.
pub async fn enrolled(store: &Store, person: &str) -> Result<bool, IdentityError> {
    Ok(store.mfa(person).await?.is_some())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether `code` is the person's current code, not used before. A good code is
/// consumed: its step is recorded, so the same code fails the next time.
pub async fn verify_code(store: &Store, person: &str, code: &str) -> Result<bool, IdentityError> {
    let Some(record) = store.mfa(person).await? else {
        return Ok(false);
    };
    let Some(step) = totp::verify(&record.secret, code, now(), record.last_step) else {
        return Ok(false);
    };
    // The conditional update settles a race between two uses of one code.
    Ok(store.accept_mfa_step(person, step).await?)
}

/// A secret offered to a person, not stored until they prove their app has it.
pub struct Enrolment {
    pub person: String,
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("person", &self.person)
            .finish_non_exhaustive()
    }
}

impl Enrolment {
    pub fn new(person: &str) -> Self {
        Self {
            person: person.to_owned(),
            secret: Zeroizing::new(totp::generate_secret()),
        }
    }

    /// The `otpauth://` URI for the person's authenticator app.
    pub fn uri(&self) -> Zeroizing<String> {
        Zeroizing::new(totp::otpauth_uri(ISSUER, &self.person, &self.secret))
    }

    /// What the person is shown: the URI, the secret to type in and the QR code.
    pub fn instructions(&self) -> Zeroizing<String> {
        let uri = self.uri();
        let qr = qr_text(&uri).unwrap_or_default();
        // The URI and secret come first: some clients cut long instructions
        // (OpenSSH in a non-UTF-8 locale escapes each block character).
        Zeroizing::new(format!(
            "vestibule: a second factor is required and {person} has none yet.\n\
             Add this to an authenticator app:\n{uri}\n\
             Secret (to type in by hand): {secret}\n\
             or scan:\n{qr}\n\
             Then enter the code the app shows to finish enrolling.\n",
            person = self.person,
            uri = uri.as_str(),
            secret = self.secret.as_str(),
        ))
    }

    /// Store the secret if `code` is its current code; the code's step counts
    /// as used, so it cannot be given again for the next login.
    pub async fn confirm(&self, store: &Store, code: &str) -> Result<bool, IdentityError> {
        let Some(step) = totp::verify(&self.secret, code, now(), None) else {
            return Ok(false);
        };
        store.set_mfa(&self.person, &self.secret).await?;
        Ok(store.accept_mfa_step(&self.person, step).await?)
    }
}

/// `text` (an otpauth URI) as a QR code drawn with Unicode half blocks, light
/// on dark so it scans from a dark terminal; `None` if it does not fit a code.
pub fn qr_text(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_shows_uri_qr_and_secret() {
        let enrolment = Enrolment::new("alice");
        let text = enrolment.instructions();
        assert!(text.contains("otpauth://totp/Vestibule:alice?secret="));
        assert!(text.contains(enrolment.secret.as_str()));
        assert!(
            text.contains('\u{2580}') || text.contains('\u{2584}') || text.contains('\u{2588}')
        );
        assert!(
            format!("{enrolment:?}")
                .find(enrolment.secret.as_str())
                .is_none()
        );
    }
}
