//! Which cores each process may run on.
//!
//! By default (`shared`) every process may use every core, as the issue's
//! goals are set: on a 2-core machine the client, the target and the hop
//! (gateway or bastion sshd) compete for the same two cores, so whatever CPU
//! a hop spends comes straight out of the endpoints' share. In a deployment
//! the hop has a machine of its own. `split` models that on one machine: the
//! hops (both gateways and the bastion sshd, with every thread and child they
//! start) get the upper half of the cores this process may use; the bench
//! itself, the `ssh` clients it starts (`ssh -W` included: it runs on the
//! client's machine) and the target sshd get the lower half.

use anyhow::{Context, Result, bail};
use rustix::process::Pid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

use crate::procs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Every process on every core.
    Shared,
    /// Hops on one half of the cores, endpoints on the other.
    Split,
}

/// The two halves of the cores, for `split`.
pub struct Halves {
    endpoints: Vec<usize>,
    hops: Vec<usize>,
}

impl Halves {
    /// Split the cores this process may use; the hops get the upper half
    /// (the smaller one when the count is odd).
    pub fn of_this_process() -> Result<Halves> {
        let allowed = sched_getaffinity(None).context("reading this process's CPU affinity")?;
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect();
        Halves::of(&cpus)
    }

    fn of(cpus: &[usize]) -> Result<Halves> {
        if cpus.len() < 2 {
            bail!(
                "--layout split needs at least two cores, this process may use {}",
                cpus.len()
            );
        }
        let (endpoints, hops) = cpus.split_at(cpus.len().div_ceil(2));
        Ok(Halves {
            endpoints: endpoints.to_vec(),
            hops: hops.to_vec(),
        })
    }

    /// The bench's own thread, and so every process it starts from now on.
    pub fn pin_self_to_endpoints(&self) -> Result<()> {
        sched_setaffinity(None, &set_of(&self.endpoints))
            .context("pinning the bench to the endpoint cores")
    }

    pub fn pin_to_hops(&self, pid: u32) -> Result<()> {
        pin_process(pid, &self.hops)
    }

    pub fn pin_to_endpoints(&self, pid: u32) -> Result<()> {
        pin_process(pid, &self.endpoints)
    }

    /// The endpoint cores as `taskset -c` takes them.
    pub fn endpoint_list(&self) -> String {
        list(&self.endpoints)
    }

    pub fn describe(&self) -> String {
        format!(
            "split: gateways and bastion sshd on CPU {}, clients and target sshd on CPU {}",
            list(&self.hops),
            list(&self.endpoints)
        )
    }
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn set_of(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    set
}

/// Every thread the process has now; threads and children it starts later
/// inherit the mask of the thread that starts them.
fn pin_process(pid: u32, cpus: &[usize]) -> Result<()> {
    let set = set_of(cpus);
    let mut pinned = 0;
    for tid in procs::thread_ids(pid)? {
        let Some(thread) = i32::try_from(tid).ok().and_then(Pid::from_raw) else {
            continue;
        };
        match sched_setaffinity(Some(thread), &set) {
            Ok(()) => pinned += 1,
            // The thread ended since the listing.
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(e).with_context(|| format!("pinning thread {tid} of {pid}")),
        }
    }
    if pinned == 0 {
        bail!("process {pid} has no thread left to pin");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_give_the_hops_the_upper_cores() {
        let h = Halves::of(&[0, 1]).unwrap();
        assert_eq!((h.endpoints, h.hops), (vec![0], vec![1]));
        let h = Halves::of(&[0, 2, 3, 5, 7]).unwrap();
        assert_eq!((h.endpoints, h.hops), (vec![0, 2, 3], vec![5, 7]));
        assert!(Halves::of(&[3]).is_err());
    }

    #[test]
    fn a_pinned_child_runs_only_where_it_was_put() {
        let halves = match Halves::of_this_process() {
            Ok(h) => h,
            // A one-core test machine cannot split.
            Err(_) => return,
        };
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let result = halves.pin_to_hops(child.id());
        let mask = Pid::from_raw(child.id() as i32).map(|p| sched_getaffinity(Some(p)));
        let _ = child.kill();
        let _ = child.wait();
        result.unwrap();
        let mask = mask.unwrap().unwrap();
        for c in 0..CpuSet::MAX_CPU {
            assert_eq!(mask.is_set(c), halves.hops.contains(&c), "cpu {c}");
        }
    }
}
