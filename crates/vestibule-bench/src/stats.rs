//! Order statistics over samples, and gateway CPU accounting.

use anyhow::Result;

use crate::procs;

/// The median (mean of the two middle values for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let s = sorted(samples);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile `p` (0..=100).
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let s = sorted(samples);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn min(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Counts processes' summed CPU time in windows attributed to whoever asks.
pub struct CpuMeter {
    pids: Vec<u32>,
    ticks_per_sec: u64,
    last: u64,
    machine_last: u64,
    machine_window: u64,
}

impl CpuMeter {
    pub fn new(pids: Vec<u32>, ticks_per_sec: u64) -> Result<Self> {
        let last = ticks_of(&pids)?;
        Ok(Self {
            pids,
            ticks_per_sec,
            last,
            machine_last: procs::machine_busy_ticks()?,
            machine_window: 0,
        })
    }

    /// Start a new window now.
    pub fn reset(&mut self) -> Result<()> {
        self.last = ticks_of(&self.pids)?;
        self.machine_last = procs::machine_busy_ticks()?;
        Ok(())
    }

    /// CPU seconds used since the window started; starts the next window.
    pub fn lap(&mut self) -> Result<f64> {
        let now = ticks_of(&self.pids)?;
        let used = now.saturating_sub(self.last);
        self.last = now;
        let machine = procs::machine_busy_ticks()?;
        self.machine_window = machine.saturating_sub(self.machine_last);
        self.machine_last = machine;
        Ok(used as f64 / self.ticks_per_sec as f64)
    }

    /// CPU seconds the whole machine was busy (every process and kernel
    /// thread, both cores) in the window the last `lap` closed.
    pub fn machine_last_window(&self) -> f64 {
        self.machine_window as f64 / self.ticks_per_sec as f64
    }
}

fn ticks_of(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| procs::cpu_ticks(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        let s = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&s), 3.0);
        assert_eq!(median(&[1.0, 2.0]), 1.5);
        assert_eq!(percentile(&s, 50.0), 3.0);
        assert_eq!(percentile(&s, 95.0), 5.0);
        assert_eq!(percentile(&s, 0.0), 1.0);
        assert_eq!(min(&s), 1.0);
        assert_eq!(max(&s), 5.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 99.0), 99.0);
    }
}
