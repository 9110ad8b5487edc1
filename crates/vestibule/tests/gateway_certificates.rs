//! End-to-end: Vestibule's built-in SSH certificate authorities. The gateway
//! logs in to targets with short-lived user certificates, shows people a host
//! certificate, accepts people's own certificates, and rotates its CA keys while
//! it runs. OpenSSH (sshd, ssh, ssh-keygen) is the judge throughout.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    COMMAND_TIMEOUT, Client, DEPLOY_LOGIN, Gateway, KeyType, Run, Setup, SshdTarget, World,
    append_line, ca_export, find_named, key_type_and_blob, keygen, must, run, run_with_stdin,
    tail_of, temp_dir, vestibule_bin, wait_until,
};
use tempfile::TempDir;

/// What `ca export host --known-hosts` lines start with.
const CERT_AUTHORITY: &str = "@cert-authority * ";

// ---------------------------------------------------------------------------
// CA keys on disk, ssh-keygen and certificates
// ---------------------------------------------------------------------------

/// The CA private keys `DATA_DIR/ca/KIND/*.key`, sorted by name.
fn ca_key_files(data_dir: &Path, kind: &str) -> Vec<PathBuf> {
    let dir = data_dir.join("ca").join(kind);
    let mut keys: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("read dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "key"))
        .collect();
    keys.sort();
    keys
}

/// The one CA key of KIND (there is one before any rotation).
fn only_ca_key(data_dir: &Path, kind: &str) -> PathBuf {
    let mut keys = ca_key_files(data_dir, kind);
    assert_eq!(keys.len(), 1, "expected one {kind} CA key, found {keys:?}");
    keys.remove(0)
}

/// `type blob` of the public half of the private key file `key`, as
/// `ssh-keygen -y` derives it.
fn public_of(key: &Path) -> String {
    let out = must(Command::new("ssh-keygen").arg("-y").arg("-f").arg(key));
    key_type_and_blob(&out.stdout_str())
}

/// The `SHA256:...` fingerprint of an OpenSSH public key line, which sshd logs
/// as the CA of each certificate it accepts.
fn fingerprint(public_line: &str) -> String {
    let out = run_with_stdin(
        Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f", "-"]),
        format!("{public_line}\n").into_bytes(),
        COMMAND_TIMEOUT,
    );
    assert!(out.success(), "ssh-keygen -l failed:\n{out}");
    let text = out.stdout_str();
    let field = text.split_whitespace().nth(1);
    field.expect("a fingerprint field").to_owned()
}

/// `type blob` of each line, after an optional `@cert-authority * ` marker.
fn key_set(lines: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = lines
        .iter()
        .map(|l| key_type_and_blob(l.strip_prefix(CERT_AUTHORITY).unwrap_or(l)))
        .collect();
    keys.sort();
    keys
}

/// Have `signer` certify a copy of `client`'s public key named `label`:
/// `ssh-keygen -s SIGNER -I LABEL -n PRINCIPALS -V VALIDITY`. Returns the path of
/// the certificate (`LABEL-cert.pub` in the client's directory).
fn sign(client: &Client, signer: &Path, label: &str, principals: &str, validity: &str) -> PathBuf {
    let public = client.dir().join(format!("{label}.pub"));
    fs::copy(client.pubkey_path(), &public).expect("copy public key");
    must(
        Command::new("ssh-keygen")
            .arg("-q")
            .arg("-s")
            .arg(signer)
            .args(["-I", label, "-n", principals, "-V", validity])
            .arg(&public),
    );
    let cert = client.dir().join(format!("{label}-cert.pub"));
    assert!(cert.is_file(), "ssh-keygen wrote no {}", cert.display());
    cert
}

/// `ssh -p PORT -o CertificateFile=CERT USER@127.0.0.1 -- COMMAND` as `client`
/// (whose key is the certificate's).
fn exec_with_cert(client: &Client, port: u16, cert: &Path, user: &str, command: &str) -> Run {
    let option = format!("CertificateFile={}", cert.display());
    run(
        &mut client.ssh_with(port, user, &["-o", &option], command),
        COMMAND_TIMEOUT,
    )
}

/// A person the gateway knows by name only (`user add NAME`, no key), holding
/// role `ops`, with a key pair of their own to have certified.
fn certificate_person(w: &World, name: &str) -> Client {
    w.gw.cli_ok(&["user", "add", name]);
    w.grant("ops", name);
    Client::with_key(name, KeyType::Ed25519)
}

// ---------------------------------------------------------------------------
// What sshd logged
// ---------------------------------------------------------------------------

/// sshd's lines accepting a certificate the gateway issued for a session of
/// `person` logging in as `login`.
fn gateway_cert_logins(target: &SshdTarget, login: &str, person: &str) -> Vec<String> {
    let accepted = format!("Accepted publickey for {login} ");
    let key_id = format!("ID vestibule:{person}:session:");
    target
        .log()
        .lines()
        .filter(|line| line.contains(&accepted) && line.contains(&key_id))
        .map(str::to_owned)
        .collect()
}

/// Wait (bounded) until sshd has logged `count` such lines; return them all.
fn await_gateway_cert_logins(
    target: &SshdTarget,
    login: &str,
    person: &str,
    count: usize,
) -> Vec<String> {
    wait_until(Duration::from_secs(10), || {
        let lines = gateway_cert_logins(target, login, person);
        (lines.len() >= count).then_some(lines)
    })
    .unwrap_or_else(|| {
        panic!(
            "sshd did not log {count} acceptance(s) for {login} with \
             `ID vestibule:{person}:session:`; log tail:\n{}",
            tail_of(&target.log_path(), 4000)
        )
    })
}

/// The serial sshd logs for an accepted certificate: `(serial N)`.
fn serial_of(line: &str) -> &str {
    line.split_once("(serial ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(serial, _)| serial)
        .unwrap_or_else(|| panic!("no serial in sshd line: {line}"))
}

#[track_caller]
fn assert_signed_by(line: &str, ca_fingerprint: &str, what: &str) {
    assert!(
        line.contains(ca_fingerprint),
        "{what}: expected a certificate signed by CA {ca_fingerprint}, sshd logged:\n{line}"
    );
}

// ---------------------------------------------------------------------------
// A client that trusts the gateway only through `vestibule ssh-config`
// ---------------------------------------------------------------------------

/// `DIR/known_hosts` with the given lines, `DIR/snippet` from
/// `vestibule ssh-config --user alice --host 127.0.0.1 --port GW --known-hosts
/// DIR/known_hosts`, and `DIR/config` that includes the snippet and then gives
/// every host alice's key and batch options. ProxyJump hops read the config
/// file (not `-o`), so everything they need is in it.
struct SnippetClient {
    dir: TempDir,
    snippet: String,
}

impl SnippetClient {
    fn new(w: &World, known_hosts_lines: &[String]) -> Self {
        let dir = temp_dir();
        let d = dir.path();
        let known: String = known_hosts_lines.iter().map(|l| format!("{l}\n")).collect();
        fs::write(d.join("known_hosts"), known).expect("write known_hosts");

        let port = w.gw.port.to_string();
        let known_path = d.join("known_hosts");
        let known_arg = known_path.to_str().expect("utf-8 path");
        let out = w.gw.cli_ok(&[
            "ssh-config",
            "--user",
            "alice",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--known-hosts",
            known_arg,
        ]);
        let snippet = out.stdout_str();
        fs::write(d.join("snippet"), &snippet).expect("write snippet");

        let key = w.alice.key.as_ref().expect("alice has a key");
        let config = format!(
            "Include {snippet}\n\
             \n\
             Host *\n\
             \x20   IdentityFile {key}\n\
             \x20   IdentitiesOnly yes\n\
             \x20   BatchMode yes\n\
             \x20   PreferredAuthentications publickey\n\
             \x20   GlobalKnownHostsFile /dev/null\n\
             \x20   UpdateHostKeys no\n\
             \x20   LogLevel ERROR\n\
             \x20   ConnectTimeout 10\n\
             \x20   ConnectionAttempts 1\n\
             \x20   ControlMaster no\n\
             \x20   ControlPath none\n",
            snippet = d.join("snippet").display(),
            key = key.display(),
        );
        fs::write(d.join("config"), config).expect("write ssh config");
        Self { dir, snippet }
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `ssh -F DIR/config ARGS... -- COMMAND`.
    fn ssh(&self, args: &[&str], command: &str) -> Run {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(self.dir.path().join("config"))
            .args(args)
            .arg("--")
            .arg(command);
        run(&mut cmd, COMMAND_TIMEOUT)
    }
}

/// The ssh invocations that reach web1 through the snippet: target in the user
/// name (`-l` and `user@host`) and ProxyJump.
const SNIPPET_ROUTES: [&[&str]; 3] = [
    &["-l", "alice:web1", "127.0.0.1"],
    &["alice:web1@127.0.0.1"],
    &["root@web1"],
];

/// Refused by OpenSSH's host key check under `StrictHostKeyChecking yes`.
#[track_caller]
fn assert_host_key_refused(out: &Run) {
    out.assert_code(255)
        .assert_stderr_line_with(&["Host key verification failed"]);
    assert!(
        !out.stdout_str().contains("root"),
        "ran despite the failed check:\n{out}"
    );
}

/// One `Host` block of an ssh_config text.
#[derive(Debug)]
struct HostBlock {
    patterns: Vec<String>,
    /// (lower-case keyword, value), in order.
    settings: Vec<(String, String)>,
}

impl HostBlock {
    /// The first value of `keyword` (ssh_config: the first one wins).
    fn get(&self, keyword: &str) -> Option<&str> {
        let keyword = keyword.to_ascii_lowercase();
        self.settings
            .iter()
            .find(|(k, _)| *k == keyword)
            .map(|(_, v)| v.as_str())
    }
}

/// The `Host` blocks of an ssh_config text (`Keyword value` or `Keyword=value`).
fn host_blocks(text: &str) -> Vec<HostBlock> {
    let mut blocks: Vec<HostBlock> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, value) = line
            .split_once(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or((line, ""));
        let value = value
            .trim_start_matches(|c: char| c.is_whitespace() || c == '=')
            .trim()
            .trim_matches('"');
        let keyword = keyword.to_ascii_lowercase();
        if keyword == "host" {
            blocks.push(HostBlock {
                patterns: value.split_whitespace().map(str::to_owned).collect(),
                settings: Vec::new(),
            });
        } else if let Some(block) = blocks.last_mut() {
            block.settings.push((keyword, value.to_owned()));
        }
    }
    blocks
}

/// The block whose `Host` line lists `pattern`.
fn block_for<'a>(blocks: &'a [HostBlock], pattern: &str, snippet: &str) -> &'a HostBlock {
    blocks
        .iter()
        .find(|b| b.patterns.iter().any(|p| p == pattern))
        .unwrap_or_else(|| panic!("no `Host ... {pattern}` block in the snippet:\n{snippet}"))
}

