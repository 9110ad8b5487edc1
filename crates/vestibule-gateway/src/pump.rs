//! The data path: moves one channel's traffic between the person and the target.
//!
//! Each direction is a loop that takes a message from one side and hands it to
//! the other, awaiting the receiving side's SSH window before taking the next.
//! Buffers are russh's bounded per-channel queues; nothing here is unbounded,
//! nothing takes a lock shared with other sessions, and nothing touches the
//! database. Payloads are reference-counted `Bytes`, passed on without copying.

use std::time::Duration;

use russh::{Channel, ChannelMsg, client, server};

/// What crossed a channel, reported when it ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
    pub exit_status: Option<u32>,
    pub exit_signal: bool,
}

/// After one side closes, how long the other may take to finish before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Bridge a person's channel and a target's channel until both are closed.
pub(crate) async fn bridge(
    person: Channel<server::Msg>,
    target: Channel<client::Msg>,
    handle: server::Handle,
) -> Traffic {
    let person_id = person.id();
    let (mut from_person, to_person) = person.split();
    let (mut from_target, to_target) = target.split();

    let upstream = async move {
        let mut bytes = 0u64;
        while let Some(msg) = from_person.wait().await {
            let sent = match msg {
                ChannelMsg::Data { data } => {
                    bytes += data.len() as u64;
                    to_target.data_bytes(data).await
                }
                ChannelMsg::Eof => to_target.eof().await,
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    to_target
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await
                }
                ChannelMsg::Signal { signal } => to_target.signal(signal).await,
                ChannelMsg::Close => break,
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = to_target.close().await;
        bytes
    };

    let downstream = async move {
        let mut traffic = Traffic::default();
        while let Some(msg) = from_target.wait().await {
            let sent = match msg {
                ChannelMsg::Data { data } => {
                    traffic.bytes_from_target += data.len() as u64;
                    to_person.data_bytes(data).await
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    traffic.bytes_from_target += data.len() as u64;
                    to_person.extended_data_bytes(ext, data).await
                }
                ChannelMsg::Eof => to_person.eof().await,
                ChannelMsg::ExitStatus { exit_status } => {
                    traffic.exit_status = Some(exit_status);
                    to_person.exit_status(exit_status).await
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                } => {
                    traffic.exit_signal = true;
                    handle
                        .exit_signal_request(
                            person_id,
                            signal_name,
                            core_dumped,
                            error_message,
                            lang_tag,
                        )
                        .await
                        .map_err(|_| russh::Error::SendError)
                }
                ChannelMsg::Close => break,
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = to_person.close().await;
        traffic
    };

    tokio::pin!(upstream, downstream);
    tokio::select! {
        mut traffic = &mut downstream => {
            traffic.bytes_to_target = tokio::time::timeout(CLOSE_GRACE, upstream).await.unwrap_or(0);
            traffic
        }
        bytes = &mut upstream => {
            let mut traffic = tokio::time::timeout(CLOSE_GRACE, downstream).await.unwrap_or_default();
            traffic.bytes_to_target = bytes;
            traffic
        }
    }
}
