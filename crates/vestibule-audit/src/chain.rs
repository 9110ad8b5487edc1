//! The chain's byte-level rules: canonical JSON, record hashes, the line
//! formats of events and checkpoints, and what a checkpoint signs. Writer and
//! verifier both go through here so they cannot disagree.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::key::{AuditKey, AuditPublicKey};

/// The `prev` of the first event.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// JSON with object keys in byte order and no whitespace. Numbers and strings
/// are written as serde_json writes them, which is stable for the values an
/// event can hold (integers, strings, and floats that came from serde_json).
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => push_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn push_string(s: &str, out: &mut String) {
    out.push_str(&Value::from(s).to_string());
}

/// SHA-256 over a domain tag, the sequence number, the previous hash and the
/// canonical event, hex-encoded. The sequence number is inside the hash so a
/// renumbered record fails on its own line.
pub(crate) fn event_hash(seq: u64, prev: &str, canonical_event: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"vestibule-audit/1\n");
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_event.as_bytes());
    hex::encode(hasher.finalize())
}

/// One event line, newline included. The event is written in its canonical
/// form so the file shows exactly the bytes that were hashed.
pub(crate) fn event_line(seq: u64, prev: &str, hash: &str, canonical_event: &str) -> String {
    format!(
        "{{\"seq\":{seq},\"prev\":\"{prev}\",\"hash\":\"{hash}\",\"event\":{canonical_event}}}\n"
    )
}

/// A signed statement that the chain's event `seq` has hash `hash`.
/// `prev_checkpoint` (0 for the first) chains checkpoints together so a
/// deleted checkpoint is noticed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub prev_checkpoint: u64,
    pub time: String,
    pub key: String,
    pub sig: String,
}

impl Checkpoint {
    pub fn sign(seq: u64, hash: &str, prev_checkpoint: u64, key: &AuditKey) -> Self {
        let time = crate::Timestamp::now().to_string();
        let message = checkpoint_message(seq, hash, prev_checkpoint, &time);
        Self {
            seq,
            hash: hash.to_owned(),
            prev_checkpoint,
            sig: key.sign(&message),
            key: key.public_key().to_string(),
            time,
        }
    }

    pub fn verify(&self, key: &AuditPublicKey) -> bool {
        let message = checkpoint_message(self.seq, &self.hash, self.prev_checkpoint, &self.time);
        key.verify(&message, &self.sig)
    }

    pub fn line(&self) -> String {
        let body = serde_json::json!({ "checkpoint": self });
        format!("{}\n", canonical(&body))
    }
}

fn checkpoint_message(seq: u64, hash: &str, prev_checkpoint: u64, time: &str) -> Vec<u8> {
    format!("vestibule-audit-checkpoint/1\n{seq}\n{hash}\n{prev_checkpoint}\n{time}").into_bytes()
}

/// A parsed line of a log file.
#[derive(Debug)]
pub(crate) enum Line {
    Event {
        seq: u64,
        prev: String,
        hash: String,
        event: Value,
    },
    Checkpoint(Checkpoint),
}

#[derive(Deserialize)]
struct RawLine {
    seq: Option<u64>,
    prev: Option<String>,
    hash: Option<String>,
    event: Option<Value>,
    checkpoint: Option<Checkpoint>,
}

pub(crate) fn parse_line(text: &str) -> Result<Line, String> {
    let raw: RawLine = serde_json::from_str(text).map_err(|e| format!("not a log record: {e}"))?;
    if let Some(checkpoint) = raw.checkpoint {
        return Ok(Line::Checkpoint(checkpoint));
    }
    match (raw.seq, raw.prev, raw.hash, raw.event) {
        (Some(seq), Some(prev), Some(hash), Some(event)) => Ok(Line::Event {
            seq,
            prev,
            hash,
            event,
        }),
        _ => Err("not a log record: needs seq, prev, hash and event".to_owned()),
    }
}

impl Line {
    /// The hash this event record should carry, recomputed from its content.
    pub fn computed_hash(seq: u64, prev: &str, event: &Value) -> String {
        event_hash(seq, prev, &canonical(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let value = json!({"b": 1, "a": {"z": [true, null, "x\"y"], "c": -2.5}});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"c":-2.5,"z":[true,null,"x\"y"]},"b":1}"#
        );
        let reparsed: Value = serde_json::from_str(&canonical(&value)).unwrap();
        assert_eq!(canonical(&reparsed), canonical(&value));
    }

    #[test]
    fn event_lines_round_trip_and_hash_depends_on_seq() {
        let event = canonical(&json!({"event": {"action": "session.start"}}));
        let hash = event_hash(1, GENESIS, &event);
        assert_ne!(hash, event_hash(2, GENESIS, &event));
        let line = event_line(1, GENESIS, &hash, &event);
        match parse_line(line.trim_end()).unwrap() {
            Line::Event {
                seq,
                prev,
                hash: h,
                event: e,
            } => {
                assert_eq!(
                    (seq, prev.as_str(), h.as_str()),
                    (1, GENESIS, hash.as_str())
                );
                assert_eq!(Line::computed_hash(seq, &prev, &e), hash);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checkpoints_sign_and_verify() {
        let key = AuditKey::generate();
        let checkpoint = Checkpoint::sign(7, "ab", 3, &key);
        assert!(checkpoint.verify(&key.public_key()));
        let line = checkpoint.line();
        let Line::Checkpoint(parsed) = parse_line(line.trim_end()).unwrap() else {
            panic!("not a checkpoint");
        };
        assert_eq!(parsed, checkpoint);
        let mut forged = parsed;
        forged.seq = 8;
        assert!(!forged.verify(&key.public_key()));
        assert!(!checkpoint.verify(&AuditKey::generate().public_key()));
    }
}
