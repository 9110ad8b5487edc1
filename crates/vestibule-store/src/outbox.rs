//! The audit outbox: events written by the admin CLI (a separate process) that
//! the gateway moves into the audit chain it alone writes.

use crate::{Store, StoreError, now_unix};

impl Store {
    /// Queue one serialized audit event.
    pub async fn outbox_push(&self, event_json: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_outbox (event, created_at) VALUES (?, ?)")
            .bind(event_json)
            .bind(now_unix())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The oldest queued events, with their ids.
    pub async fn outbox_peek(&self, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT id, event FROM audit_outbox ORDER BY id LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Forget queued events up to and including `id` (they are in the chain).
    pub async fn outbox_done(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM audit_outbox WHERE id <= ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_store;

    #[tokio::test]
    async fn outbox_is_first_in_first_out() {
        let (store, _dir) = test_store().await;
        store.outbox_push("{\"a\":1}").await.unwrap();
        store.outbox_push("{\"b\":2}").await.unwrap();
        let queued = store.outbox_peek(10).await.unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].1, "{\"a\":1}");
        store.outbox_done(queued[0].0).await.unwrap();
        assert_eq!(store.outbox_peek(10).await.unwrap().len(), 1);
    }
}
