//! Helpers for the identity tests (`gateway_identity.rs`): TOTP codes,
//! `ssh` and `vestibule login` driven through prompts, audit searches and
//! `[identity]` settings.

use std::fs;
use std::process::Command;
use std::time::Duration;

pub use super::https_endpoint;
use super::{Client, Run, World, run, wait_until};

pub const PASSWORD: &str = "correct horse battery staple";
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn add_password_user(w: &World, name: &str) -> Client {
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
pub fn ssh_with_code(client: &Client, port: u16, user: &str, code: &str, command: &str) -> Run {
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

pub fn now_step() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    vestibule_identity::totp::step_of(now)
}

pub fn enroll(w: &World, name: &str) -> String {
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

pub fn search(w: &World, kind: &str) -> Vec<serde_json::Value> {
    let out = w.gw.cli_ok(&["audit", "search", "--type", kind, "--json"]);
    out.stdout_str()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn found(w: &World, kind: &str, needle: &str) -> Vec<serde_json::Value> {
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
pub fn set_identity(w: &World, settings: &[(&str, &str)]) {
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

/// `vestibule login` as `user` with `stdin` (password, then maybe a code).
pub fn login(w: &World, home: &std::path::Path, user: &str, stdin: &str, extra: &[&str]) -> Run {
    let (address, fingerprint) = https_endpoint(w);
    let mut cmd = Command::new(super::vestibule_bin());
    cmd.args(["login", "--proxy", &address, "--user", user])
        .args(["--fingerprint", &fingerprint])
        .args(extra)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK");
    super::run_with_stdin(&mut cmd, stdin.as_bytes().to_vec(), TIMEOUT)
}

/// A TOTP code for `secret` that is none of the codes around now.
pub fn wrong_code(secret: &str) -> String {
    let step = now_step();
    let window: Vec<String> = (step - 2..=step + 2)
        .filter_map(|s| vestibule_identity::totp::code_at(secret, s))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap()
}

/// `ssh` as `user` with the client's key when a second factor is offered for
/// enrolment: the offered secret is handed to `answer`, whose code is typed
/// at the prompt. Returns the run and the secret offered.
pub fn ssh_enrolling(
    client: &Client,
    port: u16,
    user: &str,
    answer: impl FnOnce(&str) -> String,
) -> (Run, String) {
    let dir = super::temp_dir();
    let secret_file = dir.path().join("secret");
    let code_file = dir.path().join("code");
    let script = format!(
        r#"set timeout 20
match_max 200000
spawn ssh -F {config} -o LogLevel=INFO -o BatchMode=no -o PreferredAuthentications=publickey,keyboard-interactive -o NumberOfPasswordPrompts=1 -p {port} {user}@127.0.0.1 -- echo enrolled-in
expect {{
    -re {{secret=([A-Z2-7]+)}} {{ set f [open {{{secret}}} w]; puts $f $expect_out(1,string); close $f }}
    timeout {{ exit 98 }}
    eof {{ exit 99 }}
}}
expect {{
    "Verification code: " {{}}
    timeout {{ exit 97 }}
}}
set waited 0
while {{![file exists {{{code}}}]}} {{ after 50; incr waited; if {{$waited > 600}} {{ exit 96 }} }}
set f [open {{{code}}}]; set answer [string trim [read $f]]; close $f
send "$answer\r"
expect eof
catch wait result
exit [lindex $result 3]
"#,
        config = client.config.display(),
        secret = secret_file.display(),
        code = code_file.display(),
    );
    let session =
        std::thread::spawn(move || run(Command::new("expect").arg("-c").arg(script), TIMEOUT));
    let secret = wait_until(TIMEOUT, || {
        fs::read_to_string(&secret_file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    let Some(secret) = secret else {
        let out = session.join().unwrap();
        panic!("no secret was offered:\n{out}");
    };
    let staged = dir.path().join("code.tmp");
    fs::write(&staged, answer(&secret)).unwrap();
    fs::rename(&staged, &code_file).unwrap();
    (session.join().unwrap(), secret)
}

/// `vestibule login` with piped standard input that answers an enrolment
/// offer: `first` is written at once; when standard output shows the
/// otpauth URI, `answer(secret)` is written.
pub fn login_enrolling(
    w: &World,
    home: &std::path::Path,
    user: &str,
    first: &str,
    answer: impl FnOnce(&str) -> String,
) -> (bool, String, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    let (address, fingerprint) = https_endpoint(w);
    let mut child = super::ChildGuard::spawn_with_stdin(
        Command::new(super::vestibule_bin())
            .args(["login", "--proxy", &address, "--user", user])
            .args(["--fingerprint", &fingerprint])
            .env("HOME", home)
            .env_remove("SSH_AUTH_SOCK"),
        Stdio::piped(),
        Stdio::piped(),
    );
    let mut stdin = child.take_stdin();
    stdin.write_all(first.as_bytes()).unwrap();
    let stdout = child.take_stdout();
    let mut stderr = child.take_stderr();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut answer = Some(answer);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(secret) = line
            .split_once("secret=")
            .and_then(|(_, rest)| rest.split('&').next())
            && let Some(answer) = answer.take()
        {
            stdin
                .write_all(format!("{}\n", answer(secret)).as_bytes())
                .unwrap();
        }
    }
    drop(stdin);
    let status = child.wait_timeout(TIMEOUT);
    let mut errors = String::new();
    let _ = stderr.read_to_string(&mut errors);
    (status.is_some_and(|s| s.success()), seen, errors)
}

/// The first value under `key` anywhere in `value`.
pub fn key_named<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| key_named(v, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| key_named(v, key)),
        _ => None,
    }
}

pub fn issue_token(w: &World, account: &str, ttl: &str) -> String {
    let out = w.gw.cli_ok(&[
        "breakglass",
        "issue",
        "--account",
        account,
        "--ttl",
        ttl,
        "--reason",
        "IdP down",
    ]);
    out.stdout_str()
        .lines()
        .find(|l| l.starts_with("vbg_"))
        .expect("token line")
        .trim()
        .to_owned()
}

pub fn breakglass_login(w: &World, home: &std::path::Path, user: &str, token: &str) -> Run {
    let (address, fingerprint) = https_endpoint(w);
    let mut cmd = Command::new(super::vestibule_bin());
    cmd.args(["login", "--breakglass", "--proxy", &address, "--user", user])
        .args(["--fingerprint", &fingerprint])
        .env("HOME", home)
        .env("VESTIBULE_BREAKGLASS_TOKEN", token)
        .env_remove("SSH_AUTH_SOCK");
    run(&mut cmd, TIMEOUT)
}
