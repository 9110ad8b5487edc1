//! End-to-end: every session is recorded and replayable; recording storage that
//! is unavailable refuses sessions (fail closed) unless policy marks recording
//! optional.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::tmux::Tmux;
use common::{COMMAND_TIMEOUT, World, run, wait_until};

/// `recordings list --json`, once `count` recordings are finished.
fn finished_recordings(w: &World, count: usize) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(15), || {
        let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        let done = list.iter().filter(|r| r["state"] != "recording").count();
        (list.len() == count && done == count).then_some(list)
    })
    .unwrap_or_else(|| {
        let out = w.gw.cli(&["recordings", "list", "--json"]);
        panic!("expected {count} finished recordings:\n{out}")
    })
}

fn play(w: &World, id: &str) -> String {
    let out =
        w.gw.cli_ok(&["play", id, "--speed", "1000", "--idle-limit", "0.01"]);
    out.stdout_str()
}

#[test]
fn a_shell_session_replays_the_same_screen_text() {
    let w = World::new();
    let tmux = Tmux::start(
        &w.alice.interactive_ssh_line(w.gw.port, "alice:web1"),
        100,
        30,
    );
    tmux.wait_for_prompt();
    tmux.type_line("echo recorded-$((7*6))");
    tmux.wait_for_text("recorded-42");
    tmux.type_line("exit");
    assert_eq!(tmux.wait_exit(), 0);
    let list = finished_recordings(&w, 1);
    let rec = &list[0];
    assert_eq!(rec["state"], "complete", "{rec}");
    assert_eq!(rec["person"], "alice");
    assert_eq!(rec["mode"], "asciicast");
    let id = rec["id"].as_str().expect("id");
    assert!(play(&w, id).contains("recorded-42"));
    let cast = w.gw.data_dir().join("export.cast");
    w.gw.cli_ok(&["recordings", "export", id, "-o", cast.to_str().unwrap()]);
    let text = fs::read_to_string(&cast).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (header["version"].as_u64(), header["width"].as_u64()),
        (Some(2), Some(100))
    );
    assert!(text.contains("recorded-42"));
    w.gw.cli_ok(&["recordings", "verify"]);
    // The audit trail holds the recording's hash, which names its algorithm.
    let digest = rec["digest"].as_str().expect("digest");
    assert!(digest.starts_with("blake3:"), "{rec}");
    common::identity::found(&w, "recording.stored", digest);
    // A changed file is found.
    let path = rec["location"]["path"]
        .as_str()
        .map(std::path::PathBuf::from)
        .expect("local path");
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    fs::write(&path, bytes).unwrap();
    w.gw.cli(&["recordings", "verify"]).assert_failed();
}

#[test]
fn exec_output_and_exit_status_are_recorded() {
    let w = World::new();
    let out = w.exec("alice:web1", "echo out-marker; echo err-marker >&2; exit 3");
    assert_eq!(out.code(), Some(3), "{out}");
    let list = finished_recordings(&w, 1);
    assert_eq!(list[0]["exit_status"], 3, "{}", list[0]);
    assert_eq!(list[0]["state"], "complete");
    let transcript = play(&w, list[0]["id"].as_str().unwrap());
    assert!(
        transcript.contains("out-marker") && transcript.contains("err-marker"),
        "{transcript}"
    );
}

#[test]
fn binary_output_is_recorded_byte_for_byte() {
    let w = World::new();
    // Random bytes hold NULs and invalid UTF-8, so they are kept as raw blobs;
    // 3 MB is about a hundred SSH packets, several flushes of the recorder.
    let out = w.exec("alice:web1", "head -c 3000000 /dev/urandom");
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.len(), 3_000_000);
    let list = finished_recordings(&w, 1);
    assert_eq!(list[0]["state"], "complete", "{}", list[0]);
    let id = list[0]["id"].as_str().unwrap();
    let file = w.gw.data_dir().join("export.jsonl");
    w.gw.cli_ok(&["recordings", "export", id, "-o", file.to_str().unwrap()]);
    let (_, events) = vestibule_recording::parse_events(&fs::read(&file).unwrap());
    let mut recorded = Vec::new();
    for e in events {
        match (e.code.as_str(), e.bytes) {
            ("o", None) => recorded.extend_from_slice(e.data.as_str().unwrap().as_bytes()),
            ("ob", Some(bytes)) => recorded.extend(bytes),
            _ => {}
        }
    }
    assert_eq!(recorded.len(), out.stdout.len());
    assert!(
        recorded == out.stdout,
        "the recording differs from the output"
    );
    w.gw.cli_ok(&["recordings", "verify"]);
}

