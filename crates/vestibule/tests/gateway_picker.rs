//! End-to-end: interactive use through a real terminal (tmux) — a PTY shell with
//! window-size changes, and the full-screen target picker shown when the user
//! name names no target.

mod common;

use common::World;
use common::tmux::Tmux;

const WIDTH: u16 = 100;
const HEIGHT: u16 = 30;

#[test]
fn pty_shell_runs_commands_follows_resizes_and_exits() {
    let w = World::new();
    let tmux = Tmux::start(
        &w.alice.interactive_ssh_line(w.gw.port, "alice:web1"),
        WIDTH,
        HEIGHT,
    );
    tmux.wait_for_prompt();
    tmux.type_line("echo marker-$((6*7))");
    tmux.wait_for_text("marker-42");
    tmux.shell_eventually_prints("stty size | tr ' ' x", &format!("{HEIGHT}x{WIDTH}"));

    tmux.resize(120, 40);
    tmux.shell_eventually_prints("stty size | tr ' ' x", "40x120");
    tmux.shell_eventually_prints("tput cols", "120");

    tmux.type_line("exit");
    assert_eq!(tmux.wait_exit(), 0, "ssh should exit 0 after `exit`");
}

#[test]
fn pty_shell_exit_status_passes_through() {
    let w = World::new();
    let tmux = Tmux::start(
        &w.alice
            .interactive_ssh_line(w.gw.port, "alice#vtdeploy@web1"),
        WIDTH,
        HEIGHT,
    );
    tmux.wait_for_prompt();
    tmux.type_line("echo me-$(whoami)");
    tmux.wait_for_text("me-vtdeploy");
    tmux.type_line("exit 9");
    assert_eq!(tmux.wait_exit(), 9);
}

#[test]
fn picker_lists_filters_and_connects() {
    let w = World::new();
    w.add_target("db1", &["--login", "root"]);
    let tmux = Tmux::start(
        &w.alice.interactive_ssh_line(w.gw.port, "alice"),
        WIDTH,
        HEIGHT,
    );
    tmux.wait_for_screen("both targets", |s| s.contains("web1") && s.contains("db1"));
    tmux.type_text("db");
    tmux.wait_for_screen("only db1 after filtering", |s| {
        s.contains("db1") && !s.contains("web1")
    });
    tmux.press("Enter");
    tmux.wait_for_prompt();
    tmux.type_line("echo picked-$((40+2))");
    tmux.wait_for_text("picked-42");
    tmux.type_line("exit");
    assert_eq!(tmux.wait_exit(), 0);
}

#[test]
fn picker_lists_only_what_the_user_may_use() {
    let w = World::new();
    w.add_target("db1", &["--login", "root"]);
    w.add_target("secret1", &["--login", "root"]);
    w.add_role("narrow", "web1,db1", "root", false);
    let erin = w.new_user("erin", &["narrow"]);
    let tmux = Tmux::start(&erin.interactive_ssh_line(w.gw.port, "erin"), WIDTH, HEIGHT);
    let screen = tmux.wait_for_screen("web1 and db1", |s| s.contains("web1") && s.contains("db1"));
    assert!(
        !screen.contains("secret1"),
        "picker shows a forbidden target:\n{screen}"
    );
    tmux.press("Down");
    tmux.press("Up");
    tmux.press("Enter");
    tmux.wait_for_prompt();
    tmux.type_line("exit");
    assert_eq!(tmux.wait_exit(), 0);
}

#[test]
fn no_target_without_pty_is_refused_with_message() {
    let w = World::new();
    let out = w.exec("alice", "true");
    out.assert_failed();
    assert!(
        out.stderr_str()
            .lines()
            .any(|l| l.starts_with("vestibule:")),
        "expected a `vestibule:` line on stderr:\n{out}"
    );
}
