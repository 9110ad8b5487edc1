//! Locks: an operator's stop on a person, a target or a role, with a reason.

use crate::{Store, StoreError, new_id, now_unix};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    User,
    Target,
    Role,
}

impl LockKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Target => "target",
            Self::Role => "role",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "target" => Some(Self::Target),
            "role" => Some(Self::Role),
            _ => None,
        }
    }
}

/// One lock, active or not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lock {
    pub id: String,
    pub kind: LockKind,
    pub value: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl Lock {
    /// Whether the lock covers a session of `person` (holding `roles`) on `target`.
    pub fn covers(&self, person: &str, target: &str, roles: &[String]) -> bool {
        match self.kind {
            LockKind::User => self.value == person,
            LockKind::Target => self.value == target,
            LockKind::Role => roles.contains(&self.value),
        }
    }

    /// The line shown to a person the lock stops.
    pub fn message(&self) -> String {
        format!(
            "{} {} is locked: {}",
            self.kind.as_str(),
            self.value,
            self.reason
        )
    }
}

type LockRow = (String, String, String, String, String, i64, Option<i64>);

impl Store {
    pub async fn add_lock(
        &self,
        kind: LockKind,
        value: &str,
        reason: &str,
        created_by: &str,
        ttl_secs: Option<i64>,
    ) -> Result<Lock, StoreError> {
        let now = now_unix();
        let lock = Lock {
            id: new_id(),
            kind,
            value: value.to_owned(),
            reason: reason.to_owned(),
            created_by: created_by.to_owned(),
            created_at: now,
            expires_at: ttl_secs.map(|t| now.saturating_add(t)),
        };
        sqlx::query(
            "INSERT INTO locks (id, kind, value, reason, created_by, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&lock.id)
        .bind(kind.as_str())
        .bind(value)
        .bind(reason)
        .bind(created_by)
        .bind(now)
        .bind(lock.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(lock)
    }

    /// The lock in force that keeps `user` (holding `roles`) from logging in
    /// at all: one on the person or on a role they hold. A target lock bars
    /// sessions to that target, not logins.
    pub async fn login_lock(
        &self,
        user: &str,
        roles: &[String],
    ) -> Result<Option<Lock>, StoreError> {
        Ok(self
            .active_locks()
            .await?
            .into_iter()
            .find(|l| l.kind != LockKind::Target && l.covers(user, "", roles)))
    }

    /// Locks in force now, oldest first.
    pub async fn active_locks(&self) -> Result<Vec<Lock>, StoreError> {
        let rows: Vec<LockRow> = sqlx::query_as(
            "SELECT id, kind, value, reason, created_by, created_at, expires_at FROM locks
             WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY created_at, rowid",
        )
        .bind(now_unix())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(id, kind, value, reason, created_by, created_at, expires_at)| {
                    let kind = LockKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                        kind: "lock",
                        name: id.clone(),
                        reason: format!("unknown kind {kind}"),
                    })?;
                    Ok(Lock {
                        id,
                        kind,
                        value,
                        reason,
                        created_by,
                        created_at,
                        expires_at,
                    })
                },
            )
            .collect()
    }

    /// Remove an active lock.
    pub async fn remove_lock(&self, id: &str) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE locks SET removed_at = ? WHERE id = ? AND removed_at IS NULL")
                .bind(now_unix())
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("lock", id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn locks_expire_and_are_removed() {
        let (store, _dir) = test_store().await;
        let user = store
            .add_lock(LockKind::User, "alice", "left", "admin", None)
            .await
            .unwrap();
        store
            .add_lock(LockKind::Target, "web1", "gone", "admin", Some(-1))
            .await
            .unwrap();
        let role = store
            .add_lock(LockKind::Role, "ops", "audit", "admin", Some(60))
            .await
            .unwrap();
        let active = store.active_locks().await.unwrap();
        assert_eq!(active.len(), 2);
        assert!(active[0].covers("alice", "x", &[]));
        assert!(role.covers("bob", "x", &["ops".into()]));
        assert_eq!(user.message(), "user alice is locked: left");
        store.remove_lock(&user.id).await.unwrap();
        assert!(store.remove_lock(&user.id).await.is_err());
        assert_eq!(store.active_locks().await.unwrap(), vec![role]);
    }
}
