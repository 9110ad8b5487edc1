//! What machine this ran on, and how fast it encrypts on one core.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::procs;

#[derive(Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub openssh: String,
    pub mem_total_kib: u64,
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub vestibule_commit: String,
}

impl Machine {
    pub fn probe() -> Result<Self> {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("reading the kernel release")?
            .trim()
            .to_owned();
        let ssh_v = Command::new("ssh")
            .arg("-V")
            .output()
            .context("running ssh -V")?;
        let openssh = String::from_utf8_lossy(&ssh_v.stderr).trim().to_owned();
        let meminfo = fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        let mem_total_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let manifest = env!("CARGO_MANIFEST_DIR");
        let vestibule_commit = procs::run(
            Command::new("git").args(["-C", manifest, "describe", "--always", "--dirty"]),
        )
        .map_or("unknown".to_owned(), |s| s.trim().to_owned());
        Ok(Self {
            nproc,
            cpu_model,
            kernel,
            openssh,
            mem_total_kib,
            loadavg_before: loadavg(),
            loadavg_after: String::new(),
            vestibule_commit,
        })
    }
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Serialize)]
pub struct CryptoSpeed {
    pub cipher: String,
    /// One core, 16 KiB blocks, `openssl speed -evp`.
    pub mib_s: f64,
}

/// `openssl speed` for the AEAD ciphers SSH uses; empty if openssl is missing.
pub fn crypto_speeds(seconds: u32) -> Vec<CryptoSpeed> {
    ["aes-256-gcm", "chacha20-poly1305", "aes-128-gcm"]
        .iter()
        .filter_map(|&cipher| {
            let out = procs::run(Command::new("openssl").args([
                "speed",
                "-evp",
                cipher,
                "-seconds",
                &seconds.to_string(),
                "-bytes",
                "16384",
            ]))
            .ok()?;
            // Last line: "<NAME>   1234567.89k" (thousands of bytes per second).
            let last = out.lines().rev().find(|l| !l.trim().is_empty())?;
            let k: f64 = last
                .split_whitespace()
                .last()?
                .strip_suffix('k')?
                .parse()
                .ok()?;
            Some(CryptoSpeed {
                cipher: cipher.to_owned(),
                mib_s: k * 1000.0 / (1u64 << 20) as f64,
            })
        })
        .collect()
}
