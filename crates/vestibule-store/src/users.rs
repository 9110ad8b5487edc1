//! People and their credentials.

use sqlx::Row;
use vestibule_core::User;

use crate::{Store, StoreError, now_unix};

/// What the gateway needs to check a login attempt.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub public_keys: Vec<String>,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
}

impl Store {
    pub async fn add_user(
        &self,
        name: &str,
        public_keys: &[String],
        password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(password_hash)
            .bind(now_unix())
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::on_insert("user", name, e))?;
        for key in public_keys {
            sqlx::query("INSERT OR IGNORE INTO user_keys (user_name, public_key) VALUES (?, ?)")
                .bind(name)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("user", name));
        }
        Ok(())
    }

    /// The credentials of a person, or `None` for an unknown name.
    pub async fn user_credentials(
        &self,
        name: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let Some(row) = sqlx::query("SELECT password_hash FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let public_keys = sqlx::query_scalar(
            "SELECT public_key FROM user_keys WHERE user_name = ? ORDER BY rowid",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(UserCredentials {
            public_keys,
            password_hash: row.try_get("password_hash")?,
        }))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, u.password_hash IS NOT NULL AS has_password,
                    (SELECT json_group_array(public_key) FROM user_keys k WHERE k.user_name = u.name) AS keys,
                    (SELECT json_group_array(role_name) FROM role_grants g WHERE g.user_name = u.name) AS roles
             FROM users u ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let json_list = |column: &str| -> Result<Vec<String>, StoreError> {
                    let text: String = row.try_get(column)?;
                    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                        kind: "user",
                        name: name.clone(),
                        reason: e.to_string(),
                    })
                };
                let mut roles = json_list("roles")?;
                roles.sort();
                Ok(User {
                    public_keys: json_list("keys")?,
                    roles,
                    has_password: row.try_get("has_password")?,
                    name,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{StoreError, test_store};

    #[tokio::test]
    async fn users_round_trip() {
        let (store, _dir) = test_store().await;
        store
            .add_user("alice", &["ssh-ed25519 AAAA alice".into()], None)
            .await
            .unwrap();
        store
            .add_user("bob", &[], Some("$argon2id$x"))
            .await
            .unwrap();
        assert!(matches!(
            store.add_user("bob", &[], None).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        let users = store.list_users().await.unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].public_keys, ["ssh-ed25519 AAAA alice"]);
        assert!(users[1].has_password && !users[0].has_password);
        let creds = store.user_credentials("bob").await.unwrap().unwrap();
        assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$x"));
        assert!(store.user_credentials("carol").await.unwrap().is_none());
        store.remove_user("alice").await.unwrap();
        assert!(matches!(
            store.remove_user("alice").await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