#[track_caller]
fn assert_settings(block: &HostBlock, expected: &[(&str, &str)], snippet: &str) {
    for (keyword, value) in expected {
        assert_eq!(
            block.get(keyword),
            Some(*value),
            "`{keyword}` in the `Host {}` block of the snippet:\n{snippet}",
            block.patterns.join(" ")
        );
    }
}

/// Set `host_names` in the `[ssh]` section of the data dir's vestibule.toml.
fn set_host_names(data_dir: &Path, names: &[&str]) {
    let path = data_dir.join("vestibule.toml");
    let text = fs::read_to_string(&path).expect("read vestibule.toml");
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let setting = format!("host_names = [{}]", quoted.join(", "));
    let mut out = Vec::new();
    let mut in_ssh = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_ssh = trimmed.starts_with("[ssh]");
        }
        if in_ssh && trimmed.starts_with("host_names") {
            continue; // replaced by ours
        }
        out.push(line.to_owned());
        if in_ssh && trimmed.starts_with("[ssh]") {
            out.push(setting.clone());
        }
    }
    assert!(
        out.contains(&setting),
        "no [ssh] section in vestibule.toml:\n{text}"
    );
    fs::write(&path, out.join("\n") + "\n").expect("write vestibule.toml");
}

// ---------------------------------------------------------------------------
// The CAs on disk and `ca export`
// ---------------------------------------------------------------------------

