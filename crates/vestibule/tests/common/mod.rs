//! Shared harness for Vestibule's end-to-end tests.
//!
//! Everything here drives real programs: an OpenSSH `sshd` as the target, the
//! `vestibule` binary as the gateway and admin CLI, and the OpenSSH client tools
//! (`ssh`, `scp`, `sftp`, `rsync`, `sshpass`, `tmux`) as the people using it.
//!
//! Each fixture owns a temporary directory and free ports, and kills the
//! processes it started (by process group id) when dropped, so tests run in
//! parallel under cargo-nextest. Every wait has a deadline: no test can hang.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

pub mod identity;
pub mod process;
pub mod tmux;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use process::{ChildGuard, Run, run, run_with_stdin};

/// How long any single client command may take before the harness kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to start listening.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The non-root login the harness creates on this machine.
pub const DEPLOY_LOGIN: &str = "vtdeploy";

/// The path of the binary under test.
pub fn vestibule_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vestibule")
}

/// A fresh temporary directory (removed on drop).
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("vestibule-e2e-")
        .tempdir()
        .expect("create temp dir")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Poll `check` every 50 ms until it yields a value or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The HTTPS address and TLS fingerprint `serve` printed at its latest start
/// (a restart listens on a new port).
pub fn https_endpoint(w: &World) -> (String, String) {
    let stdout_log =
        w.gw.data_dir()
            .parent()
            .expect("gateway dir")
            .join("gateway.stdout");
    let line = wait_until(COMMAND_TIMEOUT, || {
        fs::read_to_string(&stdout_log)
            .ok()?
            .lines()
            .rfind(|l| l.contains("HTTPS listening on "))
            .map(str::to_owned)
    })
    .expect("serve never printed its HTTPS line");
    let rest = line
        .split_once("HTTPS listening on ")
        .map_or("", |(_, r)| r);
    let address = rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let fingerprint = rest
        .split_once("TLS certificate ")
        .map(|(_, f)| f.trim_end_matches(')').to_owned())
        .unwrap_or_default();
    (address, fingerprint)
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` and greets
/// with an SSH banner.
fn ssh_banner_on(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 8];
    stream.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0")
}

/// The last `max` bytes of a log file, for failure messages.
pub fn tail_of(path: &Path, max: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Append `line` (plus a newline) to the file at `path`.
pub fn append_line(path: &Path, line: &str) {
    writeln!(append_file(path), "{}", line.trim_end()).expect("append line");
}

/// `count` bytes from /dev/urandom.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(count);
    File::open("/dev/urandom")
        .expect("open /dev/urandom")
        .take(count as u64)
        .read_to_end(&mut data)
        .expect("read /dev/urandom");
    assert_eq!(data.len(), count);
    data
}

/// Run a local helper command that must succeed (ssh-keygen, useradd, ...).
pub fn must(cmd: &mut Command) -> Run {
    let out = run(cmd, COMMAND_TIMEOUT);
    assert!(out.success(), "command failed:\n{out}");
    out
}

// ---------------------------------------------------------------------------
// Keys and clients
// ---------------------------------------------------------------------------

/// Key algorithms the tests use for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl KeyType {
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Ed25519 => &["-t", "ed25519"],
            KeyType::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyType::Rsa => &["-t", "rsa", "-b", "3072"],
        }
    }
}

/// Generate an unencrypted key pair at `path` / `path.pub`.
pub fn keygen(path: &Path, kind: KeyType, comment: &str) {
    must(
        Command::new("ssh-keygen")
            .arg("-q")
            .args(kind.keygen_args())
            .args(["-N", "", "-C", comment, "-f"])
            .arg(path),
    );
}

/// The first two fields (`type base64`) of an OpenSSH public key line.
pub fn key_type_and_blob(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A person with an OpenSSH client set-up of their own: a key (or a password),
/// a known_hosts file and an ssh config file used with `-F` by ssh, scp, sftp
/// and rsync, so that ProxyJump's inner ssh sees the same options.
pub struct Client {
    dir: TempDir,
    pub name: String,
    pub key: Option<PathBuf>,
    pub config: PathBuf,
}

impl Client {
    /// A client authenticating with a new key of type `kind`.
    pub fn with_key(name: &str, kind: KeyType) -> Self {
        let dir = temp_dir();
        let key = dir.path().join("id");
        keygen(&key, kind, name);
        let config = format!(
            "IdentityFile {}\nIdentitiesOnly yes\nBatchMode yes\nPreferredAuthentications publickey\n",
            key.display()
        );
        Self::build(dir, name, Some(key), &config)
    }

    /// A client authenticating with a password only (drive it with `sshpass`).
    pub fn with_password(name: &str) -> Self {
        let config = "PubkeyAuthentication no\nPreferredAuthentications password\n\
                      BatchMode no\nNumberOfPasswordPrompts 1\n";
        Self::build(temp_dir(), name, None, config)
    }

    fn build(dir: TempDir, name: &str, key: Option<PathBuf>, auth: &str) -> Self {
        let config = dir.path().join("ssh_config");
        let text = format!(
            "Host *\n\
             UserKnownHostsFile {known}\n\
             GlobalKnownHostsFile /dev/null\n\
             StrictHostKeyChecking accept-new\n\
             UpdateHostKeys no\n\
             LogLevel ERROR\n\
             ConnectTimeout 10\n\
             ConnectionAttempts 1\n\
             ServerAliveInterval 5\n\
             ServerAliveCountMax 3\n\
             ControlMaster no\n\
             ControlPath none\n\
             {auth}",
            known = dir.path().join("known_hosts").display(),
        );
        fs::write(&config, text).expect("write ssh config");
        Self {
            dir,
            name: name.to_owned(),
            key,
            config,
        }
    }

    /// This client's private directory (for local files in transfer tests).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pubkey_path(&self) -> PathBuf {
        let key = self.key.as_ref().expect("client has no key");
        key.with_extension("pub")
    }

    pub fn pubkey_line(&self) -> String {
        fs::read_to_string(self.pubkey_path()).expect("read public key")
    }

    /// `PROGRAM -F config` (works for ssh, scp and sftp).
    pub fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-F").arg(&self.config);
        cmd
    }

    /// `ssh -F config -p PORT USER@127.0.0.1 -- COMMAND`.
    pub fn ssh(&self, port: u16, user: &str, command: &str) -> Command {
        self.ssh_with(port, user, &[], command)
    }

    /// `ssh -F config -p PORT OPTIONS... USER@127.0.0.1 -- COMMAND`.
    pub fn ssh_with(&self, port: u16, user: &str, options: &[&str], command: &str) -> Command {
        let mut cmd = self.ssh_no_command(port, user, options);
        cmd.arg("--").arg(command);
        cmd
    }

    /// `ssh -F config -p PORT OPTIONS... USER@127.0.0.1` (for `-N` and friends).
    pub fn ssh_no_command(&self, port: u16, user: &str, options: &[&str]) -> Command {
        let mut cmd = self.tool("ssh");
        cmd.arg("-p")
            .arg(port.to_string())
            .args(options)
            .arg(format!("{user}@127.0.0.1"));
        cmd
    }

    /// The interactive `ssh -tt` command line for `USER@127.0.0.1` as a shell
    /// string (for tmux).
    pub fn interactive_ssh_line(&self, port: u16, user: &str) -> String {
        format!(
            "ssh -tt -F '{}' -p {port} '{user}@127.0.0.1'",
            self.config.display()
        )
    }

    /// `ssh -F config -J JUMP_USER@127.0.0.1:PORT LOGIN@TARGET -- COMMAND`.
    pub fn ssh_jump(&self, port: u16, dest: &str, command: &str) -> Command {
        let mut cmd = self.tool("ssh");
        cmd.arg("-J")
            .arg(self.jump(port))
            .arg(dest)
            .arg("--")
            .arg(command);
        cmd
    }

    /// The `-J` argument naming the gateway as this person.
    pub fn jump(&self, port: u16) -> String {
        format!("{}@127.0.0.1:{port}", self.name)
    }

    /// The remote shell for rsync's `-e`.
    pub fn rsync_shell(&self, extra: &str) -> String {
        format!("ssh -F {} {extra}", self.config.display())
    }

    /// Run `command` through the gateway on `port` as `user`, no stdin.
    pub fn exec(&self, port: u16, user: &str, command: &str) -> Run {
        run(&mut self.ssh(port, user, command), COMMAND_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------
// The target: a real OpenSSH server
// ---------------------------------------------------------------------------

/// Make sure the non-root login `vtdeploy` exists. Test processes run in
/// parallel, so creation is serialised with a file lock.
pub fn ensure_deploy_login() {
    let exists = || {
        Command::new("id")
            .arg(DEPLOY_LOGIN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if exists() {
        return;
    }
    let lock = File::create("/tmp/vestibule-e2e-useradd.lock").expect("create lock file");
    lock.lock().expect("lock useradd lock file");
    if !exists() {
        must(Command::new("useradd").args(["-m", "-s", "/bin/bash", DEPLOY_LOGIN]));
        // '*' is not "locked" (unlike '!'), so sshd with UsePAM no accepts keys.
        must(Command::new("usermod").args(["-p", "*", DEPLOY_LOGIN]));
    }
}

/// A real OpenSSH sshd on 127.0.0.1, in the foreground as our child.
pub struct SshdTarget {
    child: ChildGuard,
    dir: TempDir,
    pub port: u16,
    /// A client whose key the target trusts, for direct checks and oracles.
    pub admin: Client,
}

impl SshdTarget {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start with extra sshd_config lines appended to the base recipe.
    pub fn start_with(extra_config: &[&str]) -> Self {
        ensure_deploy_login();
        fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = temp_dir();
        let d = dir.path();
        keygen(&d.join("host_ed25519_key"), KeyType::Ed25519, "target-host");
        let admin = Client::with_key("harness-admin", KeyType::Ed25519);
        fs::write(d.join("authorized_keys"), admin.pubkey_line()).expect("authorized_keys");
        // Trusts no CA until `trust_user_cas`; sshd -t wants the file to exist.
        fs::write(d.join("user_ca.pub"), "").expect("user_ca.pub");

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            write_sshd_config(d, port, extra_config);
            must(
                Command::new("/usr/sbin/sshd")
                    .arg("-t")
                    .arg("-f")
                    .arg(d.join("sshd_config")),
            );
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.arg("-D")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .arg("-E")
                .arg(d.join("sshd.log"));
            let mut child = ChildGuard::spawn(&mut cmd, Stdio::null(), Stdio::null());
            let up = wait_until(Duration::from_secs(10), || {
                if child.exited() {
                    return Some(false);
                }
                ssh_banner_on(port).then_some(true)
            });
            if up == Some(true) {
                return Self {
                    child,
                    dir,
                    port,
                    admin,
                };
            }
            last_log = tail_of(&d.join("sshd.log"), 2000);
            // Port taken or slow start: try again with a new port.
        }
        panic!("sshd did not start; last log:\n{last_log}");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host public key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_key_line(&self) -> String {
        fs::read_to_string(self.dir().join("host_ed25519_key.pub"))
            .expect("read host key")
            .trim()
            .to_owned()
    }

    pub fn authorized_keys(&self) -> PathBuf {
        self.dir().join("authorized_keys")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("sshd.log")
    }

    /// Trust `key_line` for every login on this target.
    pub fn authorize(&self, key_line: &str) {
        append_line(&self.authorized_keys(), key_line);
    }

    /// Replace authorized_keys with exactly `key_lines` (none: an empty file).
    pub fn set_authorized_keys(&self, key_lines: &[String]) {
        write_lines_atomically(&self.authorized_keys(), key_lines);
    }

    /// The `TrustedUserCAKeys` file (empty at start).
    pub fn user_ca_keys(&self) -> PathBuf {
        self.dir().join("user_ca.pub")
    }

    /// Replace the `TrustedUserCAKeys` file with `ca_lines`. sshd reads it at
    /// every authentication, so this applies without a restart.
    pub fn trust_user_cas(&self, ca_lines: &[String]) {
        write_lines_atomically(&self.user_ca_keys(), ca_lines);
    }

    /// What sshd has logged so far (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Run `command` over a direct ssh connection (no gateway) as `login`.
    pub fn direct(&self, login: &str, command: &str) -> Run {
        self.admin.exec(self.port, login, command)
    }
}

/// Write `lines` to `path` through a rename, so that sshd never reads half a file.
fn write_lines_atomically(path: &Path, lines: &[String]) {
    let text: String = lines
        .iter()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// `SetEnv SHLVL=1`: bash sources `~/.bashrc` for a command sshd runs only
/// when it is a top-level shell (SHLVL below 2), and root's `~/.bashrc` on the
/// machines this runs on starts pyenv, which takes about 160 ms of CPU and
/// one global lock file per session. Under a few hundred concurrent sessions
/// commands then waited up to a minute to start, which looked like a slow
/// gateway. Targets here run the test's commands, not the host's dotfiles.
fn write_sshd_config(d: &Path, port: u16, extra: &[&str]) {
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
         LogLevel VERBOSE\n\
         AllowTcpForwarding yes\n\
         SetEnv SHLVL=1\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
        d = d.display()
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(d.join("sshd_config"), text).expect("write sshd_config");
}

impl Drop for SshdTarget {
    fn drop(&mut self) {
        self.child.kill();
        if thread::panicking() {
            eprintln!(
                "---- sshd log (tail) ----\n{}",
                tail_of(&self.log_path(), 4000)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The gateway under test
// ---------------------------------------------------------------------------

/// `vestibule serve` on 127.0.0.1 with a port of its own choosing.
pub struct Gateway {
    child: ChildGuard,
    dir: TempDir,
    pub port: u16,
}

impl Gateway {
    /// Start on a fresh data dir that does not exist yet (serve initialises it).
    pub fn start() -> Self {
        let dir = temp_dir();
        let (child, port) = spawn_serve(dir.path());
        Self { child, dir, port }
    }

    /// Stop with SIGTERM and wait (bounded) for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.child.terminate();
        let status = self.child.wait_timeout(STARTUP_TIMEOUT);
        status.unwrap_or_else(|| panic!("vestibule serve ignored SIGTERM for {STARTUP_TIMEOUT:?}"))
    }

    /// Crash: SIGKILL, then serve again on the same data dir; the port changes.
    pub fn crash_and_restart(&mut self) {
        self.child.kill();
        let (child, port) = spawn_serve(self.dir.path());
        self.child = child;
        self.port = port;
    }

    /// Stop (SIGTERM) and serve again on the same data dir; the port changes.
    pub fn restart(&mut self) -> ExitStatus {
        let status = self.stop();
        let (child, port) = spawn_serve(self.dir.path());
        self.child = child;
        self.port = port;
        status
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The `vestibule serve` process, for signals such as SIGHUP.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the gateway has logged so far (its stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("gateway.stderr")).unwrap_or_default()
    }

    /// A `vestibule` admin command on this gateway's data dir.
    pub fn command(&self, args: &[&str]) -> Command {
        admin_command(&self.data_dir(), args)
    }

    pub fn cli(&self, args: &[&str]) -> Run {
        run(&mut self.command(args), COMMAND_TIMEOUT)
    }

    pub fn cli_ok(&self, args: &[&str]) -> Run {
        let out = self.cli(args);
        assert!(out.success(), "vestibule {args:?} failed:\n{out}");
        out
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        run_with_stdin(&mut self.command(args), stdin.to_vec(), COMMAND_TIMEOUT)
    }

    /// The authorized_keys line targets must trust.
    pub fn gateway_key(&self) -> String {
        let out = self.cli_ok(&["gateway-key"]);
        let line = out.stdout_str().trim().to_owned();
        assert!(
            line.starts_with("ssh-ed25519 AAAA") && line.lines().count() == 1,
            "gateway-key should print one ssh-ed25519 line, got:\n{out}"
        );
        line
    }

    /// `vestibule ca export KIND EXTRA...` on this gateway's data dir.
    pub fn ca_export(&self, kind: &str, extra: &[&str]) -> Vec<String> {
        ca_export(&self.data_dir(), kind, extra)
    }

    /// Parse the `--json` output of `vestibule KIND list --json`.
    pub fn list_json(&self, kind: &str) -> serde_json::Value {
        let out = self.cli_ok(&[kind, "list", "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("`{kind} list --json` is not JSON ({e}):\n{out}"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.child.kill();
        if thread::panicking() {
            eprintln!(
                "---- gateway stdout (tail) ----\n{}\n---- gateway stderr (tail) ----\n{}",
                tail_of(&self.dir.path().join("gateway.stdout"), 4000),
                tail_of(&self.dir.path().join("gateway.stderr"), 8000),
            );
        }
    }
}

/// `vestibule serve --data-dir DIR/data --ssh-listen 127.0.0.1:0 --http-listen
/// 127.0.0.1:0` (ports of its choosing, so gateways run in parallel), logging to
/// DIR/gateway.{stdout,stderr}; returns once it reports its SSH port.
fn spawn_serve(dir: &Path) -> (ChildGuard, u16) {
    let (stdout_log, stderr_log) = (dir.join("gateway.stdout"), dir.join("gateway.stderr"));
    let stderr = append_file(&stderr_log);
    let mut cmd = Command::new(vestibule_bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--ssh-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "1");
    let mut child = ChildGuard::spawn(&mut cmd, Stdio::piped(), Stdio::from(stderr));
    let port_rx = watch_for_listen_line(child.take_stdout(), append_file(&stdout_log));
    match port_rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(port) => (child, port),
        Err(_) => {
            child.kill();
            panic!(
                "vestibule serve did not report `SSH listening on` within {:?}\n\
                 stdout:\n{}\nstderr:\n{}",
                STARTUP_TIMEOUT,
                tail_of(&stdout_log, 4000),
                tail_of(&stderr_log, 4000),
            );
        }
    }
}

