//! The `before` and `after` of an admin command in the audit trail.
//!
//! One mechanism for every command: [`object_of`] names the object a command
//! changes (from its arguments alone), [`Object::snapshot`] reads that
//! object's state from the database or the CA directory, and `main` takes a
//! snapshot before and after the command runs. Handlers stay unaware of the
//! audit trail, and a failed command shows that nothing changed.
//!
//! Secrets never reach a snapshot: users carry key fingerprints and whether a
//! password is set, second factors only whether and when they were enrolled,
//! break-glass tokens their metadata (the store keeps only a hash anyway), the
//! CAs their public key fingerprints. Field names are documented in
//! `docs/audit-events.md` and stable within a schema version.

use anyhow::Result;
use russh::keys::PublicKey;
use serde::Serialize;
use serde_json::{Value, json};
use vestibule_ca::{CaDirectory, CaKind};
use vestibule_store::{LockKind, Store};

use crate::cli::{
    BreakglassCommand, CaCommand, Command, LockCommand, MfaCommand, RequestCommand, RoleCommand,
    SessionsCommand, TargetCommand, UserCommand,
};
use crate::datadir::DataDir;
use vestibule_recording::cli::RecordingsCommand;

/// An object an admin command changes, and its state before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminChange {
    pub object_type: &'static str,
    pub object_id: String,
    pub before: Value,
    pub after: Value,
}

/// What a command changes, named from its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    User(String),
    Mfa(String),
    Target(String),
    Role(String),
    Grant {
        role: String,
        user: String,
    },
    /// The active locks on one subject; a new lock's id is not known before
    /// it exists, so a lock's subject is the stable name.
    Locks {
        kind: LockKind,
        value: String,
    },
    /// A lock named by its id; [`Object::resolve`] turns it into its subject.
    LockId(String),
    Session(String),
    /// `None`: both CAs.
    Ca(Option<CaKind>),
    Certificate(u64),
    /// The unused, unexpired break-glass tokens of one account.
    Breakglass(String),
    /// The open requests of one person: pending, or approved and not yet
    /// ended (a new request's id is made by the store).
    Requests(String),
    Request(String),
    /// One recording (legal hold).
    Recording(String),
    /// All stored recordings (a retention sweep deletes some).
    Recordings,
}

/// The object `command` changes, or `None` for a command that changes nothing.
pub fn object_of(command: &Command) -> Option<Object> {
    Some(match command {
        Command::User(UserCommand::Add { name, .. } | UserCommand::Remove { name }) => {
            Object::User(name.clone())
        }
        Command::User(UserCommand::Mfa(
            MfaCommand::Enroll { name } | MfaCommand::Remove { name },
        )) => Object::Mfa(name.clone()),
        Command::Target(TargetCommand::Add { name, .. } | TargetCommand::Remove { name }) => {
            Object::Target(name.clone())
        }
        Command::Role(RoleCommand::Add { name, .. } | RoleCommand::Remove { name }) => {
            Object::Role(name.clone())
        }
        Command::Role(RoleCommand::Grant { role, user } | RoleCommand::Revoke { role, user }) => {
            Object::Grant {
                role: role.clone(),
                user: user.clone(),
            }
        }
        Command::Lock(LockCommand::Add {
            user, target, role, ..
        }) => match (user, target, role) {
            (Some(user), _, _) => Object::Locks {
                kind: LockKind::User,
                value: user.clone(),
            },
            (_, Some(target), _) => Object::Locks {
                kind: LockKind::Target,
                value: target.clone(),
            },
            (_, _, Some(role)) => Object::Locks {
                kind: LockKind::Role,
                value: role.clone(),
            },
            _ => return None,
        },
        Command::Lock(LockCommand::Remove { id }) => Object::LockId(id.clone()),
        Command::Sessions(SessionsCommand::Kill { id, .. }) => Object::Session(id.clone()),
        Command::Ca(CaCommand::Rotate { kind, .. }) => Object::Ca(kind.map(CaKind::from)),
        Command::Ca(CaCommand::Revoke { serial, .. }) => Object::Certificate(*serial),
        Command::Breakglass(BreakglassCommand::Issue { account, .. }) => {
            Object::Breakglass(account.clone())
        }
        Command::Request(RequestCommand::Create { user, .. }) => Object::Requests(user.clone()),
        Command::Request(RequestCommand::Approve { id, .. } | RequestCommand::Deny { id, .. }) => {
            Object::Request(id.clone())
        }
        Command::Recordings(RecordingsCommand::Hold { id, .. }) => Object::Recording(id.clone()),
        Command::Recordings(RecordingsCommand::Sweep { .. }) => Object::Recordings,
        _ => return None,
    })
}

