//! Second factors offered at a first HTTPS login (`vestibule login` when
//! `require_mfa` is on and the person has none): the secret is made and kept
//! here, bound to the person, and only its id and `otpauth://` URI go to the
//! client; the client sends back the id and a code, never a secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use vestibule_identity::mfa::Enrolment;

/// Long enough to find a phone and scan a code.
const LIFETIME: Duration = Duration::from_secs(600);
const MAX_OUTSTANDING: usize = 10_000;

/// What the client is given to show the person (in the 401 answer's `enroll`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollOffer {
    /// Give back as `enroll_id` with the code.
    pub id: String,
    /// The `otpauth://` URI (it holds the secret) for an authenticator app.
    pub otpauth_uri: String,
}

#[derive(Default)]
pub(crate) struct PendingEnrolments {
    outstanding: Mutex<HashMap<String, (Arc<Enrolment>, Instant)>>,
}

impl PendingEnrolments {
    /// A new secret for `user`, or `None` if too many are outstanding.
    pub(crate) fn offer(&self, user: &str) -> Option<EnrollOffer> {
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
        let enrolment = Enrolment::new(user);
        let otpauth_uri = enrolment.uri().to_string();
        let mut outstanding = self.outstanding.lock().ok()?;
        outstanding.retain(|_, (_, made)| made.elapsed() < LIFETIME);
        if outstanding.len() >= MAX_OUTSTANDING {
            return None;
        }
        outstanding.insert(id.clone(), (Arc::new(enrolment), Instant::now()));
        Some(EnrollOffer { id, otpauth_uri })
    }

    /// The enrolment `id` names, if it is `user`'s and still fresh. It stays
    /// until [`finish`](Self::finish), so a mistyped code can be retried.
    pub(crate) fn get(&self, id: &str, user: &str) -> Option<Arc<Enrolment>> {
        let outstanding = self.outstanding.lock().ok()?;
        let (enrolment, made) = outstanding.get(id)?;
        let owner_matches = bool::from(enrolment.person.as_bytes().ct_eq(user.as_bytes()));
        (owner_matches && made.elapsed() < LIFETIME).then(|| enrolment.clone())
    }

    pub(crate) fn finish(&self, id: &str) {
        if let Ok(mut outstanding) = self.outstanding.lock() {
            outstanding.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_bound_to_their_person() {
        let pending = PendingEnrolments::default();
        let offer = pending.offer("alice").unwrap();
        assert!(
            offer
                .otpauth_uri
                .starts_with("otpauth://totp/Vestibule:alice?")
        );
        assert!(pending.get(&offer.id, "bob").is_none());
        assert!(pending.get("made-up", "alice").is_none());
        let enrolment = pending.get(&offer.id, "alice").unwrap();
        assert!(offer.otpauth_uri.contains(enrolment.secret.as_str()));
        pending.finish(&offer.id);
        assert!(pending.get(&offer.id, "alice").is_none());
    }
}
