//! Canaries for the harness itself: they need no gateway, so when they fail the
//! problem is the machine or the fixtures, not Vestibule.

mod common;

use common::tmux::Tmux;
use common::{DEPLOY_LOGIN, SshdTarget, parse_listen_port};

#[test]
fn sshd_fixture_accepts_direct_ssh_as_root_and_deploy() {
    let target = SshdTarget::start();
    target
        .direct("root", "whoami; echo err >&2; exit 3")
        .assert_code(3)
        .assert_stdout("root\n")
        .assert_stderr_line_with(&["err"]);
    target
        .direct(DEPLOY_LOGIN, "whoami")
        .assert_ok()
        .assert_stdout("vtdeploy\n");
    assert!(target.host_key_line().starts_with("ssh-ed25519 AAAA"));
}

#[test]
fn two_sshd_fixtures_get_distinct_ports() {
    let a = SshdTarget::start();
    let b = SshdTarget::start();
    assert_ne!(a.port, b.port);
    b.direct("root", "true").assert_ok();
    a.direct("root", "true").assert_ok();
}

#[test]
fn tmux_drives_an_interactive_direct_ssh_session() {
    let target = SshdTarget::start();
    let ssh = format!(
        "ssh -tt -F {} -p {} root@127.0.0.1",
        target.admin.config.display(),
        target.port
    );
    let tmux = Tmux::start(&ssh, 100, 30);
    tmux.wait_for_prompt();
    tmux.type_line("echo canary-$((6*7))");
    tmux.wait_for_text("canary-42");
    tmux.shell_eventually_prints("stty size | tr ' ' x", "30x100");
    tmux.resize(120, 40);
    tmux.shell_eventually_prints("tput cols", "120");
    tmux.type_line("exit 4");
    assert_eq!(tmux.wait_exit(), 4);
}

#[test]
fn listen_line_parsing() {
    assert_eq!(
        parse_listen_port("SSH listening on 127.0.0.1:40123"),
        Some(40123)
    );
    assert_eq!(
        parse_listen_port(
            "2026-01-01T00:00:00Z INFO vestibule: SSH listening on 127.0.0.1:5 (ed25519)"
        ),
        Some(5)
    );
    assert_eq!(parse_listen_port("HTTP listening on 127.0.0.1:80"), None);
}
