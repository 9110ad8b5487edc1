//! Brute-force protection: failures counted per source address and per user,
//! an exponentially growing delay before each failed answer, and a temporary
//! lockout after too many failures.
//!
//! In memory only: a restart forgets counts, which an attacker gains little from
//! (the audit trail keeps every failure). Memory is bounded: when the table is
//! full, stale entries go first, then the least recently failed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits, from the `[identity]` configuration.
#[derive(Debug, Clone)]
pub struct LimiterSettings {
    /// Failures (per address or per user) that lock it out.
    pub max_failures: u32,
    /// How long a lockout lasts; failures older than this are forgotten.
    pub lockout: Duration,
    /// Delay after the first failure, doubled for each further one.
    pub backoff_base: Duration,
    /// Entries kept at most.
    pub max_entries: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout: Duration::from_secs(300),
            backoff_base: Duration::from_millis(250),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(String),
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

/// Failure counts; shared by the SSH front end and the HTTPS login.
#[derive(Debug)]
pub struct Limiter {
    settings: LimiterSettings,
    entries: Mutex<HashMap<Key, Entry>>,
    /// Lockouts placed so far (an address or a user reaching `max_failures`).
    lockouts: std::sync::atomic::AtomicU64,
}

/// The attempt may not be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut {
    pub remaining: Duration,
}

impl Limiter {
    pub fn new(settings: LimiterSettings) -> Self {
        Self {
            settings,
            entries: Mutex::default(),
            lockouts: Default::default(),
        }
    }

    fn keys(peer: Option<IpAddr>, user: &str) -> Vec<Key> {
        let mut keys = vec![Key::User(user.to_owned())];
        keys.extend(peer.map(Key::Address));
        keys
    }

    /// Whether the address or the user is locked out; call before verifying.
    pub fn check(&self, peer: Option<IpAddr>, user: &str) -> Result<(), LockedOut> {
        self.check_at(peer, user, Instant::now())
    }

    fn check_at(&self, peer: Option<IpAddr>, user: &str, now: Instant) -> Result<(), LockedOut> {
        let Ok(entries) = self.entries.lock() else {
            return Ok(());
        };
        let remaining = Self::keys(peer, user)
            .iter()
            .filter_map(|key| entries.get(key)?.locked_until)
            .filter_map(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
            .max();
        match remaining {
            Some(remaining) => Err(LockedOut { remaining }),
            None => Ok(()),
        }
    }

    /// Lockouts placed since start (for metrics).
    pub fn lockouts(&self) -> u64 {
        self.lockouts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Count a failure; returns how long to wait before answering it.
    pub fn failure(&self, peer: Option<IpAddr>, user: &str) -> Duration {
        self.failure_at(peer, user, Instant::now())
    }

    fn failure_at(&self, peer: Option<IpAddr>, user: &str, now: Instant) -> Duration {
        let Ok(mut entries) = self.entries.lock() else {
            return Duration::ZERO;
        };
        let mut worst = 0;
        for key in Self::keys(peer, user) {
            if !entries.contains_key(&key) && entries.len() >= self.settings.max_entries {
                self.evict(&mut entries, now);
            }
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if now.duration_since(entry.last_failure) > self.settings.lockout {
                entry.failures = 0;
                entry.locked_until = None;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if entry.failures >= self.settings.max_failures {
                if entry.failures == self.settings.max_failures {
                    self.lockouts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                entry.locked_until = Some(now + self.settings.lockout);
            }
            worst = worst.max(entry.failures);
        }
        backoff(self.settings.backoff_base, worst, self.settings.lockout)
    }

    /// A success forgets the user's failures (not the address's: one good
    /// account must not reset an attacker's count).
    pub fn success(&self, user: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&Key::User(user.to_owned()));
        }
    }

    fn evict(&self, entries: &mut HashMap<Key, Entry>, now: Instant) {
        let lockout = self.settings.lockout;
        entries.retain(|_, e| now.duration_since(e.last_failure) <= lockout);
        if entries.len() >= self.settings.max_entries
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// `base * 2^(failures-1)`, capped at `cap`.
pub fn backoff(base: Duration, failures: u32, cap: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_entries: usize) -> Limiter {
        Limiter::new(LimiterSettings {
            max_failures: 3,
            lockout: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            max_entries,
        })
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        let got: Vec<_> = (0..7).map(|n| backoff(base, n, cap).as_millis()).collect();
        assert_eq!(got, [0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(base, 200, cap), cap);
    }

    #[test]
    fn locks_after_max_failures_then_expires() {
        let limiter = limiter(100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check_at(Some(ip), "alice", t0).is_ok());
        limiter.failure_at(Some(ip), "alice", t0);
        limiter.failure_at(Some(ip), "alice", t0);
        assert!(limiter.check_at(Some(ip), "alice", t0).is_ok());
        let delay = limiter.failure_at(Some(ip), "alice", t0);
        assert_eq!(delay, Duration::from_millis(400));
        assert!(limiter.check_at(Some(ip), "alice", t0).is_err());
        // Another address for the same user, and another user from the same address.
        assert!(limiter.check_at(None, "alice", t0).is_err());
        assert!(limiter.check_at(Some(ip), "bob", t0).is_err());
        let later = t0 + Duration::from_secs(61);
        assert!(limiter.check_at(Some(ip), "alice", later).is_ok());
    }

    #[test]
    fn success_forgets_the_user_only() {
        let limiter = limiter(100);
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        limiter.failure_at(Some(ip), "alice", t0);
        limiter.failure_at(Some(ip), "alice", t0);
        limiter.success("alice");
        limiter.failure_at(None, "alice", t0);
        assert!(limiter.check_at(None, "alice", t0).is_ok());
        limiter.failure_at(Some(ip), "carol", t0);
        assert!(limiter.check_at(Some(ip), "dave", t0).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = limiter(10);
        let t0 = Instant::now();
        for i in 0..100u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            limiter.failure_at(
                Some(ip),
                &format!("u{i}"),
                t0 + Duration::from_millis(i.into()),
            );
        }
        assert!(limiter.len() <= 10);
    }
}
