//! Bulk throughput each way, and a byte-exactness check with random data.

use std::fs;
use std::io::{Read, Write};
use std::process::{ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::connect::SETTLE;
use crate::procs::Guard;
use crate::stats::{self, CpuMeter};
use crate::world::{PathKind, World};

const CHUNK: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upload,
    Download,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

#[derive(Serialize)]
pub struct BulkResult {
    pub path: PathKind,
    pub label: &'static str,
    pub direction: Direction,
    pub size_bytes: u64,
    pub runs: usize,
    pub mib_s_median: f64,
    pub mib_s_samples: Vec<f64>,
    /// Gateway CPU seconds per GiB moved (for non-gateway paths: the idle baseline).
    pub gateway_cpu_s_per_gib: f64,
    /// Busy CPU seconds of the whole machine per GiB moved: client, target,
    /// bastion or gateway, and kernel threads (page-cache writeback) alike.
    pub machine_cpu_s_per_gib: f64,
}

/// The transfers of `path` in direction `d`, when the run measured them.
pub fn find(results: &[BulkResult], path: PathKind, d: Direction) -> Option<&BulkResult> {
    results.iter().find(|b| b.path == path && b.direction == d)
}

#[derive(Serialize)]
pub struct ChecksumResult {
    pub path: PathKind,
    pub label: &'static str,
    pub bytes: usize,
    pub upload_sha256_ok: bool,
    pub download_sha256_ok: bool,
    /// The same bytes through `cat`, both directions at once, came back whole
    /// within [`ECHO_DEADLINE`] (a gateway that parks a session hangs here).
    pub echo_sha256_ok: bool,
}

/// How long an echo may take before it counts as hung.
const ECHO_DEADLINE: Duration = Duration::from_secs(60);

pub fn measure(
    world: &World,
    size: u64,
    runs: usize,
    meter: &mut CpuMeter,
) -> Result<Vec<BulkResult>> {
    let dirs = [Direction::Upload, Direction::Download];
    let mut rates = vec![vec![Vec::with_capacity(runs); world.paths.len()]; 2];
    let mut cpu = vec![vec![0.0f64; world.paths.len()]; 2];
    let mut machine = vec![vec![0.0f64; world.paths.len()]; 2];
    for run in 0..runs {
        // Every other run goes through the paths backwards. What a transfer
        // leaves behind (the processes of the one before exiting, a recording
        // being closed) slows the next, and in a fixed order the recorded
        // path would always follow ProxyJump and the unrecorded one -J.
        let mut order: Vec<usize> = (0..world.paths.len()).collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for (d, &dir) in dirs.iter().enumerate() {
            for &p in &order {
                let path = world.paths[p];
                let (secs, cpu_s) = match dir {
                    Direction::Upload => upload(world, path, size, meter),
                    Direction::Download => download(world, path, size, meter),
                }
                .with_context(|| format!("{dir:?} via {}", path.label()))?;
                rates[d][p].push(size as f64 / MIB / secs);
                cpu[d][p] += cpu_s;
                machine[d][p] += meter.machine_last_window();
            }
        }
    }
    let mut out = Vec::new();
    for (d, &dir) in dirs.iter().enumerate() {
        for (p, &path) in world.paths.iter().enumerate() {
            let moved = size as f64 * runs as f64;
            out.push(BulkResult {
                path,
                label: path.label(),
                direction: dir,
                size_bytes: size,
                runs,
                mib_s_median: stats::median(&rates[d][p]),
                mib_s_samples: rates[d][p].clone(),
                gateway_cpu_s_per_gib: cpu[d][p] / (moved / GIB),
                machine_cpu_s_per_gib: machine[d][p] / (moved / GIB),
            });
        }
    }
    Ok(out)
}

/// Spawn `ssh ... remote` with piped stdin/stdout and wait for its "ready" line.
fn start(world: &World, path: PathKind, remote: &str) -> Result<(Guard, ChildStdout)> {
    let mut cmd = world.ssh(path, false, remote)?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut guard = Guard::spawn(&mut cmd, "ssh")?;
    let mut stdout = guard
        .child_mut()
        .stdout
        .take()
        .context("ssh: no stdout pipe")?;
    read_ready(&mut stdout, world)?;
    Ok((guard, stdout))
}

/// Read the remote's `ready\n` marker.
pub fn read_ready(stdout: &mut impl Read, world: &World) -> Result<()> {
    let mut marker = [0u8; 6];
    stdout.read_exact(&mut marker).with_context(|| {
        format!(
            "waiting for the remote 'ready' marker; ssh log:\n{}",
            world.ssh_log_tail()
        )
    })?;
    if &marker != b"ready\n" {
        bail!("unexpected output before data: {:?}", marker);
    }
    Ok(())
}

/// Stream `size` zero bytes into `cat > /dev/null`; (seconds, gateway CPU s).
fn upload(world: &World, path: PathKind, size: u64, meter: &mut CpuMeter) -> Result<(f64, f64)> {
    let (mut guard, _stdout) = start(world, path, "echo ready; cat > /dev/null")?;
    let mut stdin = guard
        .child_mut()
        .stdin
        .take()
        .context("ssh: no stdin pipe")?;
    let buf = vec![0u8; CHUNK];
    meter.reset()?;
    let t0 = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stdin.write_all(&buf[..n]).context("writing to ssh")?;
        left -= n as u64;
    }
    drop(stdin);
    let status = guard.child_mut().wait().context("waiting for ssh")?;
    let secs = t0.elapsed().as_secs_f64();
    thread::sleep(SETTLE);
    let cpu = meter.lap()?;
    if !status.success() {
        bail!("ssh exited with {status}:\n{}", world.ssh_log_tail());
    }
    Ok((secs, cpu))
}

