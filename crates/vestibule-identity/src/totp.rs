//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way.
//!
//! A code is accepted once: the caller records the step a code was accepted for
//! and passes it back, and steps at or before it are refused, so a code seen on
//! the wire cannot be replayed inside its window.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
/// Steps either side of now that are still accepted (clock skew, slow typing).
const SKEW: i64 = 1;

/// A new random secret (160 bits, the size RFC 4226 recommends), base32 without
/// padding as authenticator apps expect.
pub fn generate_secret() -> String {
    let bytes: Zeroizing<[u8; 20]> = Zeroizing::new(rand::random());
    BASE32_NOPAD.encode(bytes.as_ref())
}

/// The `otpauth://` URI an authenticator app reads (from text or a QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let issuer = percent(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent(account)
    )
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The step a Unix time falls in.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

fn decode_secret(secret: &str) -> Option<Zeroizing<Vec<u8>>> {
    let cleaned: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .ok()
        .map(Zeroizing::new)
}

fn code_for(key: &[u8], step: i64) -> Option<u32> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.last()? & 0x0f);
    let window: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    Some((u32::from_be_bytes(window) & 0x7fff_ffff) % 10u32.pow(DIGITS))
}

/// The code for `step`, zero-padded; `None` when the secret is not base32.
pub fn code_at(secret: &str, step: i64) -> Option<String> {
    let key = decode_secret(secret)?;
    code_for(&key, step).map(|code| format!("{code:06}"))
}

/// The step `code` is valid for, within the skew around `now_unix` and after
/// `last_used` (the last step accepted for this secret), or `None`.
pub fn verify(secret: &str, code: &str, now_unix: i64, last_used: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = decode_secret(secret)?;
    let now = step_of(now_unix);
    let mut accepted = None;
    // Every candidate is computed and compared so timing does not say which matched.
    for step in now - SKEW..=now + SKEW {
        let Some(expected) = code_for(&key, step) else {
            continue;
        };
        let expected = format!("{expected:06}");
        let fresh = last_used.is_none_or(|last| step > last);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && fresh && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", truncated to 6 digits.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_vectors() {
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(
                code_at(RFC_SECRET, step_of(time)).unwrap(),
                code,
                "t={time}"
            );
        }
    }

    #[test]
    fn window_is_one_step_each_way() {
        let now = 1_234_567_890;
        let step = step_of(now);
        for offset in [-1, 0, 1] {
            let code = code_at(RFC_SECRET, step + offset).unwrap();
            assert_eq!(verify(RFC_SECRET, &code, now, None), Some(step + offset));
        }
        for offset in [-2, 2] {
            let code = code_at(RFC_SECRET, step + offset).unwrap();
            assert_eq!(verify(RFC_SECRET, &code, now, None), None);
        }
    }

    #[test]
    fn replay_and_older_steps_refused() {
        let now = 1_234_567_890;
        let step = step_of(now);
        let code = code_at(RFC_SECRET, step).unwrap();
        assert_eq!(verify(RFC_SECRET, &code, now, Some(step)), None);
        let previous = code_at(RFC_SECRET, step - 1).unwrap();
        assert_eq!(verify(RFC_SECRET, &previous, now, Some(step)), None);
        let next = code_at(RFC_SECRET, step + 1).unwrap();
        assert_eq!(verify(RFC_SECRET, &next, now, Some(step)), Some(step + 1));
    }

    #[test]
    fn malformed_input_refused() {
        assert_eq!(verify(RFC_SECRET, "12345", 0, None), None);
        assert_eq!(verify(RFC_SECRET, "abcdef", 0, None), None);
        assert_eq!(verify("not base32!", "123456", 0, None), None);
    }

    #[test]
    fn secrets_round_trip() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 32);
        assert!(code_at(&secret, 1).is_some());
        let uri = otpauth_uri("Vestibule", "alice@x", &secret);
        assert!(uri.starts_with("otpauth://totp/Vestibule:alice%40x?secret="));
    }
}
