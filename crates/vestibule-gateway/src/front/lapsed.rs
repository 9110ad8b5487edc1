//! Telling a person their certificate has lapsed.
//!
//! russh refuses an expired or not-yet-valid certificate inside its own
//! authentication code, before any handler method runs, so that refusal alone
//! would leave the person with a bare "Permission denied". OpenSSH then offers
//! the certified key by itself (it tries both the certificate and the key). If
//! the gateway once certified that key for the person and the certificate is
//! now outside its validity window, the refusal says so. This happens only
//! after the key's signature is verified, so it tells a prober nothing.

use russh::keys::HashAlg;
use russh::keys::ssh_key::PublicKey;
use russh::server::Auth;
use russh::{MethodKind, MethodSet};
use vestibule_core::ConnectionRequest;
use vestibule_store::CertificateRecord;

use super::Connection;

impl Connection {
    /// The verified `key` belongs to nobody: refuse it, and if it is the key
    /// of a lapsed certificate, keep the reason to tell the person.
    pub(super) async fn refuse_unknown_key(&mut self, user: &str, key: &PublicKey) -> Auth {
        let lapsed = match ConnectionRequest::parse(user) {
            Ok(request) => self.lapsed_certificate(&request.person, key).await,
            Err(_) => None,
        };
        let Some(reason) = lapsed else {
            return self.fail(user, "publickey", "unknown user or key".into());
        };
        let _ = self.fail(user, "certificate", reason.clone());
        if self.shared.settings.sso.is_some() {
            // Keyboard-interactive is how people sign on anew here.
            return Auth::reject();
        }
        self.explanation = Some(reason);
        // Other keys (a renewed certificate among them) may still be tried;
        // keyboard-interactive is added to carry the explanation once the
        // client has run out of them.
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(
                &[
                    MethodKind::PublicKey,
                    MethodKind::Password,
                    MethodKind::KeyboardInteractive,
                ][..],
            )),
            partial_success: false,
        }
    }

    /// Why a key that opens nothing by itself was once good: the last
    /// certificate the user CA issued for it to `person`, if that certificate
    /// is no longer (or not yet) valid.
    pub(super) async fn lapsed_certificate(&self, person: &str, key: &PublicKey) -> Option<String> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let record = match self
            .shared
            .settings
            .store
            .last_user_certificate_for_key(&fingerprint)
            .await
        {
            Ok(record) => record?,
            Err(error) => {
                // Only the explanation is lost: the key is refused either way.
                tracing::warn!(%error, "cannot look up the certificates of an offered key");
                return None;
            }
        };
        if !record.principals.iter().any(|p| p == person) {
            return None;
        }
        lapse(&record, crate::certs::unix_now())
    }
}

/// What is wrong with `record`'s validity window at `now`, if anything.
fn lapse(record: &CertificateRecord, now: u64) -> Option<String> {
    let (what, when) = if now >= record.valid_before {
        ("expired at", record.valid_before)
    } else if now < record.valid_after {
        ("is not valid until", record.valid_after)
    } else {
        return None;
    };
    Some(format!(
        "your certificate (serial {}, key ID {:?}) {what} {}; run `vestibule login` for a new one",
        record.serial,
        record.key_id,
        utc(when)
    ))
}

fn utc(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("Unix time {unix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(valid_after: u64, valid_before: u64) -> CertificateRecord {
        CertificateRecord {
            serial: 42,
            kind: "user".into(),
            key_id: "vestibule:carol:login".into(),
            principals: vec!["carol".into()],
            valid_after,
            valid_before,
            ca_fingerprint: "SHA256:ca".into(),
            key_fingerprint: Some("SHA256:key".into()),
        }
    }

    #[test]
    fn an_expired_certificate_is_named_with_its_end() {
        let said = lapse(&record(1_800_000_000, 1_800_000_100), 1_800_000_100);
        assert_eq!(
            said.as_deref(),
            Some(
                "your certificate (serial 42, key ID \"vestibule:carol:login\") expired at \
                 2027-01-15T08:01:40Z; run `vestibule login` for a new one"
            )
        );
    }

    #[test]
    fn a_certificate_from_the_future_is_named_with_its_start() {
        let said = lapse(&record(1_800_000_000, 1_800_000_100), 1_799_999_999);
        assert!(
            said.as_deref()
                .is_some_and(|s| s.contains(") is not valid until 2027-01-15T08:00:00Z;")),
            "{said:?}"
        );
    }

    #[test]
    fn a_valid_certificate_is_no_explanation() {
        assert_eq!(lapse(&record(100, 200), 100), None);
        assert_eq!(lapse(&record(100, 200), 199), None);
    }
}
