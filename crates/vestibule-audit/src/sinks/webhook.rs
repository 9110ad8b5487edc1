//! An HTTP(S) endpoint that takes batches of events: a plain JSON array or
//! newline-delimited JSON, or the framing Splunk HEC and Elasticsearch
//! `_bulk` expect. Any answer but 2xx (or a `_bulk` answer that lists a
//! failed item) is a failed delivery, retried with backoff.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Export, Pacing, StartAt, default_batch_interval, default_max_backoff, tls};
use crate::AuditError;
use crate::chain::canonical;
use crate::timefmt::duration_str;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `[{event}, {event}]`
    #[default]
    JsonArray,
    /// One event per line.
    Ndjson,
    /// One `{"time":..,"sourcetype":"_json","event":{event}}` per line, for
    /// Splunk's `/services/collector/event`.
    SplunkHec,
    /// `{"create":{"_id":HASH}}` and the event, per event, for an
    /// Elasticsearch or OpenSearch `_bulk` URL; the event hash as `_id` makes
    /// a resent batch harmless.
    ElasticsearchBulk,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: BodyFormat,
    /// The `Authorization` header, e.g. `Splunk <token>` or `Bearer <token>`.
    #[serde(default)]
    pub authorization: Option<String>,
    /// Or read it from this file (trimmed), to keep it out of the config.
    #[serde(default)]
    pub authorization_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust; the system bundle by default.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout", with = "duration_str")]
    pub timeout: Duration,
    #[serde(default)]
    pub start: StartAt,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_batch_interval", with = "duration_str")]
    pub batch_interval: Duration,
    #[serde(default = "default_max_backoff", with = "duration_str")]
    pub max_backoff: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_batch_size() -> usize {
    500
}

impl WebhookSinkConfig {
    pub(crate) fn pacing(&self) -> Pacing {
        Pacing {
            start: self.start,
            batch_size: self.batch_size,
            batch_interval: self.batch_interval,
            max_backoff: self.max_backoff,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), AuditError> {
        let error = |m: &str| Err(AuditError::Config(format!("sink {}: {m}", self.name)));
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return error("url must be an http:// or https:// URL"),
        }
        if self.authorization.is_some() && self.authorization_file.is_some() {
            return error("set authorization or authorization_file, not both");
        }
        Ok(())
    }
}

pub(crate) struct WebhookSink {
    client: reqwest::Client,
    url: String,
    format: BodyFormat,
    authorization: Option<String>,
}

impl WebhookSink {
    pub fn new(config: &WebhookSinkConfig) -> Result<Self, AuditError> {
        let https = config.url.starts_with("https:");
        let tls = tls::client_config(&config.name, config.ca_file.as_deref(), None, None, https)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .build()
            .map_err(|e| AuditError::Config(format!("sink {}: {e}", config.name)))?;
        let authorization = match &config.authorization_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(AuditError::io("cannot read", path))?
                    .trim()
                    .to_owned(),
            ),
            None => config.authorization.clone(),
        };
        Ok(Self {
            client,
            url: config.url.clone(),
            format: config.format,
            authorization,
        })
    }

    pub async fn deliver(&mut self, batch: &[Export]) -> Result<(), String> {
        let (body, content_type) = body(self.format, batch);
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{}: HTTP {status}: {}", self.url, excerpt(&text)));
        }
        if self.format == BodyFormat::ElasticsearchBulk {
            bulk_errors(&text).map_err(|e| format!("{}: {e}", self.url))?;
        }
        Ok(())
    }
}

fn body(format: BodyFormat, batch: &[Export]) -> (String, &'static str) {
    let mut out = String::new();
    match format {
        BodyFormat::JsonArray => {
            out.push('[');
            for (i, export) in batch.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&export.json());
            }
            out.push(']');
            (out, "application/json")
        }
        BodyFormat::Ndjson => {
            for export in batch {
                out.push_str(&export.json());
                out.push('\n');
            }
            (out, "application/x-ndjson")
        }
        BodyFormat::SplunkHec => {
            for export in batch {
                let time = export
                    .timestamp()
                    .parse::<crate::Timestamp>()
                    .map(|t| t.unix_millis())
                    .unwrap_or(0);
                let envelope = json!({
                    "time": time as f64 / 1000.0,
                    "source": "vestibule",
                    "sourcetype": "_json",
                    "event": export.document,
                });
                out.push_str(&envelope.to_string());
                out.push('\n');
            }
            (out, "application/json")
        }
        BodyFormat::ElasticsearchBulk => {
            for export in batch {
                out.push_str(&canonical(&json!({"create": {"_id": export.hash}})));
                out.push('\n');
                out.push_str(&export.json());
                out.push('\n');
            }
            (out, "application/x-ndjson")
        }
    }
}

/// A `_bulk` answer is 200 even when items fail; only "already exists"
/// (409, from a resent batch) is fine.
fn bulk_errors(text: &str) -> Result<(), String> {
    let Ok(answer) = serde_json::from_str::<Value>(text) else {
        return Err("the _bulk answer is not JSON".to_owned());
    };
    if answer.get("errors").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let failed = items.iter().find(|item| {
        let status = item
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|op| op.get("status"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        !(200..300).contains(&status) && status != 409
    });
    match failed {
        Some(item) => Err(format!("_bulk item failed: {}", excerpt(&item.to_string()))),
        None => Ok(()),
    }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(200).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(seq: u64) -> Export {
        Export {
            seq,
            hash: format!("h{seq}"),
            document: json!({"@timestamp": "2024-05-01T12:00:00.500Z", "event": {"sequence": seq}}),
        }
    }

    #[test]
    fn bodies_in_every_format() {
        let batch = [export(1), export(2)];
        let (array, _) = body(BodyFormat::JsonArray, &batch);
        let parsed: Vec<Value> = serde_json::from_str(&array).unwrap();
        assert_eq!(parsed.len(), 2);
        let (nd, kind) = body(BodyFormat::Ndjson, &batch);
        assert_eq!((nd.lines().count(), kind), (2, "application/x-ndjson"));
        let (hec, _) = body(BodyFormat::SplunkHec, &batch);
        let first: Value = serde_json::from_str(hec.lines().next().unwrap()).unwrap();
        assert_eq!(first["time"], 1_714_564_800.5);
        assert_eq!(first["event"]["event"]["sequence"], 1);
        let (bulk, _) = body(BodyFormat::ElasticsearchBulk, &batch);
        let lines: Vec<&str> = bulk.lines().collect();
        assert_eq!(lines[0], r#"{"create":{"_id":"h1"}}"#);
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn bulk_answers() {
        assert!(bulk_errors(r#"{"errors":false,"items":[]}"#).is_ok());
        let conflict =
            r#"{"errors":true,"items":[{"create":{"status":409}},{"create":{"status":201}}]}"#;
        assert!(bulk_errors(conflict).is_ok());
        let failed = r#"{"errors":true,"items":[{"create":{"status":400,"error":"mapping"}}]}"#;
        assert!(bulk_errors(failed).is_err());
    }
}
