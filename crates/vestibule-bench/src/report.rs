//! The results: JSON as recorded, and the Markdown tables printed at the end.

use std::fmt::Write;

use serde::Serialize;

use crate::bulk::{self, BulkResult, ChecksumResult, Direction};
use crate::concurrency::ConcurrencyResult;
use crate::connect::{self, ConnectResult};
use crate::goals::{self, Verdict};
use crate::machine::{CryptoSpeed, Machine};
use crate::rtt::{self, RttResult};
use crate::world::PathKind;

#[derive(Serialize)]
pub struct Results {
    pub command: String,
    pub quick: bool,
    pub started_unix: u64,
    pub wall_secs: f64,
    pub machine: Machine,
    pub crypto_one_core: Vec<CryptoSpeed>,
    /// The shell form of each path (with `true` as the remote command).
    pub paths: Vec<(PathKind, String)>,
    /// What `ssh -v` says each path negotiated (client side of each hop).
    pub ciphers: Vec<(PathKind, Vec<String>)>,
    pub connect: Vec<ConnectResult>,
    pub bulk: Vec<BulkResult>,
    pub checksums: Vec<ChecksumResult>,
    pub rtt: Vec<RttResult>,
    pub concurrency: Option<ConcurrencyResult>,
    /// Which cores the processes ran on (`--layout`).
    pub layout: String,
    /// The benchmark issue's goals, judged on this run's figures.
    pub goals: Vec<Verdict>,
    /// Phases that failed or were skipped, and other remarks.
    pub notes: Vec<String>,
}

pub(crate) fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "–".to_owned(),
    }
}

impl Results {
    /// Throughput lost to recording, per direction, as the run measured it.
    fn recording_cost(&self) -> Vec<String> {
        [Direction::Upload, Direction::Download]
            .into_iter()
            .filter_map(|d| {
                let on = self.bulk(PathKind::Vestibule, d)?;
                let off = self.bulk(PathKind::VestibuleUnrecorded, d)?;
                Some(format!(
                    "{} {:.0} vs {:.0} MiB/s ({:+.1} % throughput), {:+.2} gateway and {:+.2} machine CPU s per GiB",
                    d.name(),
                    on.mib_s_median,
                    off.mib_s_median,
                    (on.mib_s_median / off.mib_s_median - 1.0) * 100.0,
                    on.gateway_cpu_s_per_gib - off.gateway_cpu_s_per_gib,
                    on.machine_cpu_s_per_gib - off.machine_cpu_s_per_gib
                ))
            })
            .collect()
    }

    fn connect(&self, p: PathKind) -> Option<&ConnectResult> {
        connect::find(&self.connect, p)
    }

    fn bulk(&self, p: PathKind, d: Direction) -> Option<&BulkResult> {
        bulk::find(&self.bulk, p, d)
    }

