//! A private tmux server running one program in a detached session, for driving
//! full-screen and interactive programs as a person would.

use std::cell::Cell;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::{COMMAND_TIMEOUT, Run, must, run, temp_dir, wait_until};

/// How long to wait for something to appear on the screen.
pub const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);

const SESSION: &str = "e2e";
/// Printed with the program's exit status once it ends.
const EXIT_MARKER: &str = "tmux-e2e-exit-status=";

pub struct Tmux {
    dir: TempDir,
    socket: PathBuf,
    /// Numbers the markers of shell_eventually_prints so they never repeat.
    probes: Cell<usize>,
}

impl Tmux {
    /// Run `shell_command` (a `sh -c` string) in a detached session of
    /// `width`x`height`. The pane stays around after the program exits and shows
    /// its exit status (see [`Tmux::exit_status`]).
    pub fn start(shell_command: &str, width: u16, height: u16) -> Self {
        let dir = temp_dir();
        let socket = dir.path().join("tmux.sock");
        let conf = dir.path().join("tmux.conf");
        fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g history-limit 10000\nset -g status off\n",
        )
        .expect("write tmux.conf");
        let tmux = Self {
            dir,
            socket,
            probes: Cell::new(0),
        };
        tmux.must(&[
            "-f",
            conf.to_str().expect("utf-8 path"),
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &format!("{shell_command}; echo {EXIT_MARKER}$?; exec sleep 3600"),
        ]);
        tmux
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color");
        cmd
    }

    fn must(&self, args: &[&str]) -> Run {
        must(&mut self.command(args))
    }

    /// Type `text` literally (no Enter).
    pub fn type_text(&self, text: &str) {
        self.must(&["send-keys", "-t", SESSION, "-l", text]);
    }

    /// Press named keys (`Enter`, `Down`, `C-c`, ...).
    pub fn press(&self, key: &str) {
        self.must(&["send-keys", "-t", SESSION, key]);
    }

    /// Type `text` and press Enter.
    pub fn type_line(&self, text: &str) {
        self.type_text(text);
        self.press("Enter");
    }

    /// The visible screen as plain text.
    pub fn screen(&self) -> String {
        self.must(&["capture-pane", "-p", "-t", SESSION])
            .stdout_str()
    }

    /// Wait until the screen satisfies `pred`; panic showing the screen if not.
    #[track_caller]
    pub fn wait_for_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let found = wait_until(SCREEN_TIMEOUT, || {
            let screen = self.screen();
            pred(&screen).then_some(screen)
        });
        found.unwrap_or_else(|| {
            panic!(
                "screen never showed {what} within {SCREEN_TIMEOUT:?}; it shows:\n{}",
                self.screen()
            )
        })
    }

    /// Wait until the screen contains `needle`.
    #[track_caller]
    pub fn wait_for_text(&self, needle: &str) -> String {
        self.wait_for_screen(&format!("{needle:?}"), |s| s.contains(needle))
    }

    /// `Some(exit status)` once the program in the pane has exited. The start
    /// command prints it (tmux's own `pane_dead_status` proved unreliable).
    pub fn exit_status(&self) -> Option<i32> {
        output_after(&self.screen(), EXIT_MARKER).and_then(|s| s.trim().parse().ok())
    }

    /// Wait for the program to exit and return its status.
    #[track_caller]
    pub fn wait_exit(&self) -> i32 {
        wait_until(SCREEN_TIMEOUT, || self.exit_status()).unwrap_or_else(|| {
            panic!(
                "program in tmux did not exit within {SCREEN_TIMEOUT:?}; screen:\n{}",
                self.screen()
            )
        })
    }

    /// Wait until the last non-empty line looks like a shell prompt.
    #[track_caller]
    pub fn wait_for_prompt(&self) -> String {
        self.wait_for_screen("a shell prompt", shows_prompt)
    }

    /// Run `probe` (a command printing one value) in the shell in the pane until
    /// it prints `expected`. Each try gets its own marker: what is waited for
    /// (e.g. a resize) may travel asynchronously (tmux → ssh → gateway → sshd).
    #[track_caller]
    pub fn shell_eventually_prints(&self, probe: &str, expected: &str) {
        let mut last = String::new();
        for _attempt in 0..20 {
            let probe_id = self.probes.get();
            self.probes.set(probe_id + 1);
            let marker = format!("probe{probe_id}=");
            self.type_line(&format!("echo {marker}$({probe})"));
            let screen = self.wait_for_screen(&format!("output of {marker}"), |s| {
                output_after(s, &marker).is_some()
            });
            last = output_after(&screen, &marker).unwrap_or_default();
            if last == expected {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "`{probe}` printed {last:?}, never {expected:?}; screen:\n{}",
            self.screen()
        );
    }

    /// Resize the window (and so the pane's terminal).
    pub fn resize(&self, width: u16, height: u16) {
        self.must(&[
            "resize-window",
            "-t",
            SESSION,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }
}

/// Whether the last non-empty screen line looks like a shell prompt
/// (`user@host:~#` or `$`; capture-pane trims trailing blanks).
pub fn shows_prompt(screen: &str) -> bool {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| {
            let l = l.trim_end();
            l.contains('@') && l.contains(':') && (l.ends_with('#') || l.ends_with('$'))
        })
}

/// The rest of the first screen line that starts with `prefix` (so output lines,
/// not the echoed command line that merely contains it).
fn output_after(screen: &str, prefix: &str) -> Option<String> {
    screen
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix).map(str::to_owned))
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- tmux screen ----\n{}", self.screen());
        }
        let _ = run(&mut self.command(&["kill-server"]), COMMAND_TIMEOUT);
    }
}
