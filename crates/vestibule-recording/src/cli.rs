//! Command-line types for the binary to mount, and the functions that run
//! them against a store:
//!
//! ```ignore
//! Recordings { #[command(subcommand)] cmd: vestibule_recording::cli::RecordingsCommand }
//! Play(vestibule_recording::cli::PlayArgs)
//! // under `sessions`:
//! Watch(vestibule_recording::cli::WatchArgs)
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::RecordingError;
use crate::meta::{Mode, RecordingInfo};
use crate::ops::VerifyOutcome;
use crate::play::{PlayOptions, Transcript, replay_cast, write_transcript};
use crate::records::{RecordBuffer, parse_event};
use crate::store::RecordingStore;

/// `vestibule recordings ...`
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// List recordings, oldest first.
    List(ListArgs),
    /// Recompute recordings' SHA-256 and report changed files (exit status 1 if any).
    Verify {
        /// One recording; all when absent.
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a recording to a file (asciicast v2 for terminal sessions).
    Export {
        id: String,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Put a recording on legal hold, which retention never deletes.
    Hold {
        id: String,
        /// Release the hold instead.
        #[arg(long)]
        release: bool,
    },
    /// Delete finished recordings older than the retention period (held ones are kept).
    Sweep {
        /// Overrides recording.retention_days.
        #[arg(long)]
        days: Option<u32>,
    },
    /// Upload recordings waiting in the spool (S3 storage).
    Upload,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this person's recordings.
    #[arg(long)]
    pub user: Option<String>,
    /// Only recordings of this target.
    #[arg(long)]
    pub target: Option<String>,
    /// Only recordings started since then: a duration ago (`90s`, `30m`, `2h`,
    /// `7d`, `2w`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `vestibule play ID`
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Recording id, or a session id (its newest recording).
    pub id: String,
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Longest pause between outputs, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub idle_limit: Option<f64>,
}

/// `vestibule sessions watch ID`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Recording id, or a session id (its newest recording).
    pub id: String,
}

/// When `--since` starts.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, RecordingError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        RecordingError::Usage(format!(
            "--since {s:?}: expected e.g. 90s, 30m, 2h, 7d, 2w or an RFC 3339 time"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: i64 = s[..split].parse().map_err(|_| bad())?;
    let secs = match &s[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad()),
    };
    let ago =
        chrono::Duration::try_seconds(n.checked_mul(secs).ok_or_else(bad)?).ok_or_else(bad)?;
    now.checked_sub_signed(ago).ok_or_else(bad)
}

fn out_err(e: std::io::Error) -> RecordingError {
    RecordingError::Io {
        what: "write",
        path: "output".into(),
        source: e,
    }
}

