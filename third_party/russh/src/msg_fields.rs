//! (Vestibule patch) The fields of the rare, large variants that
//! [`client::Msg`](crate::client::Msg) and [`server::Msg`](crate::server::Msg)
//! share, boxed: a tokio queue allocates 32 slots of its message type when it
//! is made, so the largest variant sets every idle connection's memory. Each
//! struct carries the fields its variant had.

use crate::Disconnect;
use crate::channels::ChannelRef;

/// The fields of `ChannelOpenX11`.
#[derive(Debug)]
pub struct OpenX11 {
    pub originator_address: String,
    pub originator_port: u32,
    pub channel_ref: ChannelRef,
}

/// The fields of `ChannelOpenDirectTcpIp`.
#[derive(Debug)]
pub struct OpenDirectTcpIp {
    pub host_to_connect: String,
    pub port_to_connect: u32,
    pub originator_address: String,
    pub originator_port: u32,
    pub channel_ref: ChannelRef,
}

/// The fields of `ChannelOpenDirectStreamLocal`.
#[derive(Debug)]
pub struct OpenDirectStreamLocal {
    pub socket_path: String,
    pub channel_ref: ChannelRef,
}

/// The fields of `Disconnect`.
#[derive(Debug)]
pub struct DisconnectRequest {
    pub reason: Disconnect,
    pub description: String,
    pub language_tag: String,
}
