//! Live sessions: what the gateway is bridging now, so locks, kill requests and
//! the end of a just-in-time grant can stop sessions, and `sessions list` can
//! show their byte counts.
//!
//! The registry is touched when a session starts or ends and by the supervisor
//! twice a second, never per packet: the data path only bumps its own session's
//! atomic counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use vestibule_store::Store;

/// Bytes a session moved so far, bumped by its pump.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub to_target: AtomicU64,
    pub from_target: AtomicU64,
}

/// Who a live session is for, to match locks against.
#[derive(Debug, Clone)]
pub(crate) struct LiveInfo {
    pub person: String,
    pub target: String,
    pub roles: Vec<String>,
    /// The session rests on a just-in-time grant that ends at this Unix time.
    pub grant_expires: Option<i64>,
}

struct Entry {
    info: LiveInfo,
    counters: Arc<LiveCounters>,
    stop: watch::Sender<Option<String>>,
}

/// The registry of live sessions.
#[derive(Default)]
pub(crate) struct LiveSessions {
    entries: Mutex<HashMap<String, Entry>>,
}

/// A session's place in the registry; leaving the registry when dropped.
pub(crate) struct LiveHandle {
    registry: Arc<LiveSessions>,
    id: String,
    pub counters: Arc<LiveCounters>,
    pub stop: watch::Receiver<Option<String>>,
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.registry.entries.lock() {
            entries.remove(&self.id);
        }
    }
}

impl LiveSessions {
    pub(crate) fn register(self: &Arc<Self>, id: &str, info: LiveInfo) -> LiveHandle {
        let counters = Arc::new(LiveCounters::default());
        let (stop, stop_rx) = watch::channel(None);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                id.to_owned(),
                Entry {
                    info,
                    counters: counters.clone(),
                    stop,
                },
            );
        }
        LiveHandle {
            registry: self.clone(),
            id: id.to_owned(),
            counters,
            stop: stop_rx,
        }
    }

    /// Ask the sessions `which` selects to end, with the reason shown to the person.
    fn stop_where(&self, which: impl Fn(&str, &LiveInfo) -> Option<String>) -> usize {
        let Ok(entries) = self.entries.lock() else {
            return 0;
        };
        let mut stopped = 0;
        for (id, entry) in entries.iter() {
            if entry.stop.borrow().is_some() {
                continue;
            }
            if let Some(reason) = which(id, &entry.info) {
                tracing::info!(session = %id, %reason, "ending session");
                let _ = entry.stop.send(Some(reason));
                stopped += 1;
            }
        }
        stopped
    }

    fn counts(&self) -> Vec<(String, u64, u64)> {
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    e.counters.to_target.load(Ordering::Relaxed),
                    e.counters.from_target.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// How often the supervisor looks at locks and kill requests.
const SUPERVISE_EVERY: Duration = Duration::from_millis(400);
/// How often live byte counts reach the database.
const BYTES_EVERY: u32 = 10;

/// Ends sessions that a lock, a kill request or an expired grant no longer
/// allows; runs for the life of the gateway.
pub(crate) async fn supervise(live: Arc<LiveSessions>, store: Store, grant_grace: Duration) {
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut round: u32 = 0;
    loop {
        tick.tick().await;
        round = round.wrapping_add(1);
        if live.len() == 0 {
            continue;
        }
        match store.active_locks().await {
            Ok(locks) if !locks.is_empty() => {
                live.stop_where(|_, info| {
                    locks
                        .iter()
                        .find(|l| l.covers(&info.person, &info.target, &info.roles))
                        .map(|l| l.message())
                });
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot read locks"),
        }
        match store.session_kills().await {
            Ok(kills) if !kills.is_empty() => {
                live.stop_where(|id, _| {
                    kills.iter().find(|(k, _)| k == id).map(|(_, reason)| {
                        if reason.is_empty() {
                            "session ended by an administrator".to_owned()
                        } else {
                            format!("session ended by an administrator: {reason}")
                        }
                    })
                });
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot read session kill requests"),
        }
        let now = unix_now();
        let grace = grant_grace.as_secs() as i64;
        live.stop_where(|_, info| {
            info.grant_expires
                .filter(|&expires| now >= expires.saturating_add(grace))
                .map(|_| "your just-in-time access grant has expired".to_owned())
        });
        if round.is_multiple_of(BYTES_EVERY) {
            let counts = live.counts();
            if let Err(error) = store.session_bytes(&counts).await {
                tracing::warn!(%error, "cannot record live byte counts");
            }
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