/// A fresh data dir has one 0600 Ed25519 key per CA with its `.pub` beside, and
/// `ca export` prints exactly those public keys.
fn assert_fresh_cas(data_dir: &Path) {
    for kind in ["user", "host"] {
        let key = only_ca_key(data_dir, kind);
        let mode = fs::metadata(&key)
            .expect("stat CA key")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "mode of {}: {mode:o}", key.display());
        let public = public_of(&key);
        assert!(
            public.starts_with("ssh-ed25519 AAAA"),
            "{kind} CA: {public}"
        );
        let beside = [
            key.with_extension("pub"),
            PathBuf::from(format!("{}.pub", key.display())),
        ];
        let pub_file = beside.iter().find(|p| p.is_file());
        let pub_file = pub_file.unwrap_or_else(|| panic!("no .pub beside {}", key.display()));
        let pub_line = fs::read_to_string(pub_file).expect("read CA .pub");
        assert_eq!(
            key_type_and_blob(&pub_line),
            public,
            "{}",
            pub_file.display()
        );

        let exported = ca_export(data_dir, kind, &[]);
        assert_eq!(
            key_set(&exported),
            std::slice::from_ref(&public),
            "ca export {kind}"
        );
        if kind == "host" {
            let known = ca_export(data_dir, kind, &["--known-hosts"]);
            assert_eq!(known.len(), 1, "ca export host --known-hosts: {known:?}");
            assert!(
                known[0].starts_with(&format!("{CERT_AUTHORITY}{public}")),
                "ca export host --known-hosts: {known:?}"
            );
        }
    }
    let user = ca_export(data_dir, "user", &[]);
    assert!(
        user[0].ends_with(" vestibule-user-ca"),
        "ca export user: {user:?}"
    );
}