fn lock_kind(kind: LockKind) -> &'static str {
    match kind {
        LockKind::User => "user",
        LockKind::Target => "target",
        LockKind::Role => "role",
    }
}

fn fingerprint(line: &str) -> String {
    PublicKey::from_openssh(line).map_or_else(
        |_| "unreadable key".to_owned(),
        |key| key.fingerprint(Default::default()).to_string(),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Object {
    /// A lock id becomes the lock's subject, so that `lock remove` and
    /// `lock add` describe the same object. Unknown ids stay as they are.
    pub async fn resolve(self, store: &Store) -> Self {
        let Object::LockId(id) = &self else {
            return self;
        };
        match store.active_locks().await {
            Ok(locks) => locks
                .into_iter()
                .find(|l| &l.id == id)
                .map_or(self, |l| Object::Locks {
                    kind: l.kind,
                    value: l.value,
                }),
            Err(_) => self,
        }
    }

    /// `object_type` and `object_id` in the audit event.
    pub fn name(&self) -> (&'static str, String) {
        match self {
            Object::User(name) => ("user", name.clone()),
            Object::Mfa(name) => ("mfa", name.clone()),
            Object::Target(name) => ("target", name.clone()),
            Object::Role(name) => ("role", name.clone()),
            Object::Grant { role, user } => ("role_grant", format!("{role}/{user}")),
            Object::Locks { kind, value } => ("locks", format!("{}:{value}", lock_kind(*kind))),
            Object::LockId(id) => ("lock", id.clone()),
            Object::Session(id) => ("session", id.clone()),
            Object::Ca(Some(kind)) => ("ca", kind.to_string()),
            Object::Ca(None) => ("ca", "all".to_owned()),
            Object::Certificate(serial) => ("certificate", serial.to_string()),
            Object::Breakglass(account) => ("breakglass_tokens", account.clone()),
            Object::Recording(id) => ("recording", id.clone()),
            Object::Recordings => ("recordings", "all".to_owned()),
            Object::Requests(person) => ("access_requests", person.clone()),
            Object::Request(id) => ("access_request", id.clone()),
        }
    }

    /// The object's state now; `null` when it does not exist.
    pub async fn snapshot(&self, dir: &DataDir, store: &Store) -> Result<Value> {
        Ok(match self {
            Object::Recording(id) => {
                let recordings = crate::recordings::open(dir).await?;
                match recordings.find(id).await {
                    Ok(info) => json!({
                        "id": info.id,
                        "session_id": info.session_id,
                        "state": info.state,
                        "legal_hold": info.legal_hold,
                    }),
                    Err(_) => Value::Null,
                }
            }
            Object::Recordings => {
                let all = crate::recordings::open(dir).await?.list().await?;
                // Counts, not ids: a store may hold many thousands; the
                // sweep itself lists what it deleted.
                let held = all.iter().filter(|r| r.legal_hold).count();
                let oldest = all.iter().filter_map(|r| r.ended).min();
                json!({ "count": all.len(), "held": held, "oldest_ended": oldest })
            }
            Object::User(name) => match store
                .list_users()
                .await?
                .into_iter()
                .find(|u| &u.name == name)
            {
                Some(user) => json!({
                    "name": user.name,
                    "public_keys": user.public_keys.iter().map(|k| fingerprint(k)).collect::<Vec<_>>(),
                    "has_password": user.has_password,
                    "roles": user.roles,
                }),
                None => Value::Null,
            },
            Object::Mfa(name) => match store.mfa(name).await? {
                Some(record) => json!({ "enrolled": true, "enrolled_at": record.enrolled_at }),
                None => json!({ "enrolled": false }),
            },
            Object::Target(name) => match store.target(name).await? {
                Some(target) => serde_json::to_value(target)?,
                None => Value::Null,
            },
            Object::Role(name) => match store
                .list_roles()
                .await?
                .into_iter()
                .find(|r| &r.name == name)
            {
                Some(role) => serde_json::to_value(role)?,
                None => Value::Null,
            },
            Object::Grant { role, user } => {
                let granted = store
                    .list_users()
                    .await?
                    .iter()
                    .any(|u| &u.name == user && u.roles.contains(role));
                json!({ "role": role, "user": user, "granted": granted })
            }
            Object::Locks { kind, value } => {
                let locks: Vec<_> = store
                    .active_locks()
                    .await?
                    .into_iter()
                    .filter(|l| l.kind == *kind && &l.value == value)
                    .collect();
                json!({ "active": locks })
            }
            Object::LockId(id) => {
                let lock = store
                    .active_locks()
                    .await?
                    .into_iter()
                    .find(|l| &l.id == id);
                serde_json::to_value(lock)?
            }
            Object::Session(id) => match store.session(id).await? {
                Some(session) => {
                    let kill = store
                        .session_kills()
                        .await?
                        .into_iter()
                        .any(|(s, _)| &s == id);
                    let mut value = serde_json::to_value(session)?;
                    if let Some(map) = value.as_object_mut() {
                        map.insert("kill_requested".into(), kill.into());
                    }
                    value
                }
                None => Value::Null,
            },
            Object::Ca(kind) => {
                let kinds = match kind {
                    Some(kind) => vec![*kind],
                    None => vec![CaKind::User, CaKind::Host],
                };
                let mut map = serde_json::Map::new();
                for kind in kinds {
                    map.insert(kind.to_string(), ca_state(dir, kind));
                }
                Value::Object(map)
            }
            Object::Certificate(serial) => {
                let reason = store.revocation(*serial).await?;
                json!({ "serial": serial, "revoked": reason.is_some(), "revocation_reason": reason })
            }
            Object::Breakglass(account) => {
                let now = now();
                let tokens: Vec<_> = store
                    .list_breakglass()
                    .await?
                    .into_iter()
                    .filter(|t| &t.account == account && t.used_at.is_none() && t.expires_at > now)
                    .collect();
                json!({ "usable": tokens })
            }
            Object::Requests(person) => {
                let open: Vec<_> = store
                    .list_requests(false)
                    .await?
                    .into_iter()
                    .filter(|r| &r.person == person)
                    .collect();
                json!({ "open": open })
            }
            Object::Request(id) => serde_json::to_value(store.request(id).await?)?,
        })
    }
}

/// A CA's trusted keys (oldest first) and the one that signs, as SHA-256
/// fingerprints; `null` when the directory cannot be read.
fn ca_state(dir: &DataDir, kind: CaKind) -> Value {
    match CaDirectory::new(&dir.ca_root(), kind).load() {
        Ok(keyring) => {
            let trusted: Vec<String> = keyring
                .trusted()
                .iter()
                .map(|k| k.fingerprint(Default::default()).to_string())
                .collect();
            json!({ "signing": trusted.last(), "trusted": trusted })
        }
        Err(_) => Value::Null,
    }
}

/// Take the object's state before a command, run it, take the state after.
/// A snapshot that cannot be read is recorded as the error, not skipped, so
/// the audit event still says what was attempted.
pub struct Snapshots {
    object: Object,
    before: Value,
}

impl Snapshots {
    pub async fn before(dir: &DataDir, store: &Store, object: Object) -> Self {
        let object = object.resolve(store).await;
        let before = state_or_error(object.snapshot(dir, store).await);
        Self { object, before }
    }

    pub async fn after(self, dir: &DataDir, store: &Store) -> AdminChange {
        let after = state_or_error(self.object.snapshot(dir, store).await);
        let (object_type, object_id) = self.object.name();
        AdminChange {
            object_type,
            object_id,
            before: self.before,
            after,
        }
    }
}

fn state_or_error(state: Result<Value>) -> Value {
    state.unwrap_or_else(|error| json!({ "unreadable": format!("{error:#}") }))
}
