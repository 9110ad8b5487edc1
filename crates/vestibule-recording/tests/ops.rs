//! Operations on stored recordings: list, verify, hold, retention, watch.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::*;
use vestibule_recording::cli::{ListArgs, RecordingsCommand, WatchArgs, run_recordings, run_watch};
use vestibule_recording::{RecordingInfo, RecordingStore, VerifyOutcome};

async fn record(store: &RecordingStore, person: &str, target: &str, out: &[u8]) -> String {
    let mut m = meta(pty());
    m.person = person.into();
    m.target = target.into();
    let rec = store.start(m).await.unwrap();
    rec.output(out).unwrap();
    let id = rec.id().to_owned();
    assert!(rec.finish().await.unwrap().complete);
    id
}

async fn cli(store: &RecordingStore, cmd: RecordingsCommand) -> (ExitCode, String) {
    let mut out = Vec::new();
    let code = run_recordings(store, cmd, &mut out).await.unwrap();
    (code, String::from_utf8(out).unwrap())
}

fn list(user: Option<&str>, target: Option<&str>, since: Option<&str>) -> RecordingsCommand {
    RecordingsCommand::List(ListArgs {
        user: user.map(Into::into),
        target: target.map(Into::into),
        since: since.map(Into::into),
        json: true,
    })
}

#[tokio::test]
async fn verify_detects_a_modified_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let good = record(&store, "alice", "web1", b"untouched").await;
    let bad = record(&store, "bob", "web2", b"rm -rf evidence").await;

    let (code, text) = cli(
        &store,
        RecordingsCommand::Verify {
            id: None,
            json: false,
        },
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{text}");

    let path = data_path(&store, &bad);
    let tampered = std::fs::read_to_string(&path)
        .unwrap()
        .replace("rm -rf evidence", "ls             ");
    std::fs::write(&path, tampered).unwrap();

    let reports = store.verify(None).await.unwrap();
    let by_id = |id: &str| reports.iter().find(|r| r.id == id).unwrap().outcome.clone();
    assert_eq!(by_id(&good), VerifyOutcome::Ok);
    assert!(matches!(by_id(&bad), VerifyOutcome::Mismatch { .. }));
    let (code, text) = cli(
        &store,
        RecordingsCommand::Verify {
            id: None,
            json: false,
        },
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(text.contains(&format!("{bad} CHANGED")), "{text}");
    assert!(text.contains(&format!("{good} ok")), "{text}");

    std::fs::remove_file(data_path(&store, &good)).unwrap();
    let (code, text) = cli(
        &store,
        RecordingsCommand::Verify {
            id: Some(good.clone()),
            json: false,
        },
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(text.contains("MISSING"), "{text}");
}

#[tokio::test]
async fn list_filters_by_person_target_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    record(&store, "alice", "web1", b"a").await;
    record(&store, "bob", "web1", b"b").await;
    record(&store, "alice", "db1", b"c").await;
    let parse = |s: String| serde_json::from_str::<Vec<RecordingInfo>>(&s).unwrap();
    assert_eq!(parse(cli(&store, list(None, None, None)).await.1).len(), 3);
    assert_eq!(
        parse(cli(&store, list(Some("alice"), None, None)).await.1).len(),
        2
    );
    assert_eq!(
        parse(cli(&store, list(Some("alice"), Some("db1"), None)).await.1).len(),
        1
    );
    assert_eq!(
        parse(cli(&store, list(None, None, Some("1h"))).await.1).len(),
        3
    );
    assert_eq!(
        parse(
            cli(&store, list(None, None, Some("2999-01-01T00:00:00Z")))
                .await
                .1
        )
        .len(),
        0
    );
    let mut out = Vec::new();
    let table = run_recordings(
        &store,
        RecordingsCommand::List(ListArgs {
            user: Some("bob".into()),
            target: None,
            since: None,
            json: false,
        }),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(table, ExitCode::SUCCESS);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains("complete"), "{text}");
}

/// Pretend a recording ended `days` ago.
fn age(store: &RecordingStore, id: &str, days: i64) {
    let path = store.dir().join(format!("{id}.meta.json"));
    let mut info: RecordingInfo =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let then = chrono::Utc::now() - chrono::Duration::days(days);
    info.started = then;
    info.ended = Some(then);
    std::fs::write(&path, serde_json::to_string(&info).unwrap()).unwrap();
}

#[tokio::test]
async fn retention_deletes_old_recordings_but_skips_legal_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let old = record(&store, "alice", "web1", b"old").await;
    let held = record(&store, "alice", "web1", b"held").await;
    let fresh = record(&store, "alice", "web1", b"fresh").await;
    age(&store, &old, 40);
    age(&store, &held, 40);
    let (_, text) = cli(
        &store,
        RecordingsCommand::Hold {
            id: held.clone(),
            release: false,
        },
    )
    .await;
    assert!(text.contains("placed on legal hold"));
    assert!(store.get(&held).await.unwrap().legal_hold);

    let deleted = store.sweep(30).await.unwrap();
    assert_eq!(deleted, vec![old.clone()]);
    assert!(!data_path(&store, &old).exists());
    assert!(store.get(&old).await.is_err());
    assert!(data_path(&store, &held).exists());
    assert!(data_path(&store, &fresh).exists());
    let log = std::fs::read_to_string(store.dir().join("sweep.log")).unwrap();
    assert!(log.contains(&old) && !log.contains(&held), "{log}");

    // Released, the next sweep takes it.
    cli(
        &store,
        RecordingsCommand::Hold {
            id: held.clone(),
            release: true,
        },
    )
    .await;
    let (_, text) = cli(&store, RecordingsCommand::Sweep { days: Some(30) }).await;
    assert!(text.contains(&format!("deleted {held}")), "{text}");
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    assert!(store.get("../../etc/passwd").await.is_err());
    assert!(store.set_hold("nope", true).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_live_session_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.flush_interval_ms = 50;
    let store = RecordingStore::open(&c).await.unwrap();
    let rec = store.start(meta(pty())).await.unwrap();
    rec.output(b"first\r\n").unwrap();
    let session = "sess-1".to_owned();
    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            run_watch(&store, &WatchArgs { id: session }, &mut out)
                .await
                .unwrap();
            String::from_utf8(out).unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!watcher.is_finished());
    rec.output(b"second\r\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rec.finish().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("watch did not stop when the session ended")
        .unwrap();
    assert_eq!(seen, "first\r\nsecond\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_renders_an_exec_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(exec("make"))).await.unwrap();
    rec.output(b"building\n").unwrap();
    rec.stderr(b"warning\n").unwrap();
    rec.exit_status(2).unwrap();
    let id = rec.id().to_owned();
    rec.finish().await.unwrap();
    let mut out = Vec::new();
    run_watch(&store, &WatchArgs { id }, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("out | building"), "{text}");
    assert!(text.contains("err | warning"), "{text}");
    assert!(text.contains("exit status 2"), "{text}");
    assert!(text.contains("; complete"), "{text}");
}

#[tokio::test]
async fn metadata_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let mode = |id: &str| {
        let path = store.dir().join(format!("{id}.meta.json"));
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    // Written in place at the start, then rewritten aside at the end.
    let live = store.start(meta(pty())).await.unwrap();
    assert_eq!(mode(live.id()), 0o600);
    live.finish().await.unwrap();
    let done = record(&store, "alice", "web1", b"x").await;
    assert_eq!(mode(&done), 0o600);
}
