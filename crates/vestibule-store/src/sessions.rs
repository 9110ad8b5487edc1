//! Sessions: one row per session channel the gateway bridges, so the CLI can
//! list and end live sessions while the gateway runs.

use crate::{Store, StoreError, now_unix};

/// What is known when a session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub id: String,
    pub person: String,
    pub target: String,
    pub login: String,
    pub kind: String,
    pub via_jump: bool,
    pub ticket: Option<String>,
    pub grant_id: Option<String>,
    pub source: Option<String>,
}

/// A session as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub person: String,
    pub target: String,
    pub login: String,
    pub kind: String,
    pub via_jump: bool,
    pub ticket: Option<String>,
    pub grant_id: Option<String>,
    pub source: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub bytes_to_target: i64,
    pub bytes_from_target: i64,
    pub exit_status: Option<i64>,
    pub outcome: Option<String>,
}

const COLUMNS: &str = "id, person, target, login, kind, via_jump, ticket, grant_id, source, started_at, \
     ended_at, bytes_to_target, bytes_from_target, exit_status, outcome";

impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for SessionRecord {
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            person: row.try_get("person")?,
            target: row.try_get("target")?,
            login: row.try_get("login")?,
            kind: row.try_get("kind")?,
            via_jump: row.try_get("via_jump")?,
            ticket: row.try_get("ticket")?,
            grant_id: row.try_get("grant_id")?,
            source: row.try_get("source")?,
            started_at: row.try_get("started_at")?,
            ended_at: row.try_get("ended_at")?,
            bytes_to_target: row.try_get("bytes_to_target")?,
            bytes_from_target: row.try_get("bytes_from_target")?,
            exit_status: row.try_get("exit_status")?,
            outcome: row.try_get("outcome")?,
        })
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    pub async fn session_started(&self, start: &SessionStart) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, person, target, login, kind, via_jump, ticket, grant_id, source, started_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&start.id)
        .bind(&start.person)
        .bind(&start.target)
        .bind(&start.login)
        .bind(&start.kind)
        .bind(start.via_jump)
        .bind(&start.ticket)
        .bind(&start.grant_id)
        .bind(&start.source)
        .bind(now_unix())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert("session", &start.id, e))?;
        Ok(())
    }

    pub async fn session_ended(
        &self,
        id: &str,
        bytes: (u64, u64),
        exit_status: Option<u32>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = ?, bytes_to_target = ?, bytes_from_target = ?,
             exit_status = ?, outcome = ? WHERE id = ?",
        )
        .bind(now_unix())
        .bind(clamp(bytes.0))
        .bind(clamp(bytes.1))
        .bind(exit_status.map(i64::from))
        .bind(outcome)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Refresh the byte counts of live sessions, in one transaction.
    pub async fn session_bytes(&self, counts: &[(String, u64, u64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, up, down) in counts {
            sqlx::query(
                "UPDATE sessions SET bytes_to_target = ?, bytes_from_target = ? WHERE id = ?",
            )
            .bind(clamp(*up))
            .bind(clamp(*down))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Live sessions, oldest first.
    pub async fn live_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions WHERE ended_at IS NULL ORDER BY started_at, id"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM sessions WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ask the gateway to end a live session (it polls for these).
    pub async fn request_session_kill(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET kill_requested_at = ?, kill_reason = ?
             WHERE id = ? AND ended_at IS NULL",
        )
        .bind(now_unix())
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("live session", id));
        }
        Ok(())
    }

    /// Live sessions someone asked to end, with the reason.
    pub async fn session_kills(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, COALESCE(kill_reason, '') FROM sessions
             WHERE ended_at IS NULL AND kill_requested_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many sessions a just-in-time grant has allowed so far.
    pub async fn sessions_with_grant(&self, grant_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM sessions WHERE grant_id = ?")
                .bind(grant_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// At start-up: sessions a previous run left open ended with it.
    pub async fn end_orphaned_sessions(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET ended_at = ?, outcome = 'gateway stopped' WHERE ended_at IS NULL",
        )
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn a_session_lives_and_ends() {
        let (store, _dir) = test_store().await;
        let start = SessionStart {
            id: "s1".into(),
            person: "alice".into(),
            target: "web1".into(),
            login: "root".into(),
            kind: "shell".into(),
            via_jump: false,
            ticket: Some("INC-1".into()),
            grant_id: None,
            source: Some("127.0.0.1:5000".into()),
        };
        store.session_started(&start).await.unwrap();
        store.session_bytes(&[("s1".into(), 10, 20)]).await.unwrap();
        let live = store.live_sessions().await.unwrap();
        assert_eq!((live.len(), live[0].bytes_from_target), (1, 20));
        assert!(store.request_session_kill("nope", "x").await.is_err());
        store.request_session_kill("s1", "by admin").await.unwrap();
        assert_eq!(
            store.session_kills().await.unwrap(),
            [("s1".into(), "by admin".into())]
        );
        store
            .session_ended("s1", (11, 22), Some(0), "closed")
            .await
            .unwrap();
        assert!(store.live_sessions().await.unwrap().is_empty());
        assert!(store.session_kills().await.unwrap().is_empty());
        let ended = store.session("s1").await.unwrap().unwrap();
        assert_eq!(
            (ended.exit_status, ended.outcome.as_deref()),
            (Some(0), Some("closed"))
        );
    }
}