/// Read `head -c size /dev/zero` and count it; (seconds, gateway CPU s).
fn download(world: &World, path: PathKind, size: u64, meter: &mut CpuMeter) -> Result<(f64, f64)> {
    let remote = format!("echo ready; head -c {size} /dev/zero");
    let (mut guard, mut stdout) = start(world, path, &remote)?;
    let mut buf = vec![0u8; CHUNK];
    meter.reset()?;
    let t0 = Instant::now();
    let mut got = 0u64;
    loop {
        let n = stdout.read(&mut buf).context("reading from ssh")?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let status = guard.child_mut().wait().context("waiting for ssh")?;
    thread::sleep(SETTLE);
    let cpu = meter.lap()?;
    if !status.success() {
        bail!("ssh exited with {status}:\n{}", world.ssh_log_tail());
    }
    if got != size {
        bail!("received {got} bytes, expected {size}");
    }
    Ok((secs, cpu))
}

/// Pseudo-random bytes (xorshift64*), so runs are reproducible.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Upload random data to `sha256sum` and download a random file with `cat`,
/// once per path, and compare digests with ours.
pub fn checksums(world: &World, len: usize) -> Result<Vec<ChecksumResult>> {
    let data = random_bytes(len, 0x05EE_D0FB_E7C4);
    let want = hex(&Sha256::digest(&data));
    let file = world.root.join("random.bin");
    fs::write(&file, &data).with_context(|| format!("writing {}", file.display()))?;
    let mut out = Vec::new();
    for &path in &world.paths {
        // Upload: the remote digest of what arrived.
        let (mut guard, mut stdout) = start(world, path, "echo ready; sha256sum")?;
        let mut stdin = guard
            .child_mut()
            .stdin
            .take()
            .context("ssh: no stdin pipe")?;
        stdin.write_all(&data).context("writing to ssh")?;
        drop(stdin);
        let mut remote = String::new();
        stdout
            .read_to_string(&mut remote)
            .context("reading sha256sum output")?;
        guard.child_mut().wait().context("waiting for ssh")?;
        let upload_ok = remote.split_whitespace().next() == Some(want.as_str());

        // Download: our digest of what came back.
        let remote_cmd = format!("echo ready; cat {}", file.display());
        let (mut guard, mut stdout) = start(world, path, &remote_cmd)?;
        let mut got = Vec::with_capacity(len);
        stdout.read_to_end(&mut got).context("reading from ssh")?;
        guard.child_mut().wait().context("waiting for ssh")?;
        let download_ok = got.len() == len && hex(&Sha256::digest(&got)) == want;
        let echo_ok = echo(world, path, &data)? == want;
        out.push(ChecksumResult {
            path,
            label: path.label(),
            bytes: len,
            upload_sha256_ok: upload_ok,
            download_sha256_ok: download_ok,
            echo_sha256_ok: echo_ok,
        });
    }
    Ok(out)
}

/// Send `data` through a remote `cat` while reading it back; the digest of
/// what returned, or of nothing if ssh was killed at the deadline.
fn echo(world: &World, path: PathKind, data: &[u8]) -> Result<String> {
    let (mut guard, mut stdout) = start(world, path, "echo ready; cat")?;
    let mut stdin = guard
        .child_mut()
        .stdin
        .take()
        .context("ssh: no stdin pipe")?;
    let pid = guard.child_mut().id();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let until = Instant::now() + ECHO_DEADLINE;
            while !done.load(Ordering::Relaxed) && Instant::now() < until {
                thread::sleep(Duration::from_millis(100));
            }
            if !done.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        })
    };
    let input = data.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut got = Vec::with_capacity(data.len());
    let read = stdout.read_to_end(&mut got);
    done.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let _ = watchdog.join();
    guard.child_mut().wait().context("waiting for ssh")?;
    read.context("reading the echo")?;
    Ok(hex(&Sha256::digest(&got)))
}
