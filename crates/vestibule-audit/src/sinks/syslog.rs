//! Syslog (RFC 5424) over UDP (RFC 5426, one message per datagram), TCP
//! (RFC 6587 octet counting) or TLS (RFC 5425, the same framing).
//!
//! Each message: `<PRI>1 TIMESTAMP HOSTNAME vestibule PROCID ACTION
//! [meta sequenceId="SEQ"] {event JSON}`. TCP and TLS give no
//! application-level acknowledgement, so events written into a connection
//! that the receiver drops before reading are lost; a webhook with a
//! confirming endpoint is the lossless choice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Export, Pacing, StartAt, default_max_backoff, tls};
use crate::AuditError;
use crate::timefmt::duration_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// Syslog facility by name; `authpriv` by default, where security logs go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    #[default]
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    pub name: String,
    pub transport: Transport,
    /// `host:port`.
    pub address: String,
    #[serde(default)]
    pub facility: Facility,
    /// HOSTNAME field; the machine's host name by default.
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// TLS: CA certificates (PEM) to trust; the system bundle by default.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// TLS: the name to verify; the host part of `address` by default.
    #[serde(default)]
    pub server_name: Option<String>,
    /// TLS: a client certificate and key (PEM), for receivers that ask.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "duration_str")]
    pub connect_timeout: Duration,
    #[serde(default)]
    pub start: StartAt,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "no_wait", with = "duration_str")]
    pub batch_interval: Duration,
    #[serde(default = "default_max_backoff", with = "duration_str")]
    pub max_backoff: Duration,
}

