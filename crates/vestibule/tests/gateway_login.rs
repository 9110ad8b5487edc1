//! End-to-end: `vestibule login` over the HTTPS API, then plain ssh with the
//! certificate it wrote; revocation; targets verified by their own host CA.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    COMMAND_TIMEOUT, ChildGuard, KeyType, Run, World, https_endpoint, keygen, must, run,
    run_with_stdin, temp_dir, wait_until,
};

const PASSWORD: &str = "correct horse battery staple";

/// Where a login writes its files, and the HOME it runs with.
struct LoginHome {
    home: tempfile::TempDir,
}

impl LoginHome {
    fn new() -> Self {
        Self { home: temp_dir() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::vestibule_bin());
        cmd.arg("login")
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// The private key file the login wrote (its certificate is beside it).
    fn key(&self) -> PathBuf {
        common::login_key(self.home.path())
    }
}

fn login_with_password(
    w: &World,
    home: &LoginHome,
    user: &str,
    password: &str,
    extra: &[&str],
) -> Run {
    let (address, fingerprint) = https_endpoint(w);
    let mut args = vec![
        "--proxy",
        &address,
        "--user",
        user,
        "--fingerprint",
        &fingerprint,
    ];
    args.extend_from_slice(extra);
    run_with_stdin(
        &mut home.command(&args),
        format!("{password}\n").into_bytes(),
        COMMAND_TIMEOUT,
    )
}

fn world_with_password_user(name: &str) -> World {
    let w = World::new();
    w.gw.cli_with_stdin(
        &["user", "add", name, "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    )
    .assert_ok();
    w.grant("ops", name);
    w
}

fn serial_of(login: &Run) -> String {
    let out = login.stdout_str();
    let (_, rest) = out.split_once("serial ").expect("login prints the serial");
    rest.chars().take_while(char::is_ascii_digit).collect()
}

#[test]
fn password_login_gives_a_certificate_that_ssh_uses() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    let login = login_with_password(&w, &home, "carol", PASSWORD, &["--ttl", "1h"]);
    login.assert_ok();
    let key = home.key();
    let cert = fs::read_to_string(format!("{}-cert.pub", key.display())).expect("certificate file");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    let described = must(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(format!("{}-cert.pub", key.display())),
    );
    let text = described.stdout_str();
    assert!(
        text.contains("carol") && text.contains(&serial_of(&login)),
        "{text}"
    );
    common::ssh_with_key(w.gw.port, &key, "carol:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

#[test]
fn login_puts_the_certificate_into_a_running_agent() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    let socket = home.home.path().join("agent.sock");
    let mut agent_cmd = Command::new("ssh-agent");
    agent_cmd.arg("-D").arg("-a").arg(&socket);
    let _agent = ChildGuard::spawn(&mut agent_cmd, Stdio::null(), Stdio::null());
    wait_until(COMMAND_TIMEOUT, || socket.exists().then_some(())).expect("ssh-agent socket");

    let (address, fingerprint) = https_endpoint(&w);
    let args = [
        "--proxy",
        &address,
        "--user",
        "carol",
        "--fingerprint",
        &fingerprint,
    ];
    let mut login = home.command(&args);
    login.env("SSH_AUTH_SOCK", &socket);
    let logged_in = run_with_stdin(
        &mut login,
        format!("{PASSWORD}\n").into_bytes(),
        COMMAND_TIMEOUT,
    );
    logged_in.assert_ok();
    assert!(logged_in.stdout_str().contains("ssh-agent"), "{logged_in}");
    let listed = run(
        Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &socket),
        COMMAND_TIMEOUT,
    );
    listed.assert_ok();
    assert!(listed.stdout_str().contains("ED25519-CERT"), "{listed}");
}

#[test]
fn wrong_password_and_excessive_ttl_are_refused() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    login_with_password(&w, &home, "carol", "not the password", &[])
        .assert_code(1)
        .assert_stderr_line_with(&["invalid credentials"]);
    login_with_password(&w, &home, "nobody", PASSWORD, &[])
        .assert_code(1)
        .assert_stderr_line_with(&["invalid credentials"]);
    login_with_password(&w, &home, "carol", PASSWORD, &["--ttl", "30d"])
        .assert_code(1)
        .assert_stderr_line_with(&["ttl"]);
}

#[test]
fn a_known_key_proves_who_you_are() {
    let w = World::new();
    let home = LoginHome::new();
    let (address, fingerprint) = https_endpoint(&w);
    let identity = w.alice.key.clone().expect("alice has a key");
    let identity = identity.to_str().expect("utf-8 path");
    let args = [
        "--proxy",
        &address,
        "--user",
        "alice",
        "--fingerprint",
        &fingerprint,
        "--identity",
        identity,
    ];
    run(&mut home.command(&args), COMMAND_TIMEOUT).assert_ok();
    common::ssh_with_key(w.gw.port, &home.key(), "alice:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");

    // A key the gateway does not know proves nothing.
    let stranger = temp_dir();
    let stranger_key = stranger.path().join("id");
    keygen(&stranger_key, KeyType::Ed25519, "stranger");
    let stranger_key = stranger_key.to_str().expect("utf-8 path");
    let args = [
        "--proxy",
        &address,
        "--user",
        "alice",
        "--identity",
        stranger_key,
    ];
    run(&mut home.command(&args), COMMAND_TIMEOUT)
        .assert_code(1)
        .assert_stderr_line_with(&["invalid credentials"]);
}

#[test]
fn the_tls_fingerprint_is_pinned() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    let (address, _) = https_endpoint(&w);
    let bogus = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let args = [
        "--proxy",
        &address,
        "--user",
        "carol",
        "--fingerprint",
        bogus,
    ];
    run_with_stdin(
        &mut home.command(&args),
        format!("{PASSWORD}\n").into_bytes(),
        COMMAND_TIMEOUT,
    )
    .assert_code(1)
    .assert_stderr_line_with(&["not the pinned"]);
    // Without a fingerprint and none remembered, nothing is sent.
    run_with_stdin(
        &mut home.command(&["--proxy", &address, "--user", "carol"]),
        format!("{PASSWORD}\n").into_bytes(),
        COMMAND_TIMEOUT,
    )
    .assert_code(1)
    .assert_stderr_line_with(&["no TLS fingerprint known"]);
}

