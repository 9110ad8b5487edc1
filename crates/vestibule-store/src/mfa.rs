//! People's TOTP secrets and the last step each accepted.

use sqlx::Row;

use crate::{Store, StoreError, now_unix};

/// A person's enrolled second factor.
#[derive(Clone)]
pub struct MfaRecord {
    /// Base32 secret.
    pub secret: String,
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
    /// Enrol (or re-enrol, replacing the secret) a registered person.
    pub async fn set_mfa(&self, user: &str, secret: &str) -> Result<(), StoreError> {
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
        .bind(secret)
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
        Ok(row.map(|row| MfaRecord {
            secret: row.get("secret"),
            enrolled_at: row.get("enrolled_at"),
            last_step: row.get("last_step"),
        }))
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
}
