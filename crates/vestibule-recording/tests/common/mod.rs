//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;

use chrono::Utc;
use serde_json::Value;
use vestibule_recording::{
    RecordedEvent, RecordingConfig, RecordingMeta, RecordingStore, SessionKind, parse_events,
};

pub fn meta(kind: SessionKind) -> RecordingMeta {
    RecordingMeta {
        session_id: "sess-1".into(),
        person: "alice".into(),
        target: "web1".into(),
        login: "root".into(),
        ticket: Some("CHG-42".into()),
        kind,
        started_at: Utc::now(),
        via_jump: false,
        record_input: false,
    }
}

pub fn pty() -> SessionKind {
    SessionKind::Pty {
        term: "xterm-256color".into(),
        cols: 80,
        rows: 24,
        command: None,
    }
}

pub fn exec(command: &str) -> SessionKind {
    SessionKind::Exec {
        command: command.into(),
    }
}

/// Local storage in `dir` without the free-space floor (test machines vary).
pub fn config(dir: &Path) -> RecordingConfig {
    let mut c = RecordingConfig::local(dir);
    c.min_free_bytes = 0;
    c
}

pub async fn store(dir: &Path) -> RecordingStore {
    RecordingStore::open(&config(dir)).await.unwrap()
}

/// A recording file read back.
pub struct Rec {
    pub header: Value,
    pub events: Vec<RecordedEvent>,
}

/// Read a recording file; every record must parse.
pub fn lines(path: &Path) -> Rec {
    let content = std::fs::read(path).unwrap();
    let (header, events) = parse_events(&content);
    let records = content
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let blobs = events.iter().filter(|e| e.bytes.is_some()).count();
    assert!(
        records >= events.len() + 1 - blobs.min(records),
        "unparsed records"
    );
    Rec {
        header: header.expect("no header"),
        events,
    }
}

/// Events with a given code: (time, data).
pub fn events(r: &Rec, code: &str) -> Vec<(f64, Value)> {
    r.events
        .iter()
        .filter(|e| e.code == code)
        .map(|e| (e.time, e.data.clone()))
        .collect()
}

/// All text of events with a given code, joined.
pub fn text(r: &Rec, code: &str) -> String {
    events(r, code)
        .into_iter()
        .map(|(_, v)| v.as_str().unwrap().to_owned())
        .collect()
}

pub fn data_path(store: &RecordingStore, id: &str) -> std::path::PathBuf {
    let cast = store.dir().join(format!("{id}.cast"));
    if cast.exists() {
        cast
    } else {
        store.dir().join(format!("{id}.jsonl"))
    }
}
