//! The target picker shown to a person who connects with a terminal and names no
//! target. The picker crate draws; this module moves its bytes over the channel.

use bytes::Bytes;
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use vestibule_picker::{Picker, PickerEntry, PickerOutcome};

use super::session::{PtySpec, SessionContext};
use crate::route;

/// Terminal sizes beyond this are treated as this (a window-change is untrusted).
fn clamp(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Let the person choose a target and login. `None` if they cancel or leave.
/// The choice is only a request: the caller still authorizes it.
pub(crate) async fn choose(
    ctx: &SessionContext,
    channel: &mut Channel<Msg>,
    pty: &mut PtySpec,
) -> Option<(String, String)> {
    let reachable = route::reachable(&ctx.shared, &ctx.person)
        .await
        .map_err(|error| tracing::error!(%error, "cannot list targets for the picker"))
        .unwrap_or_default();
    let entries = reachable
        .iter()
        .flat_map(|(target, logins)| {
            let labels: Vec<String> = target.labels.iter().map(ToString::to_string).collect();
            let description = format!("{}:{}  {}", target.host, target.port, labels.join(" "));
            logins.iter().map(move |login| {
                PickerEntry::new(target.name.clone(), login.clone(), description.clone())
            })
        })
        .collect();
    let mut picker = Picker::new(
        format!("Vestibule — {}", ctx.person),
        entries,
        clamp(pty.cols),
        clamp(pty.rows),
    );
    let mut screen = Picker::enter_sequence().to_vec();
    screen.extend(picker.render());
    send(channel, screen).await?;
    loop {
        match channel.wait().await? {
            ChannelMsg::Data { data } => match picker.feed(&data) {
                PickerOutcome::Pending => send(channel, picker.render()).await?,
                PickerOutcome::Chosen(entry) => {
                    send(channel, Picker::leave_sequence().to_vec()).await?;
                    return Some((entry.target, entry.login));
                }
                PickerOutcome::Cancelled => {
                    send(channel, Picker::leave_sequence().to_vec()).await?;
                    return None;
                }
            },
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                (pty.cols, pty.rows, pty.pix_width, pty.pix_height) =
                    (col_width, row_height, pix_width, pix_height);
                picker.resize(clamp(col_width), clamp(row_height));
                send(channel, picker.render()).await?;
            }
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => {}
        }
    }
}

async fn send(channel: &Channel<Msg>, bytes: Vec<u8>) -> Option<()> {
    if bytes.is_empty() {
        return Some(());
    }
    channel.data_bytes(Bytes::from(bytes)).await.ok()
}
