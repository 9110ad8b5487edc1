//! One-byte round trips in long-lived sessions, with and without a PTY.

use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::bulk::read_ready;
use crate::procs::{self, Guard};
use crate::stats;
use crate::world::{PathKind, World};

const WARMUPS: usize = 10;

#[derive(Serialize)]
pub struct RttResult {
    pub path: PathKind,
    pub label: &'static str,
    pub pty: bool,
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub min_us: f64,
    /// The gateways' CPU time in one round trip (scheduler run time of all
    /// their threads, read just before and after it), median over the
    /// samples; for paths that do not cross a gateway, what the gateways
    /// spend idle in that time.
    pub gateway_cpu_us_p50: f64,
    /// The same for the plain bastion's sshd processes (the ProxyJump hop).
    pub bastion_cpu_us_p50: f64,
}

/// The round trips of `path` (with or without a PTY), when the run measured them.
pub fn find(results: &[RttResult], path: PathKind, pty: bool) -> Option<&RttResult> {
    results.iter().find(|r| r.path == path && r.pty == pty)
}

struct Session {
    _guard: Guard,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Session {
    fn open(world: &World, path: PathKind, pty: bool) -> Result<Self> {
        // In the PTY case the terminal must neither echo nor cook the byte.
        let remote = if pty {
            "stty raw -echo; echo ready; exec cat"
        } else {
            "echo ready; exec cat"
        };
        let mut cmd = world.ssh(path, pty, remote)?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut guard = Guard::spawn(&mut cmd, "ssh")?;
        let child = guard.child_mut();
        let stdin = child.stdin.take().context("ssh: no stdin pipe")?;
        let mut stdout = child.stdout.take().context("ssh: no stdout pipe")?;
        read_ready(&mut stdout, world)
            .with_context(|| format!("opening a session via {}", path.label()))?;
        Ok(Self {
            _guard: guard,
            stdin,
            stdout,
        })
    }

    /// Send one byte and wait for it to come back; microseconds.
    fn round_trip(&mut self) -> Result<f64> {
        let mut back = [0u8; 1];
        let t0 = Instant::now();
        self.stdin.write_all(b"x").context("writing a byte")?;
        self.stdout
            .read_exact(&mut back)
            .context("reading a byte")?;
        let us = t0.elapsed().as_secs_f64() * 1e6;
        if back != *b"x" {
            bail!("sent 'x', got {:?}", back[0] as char);
        }
        Ok(us)
    }
}

pub fn measure(world: &World, samples: usize) -> Result<Vec<RttResult>> {
    let mut out = Vec::new();
    for pty in [false, true] {
        let mut sessions = world
            .paths
            .iter()
            .map(|&p| Session::open(world, p, pty))
            .collect::<Result<Vec<_>>>()?;
        for s in &mut sessions {
            for _ in 0..WARMUPS {
                s.round_trip()?;
            }
        }
        // The bastion forks a process (and its privilege-separated child)
        // per connection: those of the sessions just opened.
        let hops = [
            world.gateway_pids(),
            procs::descendants(world.bastion.pid())?,
        ];
        let hop_ns = |pids: &[u32]| -> Result<u64> { pids.iter().map(|&p| procs::cpu_ns(p)).sum() };
        let mut times = vec![Vec::with_capacity(samples); sessions.len()];
        let mut cpu =
            vec![[Vec::with_capacity(samples), Vec::with_capacity(samples)]; sessions.len()];
        for _ in 0..samples {
            for (i, s) in sessions.iter_mut().enumerate() {
                let before = [hop_ns(&hops[0])?, hop_ns(&hops[1])?];
                times[i].push(s.round_trip()?);
                for (h, pids) in hops.iter().enumerate() {
                    let spent = hop_ns(pids)?.saturating_sub(before[h]);
                    cpu[i][h].push(spent as f64 / 1e3);
                }
            }
        }
        for ((&path, t), [gateway, bastion]) in world.paths.iter().zip(times).zip(cpu) {
            out.push(RttResult {
                path,
                label: path.label(),
                pty,
                samples,
                p50_us: stats::percentile(&t, 50.0),
                p99_us: stats::percentile(&t, 99.0),
                min_us: stats::min(&t),
                gateway_cpu_us_p50: stats::median(&gateway),
                bastion_cpu_us_p50: stats::median(&bastion),
            });
        }
    }
    Ok(out)
}
