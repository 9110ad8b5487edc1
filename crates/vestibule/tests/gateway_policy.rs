//! End-to-end: Cedar policies (files, check, explain, reload, tickets), locks,
//! live sessions, and just-in-time access requests, against a real sshd and the
//! real ssh client.

mod common;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::{ChildGuard, World, wait_until};

const TICKET_POLICY: &str = r#"
@id("prod-needs-ticket")
@reason("production needs a ticket: ssh -o SetEnv=VESTIBULE_TICKET=INC-1234 ...")
forbid (principal, action in Vestibule::Action::"ssh.session", resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" }
unless { context has ticket };
"#;

fn write_policy(w: &World, name: &str, text: &str) {
    fs::write(w.gw.data_dir().join("policies").join(name), text).expect("write policy");
}

/// Alice's long-running session through the gateway, with stderr captured to a file.
fn long_session(w: &World, user: &str, options: &[&str]) -> (ChildGuard, std::path::PathBuf) {
    let stderr_path = w.alice.dir().join(format!("long-{}.stderr", rand_suffix()));
    let stderr = fs::File::create(&stderr_path).expect("stderr file");
    let mut cmd = w.alice.ssh_with(w.gw.port, user, options, "sleep 60");
    let child = ChildGuard::spawn(&mut cmd, Stdio::null(), Stdio::from(stderr));
    (child, stderr_path)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Wait until `sessions list --json` shows `count` live sessions.
fn live_sessions(w: &World, count: usize) -> serde_json::Value {
    wait_until(Duration::from_secs(15), || {
        let out = w.gw.cli_ok(&["sessions", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out.stdout_str()).ok()?;
        (list.as_array()?.len() == count).then_some(list)
    })
    .unwrap_or_else(|| panic!("expected {count} live sessions"))
}

#[test]
fn a_target_that_requires_a_ticket_refuses_a_session_without_one() {
    let w = World::new();
    w.add_target("db1", &["--login", "root", "--label", "env=prod"]);
    write_policy(&w, "tickets.cedar", TICKET_POLICY);
    w.exec("alice:db1", "true")
        .assert_refused_with(&["access to db1 as root refused", "production needs a ticket"]);
    // Other targets are unaffected.
    w.exec("alice:web1", "echo ok")
        .assert_ok()
        .assert_stdout("ok\n");
    // With a ticket the session runs, and the ticket is attached to it.
    let (mut child, _) = long_session(&w, "alice:db1", &["-o", "SetEnv=VESTIBULE_TICKET=INC-1234"]);
    let live = live_sessions(&w, 1);
    assert_eq!(live[0]["ticket"], "INC-1234", "{live}");
    assert_eq!(live[0]["target"], "db1");
    child.kill();
    let log = w.gw.log();
    assert!(
        log.contains("prod-needs-ticket"),
        "denial not logged with its policy:\n{log}"
    );
}

#[test]
fn policy_check_and_explain() {
    let w = World::new();
    w.add_target("db1", &["--login", "root", "--label", "env=prod"]);
    let check = w.gw.cli_ok(&["policy", "check"]);
    assert!(check.stdout_str().contains("valid"), "{check}");
    write_policy(&w, "tickets.cedar", TICKET_POLICY);
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "policy", "explain", "--user", "alice", "--target", "db1", "--login", "root",
        ];
        args.extend_from_slice(extra);
        w.gw.cli_ok(&args).stdout_str()
    };
    let denied = explain(&[]);
    assert!(
        denied.starts_with("DENY: alice ssh.shell on db1 as root"),
        "{denied}"
    );
    assert!(denied.contains("decided by: prod-needs-ticket"), "{denied}");
    assert!(denied.contains("production needs a ticket"), "{denied}");
    let allowed = explain(&["--context", "ticket=INC-9"]);
    assert!(allowed.starts_with("ALLOW"), "{allowed}");
    assert!(allowed.contains("decided by: role:ops"), "{allowed}");
    let nobody = w.gw.cli_ok(&[
        "policy", "explain", "--user", "nobody", "--target", "web1", "--login", "root",
    ]);
    assert!(nobody.stdout_str().contains("deny by default"), "{nobody}");
    // The gateway picks the new file up at the next decision.
    w.exec("alice:db1", "true")
        .assert_refused_with(&["production needs a ticket"]);

    // A broken file: check names file, line and column; the gateway keeps the
    // policies in force (the ticket rule still holds).
    write_policy(
        &w,
        "broken.cedar",
        "permit (principal, action, resource)\nwhen { resource.nonsense };\n",
    );
    let check = w.gw.cli(&["policy", "check"]);
    check.assert_failed();
    let stderr = check.stderr_str();
    assert!(stderr.contains("broken.cedar:2:"), "{stderr}");
    assert!(stderr.contains("nonsense"), "{stderr}");
    // Each decision may look at the files (at most every 100 ms); until the
    // broken one is seen and refused, and after, the ticket rule holds.
    let seen = wait_until(Duration::from_secs(10), || {
        w.exec("alice:db1", "true")
            .assert_refused_with(&["production needs a ticket"]);
        w.gw.log().contains("policy files refused").then_some(())
    });
    assert!(seen.is_some(), "the broken file was never refused");
    w.exec("alice:db1", "true")
        .assert_refused_with(&["production needs a ticket"]);
    // Fixing it takes effect without a restart, once the gateway next looks
    // at the files (at most every 100 ms, at a decision).
    fs::remove_file(w.gw.data_dir().join("policies/broken.cedar")).unwrap();
    fs::remove_file(w.gw.data_dir().join("policies/tickets.cedar")).unwrap();
    let fixed = wait_until(Duration::from_secs(10), || {
        let out = w.exec("alice:db1", "echo ok");
        (out.code() == Some(0)).then_some(out)
    })
    .expect("the fixed policy set is picked up without a restart");
    fixed.assert_stdout("ok\n");
}

#[test]
fn a_lock_ends_a_live_session_and_blocks_new_ones() {
    let w = World::new();
    let (mut child, stderr) = long_session(&w, "alice:web1", &[]);
    let live = live_sessions(&w, 1);
    assert_eq!(live[0]["person"], "alice");
    let started = Instant::now();
    let out = w.gw.cli_ok(&[
        "lock",
        "add",
        "--user",
        "alice",
        "--reason",
        "laptop stolen",
    ]);
    let lock_id = out
        .stdout_str()
        .split_whitespace()
        .nth(1)
        .expect("lock id")
        .to_owned();
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .expect("the locked session should end");
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let said = fs::read_to_string(&stderr).unwrap();
    assert!(
        said.contains("vestibule: user alice is locked: laptop stolen"),
        "{said}"
    );
    live_sessions(&w, 0);
    w.exec("alice:web1", "true")
        .assert_refused_with(&["user alice is locked: laptop stolen"]);
    let locks = w.gw.cli_ok(&["lock", "list"]).stdout_str();
    assert!(locks.contains("laptop stolen"), "{locks}");
    w.gw.cli_ok(&["lock", "remove", &lock_id]);
    w.exec("alice:web1", "echo back")
        .assert_ok()
        .assert_stdout("back\n");
    // A target lock and a role lock stop sessions the same way.
    w.gw.cli_ok(&[
        "lock", "add", "--target", "web1", "--ttl", "1h", "--reason", "patching",
    ]);
    w.exec("alice:web1", "true")
        .assert_refused_with(&["target web1 is locked: patching"]);
    w.gw.cli(&["lock", "add", "--role", "nosuch", "--reason", "x"])
        .assert_failed();
}

#[test]
fn sessions_kill_ends_a_session_with_the_reason() {
    let w = World::new();
    let (mut child, stderr) = long_session(&w, "alice:web1", &[]);
    let live = live_sessions(&w, 1);
    let id = live[0]["id"].as_str().expect("id").to_owned();
    let table = w.gw.cli_ok(&["sessions", "list"]).stdout_str();
    assert!(
        table.contains(&id) && table.contains("root@web1"),
        "{table}"
    );
    w.gw.cli_ok(&["sessions", "kill", &id, "--reason", "maintenance"]);
    child
        .wait_timeout(Duration::from_secs(10))
        .expect("the killed session should end");
    let said = fs::read_to_string(&stderr).unwrap();
    assert!(
        said.contains("ended by an administrator: maintenance"),
        "{said}"
    );
    live_sessions(&w, 0);
    w.gw.cli(&["sessions", "kill", &id]).assert_failed();
}

#[test]
fn just_in_time_request_approval_session_and_expiry() {
    let mut w = World::new();
    // A short grace so the grant's end is seen quickly.
    let config = w.gw.data_dir().join("vestibule.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("grace_secs = 60", "grace_secs = 0");
    fs::write(&config, text).unwrap();
    w.gw.restart();
    w.add_target("db1", &["--login", "postgres", "--label", "env=staging"]);
    let bob = w.new_user("bob", &[]);
    let carol = w.new_user("carol", &[]);
    let _ = carol;
    w.gw.cli_ok(&[
        "role",
        "add",
        "approvers",
        "--targets",
        "*",
        "--logins",
        "none",
    ]);
    w.grant("approvers", "carol");
    w.grant("approvers", "bob");
    write_policy(
        &w,
        "requests.cedar",
        r#"@id("request-staging")
permit (principal, action == Vestibule::Action::"request.create", resource)
when { resource.hasTag("env") && resource.getTag("env") == "staging" };"#,
    );
    // bob may not use db1, but may request it.
    w.exec_as(&bob, "bob:root@db1", "true")
        .assert_refused_with(&["bob may not", "you may request access"]);
    w.gw.cli(&[
        "request", "create", "--user", "bob", "--target", "web1", "--login", "root", "--reason",
        "x",
    ])
    .assert_failed();
    let filed = w.gw.cli_ok(&[
        "request",
        "create",
        "--user",
        "bob",
        "--target",
        "db1",
        "--login",
        "root",
        "--duration",
        "6s",
        "--reason",
        "INC-1234 disk full",
    ]);
    let id = filed
        .stdout_str()
        .split_whitespace()
        .nth(1)
        .expect("id")
        .to_owned();
    // Nobody approves their own request; alice (no approver role) may not either.
    let own = w.gw.cli(&["request", "approve", &id, "--as", "bob"]);
    own.assert_failed();
    assert!(own.stderr_str().contains("own request"), "{own}");
    let alice = w.gw.cli(&["request", "approve", &id, "--as", "alice"]);
    alice.assert_failed();
    assert!(alice.stderr_str().contains("may not approve"), "{alice}");
    w.gw.cli_ok(&["request", "approve", &id, "--as", "carol"]);
    let listed = w.gw.cli_ok(&["request", "list"]).stdout_str();
    assert!(
        listed.contains(&id) && listed.contains("approved"),
        "{listed}"
    );
    // The grant allows the session, which ends when the grant does.
    let started = Instant::now();
    let out = common::run(
        &mut bob.ssh(w.gw.port, "bob:root@db1", "echo granted; sleep 60"),
        Duration::from_secs(30),
    );
    assert!(out.stdout_str().contains("granted"), "{out}");
    assert!(
        out.stderr_str()
            .contains("just-in-time access grant has expired"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    w.exec_as(&bob, "bob:root@db1", "true")
        .assert_refused_with(&["you may request access"]);
    // Time to grant (request to first session) is in the audit trail.
    let event = common::identity::found(&w, "request.first_use", id.as_str()).remove(0);
    let details = &event["event"]["vestibule"]["details"];
    assert_eq!(details["request_id"], id.as_str(), "{event}");
    assert!(details["time_to_grant_secs"].as_i64().is_some(), "{event}");
}

#[test]
fn a_person_files_a_request_at_the_ssh_prompt_and_goes_on_once_approved() {
    let w = World::new();
    w.add_target("db1", &["--label", "env=staging"]);
    let bob = w.new_user("bob", &[]);
    w.gw.cli_ok(&[
        "role",
        "add",
        "approvers",
        "--targets",
        "*",
        "--logins",
        "none",
    ]);
    w.grant("approvers", "alice");
    write_policy(
        &w,
        "requests.cedar",
        r#"permit (principal, action == Vestibule::Action::"request.create", resource)
when { resource.hasTag("env") && resource.getTag("env") == "staging" };"#,
    );
    let tmux = Tmux::start(
        &bob.interactive_ssh_line(w.gw.port, "bob:root@db1"),
        120,
        30,
    );
    tmux.wait_for_text("You may request access to db1 as root");
    tmux.type_line("INC-42 replica lag");
    let screen = tmux.wait_for_text("waiting up to");
    let id = screen
        .split("Request ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("request id on screen")
        .to_owned();
    let listed = w.gw.cli_ok(&["request", "list", "--json"]).stdout_str();
    assert!(
        listed.contains("INC-42 replica lag") && listed.contains(&id),
        "{listed}"
    );
    w.gw.cli_ok(&["request", "approve", &id, "--as", "alice"]);
    tmux.wait_for_text("request approved");
    tmux.wait_for_prompt();
    tmux.type_line("echo jit-$(whoami)");
    tmux.wait_for_text("jit-root");
    tmux.type_line("exit");
    assert_eq!(tmux.wait_exit(), 0);
}

#[test]
fn a_terminal_session_is_asked_for_the_ticket_a_policy_requires() {
    let w = World::new();
    w.add_target("db1", &["--login", "root", "--label", "env=prod"]);
    write_policy(
        &w,
        "tickets.cedar",
        &TICKET_POLICY.replace("@id(", "@ticket(\"required\")\n@id("),
    );
    let tmux = Tmux::start(
        &w.alice.interactive_ssh_line(w.gw.port, "alice:db1"),
        120,
        30,
    );
    tmux.wait_for_text("Ticket for this session");
    tmux.type_line("INC-77");
    tmux.wait_for_prompt();
    let live = live_sessions(&w, 1);
    assert_eq!(live[0]["ticket"], "INC-77", "{live}");
    tmux.type_line("exit");
    assert_eq!(tmux.wait_exit(), 0);
    // Without a terminal the person is told how to give one.
    w.exec("alice:db1", "true")
        .assert_refused_with(&["production needs a ticket"]);
}
