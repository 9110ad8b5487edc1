//! Failing closed: a full buffer, a full disk, too little free space.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use vestibule_recording::{RecordingError, RecordingStore, State};

/// A store whose recorders refuse bytes past 64 KiB waiting for the writer.
async fn small_buffer_store(dir: &Path) -> RecordingStore {
    let mut c = config(dir);
    c.buffer_limit_bytes = 64 << 10;
    RecordingStore::open(&c).await.unwrap()
}

/// Push `len`-byte chunks until one is refused: the bytes accepted and the error.
fn push_until_refused(
    len: usize,
    mut push: impl FnMut() -> Result<(), RecordingError>,
) -> (usize, RecordingError) {
    let mut accepted = 0;
    loop {
        match push() {
            Ok(()) => accepted += len,
            Err(e) => return (accepted, e),
        }
    }
}

/// On a current-thread runtime the writer cannot run while the test pushes
/// bytes without awaiting, so the buffer fills deterministically.
#[tokio::test]
async fn exceeding_the_buffer_limit_is_an_error_and_the_recording_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_buffer_store(dir.path()).await;
    let rec = store.start(meta(exec("cat big"))).await.unwrap();
    let chunk = vec![b'a'; 4096];
    let (accepted, err) = push_until_refused(chunk.len(), || rec.output(&chunk));
    assert!(matches!(err, RecordingError::BufferFull { .. }), "{err:?}");
    assert_eq!(err.to_string(), "recording storage cannot keep up");
    assert!(accepted > 32 << 10 && accepted <= 64 << 10, "{accepted}");
    // Once refused, always refused: the session must end.
    assert!(rec.output(b"x").is_err());
    let id = rec.id().to_owned();
    let summary = rec.finish().await.unwrap();
    assert!(!summary.complete);
    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Incomplete);
    assert!(info.problem.unwrap().contains("refused"));
    // What was accepted is all there.
    let l = lines(&data_path(&store, &id));
    assert_eq!(text(&l, "o").len(), accepted);
    assert_eq!(info.traffic.output as usize, accepted);
}

/// Payloads held by reference count against the limit as copies do, and a
/// refused chunk leaves nothing of itself behind.
#[tokio::test]
async fn shared_payloads_count_against_the_buffer_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_buffer_store(dir.path()).await;
    let rec = store.start(meta(exec("cat /dev/urandom"))).await.unwrap();
    // Binary (a NUL), large enough to be kept by reference.
    let mut body = vec![7u8; 8192];
    body[0] = 0;
    let chunk = bytes::Bytes::from(body);
    let (accepted, err) = push_until_refused(chunk.len(), || rec.output_shared(&chunk));
    assert!(matches!(err, RecordingError::BufferFull { .. }), "{err:?}");
    assert!(accepted > 32 << 10 && accepted <= 64 << 10, "{accepted}");
    let id = rec.id().to_owned();
    assert!(!rec.finish().await.unwrap().complete);
    let raw = std::fs::read(data_path(&store, &id)).unwrap();
    let (_, events) = vestibule_recording::parse_events(&raw);
    let kept: usize = events
        .iter()
        .filter(|e| e.code == "ob")
        .map(|e| e.bytes.as_ref().map_or(0, |b| b.len()))
        .sum();
    assert_eq!(kept, accepted);
    assert!(
        events
            .iter()
            .filter_map(|e| e.bytes.as_ref())
            .all(|b| b[..] == chunk[..])
    );
}

/// A pump that awaits `ready()` between chunks is slowed down, never cut off.
#[tokio::test]
async fn ready_turns_a_slow_writer_into_backpressure() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_buffer_store(dir.path()).await;
    let rec = store.start(meta(exec("cat big"))).await.unwrap();
    let chunk = vec![b'a'; 8192];
    for _ in 0..2000 {
        rec.output(&chunk).unwrap();
        rec.ready().await;
    }
    let id = rec.id().to_owned();
    assert!(rec.finish().await.unwrap().complete);
    assert_eq!(
        text(&lines(&data_path(&store, &id)), "o").len(),
        2000 * 8192
    );
}

