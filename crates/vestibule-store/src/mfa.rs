//! People's TOTP secrets (sealed, see `sealed.rs`) and the last step each
//! accepted.

use sqlx::Row;
use zeroize::Zeroizing;

use crate::sealed::{SEALED_PREFIX, SecretKey};
use crate::{Store, StoreError, now_unix};

/// A person's enrolled second factor.
#[derive(Clone)]
pub struct MfaRecord {
    /// Base32 secret, opened.
    pub secret: Zeroizing<String>,
    pub enrolled_at: i64,
    /// The last step a code was accepted for.
    pub last_step: Option<i64>,
}

// The secret never reaches logs through Debug.
impl std::fmt::Debug for MfaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRecord")
            .field("enrolled_at", &self.enrolled_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

impl Store {
    fn secret_key(&self) -> Result<&SecretKey, StoreError> {
        self.secret_key.as_deref().ok_or(StoreError::NoSecretKey)
    }

    /// Enrol (or re-enrol, replacing the secret) a registered person.
    pub async fn set_mfa(&self, user: &str, secret: &str) -> Result<(), StoreError> {
        let sealed = self.secret_key()?.seal(user, secret)?;
        let exists = sqlx::query("SELECT 1 FROM users WHERE name = ?")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::not_found("user", user));
        }
        sqlx::query(
            "INSERT INTO user_mfa (user_name, secret, enrolled_at, last_step) VALUES (?, ?, ?, NULL)
             ON CONFLICT(user_name) DO UPDATE SET secret = excluded.secret,
                 enrolled_at = excluded.enrolled_at, last_step = NULL",
        )
        .bind(user)
        .bind(sealed)
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_mfa(&self, user: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM user_mfa WHERE user_name = ?")
            .bind(user)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("second factor of user", user));
        }
        Ok(())
    }

    pub async fn mfa(&self, user: &str) -> Result<Option<MfaRecord>, StoreError> {
        let row =
            sqlx::query("SELECT secret, enrolled_at, last_step FROM user_mfa WHERE user_name = ?")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: Zeroizing<String> = Zeroizing::new(row.get("secret"));
        let secret = if stored.starts_with(SEALED_PREFIX) {
            self.secret_key()?.open(user, &stored)?
        } else {
            // Written before sealing and not sealed yet (another process
            // opened the database without the key); still the person's factor.
            stored
        };
        Ok(Some(MfaRecord {
            secret,
            enrolled_at: row.get("enrolled_at"),
            last_step: row.get("last_step"),
        }))
    }

    /// Seal the secrets older versions stored in the clear; each row is
    /// rewritten only if it is still the clear value read, so a concurrent
    /// re-enrolment is never overwritten.
    pub(crate) async fn seal_clear_mfa_secrets(&self) -> Result<u64, StoreError> {
        let key = self.secret_key()?;
        let rows =
            sqlx::query("SELECT user_name, secret FROM user_mfa WHERE secret NOT LIKE 'v1:%'")
                .fetch_all(&self.pool)
                .await?;
        let mut sealed = 0;
        for row in rows {
            let user: String = row.get("user_name");
            let clear: Zeroizing<String> = Zeroizing::new(row.get("secret"));
            let done =
                sqlx::query("UPDATE user_mfa SET secret = ? WHERE user_name = ? AND secret = ?")
                    .bind(key.seal(&user, &clear)?)
                    .bind(&user)
                    .bind(clear.as_str())
                    .execute(&self.pool)
                    .await?;
            sealed += done.rows_affected();
        }
        if sealed > 0 {
            tracing::info!(count = sealed, "sealed TOTP secrets stored in the clear");
        }
        Ok(sealed)
    }

    /// Record that a code for `step` was accepted; false when that step (or a
    /// later one) already was, i.e. the code is a replay.
    pub async fn accept_mfa_step(&self, user: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_mfa SET last_step = ?
             WHERE user_name = ? AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(step)
        .bind(user)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_store;

    #[tokio::test]
    async fn steps_are_accepted_once() {
        let (store, _dir) = test_store().await;
        assert!(store.set_mfa("nobody", "AAAA").await.is_err());
        store.add_user("alice", &[], None).await.unwrap();
        store.set_mfa("alice", "AAAA").await.unwrap();
        assert!(store.accept_mfa_step("alice", 10).await.unwrap());
        assert!(!store.accept_mfa_step("alice", 10).await.unwrap());
        assert!(!store.accept_mfa_step("alice", 9).await.unwrap());
        assert!(store.accept_mfa_step("alice", 11).await.unwrap());
        assert_eq!(
            store.mfa("alice").await.unwrap().unwrap().last_step,
            Some(11)
        );
        store.remove_mfa("alice").await.unwrap();
        assert!(store.mfa("alice").await.unwrap().is_none());
    }

    async fn stored_secret(store: &crate::Store, user: &str) -> String {
        sqlx::query_scalar("SELECT secret FROM user_mfa WHERE user_name = ?")
            .bind(user)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn secrets_are_sealed_at_rest_and_bound_to_their_row() {
        let (store, _dir) = test_store().await;
        for user in ["alice", "bob"] {
            store.add_user(user, &[], None).await.unwrap();
        }
        store.set_mfa("alice", "JBSWY3DPEHPK3PXP").await.unwrap();
        store.set_mfa("bob", "GEZDGNBVGY3TQOJQ").await.unwrap();
        let alice_row = stored_secret(&store, "alice").await;
        assert!(alice_row.starts_with("v1:"), "{alice_row}");
        assert!(!alice_row.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            store.mfa("alice").await.unwrap().unwrap().secret.as_str(),
            "JBSWY3DPEHPK3PXP"
        );
        // Alice's sealed secret copied into Bob's row does not open there.
        sqlx::query("UPDATE user_mfa SET secret = ? WHERE user_name = 'bob'")
            .bind(&alice_row)
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.mfa("bob").await,
            Err(crate::StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn clear_rows_are_sealed_when_the_key_is_attached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let keyless = crate::Store::open_sqlite(&path, true).await.unwrap();
        keyless.add_user("alice", &[], None).await.unwrap();
        assert!(matches!(
            keyless.set_mfa("alice", "X").await,
            Err(crate::StoreError::NoSecretKey)
        ));
        // A row as versions before sealing wrote it.
        sqlx::query(
            "INSERT INTO user_mfa (user_name, secret, enrolled_at) VALUES ('alice', 'JBSWY3DPEHPK3PXP', 1)",
        )
        .execute(keyless.pool())
        .await
        .unwrap();
        let key = crate::SecretKey::from_text(&crate::SecretKey::generate_text()).unwrap();
        let store = keyless.with_secret_key(key).await.unwrap();
        assert!(stored_secret(&store, "alice").await.starts_with("v1:"));
        assert_eq!(
            store.mfa("alice").await.unwrap().unwrap().secret.as_str(),
            "JBSWY3DPEHPK3PXP"
        );
    }
}