#[test]
fn a_revoked_certificate_is_refused() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    let login = login_with_password(&w, &home, "carol", PASSWORD, &[]);
    login.assert_ok();
    let key = home.key();
    common::ssh_with_key(w.gw.port, &key, "carol:web1", "true").assert_ok();
    w.gw.cli_ok(&[
        "ca",
        "revoke",
        &serial_of(&login),
        "--reason",
        "laptop stolen",
    ]);
    common::ssh_with_key(w.gw.port, &key, "carol:web1", "true").assert_auth_denied();
    assert!(
        w.gw.log().contains("is revoked: laptop stolen"),
        "{}",
        w.gw.log()
    );
}

/// russh refuses an expired certificate before the gateway sees it; the key
/// OpenSSH then offers alone is matched with the certificate the login gave it,
/// and the person is told why (keyboard-interactive carries the message).
#[test]
fn an_expired_login_certificate_is_refused_with_its_message() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    let login = login_with_password(&w, &home, "carol", PASSWORD, &["--ttl", "1"]);
    login.assert_ok();
    let serial = serial_of(&login);
    let key = home.key();
    let certificate = format!("{}-cert.pub", key.display());
    // Past the end of its window (ssh-keygen -L prints it in local time).
    std::thread::sleep(std::time::Duration::from_millis(2_500));

    let known = key.with_extension("known_hosts");
    let mut ssh = Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"])
        .args([
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "LogLevel=INFO",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-o")
        .arg(format!("CertificateFile={certificate}"))
        .arg("-i")
        .arg(&key)
        .args(["-p", &w.gw.port.to_string(), "carol:web1@127.0.0.1", "true"])
        .stdin(Stdio::null());
    let refused = run(&mut ssh, COMMAND_TIMEOUT);
    refused.assert_auth_denied().assert_stderr_line_with(&[
        "vestibule: your certificate",
        &format!("serial {serial}"),
        "expired",
        "run `vestibule login`",
    ]);
    common::identity::found(&w, "authentication.failure", &format!("serial {serial}"));

    // A new login with the same command works again.
    login_with_password(&w, &home, "carol", PASSWORD, &[]).assert_ok();
    run(&mut ssh, COMMAND_TIMEOUT).assert_ok();
}

/// Register `name` at this world's sshd, verified by the host CA key in `ca_pub`.
fn add_host_ca_target(w: &World, name: &str, ca_pub: &Path) {
    let port = w.target.port.to_string();
    let ca = ca_pub.to_str().expect("utf-8 path");
    w.gw.cli_ok(&[
        "target",
        "add",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--login",
        "root",
        "--host-ca",
        ca,
    ]);
}

#[test]
fn targets_can_be_verified_by_their_host_ca() {
    let keys = temp_dir();
    let site_ca = keys.path().join("site_ca");
    keygen(&site_ca, KeyType::Ed25519, "site-ca");
    // The sshd must know the extra key and certificate before it starts.
    let host_key = keys.path().join("site_ecdsa_key");
    keygen(&host_key, KeyType::Ecdsa, "site-host");
    must(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-h",
                "-I",
                "site-web",
                "-n",
                "127.0.0.1",
                "-V",
                "-5m:+1h",
                "-s",
            ])
            .arg(&site_ca)
            .arg(host_key.with_extension("pub")),
    );
    let host_key_line = format!("HostKey {}", host_key.display());
    let cert_line = format!("HostCertificate {}-cert.pub", host_key.display());
    let mut w = World::with_sshd_config(&[&host_key_line, &cert_line]);

    add_host_ca_target(&w, "site1", &site_ca.with_extension("pub"));
    w.exec("alice:site1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");

    let other_ca = keys.path().join("other_ca");
    keygen(&other_ca, KeyType::Ed25519, "other-ca");
    add_host_ca_target(&w, "site2", &other_ca.with_extension("pub"));
    w.exec("alice:site2", "whoami").assert_refused_with(&[
        "vestibule:",
        "host certificate",
        "site2",
    ]);

    // The gateway-wide list: refused while none is configured, then trusted
    // as the list says, re-read at each connection.
    let port = w.target.port.to_string();
    w.gw.cli_ok(&[
        "target",
        "add",
        "site3",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--login",
        "root",
        "--global-host-ca",
    ]);
    w.exec("alice:site3", "true")
        .assert_refused_with(&["site3", "none is configured"]);
    let list = w.gw.data_dir().join("target_host_cas.pub");
    fs::write(
        &list,
        fs::read_to_string(other_ca.with_extension("pub")).unwrap(),
    )
    .unwrap();
    let config = w.gw.data_dir().join("vestibule.toml");
    let text = fs::read_to_string(&config).unwrap().replace(
        "# target_host_cas = \"target_host_cas.pub\"",
        "target_host_cas = \"target_host_cas.pub\"",
    );
    fs::write(&config, text).unwrap();
    w.gw.restart();
    w.exec("alice:site3", "true")
        .assert_refused_with(&["host certificate", "site3"]);
    let site = fs::read_to_string(site_ca.with_extension("pub")).unwrap();
    fs::write(&list, format!("# site CA\n@cert-authority * {site}")).unwrap();
    w.exec("alice:site3", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

#[test]
fn a_locked_user_gets_no_certificate_and_their_certificate_opens_no_session() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    login_with_password(&w, &home, "carol", PASSWORD, &[]).assert_ok();
    let key = home.key();
    w.gw.cli_ok(&[
        "lock",
        "add",
        "--user",
        "carol",
        "--reason",
        "left the company",
    ]);
    let refused = login_with_password(&w, &home, "carol", PASSWORD, &[]);
    refused.assert_failed();
    assert!(
        refused
            .stderr_str()
            .contains("user carol is locked: left the company"),
        "{refused}"
    );
    common::ssh_with_key(w.gw.port, &key, "carol:web1", "true")
        .assert_refused_with(&["user carol is locked: left the company"]);
}

#[test]
fn https_logins_are_audited_with_the_source_address() {
    let w = world_with_password_user("carol");
    let home = LoginHome::new();
    login_with_password(&w, &home, "carol", "wrong", &[]).assert_failed();
    login_with_password(&w, &home, "carol", PASSWORD, &[]).assert_ok();
    let events = |kind: &str| {
        wait_until(COMMAND_TIMEOUT, || {
            let out = w.gw.cli_ok(&[
                "audit", "search", "--user", "carol", "--type", kind, "--json",
            ]);
            let text = out.stdout_str();
            (!text.trim().is_empty()).then_some(text)
        })
        .unwrap_or_else(|| panic!("no {kind} event for carol"))
    };
    let failure = events("authentication.failure");
    assert!(
        failure.contains("invalid credentials") && failure.contains("\"ip\":\"127.0.0.1\""),
        "{failure}"
    );
    let success = events("authentication.success");
    assert!(success.contains("\"via\":\"https\""), "{success}");
    let issued = events("certificate.issue");
    assert!(issued.contains("\"serial\""), "{issued}");
}
