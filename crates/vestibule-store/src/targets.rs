//! Targets and their host keys.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use vestibule_core::{HostKeyPolicy, Label, Target, TargetCredential};

use crate::{Store, StoreError, now_unix};

const COLUMNS: &str =
    "name, host, port, default_login, labels, host_key_mode, host_key, credential";

fn target_from_row(row: &SqliteRow) -> Result<Target, StoreError> {
    let name: String = row.try_get("name")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: "target",
        name: name.clone(),
        reason,
    };
    let labels_json: String = row.try_get("labels")?;
    let labels: Vec<String> =
        serde_json::from_str(&labels_json).map_err(|e| corrupt(e.to_string()))?;
    let labels = labels
        .iter()
        .map(|l| Label::parse(l).map_err(|e| corrupt(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let port: i64 = row.try_get("port")?;
    let port = u16::try_from(port).map_err(|_| corrupt(format!("port {port} out of range")))?;
    let mode: String = row.try_get("host_key_mode")?;
    let key: Option<String> = row.try_get("host_key")?;
    let host_key = match (mode.as_str(), key) {
        ("pinned", Some(key)) => HostKeyPolicy::Pinned { key },
        ("trust_on_first_use", recorded) => HostKeyPolicy::TrustOnFirstUse { recorded },
        ("host_ca", Some(keys)) => HostKeyPolicy::CertifiedBy {
            ca_keys: keys.lines().map(str::to_owned).collect(),
        },
        _ => return Err(corrupt(format!("host key mode {mode:?} without a key"))),
    };
    let credential: String = row.try_get("credential")?;
    let credential = TargetCredential::parse(&credential)
        .ok_or_else(|| corrupt(format!("unknown credential {credential:?}")))?;
    Ok(Target {
        credential,
        host: row.try_get("host")?,
        port,
        default_login: row.try_get("default_login")?,
        labels,
        host_key,
        name,
    })
}

impl Store {
    pub async fn add_target(&self, target: &Target) -> Result<(), StoreError> {
        let labels: Vec<String> = target.labels.iter().map(Label::to_string).collect();
        let (mode, key) = match &target.host_key {
            HostKeyPolicy::Pinned { key } => ("pinned", Some(key.clone())),
            HostKeyPolicy::TrustOnFirstUse { recorded } => ("trust_on_first_use", recorded.clone()),
            HostKeyPolicy::CertifiedBy { ca_keys } => ("host_ca", Some(ca_keys.join("\n"))),
        };
        sqlx::query(
            "INSERT INTO targets (name, host, port, default_login, labels, host_key_mode, host_key, credential, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&target.name)
        .bind(&target.host)
        .bind(i64::from(target.port))
        .bind(&target.default_login)
        .bind(serde_json::Value::from(labels).to_string())
        .bind(mode)
        .bind(key)
        .bind(target.credential.as_str())
        .bind(now_unix())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert("target", &target.name, e))?;
        Ok(())
    }

    pub async fn remove_target(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM targets WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("target", name));
        }
        Ok(())
    }

    pub async fn target(&self, name: &str) -> Result<Option<Target>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM targets WHERE name = ?"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(target_from_row).transpose()
    }

    pub async fn list_targets(&self) -> Result<Vec<Target>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM targets ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(target_from_row).collect()
    }

    /// Record the key a trust-on-first-use target presented at first contact.
    /// Returns the key that is pinned afterwards: `key` if this call recorded it, or
    /// the key another connection recorded first (the caller must compare).
    pub async fn record_first_host_key(&self, name: &str, key: &str) -> Result<String, StoreError> {
        sqlx::query(
            "UPDATE targets SET host_key = ? WHERE name = ? AND host_key_mode = 'trust_on_first_use' AND host_key IS NULL",
        )
        .bind(key)
        .bind(name)
        .execute(&self.pool)
        .await?;
        let pinned: Option<Option<String>> =
            sqlx::query_scalar("SELECT host_key FROM targets WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        pinned
            .flatten()
            .ok_or_else(|| StoreError::not_found("target", name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    fn web1(host_key: HostKeyPolicy) -> Target {
        Target {
            name: "web1".into(),
            host: "10.1.2.3".into(),
            port: 2201,
            default_login: Some("root".into()),
            labels: vec![Label::parse("env=staging").unwrap()],
            host_key,
            credential: TargetCredential::StaticKey,
        }
    }

    #[tokio::test]
    async fn targets_round_trip() {
        let (store, _dir) = test_store().await;
        let t = web1(HostKeyPolicy::Pinned {
            key: "ssh-ed25519 AAAA".into(),
        });
        store.add_target(&t).await.unwrap();
        assert!(matches!(
            store.add_target(&t).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(store.target("web1").await.unwrap(), Some(t.clone()));
        assert_eq!(store.list_targets().await.unwrap(), vec![t]);
        store.remove_target("web1").await.unwrap();
        assert_eq!(store.target("web1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn host_ca_targets_round_trip() {
        let (store, _dir) = test_store().await;
        let t = web1(HostKeyPolicy::CertifiedBy {
            ca_keys: vec!["ssh-ed25519 AAAA ca1".into(), "ssh-ed25519 BBBB ca2".into()],
        });
        store.add_target(&t).await.unwrap();
        assert_eq!(store.target("web1").await.unwrap(), Some(t));
    }

    #[tokio::test]
    async fn first_key_wins() {
        let (store, _dir) = test_store().await;
        store
            .add_target(&web1(HostKeyPolicy::TrustOnFirstUse { recorded: None }))
            .await
            .unwrap();
        assert_eq!(
            store.record_first_host_key("web1", "k1").await.unwrap(),
            "k1"
        );
        assert_eq!(
            store.record_first_host_key("web1", "k2").await.unwrap(),
            "k1"
        );
        let t = store.target("web1").await.unwrap().unwrap();
        assert_eq!(t.host_key.expected_key(), Some("k1"));
    }
}
