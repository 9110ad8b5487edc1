//! Session threads: every accepted connection spends its whole life on one
//! thread, with its own single-threaded runtime.
//!
//! A session's bytes cross three or four tasks (the front SSH session, the
//! pump, the back SSH session, and for `-J` the inner session). On a
//! work-stealing runtime each hand-off may wake a parked worker on the other
//! core, which steals the task and pulls the packet across caches; on the
//! 2-core benchmark machine a fifth of the gateway's CPU on a download went
//! to those wake-ups and task switches (docs/benchmarks.md, "Session 14").
//! Here a hand-off is a push onto the same thread's queue. Connections are
//! spread over the threads by how many each holds, so the gateway still uses
//! every core once it carries more than one session.
//!
//! Everything else (the HTTPS API, audit, the store's workers, the
//! supervisor) stays on the main runtime; tasks of both talk through
//! channels, which do not care which runtime polls them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// Failure to start the session threads.
#[derive(Debug, thiserror::Error)]
#[error("cannot start session thread {index}: {source}")]
pub struct ThreadsError {
    index: usize,
    #[source]
    source: std::io::Error,
}

/// One thread and its runtime.
struct SessionThread {
    handle: Handle,
    /// Connections now on this thread.
    connections: Arc<AtomicUsize>,
    /// Dropping it ends the thread's runtime (and every task still on it).
    _stop: oneshot::Sender<()>,
}

/// The gateway's session threads.
pub(crate) struct SessionThreads {
    threads: Vec<SessionThread>,
    /// Where the search for the least busy thread starts, so that threads
    /// holding as many connections take new ones in turn.
    next: AtomicUsize,
}

impl SessionThreads {
    /// Start `count` threads (at least one). Each builds its runtime itself,
    /// so a runtime is only ever dropped on its own thread.
    pub(crate) async fn start(count: usize) -> Result<SessionThreads, ThreadsError> {
        let count = count.max(1);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let fail = |source| ThreadsError { index, source };
            let (started, handle) = oneshot::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("session-{index}"))
                .spawn(move || {
                    // Short enough for the kernel's 15-byte thread names.
                    let built = Builder::new_current_thread()
                        .enable_all()
                        .thread_name(format!("session-{index}-blk"))
                        .build();
                    let runtime = match built {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = started.send(Err(error));
                            return;
                        }
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    // Returns when the sender is dropped: the gateway is gone.
                    let _ = runtime.block_on(stopped);
                })
                .map_err(fail)?;
            let handle = handle
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the thread ended at start")))
                .map_err(fail)?;
            threads.push(SessionThread {
                handle,
                connections: Arc::default(),
                _stop: stop,
            });
        }
        Ok(SessionThreads {
            threads,
            next: AtomicUsize::new(0),
        })
    }

    /// One thread per core this process may use.
    pub(crate) fn default_count() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    pub(crate) fn len(&self) -> usize {
        self.threads.len()
    }

    /// Run one connection on the thread holding the fewest. `make` runs on
    /// that thread, so that what it creates (sockets, timers, tasks) belongs
    /// to its runtime.
    pub(crate) fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let thread = self.least_busy();
        let held = Held::new(thread.connections.clone());
        thread.handle.spawn(async move {
            let _held = held;
            make().await;
        });
    }

    fn least_busy(&self) -> &SessionThread {
        let n = self.threads.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best = &self.threads[start];
        let mut fewest = best.connections.load(Ordering::Relaxed);
        for i in 1..n {
            let candidate = &self.threads[(start + i) % n];
            let held = candidate.connections.load(Ordering::Relaxed);
            if held < fewest {
                best = candidate;
                fewest = held;
            }
        }
        best
    }

    /// Connections held by each thread, in order.
    #[cfg(test)]
    fn loads(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.connections.load(Ordering::Relaxed))
            .collect()
    }
}

/// Counts a connection against its thread while it lives.
struct Held(Arc<AtomicUsize>);

impl Held {
    fn new(counter: Arc<AtomicUsize>) -> Held {
        counter.fetch_add(1, Ordering::Relaxed);
        Held(counter)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    /// Sends the name of the thread it is dropped on.
    struct DropSignal(Option<std::sync::mpsc::Sender<String>>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                let _ = tx.send(name);
            }
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_connection_and_the_tasks_it_spawns_stay_on_one_thread() {
        let threads = SessionThreads::start(2).await.unwrap();
        let (tx, rx) = oneshot::channel();
        threads.spawn(move || async move {
            let outer = std::thread::current().name().map(str::to_owned);
            let inner = tokio::spawn(async {
                tokio::task::yield_now().await;
                std::thread::current().name().map(str::to_owned)
            })
            .await
            .ok()
            .flatten();
            let _ = tx.send((outer, inner));
        });
        let (outer, inner) = rx.await.unwrap();
        let outer = outer.unwrap();
        assert!(
            outer.starts_with("session-") && !outer.ends_with("-blk"),
            "{outer}"
        );
        assert_eq!(inner.as_deref(), Some(outer.as_str()));
    }

    #[tokio::test]
    async fn new_connections_go_to_the_thread_holding_fewest() {
        let threads = SessionThreads::start(3).await.unwrap();
        let mut release = Vec::new();
        for _ in 0..6 {
            let (tx, rx) = oneshot::channel::<()>();
            release.push(tx);
            threads.spawn(move || async move {
                let _ = rx.await;
            });
        }
        settle().await;
        assert_eq!(threads.loads(), vec![2, 2, 2]);
        // Threads that hold as many take connections in turn from the first,
        // so the first and fourth are on the first thread. They end.
        drop(release.remove(3));
        drop(release.remove(0));
        settle().await;
        let loads = threads.loads();
        assert_eq!(loads, vec![0, 2, 2]);
        for _ in 0..2 {
            threads.spawn(std::future::pending);
        }
        settle().await;
        assert_eq!(threads.loads(), vec![2, 2, 2]);
    }

    #[tokio::test]
    async fn dropping_the_threads_ends_the_connections_on_them() {
        let threads = SessionThreads::start(2).await.unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let signal = DropSignal(Some(tx.clone()));
            threads.spawn(move || async move {
                let _signal = signal;
                std::future::pending::<()>().await;
            });
        }
        settle().await;
        drop(threads);
        for _ in 0..2 {
            let name = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(name.starts_with("session-"), "{name}");
        }
    }
}
