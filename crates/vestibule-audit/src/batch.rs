//! What the writer task takes from its queue for one group commit, and how
//! long it keeps a batch open. A batch somebody waits on (an `append`, a
//! checkpoint, a shutdown) is committed with whatever is queued at that
//! moment; a batch of `record` events alone lingers briefly for more, so the
//! several events of one connection cost one sync rather than one each.

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::AuditError;

pub(crate) type Ack = oneshot::Sender<Result<u64, AuditError>>;
pub(crate) type ShutdownAck = oneshot::Sender<Result<(), AuditError>>;

pub(crate) enum Command {
    Event {
        /// The event's canonical JSON, made by the caller so serialising is
        /// spread over the callers rather than done by the one writer.
        event: String,
        ack: Option<Ack>,
    },
    Checkpoint(Ack),
    Shutdown(ShutdownAck),
}

pub(crate) enum Control {
    Checkpoint(Ack),
    Shutdown(ShutdownAck),
}

/// One commit's worth of the queue. A control command ends the batch so that
/// it applies after exactly the events queued before it.
#[derive(Default)]
pub(crate) struct Batch {
    pub events: Vec<String>,
    pub acks: Vec<Option<Ack>>,
    pub control: Option<Control>,
}

impl Batch {
    pub fn take(&mut self, command: Command) {
        match command {
            Command::Event { event, ack } => {
                self.events.push(event);
                self.acks.push(ack);
            }
            Command::Checkpoint(ack) => self.control = Some(Control::Checkpoint(ack)),
            Command::Shutdown(ack) => self.control = Some(Control::Shutdown(ack)),
        }
    }

    /// Whether a caller is waiting for this batch to be committed.
    fn awaited(&self) -> bool {
        self.control.is_some() || self.acks.iter().any(Option::is_some)
    }

    /// Add what is queued to a batch that holds its first command; while
    /// nobody waits on it and it has room, keep taking what arrives until
    /// `linger_until`. Returns whether the queue is closed (every handle gone).
    pub async fn gather(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        max_events: usize,
        linger_until: Instant,
    ) -> bool {
        loop {
            while self.control.is_none() && self.events.len() < max_events {
                match rx.try_recv() {
                    Ok(command) => self.take(command),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return true,
                }
            }
            if self.awaited() || self.events.len() >= max_events || Instant::now() >= linger_until {
                return false;
            }
            match tokio::time::timeout_at(linger_until, rx.recv()).await {
                Ok(Some(command)) => self.take(command),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn event(ack: Option<Ack>) -> Command {
        Command::Event {
            event: "{}".to_owned(),
            ack,
        }
    }

    fn batch_of(first: Command) -> Batch {
        let mut batch = Batch::default();
        batch.take(first);
        batch
    }

    #[tokio::test(start_paused = true)]
    async fn records_alone_wait_for_more_until_the_linger_ends() {
        let (tx, mut rx) = mpsc::channel(16);
        let started = Instant::now();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(event(None)).await.ok();
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(event(None)).await.ok();
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(event(None)).await.ok();
            tx
        });
        let mut batch = batch_of(event(None));
        let closed = batch
            .gather(&mut rx, 1024, started + Duration::from_millis(50))
            .await;
        assert!(!closed);
        assert_eq!(batch.events.len(), 3, "the third came after the linger");
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        drop(sender);
    }

    #[tokio::test(start_paused = true)]
    async fn an_append_ends_the_linger_at_once() {
        let (tx, mut rx) = mpsc::channel(16);
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let (ack, _done) = oneshot::channel();
            tx.send(event(Some(ack))).await.ok();
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let mut batch = batch_of(event(None));
        batch
            .gather(&mut rx, 1024, started + Duration::from_millis(50))
            .await;
        assert_eq!(batch.events.len(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_awaited_batch_takes_only_what_is_queued() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(event(None)).await.unwrap();
        let started = Instant::now();
        let (ack, _done) = oneshot::channel();
        let mut batch = batch_of(event(Some(ack)));
        let closed = batch
            .gather(&mut rx, 1024, started + Duration::from_millis(50))
            .await;
        assert!(!closed);
        assert_eq!(batch.events.len(), 2);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_or_a_closed_queue_ends_the_linger() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(event(None)).await.unwrap();
        let started = Instant::now();
        let mut batch = batch_of(event(None));
        let closed = batch
            .gather(&mut rx, 2, started + Duration::from_millis(50))
            .await;
        assert!(!closed);
        assert_eq!(batch.events.len(), 2);
        assert_eq!(started.elapsed(), Duration::ZERO);

        drop(tx);
        let mut batch = batch_of(event(None));
        let closed = batch
            .gather(&mut rx, 1024, started + Duration::from_millis(50))
            .await;
        assert!(closed);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
