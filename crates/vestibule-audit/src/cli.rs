//! `vestibule audit ...`: the subcommand types for the binary to mount, and
//! their run functions. Paths and the database pool come from the caller.
//!
//! ```ignore
//! #[derive(clap::Subcommand)]
//! enum Command {
//!     /// The audit trail.
//!     #[command(subcommand)]
//!     Audit(vestibule_audit::cli::AuditCommand),
//! }
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sqlx::SqlitePool;

use crate::{
    AuditError, AuditIndex, AuditKey, AuditPublicKey, Order, SearchFilter, StoredEvent, Timestamp,
};

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Check the log's hash chain, checkpoints and head witness; exits
    /// non-zero if anything is wrong.
    Verify(VerifyArgs),
    /// Search audit events (newest first).
    Search(SearchArgs),
    /// Print the audit public key, for verifying a copy of the log elsewhere.
    Key,
    /// Rebuild the search index from the log files.
    Reindex(ReindexArgs),
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The audit directory (default: the data dir's `audit/`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The public key (`ed25519:...`) or a file holding it (default: the
    /// data dir's audit key).
    #[arg(long, value_name = "KEY|FILE")]
    pub public_key: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Events by this person (`user.name`).
    #[arg(long)]
    pub user: Option<String>,
    /// Events about this target.
    #[arg(long)]
    pub target: Option<String>,
    /// Event action: exact (`session.start`) or a prefix (`session.` or
    /// `session.*`).
    #[arg(long = "type", visible_alias = "action", value_name = "ACTION")]
    pub action: Option<String>,
    /// Events of this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Events since a time (RFC 3339) or for a duration back (30m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Events before a time (RFC 3339) or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Oldest first instead of newest first.
    #[arg(long)]
    pub oldest_first: bool,
    /// One JSON object per line (each with `seq`, `hash` and `event`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReindexArgs {
    /// The audit directory (default: the data dir's `audit/`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// What the binary knows: where things are.
pub struct CliContext<'a> {
    /// The audit directory, `DATA_DIR/audit`.
    pub dir: PathBuf,
    /// The audit private key file.
    pub key_path: PathBuf,
    /// The gateway's database, for `search` and `reindex`.
    pub pool: Option<&'a SqlitePool>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("audit search needs the database")]
    NoDatabase,
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

/// How the command ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliOutcome {
    Success,
    /// `verify` found problems.
    ProblemsFound,
}

impl CliOutcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            CliOutcome::Success => ExitCode::SUCCESS,
            CliOutcome::ProblemsFound => ExitCode::FAILURE,
        }
    }
}

/// Run `command`, printing to `out`.
pub async fn run(
    command: &AuditCommand,
    context: &CliContext<'_>,
    out: &mut dyn Write,
) -> Result<CliOutcome, CliError> {
    match command {
        AuditCommand::Verify(args) => run_verify(args, context, out).await,
        AuditCommand::Search(args) => {
            let pool = context.pool.ok_or(CliError::NoDatabase)?;
            let index = AuditIndex::open(pool.clone()).await?;
            // A search on the index as it stands beats no search at all.
            if let Err(e) = index.catch_up(&context.dir).await {
                tracing::warn!(error = %e, "could not bring the audit index up to the log");
            }
            run_search(args, &index, Timestamp::now(), out).await?;
            Ok(CliOutcome::Success)
        }
        AuditCommand::Key => {
            let key = AuditKey::load(&context.key_path)?;
            writeln!(out, "{}", key.public_key())?;
            Ok(CliOutcome::Success)
        }
        AuditCommand::Reindex(args) => {
            let pool = context.pool.ok_or(CliError::NoDatabase)?;
            let dir = args.dir.clone().unwrap_or_else(|| context.dir.clone());
            let index = AuditIndex::open(pool.clone()).await?;
            let count = index.reindex(&dir).await?;
            writeln!(out, "indexed {count} events from {}", dir.display())?;
            Ok(CliOutcome::Success)
        }
    }
}

async fn run_verify(
    args: &VerifyArgs,
    context: &CliContext<'_>,
    out: &mut dyn Write,
) -> Result<CliOutcome, CliError> {
    let dir = args.dir.clone().unwrap_or_else(|| context.dir.clone());
    let key = match &args.public_key {
        Some(given) => public_key_argument(given)?,
        None => AuditKey::load(&context.key_path)?.public_key(),
    };
    let report = tokio::task::spawn_blocking(move || crate::verify(&dir, &key))
        .await
        .map_err(|_| AuditError::WriterStopped)??;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
        writeln!(out, "{text}")?;
    } else {
        writeln!(out, "{report}")?;
    }
    Ok(if report.is_ok() {
        CliOutcome::Success
    } else {
        CliOutcome::ProblemsFound
    })
}

fn public_key_argument(given: &str) -> Result<AuditPublicKey, AuditError> {
    if given.starts_with("ed25519:") {
        return given.parse();
    }
    let path = Path::new(given);
    let text = std::fs::read_to_string(path).map_err(AuditError::io("cannot read", path))?;
    text.trim().parse()
}

/// `search`, with `now` given so durations are testable.
pub async fn run_search(
    args: &SearchArgs,
    index: &AuditIndex,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<Vec<StoredEvent>, CliError> {
    let time = |text: &Option<String>| {
        text.as_deref()
            .map(|t| Timestamp::parse_since(t, now))
            .transpose()
    };
    let filter = SearchFilter {
        user: args.user.clone(),
        target: args.target.clone(),
        action: args.action.clone(),
        session: args.session.clone(),
        since: time(&args.since)?,
        until: time(&args.until)?,
        limit: args.limit,
        order: if args.oldest_first {
            Order::OldestFirst
        } else {
            Order::NewestFirst
        },
    };
    let found = index.search(&filter).await?;
    if args.json {
        for stored in &found {
            let line = serde_json::to_string(stored).map_err(io::Error::other)?;
            writeln!(out, "{line}")?;
        }
    } else {
        print_table(&found, out)?;
    }
    Ok(found)
}

fn print_table(found: &[StoredEvent], out: &mut dyn Write) -> io::Result<()> {
    if found.is_empty() {
        return writeln!(out, "no matching events");
    }
    let header = [
        "SEQ", "TIME", "ACTION", "OUTCOME", "USER", "SOURCE", "TARGET", "LOGIN", "SESSION",
        "REASON",
    ];
    let rows: Vec<[String; 10]> = found.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned()
    };
    writeln!(out, "{}", line(&header.map(str::to_owned)))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

fn row(stored: &StoredEvent) -> [String; 10] {
    let e = &stored.event;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let source = e
        .source
        .as_ref()
        .and_then(|s| s.ip)
        .map(|ip| ip.to_string());
    [
        stored.seq.to_string(),
        e.timestamp.to_string(),
        e.action().to_string(),
        e.outcome().as_str().to_owned(),
        or_dash(e.user_name()),
        or_dash(source.as_deref()),
        or_dash(e.target_name()),
        or_dash(e.vestibule.login.as_deref()),
        or_dash(e.session_id()),
        or_dash(e.event.reason.as_deref()),
    ]
}
