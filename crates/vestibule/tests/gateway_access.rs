//! End-to-end: who may connect (authentication), where to (authorization), and
//! the admin CLI changing both while the gateway runs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    COMMAND_TIMEOUT, Client, KeyType, World, admin_command, find_named, free_port,
    key_type_and_blob, keygen, run, temp_dir,
};

const PASSWORD: &str = "correct horse battery staple";

/// Add `bob` with a password (from stdin) and role `ops`.
fn add_password_user(w: &World) -> Client {
    let out = w.gw.cli_with_stdin(
        &["user", "add", "bob", "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(out.success(), "user add --password-stdin failed:\n{out}");
    w.grant("ops", "bob");
    Client::with_password("bob")
}

// ---- authentication ------------------------------------------------------

#[test]
fn unknown_user_is_denied_at_authentication() {
    let w = World::new();
    let mallory = Client::with_key("mallory", KeyType::Ed25519);
    w.exec_as(&mallory, "mallory:web1", "true")
        .assert_auth_denied();
    w.exec_as(&mallory, "mallory", "true").assert_auth_denied();
}

#[test]
fn wrong_key_is_denied_at_authentication() {
    let w = World::new();
    let impostor = Client::with_key("alice", KeyType::Ed25519);
    w.exec_as(&impostor, "alice:web1", "true")
        .assert_auth_denied();
}

#[test]
fn password_login_works_and_wrong_password_is_denied() {
    let w = World::new();
    let bob = add_password_user(&w);
    common::sshpass_exec(&bob, w.gw.port, "bob:web1", PASSWORD, "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    common::sshpass_exec(&bob, w.gw.port, "bob:web1", "not the password", "whoami")
        .assert_auth_denied();
}

#[test]
fn password_login_is_denied_for_a_key_only_user() {
    let w = World::new();
    let alice_pw = Client::with_password("alice");
    common::sshpass_exec(&alice_pw, w.gw.port, "alice:web1", PASSWORD, "true").assert_auth_denied();
}

#[test]
fn user_with_two_keys_may_use_either() {
    let w = World::new();
    let laptop = Client::with_key("hana", KeyType::Ed25519);
    let desktop = Client::with_key("hana", KeyType::Ecdsa);
    let (k1, k2) = (laptop.pubkey_path(), desktop.pubkey_path());
    w.gw.cli_ok(&[
        "user",
        "add",
        "hana",
        "--public-key",
        k1.to_str().expect("utf-8 path"),
        "--public-key",
        k2.to_str().expect("utf-8 path"),
    ]);
    w.grant("ops", "hana");
    for client in [&laptop, &desktop] {
        w.exec_as(client, "hana:web1", "whoami")
            .assert_ok()
            .assert_stdout("root\n");
    }
}

#[test]
fn ecdsa_key_authenticates() {
    let w = World::new();
    let carol = Client::with_key("carol", KeyType::Ecdsa);
    w.add_user(&carol);
    w.grant("ops", "carol");
    w.exec_as(&carol, "carol:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

#[test]
fn rsa_key_authenticates_with_sha2_signatures() {
    let w = World::new();
    let dave = Client::with_key("dave", KeyType::Rsa);
    w.add_user(&dave);
    w.grant("ops", "dave");
    for algorithm in ["rsa-sha2-512", "rsa-sha2-256"] {
        let option = format!("PubkeyAcceptedAlgorithms={algorithm}");
        let out = run(
            &mut dave.ssh_with(w.gw.port, "dave:web1", &["-o", &option], "whoami"),
            COMMAND_TIMEOUT,
        );
        out.assert_ok().assert_stdout("root\n");
    }
}

// ---- authorization -------------------------------------------------------

#[test]
fn login_not_granted_by_role_is_refused_with_message() {
    let w = World::new();
    w.add_role("narrow", "web1", "vtdeploy", false);
    let erin = w.new_user("erin", &["narrow"]);
    for user in ["erin:web1", "erin#root@web1"] {
        w.exec_as(&erin, user, "whoami")
            .assert_refused_with(&["vestibule: erin may not log in to web1 as root"])
            .assert_stdout("");
    }
    w.exec_as(&erin, "erin#vtdeploy@web1", "whoami")
        .assert_ok()
        .assert_stdout("vtdeploy\n");
}

#[test]
fn target_outside_the_selector_is_refused_with_message() {
    let w = World::new();
    w.add_target("db1", &["--login", "root"]);
    w.add_role("narrow", "web1", "root", false);
    let erin = w.new_user("erin", &["narrow"]);
    w.exec_as(&erin, "erin:db1", "whoami")
        .assert_refused_with(&["vestibule: erin may not", "db1"])
        .assert_stdout("");
    w.exec_as(&erin, "erin:web1", "whoami").assert_ok();
}

#[test]
fn user_without_roles_may_not_use_any_target() {
    let w = World::new();
    let nobody = w.new_user("nobody", &[]);
    w.exec_as(&nobody, "nobody:web1", "whoami")
        .assert_refused_with(&["vestibule: nobody may not", "web1"])
        .assert_stdout("");
}

#[test]
fn unknown_target_is_refused_with_message() {
    let w = World::new();
    w.exec("alice:web9", "true")
        .assert_refused_with(&["vestibule: no target named web9"]);
}

#[test]
fn label_selector_grants_matching_targets_only() {
    let w = World::new();
    w.add_target("stg1", &["--login", "root", "--label", "env=staging"]);
    w.add_target("prd1", &["--login", "root", "--label", "env=prod"]);
    w.add_role("staging", "env=staging", "root", false);
    let frank = w.new_user("frank", &["staging"]);
    w.exec_as(&frank, "frank:stg1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    w.exec_as(&frank, "frank:prd1", "whoami")
        .assert_refused_with(&["vestibule: frank may not", "prd1"]);
    w.exec_as(&frank, "frank:web1", "whoami")
        .assert_refused_with(&["vestibule: frank may not", "web1"]);
}

// ---- live changes --------------------------------------------------------

#[test]
fn role_revoke_and_grant_apply_without_restart() {
    let w = World::new();
    w.exec("alice:web1", "true").assert_ok();
    w.gw.cli_ok(&["role", "revoke", "ops", "alice"]);
    w.exec("alice:web1", "true")
        .assert_refused_with(&["vestibule: alice may not", "web1"]);
    w.grant("ops", "alice");
    w.exec("alice:web1", "true").assert_ok();
}

#[test]
fn user_remove_applies_without_restart() {
    let w = World::new();
    w.exec("alice:web1", "true").assert_ok();
    w.gw.cli_ok(&["user", "remove", "alice"]);
    w.exec("alice:web1", "true").assert_auth_denied();
}

#[test]
fn target_add_and_remove_apply_without_restart() {
    let w = World::new();
    w.exec("alice:db1", "true")
        .assert_refused_with(&["vestibule: no target named db1"]);
    w.add_target("db1", &["--login", "root"]);
    w.exec("alice:db1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    w.gw.cli_ok(&["target", "remove", "db1"]);
    w.exec("alice:db1", "true")
        .assert_refused_with(&["vestibule: no target named db1"]);
}

// ---- target host keys and reachability ----------------------------------

#[test]
fn host_key_mismatch_is_refused() {
    let w = World::new();
    let dir = temp_dir();
    let other = dir.path().join("other_host_key");
    keygen(&other, KeyType::Ed25519, "not-the-target");
    let wrong = std::fs::read_to_string(other.with_extension("pub")).expect("read key");
    w.add_target("web2", &["--login", "root", "--host-key", wrong.trim()]);
    w.exec("alice:web2", "echo should-not-run")
        .assert_refused_with(&["vestibule:", "host key", "web2"])
        .assert_stdout("");
}

#[test]
fn trust_on_first_use_records_the_key() {
    let w = World::new();
    w.add_target("tofu1", &["--login", "root", "--trust-on-first-use"]);
    w.exec("alice:tofu1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
    let targets = w.gw.list_json("target");
    let entry = find_named(&targets, "tofu1")
        .unwrap_or_else(|| panic!("tofu1 not in target list --json: {targets}"));
    let host_key = key_type_and_blob(&w.target.host_key_line());
    let blob = host_key.split_whitespace().nth(1).expect("key blob");
    let recorded = entry.to_string();
    assert!(
        recorded.contains("ssh-ed25519") && recorded.contains(blob),
        "target list --json should record tofu1's key {host_key}: {entry}"
    );
    // The recorded key is now pinned and still matches.
    w.exec("alice:tofu1", "true").assert_ok();
}

#[test]
fn unreachable_target_is_reported_promptly() {
    let w = World::new();
    // Nothing listens on 127.0.0.2 (every fixture binds 127.0.0.1 only), so
    // this port stays closed even if another test takes it on 127.0.0.1.
    let closed = free_port().to_string();
    w.add_target(
        "dead1",
        &["--login", "root", "--host", "127.0.0.2", "--port", &closed],
    );
    let out = w.exec("alice:dead1", "true");
    out.assert_refused_with(&["vestibule:", "unreachable", "dead1"]);
    assert!(
        out.elapsed < Duration::from_secs(20),
        "took too long to report:\n{out}"
    );
}

// ---- restarts --------------------------------------------------------------

/// The gateway's host key as `ssh-keyscan` sees it on `port`.
fn scanned_host_key(port: u16) -> String {
    let mut scan = Command::new("ssh-keyscan");
    scan.args([
        "-T",
        "10",
        "-t",
        "ed25519",
        "-p",
        &port.to_string(),
        "127.0.0.1",
    ]);
    let out = run(&mut scan, COMMAND_TIMEOUT);
    let line = out.stdout_str();
    let key = line
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        key.starts_with("ssh-ed25519 "),
        "no ed25519 host key:\n{out}"
    );
    key
}

#[test]
fn restart_keeps_host_key_people_targets_and_roles() {
    let mut w = World::new();
    let key_before = scanned_host_key(w.gw.port);
    // Stops with SIGTERM (bounded wait), then serves the same data dir again.
    w.gw.restart();
    assert_eq!(scanned_host_key(w.gw.port), key_before, "host key changed");
    w.exec("alice:web1", "whoami")
        .assert_ok()
        .assert_stdout("root\n");
}

// ---- the admin CLI -------------------------------------------------------

#[test]
fn init_creates_a_data_dir_and_refuses_to_reinitialise() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let data_str = data.to_str().expect("utf-8 path");
    let mut init = Command::new(common::vestibule_bin());
    init.args(["init", "--data-dir", data_str]);
    let first = run(&mut init, COMMAND_TIMEOUT);
    assert!(first.success(), "first init failed:\n{first}");
    assert!(data.join("vestibule.toml").is_file(), "no vestibule.toml");
    let config_before = std::fs::read(data.join("vestibule.toml")).expect("read config");

    let second = run(&mut init, COMMAND_TIMEOUT);
    second.assert_failed();
    assert!(
        !second.stderr.is_empty() || !second.stdout.is_empty(),
        "refusal should say why:\n{second}"
    );
    let config_after = std::fs::read(data.join("vestibule.toml")).expect("read config");
    assert_eq!(
        config_before, config_after,
        "second init changed the config"
    );

    // The initialised dir is usable by the admin CLI.
    let key = run(&mut admin_command(&data, &["gateway-key"]), COMMAND_TIMEOUT);
    key.assert_ok();
    assert!(key.stdout_str().starts_with("ssh-ed25519 AAAA"), "{key}");
}

#[test]
fn list_json_outputs_parse_and_name_the_entries() {
    let w = World::new();
    for (kind, name) in [("user", "alice"), ("target", "web1"), ("role", "ops")] {
        let json = w.gw.list_json(kind);
        assert!(
            find_named(&json, name).is_some(),
            "{kind} list --json does not mention {name}: {json}"
        );
    }
    w.gw.cli_ok(&["user", "remove", "alice"]);
    let users = w.gw.list_json("user");
    assert!(
        find_named(&users, "alice").is_none(),
        "alice still listed: {users}"
    );
}

#[test]
fn plain_lists_mention_the_entries() {
    let w = World::new();
    for (kind, name) in [("user", "alice"), ("target", "web1"), ("role", "ops")] {
        let out = w.gw.cli_ok(&[kind, "list"]);
        assert!(out.stdout_str().contains(name), "{kind} list:\n{out}");
    }
}
