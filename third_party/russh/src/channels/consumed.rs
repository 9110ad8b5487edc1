//! (Vestibule patch) Consumption-gated receive windows.
//!
//! Upstream russh returns window to the peer as soon as a data packet arrives
//! and then awaits room in the channel's bounded queue. While one channel's
//! reader is slow, that await parks the whole session loop: no other channel,
//! no writes, no window adjustments from the peer. Two such loops that forward
//! into each other (a proxy) can park each other for good.
//!
//! With this patch the loop never waits on a channel's queue for data within
//! the window. It only debits the window on arrival; a channel's reader counts
//! what it takes here, and once that reaches a threshold the loop is woken to
//! send `SSH_MSG_CHANNEL_WINDOW_ADJUST` for it. A peer that honours windows can
//! therefore have at most one window of data queued per channel, and a slow
//! reader slows only its own channel's peer, as RFC 4254 section 5.2 intends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

#[derive(Clone, Debug, Default)]
pub(crate) struct ConsumedRef(Arc<Consumed>);

#[derive(Debug, Default)]
struct Consumed {
    bytes: AtomicUsize,
    /// The session loop's wake-up and the count worth waking it for; set when
    /// the loop first delivers data, so before anything can be consumed.
    wake: OnceLock<(Arc<Notify>, usize)>,
}

impl ConsumedRef {
    /// Tie this channel to its session loop.
    pub(crate) fn attach(&self, wake: &Arc<Notify>, threshold: usize) {
        if self.0.wake.get().is_none() {
            let _ = self.0.wake.set((Arc::clone(wake), threshold.max(1)));
        }
    }

    /// The reader took `n` bytes.
    pub(crate) fn add(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.0.bytes.fetch_add(n, Ordering::AcqRel);
        if let Some((wake, threshold)) = self.0.wake.get()
            && before < *threshold
            && before.saturating_add(n) >= *threshold
        {
            wake.notify_one();
        }
    }

    /// Everything consumed since the last call, to be given back as window.
    pub(crate) fn take(&self) -> usize {
        self.0.bytes.swap(0, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_once_when_the_threshold_is_crossed() {
        let wake = Arc::new(Notify::new());
        let consumed = ConsumedRef::default();
        consumed.attach(&wake, 100);
        consumed.add(60);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), wake.notified())
                .await
                .is_err(),
            "woken below the threshold"
        );
        consumed.add(60);
        wake.notified().await;
        assert_eq!(consumed.take(), 120);
        assert_eq!(consumed.take(), 0);
    }
}
