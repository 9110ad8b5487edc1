//! The `[audit]` section of `vestibule.toml`, for the binary to embed.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use crate::sinks::SinkConfig;
use crate::timefmt::duration_str;
use crate::{AuditError, WriterOptions};

/// ```toml
/// [audit]
/// checkpoint_every = 1000
/// checkpoint_interval = "60s"
/// record_linger = "50ms"
///
/// [[audit.sinks]]
/// name = "siem"
/// kind = "syslog"
/// transport = "tcp"
/// address = "127.0.0.1:6514"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    #[serde(default = "default_checkpoint_interval", with = "duration_str")]
    pub checkpoint_interval: Duration,
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// How long events nobody waits for may wait for company before their
    /// group commit (`0s`: each is synced as soon as the writer takes it).
    #[serde(default = "default_record_linger", with = "duration_str")]
    pub record_linger: Duration,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
}

fn default_checkpoint_every() -> u64 {
    WriterOptions::default().checkpoint_every
}

fn default_checkpoint_interval() -> Duration {
    WriterOptions::default().checkpoint_interval
}

fn default_max_file_bytes() -> u64 {
    WriterOptions::default().max_file_bytes
}

fn default_queue_capacity() -> usize {
    WriterOptions::default().queue_capacity
}

fn default_record_linger() -> Duration {
    WriterOptions::default().record_linger
}

/// Longer would leave events only in memory for longer than a SIEM or an
/// operator would expect of an audit trail.
const MAX_RECORD_LINGER: Duration = Duration::from_secs(1);

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: default_checkpoint_every(),
            checkpoint_interval: default_checkpoint_interval(),
            max_file_bytes: default_max_file_bytes(),
            queue_capacity: default_queue_capacity(),
            record_linger: default_record_linger(),
            sinks: Vec::new(),
        }
    }
}

impl AuditConfig {
    /// Writer options from this section (without an index; set
    /// `WriterOptions::index` to have one).
    pub fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: self.checkpoint_interval,
            max_file_bytes: self.max_file_bytes,
            queue_capacity: self.queue_capacity,
            record_linger: self.record_linger,
            ..WriterOptions::default()
        }
    }

    /// Checks serde cannot: sink names unique and usable as file names, and
    /// each sink's own settings.
    pub fn validate(&self) -> Result<(), AuditError> {
        if self.checkpoint_every == 0 {
            return Err(AuditError::Config(
                "checkpoint_every must be at least 1".into(),
            ));
        }
        if self.record_linger > MAX_RECORD_LINGER {
            return Err(AuditError::Config(format!(
                "record_linger must be at most {}ms",
                MAX_RECORD_LINGER.as_millis()
            )));
        }
        let mut names = HashSet::new();
        for sink in &self.sinks {
            sink.validate()?;
            if !names.insert(sink.name()) {
                return Err(AuditError::Config(format!(
                    "two sinks are named {:?}",
                    sink.name()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AuditConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn record_linger_is_read_and_bounded() {
        assert_eq!(
            parse("").writer_options().record_linger,
            Duration::from_millis(50)
        );
        let none = parse("record_linger = \"0s\"");
        none.validate().unwrap();
        assert_eq!(none.writer_options().record_linger, Duration::ZERO);
        let long = parse("record_linger = \"2s\"");
        let error = long.validate().unwrap_err().to_string();
        assert!(
            error.contains("record_linger must be at most 1000ms"),
            "{error}"
        );
    }
}
