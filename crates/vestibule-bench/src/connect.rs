//! Connect latency: `ssh ... true`, interleaved across paths.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::stats::{self, CpuMeter};
use crate::world::{PathKind, World};

/// Pause after each run so that the gateway's teardown work lands in the
/// window of the run that caused it, and sshd children have exited. Longer
/// than the audit writer's linger for a session's last events (50 ms) plus
/// the indexer's coalescing window (100 ms), whose indexing of a run's events
/// would otherwise be counted to the next path.
pub const SETTLE: Duration = Duration::from_millis(250);

#[derive(Serialize)]
pub struct ConnectResult {
    pub path: PathKind,
    pub label: &'static str,
    pub runs: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// Gateway CPU (utime+stime) per connection, including the settle pause.
    /// For non-gateway paths: what the idle gateway used (a baseline).
    pub gateway_cpu_ms_per_conn: f64,
    pub samples_ms: Vec<f64>,
}

/// The connects of `path`, when the run measured them.
pub fn find(results: &[ConnectResult], path: PathKind) -> Option<&ConnectResult> {
    results.iter().find(|c| c.path == path)
}

pub fn measure(world: &World, runs: usize, meter: &mut CpuMeter) -> Result<Vec<ConnectResult>> {
    let paths = &world.paths;
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); paths.len()];
    let mut cpu = vec![0.0f64; paths.len()];
    for round in 0..runs {
        for (i, &path) in paths.iter().enumerate() {
            let mut cmd = world.ssh(path, false, "true")?;
            meter.reset()?;
            let start = Instant::now();
            let status = cmd.status()?;
            let elapsed = start.elapsed();
            thread::sleep(SETTLE);
            cpu[i] += meter.lap()?;
            if !status.success() {
                bail!(
                    "connect via {} failed in round {round} ({status}):\n{}",
                    path.label(),
                    world.ssh_log_tail()
                );
            }
            samples[i].push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    Ok(paths
        .iter()
        .zip(samples)
        .zip(cpu)
        .map(|((&path, s), cpu_s)| ConnectResult {
            path,
            label: path.label(),
            runs,
            min_ms: stats::min(&s),
            median_ms: stats::median(&s),
            p95_ms: stats::percentile(&s, 95.0),
            gateway_cpu_ms_per_conn: cpu_s * 1000.0 / runs as f64,
            samples_ms: s,
        })
        .collect())
}
