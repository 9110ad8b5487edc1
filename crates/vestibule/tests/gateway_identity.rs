//! End-to-end: TOTP after the first factor over keyboard-interactive (driven
//! through the real `ssh` with `expect`), replayed and wrong codes, lockout after
//! repeated bad passwords, and break-glass tokens that work exactly once.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{Client, Run, World, run, wait_until};

const PASSWORD: &str = "correct horse battery staple";
const TIMEOUT: Duration = Duration::from_secs(30);

fn add_password_user(w: &World, name: &str) -> Client {
    let out = w.gw.cli_with_stdin(
        &["user", "add", name, "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(out.success(), "user add failed:\n{out}");
    w.grant("ops", name);
    Client::with_password(name)
}

/// `ssh` with the client's key, answering the "Verification code: " prompt
/// with `code` (expect exits with ssh's status; 99 when no prompt came).
fn ssh_with_code(client: &Client, port: u16, user: &str, code: &str, command: &str) -> Run {
    let script = format!(
        r#"set timeout 20
spawn ssh -F {config} -o LogLevel=INFO -o BatchMode=no -o PreferredAuthentications=publickey,keyboard-interactive -o NumberOfPasswordPrompts=1 -p {port} {user}@127.0.0.1 -- {command}
expect {{
    "Verification code: " {{ send "{code}\r" }}
    timeout {{ exit 98 }}
    eof {{ exit 99 }}
}}
expect eof
catch wait result
exit [lindex $result 3]
"#,
        config = client.config.display(),
    );
    run(Command::new("expect").arg("-c").arg(script), TIMEOUT)
}

fn now_step() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    vestibule_identity::totp::step_of(now)
}

fn enroll(w: &World, name: &str) -> String {
    let out = w.gw.cli_ok(&["user", "mfa", "enroll", name]);
    let text = out.stdout_str();
    assert!(text.contains("otpauth://totp/Vestibule:"), "{out}");
    // The QR code is drawn with half blocks.
    assert!(text.contains('▀') || text.contains('▄'), "{out}");
    text.lines()
        .find_map(|l| l.strip_prefix("Secret (to type in by hand): "))
        .expect("secret line")
        .trim()
        .to_owned()
}

fn search(w: &World, kind: &str) -> Vec<serde_json::Value> {
    let out = w.gw.cli_ok(&["audit", "search", "--type", kind, "--json"]);
    out.stdout_str()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn found(w: &World, kind: &str, needle: &str) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(15), || {
        let events: Vec<_> = search(w, kind)
            .into_iter()
            .filter(|e| e.to_string().contains(needle))
            .collect();
        (!events.is_empty()).then_some(events)
    })
    .unwrap_or_else(|| panic!("no {kind} audit event with {needle}"))
}

/// Replace `key = ...` in `[identity]` of the data dir's vestibule.toml.
fn set_identity(w: &World, settings: &[(&str, &str)]) {
    let path = w.gw.data_dir().join("vestibule.toml");
    let text = fs::read_to_string(&path).unwrap();
    let mut section = String::new();
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                section = line.to_owned();
            }
            if section == "[identity]" {
                for (key, value) in settings {
                    if line.starts_with(&format!("{key} =")) {
                        return format!("{key} = {value}");
                    }
                }
            }
            line.to_owned()
        })
        .collect();
    fs::write(&path, out.join("\n") + "\n").unwrap();
}

#[test]
fn totp_is_asked_after_the_key_and_a_code_works_once() {
    let w = World::new();
    let secret = enroll(&w, "alice");
    // Without the code (BatchMode: no keyboard-interactive), no way in.
    w.exec("alice:web1", "true").assert_auth_denied();
    let code = vestibule_identity::totp::code_at(&secret, now_step()).unwrap();
    let ok = ssh_with_code(&w.alice, w.gw.port, "alice:web1", &code, "echo in");
    assert_eq!(ok.code(), Some(0), "{ok}");
    assert!(ok.stdout_str().contains("in"), "{ok}");
    // The same code again is a replay.
    let replay = ssh_with_code(&w.alice, w.gw.port, "alice:web1", &code, "echo in");
    assert_eq!(replay.code(), Some(255), "{replay}");
    // A wrong code (not one of the window's).
    let step = now_step();
    let window: Vec<String> = (step - 2..=step + 2)
        .filter_map(|s| vestibule_identity::totp::code_at(&secret, s))
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap();
    let refused = ssh_with_code(&w.alice, w.gw.port, "alice:web1", &wrong, "true");
    assert_eq!(refused.code(), Some(255), "{refused}");
    found(
        &w,
        "authentication.failure",
        "wrong or reused verification code",
    );
    let success = found(&w, "authentication.success", "publickey+totp");
    assert!(!success.is_empty());
    // Removing the factor returns to key-only logins.
    w.gw.cli_ok(&["user", "mfa", "remove", "alice"]);
    w.exec("alice:web1", "true").assert_ok();
}

