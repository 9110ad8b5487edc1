//! One-time login challenges for key proofs: random, bound to a user, short-lived,
//! bounded in number.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const LIFETIME: Duration = Duration::from_secs(60);
const MAX_OUTSTANDING: usize = 10_000;

#[derive(Default)]
pub(crate) struct Challenges {
    outstanding: Mutex<HashMap<String, (String, Instant)>>,
}

impl Challenges {
    /// A new challenge for `user`, or `None` if too many are outstanding.
    pub(crate) fn issue(&self, user: &str) -> Option<String> {
        let bytes: [u8; 32] = rand::random();
        let challenge = STANDARD.encode(bytes);
        let mut outstanding = self.outstanding.lock().ok()?;
        outstanding.retain(|_, (_, issued)| issued.elapsed() < LIFETIME);
        if outstanding.len() >= MAX_OUTSTANDING {
            return None;
        }
        outstanding.insert(challenge.clone(), (user.to_owned(), Instant::now()));
        Some(challenge)
    }

    /// Use up a challenge: true only once, for its user, within its lifetime.
    pub(crate) fn redeem(&self, challenge: &str, user: &str) -> bool {
        let Ok(mut outstanding) = self.outstanding.lock() else {
            return false;
        };
        match outstanding.remove(challenge) {
            Some((owner, issued)) => owner == user && issued.elapsed() < LIFETIME,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_single_use_and_bound_to_a_user() {
        let challenges = Challenges::default();
        let c = challenges.issue("alice").unwrap();
        assert!(!challenges.redeem(&c, "bob"));
        let c = challenges.issue("alice").unwrap();
        assert!(challenges.redeem(&c, "alice"));
        assert!(!challenges.redeem(&c, "alice"));
        assert!(!challenges.redeem("made-up", "alice"));
    }
}