fn append_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// `vestibule ARGS... --data-dir DIR`, with `VESTIBULE_DATA_DIR` set as well.
pub fn admin_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(vestibule_bin());
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("VESTIBULE_DATA_DIR", data_dir);
    cmd
}

/// `vestibule ca export KIND EXTRA...` (KIND `user` or `host`), which must
/// succeed, as its non-empty lines.
pub fn ca_export(data_dir: &Path, kind: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["ca", "export", kind];
    args.extend_from_slice(extra);
    let out = run(&mut admin_command(data_dir, &args), COMMAND_TIMEOUT);
    assert!(out.success(), "vestibule {args:?} failed:\n{out}");
    out.stdout_str()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Read the gateway's stdout line by line into `log`; send the port of the first
/// `SSH listening on HOST:PORT` line. Keeps draining so the gateway never blocks.
fn watch_for_listen_line(stdout: impl Read + Send + 'static, mut log: File) -> mpsc::Receiver<u16> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sent = false;
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        // Bytes, not lines(): invalid UTF-8 must not stop the draining.
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let _ = log.write_all(&buf);
            let line = String::from_utf8_lossy(&buf);
            if !sent && let Some(port) = parse_listen_port(&line) {
                sent = tx.send(port).is_ok();
            }
            buf.clear();
        }
    });
    rx
}

