//! Roles and who holds them.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use vestibule_core::{Role, Selector};

use crate::{Store, StoreError, now_unix};

/// A role as stored, with the people it is granted to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleRecord {
    pub name: String,
    pub targets: String,
    pub logins: Vec<String>,
    pub allow_port_forwarding: bool,
    pub require_mfa: bool,
    pub granted_to: Vec<String>,
}

fn role_from_row(row: &SqliteRow) -> Result<Role, StoreError> {
    let name: String = row.try_get("name")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: "role",
        name: name.clone(),
        reason,
    };
    let selector: String = row.try_get("selector")?;
    let logins: String = row.try_get("logins")?;
    Ok(Role {
        targets: Selector::parse(&selector).map_err(|e| corrupt(e.to_string()))?,
        logins: serde_json::from_str(&logins).map_err(|e| corrupt(e.to_string()))?,
        allow_port_forwarding: row.try_get("allow_port_forwarding")?,
        require_mfa: row.try_get("require_mfa")?,
        name,
    })
}

impl Store {
    pub async fn add_role(&self, role: &Role) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO roles (name, selector, logins, allow_port_forwarding, require_mfa, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&role.name)
        .bind(role.targets.to_string())
        .bind(serde_json::Value::from(role.logins.clone()).to_string())
        .bind(role.allow_port_forwarding)
        .bind(role.require_mfa)
        .bind(now_unix())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert("role", &role.name, e))?;
        Ok(())
    }

    pub async fn remove_role(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM roles WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("role", name));
        }
        Ok(())
    }

    pub async fn grant_role(&self, role: &str, user: &str) -> Result<(), StoreError> {
        self.require("roles", "role", role).await?;
        self.require("users", "user", user).await?;
        sqlx::query("INSERT OR IGNORE INTO role_grants (role_name, user_name) VALUES (?, ?)")
            .bind(role)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn revoke_role(&self, role: &str, user: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM role_grants WHERE role_name = ? AND user_name = ?")
            .bind(role)
            .bind(user)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(
                "grant",
                &format!("of role {role} to {user}"),
            ));
        }
        Ok(())
    }

    /// The roles granted to a person right now.
    pub async fn roles_of(&self, user: &str) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.name, r.selector, r.logins, r.allow_port_forwarding, r.require_mfa
             FROM roles r JOIN role_grants g ON g.role_name = r.name
             WHERE g.user_name = ? ORDER BY r.name",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(role_from_row).collect()
    }

    /// The names of the roles granted to a person right now.
    pub async fn role_names_of(&self, user: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .roles_of(user)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect())
    }

    pub async fn list_roles(&self) -> Result<Vec<RoleRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.name, r.selector, r.logins, r.allow_port_forwarding, r.require_mfa,
                    (SELECT json_group_array(user_name) FROM role_grants g WHERE g.role_name = r.name) AS granted_to
             FROM roles r ORDER BY r.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let role = role_from_row(row)?;
                let granted: String = row.try_get("granted_to")?;
                let mut granted_to: Vec<String> =
                    serde_json::from_str(&granted).map_err(|e| StoreError::Corrupt {
                        kind: "role",
                        name: role.name.clone(),
                        reason: e.to_string(),
                    })?;
                granted_to.sort();
                Ok(RoleRecord {
                    targets: role.targets.to_string(),
                    name: role.name,
                    logins: role.logins,
                    allow_port_forwarding: role.allow_port_forwarding,
                    require_mfa: role.require_mfa,
                    granted_to,
                })
            })
            .collect()
    }

    async fn require(&self, table: &str, kind: &'static str, name: &str) -> Result<(), StoreError> {
        let found: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM {table} WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn grants_follow_roles_and_users() {
        let (store, _dir) = test_store().await;
        store.add_user("alice", &[], None).await.unwrap();
        let role = Role {
            name: "ops".into(),
            targets: Selector::parse("env=prod,web1").unwrap(),
            logins: vec!["root".into()],
            allow_port_forwarding: true,
            require_mfa: false,
        };
        store.add_role(&role).await.unwrap();
        assert!(store.grant_role("ops", "bob").await.is_err());
        assert!(store.grant_role("nope", "alice").await.is_err());
        store.grant_role("ops", "alice").await.unwrap();
        assert_eq!(store.roles_of("alice").await.unwrap(), vec![role]);
        let listed = store.list_roles().await.unwrap();
        assert_eq!(listed[0].granted_to, ["alice"]);
        assert_eq!(listed[0].targets, "env=prod,web1");
        store.revoke_role("ops", "alice").await.unwrap();
        assert!(store.roles_of("alice").await.unwrap().is_empty());
        store.grant_role("ops", "alice").await.unwrap();
        store.remove_user("alice").await.unwrap();
        assert!(store.list_roles().await.unwrap()[0].granted_to.is_empty());
    }
}