    fn rtt(&self, p: PathKind, pty: bool) -> Option<&RttResult> {
        rtt::find(&self.rtt, p, pty)
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "Command: `{}`", self.command);
        let _ = writeln!(
            s,
            "Machine: {} × {}, {} MiB RAM, Linux {}, {}; vestibule {}; load average {} before, {} after; {:.0} s wall.\n",
            m.nproc,
            m.cpu_model,
            m.mem_total_kib / 1024,
            m.kernel,
            m.openssh,
            m.vestibule_commit,
            m.loadavg_before,
            m.loadavg_after,
            self.wall_secs
        );
        let _ = writeln!(s, "Layout: {}.\n", self.layout);
        let size_mib = self.bulk.first().map_or(0, |b| b.size_bytes >> 20);
        let runs = self.bulk.first().map_or(0, |b| b.runs);
        let n_conn = self.connect.first().map_or(0, |c| c.runs);
        let n_rtt = self.rtt.first().map_or(0, |r| r.samples);
        let _ = writeln!(
            s,
            "| path | connect min / median / p95 (ms, n={n_conn}) | upload MiB/s | download MiB/s | RTT p50 / p99 µs (n={n_rtt}) | RTT PTY p50 / p99 µs |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        let paths: Vec<PathKind> = self.paths.iter().map(|(p, _)| *p).collect();
        for &p in &paths {
            let c = self.connect(p);
            let up = self.bulk(p, Direction::Upload).map(|b| b.mib_s_median);
            let down = self.bulk(p, Direction::Download).map(|b| b.mib_s_median);
            let r = self.rtt(p, false);
            let rp = self.rtt(p, true);
            let _ = writeln!(
                s,
                "| {} | {} / {} / {} | {} | {} | {} / {} | {} / {} |",
                p.label(),
                fmt_opt(c.map(|c| c.min_ms), 1),
                fmt_opt(c.map(|c| c.median_ms), 1),
                fmt_opt(c.map(|c| c.p95_ms), 1),
                fmt_opt(up, 0),
                fmt_opt(down, 0),
                fmt_opt(r.map(|r| r.p50_us), 0),
                fmt_opt(r.map(|r| r.p99_us), 0),
                fmt_opt(rp.map(|r| r.p50_us), 0),
                fmt_opt(rp.map(|r| r.p99_us), 0),
            );
        }
        let _ = writeln!(
            s,
            "\nBulk: {size_mib} MiB per transfer, median of {runs} interleaved run(s). Connect: `ssh ... true`.\n"
        );
        let mut columns = vec![PathKind::Vestibule, PathKind::VestibuleJ];
        if paths.contains(&PathKind::VestibuleUnrecorded) {
            columns.push(PathKind::VestibuleUnrecorded);
        }
        let header: Vec<&str> = columns.iter().map(|p| p.label()).collect();
        let _ = writeln!(
            s,
            "| gateway cost (`vestibule serve`: utime+stime, or scheduler run time where a row says so) | {} | idle baseline (during direct runs) |",
            header.join(" | ")
        );
        let _ = writeln!(s, "|---|{}---|", "---|".repeat(columns.len()));
        let row = |name: &str, value: &dyn Fn(PathKind) -> Option<f64>, digits: usize| {
            let cells: Vec<String> = columns
                .iter()
                .chain(std::iter::once(&PathKind::Direct))
                .map(|&p| fmt_opt(value(p), digits))
                .collect();
            format!("| {name} | {} |", cells.join(" | "))
        };
        let _ = writeln!(
            s,
            "{}",
            row(
                "CPU ms per connection",
                &|p| self.connect(p).map(|c| c.gateway_cpu_ms_per_conn),
                1
            )
        );
        for pty in [false, true] {
            let name = if pty {
                "CPU µs per round trip (PTY; scheduler run time, median)"
            } else {
                "CPU µs per round trip (scheduler run time, median)"
            };
            let cpu = |p| self.rtt(p, pty).map(|r| r.gateway_cpu_us_p50);
            let _ = writeln!(s, "{}", row(name, &cpu, 1));
        }
        for d in [Direction::Upload, Direction::Download] {
            let name = format!("CPU s per GiB, {}", d.name());
            let cpu = |p| self.bulk(p, d).map(|b| b.gateway_cpu_s_per_gib);
            let _ = writeln!(s, "{}", row(&name, &cpu, 2));
        }
        if let (Some(r), Some(rp)) = (
            self.rtt(PathKind::Proxyjump, false),
            self.rtt(PathKind::Proxyjump, true),
        ) {
            let _ = writeln!(
                s,
                "\nThe plain bastion's sshd processes on the ProxyJump path (its hop, to set beside the gateway's): {:.1} µs of CPU per round trip, {:.1} with a PTY (scheduler run time, median).",
                r.bastion_cpu_us_p50, rp.bastion_cpu_us_p50
            );
        }
        if !self.bulk.is_empty() {
            let _ = writeln!(
                s,
                "\n| machine CPU s per GiB (busy time of both cores: clients, sshds, gateway, kernel) | upload | download |\n|---|---|---|"
            );
            for &p in &paths {
                let cost = |d| self.bulk(p, d).map(|b| b.machine_cpu_s_per_gib);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    p.label(),
                    fmt_opt(cost(Direction::Upload), 2),
                    fmt_opt(cost(Direction::Download), 2)
                );
            }
        }
        if paths.contains(&PathKind::VestibuleUnrecorded) {
            let _ = writeln!(
                s,
                "\nCost of recording (user:target with recording on against the same gateway with it off, same run): {}.",
                self.recording_cost().join("; ")
            );
        }
        if let Some(c) = &self.concurrency {
            let _ = writeln!(
                s,
                "\nConcurrency ({}): {} idle sessions opened in {:.1} s ({:.0}/s, at most {} opening at once), gateway CPU {:.1} ms per session; gateway RSS {} KiB before, {} KiB with all open ({:.1} KiB per session), {} KiB after closing them.",
                c.path.label(),
                c.sessions,
                c.open_secs,
                c.sessions_per_sec,
                c.max_in_flight,
                c.gateway_cpu_ms_per_session,
                c.rss_before_kib,
                c.rss_after_kib,
                c.kib_per_session,
                c.rss_after_close_kib
            );
        }
        if !self.checksums.is_empty() {
            let all_ok = self
                .checksums
                .iter()
                .all(|c| c.upload_sha256_ok && c.download_sha256_ok && c.echo_sha256_ok);
            let bytes = self.checksums[0].bytes >> 20;
            let _ = writeln!(
                s,
                "\nByte-exactness: {bytes} MiB of random data each way per path, then through `cat` both ways at once, sha256 {}.",
                if all_ok {
                    "identical on every path".to_owned()
                } else {
                    let bad: Vec<String> = self
                        .checksums
                        .iter()
                        .filter(|c| {
                            !(c.upload_sha256_ok && c.download_sha256_ok && c.echo_sha256_ok)
                        })
                        .map(|c| c.label.to_owned())
                        .collect();
                    format!("MISMATCH on {}", bad.join(", "))
                }
            );
        }
        if !self.crypto_one_core.is_empty() {
            let speeds: Vec<String> = self
                .crypto_one_core
                .iter()
                .map(|c| format!("{} {:.0} MiB/s", c.cipher, c.mib_s))
                .collect();
            let _ = writeln!(
                s,
                "\nCipher speed on one core (`openssl speed -evp`, 16 KiB blocks): {}.",
                speeds.join(", ")
            );
        }
        if !self.goals.is_empty() {
            let _ = write!(s, "\n{}", goals::markdown(&self.goals));
        }
        for (p, c) in &self.ciphers {
            let _ = writeln!(s, "\nNegotiated ({}): {}.", p.label(), c.join("; "));
        }
        for note in &self.notes {
            let _ = writeln!(s, "\nNote: {note}");
        }
        s
    }
}
