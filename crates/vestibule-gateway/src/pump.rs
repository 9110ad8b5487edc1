//! The data path: moves one channel's traffic between the person and the target.
//!
//! Each direction is a loop that takes a message from one side and hands it to
//! the other, awaiting the receiving side's SSH window before taking the next.
//! Buffers are russh's bounded per-channel queues; nothing here is unbounded,
//! nothing takes a lock shared with other sessions, and nothing touches the
//! database. Payloads are reference-counted `Bytes`, passed on without copying.

use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::{Channel, ChannelMsg, ExitSignal, client, server};

use std::sync::OnceLock;

use vestibule_recording::{RecordingError, SessionRecorder};

use crate::live::LiveCounters;

/// What crossed a channel, reported when it ends.
#[derive(Debug, Default)]
pub struct Traffic {
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
    pub exit_status: Option<u32>,
    pub exit_signal: bool,
    /// Recording failed, so the session was stopped before the bytes that
    /// could not be recorded moved; the message is for the person.
    pub recording_failed: Option<RecordingError>,
    /// The target's connection ended without ending the session (no exit
    /// status, no close); the person's channel is left open to be told why.
    pub target_lost: bool,
}

/// After one side closes, how long the other may take to finish before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What kind of channel is bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelKind {
    /// A session (shell, exec, subsystem): ends with an exit status.
    Session,
    /// A forwarded TCP connection: EOF is a half-close and passes at once.
    Forward,
}

/// Bridge a person's channel and a target's channel until both are closed.
pub(crate) async fn bridge(
    person: Channel<server::Msg>,
    target: Channel<client::Msg>,
    handle: server::Handle,
    kind: ChannelKind,
    counters: &LiveCounters,
    recorder: Option<&SessionRecorder>,
) -> Traffic {
    // The first recording failure; after it no byte moves either way.
    let failed: OnceLock<RecordingError> = OnceLock::new();
    let record = |result: Result<(), RecordingError>| match result {
        Ok(()) => true,
        Err(error) => {
            let _ = failed.set(error);
            false
        }
    };
    let person_id = person.id();
    let (mut from_person, to_person) = person.split();
    let (mut from_target, to_target) = target.split();

    // The futures borrow `failed`; they end with this block.
    let mut traffic = {
        // Counted in the session's shared counters rather than returned, so the
        // count survives when the upstream half is dropped unfinished (after the
        // target ends the channel) and live sessions can be listed with their bytes.
        let upstream = async {
            let bytes = &counters.to_target;
            while let Some(msg) = from_person.wait().await {
                let sent = match msg {
                    ChannelMsg::Data { data } => {
                        if let Some(recorder) = recorder
                            && !record(recorder.input_shared(&data))
                        {
                            return;
                        }
                        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        to_target.data_bytes(data).await
                    }
                    ChannelMsg::Eof => to_target.eof().await,
                    ChannelMsg::WindowChange {
                        col_width,
                        row_height,
                        pix_width,
                        pix_height,
                    } => {
                        if let Some(recorder) = recorder {
                            let (cols, rows) = (clamp16(col_width), clamp16(row_height));
                            if !record(recorder.resize(cols, rows)) {
                                return;
                            }
                        }
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
            tracing::trace!(channel = ?person_id, "upstream done");
            let _ = to_target.close().await;
        };

        let downloaded = &counters.from_target;
        let downstream = async move {
            let mut traffic = Traffic::default();
            // sshd may send EOF before the exit status (when the output closes before
            // the process is reaped). A client that has its EOF both ways may close
            // the channel at once and lose the status, so a session's EOF is held
            // until the status (or the close) arrives.
            let mut eof_held = false;
            // Whether the target's side ended without closing the channel:
            // its connection dropped (sshd killed, host down, network cut).
            let mut lost = true;
            while let Some(msg) = from_target.wait().await {
                let sent = match msg {
                    ChannelMsg::Data { data } => {
                        if let Some(recorder) = recorder {
                            recorder.ready().await;
                            if !record(recorder.output_shared(&data)) {
                                return traffic;
                            }
                        }
                        downloaded.fetch_add(data.len() as u64, Ordering::Relaxed);
                        to_person.data_bytes(data).await
                    }
                    ChannelMsg::ExtendedData { data, ext } => {
                        if let Some(recorder) = recorder {
                            recorder.ready().await;
                            if !record(recorder.stderr_shared(&data)) {
                                return traffic;
                            }
                        }
                        downloaded.fetch_add(data.len() as u64, Ordering::Relaxed);
                        to_person.extended_data_bytes(ext, data).await
                    }
                    ChannelMsg::Eof if kind == ChannelKind::Session => {
                        eof_held = true;
                        Ok(())
                    }
                    ChannelMsg::Eof => to_person.eof().await,
                    ChannelMsg::ExitStatus { exit_status } => {
                        if let Some(recorder) = recorder {
                            // The status is kept when it can be; the bytes before it are in.
                            let _ = recorder.exit_status(exit_status);
                        }
                        traffic.exit_status = Some(exit_status);
                        let sent = to_person.exit_status(exit_status).await;
                        release_eof(&to_person, &mut eof_held, sent).await
                    }
                    ChannelMsg::ExitSignal(signal) => {
                        let ExitSignal {
                            signal_name,
                            core_dumped,
                            error_message,
                            lang_tag,
                        } = *signal;
                        traffic.exit_signal = true;
                        let sent = handle
                            .exit_signal_request(
                                person_id,
                                signal_name,
                                core_dumped,
                                error_message,
                                lang_tag,
                            )
                            .await
                            .map_err(|_| russh::Error::SendError);
                        release_eof(&to_person, &mut eof_held, sent).await
                    }
                    ChannelMsg::Close => {
                        lost = false;
                        break;
                    }
                    _ => Ok(()),
                };
                if sent.is_err() {
                    lost = false;
                    break;
                }
            }
            tracing::trace!(channel = ?person_id, "downstream done");
            if lost
                && kind == ChannelKind::Session
                && traffic.exit_status.is_none()
                && !traffic.exit_signal
            {
                // The caller tells the person, then closes their channel.
                traffic.target_lost = true;
                return traffic;
            }
            let _ = release_eof(&to_person, &mut eof_held, Ok(())).await;
            let _ = to_person.close().await;
            traffic
        };

        tokio::pin!(upstream, downstream);
        // Once the target has ended the channel (and we closed the person's side),
        // nothing is left to carry upstream: russh may never deliver the person's
        // closing reply to a channel we closed, so waiting for it would only hang.
        tokio::select! {
            traffic = &mut downstream => traffic,
            () = &mut upstream => {
                if failed.get().is_some() {
                    // After a recording failure nothing more may move: no waiting.
                    Traffic::default()
                } else {
                    tokio::time::timeout(CLOSE_GRACE, downstream)
                        .await
                        .unwrap_or_default()
                }
            }
        }
    };
    traffic.recording_failed = failed.into_inner();
    traffic.bytes_to_target = counters.to_target.load(Ordering::Relaxed);
    traffic.bytes_from_target = counters.from_target.load(Ordering::Relaxed);
    traffic
}

fn clamp16(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

/// Send a held EOF after what had to precede it was sent.
async fn release_eof(
    to_person: &russh::ChannelWriteHalf<server::Msg>,
    eof_held: &mut bool,
    before: Result<(), russh::Error>,
) -> Result<(), russh::Error> {
    before?;
    if std::mem::take(eof_held) {
        to_person.eof().await?;
    }
    Ok(())
}
