//! End-to-end: running commands through the gateway with the real OpenSSH client,
//! in every way a person names a target, compared with direct ssh where useful.

mod common;

use std::thread;
use std::time::Duration;

use common::{COMMAND_TIMEOUT, DEPLOY_LOGIN, World, run, run_with_stdin};

const HELLO: &str = "echo hello; echo err >&2; exit 7";

#[track_caller]
fn assert_hello(run: &common::Run) {
    run.assert_code(7)
        .assert_stdout("hello\n")
        .assert_stderr_line_with(&["err"]);
}

#[test]
fn exec_with_colon_form_passes_stdout_stderr_and_exit_code() {
    let w = World::new();
    assert_hello(&w.exec("alice:web1", HELLO));
}

#[test]
fn exec_with_hash_form_passes_stdout_stderr_and_exit_code() {
    let w = World::new();
    assert_hello(&w.exec("alice#web1", HELLO));
}

#[test]
fn exec_uses_the_targets_login_by_default() {
    let w = World::new();
    w.exec("alice:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

#[test]
fn exec_with_explicit_login_in_both_forms() {
    let w = World::new();
    for user in ["alice#vtdeploy@web1", "alice:vtdeploy@web1"] {
        w.exec(user, "whoami")
            .assert_ok()
            .assert_stdout(&format!("{DEPLOY_LOGIN}\n"));
    }
    w.exec("alice#root@web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

/// Exit statuses and deaths by signal look the same through the gateway as
/// with ssh straight to the target (the oracle).
#[test]
fn exit_codes_and_signals_match_direct_ssh() {
    let w = World::new();
    for command in [
        "true",
        "exit 1",
        "exit 42",
        "exit 255",
        "kill -TERM $$",
        "kill -KILL $$",
    ] {
        let direct = w.target.direct("root", command);
        let via = w.exec("alice:web1", command);
        assert_eq!(
            via.code(),
            direct.code(),
            "exit status differs for {command:?}\ndirect:\n{direct}\ngateway:\n{via}"
        );
    }
}

#[test]
fn killed_remote_process_is_not_reported_as_success() {
    let w = World::new();
    let via = w.exec("alice:web1", "kill -TERM $$");
    via.assert_failed();
    assert_ne!(
        via.code(),
        Some(1),
        "a signal must not look like exit 1:\n{via}"
    );
}

/// `echo $LANG/$EVIL` with both sent by the client (SetEnv), straight to the
/// target and through the gateway.
fn env_direct_and_via_gateway(w: &World) -> (common::Run, common::Run) {
    // One SetEnv directive: OpenSSH uses only the first SetEnv it sees.
    let opts = ["-o", "SetEnv=LANG=C.UTF-8 EVIL=1"];
    let command = "echo $LANG/$EVIL";
    let target = &w.target;
    let direct = run(
        &mut target.admin.ssh_with(target.port, "root", &opts, command),
        COMMAND_TIMEOUT,
    );
    let via = run(
        &mut w.alice.ssh_with(w.gw.port, "alice:web1", &opts, command),
        COMMAND_TIMEOUT,
    );
    (direct, via)
}

#[test]
fn env_allowlist_passes_lang_but_not_arbitrary_variables() {
    let w = World::with_sshd_config(&["AcceptEnv LANG LC_* TERM"]);
    let (direct, via) = env_direct_and_via_gateway(&w);
    direct.assert_ok().assert_stdout("C.UTF-8/\n");
    via.assert_ok().assert_stdout("C.UTF-8/\n");
}

/// The gateway filters by itself: EVIL stays out even when the target would
/// accept any variable.
#[test]
fn env_allowlist_is_enforced_by_the_gateway() {
    let w = World::with_sshd_config(&["AcceptEnv *"]);
    let (direct, via) = env_direct_and_via_gateway(&w);
    direct.assert_ok().assert_stdout("C.UTF-8/1\n");
    via.assert_ok().assert_stdout("C.UTF-8/\n");
}

#[test]
fn stdin_eof_reaches_the_remote_command() {
    let w = World::new();
    let out = run_with_stdin(
        &mut w.ssh("alice:web1", "cat; echo done"),
        b"abc\n".to_vec(),
        COMMAND_TIMEOUT,
    );
    out.assert_ok().assert_stdout("abc\ndone\n");
}

fn seq(n: u32) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[test]
fn large_output_arrives_complete_before_close() {
    let w = World::new();
    let out = w.exec("alice:web1", "seq 1 200000");
    out.assert_ok();
    let text = out.stdout_str();
    assert_eq!(text.lines().count(), 200_000, "line count");
    assert_eq!(text.lines().last(), Some("200000"));
    assert!(text == seq(200_000), "output differs from seq 1 200000");
}

#[test]
fn large_output_then_exit_status_both_arrive() {
    let w = World::new();
    let out = w.exec("alice:web1", "seq 1 50000; exit 3");
    out.assert_code(3);
    assert!(out.stdout_str() == seq(50_000), "output differs:\n{out}");
}

#[test]
fn proxyjump_exec_as_named_login() {
    let w = World::new();
    let port = w.gw.port;
    let whoami = run(
        &mut w.alice.ssh_jump(port, "vtdeploy@web1", "whoami"),
        COMMAND_TIMEOUT,
    );
    whoami
        .assert_ok()
        .assert_stdout(&format!("{DEPLOY_LOGIN}\n"));
    let status = run(
        &mut w.alice.ssh_jump(port, "root@web1", "echo via-jump; exit 5"),
        COMMAND_TIMEOUT,
    );
    status.assert_code(5).assert_stdout("via-jump\n");
}

#[test]
fn proxyjump_refuses_a_login_the_role_does_not_grant() {
    let w = World::new();
    w.add_role("narrow", "web1", "vtdeploy", false);
    let erin = w.new_user("erin", &["narrow"]);
    let out = run(
        &mut erin.ssh_jump(w.gw.port, "root@web1", "whoami"),
        COMMAND_TIMEOUT,
    );
    out.assert_failed();
    assert!(
        !out.stdout_str().contains("root"),
        "must not have run as root:\n{out}"
    );
}

#[test]
fn fifty_concurrent_sessions() {
    const SESSIONS: usize = 50;
    let w = World::with_sshd_config(&["MaxStartups 100:30:200", "MaxSessions 100"]);
    let runs: Vec<common::Run> = thread::scope(|scope| {
        let handles: Vec<_> = (0..SESSIONS)
            .map(|i| {
                let w = &w;
                scope.spawn(move || {
                    run(
                        &mut w.ssh("alice:web1", &format!("echo n-{i}; sleep 1")),
                        Duration::from_secs(120),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("session thread"))
            .collect()
    });
    for (i, out) in runs.iter().enumerate() {
        out.assert_ok().assert_stdout(&format!("n-{i}\n"));
    }
}

/// `Max open files` soft and hard limits of a process, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().unwrap().to_owned();
    let hard = fields.next().unwrap().to_owned();
    (soft, hard)
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // nextest runs each test in its own process: the low soft limit set here
    // is inherited by the gateway only.
    let limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some_and(|hard| hard <= 512) {
        eprintln!("NOTICE: hard open-file limit at most 512; nothing to raise");
        return;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(512),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let gateway = common::Gateway::start();
    let (soft, hard) = open_file_limits(gateway.pid());
    assert_eq!(
        soft, hard,
        "the gateway kept a soft limit below its hard limit"
    );
    assert_ne!(soft, "512");
}

/// The cipher a client and the gateway agreed on, from `ssh -v`, for a login
/// through the gateway by user name and by `-J` (both hops).
fn negotiated_ciphers(w: &World, options: &[&str]) -> Vec<String> {
    let mut options = options.to_vec();
    options.push("-v");
    let by_name = run(
        &mut w.alice.ssh_with(w.gw.port, "alice:web1", &options, "true"),
        COMMAND_TIMEOUT,
    );
    let mut jump = w.alice.tool("ssh");
    jump.args(&options)
        .arg("-J")
        .arg(w.alice.jump(w.gw.port))
        .args(["root@web1", "--", "true"]);
    let by_jump = run(&mut jump, COMMAND_TIMEOUT);
    [by_name, by_jump]
        .iter()
        .flat_map(|run| {
            run.assert_ok();
            run.stderr_str()
                .lines()
                .filter_map(|l| l.split_once("kex: client->server cipher: "))
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The client picks the cipher from those the gateway offers: by default
/// AES-GCM only on a CPU with AES instructions; `ssh.ciphers` sets the list.
#[test]
fn clients_choose_among_the_ciphers_the_gateway_offers() {
    let mut w = World::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpu
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let hardware_aes =
        flags.contains(&"aes") && (flags.contains(&"pclmulqdq") || flags.contains(&"pmull"));
    let expected = if hardware_aes {
        "aes128-gcm@openssh.com"
    } else {
        "chacha20-poly1305@openssh.com"
    };
    // By name: one handshake; by -J: the outer and the inner hop.
    assert_eq!(negotiated_ciphers(&w, &[]), [expected; 3]);

    let config = w.gw.data_dir().join("vestibule.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[ssh]\n",
        "[ssh]\nciphers = [\"aes256-gcm@openssh.com\", \"aes256-ctr\"]\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    w.gw.restart();
    assert_eq!(
        negotiated_ciphers(&w, &[]),
        ["aes256-ctr"; 3],
        "OpenSSH lists aes256-ctr before aes256-gcm, so it picks it"
    );
    let refused = run(
        &mut w.alice.ssh_with(
            w.gw.port,
            "alice:web1",
            &["-c", "chacha20-poly1305@openssh.com", "-o", "LogLevel=INFO"],
            "true",
        ),
        COMMAND_TIMEOUT,
    );
    refused.assert_code(255).assert_stderr_line_with(&[
        "no matching cipher found",
        "Their offer: aes256-gcm@openssh.com,aes256-ctr",
    ]);
}
