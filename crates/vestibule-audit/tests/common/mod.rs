#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use vestibule_audit::{
    Action, AuditEvent, AuditHandle, AuditKey, AuditPublicKey, AuditWriter, Outcome, Timestamp,
    WriterOptions,
};

pub type Task = tokio::task::JoinHandle<Result<(), vestibule_audit::AuditError>>;

pub fn options(checkpoint_every: u64) -> WriterOptions {
    WriterOptions {
        checkpoint_every,
        checkpoint_interval: Duration::from_secs(3600),
        ..WriterOptions::default()
    }
}

/// A key kept on disk next to the log's directory, as the binary would.
pub fn key_path(dir: &Path) -> std::path::PathBuf {
    dir.parent().unwrap().join("audit.key")
}

pub async fn start(dir: &Path, options: WriterOptions) -> (AuditHandle, Task, AuditPublicKey) {
    let key = AuditKey::load_or_create(&key_path(dir)).unwrap();
    let public = key.public_key();
    let (handle, task) = AuditWriter::spawn(dir, key, options).await.unwrap();
    (handle, task, public)
}

/// Event `i`: alternating users and targets, one minute apart from a fixed
/// start so time filters are predictable.
pub fn event(i: u64) -> AuditEvent {
    let (user, target) = if i.is_multiple_of(2) {
        ("alice", "web1")
    } else {
        ("bob", "db1")
    };
    let action = match i % 3 {
        0 => Action::SessionStart,
        1 => Action::SessionEnd,
        _ => Action::AuthenticationFailure,
    };
    AuditEvent::new(action, Outcome::Success)
        .at(Timestamp::from_unix_millis(
            1_714_564_800_000 + i as i64 * 60_000,
        ))
        .user(user)
        .target(target)
        .session(format!("s-{i}"))
        .source(format!("192.0.2.{}:50000", i % 250 + 1).parse().unwrap())
        .detail("i", i)
}

/// A log of `n` events (seq 1..=n), closed cleanly.
pub async fn write_log(dir: &Path, n: u64, checkpoint_every: u64) -> AuditPublicKey {
    let (handle, task, public) = start(dir, options(checkpoint_every)).await;
    for i in 0..n {
        handle.append(event(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    public
}

/// Paths of the log files, oldest first.
pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit-")
        })
        .collect();
    files.sort();
    files
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}
