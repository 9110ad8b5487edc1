//! The audit trail's life in `serve` (key, writer, index, SIEM sinks) and the
//! `vestibule audit` commands.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;
use vestibule_audit::sinks::{SinkSet, SinkStats};
use vestibule_audit::{AuditError, AuditHandle, AuditIndex, AuditKey, AuditWriter};
use vestibule_store::Store;

use crate::config::Config;
use crate::datadir::DataDir;

/// A running audit trail.
pub struct AuditRuntime {
    pub handle: AuditHandle,
    writer: JoinHandle<Result<(), AuditError>>,
    sinks: SinkStatsSource,
}

/// The SIEM sinks, shared with the metrics task until shutdown takes them.
#[derive(Clone)]
pub struct SinkStatsSource(Arc<Mutex<Option<SinkSet>>>);

impl SinkStatsSource {
    pub fn stats(&self) -> Vec<SinkStats> {
        self.0
            .lock()
            .ok()
            .and_then(|sinks| sinks.as_ref().map(SinkSet::stats))
            .unwrap_or_default()
    }
}

impl DataDir {
    pub fn audit_dir(&self) -> PathBuf {
        self.root.join("audit")
    }

    pub fn audit_key_path(&self) -> PathBuf {
        self.root.join("keys").join("audit_ed25519_key")
    }
}

/// Open the key (made on first use, 0600), continue the chain, start the index
/// and the sinks. A chain that does not match its signed head stops the start:
/// someone must look (`vestibule audit verify`).
pub async fn start(dir: &DataDir, config: &Config, store: &Store) -> Result<AuditRuntime> {
    config
        .audit
        .validate()
        .context("invalid [audit] configuration")?;
    let key = AuditKey::load_or_create(&dir.audit_key_path())
        .context("cannot load the audit signing key")?;
    let index = AuditIndex::open(store.pool().clone())
        .await
        .context("cannot open the audit index")?;
    let mut options = config.audit.writer_options();
    options.index = Some(index);
    let (handle, writer) = AuditWriter::spawn(dir.audit_dir(), key, options)
        .await
        .context("cannot open the audit trail")?;
    let sinks = SinkSet::spawn(&dir.audit_dir(), &config.audit.sinks, handle.head())
        .await
        .context("cannot start the audit sinks")?;
    Ok(AuditRuntime {
        handle,
        writer,
        sinks: SinkStatsSource(Arc::new(Mutex::new(Some(sinks)))),
    })
}

impl AuditRuntime {
    pub fn sink_stats(&self) -> SinkStatsSource {
        self.sinks.clone()
    }

    /// Deliver what the sinks can in a few seconds, sign a final checkpoint, stop.
    pub async fn shutdown(self) {
        let sinks = self.sinks.0.lock().ok().and_then(|mut s| s.take());
        if let Some(sinks) = sinks {
            sinks.shutdown(Duration::from_secs(5)).await;
        }
        if let Err(error) = self.handle.shutdown().await {
            tracing::error!(%error, "audit trail did not shut down cleanly");
        }
        match self.writer.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "audit writer failed"),
            Err(error) => tracing::error!(%error, "audit writer task failed"),
        }
    }
}

/// `vestibule audit ...`
pub async fn run(dir: &DataDir, command: vestibule_audit::cli::AuditCommand) -> Result<bool> {
    let store = crate::admin::store(dir).await?;
    let context = vestibule_audit::cli::CliContext {
        dir: dir.audit_dir(),
        key_path: dir.audit_key_path(),
        pool: Some(store.pool()),
    };
    let mut out = std::io::stdout();
    let outcome = vestibule_audit::cli::run(&command, &context, &mut out).await?;
    Ok(outcome == vestibule_audit::cli::CliOutcome::Success)
}
