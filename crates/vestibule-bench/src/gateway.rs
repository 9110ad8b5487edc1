//! The real `vestibule` binary: `serve`, and its admin CLI for the setup.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::procs::{self, Guard};

/// A running `vestibule serve`.
pub struct Gateway {
    guard: Guard,
    bin: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    pub port: u16,
}

/// `target/release/vestibule` of this workspace; an error saying how to build
/// it if it is missing.
pub fn binary() -> Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/vestibule");
    if !path.is_file() {
        bail!(
            "{} not found: build the gateway first with `cargo build --release -p vestibule`",
            path.display()
        );
    }
    std::fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))
}

impl Gateway {
    /// Start `vestibule serve` on free ports with `data_dir`, and wait for its
    /// "SSH listening on" line.
    pub fn start(bin: &Path, data_dir: &Path, log: &Path) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--ssh-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(procs::append_file(log)?);
        let mut guard = Guard::spawn(&mut cmd, "vestibule serve")?;
        let stdout = guard
            .child_mut()
            .stdout
            .take()
            .context("vestibule serve: no stdout pipe")?;
        let (tx, rx) = mpsc::channel::<String>();
        let mut copy = procs::append_file(log)?;
        // Keep draining stdout into the log so the gateway never blocks on it.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(copy, "{line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(port) = parse_ssh_port(&line) {
                        return Ok(Self {
                            guard,
                            bin: bin.to_owned(),
                            data_dir: data_dir.to_owned(),
                            log: log.to_owned(),
                            port,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "vestibule serve exited before listening; log tail:\n{}",
                        procs::tail_of(log, 3000)
                    );
                }
            }
            if left.is_zero() || guard.exited() {
                bail!(
                    "vestibule serve did not report its SSH port; log tail:\n{}",
                    procs::tail_of(log, 3000)
                );
            }
        }
    }

    /// Run an admin command against the same data dir; its stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        procs::run(
            Command::new(&self.bin)
                .arg("--data-dir")
                .arg(&self.data_dir)
                .args(args),
        )
        .with_context(|| format!("vestibule {}", args.join(" ")))
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn log_tail(&self) -> String {
        format!("gateway log tail:\n{}", procs::tail_of(&self.log, 3000))
    }
}

/// Settings the run changes in the gateways' `vestibule.toml`, each a
/// `key = value` line.
#[derive(Debug, Clone, Default)]
pub struct GatewaySettings {
    /// `[recording]`, for the recording gateway only.
    pub recording: Vec<String>,
    /// `[audit]`, for every gateway.
    pub audit: Vec<String>,
}

/// `vestibule init` into `data_dir`, then change its `vestibule.toml` for
/// the run: recording off (`record = false`), or extra `[recording]`
/// settings (`key = value` lines, e.g. no fdatasync at each flush), or extra
/// `[audit]` settings, to price each.
pub fn init_for_bench(
    bin: &Path,
    data_dir: &Path,
    record: bool,
    settings: &GatewaySettings,
) -> Result<()> {
    let status = Command::new(bin)
        .arg("init")
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .status()
        .context("running vestibule init")?;
    anyhow::ensure!(status.success(), "vestibule init failed");
    let config = data_dir.join("vestibule.toml");
    let mut text = std::fs::read_to_string(&config).context("reading vestibule.toml")?;
    if !record {
        let off = text.replace("enabled = true ", "enabled = false");
        anyhow::ensure!(off != text, "vestibule.toml has no recording.enabled line");
        text = off;
    }
    if record {
        text = set_in_section(&text, "buffer_limit_bytes =", &settings.recording)?;
    }
    text = set_in_section(&text, "checkpoint_every =", &settings.audit)?;
    write_file(&config, &text)
}

/// `text` with each of `lines` (`key = value`) set in the section of the
/// line that starts with `anchor`: that key's line there replaced, else the
/// line added before the anchor. A key of the same name in another section
/// is left alone.
fn set_in_section(text: &str, anchor: &str, lines: &[String]) -> Result<String> {
    let mut text = text.to_owned();
    for line in lines {
        let Some((key, _)) = line.split_once('=').filter(|_| !line.contains('\n')) else {
            anyhow::bail!("a setting is one `key = value` line, not {line:?}");
        };
        let key = format!("{} =", key.trim());
        let Some(at) = text.find(anchor) else {
            anyhow::bail!("vestibule.toml has no {anchor:?} line");
        };
        let start = text[..at].rfind("\n[").map_or(0, |i| i + 1);
        let end = text[at..].find("\n[").map_or(text.len(), |i| at + i);
        let section = &text[start..end];
        let changed = match section.lines().find(|l| l.starts_with(&key)) {
            Some(old) => section.replacen(old, line, 1),
            None => section.replacen(anchor, &format!("{line}\n{anchor}"), 1),
        };
        text.replace_range(start..end, &changed);
    }
    Ok(text)
}

fn parse_ssh_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("SSH listening on ")?;
    let addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
    Some(addr.port())
}

/// Write `text` to a new file at `path`.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{parse_ssh_port, set_in_section};

    #[test]
    fn a_setting_replaces_its_key_or_joins_the_anchor_section() {
        let toml = "[audit]\ncheckpoint_every = 1000\nrecord_linger = \"50ms\"\n[recording]\n";
        let set = |line: &str| set_in_section(toml, "checkpoint_every =", &[line.to_owned()]);
        assert_eq!(
            set("record_linger = \"0s\"").unwrap(),
            "[audit]\ncheckpoint_every = 1000\nrecord_linger = \"0s\"\n[recording]\n"
        );
        assert_eq!(
            set("max_batch = 1").unwrap(),
            "[audit]\nmax_batch = 1\ncheckpoint_every = 1000\nrecord_linger = \"50ms\"\n[recording]\n"
        );
        // The same key in another section is not the one set.
        let two = "[ssh]\nlisten = \"a\"\n[http]\nlisten = \"b\"\nport = 1\n";
        assert_eq!(
            set_in_section(two, "port =", &["listen = \"c\"".to_owned()]).unwrap(),
            "[ssh]\nlisten = \"a\"\n[http]\nlisten = \"c\"\nport = 1\n"
        );
        assert!(set("no equals sign").is_err());
        assert!(set_in_section(toml, "absent =", &["a = 1".to_owned()]).is_err());
    }

    #[test]
    fn parses_the_listening_line() {
        let line = "Vestibule SSH listening on 127.0.0.1:41234 (host key SHA256:abc)";
        assert_eq!(parse_ssh_port(line), Some(41234));
        assert_eq!(
            parse_ssh_port("Vestibule HTTPS listening on 127.0.0.1:1"),
            None
        );
    }
}
