//! The performance goals of the project's benchmark issue, judged from one
//! run's own figures, so that every run says which goals it met.
//!
//! Each goal is a ratio or a bound taken within the same run (the paths are
//! interleaved, so a slow minute of the machine slows all of them). For
//! throughput, the verdict is the ratio of the medians, and beside it the
//! spread of the ratios round by round (each round moves the same bytes on
//! every path within seconds of each other): a goal met by the medians but
//! missed in half the rounds is met by noise.

use serde::Serialize;

use crate::bulk::{self, BulkResult, Direction};
use crate::concurrency::ConcurrencyResult;
use crate::connect::{self, ConnectResult};
use crate::report::fmt_opt;
use crate::rtt::{self, RttResult};
use crate::stats;
use crate::world::PathKind;

/// Throughput through the gateway over ProxyJump's, both ways.
pub const MIN_THROUGHPUT_RATIO: f64 = 1.4;
/// Gateway CPU seconds per GiB moved.
pub const MAX_CPU_S_PER_GIB: f64 = 2.0;
/// Round-trip p50 over direct's, microseconds.
pub const MAX_P50_OVER_DIRECT_US: f64 = 100.0;
/// Connect median over ProxyJump's.
pub const MAX_CONNECT_RATIO: f64 = 0.4;
/// Gateway CPU per connection, milliseconds.
pub const MAX_CPU_MS_PER_CONNECTION: f64 = 15.0;
/// Gateway RSS per idle session, KiB.
pub const MAX_KIB_PER_SESSION: f64 = 64.0;
/// Throughput lost to recording, as a fraction.
pub const MAX_RECORDING_COST: f64 = 0.10;

/// The gateway paths every goal but recording's cost is judged on.
const GATEWAY_PATHS: [PathKind; 2] = [PathKind::Vestibule, PathKind::VestibuleJ];

/// One goal on one path (and direction or terminal mode).
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub goal: &'static str,
    /// What was measured: a path, and a direction or PTY where it applies.
    pub subject: String,
    /// The figure the verdict is on, in the goal's own unit.
    pub value: f64,
    /// The bound it is held to, in the same unit.
    pub bound: f64,
    /// Where the figure must be: `at_least` or `at_most` the bound.
    pub sense: Sense,
    pub met: bool,
    /// Round by round (throughput and recording's cost): the lowest and
    /// highest ratio of one round, and how many rounds met the goal.
    pub rounds: Option<Rounds>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sense {
    AtLeast,
    AtMost,
}

#[derive(Debug, Serialize)]
pub struct Rounds {
    pub min: f64,
    pub max: f64,
    pub met: usize,
    pub of: usize,
}

impl Verdict {
    fn new(goal: &'static str, subject: String, value: f64, bound: f64, sense: Sense) -> Verdict {
        Verdict {
            goal,
            subject,
            value,
            bound,
            sense,
            met: sense.holds(value, bound),
            rounds: None,
        }
    }

    /// The same goal on each round's pair of transfers.
    fn with_rounds(mut self, ratios: &[f64]) -> Verdict {
        if !ratios.is_empty() {
            self.rounds = Some(Rounds {
                min: stats::min(ratios),
                max: stats::max(ratios),
                met: ratios
                    .iter()
                    .filter(|&&r| self.sense.holds(r, self.bound))
                    .count(),
                of: ratios.len(),
            });
        }
        self
    }
}

impl Sense {
    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            // A figure that could not be computed (NaN) meets nothing.
            Sense::AtLeast => value >= bound,
            Sense::AtMost => value <= bound,
        }
    }
}

/// The figures of one run, as the goals need them.
pub struct Figures<'a> {
    pub connect: &'a [ConnectResult],
    pub bulk: &'a [BulkResult],
    pub rtt: &'a [RttResult],
    pub concurrency: Option<&'a ConcurrencyResult>,
    /// Direct's client and target sshd shared one core (`--layout split`),
    /// which makes its round trip shorter than on any shared machine: the
    /// p50 bound against direct is not judged then.
    pub direct_on_one_core: bool,
}

/// Every goal the run's figures allow judging; a part not measured (`--only`)
/// or a path not run (`--recording off`) gives no verdict.
pub fn judge(f: &Figures) -> Vec<Verdict> {
    let Figures {
        connect,
        bulk,
        rtt,
        concurrency,
        direct_on_one_core,
    } = *f;
    let mut out = Vec::new();
    throughput(bulk, &mut out);
    round_trips(rtt, !direct_on_one_core, &mut out);
    connects(connect, &mut out);
    if let Some(c) = concurrency {
        out.push(Verdict::new(
            "gateway RSS per idle session (KiB)",
            format!("{}, {} sessions", c.path.label(), c.sessions),
            c.kib_per_session,
            MAX_KIB_PER_SESSION,
            Sense::AtMost,
        ));
    }
    recording_cost(bulk, &mut out);
    out
}

/// `a` over `b`, for the medians and for each round's pair.
fn ratios(a: &BulkResult, b: &BulkResult) -> (f64, Vec<f64>) {
    let rounds = a
        .mib_s_samples
        .iter()
        .zip(&b.mib_s_samples)
        .map(|(x, y)| x / y)
        .collect();
    (a.mib_s_median / b.mib_s_median, rounds)
}

