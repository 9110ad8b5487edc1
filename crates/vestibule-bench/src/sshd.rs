//! Real OpenSSH servers on 127.0.0.1: the target, and a plain bastion for
//! `ssh -J`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::procs::{self, Guard};

/// An sshd in the foreground (`-D`), our child, in its own directory.
pub struct Sshd {
    guard: Guard,
    dir: PathBuf,
    pub port: u16,
}

/// `ssh-keygen` an ed25519 key at `path` (and `path.pub`), no passphrase.
pub fn keygen(path: &Path, comment: &str) -> Result<()> {
    procs::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )
    .map(|_| ())
}

impl Sshd {
    /// The listening sshd's process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Start an sshd whose files live in `dir` (created), with `extra`
    /// sshd_config lines after the base recipe.
    pub fn start(dir: &Path, name: &str, extra: &[&str]) -> Result<Self> {
        fs::create_dir_all("/run/sshd").context("mkdir /run/sshd")?;
        fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        // sshd re-executes itself and needs absolute paths.
        let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        keygen(&dir.join("host_ed25519_key"), &format!("{name}-host"))?;
        fs::write(dir.join("authorized_keys"), "").context("writing authorized_keys")?;
        fs::write(dir.join("user_ca.pub"), "").context("writing user_ca.pub")?;
        let config = dir.join("sshd_config");
        let log = dir.join("sshd.log");
        for _attempt in 0..5 {
            let port = procs::free_port()?;
            write_config(&dir, port, extra)?;
            procs::run(
                Command::new("/usr/sbin/sshd")
                    .arg("-t")
                    .arg("-f")
                    .arg(&config),
            )
            .with_context(|| format!("checking {}", config.display()))?;
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut guard = Guard::spawn(&mut cmd, name)?;
            let up = procs::wait_until(Duration::from_secs(10), || {
                if guard.exited() {
                    return Some(false);
                }
                procs::ssh_banner_on(port).then_some(true)
            });
            if up == Some(true) {
                return Ok(Self { guard, dir, port });
            }
            // Port taken meanwhile, or a slow start: try another port.
        }
        bail!(
            "{name}: sshd did not start; log tail:\n{}",
            procs::tail_of(&log, 2000)
        )
    }

    /// The host public key line, as `vestibule target add --host-key` wants it.
    pub fn host_key_line(&self) -> Result<String> {
        let path = self.dir.join("host_ed25519_key.pub");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// Append `line` to authorized_keys.
    pub fn authorize(&self, line: &str) -> Result<()> {
        let path = self.dir.join("authorized_keys");
        let mut f = procs::append_file(&path)?;
        writeln!(f, "{}", line.trim()).with_context(|| format!("writing {}", path.display()))
    }

    /// Add a CA to the TrustedUserCAKeys file (one per gateway under test).
    pub fn trust_user_ca(&self, text: &str) -> Result<()> {
        let path = self.dir.join("user_ca.pub");
        let mut f = procs::append_file(&path)?;
        writeln!(f, "{}", text.trim()).with_context(|| format!("writing {}", path.display()))
    }

    pub fn log_tail(&self) -> String {
        format!(
            "{} log tail:\n{}",
            self.guard.name(),
            procs::tail_of(&self.dir.join("sshd.log"), 2000)
        )
    }
}

fn write_config(d: &Path, port: u16, extra: &[&str]) -> Result<()> {
    let mut text = format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {d}/host_ed25519_key\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         TrustedUserCAKeys {d}/user_ca.pub\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         MaxStartups 200:30:400\n\
         MaxSessions 100\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
        d = d.display()
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    let path = d.join("sshd_config");
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