#[test]
fn require_mfa_refuses_people_not_enrolled() {
    let mut w = World::new();
    set_identity(&w, &[("require_mfa", "true")]);
    w.gw.restart();
    w.exec("alice:web1", "true").assert_auth_denied();
    found(&w, "authentication.failure", "none is enrolled");
    // A client that does keyboard-interactive is told why.
    let told = ssh_with_code(&w.alice, w.gw.port, "alice:web1", "000000", "true");
    assert_eq!(told.code(), Some(99), "{told}");
    assert!(
        told.stdout_str()
            .contains("vestibule user mfa enroll alice"),
        "{told}"
    );
}

#[test]
fn repeated_bad_passwords_lock_out_then_the_lockout_ends() {
    let mut w = World::new();
    set_identity(
        &w,
        &[
            ("max_failures", "3"),
            ("lockout_secs", "4"),
            ("backoff_base_ms", "10"),
        ],
    );
    w.gw.restart();
    let bob = add_password_user(&w, "bob");
    let issued = w.gw.cli_ok(&[
        "breakglass",
        "issue",
        "--account",
        "bob",
        "--reason",
        "lockout test",
    ]);
    let token = issued
        .stdout_str()
        .lines()
        .find(|l| l.starts_with("vbg_"))
        .expect("token line")
        .trim()
        .to_owned();
    for _ in 0..3 {
        common::sshpass_exec(&bob, w.gw.port, "bob:web1", "wrong", "true").assert_auth_denied();
    }
    // Locked out: the right password fails too, looking like any failure.
    common::sshpass_exec(&bob, w.gw.port, "bob:web1", PASSWORD, "true").assert_auth_denied();
    // A lockout anyone can provoke does not keep break-glass out; the
    // address stays locked out for passwords.
    common::sshpass_exec(&bob, w.gw.port, "bob:web1", &token, "true").assert_ok();
    common::sshpass_exec(&bob, w.gw.port, "bob:web1", PASSWORD, "true").assert_auth_denied();
    let failures = found(&w, "authentication.failure", "locked out");
    assert_eq!(
        failures[0]["event"]["source"]["ip"], "127.0.0.1",
        "{failures:?}"
    );
    let wrong = found(&w, "authentication.failure", "wrong password");
    assert_eq!(wrong[0]["event"]["source"]["ip"], "127.0.0.1", "{wrong:?}");
    std::thread::sleep(Duration::from_secs(5));
    common::sshpass_exec(&bob, w.gw.port, "bob:web1", PASSWORD, "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

#[test]
fn a_breakglass_token_works_exactly_once() {
    let w = World::new();
    let oncall = add_password_user(&w, "oncall");
    let out = w.gw.cli_ok(&[
        "breakglass",
        "issue",
        "--account",
        "oncall",
        "--ttl",
        "1h",
        "--reason",
        "IdP down",
    ]);
    let token = out
        .stdout_str()
        .lines()
        .find(|l| l.starts_with("vbg_"))
        .expect("token line")
        .trim()
        .to_owned();
    // Not for another account.
    let other = add_password_user(&w, "eve");
    common::sshpass_exec(&other, w.gw.port, "eve:web1", &token, "true").assert_auth_denied();
    common::sshpass_exec(&oncall, w.gw.port, "oncall:web1", &token, "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    common::sshpass_exec(&oncall, w.gw.port, "oncall:web1", &token, "true").assert_auth_denied();
    let used = found(&w, "breakglass.use", "oncall");
    assert_eq!(used[0]["event"]["log"]["level"], "critical", "{used:?}");
    let listed = w.gw.cli_ok(&["breakglass", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout_str()).unwrap();
    assert!(listed[0]["used_at"].is_i64(), "{listed}");
    assert!(!listed.to_string().contains(&token));
}

#[test]
fn enrolled_totp_also_applies_after_a_password() {
    let w = World::new();
    let carol = add_password_user(&w, "carol");
    enroll(&w, "carol");
    // The password alone no longer lets carol in.
    common::sshpass_exec(&carol, w.gw.port, "carol:web1", PASSWORD, "true").assert_auth_denied();
}

/// The HTTPS address and TLS fingerprint `serve` printed.
fn https_endpoint(w: &World) -> (String, String) {
    let stdout_log = w.gw.data_dir().parent().unwrap().join("gateway.stdout");
    let line = wait_until(TIMEOUT, || {
        fs::read_to_string(&stdout_log)
            .ok()?
            .lines()
            .find(|l| l.contains("HTTPS listening on "))
            .map(str::to_owned)
    })
    .expect("serve never printed its HTTPS line");
    let rest = line.split_once("HTTPS listening on ").unwrap().1;
    let address = rest.split_whitespace().next().unwrap().to_owned();
    let fingerprint = rest
        .split_once("TLS certificate ")
        .map(|(_, f)| f.trim_end_matches(')').to_owned())
        .unwrap();
    (address, fingerprint)
}

/// `vestibule login` as `user` with `stdin` (password, then maybe a code).
fn login(w: &World, home: &std::path::Path, user: &str, stdin: &str, extra: &[&str]) -> Run {
    let (address, fingerprint) = https_endpoint(w);
    let mut cmd = Command::new(common::vestibule_bin());
    cmd.args(["login", "--proxy", &address, "--user", user])
        .args(["--fingerprint", &fingerprint])
        .args(extra)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK");
    common::run_with_stdin(&mut cmd, stdin.as_bytes().to_vec(), TIMEOUT)
}

#[test]
fn vestibule_login_asks_for_the_code_and_its_certificate_counts_as_both_factors() {
    let w = World::new();
    add_password_user(&w, "dana");
    let secret = enroll(&w, "dana");
    let home = common::temp_dir();
    let refused = login(&w, home.path(), "dana", &format!("{PASSWORD}\n"), &[]);
    assert!(!refused.success(), "{refused}");
    assert!(
        refused
            .stderr_str()
            .contains("verification code is required"),
        "{refused}"
    );
    let code = vestibule_identity::totp::code_at(&secret, now_step()).unwrap();
    let ok = login(
        &w,
        home.path(),
        "dana",
        &format!("{PASSWORD}\n{code}\n"),
        &[],
    );
    assert!(ok.success(), "{ok}");
    // The same code again is refused.
    let replay = login(
        &w,
        home.path(),
        "dana",
        &format!("{PASSWORD}\n"),
        &["--totp-code", &code],
    );
    assert!(
        replay
            .stderr_str()
            .contains("already used verification code"),
        "{replay}"
    );
    // The certificate opens a session without a second prompt (BatchMode).
    let keys = home.path().join(".vestibule/keys");
    let key = fs::read_dir(&keys)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| !p.to_string_lossy().ends_with(".pub"))
        .unwrap();
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-F",
        "/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
    ])
    .args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "LogLevel=ERROR", "-i"])
    .arg(&key)
    .args([
        "-p",
        &w.gw.port.to_string(),
        "dana:web1@127.0.0.1",
        "whoami",
    ]);
    run(&mut ssh, TIMEOUT).assert_ok().assert_stdout("root\n");
    found(&w, "authentication.success", "certificate+totp");
}

