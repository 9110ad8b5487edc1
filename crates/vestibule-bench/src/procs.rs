//! Child processes and what /proc says about them.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What a signal must clean up: the children alive now and the run's scratch
/// directory (its recordings can be gigabytes). A bench stopped by a signal
/// skips its destructors; sshd and the gateway treat SIGHUP as "reload", so a
/// closed terminal would otherwise leave them running and skew the next run.
struct Live {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    pids: Vec::new(),
    dirs: Vec::new(),
});

fn live() -> std::sync::MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// On SIGINT, SIGTERM or SIGHUP: kill every child, remove the scratch
/// directories, and exit with 128 + the signal.
pub fn clean_up_on_signals() -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    thread::spawn(move || {
        let Some(signal) = signals.forever().next() else {
            return;
        };
        let live = live();
        eprintln!(
            "vestibule-bench: signal {signal}; stopping {} processes and removing the run directory",
            live.pids.len()
        );
        for pid in &live.pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        for dir in &live.dirs {
            let _ = fs::remove_dir_all(dir);
        }
        std::process::exit(128 + signal);
    });
    Ok(())
}

/// The run directory, removed if a signal stops the bench.
pub fn track_dir(dir: &Path) {
    live().dirs.push(dir.to_owned());
}

/// A child process that is killed and reaped when dropped.
pub struct Guard {
    child: Child,
    name: String,
}

impl Guard {
    pub fn spawn(cmd: &mut Command, name: &str) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        live().pids.push(child.id());
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// True once the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        live().pids.retain(|&p| p != pid);
    }
}

/// Run a command to completion; its stdout on success, an error with its
/// stderr otherwise.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Field `n` (numbered from 1, as in proc(5)) of a `/proc/PID/stat` line,
/// for fields after the command name: that one (field 2) may hold spaces
/// and parentheses, so fields are counted from its closing parenthesis.
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state).
    rest.split_whitespace().nth(n.checked_sub(3)?)
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // utime is field 14, stime field 15.
    let field = |n: usize| -> Result<u64> {
        stat_field(&stat, n)
            .with_context(|| format!("{path}: no field {n}"))?
            .parse()
            .with_context(|| format!("{path}: field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

/// CPU time of a process (all its threads), in nanoseconds: the scheduler's
/// exact run time (`/proc/PID/task/*/schedstat`), where `cpu_ticks` counts
/// whole 10 ms ticks, too coarse for one round trip. A thread that ends
/// between two readings takes its time with it, so a difference may come out
/// short, never long.
pub fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for tid in thread_ids(pid)? {
        let path = format!("/proc/{pid}/task/{tid}/schedstat");
        // Threads of the blocking pool come and go; one gone is not an error.
        let Ok(stat) = fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("parsing {path}"))?;
        total += ns;
    }
    Ok(total)
}

/// The ids of a process's threads, as /proc lists them now.
pub fn thread_ids(pid: u32) -> Result<Vec<u32>> {
    let dir = format!("/proc/{pid}/task");
    let mut ids = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let name = entry.with_context(|| format!("listing {dir}"))?.file_name();
        if let Some(tid) = name.to_str().and_then(|n| n.parse().ok()) {
            ids.push(tid);
        }
    }
    Ok(ids)
}

/// Every process descended from `pid` (children, their children, ...), as
/// /proc shows them now.
pub fn descendants(pid: u32) -> Result<Vec<u32>> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")? {
        let name = entry.context("listing /proc")?.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Processes end while we look; one gone is not an error.
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat_field(&stat, 4).and_then(|f| f.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while let Some(&p) = found.get(i) {
        found.extend(
            parent_of
                .iter()
                .filter(|&&(_, pp)| pp == p)
                .map(|&(c, _)| c),
        );
        i += 1;
    }
    found.remove(0);
    Ok(found)
}

/// CPU time the whole machine spent busy (all CPUs: user, nice, system, irq,
/// softirq, steal), in clock ticks, from the `cpu` line of /proc/stat.
pub fn machine_busy_ticks() -> Result<u64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat: no cpu line")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("/proc/stat: bad cpu line")?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already in user, idle and iowait are not busy.
    let busy = [0usize, 1, 2, 5, 6, 7];
    Ok(busy.iter().filter_map(|&i| fields.get(i)).sum())
}

/// Resident set size of a process, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .with_context(|| format!("{path}: no VmRSS"))?;
    line.split_whitespace()
        .nth(1)
        .with_context(|| format!("{path}: bad VmRSS line"))?
        .parse()
        .with_context(|| format!("{path}: bad VmRSS value"))
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clk_tck() -> Result<u64> {
    run(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()
        .context("parsing getconf CLK_TCK")
}

/// Make sure this process may open at least `wanted` files, raising the soft
/// RLIMIT_NOFILE (up to the hard limit) with util-linux `prlimit` if needed.
/// Returns the soft limit in force.
pub fn ensure_nofile(wanted: u64) -> Result<u64> {
    let (soft, hard) = nofile_limits()?;
    if soft >= wanted {
        return Ok(soft);
    }
    let new = hard.min(wanted.max(soft));
    let pid = std::process::id();
    run(Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={new}:{hard}")))
    .context("raising RLIMIT_NOFILE with prlimit")?;
    let (soft, _) = nofile_limits()?;
    Ok(soft)
}

fn nofile_limits() -> Result<(u64, u64)> {
    let limits = fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no 'Max open files' in /proc/self/limits")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [soft, hard, ..] => Ok((*soft, *hard)),
        // "unlimited" does not parse: treat it as plenty.
        _ => Ok((u64::MAX, u64::MAX)),
    }
}

/// Poll `f` every 10 ms until it returns Some, or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe socket")?;
    Ok(l.local_addr().context("probe socket address")?.port())
}

/// True if an SSH server answers with its banner on 127.0.0.1:port.
pub fn ssh_banner_on(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}

/// Open `path` for appending (created if missing), for a child's stderr.
pub fn append_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The last `max` bytes of a text file, for error messages.
pub fn tail_of(path: &Path, max: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_past_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 7 42 42 0 -1";
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 4), Some("7"));
        assert_eq!(stat_field(stat, 2), None);
        assert_eq!(stat_field(stat, 99), None);
    }

    #[test]
    fn descendants_include_grandchildren_and_not_the_process_itself() {
        // sh starts a sleep as its own child: our grandchild.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(sh.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let sleep: u32 = line.trim().parse().unwrap();
        let found = descendants(std::process::id()).unwrap();
        let _ = Command::new("kill").arg(sleep.to_string()).status();
        let _ = sh.wait();
        assert!(found.contains(&sh.id()), "{found:?}");
        assert!(found.contains(&sleep), "{found:?}");
        assert!(!found.contains(&std::process::id()));
    }

    #[test]
    fn cpu_ns_grows_with_work_done() {
        let me = std::process::id();
        let before = cpu_ns(me).unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        // Spin until 20 ms of run time show; only a reading that never grows
        // reaches the (generous) deadline.
        loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            if cpu_ns(me).unwrap() - before >= 20_000_000 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "schedstat run time did not grow"
            );
        }
    }
}
