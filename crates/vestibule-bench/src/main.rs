//! `vestibule-bench`: measures the Vestibule gateway against direct ssh and
//! OpenSSH ProxyJump (a plain sshd bastion) on one machine, 127.0.0.1 only.
//!
//! It owns the whole experiment: it starts a target sshd, a plain OpenSSH
//! bastion and `vestibule serve` in a temporary directory, sets the gateway up
//! through its admin CLI, drives the stock `ssh` client over four paths
//! (direct, ProxyJump, Vestibule with the target in the user name, Vestibule as
//! ProxyJump) with the runs interleaved, reads the gateway's CPU time and memory
//! from /proc, tears everything down and prints Markdown (and JSON with `--out`).
//!
//! It must not touch product code: it links no Vestibule crate and drives only
//! the real binaries (`target/release/vestibule`, `/usr/sbin/sshd`, `ssh`),
//! exactly as an operator would. Build the gateway first with
//! `cargo build --release -p vestibule`. It runs as root (sshd, `root` logins).

mod bulk;
mod concurrency;
mod connect;
mod gateway;
mod goals;
mod layout;
mod machine;
mod procs;
mod report;
mod rtt;
mod sshd;
mod stats;
mod world;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;

use crate::gateway::GatewaySettings;
use crate::layout::{Halves, Layout};
use crate::report::Results;
use crate::stats::CpuMeter;
use crate::world::{ClientAlgorithms, Recording, World};

#[derive(Parser)]
#[command(about = "Benchmark Vestibule against direct ssh and OpenSSH ProxyJump on 127.0.0.1")]
struct Args {
    /// Fewer runs and smaller transfers (to debug, or on a slow machine).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Session recording in the gateway (`off` sets recording.enabled = false;
    /// `both` adds a second, non-recording gateway to the same interleaved
    /// run, to measure what recording costs).
    #[arg(long, value_enum, default_value = "both")]
    recording: Recording,
    /// `off`: the recording gateway does not fdatasync its recordings at each
    /// flush (`recording.sync_on_flush = false`), to price the sync.
    #[arg(long, value_enum, default_value = "on")]
    recording_sync: Switch,
    /// A `[recording]` setting for the recording gateway, as a TOML line
    /// (e.g. `--recording-set direct_io=false`, to price one); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    recording_set: Vec<String>,
    /// An `[audit]` setting for every gateway, as a TOML line (e.g.
    /// `--audit-set 'record_linger = "0s"'`, to price one); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    audit_set: Vec<String>,
    /// The one cipher the client offers on every path (e.g.
    /// `aes128-gcm@openssh.com`); by default OpenSSH's own order, which puts
    /// chacha20-poly1305 first.
    #[arg(long)]
    cipher: Option<String>,
    /// The one key exchange the client offers on every path (e.g.
    /// `curve25519-sha256`, to compare paths on equal terms: by default the
    /// client picks `sntrup761x25519-sha512` with OpenSSH servers, which
    /// costs this machine about 130 ms per connection, and Vestibule does not
    /// offer it).
    #[arg(long)]
    kex: Option<String>,
    /// Run only these parts (e.g. `--only bulk` while profiling the gateway).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Set everything up, print each path's full `ssh` command and the
    /// gateways' PIDs, and wait for Enter before measuring (to drive or
    /// profile a path by hand; combine with `--only` to measure nothing).
    #[arg(long)]
    hold: bool,
    /// `split`: the gateways and the bastion sshd on the upper half of the
    /// cores, the clients and the target sshd on the lower half, as when the
    /// hop has a machine of its own; `shared` (the goals' set-up): every
    /// process on every core.
    #[arg(long, value_enum, default_value = "shared")]
    layout: Layout,
    /// Bulk rounds per path and direction (default 4, 1 with `--quick`);
    /// an even count runs each path as often in the forward order as in the
    /// reverse one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    bulk_runs: Option<u16>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Connect,
    Bulk,
    Checksums,
    Rtt,
    Concurrency,
}

/// How much of everything a run does.
struct Plan {
    connects: usize,
    bulk_bytes: u64,
    bulk_runs: usize,
    checksum_bytes: usize,
    rtt_samples: usize,
    sessions: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                connects: 10,
                bulk_bytes: 64 << 20,
                bulk_runs: 1,
                checksum_bytes: 16 << 20,
                rtt_samples: 50,
                sessions: 100,
            }
        } else {
            Self {
                connects: 50,
                bulk_bytes: 256 << 20,
                // Even, so each path runs as often in the forward order as in
                // the reverse one (`bulk::measure`).
                bulk_runs: 4,
                checksum_bytes: 16 << 20,
                // A p99 of 200 samples is the second-slowest of them, and
                // moved by up to 300 µs between runs; of 1,000, the tenth.
                rtt_samples: 1000,
                sessions: 1000,
            }
        }
    }
}

