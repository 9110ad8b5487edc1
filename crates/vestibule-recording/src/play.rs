//! Replay: asciicast with its timing, and readable transcripts of the other
//! formats (exec output, SFTP operations, byte counts).

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::RecordingError;
use crate::events::Stream;
use crate::meta::{Mode, RecordingInfo};
use crate::records::{Split, parse_event, split_record, stream_of};
use crate::sftp::SftpOp;

/// How to replay a terminal session.
#[derive(Debug, Clone, Copy)]
pub struct PlayOptions {
    /// 2.0 plays twice as fast.
    pub speed: f64,
    /// Longest pause, in seconds, before speed is applied.
    pub idle_limit: Option<f64>,
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions {
            speed: 1.0,
            idle_limit: None,
        }
    }
}

fn io_err(e: std::io::Error) -> RecordingError {
    RecordingError::Io {
        what: "write",
        path: "output".into(),
        source: e,
    }
}

/// Write an asciicast's output to `out` with its original pauses (scaled by
/// `speed`, capped by `idle_limit`).
pub async fn replay_cast(
    content: &[u8],
    opts: PlayOptions,
    out: &mut (dyn Write + Send),
) -> Result<(), RecordingError> {
    let speed = if opts.speed > 0.0 && opts.speed.is_finite() {
        opts.speed
    } else {
        1.0
    };
    let mut prev = 0.0f64;
    let mut rest = content;
    let mut header = true;
    while let Some((rec, used)) = split_record(rest) {
        rest = &rest[used..];
        if std::mem::take(&mut header) {
            continue;
        }
        let Some((t, code, Value::String(text))) = parse_event(rec.line) else {
            continue;
        };
        if code != "o" {
            continue;
        }
        let mut pause = (t - prev).max(0.0);
        if let Some(limit) = opts.idle_limit {
            pause = pause.min(limit.max(0.0));
        }
        prev = t;
        if pause > 0.0 {
            out.flush().map_err(io_err)?;
            tokio::time::sleep(Duration::from_secs_f64(pause / speed)).await;
        }
        out.write_all(text.as_bytes()).map_err(io_err)?;
    }
    out.flush().map_err(io_err)
}

/// Renders JSON-lines recordings as text, line by line, so it serves both a
/// finished recording and a live one followed by `sessions watch`.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    /// Unfinished text lines per stream (out, err, in).
    partial: [String; 3],
    started: [f64; 3],
}

fn stream_index(code: &str) -> Option<(usize, &'static str)> {
    Some(match stream_of(code)? {
        Stream::Output => (0, "out"),
        Stream::Stderr => (1, "err"),
        Stream::Input => (2, "in "),
    })
}

pub(crate) fn describe_op(op: &SftpOp) -> String {
    match op {
        SftpOp::Open {
            path,
            flags,
            status,
        } => format!("open {path} [{flags}]: {status}"),
        SftpOp::Close {
            path,
            bytes_read,
            bytes_written,
            status,
        } => format!("close {path} (read {bytes_read} B, wrote {bytes_written} B): {status}"),
        SftpOp::Rename { from, to, status } => format!("rename {from} -> {to}: {status}"),
        SftpOp::Remove { path, status } => format!("remove {path}: {status}"),
        SftpOp::Mkdir { path, status } => format!("mkdir {path}: {status}"),
        SftpOp::Rmdir { path, status } => format!("rmdir {path}: {status}"),
        SftpOp::Setstat {
            path,
            attrs,
            status,
        } => format!(
            "setstat {path} {}: {status}",
            serde_json::to_string(attrs).unwrap_or_default()
        ),
        SftpOp::Opendir { path, status } => format!("opendir {path}: {status}"),
        SftpOp::Symlink {
            link,
            target,
            status,
        } => format!("symlink {link} -> {target}: {status}"),
        SftpOp::Undecodable { reason } => format!("(sftp decoding stopped: {reason})"),
    }
}

impl Transcript {
    pub(crate) fn header(info: &RecordingInfo, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "# recording {} of session {}: {} as {}@{}{}",
            info.id,
            info.session_id,
            info.person,
            info.login,
            info.target,
            if info.via_jump { " (via jump)" } else { "" }
        )?;
        writeln!(
            out,
            "# {}, started {}",
            info.kind.describe(),
            info.started.to_rfc3339()
        )?;
        if let Some(t) = &info.ticket {
            writeln!(out, "# ticket {t}")?;
        }
        if info.mode == Mode::CountsOnly {
            writeln!(out, "# content not recorded, byte counts only")?;
        }
        Ok(())
    }

    pub(crate) fn record(&mut self, rec: Split<'_>, out: &mut dyn Write) -> std::io::Result<()> {
        let Some((t, code, data)) = parse_event(rec.line) else {
            return Ok(());
        };
        if let Some((i, label)) = stream_index(&code) {
            let text = match (data, rec.blob) {
                (Value::String(s), None) => s,
                (_, Some(blob)) => match std::str::from_utf8(blob) {
                    Ok(s) if !s.contains('\0') => s.to_owned(),
                    _ => format!("<{} bytes, not text>\n", blob.len()),
                },
                _ => return Ok(()),
            };
            if self.partial[i].is_empty() {
                self.started[i] = t;
            }
            self.partial[i].push_str(&text);
            while let Some(nl) = self.partial[i].find('\n') {
                let rest = self.partial[i].split_off(nl + 1);
                let done = std::mem::replace(&mut self.partial[i], rest);
                writeln!(
                    out,
                    "{:>9.3} {label} | {}",
                    self.started[i],
                    done.trim_end_matches(['\n', '\r'])
                )?;
                self.started[i] = t;
            }
            return Ok(());
        }
        match code.as_str() {
            "r" => writeln!(out, "{t:>9.3} window {}", data.as_str().unwrap_or("?")),
            "x" => writeln!(out, "{t:>9.3} exit status {data}"),
            "f" => match serde_json::from_value::<SftpOp>(data) {
                Ok(op) => writeln!(out, "{t:>9.3} sftp {}", describe_op(&op)),
                Err(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }

    pub(crate) fn end(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        for (i, label) in [(0, "out"), (1, "err"), (2, "in ")] {
            let rest = std::mem::take(&mut self.partial[i]);
            if !rest.is_empty() {
                writeln!(out, "{:>9.3} {label} | {rest}", self.started[i])?;
            }
        }
        Ok(())
    }

    pub(crate) fn footer(info: &RecordingInfo, out: &mut dyn Write) -> std::io::Result<()> {
        let t = &info.traffic;
        write!(
            out,
            "# bytes: {} from the target, {} on stderr, {} to the target",
            t.output, t.stderr, t.input
        )?;
        if let (Some(end), true) = (
            info.ended,
            matches!(info.kind, crate::SessionKind::Forward { .. }),
        ) {
            write!(out, "; open {} s", (end - info.started).num_seconds())?;
        }
        if let Some(s) = info.exit_status {
            write!(out, "; exit status {s}")?;
        }
        writeln!(out, "; {}", info.state.as_str())?;
        if let Some(p) = &info.problem {
            writeln!(out, "# incomplete: {p}")?;
        }
        Ok(())
    }
}

/// A readable transcript of a JSON-lines recording.
pub fn write_transcript(
    info: &RecordingInfo,
    content: &[u8],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    Transcript::header(info, out)?;
    let mut t = Transcript::default();
    let mut rest = content;
    let mut header = true;
    while let Some((rec, used)) = split_record(rest) {
        rest = &rest[used..];
        if !std::mem::take(&mut header) {
            t.record(rec, out)?;
        }
    }
    t.end(out)?;
    Transcript::footer(info, out)
}
