//! The domain model of Vestibule: people, targets, roles, target selectors and the
//! names people type into their SSH client to say where they want to go.
//!
//! Owns: plain data types and their parsing and validation rules.
//! Must not touch: I/O of any kind (files, network, database), cryptography or
//! authorization decisions. Everything here is pure and cheap to test.

mod names;
mod role;
mod selector;
mod target;

pub use names::{ConnectionRequest, validate_login, validate_name};
pub use role::Role;
pub use selector::{Selector, SelectorError, Term as SelectorTerm};
pub use target::{HostKeyPolicy, Label, Target, TargetCredential};

/// A name that failed validation, with the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {rule}")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub rule: &'static str,
}

/// A person registered on the gateway.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    /// OpenSSH public keys (`ssh-ed25519 AAAA... comment`) the person may log in with.
    pub public_keys: Vec<String>,
    /// Whether a password (argon2id hash, never exposed here) is set.
    pub has_password: bool,
    pub roles: Vec<String>,
}