/// Print what a person needs to drive each path by hand, then wait for Enter.
fn hold(world: &World, halves: Option<&Halves>) -> Result<()> {
    for &path in &world.paths {
        println!(
            "{}: ssh {}",
            path.label(),
            world.ssh_args(path, false).join(" ")
        );
    }
    println!("gateway pids: {:?}", world.gateway_pids());
    if let Some(h) = halves {
        println!(
            "{}; run the commands above under `taskset -c {}` to keep the split",
            h.describe(),
            h.endpoint_list()
        );
    }
    println!("press Enter to go on");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading stdin")?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    procs::clean_up_on_signals()?;
    let mut plan = Plan::new(args.quick);
    if let Some(n) = args.bulk_runs {
        plan.bulk_runs = usize::from(n);
    }
    let started = Instant::now();
    let bin = gateway::binary()?;
    // Each idle session costs us a pipe; leave room for the ssh processes too.
    let nofile = procs::ensure_nofile(4 * plan.sessions as u64 + 1024)?;
    let ticks = procs::clk_tck()?;
    let mut command = String::from("cargo run --release -p vestibule-bench --");
    for a in std::env::args().skip(1) {
        command.push(' ');
        command.push_str(&a);
    }
    let mut results = Results {
        command,
        quick: args.quick,
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        wall_secs: 0.0,
        machine: machine::Machine::probe()?,
        crypto_one_core: Vec::new(),
        paths: Vec::new(),
        ciphers: Vec::new(),
        connect: Vec::new(),
        bulk: Vec::new(),
        checksums: Vec::new(),
        rtt: Vec::new(),
        concurrency: None,
        layout: "shared: every process on every core".into(),
        goals: Vec::new(),
        notes: Vec::new(),
    };
    eprintln!("cipher speed (openssl speed, one core)...");
    results.crypto_one_core = machine::crypto_speeds(1);
    if results.crypto_one_core.is_empty() {
        results
            .notes
            .push("openssl speed unavailable: cipher speeds not measured".into());
    }

    eprintln!("setting up target sshd, bastion sshd and vestibule...");
    let mut settings = GatewaySettings {
        recording: args.recording_set.clone(),
        audit: args.audit_set.clone(),
    };
    if args.recording_sync == Switch::Off {
        settings.recording.push("sync_on_flush = false".into());
    }
    let client = ClientAlgorithms {
        cipher: args.cipher.clone(),
        kex: args.kex.clone(),
    };
    let halves = match args.layout {
        Layout::Shared => None,
        Layout::Split => Some(Halves::of_this_process()?),
    };
    if let Some(h) = &halves {
        // Before setup, so that every process started from here on inherits it.
        h.pin_self_to_endpoints()?;
    }
    let world = World::setup(&bin, args.recording, &settings, &client)?;
    if let Some(h) = &halves {
        for pid in world.gateway_pids() {
            h.pin_to_hops(pid)?;
        }
        h.pin_to_hops(world.bastion.pid())?;
        h.pin_to_endpoints(world.target.pid())?;
        results.layout = h.describe();
    }
    world.check_paths()?;
    results.paths = world
        .paths
        .iter()
        .map(|&p| (p, world.describe(p, "true")))
        .collect();
    for &p in &world.paths {
        results.ciphers.push((p, world.negotiated(p)?));
    }
    if args.hold {
        hold(&world, halves.as_ref())?;
    }
    let mut meter = CpuMeter::new(world.gateway_pids(), ticks)?;
    let runs = |part: Part| args.only.is_empty() || args.only.contains(&part);

    if runs(Part::Connect) {
        eprintln!("connect latency: {} runs per path...", plan.connects);
        match connect::measure(&world, plan.connects, &mut meter) {
            Ok(r) => results.connect = r,
            Err(e) => results.notes.push(format!("connect latency failed: {e:#}")),
        }
    }
    if runs(Part::Bulk) {
        eprintln!(
            "bulk throughput: {} MiB x {} run(s) per path and direction...",
            plan.bulk_bytes >> 20,
            plan.bulk_runs
        );
        match bulk::measure(&world, plan.bulk_bytes, plan.bulk_runs, &mut meter) {
            Ok(r) => results.bulk = r,
            Err(e) => results.notes.push(format!("bulk throughput failed: {e:#}")),
        }
    }
    if runs(Part::Checksums) {
        eprintln!("byte-exactness (sha256 of random data)...");
        match bulk::checksums(&world, plan.checksum_bytes) {
            Ok(r) => results.checksums = r,
            Err(e) => results.notes.push(format!("checksums failed: {e:#}")),
        }
    }
    if runs(Part::Rtt) {
        eprintln!("round trips: {} samples per path...", plan.rtt_samples);
        match rtt::measure(&world, plan.rtt_samples) {
            Ok(r) => results.rtt = r,
            Err(e) => results.notes.push(format!("round trips failed: {e:#}")),
        }
    }
    if runs(Part::Concurrency) {
        eprintln!(
            "concurrency: {} idle sessions (RLIMIT_NOFILE {nofile})...",
            plan.sessions
        );
        match concurrency::measure(&world, plan.sessions, &mut meter) {
            Ok(r) => results.concurrency = Some(r),
            Err(e) => results.notes.push(format!("concurrency failed: {e:#}")),
        }
    }
    drop(world);

    results.goals = goals::judge(&goals::Figures {
        connect: &results.connect,
        bulk: &results.bulk,
        rtt: &results.rtt,
        concurrency: results.concurrency.as_ref(),
        direct_on_one_core: halves.is_some(),
    });
    if halves.is_some() && !results.rtt.is_empty() {
        results.notes.push(
            "round-trip p50 against direct is not judged under --layout split: direct's client and target sshd share one core there, which no shared-core path can match".into(),
        );
    }
    results.machine.loadavg_after = machine::loadavg();
    results.wall_secs = started.elapsed().as_secs_f64();
    println!("{}", results.markdown());
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&results).context("serialising results")?;
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("results written to {}", out.display());
    }
    Ok(())
}
