//! Many idle sessions through the gateway at once: time to open, memory each.

use std::fs;
use std::process::{ChildStdin, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::procs::{self, Guard};
use crate::stats::CpuMeter;
use crate::world::{PathKind, World};

/// At most this many sessions may be opening at once (started, not yet "up"):
/// the target sshd's MaxStartups begins refusing at 200 unauthenticated.
pub const MAX_IN_FLIGHT: usize = 64;
const PATH: PathKind = PathKind::Vestibule;
/// Each session prints `up` and then waits on its stdin, which we hold open;
/// closing it ends the session cleanly (no stray remote processes).
const REMOTE: &str = "echo up; exec cat";

#[derive(Serialize)]
pub struct ConcurrencyResult {
    pub path: PathKind,
    pub sessions: usize,
    pub max_in_flight: usize,
    pub open_secs: f64,
    pub sessions_per_sec: f64,
    pub gateway_cpu_ms_per_session: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_after_close_kib: u64,
    pub kib_per_session: f64,
}

pub fn measure(world: &World, n: usize, meter: &mut CpuMeter) -> Result<ConcurrencyResult> {
    let pid = world.gateway.pid();
    let out_path = world.root.join("concurrency-stdout");
    // One file, opened for appending, is every session's stdout: each "up\n"
    // lands whole, so the size counts the sessions that are up.
    let out = procs::append_file(&out_path)?;
    let ups = || -> usize { fs::metadata(&out_path).map_or(0, |m| m.len() as usize / 3) };

    thread::sleep(Duration::from_millis(500));
    let rss_before = procs::rss_kib(pid)?;
    meter.reset()?;
    let mut children: Vec<(Guard, ChildStdin)> = Vec::with_capacity(n);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60 + n as u64 / 2);
    let mut last_check = Instant::now();
    while children.len() < n || ups() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} sessions up after {:.0} s; ssh log:\n{}\n{}",
                ups(),
                t0.elapsed().as_secs_f64(),
                world.ssh_log_tail(),
                world.gateway.log_tail()
            );
        }
        if children.len() < n && children.len() - ups().min(children.len()) < MAX_IN_FLIGHT {
            let mut cmd = world.ssh(PATH, false, REMOTE)?;
            cmd.stdin(Stdio::piped())
                .stdout(out.try_clone().context("cloning the stdout file")?);
            let mut guard = Guard::spawn(&mut cmd, "ssh")?;
            let stdin = guard
                .child_mut()
                .stdin
                .take()
                .context("ssh: no stdin pipe")?;
            children.push((guard, stdin));
            continue;
        }
        if last_check.elapsed() > Duration::from_millis(200) {
            last_check = Instant::now();
            let mut dead = 0;
            for (g, _) in children.iter_mut() {
                dead += usize::from(g.exited());
            }
            if dead > 0 {
                bail!(
                    "{dead} of {} sessions ended early; ssh log:\n{}\n{}",
                    children.len(),
                    world.ssh_log_tail(),
                    world.gateway.log_tail()
                );
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    let open_secs = t0.elapsed().as_secs_f64();
    let cpu = meter.lap()?;
    thread::sleep(Duration::from_secs(1));
    let rss_after = procs::rss_kib(pid)?;

    // Close every session by closing its stdin, then reap.
    let mut guards: Vec<Guard> = children.into_iter().map(|(g, _stdin)| g).collect();
    let all_gone = procs::wait_until(Duration::from_secs(60), || {
        guards.iter_mut().all(|g| g.exited()).then_some(())
    });
    if all_gone.is_none() {
        eprintln!("  some sessions did not end within 60 s; killing them");
    }
    drop(guards);
    thread::sleep(Duration::from_secs(2));
    let rss_after_close = procs::rss_kib(pid)?;

    Ok(ConcurrencyResult {
        path: PATH,
        sessions: n,
        max_in_flight: MAX_IN_FLIGHT,
        open_secs,
        sessions_per_sec: n as f64 / open_secs,
        gateway_cpu_ms_per_session: cpu * 1000.0 / n as f64,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_after_close_kib: rss_after_close,
        kib_per_session: (rss_after as f64 - rss_before as f64) / n as f64,
    })
}
