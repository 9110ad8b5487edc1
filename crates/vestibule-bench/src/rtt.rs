//! One-byte round trips in long-lived sessions, with and without a PTY.

use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::bulk::read_ready;
use crate::procs::Guard;
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
        let mut times = vec![Vec::with_capacity(samples); sessions.len()];
        for _ in 0..samples {
            for (i, s) in sessions.iter_mut().enumerate() {
                times[i].push(s.round_trip()?);
            }
        }
        for (&path, t) in world.paths.iter().zip(times) {
            out.push(RttResult {
                path,
                label: path.label(),
                pty,
                samples,
                p50_us: stats::percentile(&t, 50.0),
                p99_us: stats::percentile(&t, 99.0),
                min_us: stats::min(&t),
            });
        }
    }
    Ok(out)
}
