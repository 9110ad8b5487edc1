//! Break-glass tokens (hashed) and their single use.

use sqlx::Row;

use crate::{Store, StoreError, new_id, now_unix};

/// A token as listed to administrators; never the token itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BreakglassRecord {
    pub id: String,
    pub account: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl Store {
    /// Store a new token's hash for a registered account; returns its id.
    pub async fn issue_breakglass(
        &self,
        account: &str,
        token_hash: &str,
        reason: &str,
        created_by: &str,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let exists = sqlx::query("SELECT 1 FROM users WHERE name = ?")
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::not_found("user", account));
        }
        let id = new_id();
        sqlx::query(
            "INSERT INTO breakglass_tokens
                 (id, account, token_hash, reason, created_by, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(account)
        .bind(token_hash)
        .bind(reason)
        .bind(created_by)
        .bind(now_unix())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The ids, hashes and expiry times of the account's unused, unexpired tokens.
    pub async fn breakglass_candidates(
        &self,
        account: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, token_hash, expires_at FROM breakglass_tokens
             WHERE account = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(account)
        .bind(now_unix())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get("id"), row.get("token_hash"), row.get("expires_at")))
            .collect())
    }

    /// Mark a token used; false when it already was or has expired.
    pub async fn use_breakglass(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_unix();
        let done = sqlx::query(
            "UPDATE breakglass_tokens SET used_at = ?
             WHERE id = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_breakglass(&self) -> Result<Vec<BreakglassRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account, reason, created_by, created_at, expires_at, used_at
             FROM breakglass_tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| BreakglassRecord {
                id: row.get("id"),
                account: row.get("account"),
                reason: row.get("reason"),
                created_by: row.get("created_by"),
                created_at: row.get("created_at"),
                expires_at: row.get("expires_at"),
                used_at: row.get("used_at"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_store;

    #[tokio::test]
    async fn a_token_is_used_once() {
        let (store, _dir) = test_store().await;
        assert!(
            store
                .issue_breakglass("ghost", "h", "r", "root", i64::MAX)
                .await
                .is_err()
        );
        store.add_user("oncall", &[], None).await.unwrap();
        let id = store
            .issue_breakglass("oncall", "h1", "IdP down", "root", i64::MAX)
            .await
            .unwrap();
        store
            .issue_breakglass("oncall", "h2", "expired", "root", 1)
            .await
            .unwrap();
        let candidates = store.breakglass_candidates("oncall").await.unwrap();
        assert_eq!(candidates, vec![(id.clone(), "h1".to_owned(), i64::MAX)]);
        assert!(store.use_breakglass(&id).await.unwrap());
        assert!(!store.use_breakglass(&id).await.unwrap());
        assert!(
            store
                .breakglass_candidates("oncall")
                .await
                .unwrap()
                .is_empty()
        );
        let listed = store.list_breakglass().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|r| r.id == id && r.used_at.is_some()));
    }
}
