//! A real OpenSSH `sftp` session, relayed through a recorder the way the
//! gateway's pump does it (record, then forward), in odd chunk sizes.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;
use vestibule_recording::{Mode, SessionKind, SessionRecorder, SftpOp};

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// Copy `from` to `to`, recording each chunk first; chunk sizes vary.
fn relay(mut from: impl Read, mut to: impl Write, rec: &SessionRecorder, client: bool, seed: u64) {
    let mut x = seed;
    let mut buf = vec![0u8; 8192];
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = (x % 8191) as usize + 1;
        let n = match from.read(&mut buf[..size]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let recorded = if client {
            rec.input(&buf[..n])
        } else {
            rec.output(&buf[..n])
        };
        recorded.unwrap();
        if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_sftp_session_is_recorded_as_file_operations() {
    if !Path::new(SFTP_SERVER).exists() || Command::new("sftp").arg("-V").output().is_err() {
        eprintln!(
            "NOTICE: sftp or {SFTP_SERVER} missing (apt-get install openssh-client openssh-sftp-server); skipping"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (remote, local) = (d.join("remote"), d.join("local"));
    fs::create_dir_all(&remote).unwrap();
    fs::create_dir_all(&local).unwrap();
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(local.join("up.bin"), &content).unwrap();
    for fifo in ["c2s", "s2c"] {
        assert!(
            Command::new("mkfifo")
                .arg(d.join(fifo))
                .status()
                .unwrap()
                .success()
        );
    }
    // sftp -D runs this instead of ssh: its stdin goes to us, ours to its stdout.
    let script = d.join("relay.sh");
    fs::write(
        &script,
        format!(
            // A background job's stdin is /dev/null unless redirected explicitly.
            "#!/bin/sh\nexec 3<&0\ncat <&3 > '{0}/c2s' &\nexec cat < '{0}/s2c'\n",
            d.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let (r, l) = (remote.display(), local.display());
    let batch = d.join("batch");
    fs::write(
        &batch,
        format!(
            "put {l}/up.bin {r}/up.bin\n\
             get {r}/up.bin {l}/down.bin\n\
             rename {r}/up.bin {r}/moved.bin\n\
             chmod 600 {r}/moved.bin\n\
             mkdir {r}/newdir\n\
             rmdir {r}/newdir\n\
             -get {r}/missing {l}/missing\n\
             rm {r}/moved.bin\n"
        ),
    )
    .unwrap();

    let store = store(&d.join("recordings")).await;
    let rec = store
        .start(meta(SessionKind::Subsystem {
            name: "sftp".into(),
        }))
        .await
        .unwrap();
    assert_eq!(rec.mode(), Mode::Sftp);

    let mut server = Command::new(SFTP_SERVER)
        .current_dir(&remote)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = Command::new("sftp")
        .arg("-b")
        .arg(&batch)
        .arg("-D")
        .arg(&script)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server_in = server.stdin.take().unwrap();
    let server_out = server.stdout.take().unwrap();
    let (c2s, s2c) = (d.join("c2s"), d.join("s2c"));
    let recorder = &rec;
    std::thread::scope(|s| {
        s.spawn(move || {
            // Opening a FIFO blocks until the other end is opened too.
            let from_client = fs::File::open(&c2s).unwrap();
            relay(
                from_client,
                server_in,
                recorder,
                true,
                0x1234_5678_9abc_def1,
            );
        });
        s.spawn(move || {
            let to_client = fs::OpenOptions::new().write(true).open(&s2c).unwrap();
            relay(
                server_out,
                to_client,
                recorder,
                false,
                0x0fed_cba9_8765_4321,
            );
        });
        assert!(client.wait().unwrap().success(), "sftp batch failed");
    });
    server.wait().unwrap();
    assert_eq!(fs::read(local.join("down.bin")).unwrap(), content);

    let id = rec.id().to_owned();
    assert!(rec.finish().await.unwrap().complete);
    let l = lines(&data_path(&store, &id));
    let ops: Vec<SftpOp> = events(&l, "f")
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).unwrap())
        .collect();
    let up = format!("{r}/up.bin");
    let moved = format!("{r}/moved.bin");
    let has = |want: &SftpOp| assert!(ops.contains(want), "missing {want:?} in {ops:#?}");
    has(&SftpOp::Open {
        path: up.clone(),
        flags: "write,creat,trunc".into(),
        status: "ok".into(),
    });
    has(&SftpOp::Close {
        path: up.clone(),
        bytes_read: 0,
        bytes_written: 100_000,
        status: "ok".into(),
    });
    has(&SftpOp::Open {
        path: up.clone(),
        flags: "read".into(),
        status: "ok".into(),
    });
    has(&SftpOp::Close {
        path: up.clone(),
        bytes_read: 100_000,
        bytes_written: 0,
        status: "ok".into(),
    });
    has(&SftpOp::Rename {
        from: up.clone(),
        to: moved.clone(),
        status: "ok".into(),
    });
    assert!(
        ops.iter()
            .any(|o| matches!(o, SftpOp::Setstat { path, attrs, status }
            if path == &moved && attrs.mode.as_deref() == Some("600") && status == "ok")),
        "{ops:#?}"
    );
    has(&SftpOp::Mkdir {
        path: format!("{r}/newdir"),
        status: "ok".into(),
    });
    has(&SftpOp::Rmdir {
        path: format!("{r}/newdir"),
        status: "ok".into(),
    });
    has(&SftpOp::Remove {
        path: moved.clone(),
        status: "ok".into(),
    });
    // No file content in the recording: it is far smaller than what moved.
    let size = fs::metadata(data_path(&store, &id)).unwrap().len();
    assert!(size < 10_000, "{size}");
    let counts = events(&l, "n");
    let last: &Value = &counts.last().unwrap().1;
    assert!(last["input"].as_u64().unwrap() > 100_000);
    assert!(last["output"].as_u64().unwrap() > 100_000);

    // The transcript reads well.
    let mut out = Vec::new();
    vestibule_recording::write_transcript(
        &store.get(&id).await.unwrap(),
        &fs::read(data_path(&store, &id)).unwrap(),
        &mut out,
    )
    .unwrap();
    let t = String::from_utf8(out).unwrap();
    assert!(
        t.contains(&format!("sftp close {up} (read 0 B, wrote 100000 B): ok")),
        "{t}"
    );
    assert!(
        t.contains(&format!("sftp rename {up} -> {moved}: ok")),
        "{t}"
    );
}
