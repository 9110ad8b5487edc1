//! Load: 200 concurrent sessions each moving data through the gateway, every
//! byte checked and every recording complete. Slow, so behind a flag:
//!
//!     cargo nextest run -p vestibule --test load --run-ignored only
//!
//! (docs/benchmarks.md lists it with the benchmark commands).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{COMMAND_TIMEOUT, World, run, wait_until};

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

/// `ssh ... 2>err | sha256sum` then the remote's checksum, as one sh line.
fn shell_line(ssh: &Command, i: usize) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut parts = vec![quote(&ssh.get_program().to_string_lossy())];
    parts.extend(ssh.get_args().map(|a| quote(&a.to_string_lossy())));
    format!(
        "{} 2>err-{i} | sha256sum | cut -d' ' -f1; cat err-{i}",
        parts.join(" ")
    )
}