#[test]
fn sftp_file_operations_are_recorded_with_paths_and_sizes() {
    let w = World::new();
    let local = w.alice.dir().join("upload.bin");
    fs::write(&local, vec![7u8; 54_321]).unwrap();
    let remote = format!("/tmp/vestibule-rec-{}", std::process::id());
    let batch = w.alice.dir().join("batch");
    fs::write(
        &batch,
        format!(
            "put {local} {remote}.a\nget {remote}.a {local}.back\nrename {remote}.a {remote}.b\nrm {remote}.b\n",
            local = local.display()
        ),
    )
    .unwrap();
    let mut sftp = w.alice.tool("sftp");
    sftp.args(["-P", &w.gw.port.to_string(), "-b"])
        .arg(&batch)
        .arg("alice+web1@127.0.0.1");
    run(&mut sftp, COMMAND_TIMEOUT).assert_ok();
    let list = finished_recordings(&w, 1);
    let transcript = play(&w, list[0]["id"].as_str().unwrap());
    for needle in [
        format!("{remote}.a"),
        format!("{remote}.b"),
        "54321".to_owned(),
    ] {
        assert!(
            transcript.contains(&needle),
            "no {needle} in:\n{transcript}"
        );
    }
}

#[test]
fn sessions_are_refused_when_recording_storage_is_unavailable_unless_optional() {
    let mut w = World::new();
    let config = w.gw.data_dir().join("vestibule.toml");
    // More free space than any disk has: storage counts as full.
    let text = fs::read_to_string(&config).unwrap().replace(
        "min_free_bytes = 268435456",
        "min_free_bytes = 9223372036854775807",
    );
    fs::write(&config, text).unwrap();
    w.gw.restart();
    w.exec("alice:web1", "true")
        .assert_refused_with(&["recording storage unavailable, session refused"]);
    // The refusal is recorded without waiting, and indexed a moment later.
    let refused = wait_until(Duration::from_secs(15), || {
        let out =
            w.gw.cli_ok(&["audit", "search", "--type", "session.start", "--json"]);
        out.stdout_str()
            .contains("recording storage unavailable")
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "the refused session start is not in the audit trail"
    );
    fs::write(
        w.gw.data_dir().join("policies/optional.cedar"),
        r#"permit (principal, action == Vestibule::Action::"recording.optional", resource)
           when { resource.name == "web1" };"#,
    )
    .unwrap();
    w.exec("alice:web1", "echo unrecorded")
        .assert_ok()
        .assert_stdout("unrecorded\n");
}

#[test]
fn a_full_disk_mid_session_ends_the_session_with_a_message() {
    let mut w = World::new();
    let mount = w.gw.data_dir().join("small-recordings");
    fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("NOTICE: cannot mount a tmpfs (not root?); full-disk test skipped");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let config = w.gw.data_dir().join("vestibule.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("dir = \"recordings\"", "dir = \"small-recordings\"")
        .replace("min_free_bytes = 268435456", "min_free_bytes = 0")
        // The recorder never holds more than this, so at most the 2 MiB of
        // disk plus this much can have been forwarded when the disk fills,
        // however the writer's rounds fall.
        .replace(
            "buffer_limit_bytes = 8388608",
            "buffer_limit_bytes = 1048576",
        );
    assert!(text.contains("buffer_limit_bytes = 1048576"), "{text}");
    fs::write(&config, text).unwrap();
    w.gw.restart();
    let out = w.exec("alice:web1", "head -c 20000000 /dev/zero | base64");
    out.assert_failed();
    assert!(
        out.stderr_str().contains("vestibule: recording storage"),
        "the person should be told why:\n{}",
        out.stderr_str()
    );
    // Far less than the 27 MB of output reached the person: nothing beyond
    // what the recorder took was forwarded.
    assert!(
        out.stdout_str().len() < 3_300_000,
        "{} bytes forwarded",
        out.stdout_str().len()
    );
}

#[test]
fn proxyjump_sessions_are_recorded_too() {
    let w = World::new();
    let out = common::run(
        &mut w.alice.ssh_jump(w.gw.port, "root@web1", "echo via-jump"),
        COMMAND_TIMEOUT,
    );
    out.assert_ok().assert_stdout("via-jump\n");
    let list = finished_recordings(&w, 1);
    assert_eq!(list[0]["via_jump"], true, "{}", list[0]);
    assert!(play(&w, list[0]["id"].as_str().unwrap()).contains("via-jump"));
}

/// s3s-fs (a real S3 server), installed by scripts/s3s-fs.sh.
fn s3s_fs() -> Option<std::path::PathBuf> {
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/s3s-fs/bin/s3s-fs");
    bin.exists().then_some(bin)
}

#[test]
fn recordings_go_to_s3_compatible_storage() {
    let Some(bin) = s3s_fs() else {
        eprintln!(
            "\n*** NOTICE: s3s-fs not installed (scripts/s3s-fs.sh); S3 gateway test SKIPPED ***\n"
        );
        return;
    };
    let mut w = World::new();
    let data = w.gw.data_dir().join("s3-data");
    fs::create_dir_all(data.join("recordings")).unwrap();
    let port = common::free_port();
    let mut server = common::ChildGuard::spawn(
        Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "AKIATEST", "--secret-key", "secretsecret"])
            .arg(&data),
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("s3s-fs listens");
    let config = w.gw.data_dir().join("vestibule.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("storage = \"local\"", "storage = \"s3\"")
        .replace(
            "[database]",
            &format!(
                "[recording.s3]\nbucket = \"recordings\"\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"us-east-1\"\naccess_key_id = \"AKIATEST\"\nsecret_access_key = \"secretsecret\"\nallow_http = true\npath_style = true\n\n[database]"
            ),
        );
    fs::write(&config, text).unwrap();
    w.gw.restart();
    w.exec("alice:web1", "echo to-s3")
        .assert_ok()
        .assert_stdout("to-s3\n");
    finished_recordings(&w, 1);
    // A finished recording is complete on the local spool first; its upload
    // follows, so wait for that rather than race it.
    let uploaded = wait_until(Duration::from_secs(15), || {
        let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        list.into_iter().find(|r| r["upload_pending"] == false)
    });
    let rec = uploaded.unwrap_or_else(|| {
        let out = w.gw.cli(&["recordings", "list", "--json"]);
        panic!("the recording never reached S3:\n{out}")
    });
    let rec = &rec;
    assert_eq!(rec["state"], "complete", "{rec}");
    let location = rec["location"].to_string();
    assert!(location.contains("s3"), "{location}");
    assert!(play(&w, rec["id"].as_str().unwrap()).contains("to-s3"));
    w.gw.cli_ok(&["recordings", "verify"]);
    // The bucket goes away: the session that finds out keeps its recording in
    // the local spool (to be uploaded later); sessions after it are refused.
    server.kill();
    // (Its upload is retried for a moment after the session ends, so the
    // refusals start once those attempts have failed.)
    w.exec("alice:web1", "echo spooled").assert_ok();
    let refused = wait_until(Duration::from_secs(30), || {
        let out = w.exec("alice:web1", "true");
        out.stderr_str()
            .contains("recording storage unavailable")
            .then_some(out)
    })
    .expect("sessions refused once the bucket is known to be down");
    refused.assert_refused_with(&["recording storage unavailable, session refused"]);
    let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).unwrap();
    assert!(list.iter().any(|r| r["upload_pending"] == true), "{list:?}");
}
