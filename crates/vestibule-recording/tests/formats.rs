//! What each kind of channel leaves on disk.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use vestibule_recording::cli::{PlayArgs, RecordingsCommand, run_play, run_recordings};
use vestibule_recording::{HashAlgorithm, Location, Mode, RecordingDigest, SessionKind, State};

#[tokio::test]
async fn pty_session_is_asciicast_v2_with_header_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let mut m = meta(pty());
    m.record_input = true;
    let rec = store.start(m).await.unwrap();
    assert_eq!(rec.mode(), Mode::Asciicast);
    rec.output(b"$ ").unwrap();
    rec.input(b"ls\r").unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A character cut between two chunks, and escapes that need quoting.
    rec.output(b"ls\r\nfile \xe2\x82").unwrap();
    rec.output(b"\xac \x1b[1m\"q\"\\\x1b[0m\r\n").unwrap();
    rec.resize(120, 40).unwrap();
    rec.exit_status(0).unwrap();
    let id = rec.id().to_owned();
    let summary = rec.finish().await.unwrap();
    assert!(summary.complete);
    assert_eq!(summary.id, id);

    let path = data_path(&store, &id);
    assert!(path.extension().unwrap() == "cast");
    let l = lines(&path);
    let h = &l.header;
    assert_eq!(h["version"], 2);
    assert_eq!(h["width"], 80);
    assert_eq!(h["height"], 24);
    assert_eq!(h["env"]["TERM"], "xterm-256color");
    assert!(h["timestamp"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(h["title"], "alice as root@web1");
    assert_eq!(h["vestibule"]["session_id"], "sess-1");
    assert_eq!(h["vestibule"]["person"], "alice");
    assert_eq!(h["vestibule"]["target"], "web1");
    assert_eq!(h["vestibule"]["login"], "root");
    assert_eq!(h["vestibule"]["ticket"], "CHG-42");
    assert_eq!(text(&l, "o"), "$ ls\r\nfile € \x1b[1m\"q\"\\\x1b[0m\r\n");
    assert_eq!(text(&l, "i"), "ls\r");
    assert_eq!(events(&l, "r")[0].1, "120x40");
    let times: Vec<f64> = l.events.iter().map(|e| e.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times.last().unwrap() >= &0.02);

    let info = store.get(&id).await.unwrap();
    assert_eq!(info.state, State::Complete);
    assert_eq!(info.exit_status, Some(0));
    assert_eq!(info.traffic.input, 3);
    assert_eq!(info.digest, Some(summary.digest));
    assert_eq!(
        summary.digest,
        RecordingDigest::of(HashAlgorithm::Blake3, &std::fs::read(&path).unwrap()),
        "by default the digest is BLAKE3 of exactly the stored bytes"
    );
    assert_eq!(info.bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(info.location, Location::Local { path: path.clone() });
}

#[tokio::test]
async fn input_is_not_kept_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(pty())).await.unwrap();
    rec.input(b"secret\r").unwrap();
    rec.output(b"ok").unwrap();
    let id = rec.id().to_owned();
    rec.finish().await.unwrap();
    let l = lines(&data_path(&store, &id));
    assert!(events(&l, "i").is_empty());
    assert!(
        !std::fs::read_to_string(data_path(&store, &id))
            .unwrap()
            .contains("secret")
    );
}

#[tokio::test]
async fn forwarded_bytes_are_on_disk_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(pty())).await.unwrap();
    rec.output(b"visible-before-finish").unwrap();
    let path = data_path(&store, rec.id());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(on_disk.contains("visible-before-finish"), "{on_disk}");
    assert_eq!(store.get(rec.id()).await.unwrap().state, State::Recording);
    rec.finish().await.unwrap();
}

