//! SIEM export. The log itself is every sink's durable queue: a sink keeps
//! only a cursor (`sinks/<name>.cursor`, the last seq it delivered) and reads
//! the log after it, so a sink that is down loses nothing and catches up in
//! order. Delivery is at least once: a batch whose delivery is not confirmed
//! is sent again.

mod file;
mod runner;
mod syslog;
mod tls;
mod webhook;

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use file::FileSinkConfig;
pub use runner::{SinkSet, SinkStats};
pub use syslog::{Facility, SyslogSinkConfig, Transport};
pub use webhook::{BodyFormat, WebhookSinkConfig};

use crate::AuditError;

/// One `[[audit.sinks]]` entry; `kind` selects the type.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    File(FileSinkConfig),
    Syslog(SyslogSinkConfig),
    Webhook(WebhookSinkConfig),
}

/// Where a sink without a cursor starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From the first event in the log (nothing is missed).
    #[default]
    Beginning,
    /// From the events written after the sink first starts.
    End,
}

/// Settings every sink has, with their defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    pub start: StartAt,
    pub batch_size: usize,
    /// How long to wait for a batch to fill before sending a partial one.
    pub batch_interval: Duration,
    pub max_backoff: Duration,
}

impl SinkConfig {
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::File(c) => &c.name,
            SinkConfig::Syslog(c) => &c.name,
            SinkConfig::Webhook(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::Syslog(_) => "syslog",
            SinkConfig::Webhook(_) => "webhook",
        }
    }

    pub(crate) fn pacing(&self) -> Pacing {
        match self {
            SinkConfig::File(c) => c.pacing(),
            SinkConfig::Syslog(c) => c.pacing(),
            SinkConfig::Webhook(c) => c.pacing(),
        }
    }

    /// Checks serde cannot do.
    pub fn validate(&self) -> Result<(), AuditError> {
        let name = self.name();
        let usable = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !usable {
            return Err(AuditError::Config(format!(
                "sink name {name:?} must be 1-64 letters, digits, '-' or '_' (it names the cursor file)"
            )));
        }
        if self.pacing().batch_size == 0 {
            return Err(AuditError::Config(format!(
                "sink {name}: batch_size must be at least 1"
            )));
        }
        match self {
            SinkConfig::File(_) => Ok(()),
            SinkConfig::Syslog(c) => c.validate(),
            SinkConfig::Webhook(c) => c.validate(),
        }
    }
}

/// An event as sinks send it: the event object with `event.sequence` and
/// `event.hash` added.
#[derive(Debug, Clone)]
pub(crate) struct Export {
    pub seq: u64,
    pub hash: String,
    pub document: Value,
}

impl Export {
    pub fn timestamp(&self) -> &str {
        self.document
            .get("@timestamp")
            .and_then(Value::as_str)
            .unwrap_or("-")
    }

    pub fn action(&self) -> &str {
        self.document
            .pointer("/event/action")
            .and_then(Value::as_str)
            .unwrap_or("-")
    }

    pub fn level(&self) -> crate::Level {
        self.document
            .pointer("/log/level")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or(crate::Level::Info)
    }

    pub fn json(&self) -> String {
        self.document.to_string()
    }
}

fn default_batch_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_from_toml_and_reject_unknown_fields() {
        let text = r#"
            [[sinks]]
            name = "siem"
            kind = "syslog"
            transport = "tcp"
            address = "127.0.0.1:6514"

            [[sinks]]
            name = "archive"
            kind = "file"
            path = "/var/log/vestibule/audit.jsonl"
            max_bytes = 1000000

            [[sinks]]
            name = "splunk"
            kind = "webhook"
            url = "https://splunk.example:8088/services/collector/event"
            format = "splunk_hec"
            authorization = "Splunk 123"
            batch_interval = "2s"
        "#;
        #[derive(Deserialize)]
        struct Doc {
            sinks: Vec<SinkConfig>,
        }
        let doc: Doc = toml::from_str(text).unwrap();
        assert_eq!(doc.sinks.len(), 3);
        assert_eq!(doc.sinks[0].kind(), "syslog");
        assert_eq!(doc.sinks[2].pacing().batch_interval, Duration::from_secs(2));
        for sink in &doc.sinks {
            sink.validate().unwrap();
        }

        let typo = r#"
            [[sinks]]
            name = "siem"
            kind = "syslog"
            transport = "tcp"
            adress = "127.0.0.1:6514"
        "#;
        let err = toml::from_str::<Doc>(typo).err().unwrap().to_string();
        assert!(err.contains("adress"), "{err}");

        let bad_name = r#"
            [[sinks]]
            name = "../x"
            kind = "file"
            path = "/tmp/x"
        "#;
        let doc: Doc = toml::from_str(bad_name).unwrap();
        assert!(doc.sinks[0].validate().is_err());
    }
}
