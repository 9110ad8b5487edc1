use std::sync::Arc;

use tokio::sync::Notify;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::WindowSizeRef;
use crate::ChannelMsg;

/// A handle to the [`super::Channel`]'s to be able to transmit messages
/// to it and update it's `window_size`.
#[derive(Debug)]
pub struct ChannelRef {
    pub(super) sender: Sender<ChannelMsg>,
    pub(super) window_size: WindowSizeRef,
}

impl ChannelRef {
    pub fn new(sender: Sender<ChannelMsg>) -> Self {
        Self {
            sender,
            window_size: WindowSizeRef::new(0),
        }
    }

    pub(crate) fn window_size(&self) -> &WindowSizeRef {
        &self.window_size
    }

    /// (Vestibule patch) Hand received data to the channel's reader without
    /// waiting while it fits the queue, which it always does for a peer that
    /// honours the window (see `consumed`). Data nobody will read any more
    /// counts as consumed at once, so its window still comes back.
    pub(crate) async fn deliver(
        &self,
        msg: ChannelMsg,
        len: usize,
        wake: &Arc<Notify>,
        threshold: usize,
    ) {
        let consumed = &self.window_size.consumed;
        consumed.attach(wake, threshold);
        match self.sender.try_send(msg) {
            Ok(()) => {}
            // Beyond the window (or a flood of tiny packets): the old wait.
            Err(TrySendError::Full(msg)) => {
                if self.sender.send(msg).await.is_err() {
                    consumed.add(len);
                }
            }
            Err(TrySendError::Closed(_)) => consumed.add(len),
        }
    }
}

impl std::ops::Deref for ChannelRef {
    type Target = Sender<ChannelMsg>;

    fn deref(&self) -> &Self::Target {
        &self.sender
    }
}
