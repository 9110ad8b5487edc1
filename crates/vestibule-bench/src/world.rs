//! The benchmark world: a target sshd, a plain OpenSSH bastion, the Vestibule
//! gateway, a client key and an ssh config; and the four paths through them.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tempfile::TempDir;

use crate::gateway::{self, Gateway, GatewaySettings};
use crate::procs;
use crate::sshd::{self, Sshd};

/// sshd_config line that keeps bash from sourcing ~/.bashrc in sessions.
pub const SKIP_BASHRC: &str = "SetEnv SHLVL=1";

/// One way from the client to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    /// `ssh -p TPORT root@127.0.0.1`
    Direct,
    /// `ssh -J root@127.0.0.1:BPORT -p TPORT root@127.0.0.1` (plain OpenSSH bastion)
    Proxyjump,
    /// `ssh -p GPORT bench:web1@127.0.0.1` (Vestibule, target in the user name)
    Vestibule,
    /// `ssh -J bench@127.0.0.1:GPORT root@web1` (Vestibule as ProxyJump)
    VestibuleJ,
    /// `ssh -p G2PORT bench:web1@127.0.0.1` through a second gateway that does
    /// not record (`--recording both`), to price recording in the same run.
    VestibuleUnrecorded,
}

/// Which gateways a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Recording {
    /// One gateway, recording every session (the default configuration).
    On,
    /// One gateway with `recording.enabled = false`.
    Off,
    /// Both: the recording gateway's paths plus a user:target path through an
    /// identical gateway that does not record, interleaved with the others.
    Both,
}

impl PathKind {
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Proxyjump => "OpenSSH ProxyJump",
            PathKind::Vestibule => "vestibule (user:target)",
            PathKind::VestibuleJ => "vestibule (-J)",
            PathKind::VestibuleUnrecorded => "vestibule (user:target, recording off)",
        }
    }
}

/// Everything a run needs; dropping it stops the servers and removes the files.
/// Field order is drop order: processes first, the directory last.
pub struct World {
    pub gateway: Gateway,
    /// The gateway without recording, with `--recording both`.
    pub unrecorded: Option<Gateway>,
    /// The paths this run measures, in the order they are interleaved.
    pub paths: Vec<PathKind>,
    pub target: Sshd,
    pub bastion: Sshd,
    pub root: PathBuf,
    cfg: PathBuf,
    ssh_log: PathBuf,
    _tmp: TempDir,
}

/// What the `ssh` client is limited to on every path and hop (`Ciphers` and
/// `KexAlgorithms` in its config); `None` leaves OpenSSH's default order.
#[derive(Debug, Default)]
pub struct ClientAlgorithms {
    pub cipher: Option<String>,
    /// Lets paths be compared on one key exchange: the stock client picks
    /// sntrup761 with OpenSSH servers, which Vestibule does not offer.
    pub kex: Option<String>,
}

impl World {
    pub fn setup(
        vestibule_bin: &std::path::Path,
        recording: Recording,
        settings: &GatewaySettings,
        client: &ClientAlgorithms,
    ) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("vestibule-bench-")
            .tempdir()
            .context("creating the run directory")?;
        let root = fs::canonicalize(tmp.path()).context("resolving the run directory")?;
        procs::track_dir(&root);

        let key = root.join("client_ed25519");
        sshd::keygen(&key, "bench-client")?;
        let client_pub = fs::read_to_string(root.join("client_ed25519.pub"))
            .context("reading the client public key")?;

        // bash sources ~/.bashrc for commands run by sshd (SSH_CLIENT set,
        // SHLVL < 2); on a developer box that rc (pyenv, conda...) can cost more
        // than SSH itself. SHLVL=1 skips it on every path alike, so the figures
        // measure SSH and the gateway, not root's shell start-up.
        let target = Sshd::start(&root.join("target"), "target sshd", &[SKIP_BASHRC])?;
        target.authorize(&client_pub)?;
        let bastion = Sshd::start(
            &root.join("bastion"),
            "bastion sshd",
            &["AllowTcpForwarding yes", SKIP_BASHRC],
        )?;
        bastion.authorize(&client_pub)?;

        let pub_path = root.join("client_ed25519.pub");
        let enrol = |name: &str, record: bool| {
            enrolled_gateway(
                vestibule_bin,
                &root,
                name,
                record,
                settings,
                &target,
                &pub_path,
            )
        };
        let gateway = enrol("vestibule", recording != Recording::Off)?;
        let unrecorded = match recording {
            Recording::Both => Some(enrol("vestibule-unrecorded", false)?),
            Recording::On | Recording::Off => None,
        };
        let mut paths = vec![
            PathKind::Direct,
            PathKind::Proxyjump,
            PathKind::Vestibule,
            PathKind::VestibuleJ,
        ];
        if unrecorded.is_some() {
            paths.push(PathKind::VestibuleUnrecorded);
        }