/// The port in a line containing `SSH listening on 127.0.0.1:PORT`.
pub fn parse_listen_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("SSH listening on ")?;
    let addr = rest.split_whitespace().next()?;
    let (_, port) = addr.rsplit_once(':')?;
    let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------
// The usual world: one target, one gateway, alice with role `ops`
// ---------------------------------------------------------------------------

/// One sshd target registered as `web1` (login root, pinned host key, reached
/// by certificate), one gateway trusted by it (its user CA in the target's
/// `TrustedUserCAKeys`, its static key in authorized_keys), and `alice`
/// (ed25519 key) holding role `ops`
/// (`--targets '*' --logins root,vtdeploy --allow-port-forwarding`).
pub struct World {
    // Field order is drop order: stop the gateway before its target.
    pub gw: Gateway,
    pub target: SshdTarget,
    pub alice: Client,
}

/// How [`World::with`] sets things up; [`Setup::default`] is [`World::new`].
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// Extra sshd_config lines for the target.
    pub sshd_config: &'a [&'a str],
    /// Put `vestibule ca export user` into the target's `TrustedUserCAKeys`.
    pub trust_user_ca: bool,
    /// Append `vestibule gateway-key` to the target's authorized_keys.
    pub authorize_gateway_key: bool,
    /// Register `web1` with `--static-key` instead of the certificate default.
    pub web1_static_key: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            sshd_config: &[],
            trust_user_ca: true,
            authorize_gateway_key: true,
            web1_static_key: false,
        }
    }
}