#[tokio::test]
async fn exec_keeps_command_stdout_stderr_and_exit_status_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(exec("uname -a; false"))).await.unwrap();
    assert_eq!(rec.mode(), Mode::Transcript);
    rec.output(b"Linux web1\n").unwrap();
    rec.stderr(b"warning: \xff\xfe binary\n").unwrap();
    rec.exit_status(1).unwrap();
    let id = rec.id().to_owned();
    rec.finish().await.unwrap();
    let l = lines(&data_path(&store, &id));
    assert_eq!(l.header["vestibule_recording"], 1);
    assert_eq!(l.header["kind"]["command"], "uname -a; false");
    assert_eq!(text(&l, "o"), "Linux web1\n");
    assert_eq!(text(&l, "e"), "warning: ");
    let blob = l.events.iter().find(|e| e.code == "eb").unwrap();
    assert_eq!(blob.bytes.as_deref(), Some(&b"\xff\xfe binary\n"[..]));
    assert_eq!(events(&l, "x")[0].1, 1);

    let mut out = Vec::new();
    let args = PlayArgs {
        id: id.clone(),
        speed: 1.0,
        idle_limit: None,
    };
    run_play(&store, &args, &mut out).await.unwrap();
    let t = String::from_utf8(out).unwrap();
    assert!(t.contains("exec: uname -a; false"), "{t}");
    assert!(t.contains("out | Linux web1"), "{t}");
    assert!(t.contains("exit status 1"), "{t}");
}

#[tokio::test]
async fn scp_rsync_and_forwards_keep_counts_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    for kind in [
        exec("scp -t /tmp/upload"),
        exec("rsync --server -vlogDtpre.iLsfxCIvu . /srv"),
        SessionKind::Forward {
            host: "db1".into(),
            port: 5432,
        },
    ] {
        let rec = store.start(meta(kind)).await.unwrap();
        assert_eq!(rec.mode(), Mode::CountsOnly);
        rec.input(&[7u8; 100_000]).unwrap();
        rec.output(b"\0").unwrap();
        let id = rec.id().to_owned();
        rec.finish().await.unwrap();
        let path = data_path(&store, &id);
        assert!(std::fs::metadata(&path).unwrap().len() < 1000);
        let l = lines(&path);
        let counts = events(&l, "n");
        let last = &counts.last().unwrap().1;
        assert_eq!(last["input"], 100_000);
        assert_eq!(last["output"], 1);
        let info = store.get(&id).await.unwrap();
        assert_eq!(info.traffic.input, 100_000);
        assert!(info.ended.unwrap() >= info.started);
    }
    let mut out = Vec::new();
    run_recordings(
        &store,
        RecordingsCommand::List(vestibule_recording::cli::ListArgs {
            user: None,
            target: None,
            since: None,
            json: false,
        }),
        &mut out,
    )
    .await
    .unwrap();
    let t = String::from_utf8(out).unwrap();
    assert!(t.contains("forward: db1:5432"), "{t}");
    assert!(t.contains("exec: scp -t /tmp/upload"), "{t}");
}

/// Debian's asciinema 2.2 must accept an exported recording.
#[tokio::test]
async fn stock_asciinema_plays_an_exported_recording() {
    if Command::new("asciinema").arg("--version").output().is_err() {
        eprintln!(
            "NOTICE: asciinema not installed (apt-get install -y asciinema); skipping the playback check"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rec = store.start(meta(pty())).await.unwrap();
    rec.output(b"hello from \xe2\x82\xac recording\r\n")
        .unwrap();
    rec.output(b"second line\r\n").unwrap();
    let id = rec.id().to_owned();
    rec.finish().await.unwrap();
    let out_file = dir.path().join("export.cast");
    let mut out = Vec::new();
    run_recordings(
        &store,
        RecordingsCommand::Export {
            id: id.clone(),
            output: out_file.clone(),
        },
        &mut out,
    )
    .await
    .unwrap();
    let played = Command::new("asciinema")
        .arg("play")
        .arg(&out_file)
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&played.stdout);
    assert!(
        played.status.success(),
        "asciinema play failed: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    assert!(stdout.contains("hello from € recording"), "{stdout}");
    assert!(stdout.contains("second line"), "{stdout}");

    // Our own player writes the same output.
    let mut mine = Vec::new();
    let args = PlayArgs {
        id,
        speed: 10.0,
        idle_limit: Some(0.1),
    };
    run_play(&store, &args, &mut mine).await.unwrap();
    assert_eq!(
        String::from_utf8(mine).unwrap(),
        "hello from € recording\r\nsecond line\r\n"
    );
}
