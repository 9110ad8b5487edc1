//! Vestibule's persistent state: people, keys, targets, roles and grants, in an
//! embedded SQLite database by default.
//!
//! Owns: the schema and its migrations, and every SQL statement. The admin CLI and
//! the running gateway open the same database (WAL mode), so changes made by the CLI
//! apply to the next connection without a restart.
//! Must not touch: the session data path. The gateway reads the store when a person
//! authenticates or asks for a target, never per packet.

mod breakglass;
mod certificates;
mod error;
mod locks;
mod mfa;
mod outbox;
mod requests;
mod roles;
mod sealed;
mod sessions;
mod targets;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use breakglass::BreakglassRecord;
pub use certificates::CertificateRecord;
pub use error::StoreError;
pub use locks::{Lock, LockKind};
pub use mfa::MfaRecord;
pub use requests::{AccessRequest, DecideError, RequestState};
pub use roles::RoleRecord;
pub use sealed::{BadKey, SecretKey};
pub use sessions::{SessionRecord, SessionStart};
pub use users::UserCredentials;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Seals TOTP secrets; without it they can be neither stored nor read.
    secret_key: Option<Arc<SecretKey>>,
}

fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sqlx::SqlStr::from_static(sql),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "initial",
            include_str!("../migrations/sqlite/0001_initial.sql"),
        ),
        migration(
            2,
            "certificates",
            include_str!("../migrations/sqlite/0002_certificates.sql"),
        ),
        migration(
            3,
            "revocations",
            include_str!("../migrations/sqlite/0003_revocations.sql"),
        ),
        migration(
            4,
            "access broker",
            include_str!("../migrations/sqlite/0004_access_broker.sql"),
        ),
        migration(
            5,
            "audit outbox",
            include_str!("../migrations/sqlite/0005_audit_outbox.sql"),
        ),
        migration(
            6,
            "identity",
            include_str!("../migrations/sqlite/0006_identity.sql"),
        ),
        migration(
            7,
            "role requires MFA",
            include_str!("../migrations/sqlite/0007_role_mfa.sql"),
        ),
        migration(
            8,
            "certified keys",
            include_str!("../migrations/sqlite/0008_certified_keys.sql"),
        ),
    ])
}

impl Store {
    /// Open (creating if needed) the SQLite database at `path` and bring its schema
    /// up to date.
    pub async fn open_sqlite(path: &Path, create: bool) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(StoreError::Database)?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        migrator().run(&pool).await?;
        Ok(Self {
            pool,
            secret_key: None,
        })
    }

    /// Use `key` to seal and open TOTP secrets, sealing any stored in the
    /// clear by older versions.
    pub async fn with_secret_key(mut self, key: SecretKey) -> Result<Self, StoreError> {
        self.secret_key = Some(Arc::new(key));
        self.seal_clear_mfa_secrets().await?;
        Ok(self)
    }

    /// The connection pool, for components that keep their own tables in the
    /// same database (the audit index).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Close the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh random id: 16 hex digits.
pub(crate) fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
pub(crate) async fn test_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SecretKey::from_text(&SecretKey::generate_text()).expect("test key");
    let store = Store::open_sqlite(&dir.path().join("t.db"), true)
        .await
        .expect("open test store")
        .with_secret_key(key)
        .await
        .expect("test key");
    (store, dir)
}
