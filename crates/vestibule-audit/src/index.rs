//! The search index: a copy of the log in the gateway's database, table
//! `audit_events`, for `vestibule audit search`. The log stays the source of
//! truth; a lost or stale index is rebuilt from it ([`AuditIndex::reindex`]).

use std::path::Path;

use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::reader::LogTail;
use crate::{AuditError, AuditEvent, StoredEvent, Timestamp};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_events (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT,
        user_name TEXT,
        target TEXT,
        session_id TEXT,
        source_ip TEXT,
        event TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts_ms)",
    "CREATE INDEX IF NOT EXISTS audit_events_user ON audit_events (user_name, seq)",
    "CREATE INDEX IF NOT EXISTS audit_events_target ON audit_events (target, seq)",
    "CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, seq)",
    "CREATE INDEX IF NOT EXISTS audit_events_session ON audit_events (session_id)",
];

/// Rows per transaction when indexing from the files.
const CATCH_UP_BATCH: usize = 500;

/// The columns searched on, taken from an event's JSON so events of newer
/// schema versions index as well as they can.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexMeta {
    ts_ms: i64,
    action: String,
    outcome: Option<String>,
    user: Option<String>,
    target: Option<String>,
    session: Option<String>,
    source_ip: Option<String>,
}

impl IndexMeta {
    pub fn from_value(event: &Value) -> Self {
        let text = |pointer: &str| {
            event
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            ts_ms: text("/@timestamp")
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(Timestamp::unix_millis)
                .unwrap_or(0),
            action: text("/event/action").unwrap_or_default(),
            outcome: text("/event/outcome"),
            user: text("/user/name"),
            target: text("/vestibule/target"),
            session: text("/vestibule/session_id"),
            source_ip: text("/source/ip"),
        }
    }
}

/// Newest first (the default) or oldest first, by seq.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// What to search for; every field given must match.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// `user.name`, exactly.
    pub user: Option<String>,
    /// `vestibule.target`, exactly.
    pub target: Option<String>,
    /// `event.action`: exact (`session.start`), or a prefix when it ends with
    /// `.` or `*` (`session.`, `session.*`).
    pub action: Option<String>,
    pub session: Option<String>,
    /// Events at or after this time.
    pub since: Option<Timestamp>,
    /// Events before this time.
    pub until: Option<Timestamp>,
    /// At most this many (0 means 100).
    pub limit: u32,
    pub order: Order,
}

/// Ten bound values a row, well under SQLite's limit of 32,766 a statement.
const ROWS_PER_STATEMENT: usize = 256;

fn insert_statement(rows: &[(u64, String, IndexMeta, String)]) -> QueryBuilder<Sqlite> {
    let mut statement = QueryBuilder::new(
        "INSERT OR REPLACE INTO audit_events \
         (seq, hash, ts_ms, action, outcome, user_name, target, session_id, source_ip, event) ",
    );
    statement.push_values(rows, |mut row, (seq, hash, meta, json)| {
        row.push_bind(i64::try_from(*seq).unwrap_or(i64::MAX))
            .push_bind(hash.as_str())
            .push_bind(meta.ts_ms)
            .push_bind(meta.action.as_str())
            .push_bind(meta.outcome.as_deref())
            .push_bind(meta.user.as_deref())
            .push_bind(meta.target.as_deref())
            .push_bind(meta.session.as_deref())
            .push_bind(meta.source_ip.as_deref())
            .push_bind(json.as_str());
    });
    statement
}

#[derive(Clone, Debug)]
pub struct AuditIndex {
    pool: SqlitePool,
}

