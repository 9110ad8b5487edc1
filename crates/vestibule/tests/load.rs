//! Load: 200 concurrent sessions each moving data through the gateway, every
//! byte checked and every recording complete; and the gateway killed (-9)
//! while a dozen bulk transfers run through it. Slow, so behind a flag:
//!
//!     cargo nextest run -p vestibule --test load --run-ignored only
//!
//! (docs/benchmarks.md lists it with the benchmark commands).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{COMMAND_TIMEOUT, ChildGuard, World, run, wait_until};

const SESSIONS: usize = 200;
const BYTES: usize = 1_000_000;

#[test]
#[ignore = "load test: run with --run-ignored only"]
fn two_hundred_concurrent_sessions_move_exact_bytes_and_are_all_recorded() {
    let w = Arc::new(World::with_sshd_config(&[
        "MaxStartups 400:30:400",
        "MaxSessions 400",
    ]));
    let started = Instant::now();
    let workers: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let w = w.clone();
            std::thread::spawn(move || {
                // The target makes random data and reports its checksum on
                // stderr; the client checksums what arrived on stdout.
                let remote = format!(
                    "f=$(mktemp); head -c {BYTES} /dev/urandom > $f; sha256sum < $f | cut -d' ' -f1 >&2; cat $f; rm -f $f"
                );
                let ssh = w.ssh("alice:web1", &remote);
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(shell_line(&ssh, i))
                    .current_dir(w.alice.dir());
                run(&mut sh, COMMAND_TIMEOUT * 6)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for (i, worker) in workers.into_iter().enumerate() {
        let out = worker.join().expect("worker");
        let lines: Vec<String> = out.stdout_str().lines().map(str::to_owned).collect();
        let same = lines.len() >= 2 && lines.first() == lines.last();
        if !out.success() || !same {
            failures.push(format!("session {i}: {out}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed, first:\n{}",
        failures.len(),
        failures[0]
    );
    let elapsed = started.elapsed();
    eprintln!("{SESSIONS} sessions x {BYTES} bytes in {elapsed:?}");
    let complete = wait_until(Duration::from_secs(60), || {
        let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        let complete = list.iter().filter(|r| r["state"] == "complete").count();
        (complete == SESSIONS).then_some(complete)
    });
    assert_eq!(complete, Some(SESSIONS), "every recording complete");
    w.gw.cli_ok(&["audit", "verify"]);
}

/// Transfers each way that are still running when the gateway is killed.
const BULK_EACH_WAY: usize = 6;

#[test]
#[ignore = "load test: run with --run-ignored only"]
fn a_gateway_killed_during_bulk_transfers_leaves_every_recording_readable() {
    let mut w = World::with_sshd_config(&["MaxStartups 100:30:200", "MaxSessions 100"]);
    // Far more than moves before the kill, so every transfer is cut mid-way.
    let endless = "head -c 64G /dev/zero";
    let mut clients: Vec<ChildGuard> = Vec::new();
    for i in 0..BULK_EACH_WAY {
        let download = w.ssh("alice:web1", endless);
        clients.push(spawn_sh(
            &format!("{} > /dev/null", sh_words(&download)),
            &w,
            i,
        ));
        let upload = w.ssh("alice:web1", "cat > /dev/null");
        let line = format!("{endless} | {}", sh_words(&upload));
        clients.push(spawn_sh(&line, &w, BULK_EACH_WAY + i));
    }
    let sessions = 2 * BULK_EACH_WAY;
    // Under way: live, and past the durable audit of its start (a session is
    // listed live a moment before, and moves no byte until then).
    wait_until(Duration::from_secs(60), || {
        let out = w.gw.cli_ok(&["sessions", "list", "--json"]);
        let live: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        let starts =
            w.gw.cli_ok(&["audit", "search", "--type", "session.start", "--json"]);
        (live.len() == sessions && starts.stdout_str().lines().count() == sessions).then_some(())
    })
    .expect("every transfer under way");
    // Killed once every download has over 2 MiB of its recording on disk (a
    // few flushes in), with the data still moving. Uploads keep only counts.
    // Checked below: over 1 MiB of output recovered. The margin is for what a
    // file holds besides output (the header, each record's framing) and for
    // the record the kill cut in half, which recovery drops.
    let recordings_dir = w.gw.data_dir().join("recordings");
    wait_until(Duration::from_secs(60), || {
        let big = std::fs::read_dir(&recordings_dir)
            .ok()?
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .filter(|meta| meta.len() > 2 << 20)
            .count();
        (big >= BULK_EACH_WAY).then_some(())
    })
    .expect("every download recorded in part");
    w.gw.crash_and_restart();
    for client in &mut clients {
        let status = client
            .wait_timeout(Duration::from_secs(30))
            .expect("ssh ends when the gateway dies");
        assert!(!status.success(), "a transfer cut mid-way reported success");
    }

    // The restarted gateway recovered every recording as incomplete, hashed
    // what reached the disk, and each one reads back to its end.
    let list = w.gw.cli_ok(&["recordings", "list", "--json"]);
    let recordings: Vec<serde_json::Value> = serde_json::from_str(&list.stdout_str()).unwrap();
    assert_eq!(recordings.len(), sessions, "{list}");
    for recording in &recordings {
        assert_eq!(recording["state"], "incomplete", "{recording}");
        assert!(recording["digest"].is_string(), "{recording}");
    }
    w.gw.cli_ok(&["recordings", "verify"]);
    let downloads: Vec<&serde_json::Value> = recordings
        .iter()
        .filter(|r| r["traffic"]["output"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(downloads.len(), BULK_EACH_WAY, "{list}");
    let smallest = downloads
        .iter()
        .min_by_key(|r| r["traffic"]["output"].as_u64())
        .unwrap();
    let recorded = smallest["traffic"]["output"].as_u64().unwrap_or(0);
    assert!(
        recorded > 1 << 20,
        "little of a download was recorded: {smallest}"
    );
    let id = smallest["id"].as_str().unwrap();
    let exported = w.alice.dir().join("cut-download.rec");
    w.gw.cli_ok(&[
        "recordings",
        "export",
        id,
        "--output",
        &exported.to_string_lossy(),
    ]);
    let stored = std::fs::metadata(&exported).unwrap().len();
    assert_eq!(Some(stored), smallest["bytes"].as_u64(), "{smallest}");
    let played = run(
        &mut w
            .gw
            .command(&["play", id, "--speed", "1000", "--idle-limit", "0.01"]),
        COMMAND_TIMEOUT * 4,
    );
    assert!(played.success(), "play failed: {}", played.stderr_str());
    // The transcript shows the zeros as binary chunks, every one of them, and
    // says how the recording ended.
    let transcript = played.stdout_str();
    let shown: u64 = transcript
        .lines()
        .filter_map(|l| l.split("| <").nth(1)?.strip_suffix(" bytes, not text>"))
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        shown,
        recorded,
        "{}",
        transcript.lines().last().unwrap_or("")
    );
    assert!(
        transcript.contains(&format!("# bytes: {recorded} from the target")),
        "{}",
        transcript
            .lines()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        transcript.contains("# incomplete: the recording process stopped before the session ended"),
        "{}",
        transcript.lines().last().unwrap_or("")
    );

    // The trail is whole, nothing is left live, and the gateway serves again.
    w.gw.cli_ok(&["audit", "verify"]);
    let starts =
        w.gw.cli_ok(&["audit", "search", "--type", "session.start", "--json"]);
    assert_eq!(starts.stdout_str().lines().count(), sessions, "{starts}");
    let live = w.gw.cli_ok(&["sessions", "list", "--json"]);
    assert_eq!(live.stdout_str().trim(), "[]", "{live}");
    w.exec("alice:web1", "head -c 1048576 /dev/zero | wc -c")
        .assert_ok()
        .assert_stdout("1048576\n");
}

fn spawn_sh(line: &str, w: &World, i: usize) -> ChildGuard {
    let err = std::fs::File::create(w.alice.dir().join(format!("bulk-{i}.err"))).unwrap();
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(line).current_dir(w.alice.dir());
    ChildGuard::spawn(&mut sh, Stdio::null(), Stdio::from(err))
}

/// A command as sh words, each quoted.
fn sh_words(cmd: &Command) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut parts = vec![quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// `ssh ... 2>err | sha256sum` then the remote's checksum, as one sh line.
fn shell_line(ssh: &Command, i: usize) -> String {
    format!(
        "{} 2>err-{i} | sha256sum | cut -d' ' -f1; cat err-{i}",
        sh_words(ssh)
    )
}
