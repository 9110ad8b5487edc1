//! A gateway killed with SIGKILL mid-session leaves a readable recording that
//! the next open marks incomplete; live recordings are left alone.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vestibule_recording::cli::{RecordingsCommand, run_recordings};
use vestibule_recording::{RecordingStore, State, VerifyOutcome};

const CHILD_ENV: &str = "VESTIBULE_RECORDING_CRASH_CHILD";

/// Runs only inside the child process the crash test starts: records, waits
/// until the first part is on disk, says so, then hangs until killed.
#[tokio::test]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut c = config(std::path::Path::new(&dir));
    // Only the buffer's wake mark flushes, so what follows READY stays in memory.
    c.flush_interval_ms = 60_000;
    c.buffer_limit_bytes = 64 << 10;
    let store = RecordingStore::open(&c).await.unwrap();
    let rec = store.start(meta(pty())).await.unwrap();
    let path = data_path(&store, rec.id());
    let mut first = b"flushed-before-crash ".to_vec();
    first.resize(20 << 10, b'.');
    rec.output(&first).unwrap();
    while !std::fs::read_to_string(&path)
        .unwrap()
        .contains("flushed-before-crash")
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rec.output(b"never-flushed").unwrap();
    println!("READY {}", rec.id());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test]
async fn kill_9_leaves_a_readable_recording_marked_incomplete_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("READY ") {
            id = Some(rest.to_owned());
            break;
        }
    }
    let id = id.expect("the child never got ready");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = store(dir.path()).await;
    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Incomplete);
    assert!(info.problem.as_deref().unwrap().contains("stopped"));
    assert!(info.ended.is_some());
    let path = data_path(&store, &id);
    let l = lines(&path); // every line parses
    let out = text(&l, "o");
    assert!(out.starts_with("flushed-before-crash "));
    assert!(!out.contains("never-flushed"));
    // The counts, never written by the dead process, are what the file holds.
    assert_eq!(info.traffic.output, out.len() as u64);
    assert_eq!(info.bytes, std::fs::metadata(&path).unwrap().len());
    let reports = store.verify(Some(&id)).await.unwrap();
    assert_eq!(reports[0].outcome, VerifyOutcome::Ok);

    // Exported and replayable like any other.
    let mut sink = Vec::new();
    run_recordings(
        &store,
        RecordingsCommand::Export {
            id: id.clone(),
            output: dir.path().join("x.cast"),
        },
        &mut sink,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_half_written_last_line_is_cut_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = store(dir.path()).await;
        let rec = store.start(meta(pty())).await.unwrap();
        rec.output(b"whole line").unwrap();
        let id = rec.id().to_owned();
        let path = data_path(&store, &id);
        rec.finish().await.unwrap();
        // Make it look like a crash mid-write: state back to recording, a torn tail.
        let meta_file = dir.path().join(format!("{id}.meta.json"));
        let text = std::fs::read_to_string(&meta_file)
            .unwrap()
            .replace("\"complete\"", "\"recording\"");
        std::fs::write(&meta_file, text).unwrap();
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"[1.5, \"o\", \"torn").unwrap();
        id
    };
    let store = store(dir.path()).await;
    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Incomplete);
    let l = lines(&data_path(&store, &id));
    assert_eq!(text(&l, "o"), "whole line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_recording_is_not_touched_by_another_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(pty())).await.unwrap();
    rec.output(b"live").unwrap();
    // A CLI process opening the same directory.
    let other = vestibule_recording::RecordingStore::open(&config(dir.path()))
        .await
        .unwrap();
    assert_eq!(other.get(rec.id()).await.unwrap().state, State::Recording);
    assert!(rec.finish().await.unwrap().complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_dropped_without_finish_is_marked_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(exec("sleep 100"))).await.unwrap();
    rec.output(b"partial output\n").unwrap();
    let id = rec.id().to_owned();
    drop(rec);
    let mut state = State::Recording;
    for _ in 0..100 {
        state = store.get(&id).await.unwrap().state;
        if state != State::Recording {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, State::Incomplete);
    let info = store.get(&id).await.unwrap();
    assert!(info.problem.unwrap().contains("dropped"));
    assert_eq!(
        text(&lines(&data_path(&store, &id)), "o"),
        "partial output\n"
    );
    assert_eq!(
        store.verify(Some(&id)).await.unwrap()[0].outcome,
        VerifyOutcome::Ok
    );
}