#[tokio::test]
async fn below_min_free_space_start_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.min_free_bytes = u64::MAX / 2;
    let store = RecordingStore::open(&c).await.unwrap();
    let err = store.start(meta(pty())).await.unwrap_err();
    assert_eq!(err.to_string(), "recording storage unavailable");
    assert!(err.detail().unwrap().contains("min_free_bytes"), "{err:?}");
    assert!(store.check_storage().await.is_err());
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_directory_refuses_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("rec")).await;
    std::fs::remove_dir_all(dir.path().join("rec")).unwrap();
    let err = store.start(meta(pty())).await.unwrap_err();
    assert_eq!(err.to_string(), "recording storage unavailable");
}

/// A 1 MiB tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_sessions_and_fails_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("small")) else {
        eprintln!(
            "NOTICE: cannot mount a tmpfs (not root?); full-disk test covered by min_free_bytes only"
        );
        return;
    };
    let mut c = config(&fs.0.join("rec"));
    c.flush_interval_ms = 50;
    let store = RecordingStore::open(&c).await.unwrap();
    let running = store.start(meta(pty())).await.unwrap();
    running.output(b"before the disk filled\r\n").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    fill(&fs.0);

    let err = store.start(meta(pty())).await.unwrap_err();
    assert_eq!(err.to_string(), "recording storage unavailable");
    assert!(
        format!("vestibule: {err}, session refused")
            == "vestibule: recording storage unavailable, session refused"
    );

    // The running session fails at its next flush and must be ended.
    let chunk = vec![b'x'; 16 << 10];
    let mut failed = None;
    for _ in 0..200 {
        if let Err(e) = running.output(&chunk) {
            failed = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ended_incomplete(&store, &fs, running, failed, "before the disk filled").await;
    drop(store);
    drop(fs);
}

/// The writer failed on a full disk: the next data call said so, and once
/// the filler is gone (room for the metadata) the recording finishes
/// incomplete with what was written before, `kept`.
async fn ended_incomplete(
    store: &RecordingStore,
    fs: &Tmpfs,
    running: vestibule_recording::SessionRecorder,
    failed: Option<RecordingError>,
    kept: &str,
) {
    let failed = failed.expect("writer never failed on a full disk");
    assert!(matches!(failed, RecordingError::Failed), "{failed:?}");
    assert_eq!(failed.to_string(), "recording storage failed");
    let id = running.id().to_owned();
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    let summary = running.finish().await.unwrap();
    assert!(!summary.complete);
    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Incomplete);
    let content = std::fs::read(data_path(store, &id)).unwrap();
    assert!(content.windows(kept.len()).any(|w| w == kept.as_bytes()));
}

/// A burst (written with direct I/O where the file system has it, as tmpfs
/// does since Linux 6.6) that does not fit fails the recording exactly as
/// page-cache writes do, and what fitted before it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_does_not_fit_fails_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("small")) else {
        eprintln!("NOTICE: cannot mount a tmpfs (not root?); burst on a full disk not tested");
        return;
    };
    let store = RecordingStore::open(&config(&fs.0.join("rec")))
        .await
        .unwrap();
    let running = store.start(meta(exec("cat big"))).await.unwrap();
    running.output(b"before the burst\n").unwrap();
    // Leave about 400 KiB free: less than the burst below.
    std::fs::write(fs.0.join("filler"), vec![0u8; 512 << 10]).unwrap();

    let chunk = vec![7u8; 256 << 10];
    let mut failed = None;
    for _ in 0..64 {
        if let Err(e) = running.output(&chunk) {
            failed = Some(e);
            break;
        }
        running.ready().await;
    }
    ended_incomplete(&store, &fs, running, failed, "before the burst").await;
    drop(store);
    drop(fs);
}