fn default_app_name() -> String {
    "vestibule".to_owned()
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_batch_size() -> usize {
    500
}

fn no_wait() -> Duration {
    Duration::ZERO
}

impl SyslogSinkConfig {
    pub(crate) fn pacing(&self) -> Pacing {
        Pacing {
            start: self.start,
            batch_size: self.batch_size,
            batch_interval: self.batch_interval,
            max_backoff: self.max_backoff,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), AuditError> {
        if self.address.rsplit_once(':').is_none() {
            return Err(AuditError::Config(format!(
                "sink {}: address {:?} must be host:port",
                self.name, self.address
            )));
        }
        Ok(())
    }

    fn server_name(&self) -> String {
        if let Some(name) = &self.server_name {
            return name.clone();
        }
        let host = self
            .address
            .rsplit_once(':')
            .map(|(host, _)| host)
            .unwrap_or(&self.address);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    }
}

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub(crate) struct SyslogSink {
    config: SyslogSinkConfig,
    header: Header,
    tls: Option<TlsConnector>,
    connection: Option<Connection>,
}

/// The parts of each message that do not change.
struct Header {
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
}

impl SyslogSink {
    pub fn new(config: &SyslogSinkConfig) -> Result<Self, AuditError> {
        let tls = match config.transport {
            Transport::Tls => {
                let client = tls::client_config(
                    &config.name,
                    config.ca_file.as_deref(),
                    config.cert_file.as_deref(),
                    config.key_file.as_deref(),
                    true,
                )?;
                Some(TlsConnector::from(Arc::new(client)))
            }
            _ => None,
        };
        let hostname = config.hostname.clone().unwrap_or_else(system_hostname);
        Ok(Self {
            header: Header {
                facility: config.facility.code(),
                hostname: header_field(&hostname, 255),
                app_name: header_field(&config.app_name, 48),
                procid: std::process::id().to_string(),
            },
            config: config.clone(),
            tls,
            connection: None,
        })
    }

    pub async fn deliver(&mut self, batch: &[Export]) -> Result<(), String> {
        let result = self.send(batch).await;
        if result.is_err() {
            self.connection = None;
        }
        result.map_err(|e| format!("syslog {}: {e}", self.config.address))
    }

    async fn send(&mut self, batch: &[Export]) -> std::io::Result<()> {
        if self.connection.is_none() {
            let connecting = self.connect();
            self.connection = Some(
                tokio::time::timeout(self.config.connect_timeout, connecting)
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??,
            );
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(std::io::Error::from(std::io::ErrorKind::NotConnected));
        };
        match connection {
            Connection::Udp(socket) => {
                for export in batch {
                    let message = format_message(&self.header, export);
                    socket.send(udp_payload(&message)).await?;
                }
                Ok(())
            }
            Connection::Tcp(stream) => write_framed(stream, &self.header, batch).await,
            Connection::Tls(stream) => write_framed(stream.as_mut(), &self.header, batch).await,
        }
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let address = tokio::net::lookup_host(&self.config.address)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
        match self.config.transport {
            Transport::Udp => {
                let local = if address.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(local).await?;
                socket.connect(address).await?;
                Ok(Connection::Udp(socket))
            }
            Transport::Tcp => Ok(Connection::Tcp(TcpStream::connect(address).await?)),
            Transport::Tls => {
                let Some(connector) = &self.tls else {
                    return Err(std::io::Error::other("TLS is not configured"));
                };
                let name = rustls::pki_types::ServerName::try_from(self.config.server_name())
                    .map_err(|e| std::io::Error::other(format!("server name: {e}")))?;
                let tcp = TcpStream::connect(address).await?;
                let stream = connector.connect(name, tcp).await?;
                Ok(Connection::Tls(Box::new(stream)))
            }
        }
    }
}

async fn write_framed<W: AsyncWriteExt + Unpin>(
    stream: &mut W,
    header: &Header,
    batch: &[Export],
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for export in batch {
        let message = format_message(header, export);
        buf.extend_from_slice(format!("{} ", message.len()).as_bytes());
        buf.extend_from_slice(message.as_bytes());
    }
    stream.write_all(&buf).await?;
    stream.flush().await
}

/// Receivers cap datagrams well below 64 KiB; an oversized event is cut
/// rather than refused forever.
fn udp_payload(message: &str) -> &[u8] {
    const MAX: usize = 65_000;
    if message.len() <= MAX {
        return message.as_bytes();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message.as_bytes()[..end]
}

/// One RFC 5424 message.
fn format_message(header: &Header, export: &Export) -> String {
    let pri = u16::from(header.facility) * 8 + u16::from(export.level().syslog_severity());
    // sequenceId is 1..2147483647 by RFC 5424's `meta` definition.
    let sd = if (1..=2_147_483_647).contains(&export.seq) {
        format!("[meta sequenceId=\"{}\"]", export.seq)
    } else {
        "-".to_owned()
    };
    format!(
        "<{pri}>1 {} {} {} {} {} {sd} {}",
        header_field(export.timestamp(), 64),
        header.hostname,
        header.app_name,
        header.procid,
        header_field(export.action(), 32),
        export.json()
    )
}

/// A header field: printable US-ASCII without spaces, at most `max` long,
/// `-` when empty.
fn header_field(value: &str, max: usize) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".to_owned()
    } else {
        cleaned
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::export_value;
    use crate::{Action, AuditEvent, Outcome, Timestamp};

    #[test]
    fn formats_rfc5424() {
        let event = AuditEvent::new(Action::BreakglassUse, Outcome::Success)
            .at(Timestamp::from_unix_millis(1_714_564_800_000))
            .user("alice");
        let document = export_value(serde_json::to_value(&event).unwrap(), 42, "ab");
        let export = Export {
            seq: 42,
            hash: "ab".into(),
            document,
        };
        let header = Header {
            facility: Facility::Authpriv.code(),
            hostname: header_field("bastion 1", 255),
            app_name: "vestibule".into(),
            procid: "77".into(),
        };
        let message = format_message(&header, &export);
        // authpriv (10) * 8 + critical (2)
        let prefix = "<82>1 2024-05-01T12:00:00.000Z bastion_1 vestibule 77 breakglass.use [meta sequenceId=\"42\"] {";
        assert!(message.starts_with(prefix), "{message}");
        let json: serde_json::Value = serde_json::from_str(&message[prefix.len() - 1..]).unwrap();
        assert_eq!(json["event"]["sequence"], 42);
        assert_eq!(json["user"]["name"], "alice");
    }
}
