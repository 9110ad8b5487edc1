//! Running child processes with deadlines, and killing them for sure.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A child process in its own process group; the whole group is killed on drop.
pub struct ChildGuard {
    child: Child,
    done: bool,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command, stdout: Stdio, stderr: Stdio) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Self { child, done: false }
    }

    /// Like [`spawn`](Self::spawn), with standard input piped.
    pub fn spawn_with_stdin(cmd: &mut Command, stdout: Stdio, stderr: Stdio) -> Self {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Self { child, done: false }
    }

    pub fn take_stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().expect("stdin was not piped")
    }

    pub fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.child.stderr.take().expect("stderr was not piped")
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout was not piped")
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.try_status().is_some()
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        super::wait_until(timeout, || self.try_status())
    }

    /// Ask the process (only it, not its group) to stop with SIGTERM.
    pub fn terminate(&mut self) {
        if !self.done {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        }
    }

    /// SIGKILL the process group, then reap the process.
    pub fn kill(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL the process group led by `pid` (which we started with process_group(0)).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The outcome of a finished command.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit status:\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn assert_failed(&self) -> &Self {
        assert!(!self.success(), "expected failure:\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_stdout(&self, expected: &str) -> &Self {
        assert_eq!(self.stdout_str(), expected, "unexpected stdout:\n{self}");
        self
    }

    /// Refused at SSH authentication: OpenSSH's exit 255 and `Permission denied`.
    #[track_caller]
    pub fn assert_auth_denied(&self) -> &Self {
        self.assert_code(255)
            .assert_stderr_line_with(&["Permission denied"])
    }

    /// Refused by the gateway in the session, after authentication: exit
    /// status 1 and stderr a single line holding every one of `needles` (e.g.
    /// `vestibule:`, `web1`).
    #[track_caller]
    pub fn assert_refused_with(&self, needles: &[&str]) -> &Self {
        let lines = self.stderr_str().trim_end().lines().count();
        assert_eq!(lines, 1, "the refusal should be one stderr line:\n{self}");
        self.assert_code(1).assert_stderr_line_with(needles)
    }

    /// Assert that one line of stderr contains every one of `needles`.
    #[track_caller]
    pub fn assert_stderr_line_with(&self, needles: &[&str]) -> &Self {
        let stderr = self.stderr_str();
        assert!(
            stderr
                .lines()
                .any(|line| needles.iter().all(|n| line.contains(n))),
            "no stderr line contains all of {needles:?}:\n{self}"
        );
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 3000;
        let clip = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            if text.len() > MAX {
                let mut start = text.len() - MAX;
                while !text.is_char_boundary(start) {
                    start += 1;
                }
                format!("[{} bytes, last {MAX}:]...{}", text.len(), &text[start..])
            } else {
                text.into_owned()
            }
        };
        writeln!(f, "command: {}", self.what)?;
        writeln!(
            f,
            "status: {:?} (signal {:?}) after {:?}",
            self.code(),
            self.status.signal(),
            self.elapsed
        )?;
        writeln!(f, "stdout: {}", clip(&self.stdout))?;
        write!(f, "stderr: {}", clip(&self.stderr))
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Run `cmd` with stdin from /dev/null, killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Run {
    run_inner(cmd, None, timeout)
}

/// Run `cmd` feeding it `stdin` (then EOF), killing it after `timeout`.
pub fn run_with_stdin(cmd: &mut Command, stdin: Vec<u8>, timeout: Duration) -> Run {
    run_inner(cmd, Some(stdin), timeout)
}

fn run_inner(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Run {
    let what = format!("{cmd:?}");
    let started = Instant::now();
    let deadline = started + timeout;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        // Dropping the pipe at the end of the thread sends EOF.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let stdout = collect(child.stdout.take().expect("stdout piped"));
    let stderr = collect(child.stderr.take().expect("stderr piped"));

    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.kill();
            let status = child.wait().expect("wait");
            let run = Run {
                what,
                status,
                stdout: drain(&stdout, Instant::now() + Duration::from_secs(2)),
                stderr: drain(&stderr, Instant::now() + Duration::from_secs(2)),
                elapsed: started.elapsed(),
            };
            panic!("command timed out after {timeout:?} and was killed:\n{run}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    // Leftover grandchildren (e.g. a ProxyJump helper) must not keep pipes open.
    kill_group(child.id());
    let grace = Instant::now() + Duration::from_secs(10);
    let stdout = drain(&stdout, grace);
    let stderr = drain(&stderr, grace);
    Run {
        what,
        status,
        stdout,
        stderr,
        elapsed,
    }
}

/// A pipe being read to EOF on a thread.
type Collector = mpsc::Receiver<Vec<u8>>;

fn collect(mut pipe: impl Read + Send + 'static) -> Collector {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn drain(rx: &Collector, deadline: Instant) -> Vec<u8> {
    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default()
}
