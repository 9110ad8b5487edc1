//! Just-in-time access requests: filed, approved by others (as many approvals as
//! configured), and then a grant that lasts the requested duration.

use crate::{Store, StoreError, new_id, now_unix};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Cancelled,
}

impl RequestState {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// One request, with its approvals so far.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessRequest {
    pub id: String,
    pub person: String,
    pub target: String,
    pub login: String,
    pub duration_secs: i64,
    pub reason: String,
    pub state: RequestState,
    pub approvals_needed: i64,
    pub approvers: Vec<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub deny_reason: Option<String>,
    /// When the grant ends (approved requests only).
    pub expires_at: Option<i64>,
}

impl AccessRequest {
    /// An approved request whose time has not run out.
    pub fn is_active_grant(&self, now: i64) -> bool {
        self.state == RequestState::Approved && self.expires_at.is_some_and(|e| e > now)
    }
}

type RequestRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

const COLUMNS: &str = "id, person, target, login, duration_secs, reason, state, approvals_needed, \
     created_at, decided_at, deny_reason, expires_at, \
     (SELECT json_group_array(approver) FROM request_approvals a WHERE a.request_id = r.id)";

/// Why a request cannot be approved or denied.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("nobody approves their own request")]
    OwnRequest,
    #[error("request {id} is {state:?}, not pending")]
    NotPending { id: String, state: RequestState },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    pub async fn create_request(
        &self,
        person: &str,
        target: &str,
        login: &str,
        duration_secs: i64,
        reason: &str,
        approvals_needed: i64,
    ) -> Result<AccessRequest, StoreError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO access_requests (id, person, target, login, duration_secs, reason, state, approvals_needed, created_at)
             VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(&id)
        .bind(person)
        .bind(target)
        .bind(login)
        .bind(duration_secs)
        .bind(reason)
        .bind(approvals_needed.max(1))
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        self.request(&id)
            .await?
            .ok_or_else(|| StoreError::not_found("request", &id))
    }

    pub async fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM access_requests r WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(request_from_row).transpose()
    }

    /// Requests, newest first; pending and active ones only unless `all`.
    pub async fn list_requests(&self, all: bool) -> Result<Vec<AccessRequest>, StoreError> {
        let rows: Vec<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM access_requests r
             WHERE ? OR state = 'pending' OR (state = 'approved' AND expires_at > ?)
             ORDER BY created_at DESC, id"
        )))
        .bind(all)
        .bind(now_unix())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(request_from_row).collect()
    }

    /// Add `approver`'s approval; the request becomes a grant once it has enough.
    pub async fn approve_request(
        &self,
        id: &str,
        approver: &str,
    ) -> Result<AccessRequest, DecideError> {
        let request = self.pending(id).await?;
        if request.person == approver {
            return Err(DecideError::OwnRequest);
        }
        let now = now_unix();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        sqlx::query("INSERT OR IGNORE INTO request_approvals (request_id, approver, approved_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(approver)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        sqlx::query(
            "UPDATE access_requests SET state = 'approved', decided_at = ?, decided_by = ?,
                    expires_at = ? + duration_secs
             WHERE id = ? AND state = 'pending' AND approvals_needed <=
                   (SELECT count(*) FROM request_approvals WHERE request_id = ?)",
        )
        .bind(now)
        .bind(approver)
        .bind(now)
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(self
            .request(id)
            .await?
            .ok_or_else(|| StoreError::not_found("request", id))?)
    }

    pub async fn deny_request(
        &self,
        id: &str,
        by: &str,
        reason: &str,
    ) -> Result<AccessRequest, DecideError> {
        self.pending(id).await?;
        sqlx::query(
            "UPDATE access_requests SET state = 'denied', decided_at = ?, decided_by = ?, deny_reason = ?
             WHERE id = ? AND state = 'pending'",
        )
        .bind(now_unix())
        .bind(by)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(self
            .request(id)
            .await?
            .ok_or_else(|| StoreError::not_found("request", id))?)
    }

    async fn pending(&self, id: &str) -> Result<AccessRequest, DecideError> {
        let request = self
            .request(id)
            .await?
            .ok_or_else(|| StoreError::not_found("request", id))?;
        if request.state != RequestState::Pending {
            return Err(DecideError::NotPending {
                id: id.to_owned(),
                state: request.state,
            });
        }
        Ok(request)
    }

    /// The grant (approved, unexpired request) for this person, target and login
    /// that lasts longest, if any.
    pub async fn active_grant(
        &self,
        person: &str,
        target: &str,
        login: &str,
    ) -> Result<Option<AccessRequest>, StoreError> {
        let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM access_requests r
             WHERE person = ? AND target = ? AND login = ? AND state = 'approved' AND expires_at > ?
             ORDER BY expires_at DESC LIMIT 1"
        )))
        .bind(person)
        .bind(target)
        .bind(login)
        .bind(now_unix())
        .fetch_optional(&self.pool)
        .await?;
        row.map(request_from_row).transpose()
    }
}

fn request_from_row(row: RequestRow) -> Result<AccessRequest, StoreError> {
    let (
        id,
        person,
        target,
        login,
        duration_secs,
        reason,
        state,
        needed,
        created,
        decided,
        deny,
        expires,
        approvers,
    ) = row;
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: "request",
        name: id.clone(),
        reason,
    };
    let state =
        RequestState::parse(&state).ok_or_else(|| corrupt(format!("unknown state {state}")))?;
    let approvers: Vec<String> = serde_json::from_str(approvers.as_deref().unwrap_or("[]"))
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(AccessRequest {
        id,
        person,
        target,
        login,
        duration_secs,
        reason,
        state,
        approvals_needed: needed,
        approvers,
        created_at: created,
        decided_at: decided,
        deny_reason: deny,
        expires_at: expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    #[tokio::test]
    async fn two_approvals_make_a_grant() {
        let (store, _dir) = test_store().await;
        let req = store
            .create_request("alice", "web1", "root", 3600, "INC-1", 2)
            .await
            .unwrap();
        assert_eq!(req.state, RequestState::Pending);
        assert!(matches!(
            store.approve_request(&req.id, "alice").await,
            Err(DecideError::OwnRequest)
        ));
        let once = store.approve_request(&req.id, "bob").await.unwrap();
        assert_eq!(
            (once.state, once.approvers.clone()),
            (RequestState::Pending, vec!["bob".to_string()])
        );
        assert!(
            store
                .active_grant("alice", "web1", "root")
                .await
                .unwrap()
                .is_none()
        );
        let twice = store.approve_request(&req.id, "carol").await.unwrap();
        assert_eq!(twice.state, RequestState::Approved);
        assert!(twice.is_active_grant(now_unix()));
        let grant = store
            .active_grant("alice", "web1", "root")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grant.id, req.id);
        assert!(
            store
                .active_grant("alice", "web1", "deploy")
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            store.deny_request(&req.id, "bob", "no").await,
            Err(DecideError::NotPending { .. })
        ));
        let other = store
            .create_request("alice", "db1", "root", 60, "x", 1)
            .await
            .unwrap();
        let denied = store
            .deny_request(&other.id, "bob", "not today")
            .await
            .unwrap();
        assert_eq!(denied.state, RequestState::Denied);
        assert_eq!(store.list_requests(false).await.unwrap().len(), 1);
        assert_eq!(store.list_requests(true).await.unwrap().len(), 2);
    }
}