#[test]
fn proxyjump_asks_for_the_code_once() {
    let w = World::new();
    let secret = enroll(&w, "alice");
    let code = vestibule_identity::totp::code_at(&secret, now_step()).unwrap();
    // The jump host's ssh reads only the config file, not -o options.
    let dir = common::temp_dir();
    let config = dir.path().join("ssh_config");
    let text = fs::read_to_string(&w.alice.config)
        .unwrap()
        .replace("BatchMode yes", "BatchMode no")
        .replace(
            "PreferredAuthentications publickey",
            "PreferredAuthentications publickey,keyboard-interactive",
        );
    fs::write(&config, text).unwrap();
    let script = format!(
        r#"set timeout 20
spawn ssh -F {config} -J alice@127.0.0.1:{port} root@web1 -- echo jumped
expect {{
    "Verification code: " {{ send "{code}\r" }}
    timeout {{ exit 98 }}
    eof {{ exit 99 }}
}}
expect {{
    "Verification code: " {{ exit 97 }}
    eof
}}
catch wait result
exit [lindex $result 3]
"#,
        config = config.display(),
        port = w.gw.port,
    );
    let out = run(Command::new("expect").arg("-c").arg(script), TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout_str().contains("jumped"), "{out}");
}

const MFA_POLICY: &str = r#"
@id("prod-needs-mfa")
@reason("production needs a second factor")
forbid (principal, action in Vestibule::Action::"ssh.session", resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" }
unless { context.mfa };

@id("no-breakglass-on-prod")
@reason("break-glass sessions may not reach production")
forbid (principal, action in Vestibule::Action::"ssh.session", resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" && context.break_glass };
"#;

#[test]
fn policy_sees_mfa_and_break_glass() {
    let w = World::new();
    w.add_target("db1", &["--login", "root", "--label", "env=prod"]);
    fs::write(
        w.gw.data_dir().join("policies").join("mfa.cedar"),
        MFA_POLICY,
    )
    .unwrap();
    w.exec("alice:db1", "true")
        .assert_refused_with(&["production needs a second factor"]);
    let secret = enroll(&w, "alice");
    let code = vestibule_identity::totp::code_at(&secret, now_step()).unwrap();
    let ok = ssh_with_code(&w.alice, w.gw.port, "alice:db1", &code, "echo prod");
    assert_eq!(ok.code(), Some(0), "{ok}");
    // A break-glass session is told apart.
    let oncall = add_password_user(&w, "oncall");
    let issued = w.gw.cli_ok(&[
        "breakglass",
        "issue",
        "--account",
        "oncall",
        "--reason",
        "policy test",
    ]);
    let token = issued
        .stdout_str()
        .lines()
        .find(|l| l.starts_with("vbg_"))
        .expect("token line")
        .trim()
        .to_owned();
    let refused = common::sshpass_exec(&oncall, w.gw.port, "oncall:db1", &token, "true");
    assert!(
        refused
            .stderr_str()
            .contains("break-glass sessions may not reach production"),
        "{refused}"
    );
}
