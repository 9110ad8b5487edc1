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

/// Every audit event so far (oldest first).
fn all_events(w: &World) -> Vec<serde_json::Value> {
    search(w, &["--limit", "100000", "--oldest-first"])
        .into_iter()
        .map(|e| e["event"].clone())
        .collect()
}

/// Wait until the events include one for which `pick` holds; return it.
fn wait_for_event(
    w: &World,
    what: &str,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_until(Duration::from_secs(20), || {
        all_events(w).into_iter().find(|e| pick(e))
    })
    .unwrap_or_else(|| {
        panic!(
            "no audit event for {what}; have:\n{}",
            all_events(w)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn details(event: &serde_json::Value) -> &serde_json::Value {
    &event["vestibule"]["details"]
}

/// The admin event whose details name `object`, for `action`.
fn change(w: &World, action: &str, object: &str) -> serde_json::Value {
    wait_for_event(w, &format!("{action} {object}"), |e| {
        e["event"]["action"] == action && details(e)["object"] == object
    })
}

/// The first policy load event with this trigger and outcome.
fn reload(w: &World, trigger: &str, outcome: &str) -> serde_json::Value {
    wait_for_event(w, &format!("config.reload {trigger} {outcome}"), |e| {
        e["event"]["action"] == "config.reload"
            && details(e)["what"] == "policies"
            && details(e)["trigger"] == trigger
            && e["event"]["outcome"] == outcome
    })
}

#[test]
fn policy_reloads_are_audited_with_trigger_count_digest_and_diagnostics() {
    let w = World::new();
    let startup = reload(&w, "startup", "success");
    let first = details(&startup).clone();
    assert_eq!(
        first["sha256"].as_str().map(str::len),
        Some(64),
        "{startup}"
    );
    assert!(
        first["policies"].as_u64().is_some_and(|n| n >= 1),
        "{startup}"
    );
    let config = wait_for_event(&w, "the configuration read at start", |e| {
        e["event"]["action"] == "config.reload" && details(e)["what"] == "configuration"
    });
    assert_eq!(details(&config)["sha256"].as_str().map(str::len), Some(64));

    // A broken file is refused at the next decision; the old set stays.
    let policies = w.gw.data_dir().join("policies");
    fs::write(
        policies.join("broken.cedar"),
        "permit (principal, action, resource)\nwhen { context.login == };\n",
    )
    .unwrap();
    let refused = wait_until(Duration::from_secs(20), || {
        w.exec("alice:web1", "true").assert_ok();
        all_events(&w).into_iter().find(|e| {
            e["event"]["action"] == "config.reload"
                && details(e)["trigger"] == "file_change"
                && e["event"]["outcome"] == "failure"
        })
    })
    .expect("a refused reload in the audit trail");
    let d = details(&refused);
    assert_eq!(d["previous_kept"], true, "{refused}");
    assert_eq!(d["sha256"], first["sha256"], "the previous set is in force");
    assert_eq!(d["policies"], first["policies"]);
    let at = d["problems"][0]["at"].as_str().unwrap_or("");
    assert!(at.contains("broken.cedar:2:"), "file:line:col in {refused}");
    assert!(
        refused["event"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("stays in force"),
        "{refused}"
    );

    // Fixed: the next decision loads it, with a new digest and count.
    fs::write(
        policies.join("broken.cedar"),
        "@id(\"extra\")\npermit (principal, action, resource) when { context.login == \"nobody\" };\n",
    )
    .unwrap();
    let loaded = wait_until(Duration::from_secs(20), || {
        w.exec("alice:web1", "true").assert_ok();
        all_events(&w).into_iter().find(|e| {
            e["event"]["action"] == "config.reload"
                && details(e)["trigger"] == "file_change"
                && e["event"]["outcome"] == "success"
        })
    })
    .expect("a successful reload in the audit trail");
    let d = details(&loaded);
    assert_ne!(d["sha256"], first["sha256"], "{loaded}");
    assert_eq!(
        d["policies"].as_u64(),
        first["policies"].as_u64().map(|n| n + 1),
        "{loaded}"
    );

    // SIGHUP reloads too, and says so.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &w.gw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let signalled = reload(&w, "sighup", "success");
    assert_eq!(details(&signalled)["sha256"], d["sha256"]);
}

#[test]
fn admin_changes_carry_the_object_before_and_after() {
    let w = World::new();
    w.new_user("bob", &[]);
    w.grant("ops", "bob");
    let added =
        w.gw.cli_ok(&["lock", "add", "--user", "bob", "--reason", "before/after"]);
    let lock_id = added
        .stdout_str()
        .split_whitespace()
        .nth(1)
        .expect("lock id")
        .to_owned();
    w.gw.cli_ok(&["lock", "remove", &lock_id]);
    let enrolled = w.gw.cli_ok(&["user", "mfa", "enroll", "bob"]).stdout_str();
    w.gw.cli_ok(&["ca", "rotate", "user"]);
    let issued = w.gw.cli_ok(&[
        "breakglass",
        "issue",
        "--account",
        "bob",
        "--ttl",
        "10m",
        "--reason",
        "INC-1 test",
    ]);
    let token = issued
        .stdout_str()
        .lines()
        .nth(1)
        .expect("token line")
        .trim()
        .to_owned();
    fs::write(
        w.gw.data_dir().join("policies").join("requests.cedar"),
        "@id(\"request-any\")\npermit (principal, action == Vestibule::Action::\"request.create\", resource);\n",
    )
    .unwrap();
    w.add_role("approvers", "*", "none", false);
    w.new_user("carol", &["approvers"]);
    let filed = w.gw.cli_ok(&[
        "request", "create", "--user", "bob", "--target", "web1", "--login", "root", "--reason",
        "CHG-7",
    ]);
    let request = filed
        .stdout_str()
        .split_whitespace()
        .nth(1)
        .expect("request id")
        .to_owned();
    w.gw.cli_ok(&["request", "approve", &request, "--as", "carol"]);
    w.gw.cli(&["target", "remove", "nosuch"]).assert_failed();

    let user = change(&w, "admin.change", "user:bob");
    let d = details(&user);
    assert!(d["before"].is_null(), "{user}");
    assert_eq!(d["object_type"], "user");
    assert_eq!(d["object_id"], "bob");
    assert_eq!(d["after"]["name"], "bob");
    assert_eq!(d["after"]["has_password"], false);
    let key = d["after"]["public_keys"][0].as_str().unwrap_or("");
    assert!(key.starts_with("SHA256:"), "{user}");

    let grant = details(&change(&w, "admin.change", "role_grant:ops/bob")).clone();
    assert_eq!(
        (&grant["before"]["granted"], &grant["after"]["granted"]),
        (&false.into(), &true.into()),
        "{grant}"
    );

    let lock = details(&change(&w, "lock.add", "locks:user:bob")).clone();
    assert_eq!(lock["before"]["active"], serde_json::json!([]), "{lock}");
    assert_eq!(lock["after"]["active"][0]["id"], lock_id.as_str());
    assert_eq!(lock["after"]["active"][0]["reason"], "before/after");
    let unlock = details(&change(&w, "lock.remove", "locks:user:bob")).clone();
    assert_eq!(unlock["before"]["active"][0]["id"], lock_id.as_str());
    assert_eq!(unlock["after"]["active"], serde_json::json!([]), "{unlock}");

    let mfa = change(&w, "admin.change", "mfa:bob");
    assert_eq!(details(&mfa)["before"]["enrolled"], false, "{mfa}");
    assert_eq!(details(&mfa)["after"]["enrolled"], true, "{mfa}");
    let secret = enrolled
        .lines()
        .find_map(|l| l.strip_prefix("Secret (to type in by hand): "))
        .map(str::trim)
        .filter(|s| s.len() >= 16);
    if let Some(secret) = secret {
        assert!(!mfa.to_string().contains(secret), "the TOTP secret leaked");
    }

    let ca = details(&change(&w, "admin.change", "ca:user")).clone();
    let before = ca["before"]["user"]["trusted"].as_array().expect("before");
    let after = ca["after"]["user"]["trusted"].as_array().expect("after");
    assert_eq!((before.len(), after.len()), (1, 2), "{ca}");
    assert_ne!(
        ca["before"]["user"]["signing"],
        ca["after"]["user"]["signing"]
    );
    assert_eq!(ca["after"]["user"]["signing"], after[1]);

    let glass = change(&w, "admin.change", "breakglass_tokens:bob");
    let d = details(&glass);
    assert_eq!(d["before"]["usable"], serde_json::json!([]), "{glass}");
    assert_eq!(d["after"]["usable"][0]["account"], "bob");
    assert!(token.len() >= 16 && !glass.to_string().contains(&token));

    let filed = details(&change(&w, "request.create", "access_requests:bob")).clone();
    assert_eq!(filed["before"]["open"], serde_json::json!([]), "{filed}");
    assert_eq!(filed["after"]["open"][0]["id"], request.as_str());
    let approved = details(&change(
        &w,
        "request.approve",
        &format!("access_request:{request}"),
    ))
    .clone();
    assert_eq!(approved["before"]["state"], "pending", "{approved}");
    assert_eq!(approved["after"]["state"], "approved");
    assert_eq!(approved["after"]["approvers"], serde_json::json!(["carol"]));

    let failed = change(&w, "admin.change", "target:nosuch");
    assert_eq!(failed["event"]["outcome"], "failure", "{failed}");
    assert!(details(&failed)["before"].is_null() && details(&failed)["after"].is_null());
}

#[test]
fn legal_holds_and_retention_sweeps_are_admin_changes() {
    let w = World::new();
    w.exec("alice:web1", "echo kept").assert_ok();
    w.exec("alice:web1", "echo swept").assert_ok();
    let finished = wait_until(Duration::from_secs(15), || {
        let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        (list.len() == 2 && list.iter().all(|r| r["state"] == "complete")).then_some(list)
    })
    .expect("two finished recordings");
    let held = finished[0]["id"].as_str().expect("recording id").to_owned();
    w.gw.cli_ok(&["recordings", "hold", &held]);
    w.gw.cli_ok(&["recordings", "sweep", "--days", "0"]);

    let hold = details(&change(&w, "admin.change", &format!("recording:{held}"))).clone();
    assert_eq!(hold["before"]["legal_hold"], false, "{hold}");
    assert_eq!(hold["after"]["legal_hold"], true, "{hold}");
    let sweep = details(&change(&w, "admin.change", "recordings:all")).clone();
    assert_eq!(sweep["before"]["count"], 2, "{sweep}");
    assert_eq!(sweep["after"]["count"], 1, "{sweep}");
    assert_eq!(sweep["after"]["held"], 1, "{sweep}");
}
