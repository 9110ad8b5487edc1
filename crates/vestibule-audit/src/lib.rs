//! Vestibule's tamper-evident audit trail.
//!
//! Owns: the audit event model ([`AuditEvent`], documented in
//! `docs/audit-events.md`), the append-only hash-chained log under the audit
//! directory (`DATA_DIR/audit/`: `audit-*.jsonl`, the signed `head.json`
//! witness, `sinks/*.cursor`), the Ed25519 audit key file, the group-commit
//! writer task, [`verify`], the `audit_events` search table in the database it
//! is given, the SIEM sinks that export the log, and the `vestibule audit` CLI
//! subcommands ([`cli`]).
//!
//! Must not touch: the gateway's protocol code (callers build events and hand
//! them to an [`AuditHandle`]), other tables or the store crate's migrations
//! (the index table is created with `CREATE TABLE IF NOT EXISTS`), or the
//! process-wide TLS provider (TLS clients here are built with an explicit
//! provider).
//!
//! The log file is the source of truth: the index and every sink are derived
//! from it and can be rebuilt or caught up from it.

mod batch;
mod chain;
pub mod cli;
mod config;
mod error;
mod event;
mod files;
mod index;
mod indexer;
mod key;
mod logstate;
mod reader;
pub mod sinks;
mod timefmt;
mod verify;
mod witness;
mod writer;

pub use config::AuditConfig;
pub use error::AuditError;
pub use event::{Action, AuditEvent, Level, Outcome, StoredEvent};
pub use index::{AuditIndex, Order, SearchFilter};
pub use key::{AuditKey, AuditPublicKey};
pub use timefmt::{Timestamp, parse_duration};
pub use verify::{Problem, ProblemKind, VerifyReport, verify};
pub use writer::{AuditHandle, AuditWriter, WriterOptions, WriterStats};

/// The version of the event schema this crate writes (`vestibule.schema`).
pub const SCHEMA_VERSION: u32 = 1;