        let cfg = root.join("ssh_config");
        gateway::write_file(
            &cfg,
            &format!(
                "Host *\n\
                 \x20 IdentityFile {key}\n\
                 \x20 IdentitiesOnly yes\n\
                 \x20 BatchMode yes\n\
                 \x20 StrictHostKeyChecking no\n\
                 \x20 UserKnownHostsFile /dev/null\n\
                 \x20 GlobalKnownHostsFile /dev/null\n\
                 \x20 LogLevel ERROR\n\
                 \x20 ControlMaster no\n\
                 \x20 ControlPath none\n{ciphers}{kex}",
                key = key.display(),
                ciphers = client
                    .cipher
                    .as_ref()
                    .map_or(String::new(), |c| format!("  Ciphers {c}\n")),
                kex = client
                    .kex
                    .as_ref()
                    .map_or(String::new(), |k| format!("  KexAlgorithms {k}\n")),
            ),
        )?;
        Ok(Self {
            gateway,
            unrecorded,
            paths,
            target,
            bastion,
            cfg,
            ssh_log: root.join("ssh-client.log"),
            root,
            _tmp: tmp,
        })
    }

    /// The arguments after `ssh` for `path`, up to (not including) the remote
    /// command.
    pub fn ssh_args(&self, path: PathKind, tty: bool) -> Vec<String> {
        let mut a = vec!["-F".to_owned(), self.cfg.display().to_string()];
        if tty {
            a.push("-tt".to_owned());
        }
        let (t, b, g) = (self.target.port, self.bastion.port, self.gateway.port);
        let rest: Vec<String> = match path {
            PathKind::Direct => vec!["-p".into(), t.to_string(), "root@127.0.0.1".into()],
            PathKind::Proxyjump => vec![
                "-J".into(),
                format!("root@127.0.0.1:{b}"),
                "-p".into(),
                t.to_string(),
                "root@127.0.0.1".into(),
            ],
            PathKind::Vestibule => vec!["-p".into(), g.to_string(), "bench:web1@127.0.0.1".into()],
            PathKind::VestibuleUnrecorded => {
                let port = self.unrecorded.as_ref().map_or(0, |u| u.port);
                vec!["-p".into(), port.to_string(), "bench:web1@127.0.0.1".into()]
            }
            PathKind::VestibuleJ => vec![
                "-J".into(),
                format!("bench@127.0.0.1:{g}"),
                "root@web1".into(),
            ],
        };
        a.extend(rest);
        a
    }

    /// `ssh ... remote` for `path`; stdin null, stdout null, stderr to the
    /// client log (callers change what they need).
    pub fn ssh(&self, path: PathKind, tty: bool, remote: &str) -> Result<Command> {
        let mut cmd = Command::new("ssh");
        cmd.args(self.ssh_args(path, tty))
            .arg(remote)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(procs::append_file(&self.ssh_log)?);
        Ok(cmd)
    }

    /// The shell form of a path's command, for the report.
    pub fn describe(&self, path: PathKind, remote: &str) -> String {
        let args = self.ssh_args(path, false)[2..].join(" ");
        format!("ssh -F cfg {args} '{remote}'")
    }

    /// Check that every path logs in and runs a command.
    pub fn check_paths(&self) -> Result<()> {
        for &path in &self.paths {
            let out = self
                .ssh(path, false, "echo ok")?
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .with_context(|| format!("running ssh for {}", path.label()))?;
            if !out.status.success() || String::from_utf8_lossy(&out.stdout).trim() != "ok" {
                bail!(
                    "path {} does not work ({}): {}\n{}\n{}\n{}",
                    path.label(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    self.gateway.log_tail(),
                    self.target.log_tail(),
                    self.bastion.log_tail(),
                );
            }
        }
        Ok(())
    }

    /// The key exchange and ciphers `ssh -v` reports negotiating on `path` (one line per hop
    /// and direction, deduplicated).
    pub fn negotiated(&self, path: PathKind) -> Result<Vec<String>> {
        let out = Command::new("ssh")
            .arg("-v")
            .args(self.ssh_args(path, false))
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running ssh -v for {}", path.label()))?;
        let mut found: Vec<String> = Vec::new();
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            if let Some((_, kex)) = line.split_once("kex: ")
                && (kex.contains("cipher:") || kex.starts_with("algorithm:"))
                && !found.iter().any(|f| f == kex)
            {
                found.push(kex.to_owned());
            }
        }
        Ok(found)
    }

    /// Every gateway process; only one carries traffic at a time, so their
    /// summed CPU is the cost of the path being measured.
    pub fn gateway_pids(&self) -> Vec<u32> {
        std::iter::once(&self.gateway)
            .chain(&self.unrecorded)
            .map(Gateway::pid)
            .collect()
    }

    /// Tail of the ssh clients' stderr, for error messages.
    pub fn ssh_log_tail(&self) -> String {
        procs::tail_of(&self.ssh_log, 2000)
    }
}

/// A gateway in `root/NAME` set up as in production for the bench user: its
/// user CA trusted by the target, its own key authorised there, `web1` with the
/// target's pinned host key, and a role for `*` as root.
fn enrolled_gateway(
    bin: &std::path::Path,
    root: &std::path::Path,
    name: &str,
    record: bool,
    settings: &GatewaySettings,
    target: &Sshd,
    client_pub: &std::path::Path,
) -> Result<Gateway> {
    let data_dir = root.join(format!("{name}-data"));
    gateway::init_for_bench(bin, &data_dir, record, settings)?;
    let gateway = Gateway::start(bin, &data_dir, &root.join(format!("{name}.log")))?;
    target.trust_user_ca(&gateway.admin(&["ca", "export", "user"])?)?;
    target.authorize(&gateway.admin(&["gateway-key"])?)?;
    let tport = target.port.to_string();
    let host_key = target.host_key_line()?;
    gateway.admin(&[
        "target",
        "add",
        "web1",
        "--host",
        "127.0.0.1",
        "--port",
        &tport,
        "--login",
        "root",
        "--host-key",
        &host_key,
    ])?;
    let client_pub = client_pub.to_str().context("non-UTF-8 temp path")?;
    gateway.admin(&["user", "add", "bench", "--public-key", client_pub])?;
    gateway.admin(&["role", "add", "ops", "--targets", "*", "--logins", "root"])?;
    gateway.admin(&["role", "grant", "ops", "bench"])?;
    Ok(gateway)
}