fn throughput(bulk: &[BulkResult], out: &mut Vec<Verdict>) {
    for d in [Direction::Upload, Direction::Download] {
        for p in GATEWAY_PATHS {
            let Some(b) = bulk::find(bulk, p, d) else {
                continue;
            };
            if let Some(pj) = bulk::find(bulk, PathKind::Proxyjump, d) {
                let (ratio, rounds) = ratios(b, pj);
                out.push(
                    Verdict::new(
                        "throughput over ProxyJump's (×)",
                        format!("{}, {}", p.label(), d.name()),
                        ratio,
                        MIN_THROUGHPUT_RATIO,
                        Sense::AtLeast,
                    )
                    .with_rounds(&rounds),
                );
            }
            out.push(Verdict::new(
                "gateway CPU per GiB (s)",
                format!("{}, {}", p.label(), d.name()),
                b.gateway_cpu_s_per_gib,
                MAX_CPU_S_PER_GIB,
                Sense::AtMost,
            ));
        }
    }
}

fn round_trips(rtt: &[RttResult], against_direct: bool, out: &mut Vec<Verdict>) {
    for pty in [false, true] {
        let mode = if pty { ", PTY" } else { "" };
        for p in GATEWAY_PATHS {
            let Some(r) = rtt::find(rtt, p, pty) else {
                continue;
            };
            if let Some(pj) = rtt::find(rtt, PathKind::Proxyjump, pty) {
                out.push(Verdict::new(
                    "round-trip p99, at most ProxyJump's (µs)",
                    format!("{}{mode}", p.label()),
                    r.p99_us,
                    pj.p99_us,
                    Sense::AtMost,
                ));
            }
            if let Some(direct) = rtt::find(rtt, PathKind::Direct, pty).filter(|_| against_direct) {
                out.push(Verdict::new(
                    "round-trip p50 over direct's (µs)",
                    format!("{}{mode}", p.label()),
                    r.p50_us - direct.p50_us,
                    MAX_P50_OVER_DIRECT_US,
                    Sense::AtMost,
                ));
            }
        }
    }
}

fn connects(connect: &[ConnectResult], out: &mut Vec<Verdict>) {
    let pj = connect::find(connect, PathKind::Proxyjump);
    for p in GATEWAY_PATHS {
        let Some(c) = connect::find(connect, p) else {
            continue;
        };
        if let Some(pj) = pj {
            out.push(Verdict::new(
                "connect median over ProxyJump's (×)",
                p.label().to_owned(),
                c.median_ms / pj.median_ms,
                MAX_CONNECT_RATIO,
                Sense::AtMost,
            ));
        }
        out.push(Verdict::new(
            "gateway CPU per connection (ms)",
            p.label().to_owned(),
            c.gateway_cpu_ms_per_conn,
            MAX_CPU_MS_PER_CONNECTION,
            Sense::AtMost,
        ));
    }
}

/// Recorded user:target against the same path through the gateway that does
/// not record (`--recording both`): the fraction of throughput kept.
fn recording_cost(bulk: &[BulkResult], out: &mut Vec<Verdict>) {
    for d in [Direction::Upload, Direction::Download] {
        let (Some(on), Some(off)) = (
            bulk::find(bulk, PathKind::Vestibule, d),
            bulk::find(bulk, PathKind::VestibuleUnrecorded, d),
        ) else {
            continue;
        };
        let (kept, rounds) = ratios(on, off);
        out.push(
            Verdict::new(
                "throughput kept with recording on (×)",
                format!("user:target, {}", d.name()),
                kept,
                1.0 - MAX_RECORDING_COST,
                Sense::AtLeast,
            )
            .with_rounds(&rounds),
        );
    }
}

/// The verdicts as a Markdown table, with a count of those met.
pub fn markdown(verdicts: &[Verdict]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if verdicts.is_empty() {
        return s;
    }
    let met = verdicts.iter().filter(|v| v.met).count();
    let _ = writeln!(
        s,
        "Goals, judged on this run's figures: {met} of {} met.\n",
        verdicts.len()
    );
    let _ = writeln!(
        s,
        "| goal | path | measured | bound | met? | round by round |\n|---|---|---|---|---|---|"
    );
    for v in verdicts {
        let rounds = v.rounds.as_ref().map_or(String::new(), |r| {
            format!("{:.2}–{:.2}, met in {} of {}", r.min, r.max, r.met, r.of)
        });
        let bound = match v.sense {
            Sense::AtLeast => format!("≥ {}", figure(v.bound)),
            Sense::AtMost => format!("≤ {}", figure(v.bound)),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            v.goal,
            v.subject,
            figure(v.value),
            bound,
            if v.met { "yes" } else { "**no**" },
            rounds
        );
    }
    s
}

/// Two decimals for ratios and seconds, none for microseconds and KiB.
fn figure(x: f64) -> String {
    fmt_opt(Some(x), if x.abs() >= 20.0 { 0 } else { 2 })
}

#[cfg(test)]
mod tests;
