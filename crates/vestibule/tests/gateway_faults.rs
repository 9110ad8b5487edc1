//! End-to-end faults: the gateway killed (-9) mid-session, the target's sshd
//! killed mid-session, the gateway out of file descriptors. Records and
//! recordings stay readable; the person is told what happened; the gateway
//! goes on serving.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ChildGuard, World, wait_until};

/// A session that prints a numbered line every 50 ms for a while.
fn chatty_session(w: &World) -> (ChildGuard, std::path::PathBuf, std::path::PathBuf) {
    let out = w.alice.dir().join("chatty.out");
    let err = w.alice.dir().join("chatty.err");
    let mut cmd = w.ssh(
        "alice:web1",
        "for i in $(seq 1 400); do echo line-$i; sleep 0.05; done",
    );
    let child = ChildGuard::spawn(
        &mut cmd,
        Stdio::from(fs::File::create(&out).unwrap()),
        Stdio::from(fs::File::create(&err).unwrap()),
    );
    (child, out, err)
}

fn wait_for_output(path: &std::path::Path, needle: &str) {
    wait_until(Duration::from_secs(15), || {
        fs::read_to_string(path)
            .ok()?
            .contains(needle)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{needle} never appeared in {}", path.display()));
}

#[test]
fn a_gateway_killed_mid_session_leaves_readable_records_and_restarts_cleanly() {
    let mut w = World::new();
    let (mut child, out, _) = chatty_session(&w);
    wait_for_output(&out, "line-30");
    // Past a flush interval, so the recording holds some of it.
    std::thread::sleep(Duration::from_millis(1200));
    w.gw.crash_and_restart();
    child
        .wait_timeout(Duration::from_secs(10))
        .expect("ssh ends when the gateway dies");

    let list = w.gw.cli_ok(&["recordings", "list", "--json"]);
    let recordings: Vec<serde_json::Value> = serde_json::from_str(&list.stdout_str()).unwrap();
    assert_eq!(recordings.len(), 1, "{list}");
    assert_eq!(recordings[0]["state"], "incomplete", "{}", recordings[0]);
    let id = recordings[0]["id"].as_str().unwrap();
    let played =
        w.gw.cli_ok(&["play", id, "--speed", "1000", "--idle-limit", "0.01"]);
    assert!(played.stdout_str().contains("line-10"), "{played}");
    w.gw.cli_ok(&["recordings", "verify"]);
    // The audit chain is intact and holds the start; the session is not live.
    w.gw.cli_ok(&["audit", "verify"]);
    let starts =
        w.gw.cli_ok(&["audit", "search", "--type", "session.start", "--json"]);
    assert!(
        starts.stdout_str().contains(&format!(
            "\"session_id\":\"{}\"",
            recordings[0]["session_id"].as_str().unwrap()
        )),
        "{starts}"
    );
    let live = w.gw.cli_ok(&["sessions", "list", "--json"]);
    assert_eq!(live.stdout_str().trim(), "[]", "{live}");
    // And it serves again.
    w.exec("alice:web1", "echo again")
        .assert_ok()
        .assert_stdout("again\n");
}

#[test]
fn a_target_sshd_killed_mid_session_tells_the_person_and_is_recorded() {
    let w = World::new();
    let (mut child, out, err) = chatty_session(&w);
    wait_for_output(&out, "line-5");
    // Kill this target's per-connection sshd processes (children of its listener).
    let pid = fs::read_to_string(w.target.dir().join("sshd.pid")).unwrap();
    let killed = Command::new("pkill")
        .args(["-9", "-P", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .expect("ssh should end");
    assert!(!status.success());
    let said = fs::read_to_string(&err).unwrap();
    assert!(
        said.contains("vestibule: target web1 closed the connection without ending the session"),
        "{said}"
    );
    let recordings = wait_until(Duration::from_secs(10), || {
        let list = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let recs: Vec<serde_json::Value> = serde_json::from_str(&list.stdout_str()).ok()?;
        (recs.len() == 1 && recs[0]["state"] != "recording").then_some(recs)
    })
    .expect("a finished recording");
    assert_eq!(recordings[0]["state"], "complete", "{}", recordings[0]);
    // Recorded, not awaited: it lands with the writer's next commit.
    common::identity::found(&w, "session.end", "closed the connection");
}

#[test]
fn running_out_of_descriptors_pauses_accepting_and_does_not_stop_the_gateway() {
    let w = World::new();
    let pid = w.gw.pid();
    let open = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let (soft, hard) = limits
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("Max open files")?;
            let mut n = l.split_whitespace();
            Some((n.next()?.to_owned(), n.next()?.to_owned()))
        })
        .unwrap();
    // Only the soft limit moves, so that it can be put back without privilege.
    let set_soft = |soft: &str| {
        Command::new("prlimit")
            .args([
                "--pid",
                &pid.to_string(),
                &format!("--nofile={soft}:{hard}"),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let lowered = set_soft(&(open + 4).to_string());
    if !lowered {
        eprintln!("NOTICE: prlimit cannot lower the gateway's limit; test skipped");
        return;
    }
    // More connections than descriptors left: the kernel completes them all,
    // the gateway takes a few and then fails to accept (EMFILE).
    let held: Vec<std::net::TcpStream> = (0..16)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", w.gw.port)).ok())
        .collect();
    assert_eq!(held.len(), 16);
    wait_until(Duration::from_secs(10), || {
        w.gw.log()
            .contains("cannot accept a connection")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no accept failure logged:\n{}", w.gw.log()));
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the gateway exited:\n{}",
        w.gw.log()
    );
    drop(held);
    assert!(set_soft(&soft), "cannot restore the limit");
    w.exec("alice:web1", "echo still-serving")
        .assert_ok()
        .assert_stdout("still-serving\n");
}
