//! The record of issued certificates.

use crate::{Store, StoreError, now_unix};

/// One issued certificate, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateRecord {
    pub serial: u64,
    /// `user` or `host`.
    pub kind: String,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub ca_fingerprint: String,
    /// SHA-256 fingerprint of the certified key (`None` for certificates
    /// recorded before it was kept).
    pub key_fingerprint: Option<String>,
}

type CertificateRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
);

/// The columns of a [`CertificateRow`], for `concat!`ed queries.
macro_rules! certificate_columns {
    () => {
        "serial, kind, key_id, principals, valid_after, valid_before, ca_fingerprint, key_fingerprint"
    };
}

impl TryFrom<CertificateRow> for CertificateRecord {
    type Error = StoreError;

    fn try_from(row: CertificateRow) -> Result<Self, StoreError> {
        let (serial, kind, key_id, principals, after, before, ca, key) = row;
        let corrupt = |reason: String| StoreError::Corrupt {
            kind: "certificate",
            name: serial.clone(),
            reason,
        };
        Ok(CertificateRecord {
            serial: serial.parse().map_err(|_| corrupt("bad serial".into()))?,
            principals: serde_json::from_str(&principals).map_err(|e| corrupt(e.to_string()))?,
            kind,
            key_id,
            valid_after: u64::try_from(after).unwrap_or(0),
            valid_before: u64::try_from(before).unwrap_or(0),
            ca_fingerprint: ca,
            key_fingerprint: key,
        })
    }
}

impl Store {
    pub async fn record_certificate(&self, cert: &CertificateRecord) -> Result<(), StoreError> {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO certificates (serial, kind, key_id, principals, valid_after, valid_before, ca_fingerprint, key_fingerprint, issued_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(cert.serial.to_string())
        .bind(&cert.kind)
        .bind(&cert.key_id)
        .bind(serde_json::Value::from(cert.principals.clone()).to_string())
        .bind(as_i64(cert.valid_after))
        .bind(as_i64(cert.valid_before))
        .bind(&cert.ca_fingerprint)
        .bind(&cert.key_fingerprint)
        .bind(now_unix())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert("certificate serial", &cert.serial.to_string(), e))?;
        Ok(())
    }

    /// The most recently issued certificates, newest first.
    pub async fn recent_certificates(
        &self,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let rows: Vec<CertificateRow> = sqlx::query_as(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates ORDER BY issued_at DESC, rowid DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CertificateRecord::try_from).collect()
    }

    /// The user certificate for the key with this fingerprint that is valid the
    /// longest, if the gateway issued any.
    pub async fn last_user_certificate_for_key(
        &self,
        key_fingerprint: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let row: Option<CertificateRow> = sqlx::query_as(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE key_fingerprint = ? AND kind = 'user'
             ORDER BY valid_before DESC LIMIT 1"
        ))
        .bind(key_fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CertificateRecord::try_from).transpose()
    }
}

impl Store {
    /// Revoke a certificate by serial. Revoking twice keeps the first reason.
    pub async fn revoke_certificate(&self, serial: u64, reason: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO revoked_certificates (serial, reason, revoked_at) VALUES (?, ?, ?)")
            .bind(serial.to_string())
            .bind(reason)
            .bind(now_unix())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Why a serial was revoked, or `None` if it was not.
    pub async fn revocation(&self, serial: u64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT reason FROM revoked_certificates WHERE serial = ?")
                .bind(serial.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn certificates_are_recorded_once() {
        let (store, _dir) = test_store().await;
        let cert = CertificateRecord {
            serial: u64::MAX - 1,
            kind: "user".into(),
            key_id: "vestibule:alice:session:1".into(),
            principals: vec!["root".into()],
            valid_after: 100,
            valid_before: 250,
            ca_fingerprint: "SHA256:x".into(),
            key_fingerprint: Some("SHA256:k".into()),
        };
        store.record_certificate(&cert).await.unwrap();
        assert!(matches!(
            store.record_certificate(&cert).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(store.recent_certificates(10).await.unwrap(), vec![cert]);
    }

    #[tokio::test]
    async fn the_longest_valid_user_certificate_of_a_key_is_found() {
        let (store, _dir) = test_store().await;
        let cert = |serial, kind: &str, key: Option<&str>, valid_before| CertificateRecord {
            serial,
            kind: kind.into(),
            key_id: format!("vestibule:alice:{serial}"),
            principals: vec!["alice".into()],
            valid_after: 100,
            valid_before,
            ca_fingerprint: "SHA256:ca".into(),
            key_fingerprint: key.map(str::to_owned),
        };
        for record in [
            cert(1, "user", Some("SHA256:k"), 300),
            cert(2, "user", Some("SHA256:k"), 500),
            cert(3, "user", Some("SHA256:k"), 400),
            cert(4, "host", Some("SHA256:k"), 900),
            cert(5, "user", Some("SHA256:other"), 900),
            cert(6, "user", None, 900),
        ] {
            store.record_certificate(&record).await.unwrap();
        }
        let found = store
            .last_user_certificate_for_key("SHA256:k")
            .await
            .unwrap();
        assert_eq!(found, Some(cert(2, "user", Some("SHA256:k"), 500)));
        assert_eq!(
            store
                .last_user_certificate_for_key("SHA256:none")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn revocations_are_remembered() {
        let (store, _dir) = test_store().await;
        assert_eq!(store.revocation(7).await.unwrap(), None);
        store.revoke_certificate(7, "laptop stolen").await.unwrap();
        store.revoke_certificate(7, "again").await.unwrap();
        assert_eq!(
            store.revocation(7).await.unwrap().as_deref(),
            Some("laptop stolen")
        );
    }
}
