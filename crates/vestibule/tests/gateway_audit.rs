//! End-to-end: what the gateway and the admin CLI do lands in the hash-chained
//! audit trail, is searchable, and `audit verify` finds tampering.

mod common;

use std::fs;
use std::time::Duration;

use common::{World, wait_until};

/// `audit search ... --json`: one JSON object per line.
fn search(w: &World, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "search", "--json"];
    all.extend_from_slice(args);
    let out = w.gw.cli_ok(&all);
    out.stdout_str()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Wait until a search finds at least one event.
fn found(w: &World, args: &[&str]) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(15), || {
        let events = search(w, args);
        (!events.is_empty()).then_some(events)
    })
    .unwrap_or_else(|| panic!("no audit event for {args:?}"))
}

#[test]
fn sessions_decisions_and_admin_changes_are_audited_and_verifiable() {
    let mut w = World::new();
    w.exec("alice:web1", "echo hi").assert_ok();
    w.exec("alice:nosuch", "true").assert_failed();
    let mallory = w.new_user("mallory", &[]);
    w.exec_as(&mallory, "mallory:web1", "true")
        .assert_refused_with(&["mallory may not use target web1"]);
    w.gw.cli_ok(&["lock", "add", "--user", "mallory", "--reason", "audit test"]);

    let starts = found(&w, &["--user", "alice", "--type", "session.start"]);
    let start = &starts[0]["event"];
    assert_eq!(start["vestibule"]["target"], "web1", "{start}");
    assert_eq!(start["vestibule"]["policy_ids"][0], "role:ops", "{start}");
    assert_eq!(start["source"]["ip"], "127.0.0.1", "{start}");
    let ends = found(&w, &["--user", "alice", "--type", "session.end"]);
    assert_eq!(
        ends[0]["event"]["vestibule"]["session_id"],
        start["vestibule"]["session_id"]
    );
    let allows = found(&w, &["--user", "alice", "--type", "authorization.allow"]);
    assert_eq!(allows[0]["event"]["vestibule"]["policy_ids"][0], "role:ops");
    let denies = found(&w, &["--user", "mallory", "--type", "authorization.deny"]);
    let deny = &denies[0]["event"];
    assert_eq!(deny["vestibule"]["policy_ids"][0], "default-deny", "{deny}");
    assert!(
        deny["event"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("may not use target"),
        "{deny}"
    );
    let auths = found(&w, &["--user", "alice", "--type", "authentication.success"]);
    assert_eq!(auths[0]["event"]["vestibule"]["auth_method"], "publickey");
    // The CLI's change reaches the chain through the outbox.
    let locks = found(&w, &["--type", "lock.add"]);
    let command = locks[0]["event"]["vestibule"]["details"]["command"]
        .as_str()
        .unwrap_or("");
    assert!(command.contains("lock add --user mallory"), "{}", locks[0]);

    let verified = w.gw.cli_ok(&["audit", "verify"]);
    assert!(verified.stdout_str().contains("OK"), "{verified}");

    // Tamper with one recorded event while the gateway is stopped.
    w.gw.stop();
    let audit = w.gw.data_dir().join("audit");
    let file = fs::read_dir(&audit)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("an audit log file");
    let text = fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("\"authorization.deny\"") && l.contains("mallory"))
        .expect("a deny line");
    let changed: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == line {
                l.replace("mallory", "mallorx")
            } else {
                l.to_owned()
            }
        })
        .collect();
    fs::write(&file, changed.join("\n") + "\n").unwrap();
    let broken = w.gw.cli(&["audit", "verify"]);
    broken.assert_failed();
    let report = broken.stdout_str();
    let place = format!("line {}, ", line + 1);
    assert!(
        report.contains(&place) && report.contains("event changed"),
        "should name {place}:\n{report}"
    );
}
