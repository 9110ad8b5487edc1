//! End-to-end: TOTP after the first factor over keyboard-interactive (driven
//! through the real `ssh` with `expect`), replayed and wrong codes, lockout after
//! repeated bad passwords, and break-glass tokens that work exactly once; the
//! same over HTTPS (`vestibule login`), and enrolment at first login.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::identity::*;
use common::{Client, Run, World, run, wait_until};

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
    set_identity(
        &w,
        &[("require_mfa", "true"), ("enroll_at_first_login", "false")],
    );
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
    let token = issue_token(&w, "bob", "1h");
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
    let token = issue_token(&w, "oncall", "1h");
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
    let key = common::login_key(home.path());
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
    let token = issue_token(&w, "oncall", "1h");
    let refused = common::sshpass_exec(&oncall, w.gw.port, "oncall:db1", &token, "true");
    assert!(
        refused
            .stderr_str()
            .contains("break-glass sessions may not reach production"),
        "{refused}"
    );
}

#[test]
fn a_person_without_a_factor_enrols_at_first_ssh_login() {
    let mut w = World::new();
    set_identity(&w, &[("require_mfa", "true")]);
    w.gw.restart();
    // A wrong code: refused, and nothing is stored.
    let (refused, first) = ssh_enrolling(&w.alice, w.gw.port, "alice:web1", wrong_code);
    assert_eq!(refused.code(), Some(255), "{refused}");
    assert!(
        refused
            .stdout_str()
            .contains("otpauth://totp/Vestibule:alice?"),
        "{refused}"
    );
    found(&w, "authentication.failure", "while enrolling");
    // The next login is offered a new secret: the first was never stored.
    let (ok, second) = ssh_enrolling(&w.alice, w.gw.port, "alice:web1", |secret| {
        vestibule_identity::totp::code_at(secret, now_step()).unwrap()
    });
    assert_ne!(first, second);
    assert_eq!(ok.code(), Some(0), "{ok}");
    assert!(ok.stdout_str().contains("enrolled-in"), "{ok}");
    let enrolled = found(&w, "mfa.enroll", "alice");
    assert_eq!(
        enrolled[0]["event"]["source"]["ip"], "127.0.0.1",
        "{enrolled:?}"
    );
    found(&w, "authentication.success", "publickey+totp");
    // Enrolled now: the usual prompt, no new offer.
    let asked = ssh_with_code(
        &w.alice,
        w.gw.port,
        "alice:web1",
        &wrong_code(&second),
        "true",
    );
    assert_eq!(asked.code(), Some(255), "{asked}");
    assert!(!asked.stdout_str().contains("otpauth://"), "{asked}");
    // The secret is sealed at rest: not in the database files; the key is 0600.
    let data = w.gw.data_dir();
    for entry in fs::read_dir(&data).unwrap().filter_map(Result::ok) {
        let bytes = fs::read(entry.path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&second),
            "{} holds the secret",
            entry.path().display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let key = fs::metadata(data.join("keys/mfa_secret_key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

#[test]
fn vestibule_login_enrols_at_first_login() {
    let mut w = World::new();
    set_identity(&w, &[("require_mfa", "true")]);
    w.gw.restart();
    add_password_user(&w, "erin");
    let home = common::temp_dir();
    // Password, then an empty line where a code would go: erin has none yet.
    let (ok, stdout, stderr) = login_enrolling(
        &w,
        home.path(),
        "erin",
        &format!("{PASSWORD}\n\n"),
        |secret| vestibule_identity::totp::code_at(secret, now_step()).unwrap(),
    );
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("otpauth://totp/Vestibule:erin?"),
        "{stdout}"
    );
    assert!(stdout.contains('▀') || stdout.contains('▄'), "{stdout}");
    let enrolled = found(&w, "mfa.enroll", "erin");
    assert!(enrolled[0].to_string().contains("https"), "{enrolled:?}");
    // The certificate counts as both factors.
    found(&w, "authentication.success", "erin");
    let key = common::login_key(home.path());
    common::ssh_with_key(w.gw.port, &key, "erin:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    // Enrolled now: a login without a code is asked for one, not offered another.
    let again = login(&w, home.path(), "erin", &format!("{PASSWORD}\n"), &[]);
    assert!(
        again.stderr_str().contains("verification code is required"),
        "{again}"
    );
    // With enrolment at first login off, the HTTPS login is refused as before.
    set_identity(&w, &[("enroll_at_first_login", "false")]);
    w.gw.restart();
    add_password_user(&w, "frank");
    let refused = login(&w, home.path(), "frank", &format!("{PASSWORD}\n"), &[]);
    assert!(
        refused.stderr_str().contains("none is enrolled"),
        "{refused}"
    );
}

#[test]
fn breakglass_over_https_works_once_and_not_after_expiry() {
    let w = World::new();
    add_password_user(&w, "oncall");
    let token = issue_token(&w, "oncall", "10m");
    let home = common::temp_dir();
    let ok = breakglass_login(&w, home.path(), "oncall", &token);
    assert!(ok.success(), "{ok}");
    let used = found(&w, "breakglass.use", "oncall");
    assert_eq!(used[0]["event"]["log"]["level"], "critical", "{used:?}");
    assert!(used[0].to_string().contains("https"), "{used:?}");
    // The certificate lives no longer than the token would have.
    let listed = w.gw.cli_ok(&["breakglass", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout_str()).unwrap();
    let expires_at = listed[0]["expires_at"].as_i64().unwrap();
    let issued = found(&w, "certificate.issue", "oncall");
    let valid_before = issued
        .iter()
        .filter_map(|e| key_named(e, "valid_before").and_then(|v| v.as_i64()))
        .max()
        .expect("valid_before");
    assert!(valid_before <= expires_at, "{valid_before} > {expires_at}");
    // Its sessions are break-glass sessions.
    let key = common::login_key(home.path());
    common::ssh_with_key(w.gw.port, &key, "oncall:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    found(&w, "session.start", "oncall");
    // Once only, over HTTPS as over SSH.
    let again = breakglass_login(&w, home.path(), "oncall", &token);
    assert!(!again.success(), "{again}");
    assert!(
        again.stderr_str().contains("invalid credentials"),
        "{again}"
    );
    let ssh_again = common::sshpass_exec(
        &Client::with_password("oncall"),
        w.gw.port,
        "oncall:web1",
        &token,
        "true",
    );
    ssh_again.assert_auth_denied();
    // An expired token is refused.
    let short = issue_token(&w, "oncall", "1s");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let listed = w.gw.cli_ok(&["breakglass", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout_str()).unwrap();
    let short_expiry = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["used_at"].is_null())
        .filter_map(|t| t["expires_at"].as_i64())
        .max()
        .unwrap();
    wait_until(TIMEOUT, || (now() > short_expiry).then_some(())).unwrap();
    let expired = breakglass_login(&w, home.path(), "oncall", &short);
    assert!(!expired.success(), "{expired}");
    assert!(
        expired.stderr_str().contains("invalid credentials"),
        "{expired}"
    );
    found(
        &w,
        "authentication.failure",
        "invalid, used or expired break-glass token",
    );
}

#[test]
fn repeated_bad_passwords_to_vestibule_login_lock_out() {
    let mut w = World::new();
    set_identity(
        &w,
        &[
            ("max_failures", "3"),
            ("lockout_secs", "300"),
            ("backoff_base_ms", "10"),
        ],
    );
    w.gw.restart();
    add_password_user(&w, "gina");
    let home = common::temp_dir();
    let wrong: Vec<Run> = (0..3)
        .map(|_| login(&w, home.path(), "gina", "not the password\n", &[]))
        .collect();
    for run in &wrong {
        assert!(!run.success(), "{run}");
    }
    let wrong_message = wrong[0].stderr_str();
    assert!(
        wrong_message.contains("invalid credentials"),
        "{wrong_message}"
    );
    // Locked out: the right password gets exactly the wrong password's answer.
    let locked = login(&w, home.path(), "gina", &format!("{PASSWORD}\n"), &[]);
    assert!(!locked.success(), "{locked}");
    assert_eq!(locked.stderr_str(), wrong_message, "{locked}");
    let failures = found(&w, "authentication.failure", "locked out");
    assert_eq!(
        failures[0]["event"]["source"]["ip"], "127.0.0.1",
        "{failures:?}"
    );
    assert!(failures[0].to_string().contains("https"), "{failures:?}");
    let bad = found(&w, "authentication.failure", "invalid credentials");
    assert!(bad.len() >= 3, "{bad:?}");
    for event in &bad {
        assert_eq!(event["event"]["source"]["ip"], "127.0.0.1", "{event}");
    }
}

#[test]
fn a_role_that_requires_mfa_has_its_holders_enrol_and_use_a_code() {
    // No gateway-wide requirement: only the holders of `prod` need a factor.
    let w = World::new();
    w.gw.cli_ok(&[
        "role",
        "add",
        "prod",
        "--targets",
        "web1",
        "--logins",
        "root",
        "--require-mfa",
    ]);
    let roles = w.gw.cli_ok(&["policy", "roles"]).stdout_str();
    assert!(roles.contains("context.mfa"), "{roles}");
    let carol = w.new_user("carol", &["prod"]);
    // carol has no factor: she is offered one at login, and a code from it lets her in.
    let (ok, secret) = ssh_enrolling(&carol, w.gw.port, "carol:web1", |secret| {
        vestibule_identity::totp::code_at(secret, now_step()).unwrap()
    });
    assert_eq!(ok.code(), Some(0), "{ok}");
    assert!(ok.stdout_str().contains("enrolled-in"), "{ok}");
    found(&w, "mfa.enroll", "carol");
    // From now on she is asked for the code; a wrong one is refused.
    let refused = ssh_with_code(
        &carol,
        w.gw.port,
        "carol:web1",
        &wrong_code(&secret),
        "true",
    );
    assert_eq!(refused.code(), Some(255), "{refused}");
    // alice's role does not require a factor: her key alone still works.
    w.exec("alice:web1", "true").assert_ok();
}

/// A lapsed login certificate offered first is explained only if nothing else
/// gets the person in: a key of theirs offered next still leads to the code.
#[test]
fn a_lapsed_certificate_does_not_stand_in_for_the_code_of_a_later_key() {
    let w = World::new();
    let carol = Client::with_key("carol", common::KeyType::Ed25519);
    let key = carol.pubkey_path();
    w.gw.cli_with_stdin(
        &[
            "user",
            "add",
            "carol",
            "--public-key",
            key.to_str().unwrap(),
            "--password-stdin",
        ],
        format!("{PASSWORD}\n").as_bytes(),
    )
    .assert_ok();
    w.grant("ops", "carol");
    let home = common::temp_dir();
    login(
        &w,
        home.path(),
        "carol",
        &format!("{PASSWORD}\n"),
        &["--ttl", "1"],
    )
    .assert_ok();
    let lapsed = common::login_key(home.path());
    let secret = enroll(&w, "carol");
    std::thread::sleep(Duration::from_millis(2_500));

    // The lapsed certificate and its key are offered before carol's own key.
    let config = fs::read_to_string(&carol.config).unwrap();
    let own = format!("IdentityFile {}", carol.key.as_ref().unwrap().display());
    let config = config.replace(
        &own,
        &format!(
            "IdentityFile {lapsed}\nCertificateFile {lapsed}-cert.pub\n{own}",
            lapsed = lapsed.display()
        ),
    );
    fs::write(&carol.config, config).unwrap();
    let code = vestibule_identity::totp::code_at(&secret, now_step()).unwrap();
    let ok = ssh_with_code(&carol, w.gw.port, "carol:web1", &code, "echo in");
    assert_eq!(ok.code(), Some(0), "{ok}");
    found(&w, "authentication.failure", "expired at");
    found(&w, "authentication.success", "publickey+totp");
}
