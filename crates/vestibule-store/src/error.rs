use thiserror::Error;

/// What can go wrong reading or changing the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{kind} {name} does not exist")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("TOTP secrets cannot be stored or read: the store was opened without the secret key")]
    NoSecretKey,
    #[error("stored {kind} {name} is corrupt: {reason}")]
    Corrupt {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

impl StoreError {
    /// Map a unique-constraint violation to `AlreadyExists`, anything else to `Database`.
    pub(crate) fn on_insert(kind: &'static str, name: &str, err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::AlreadyExists {
                kind,
                name: name.to_owned(),
            },
            _ => Self::Database(err),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: &str) -> Self {
        Self::NotFound {
            kind,
            name: name.to_owned(),
        }
    }
}