fn print_table(rows: &[RecordingInfo], out: &mut dyn Write) -> std::io::Result<()> {
    let header = [
        "ID", "STARTED", "STATE", "PERSON", "TARGET", "LOGIN", "KIND", "BYTES", "HOLD",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let mut kind = r.kind.describe();
            if kind.chars().count() > 40 {
                kind = kind.chars().take(39).collect::<String>() + "…";
            }
            [
                r.id.clone(),
                r.started.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                r.state.as_str().to_owned(),
                r.person.clone(),
                r.target.clone(),
                r.login.clone(),
                kind,
                r.bytes.to_string(),
                if r.legal_hold { "hold" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: [&str; 9]| {
        let mut s = String::new();
        for (i, (c, w)) in row.iter().zip(width).enumerate() {
            if i + 1 == row.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, header)?;
    for row in &cells {
        line(out, row.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// Run a `recordings` subcommand; the exit code is 1 when `verify` finds a
/// changed or missing file.
pub async fn run_recordings(
    store: &RecordingStore,
    cmd: RecordingsCommand,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, RecordingError> {
    match cmd {
        RecordingsCommand::List(args) => {
            let since = args
                .since
                .as_deref()
                .map(|s| parse_since(s, Utc::now()))
                .transpose()?;
            let rows: Vec<RecordingInfo> = store
                .list()
                .await?
                .into_iter()
                .filter(|r| args.user.as_ref().is_none_or(|u| &r.person == u))
                .filter(|r| args.target.as_ref().is_none_or(|t| &r.target == t))
                .filter(|r| since.is_none_or(|s| r.started >= s))
                .collect();
            if args.json {
                serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| out_err(e.into()))?;
                writeln!(out).map_err(out_err)?;
            } else {
                print_table(&rows, out).map_err(out_err)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RecordingsCommand::Verify { id, json } => {
            let reports = store.verify(id.as_deref()).await?;
            let bad = reports.iter().any(|r| {
                matches!(
                    r.outcome,
                    VerifyOutcome::Mismatch { .. } | VerifyOutcome::Missing { .. }
                )
            });
            if json {
                serde_json::to_writer_pretty(&mut *out, &reports).map_err(|e| out_err(e.into()))?;
                writeln!(out).map_err(out_err)?;
            } else {
                for r in &reports {
                    let text = match &r.outcome {
                        VerifyOutcome::Ok => "ok".to_owned(),
                        VerifyOutcome::Mismatch { expected, actual } => {
                            format!("CHANGED: {actual}, recorded {expected}")
                        }
                        VerifyOutcome::Missing { reason } => format!("MISSING: {reason}"),
                        VerifyOutcome::Unfinished => "still recording".to_owned(),
                    };
                    writeln!(out, "{} {text}", r.id).map_err(out_err)?;
                }
            }
            Ok(if bad {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        RecordingsCommand::Export { id, output } => {
            let n = store.export(&id, &output).await?;
            writeln!(out, "wrote {n} bytes to {}", output.display()).map_err(out_err)?;
            Ok(ExitCode::SUCCESS)
        }
        RecordingsCommand::Hold { id, release } => {
            store.set_hold(&id, !release).await?;
            let what = if release {
                "released from"
            } else {
                "placed on"
            };
            writeln!(out, "{id} {what} legal hold").map_err(out_err)?;
            Ok(ExitCode::SUCCESS)
        }
        RecordingsCommand::Sweep { days } => {
            let days = days.or(store.config().retention_days).ok_or_else(|| {
                RecordingError::Usage(
                    "no retention period: pass --days or set recording.retention_days".into(),
                )
            })?;
            let deleted = store.sweep(days).await?;
            for id in &deleted {
                writeln!(out, "deleted {id}").map_err(out_err)?;
            }
            writeln!(out, "{} recording(s) deleted", deleted.len()).map_err(out_err)?;
            Ok(ExitCode::SUCCESS)
        }
        RecordingsCommand::Upload => {
            let done = store.retry_uploads().await?;
            for id in &done {
                writeln!(out, "uploaded {id}").map_err(out_err)?;
            }
            let pending = store
                .list()
                .await?
                .iter()
                .filter(|r| r.upload_pending)
                .count();
            writeln!(out, "{} uploaded, {pending} still pending", done.len()).map_err(out_err)?;
            Ok(if pending == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `play`: a terminal session with its timing, anything else as a transcript.
pub async fn run_play(
    store: &RecordingStore,
    args: &PlayArgs,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, RecordingError> {
    let info = store.find(&args.id).await?;
    let content = store.read_all(&info).await?;
    if info.mode == Mode::Asciicast {
        let opts = PlayOptions {
            speed: args.speed,
            idle_limit: args.idle_limit,
        };
        replay_cast(&content, opts, out).await?;
    } else {
        write_transcript(&info, &content, out).map_err(out_err)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sessions watch`: follow a recording as it is written, read-only, until
/// its session ends.
pub async fn run_watch(
    store: &RecordingStore,
    args: &WatchArgs,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, RecordingError> {
    let mut follower = store.follow(&args.id).await?;
    let info = follower.info().clone();
    let cast = info.mode == Mode::Asciicast;
    if !cast {
        Transcript::header(&info, out).map_err(out_err)?;
    }
    let mut transcript = Transcript::default();
    let mut records = RecordBuffer::default();
    let mut header_seen = false;
    while let Some(chunk) = follower.next_chunk().await? {
        records.feed(&chunk);
        records
            .drain(|rec| {
                if !std::mem::replace(&mut header_seen, true) {
                    return Ok(());
                }
                if !cast {
                    return transcript.record(rec, out);
                }
                match parse_event(rec.line) {
                    Some((_, code, serde_json::Value::String(text))) if code == "o" => {
                        out.write_all(text.as_bytes())
                    }
                    _ => Ok(()),
                }
            })
            .map_err(out_err)?;
        out.flush().map_err(out_err)?;
    }
    if !cast {
        transcript.end(out).map_err(out_err)?;
        let info = store.get(&info.id).await?;
        Transcript::footer(&info, out).map_err(out_err)?;
    }
    out.flush().map_err(out_err)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since() {
        let now = DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("2h", now).unwrap().to_rfc3339(),
            "2025-06-01T10:00:00+00:00"
        );
        assert_eq!(
            parse_since("7d", now).unwrap().to_rfc3339(),
            "2025-05-25T12:00:00+00:00"
        );
        assert_eq!(
            parse_since("2025-05-01T00:00:00+02:00", now)
                .unwrap()
                .to_rfc3339(),
            "2025-04-30T22:00:00+00:00"
        );
        assert!(parse_since("2x", now).is_err());
        assert!(parse_since("h", now).is_err());
        assert!(parse_since("99999999999999999w", now).is_err());
    }
}