impl AuditIndex {
    /// Use `pool` (the gateway's database), creating the table if needed.
    pub async fn open(pool: SqlitePool) -> Result<Self, AuditError> {
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// The highest seq indexed, 0 for none.
    pub async fn max_seq(&self) -> Result<u64, AuditError> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0))
    }

    /// (seq, hash, columns, canonical event JSON) in one transaction. Rows go
    /// in multi-row statements: each statement is a round trip to the
    /// database's thread, and a connection's events arrive together.
    pub(crate) async fn insert(
        &self,
        rows: &[(u64, String, IndexMeta, String)],
    ) -> Result<(), AuditError> {
        match rows.len() {
            0 => Ok(()),
            n if n <= ROWS_PER_STATEMENT => {
                insert_statement(rows).build().execute(&self.pool).await?;
                Ok(())
            }
            _ => {
                let mut tx = self.pool.begin().await?;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    insert_statement(chunk).build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Index the events after `after` up to `upto` from the files in `dir`;
    /// returns how many.
    async fn index_range(&self, dir: &Path, after: u64, upto: u64) -> Result<u64, AuditError> {
        let mut tail = LogTail::new(dir, after);
        let mut count = 0;
        loop {
            let (next, records) = {
                let mut moved = tail;
                tokio::task::spawn_blocking(move || {
                    let records = moved.read(CATCH_UP_BATCH, upto);
                    (moved, records)
                })
                .await
                .map_err(|_| AuditError::WriterStopped)?
            };
            tail = next;
            let records = records.map_err(AuditError::io("cannot read the audit log in", dir))?;
            if records.is_empty() {
                return Ok(count);
            }
            count += records.len() as u64;
            let rows: Vec<_> = records
                .into_iter()
                .map(|r| {
                    let meta = IndexMeta::from_value(&r.event);
                    (r.seq, r.hash, meta, crate::chain::canonical(&r.event))
                })
                .collect();
            self.insert(&rows).await?;
        }
    }

    /// Index what the log in `dir` holds beyond the index, up to the head
    /// witness (so never an event whose sync is still running); returns how
    /// many. Searches call this first, so they see every durable event even
    /// while the gateway's indexer gathers commits.
    pub async fn catch_up(&self, dir: &Path) -> Result<u64, AuditError> {
        let after = self.max_seq().await?;
        let durable = match crate::witness::Head::read(dir) {
            Ok(Some(head)) => head.seq,
            // No witness to bound the read: the gateway's indexer covers it.
            Ok(None) | Err(_) => return Ok(0),
        };
        if durable <= after {
            return Ok(0);
        }
        self.index_range(dir, after, durable).await
    }

    /// Rebuild the index from the log files in `dir`; returns the number of
    /// events indexed.
    pub async fn reindex(&self, dir: &Path) -> Result<u64, AuditError> {
        sqlx::query("DELETE FROM audit_events")
            .execute(&self.pool)
            .await?;
        self.index_range(dir, 0, u64::MAX).await
    }

    /// Events matching `filter`, ordered by seq as `filter.order` says.
    pub async fn search(&self, filter: &SearchFilter) -> Result<Vec<StoredEvent>, AuditError> {
        let mut sql = String::from("SELECT seq, hash, event FROM audit_events WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(user) = &filter.user {
            sql.push_str(" AND user_name = ?");
            binds.push(Bind::Text(user.clone()));
        }
        if let Some(target) = &filter.target {
            sql.push_str(" AND target = ?");
            binds.push(Bind::Text(target.clone()));
        }
        if let Some(session) = &filter.session {
            sql.push_str(" AND session_id = ?");
            binds.push(Bind::Text(session.clone()));
        }
        if let Some(action) = &filter.action {
            if let Some(prefix) = action
                .strip_suffix('*')
                .or_else(|| action.ends_with('.').then_some(action.as_str()))
            {
                // A range rather than LIKE: exact on bytes and uses the index.
                sql.push_str(" AND action >= ? AND action < ?");
                binds.push(Bind::Text(prefix.to_owned()));
                binds.push(Bind::Text(format!("{prefix}\u{10FFFF}")));
            } else {
                sql.push_str(" AND action = ?");
                binds.push(Bind::Text(action.clone()));
            }
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND ts_ms >= ?");
            binds.push(Bind::Int(since.unix_millis()));
        }
        if let Some(until) = filter.until {
            sql.push_str(" AND ts_ms < ?");
            binds.push(Bind::Int(until.unix_millis()));
        }
        sql.push_str(match filter.order {
            Order::NewestFirst => " ORDER BY seq DESC",
            Order::OldestFirst => " ORDER BY seq ASC",
        });
        sql.push_str(" LIMIT ?");
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        binds.push(Bind::Int(i64::from(limit)));

        // Only fixed fragments go into the text; every value is bound.
        let mut query = sqlx::query_as::<_, (i64, String, String)>(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(int) => query.bind(int),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut found = Vec::with_capacity(rows.len());
        for (seq, hash, json) in rows {
            match serde_json::from_str::<AuditEvent>(&json) {
                Ok(event) => found.push(StoredEvent {
                    seq: u64::try_from(seq).unwrap_or(0),
                    hash,
                    event,
                }),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "indexed audit event does not parse; skipped");
                }
            }
        }
        Ok(found)
    }
}

enum Bind {
    Text(String),
    Int(i64),
}