impl World {
    pub fn new() -> Self {
        Self::with(Setup::default())
    }

    pub fn with_sshd_config(extra: &[&str]) -> Self {
        Self::with(Setup {
            sshd_config: extra,
            ..Setup::default()
        })
    }

    /// The target trusts the gateway both ways by default: its user CA (for
    /// certificate targets, the default) and its static key (for targets
    /// registered with `--static-key`).
    pub fn with(setup: Setup) -> Self {
        let target = SshdTarget::start_with(setup.sshd_config);
        let gw = Gateway::start();
        if setup.authorize_gateway_key {
            target.authorize(&gw.gateway_key());
        }
        let world = Self {
            gw,
            target,
            alice: Client::with_key("alice", KeyType::Ed25519),
        };
        if setup.trust_user_ca {
            world.trust_gateway_user_ca();
        }
        if setup.web1_static_key {
            world.add_static_key_target("web1", &["--login", "root"]);
        } else {
            world.add_target("web1", &["--login", "root"]);
        }
        world.add_user(&world.alice);
        world.add_role("ops", "*", "root,vtdeploy", true);
        world.grant("ops", "alice");
        world
    }

    /// Make the target trust exactly the gateway's current user-CA keys
    /// (`vestibule ca export user`), e.g. again after a rotation.
    pub fn trust_gateway_user_ca(&self) -> Vec<String> {
        let lines = self.gw.ca_export("user", &[]);
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.starts_with("ssh-ed25519 AAAA")),
            "`ca export user` should print ssh-ed25519 lines, got {lines:?}"
        );
        self.target.trust_user_cas(&lines);
        lines
    }

    /// Register target `name` like [`World::add_target`], with `--static-key`:
    /// the gateway logs in with `vestibule gateway-key`, not a certificate.
    pub fn add_static_key_target(&self, name: &str, extra: &[&str]) {
        let mut args = extra.to_vec();
        args.push("--static-key");
        self.add_target(name, &args);
    }

    /// Register target `name` pointing at this world's sshd with its real host
    /// key pinned, unless `extra` gives its own `--host`, `--port`, `--host-key`
    /// or `--trust-on-first-use`.
    pub fn add_target(&self, name: &str, extra: &[&str]) {
        let port = self.target.port.to_string();
        let host_key = key_type_and_blob(&self.target.host_key_line());
        let mut args = vec!["target", "add", name];
        if !extra.contains(&"--host") {
            args.extend_from_slice(&["--host", "127.0.0.1"]);
        }
        if !extra.contains(&"--port") {
            args.extend_from_slice(&["--port", &port]);
        }
        args.extend_from_slice(extra);
        let chooses_key = extra
            .iter()
            .any(|a| *a == "--host-key" || *a == "--trust-on-first-use");
        if !chooses_key {
            args.extend_from_slice(&["--host-key", &host_key]);
        }
        self.gw.cli_ok(&args);
    }

    /// `user add NAME --public-key FILE` for a key client.
    pub fn add_user(&self, client: &Client) {
        let key = client.pubkey_path();
        let key = key.to_str().expect("utf-8 path");
        self.gw
            .cli_ok(&["user", "add", &client.name, "--public-key", key]);
    }

    /// A new ed25519 user holding `roles`.
    pub fn new_user(&self, name: &str, roles: &[&str]) -> Client {
        let client = Client::with_key(name, KeyType::Ed25519);
        self.add_user(&client);
        for role in roles {
            self.grant(role, name);
        }
        client
    }

    pub fn add_role(&self, name: &str, targets: &str, logins: &str, forwarding: bool) {
        let mut args = vec![
            "role",
            "add",
            name,
            "--targets",
            targets,
            "--logins",
            logins,
        ];
        if forwarding {
            args.push("--allow-port-forwarding");
        }
        self.gw.cli_ok(&args);
    }

    pub fn grant(&self, role: &str, user: &str) {
        self.gw.cli_ok(&["role", "grant", role, user]);
    }

    /// `ssh -p GW USER@127.0.0.1 COMMAND` as `client`.
    pub fn exec_as(&self, client: &Client, user: &str, command: &str) -> Run {
        client.exec(self.gw.port, user, command)
    }

    /// `ssh -p GW USER@127.0.0.1 COMMAND` as alice.
    pub fn exec(&self, user: &str, command: &str) -> Run {
        self.exec_as(&self.alice, user, command)
    }

    /// Alice's ssh command line through the gateway (for custom stdin etc.).
    pub fn ssh(&self, user: &str, command: &str) -> Command {
        self.alice.ssh(self.gw.port, user, command)
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

/// The private key `vestibule login` wrote under `home` (its certificate is
/// beside it, as `KEY-cert.pub`).
pub fn login_key(home: &Path) -> PathBuf {
    fs::read_dir(home.join(".vestibule/keys"))
        .expect("keys dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| !p.to_string_lossy().ends_with(".pub"))
        .expect("a key file")
}

/// The first JSON object (searching depth-first) that has some string field
/// equal to `name`, e.g. the entry for target `web1` in `target list --json`.
pub fn find_named<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if map.values().any(|v| v.as_str() == Some(name)) {
                return Some(value);
            }
            map.values().find_map(|v| find_named(v, name))
        }
        Value::Array(items) => items.iter().find_map(|v| find_named(v, name)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Client command lines shared by several test files
// ---------------------------------------------------------------------------

/// `sshpass -e ssh ...` as `client` with `password` (password authentication).
pub fn sshpass_exec(client: &Client, port: u16, user: &str, password: &str, command: &str) -> Run {
    let mut cmd = Command::new("sshpass");
    cmd.arg("-e")
        .env("SSHPASS", password)
        .arg("ssh")
        .arg("-F")
        .arg(&client.config)
        .arg("-p")
        .arg(port.to_string())
        .arg(format!("{user}@127.0.0.1"))
        .arg("--")
        .arg(command);
    run(&mut cmd, COMMAND_TIMEOUT)
}

/// Plain ssh to the gateway on `port` with exactly one identity: `key` and
/// its `-cert.pub`.
pub fn ssh_with_key(port: u16, key: &Path, user: &str, command: &str) -> Run {
    let known = key.with_extension("known_hosts");
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
    ])
    .args([
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "LogLevel=ERROR",
    ])
    .arg("-o")
    .arg(format!("UserKnownHostsFile={}", known.display()))
    .arg("-i")
    .arg(key)
    .args(["-p", &port.to_string()])
    .arg(format!("{user}@127.0.0.1"))
    .arg(command);
    run(&mut cmd, COMMAND_TIMEOUT)
}