#[test]
fn init_and_first_serve_create_user_and_host_cas() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    must(
        Command::new(vestibule_bin())
            .arg("init")
            .arg("--data-dir")
            .arg(&data),
    );
    assert_fresh_cas(&data);
    let gw = Gateway::start();
    assert_fresh_cas(&gw.data_dir());
}

#[test]
fn target_list_json_names_each_targets_credential() {
    let w = World::new();
    w.add_static_key_target("legacy1", &["--login", "root"]);
    let targets = w.gw.list_json("target");
    for (name, credential) in [("web1", "certificate"), ("legacy1", "static_key")] {
        let entry = find_named(&targets, name)
            .unwrap_or_else(|| panic!("{name} not in target list --json: {targets}"));
        assert_eq!(
            entry.get("credential").and_then(|v| v.as_str()),
            Some(credential),
            "credential of {name}: {entry}"
        );
        // Both ways in work: the world's target trusts the CA and the key.
        w.exec(&format!("alice:{name}"), "whoami")
            .assert_ok()
            .assert_stdout("root\n");
    }
}

// ---------------------------------------------------------------------------
// The gateway logging in to targets
// ---------------------------------------------------------------------------

#[test]
fn certificate_target_accepts_the_gateway_with_empty_authorized_keys() {
    let w = World::with(Setup {
        authorize_gateway_key: false,
        ..Setup::default()
    });
    w.target.set_authorized_keys(&[]);
    let ca = fingerprint(&w.gw.ca_export("user", &[])[0]);

    w.exec("alice:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    let as_root = await_gateway_cert_logins(&w.target, "root", "alice", 1);
    assert_signed_by(&as_root[0], &ca, "session as root");

    let jump = run(
        &mut w.alice.ssh_jump(w.gw.port, "vtdeploy@web1", "whoami"),
        COMMAND_TIMEOUT,
    );
    jump.assert_ok().assert_stdout(&format!("{DEPLOY_LOGIN}\n"));
    let as_deploy = await_gateway_cert_logins(&w.target, DEPLOY_LOGIN, "alice", 1);
    assert_signed_by(&as_deploy[0], &ca, "ProxyJump session as vtdeploy");

    assert_ne!(
        serial_of(&as_root[0]),
        serial_of(&as_deploy[0]),
        "two certificates with one serial:\n{}\n{}",
        as_root[0],
        as_deploy[0]
    );
}

#[test]
fn certificate_target_that_does_not_trust_the_ca_is_refused_with_message() {
    let w = World::with(Setup {
        trust_user_ca: false,
        authorize_gateway_key: false,
        ..Setup::default()
    });
    w.exec("alice:web1", "whoami")
        .assert_refused_with(&["vestibule:", "web1"])
        .assert_stdout("");
    // Trusting the CA is all it takes, without a restart of either side.
    w.trust_gateway_user_ca();
    w.exec("alice:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

#[test]
fn static_key_target_needs_the_gateway_key_in_authorized_keys() {
    let w = World::with(Setup {
        trust_user_ca: false,
        web1_static_key: true,
        ..Setup::default()
    });
    let trusted_cas = fs::read_to_string(w.target.user_ca_keys()).expect("read CA file");
    assert!(trusted_cas.trim().is_empty(), "{trusted_cas}");

    w.exec("alice:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    // sshd accepted the gateway's own key, not a certificate.
    let gateway_key = fingerprint(&w.gw.gateway_key());
    let accepted = wait_until(Duration::from_secs(10), || {
        w.target
            .log()
            .lines()
            .find(|l| l.contains("Accepted publickey for root ") && l.contains(&gateway_key))
            .map(str::to_owned)
    });
    let accepted = accepted.unwrap_or_else(|| {
        panic!(
            "sshd did not accept the gateway key {gateway_key}:\n{}",
            w.target.log()
        )
    });
    assert!(!accepted.contains("-CERT"), "a certificate: {accepted}");

    w.target
        .set_authorized_keys(&[w.target.admin.pubkey_line()]);
    w.exec("alice:web1", "whoami")
        .assert_refused_with(&["vestibule:", "web1"])
        .assert_stdout("");
}

#[test]
fn target_sshd_refuses_our_ca_certificates_for_another_principal_or_expired() {
    let w = World::new();
    let ca = only_ca_key(&w.gw.data_dir(), "user");
    let someone = Client::with_key("throwaway", KeyType::Ed25519);
    let port = w.target.port;
    for (label, principals, validity) in [
        ("for-someoneelse", "someoneelse", "-1m:+5m"),
        ("expired", "root", "-2h:-1h"),
    ] {
        let cert = sign(&someone, &ca, label, principals, validity);
        exec_with_cert(&someone, port, &cert, "root", "whoami").assert_auth_denied();
    }
    // The positive control: the same CA, the right principal, valid now.
    let cert = sign(&someone, &ca, "valid-root", "root", "-1m:+5m");
    exec_with_cert(&someone, port, &cert, "root", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

// ---------------------------------------------------------------------------
// The gateway's host certificates and `vestibule ssh-config`
// ---------------------------------------------------------------------------

#[test]
fn ssh_config_snippet_with_the_host_ca_verifies_gateway_and_targets() {
    let w = World::new();
    w.add_target("db1", &["--login", "root"]);
    let client = SnippetClient::new(&w, &w.gw.ca_export("host", &["--known-hosts"]));

    let blocks = host_blocks(&client.snippet);
    let known = client.known_hosts();
    let known = known.to_str().expect("utf-8 path");
    let strict = [
        ("UserKnownHostsFile", known),
        ("StrictHostKeyChecking", "yes"),
    ];
    let gateway = block_for(&blocks, "127.0.0.1", &client.snippet);
    let port = w.gw.port.to_string();
    assert_settings(
        gateway,
        &[("Port", &port), ("User", "alice")],
        &client.snippet,
    );
    assert_settings(gateway, &strict, &client.snippet);
    let targets = block_for(&blocks, "web1", &client.snippet);
    assert!(
        targets.patterns.iter().any(|p| p == "db1"),
        "the targets' Host line should list db1 too:\n{}",
        client.snippet
    );
    assert_settings(targets, &[("ProxyJump", "127.0.0.1")], &client.snippet);
    assert_settings(targets, &strict, &client.snippet);

    for route in SNIPPET_ROUTES {
        client
            .ssh(route, "whoami")
            .assert_ok()
            .assert_stdout("root\n");
    }
    client
        .ssh(&["vtdeploy@db1"], "whoami")
        .assert_ok()
        .assert_stdout(&format!("{DEPLOY_LOGIN}\n"));
}

#[test]
fn ssh_config_snippet_without_the_host_ca_fails_strict_checking() {
    let w = World::new();
    let client = SnippetClient::new(&w, &[]);
    for route in SNIPPET_ROUTES {
        assert_host_key_refused(&client.ssh(route, "whoami"));
    }
}

#[test]
fn ssh_config_defaults_to_the_vestibule_known_hosts_file() {
    let gw = Gateway::start();
    let port = gw.port.to_string();
    let out = gw.cli_ok(&[
        "ssh-config",
        "--user",
        "alice",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ]);
    let snippet = out.stdout_str();
    let blocks = host_blocks(&snippet);
    let gateway = block_for(&blocks, "127.0.0.1", &snippet);
    let known = gateway.get("UserKnownHostsFile").unwrap_or_default();
    assert!(
        known.ends_with("/.ssh/vestibule_known_hosts"),
        "UserKnownHostsFile should default to ~/.ssh/vestibule_known_hosts:\n{snippet}"
    );
    assert_settings(gateway, &[("StrictHostKeyChecking", "yes")], &snippet);
}

/// The machine's hostname, as the gateway's gethostname() sees it.
fn hostname() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").expect("read hostname");
    name.trim().to_owned()
}

/// `ssh -o HostKeyAlias=ALIAS` makes OpenSSH check the gateway's certificate
/// for the principal ALIAS.
fn via_gateway_as(client: &SnippetClient, alias: &str) -> Run {
    let option = format!("HostKeyAlias={alias}");
    client.ssh(&["-o", &option, "-l", "alice:web1", "127.0.0.1"], "whoami")
}

#[test]
fn gateway_host_certificate_names_the_machine() {
    let w = World::new();
    let client = SnippetClient::new(&w, &w.gw.ca_export("host", &["--known-hosts"]));
    for alias in [hostname().as_str(), "localhost", "127.0.0.1", "::1"] {
        via_gateway_as(&client, alias)
            .assert_ok()
            .assert_stdout("root\n");
    }
    assert_host_key_refused(&via_gateway_as(&client, "not-a-principal.test"));
}

#[test]
fn gateway_host_certificate_names_the_configured_host_names() {
    let mut w = World::new();
    set_host_names(&w.gw.data_dir(), &["bastion.test", "jump.example.org"]);
    w.gw.restart();
    let client = SnippetClient::new(&w, &w.gw.ca_export("host", &["--known-hosts"]));
    for alias in ["bastion.test", "jump.example.org", "127.0.0.1"] {
        via_gateway_as(&client, alias)
            .assert_ok()
            .assert_stdout("root\n");
    }
    assert_host_key_refused(&via_gateway_as(&client, "not-a-principal.test"));
}

#[test]
fn proxyjump_host_certificate_names_the_target_and_its_address() {
    let w = World::new();
    let client = SnippetClient::new(&w, &w.gw.ca_export("host", &["--known-hosts"]));
    // `-o` reaches the outer ssh only: the hop still checks the gateway itself.
    let to_web1_as = |alias: &str| {
        let option = format!("HostKeyAlias={alias}");
        client.ssh(&["-o", &option, "root@web1"], "whoami")
    };
    for alias in ["web1", "127.0.0.1"] {
        to_web1_as(alias).assert_ok().assert_stdout("root\n");
    }
    assert_host_key_refused(&to_web1_as("web2"));
}

// ---------------------------------------------------------------------------
// People logging in with certificates
// ---------------------------------------------------------------------------

#[test]
fn person_certificate_from_the_user_ca_logs_in() {
    let w = World::new();
    let ca = only_ca_key(&w.gw.data_dir(), "user");
    let carol = certificate_person(&w, "carol");
    // Her key alone is nobody's.
    carol
        .exec(w.gw.port, "carol:web1", "true")
        .assert_auth_denied();

    let cert = sign(&carol, &ca, "carol-test", "carol", "-1m:+10m");
    exec_with_cert(&carol, w.gw.port, &cert, "carol:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    let several = sign(&carol, &ca, "carol-and-more", "ops-team,carol", "-1m:+10m");
    exec_with_cert(&carol, w.gw.port, &several, "carol:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");

    // ProxyJump hops read the config file, not `-o`.
    append_line(
        &carol.config,
        &format!("CertificateFile {}", cert.display()),
    );
    run(
        &mut carol.ssh_jump(w.gw.port, "vtdeploy@web1", "whoami"),
        COMMAND_TIMEOUT,
    )
    .assert_ok()
    .assert_stdout(&format!("{DEPLOY_LOGIN}\n"));
}

#[test]
fn person_certificates_expired_for_others_or_not_from_the_user_ca_are_refused() {
    let w = World::new();
    let data = w.gw.data_dir();
    let ca = only_ca_key(&data, "user");
    let host_ca = only_ca_key(&data, "host");
    let dir = temp_dir();
    let rogue = dir.path().join("rogue_ca");
    keygen(&rogue, KeyType::Ed25519, "not-a-ca");
    let carol = certificate_person(&w, "carol");

    for (label, signer, principals, validity, user) in [
        ("expired", &ca, "carol", "-2h:-1h", "carol:web1"),
        ("not-yet-valid", &ca, "carol", "+1h:+2h", "carol:web1"),
        ("for-bob", &ca, "bob", "-1m:+10m", "carol:web1"),
        ("rogue-signer", &rogue, "carol", "-1m:+10m", "carol:web1"),
        (
            "host-ca-signer",
            &host_ca,
            "carol",
            "-1m:+10m",
            "carol:web1",
        ),
        ("unknown-user", &ca, "mallory", "-1m:+10m", "mallory:web1"),
    ] {
        let cert = sign(&carol, signer, label, principals, validity);
        exec_with_cert(&carol, w.gw.port, &cert, user, "whoami")
            .assert_auth_denied()
            .assert_stdout("");
    }
    // The positive control in the same world.
    let cert = sign(&carol, &ca, "valid", "carol", "-1m:+10m");
    exec_with_cert(&carol, w.gw.port, &cert, "carol:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

/// A host certificate (`ssh-keygen -h`) is not a person's, whoever signed it.
#[test]
fn person_login_with_a_host_certificate_is_refused() {
    let w = World::new();
    let ca = only_ca_key(&w.gw.data_dir(), "user");
    let carol = certificate_person(&w, "carol");
    let public = carol.dir().join("as-host.pub");
    fs::copy(carol.pubkey_path(), &public).expect("copy public key");
    must(
        Command::new("ssh-keygen")
            .args(["-q", "-h", "-s"])
            .arg(&ca)
            .args(["-I", "as-host", "-n", "carol", "-V", "-1m:+10m"])
            .arg(&public),
    );
    let cert = carol.dir().join("as-host-cert.pub");
    exec_with_cert(&carol, w.gw.port, &cert, "carol:web1", "whoami")
        .assert_auth_denied()
        .assert_stdout("");
}

// ---------------------------------------------------------------------------
// Rotation, while the gateway runs
// ---------------------------------------------------------------------------

#[test]
fn user_ca_rotation_overlaps_then_finishes_while_the_gateway_runs() {
    let w = World::new();
    let data = w.gw.data_dir();
    let old_key = only_ca_key(&data, "user");
    let old_public = public_of(&old_key);
    let old_ca = fingerprint(&old_public);
    let carol = certificate_person(&w, "carol");
    let login = |cert: &Path| exec_with_cert(&carol, w.gw.port, cert, "carol:web1", "whoami");

    let old_cert = sign(&carol, &old_key, "carol-old-ca", "carol", "-1m:+10m");
    login(&old_cert).assert_ok().assert_stdout("root\n");
    let sessions = await_gateway_cert_logins(&w.target, "root", "carol", 1);
    assert_signed_by(&sessions[0], &old_ca, "session before the rotation");

    // The overlap: both keys trusted, the new one signs.
    w.gw.cli_ok(&["ca", "rotate", "user"]);
    let both = w.trust_gateway_user_ca();
    let keys = ca_key_files(&data, "user");
    assert_eq!(keys.len(), 2, "CA keys during the rotation: {keys:?}");
    let new_key = keys.into_iter().find(|k| *k != old_key);
    let new_key = new_key.expect("a new user CA key file");
    let new_public = public_of(&new_key);
    let mut expected = vec![old_public.clone(), new_public.clone()];
    expected.sort();
    assert_eq!(
        key_set(&both),
        expected,
        "ca export user during the rotation"
    );
    let new_ca = fingerprint(&new_public);

    login(&old_cert).assert_ok().assert_stdout("root\n");
    let sessions = await_gateway_cert_logins(&w.target, "root", "carol", 2);
    assert_signed_by(&sessions[1], &new_ca, "session during the rotation");

    // The end: only the new key is trusted.
    w.gw.cli_ok(&["ca", "rotate", "user", "--finish"]);
    let last = w.trust_gateway_user_ca();
    assert_eq!(
        key_set(&last),
        [new_public],
        "ca export user after --finish"
    );
    login(&old_cert).assert_auth_denied().assert_stdout("");
    let new_cert = sign(&carol, &new_key, "carol-new-ca", "carol", "-1m:+10m");
    login(&new_cert).assert_ok().assert_stdout("root\n");
    let sessions = await_gateway_cert_logins(&w.target, "root", "carol", 3);
    assert_signed_by(&sessions[2], &new_ca, "session after the rotation");
}

#[test]
fn host_ca_rotation_adds_a_known_hosts_line() {
    let w = World::new();
    let before = w.gw.ca_export("host", &["--known-hosts"]);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].starts_with("@cert-authority * ssh-ed25519 "),
        "{before:?}"
    );

    w.gw.cli_ok(&["ca", "rotate", "host"]);
    let during = w.gw.ca_export("host", &["--known-hosts"]);
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(
        during
            .iter()
            .all(|l| l.starts_with("@cert-authority * ssh-ed25519 ")),
        "{during:?}"
    );
    assert!(
        key_set(&during).contains(&key_set(&before)[0]),
        "the old host CA should still be trusted: {during:?}"
    );
    assert_eq!(
        key_set(&during),
        key_set(&w.gw.ca_export("host", &[])),
        "`ca export host` and its --known-hosts form disagree"
    );

    let client = SnippetClient::new(&w, &during);
    for route in SNIPPET_ROUTES {
        client
            .ssh(route, "whoami")
            .assert_ok()
            .assert_stdout("root\n");
    }
}

/// After `ca rotate host --finish` people trust only the new host CA; the
/// running gateway's certificates must verify with it alone.
#[test]
fn host_ca_rotation_finish_leaves_the_running_gateway_verifiable() {
    let w = World::new();
    let before = w.gw.ca_export("host", &["--known-hosts"]);
    w.gw.cli_ok(&["ca", "rotate", "host"]);
    w.gw.cli_ok(&["ca", "rotate", "host", "--finish"]);
    let after = w.gw.ca_export("host", &["--known-hosts"]);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(key_set(&after), key_set(&before), "the old host CA is left");

    let client = SnippetClient::new(&w, &after);
    for route in SNIPPET_ROUTES {
        client
            .ssh(route, "whoami")
            .assert_ok()
            .assert_stdout("root\n");
    }
}
