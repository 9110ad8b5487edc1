//! The S3 backend against a real S3 server (s3s-fs, installed by
//! `scripts/s3s-fs.sh`). Skipped, loudly, when the binary is missing.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use object_store::ObjectStoreExt;
use vestibule_recording::cli::{PlayArgs, run_play};
use vestibule_recording::{
    Location, RecordingConfig, RecordingDigest, RecordingError, RecordingStore, RecordingSummary,
    S3Config, State, StorageKind, VerifyOutcome,
};

const ACCESS: &str = "AKIATEST";
const SECRET: &str = "secretsecret";
const BUCKET: &str = "recordings-test";

fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/s3s-fs/bin/s3s-fs");
    p.exists().then_some(p)
}

fn skip_notice() {
    eprintln!(
        "\n*** NOTICE: s3s-fs not found; S3 tests SKIPPED. Run scripts/s3s-fs.sh (or set S3S_FS). ***\n"
    );
}

/// An s3s-fs process on a free loopback port; killed (by its PID) when dropped.
struct S3Server {
    child: Child,
    port: u16,
    data: PathBuf,
    bin: PathBuf,
}

impl S3Server {
    fn start(bin: &Path, data: &Path, port: Option<u16>) -> S3Server {
        std::fs::create_dir_all(data.join(BUCKET)).unwrap();
        let port = port.unwrap_or_else(|| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        S3Server {
            child,
            port,
            data: data.to_owned(),
            bin: bin.to_owned(),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        let new = S3Server::start(&self.bin, &self.data, Some(self.port));
        *self = new;
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn s3_config(spool: &Path, endpoint: &str, secret: &str) -> RecordingConfig {
    let mut c = config(spool);
    c.storage = StorageKind::S3;
    c.s3 = Some(
        serde_json::from_value::<S3Config>(serde_json::json!({
            "bucket": BUCKET,
            "endpoint": endpoint,
            "access_key_id": ACCESS,
            "secret_access_key": secret,
            "allow_http": true,
            "path_style": true,
            "part_size_bytes": 5 << 20,
            "upload_attempts": 2,
            "retry_backoff_ms": 50,
            "request_timeout_secs": 5,
        }))
        .unwrap(),
    );
    c
}

fn digest_like(summary: &RecordingSummary, b: &[u8]) -> RecordingDigest {
    RecordingDigest::of(summary.digest.algorithm(), b)
}

fn object_path(server: &S3Server, key: &str) -> PathBuf {
    server.data.join(BUCKET).join(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_recording_is_uploaded_and_read_back() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let c = s3_config(&dir.path().join("spool"), &server.endpoint(), SECRET);
    let store = RecordingStore::open(&c).await.unwrap();
    store.check_storage().await.unwrap();

    let rec = store.start(meta(pty())).await.unwrap();
    rec.output(b"stored in s3\r\n").unwrap();
    let id = rec.id().to_owned();
    let spool_file = data_path(&store, &id);
    let summary = rec.finish().await.unwrap();
    assert!(summary.complete && !summary.upload_pending, "{summary:?}");
    let key = format!("recordings/{id}.cast");
    assert_eq!(
        summary.location,
        Location::S3 {
            bucket: BUCKET.into(),
            key: key.clone()
        }
    );
    assert!(
        !spool_file.exists(),
        "the spool copy must go after the upload"
    );
    let object = std::fs::read(object_path(&server, &key)).unwrap();
    assert_eq!(digest_like(&summary, &object), summary.digest);
    assert!(object_path(&server, &format!("{key}.meta.json")).exists());

    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Complete);
    assert!(!info.upload_pending);
    assert_eq!(
        store.verify(Some(&id)).await.unwrap()[0].outcome,
        VerifyOutcome::Ok
    );
    let mut out = Vec::new();
    let args = PlayArgs {
        id: id.clone(),
        speed: 100.0,
        idle_limit: None,
    };
    run_play(&store, &args, &mut out).await.unwrap();
    assert_eq!(out, b"stored in s3\r\n");

    // A change to the object is detected too.
    std::fs::write(object_path(&server, &key), b"tampered").unwrap();
    assert!(matches!(
        store.verify(Some(&id)).await.unwrap()[0].outcome,
        VerifyOutcome::Mismatch { .. }
    ));

    // Retention removes it from the bucket.
    let path = store.dir().join(format!("{id}.meta.json"));
    let mut i: vestibule_recording::RecordingInfo =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    i.ended = Some(chrono::Utc::now() - chrono::Duration::days(10));
    std::fs::write(&path, serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(store.sweep(5).await.unwrap(), vec![id]);
    assert!(!object_path(&server, &key).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_recording_goes_up_in_parts() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let mut c = s3_config(&dir.path().join("spool"), &server.endpoint(), SECRET);
    c.sync_on_flush = false;
    let store = RecordingStore::open(&c).await.unwrap();
    let rec = store.start(meta(exec("cat /var/log/big"))).await.unwrap();
    let line = b"0123456789 the quick brown fox jumps over the lazy dog 0123456789\n".repeat(500);
    let mut sent = 0;
    while sent < 13 << 20 {
        rec.output(&line).unwrap();
        sent += line.len();
        // Paced like a network session, so the writer keeps up.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let id = rec.id().to_owned();
    let summary = rec.finish().await.unwrap();
    assert!(summary.complete && !summary.upload_pending, "{summary:?}");
    assert!(summary.bytes > 13 << 20);
    let key = format!("recordings/{id}.jsonl");
    let object = std::fs::read(object_path(&server, &key)).unwrap();
    assert_eq!(object.len() as u64, summary.bytes);
    assert_eq!(digest_like(&summary, &object), summary.digest);

    // S3 marks a multipart object's ETag with its part count.
    let client = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(server.endpoint())
        .with_region("us-east-1")
        .with_access_key_id(ACCESS)
        .with_secret_access_key(SECRET)
        .with_allow_http(true)
        .build()
        .unwrap();
    let head = client
        .head(&object_store::path::Path::from(key.as_str()))
        .await
        .unwrap();
    let etag = head.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "etag {etag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_sessions_with_it() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let c = s3_config(
        &dir.path().join("spool"),
        &server.endpoint(),
        "not-the-secret",
    );
    let store = RecordingStore::open(&c).await.unwrap();
    let err = store.check_storage().await.unwrap_err();
    assert!(matches!(err, RecordingError::Unavailable { .. }), "{err:?}");
    let detail = err.detail().unwrap().to_owned();
    assert!(!detail.contains("not-the-secret"), "{detail}");
    let refused = store.start(meta(pty())).await.unwrap_err();
    assert_eq!(refused.to_string(), "recording storage unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_at_finish_keeps_the_recording_in_the_spool_until_a_retry_succeeds() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let c = s3_config(&dir.path().join("spool"), &server.endpoint(), SECRET);
    let store = RecordingStore::open(&c).await.unwrap();
    store.check_storage().await.unwrap();
    let rec = store.start(meta(pty())).await.unwrap();
    rec.output(b"while s3 was down\r\n").unwrap();
    let id = rec.id().to_owned();
    let spool_file = data_path(&store, &id);

    server.stop();
    let t = Instant::now();
    let summary = rec.finish().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "finish took {:?}",
        t.elapsed()
    );
    assert!(summary.complete, "the recording itself is whole");
    assert!(summary.upload_pending);
    assert_eq!(
        summary.location,
        Location::Local {
            path: spool_file.clone()
        }
    );
    assert!(spool_file.exists());
    let info = store.get(&id).await.unwrap();
    assert!(info.upload_pending);
    assert_eq!(info.state, State::Complete);
    assert_eq!(store.upload_backlog_bytes(), info.bytes);
    assert!(info.bytes > 0);
    // Readable from the spool meanwhile.
    assert_eq!(
        store.verify(Some(&id)).await.unwrap()[0].outcome,
        VerifyOutcome::Ok
    );
    // Fail closed: no new sessions while object storage is down.
    let refused = store.start(meta(pty())).await.unwrap_err();
    assert_eq!(refused.to_string(), "recording storage unavailable");

    server.restart();
    assert_eq!(store.retry_uploads().await.unwrap(), vec![id.clone()]);
    assert!(!spool_file.exists());
    let info = store.get(&id).await.unwrap();
    assert!(!info.upload_pending);
    assert!(matches!(info.location, Location::S3 { .. }));
    assert!(object_path(&server, &format!("recordings/{id}.cast")).exists());
    assert_eq!(store.upload_backlog_bytes(), 0);
    // Back in service.
    store
        .start(meta(pty()))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
}

/// The backlog is kept in memory; an upload by another process (the CLI's
/// `recordings retry`) shows there after this process's next retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_by_another_process_leaves_the_backlog_at_the_next_retry() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let c = s3_config(&dir.path().join("spool"), &server.endpoint(), SECRET);
    let gateway = RecordingStore::open(&c).await.unwrap();
    gateway.check_storage().await.unwrap();
    let rec = gateway.start(meta(pty())).await.unwrap();
    rec.output(b"kept while s3 was down\r\n").unwrap();
    server.stop();
    let summary = rec.finish().await.unwrap();
    assert!(summary.upload_pending);
    let bytes = gateway.upload_backlog_bytes();
    assert!(bytes > 0);

    server.restart();
    // Another store over the same spool, as the CLI opens it.
    let cli = RecordingStore::open(&c).await.unwrap();
    assert_eq!(
        cli.upload_backlog_bytes(),
        bytes,
        "found by the listing at open"
    );
    assert_eq!(cli.retry_uploads().await.unwrap(), vec![summary.id.clone()]);
    assert_eq!(cli.upload_backlog_bytes(), 0);

    // The gateway's next retry finds it uploaded and uploads nothing itself.
    assert!(gateway.retry_uploads().await.unwrap().is_empty());
    assert_eq!(gateway.upload_backlog_bytes(), 0);
}

/// A waiting recording whose metadata cannot be read does not hold back the
/// others, and is still waiting for the next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_waiting_recording_does_not_hold_back_the_others() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let store = RecordingStore::open(&s3_config(&spool, &server.endpoint(), SECRET))
        .await
        .unwrap();
    store.check_storage().await.unwrap();
    let first = store.start(meta(pty())).await.unwrap();
    let second = store.start(meta(pty())).await.unwrap();
    server.stop();
    let first = first.finish().await.unwrap();
    let second = second.finish().await.unwrap();
    assert!(first.upload_pending && second.upload_pending);
    let broken = spool.join(format!("{}.meta.json", first.id));
    let text = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(&broken, "{ not json").unwrap();

    server.restart();
    assert_eq!(
        store.retry_uploads().await.unwrap(),
        vec![second.id.clone()]
    );
    std::fs::write(&broken, text).unwrap();
    assert_eq!(store.retry_uploads().await.unwrap(), vec![first.id.clone()]);
    assert_eq!(store.upload_backlog_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_recording_is_uploaded_after_recovery() {
    let Some(bin) = binary() else {
        return skip_notice();
    };
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&bin, &dir.path().join("s3"), None);
    let spool = dir.path().join("spool");
    let id = {
        // Finished locally, then made to look like a crash.
        let local = super_local(&spool).await;
        let rec = local.start(meta(pty())).await.unwrap();
        rec.output(b"crashed").unwrap();
        let id = rec.id().to_owned();
        rec.finish().await.unwrap();
        let path = spool.join(format!("{id}.meta.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"complete\"", "\"recording\"");
        std::fs::write(&path, text).unwrap();
        id
    };
    let store = RecordingStore::open(&s3_config(&spool, &server.endpoint(), SECRET))
        .await
        .unwrap();
    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Incomplete);
    assert!(info.upload_pending);
    assert_eq!(store.upload_backlog_bytes(), info.bytes);
    assert_eq!(store.retry_uploads().await.unwrap(), vec![id]);
    assert_eq!(store.upload_backlog_bytes(), 0);
}

async fn super_local(dir: &Path) -> RecordingStore {
    RecordingStore::open(&config(dir)).await.unwrap()
}
