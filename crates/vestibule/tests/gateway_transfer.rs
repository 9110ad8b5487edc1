//! End-to-end: moving bytes through the gateway — big streams both ways, scp,
//! sftp, rsync (through ProxyJump and through the user-name form) and TCP port
//! forwarding. The target runs on this machine, so files it writes are checked
//! straight from the local filesystem.

mod common;

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{
    COMMAND_TIMEOUT, ChildGuard, Client, Run, SshdTarget, World, free_port, random_bytes, run,
    run_with_stdin, wait_until,
};

const TEN_MIB: usize = 10 * 1024 * 1024;
/// Echoed through `cat` (see `echo_round_trip_through_user_name_form`).
const ECHO: usize = 48 * 1024 * 1024;

/// Local and "remote" working directories for one test (same filesystem).
struct Dirs {
    local: PathBuf,
    remote: PathBuf,
}

fn dirs(client: &Client) -> Dirs {
    let local = client.dir().join("local");
    let remote = client.dir().join("remote");
    fs::create_dir_all(&local).expect("mkdir local");
    fs::create_dir_all(&remote).expect("mkdir remote");
    Dirs { local, remote }
}

#[track_caller]
fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    assert!(actual == expected, "{what}: content differs");
}

#[track_caller]
fn assert_same_file(actual: &Path, expected: &[u8]) {
    let bytes = fs::read(actual).unwrap_or_else(|e| panic!("read {}: {e}", actual.display()));
    assert_same_bytes(&bytes, expected, &actual.display().to_string());
}

fn write_random(path: &Path, size: usize) -> Vec<u8> {
    let data = random_bytes(size);
    fs::write(path, &data).expect("write random file");
    data
}

#[track_caller]
fn ok(run: Run) -> Run {
    run.assert_ok();
    run
}

// ---- big streams -----------------------------------------------------------

#[test]
fn ten_mib_upload_through_stdin_is_byte_exact() {
    let w = World::new();
    let d = dirs(&w.alice);
    let dest = d.remote.join("upload.bin");
    let data = random_bytes(TEN_MIB);
    let command = format!("cat > '{}' && wc -c < '{}'", dest.display(), dest.display());
    let out = run_with_stdin(
        &mut w.ssh("alice:web1", &command),
        data.clone(),
        COMMAND_TIMEOUT,
    );
    out.assert_ok().assert_stdout(&format!("{TEN_MIB}\n"));
    assert_same_file(&dest, &data);
}

#[test]
fn ten_mib_download_through_stdout_is_byte_exact() {
    let w = World::new();
    let d = dirs(&w.alice);
    let src = d.remote.join("download.bin");
    let data = write_random(&src, TEN_MIB);
    let out = w.exec("alice:web1", &format!("cat '{}'", src.display()));
    out.assert_ok();
    assert_same_bytes(&out.stdout, &data, "downloaded stdout");
}

/// Both directions at once, more than a channel window and a queue each way:
/// `cat` stops reading while its output waits, so a gateway whose session loop
/// waits on one channel's queue (russh without third_party's patch) hangs here,
/// every time from 16 MiB on.
#[test]
fn echo_round_trip_through_user_name_form() {
    let w = World::new();
    assert_echoes(w.ssh("alice:web1", "cat"));
}

#[test]
fn echo_round_trip_through_proxyjump() {
    let w = World::new();
    assert_echoes(w.alice.ssh_jump(w.gw.port, "root@web1", "cat"));
}

/// The echo while the person's client renews its keys every 4 MiB: window
/// returns wait for the end of each key exchange, then resume.
#[test]
fn echo_round_trip_while_the_client_rekeys() {
    let w = World::new();
    assert_echoes(
        w.alice
            .ssh_with(w.gw.port, "alice:web1", &["-o", "RekeyLimit=4M"], "cat"),
    );
}

/// Send [`ECHO`] random bytes through `ssh` running `cat` and expect them back.
#[track_caller]
fn assert_echoes(mut ssh: Command) {
    let data = random_bytes(ECHO);
    let out = run_with_stdin(&mut ssh, data.clone(), COMMAND_TIMEOUT);
    out.assert_ok();
    assert_same_bytes(&out.stdout, &data, "echoed through cat");
}

/// A target that reads nothing holds the person back: the gateway takes about
/// a channel window per hop, not whatever the person can send. (A gateway that
/// kept its session loop moving by queueing without a bound would take all of
/// it, hundreds of MiB a second on loopback.)
#[test]
fn a_target_that_reads_nothing_holds_the_sender_back() {
    let w = World::new();
    assert_sender_held_back(w.ssh("alice:web1", "sleep 60"));
}

/// The same through `-J`, where the gateway's inner server reads the person's
/// forwarding channel: each hop holds a window, no more.
#[test]
fn a_target_that_reads_nothing_holds_the_sender_back_through_proxyjump() {
    let w = World::new();
    assert_sender_held_back(w.alice.ssh_jump(w.gw.port, "root@web1", "sleep 60"));
}

/// Feed `ssh`'s stdin as fast as it takes it, while the remote command reads
/// nothing, and check how much it took.
#[track_caller]
fn assert_sender_held_back(mut ssh: Command) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let mut child = KillOnDrop(
        ssh.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh"),
    );
    let mut stdin = child.0.stdin.take().expect("ssh stdin");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    thread::spawn(move || {
        let chunk = vec![0x5a_u8; 64 * 1024];
        while stdin.write_all(&chunk).is_ok() {
            counted.fetch_add(chunk.len(), Ordering::Relaxed);
        }
    });
    // Long enough to move gigabytes if nothing held the sender back.
    thread::sleep(Duration::from_secs(4));
    let first = accepted.load(Ordering::Relaxed);
    thread::sleep(Duration::from_secs(1));
    let second = accepted.load(Ordering::Relaxed);
    drop(child);
    eprintln!("the sender got {first} bytes out");
    // Windows (2 MiB at each gateway hop and at sshd), socket buffers, pipes.
    const BOUND: usize = 24 * 1024 * 1024;
    assert!(first > 0, "nothing was sent at all");
    assert!(
        first < BOUND,
        "the gateway took {first} bytes for a target that reads none"
    );
    assert_eq!(first, second, "still taking bytes after four seconds");
}

// ---- scp -------------------------------------------------------------------

/// Where scp finds the remote file: extra options and the `[USER@]HOST` part.
struct ScpRemote<'a> {
    options: &'a [&'a str],
    spec: &'a str,
}

/// The same remote for upload and download.
fn scp_same<'a>(spec: &'a str) -> (ScpRemote<'a>, ScpRemote<'a>) {
    let remote = || ScpRemote { options: &[], spec };
    (remote(), remote())
}

/// The target named in the user name. Uploads say `alice#web1@host:path`; for
/// downloads scp itself rejects a `#` in the user part of a source ("invalid
/// user name", its okname() check), so downloads use the `+` separator.
fn scp_user_form() -> (ScpRemote<'static>, ScpRemote<'static>) {
    (
        ScpRemote {
            options: &[],
            spec: "alice#web1@127.0.0.1",
        },
        ScpRemote {
            options: &[],
            spec: "alice+web1@127.0.0.1",
        },
    )
}

/// Upload then download one file with scp.
fn scp_round_trip(client: &Client, args: &[&str], (up, down): (ScpRemote, ScpRemote)) {
    let d = dirs(client);
    let src = d.local.join("scp-src.bin");
    let data = write_random(&src, 1024 * 1024 + 17);
    let remote = d.remote.join("scp-dst.bin");
    let remote_path = |r: &ScpRemote| format!("{}:{}", r.spec, remote.display());
    ok(run(
        client
            .tool("scp")
            .args(args)
            .args(up.options)
            .arg(&src)
            .arg(remote_path(&up)),
        COMMAND_TIMEOUT,
    ));
    assert_same_file(&remote, &data);

    let back = d.local.join("scp-back.bin");
    ok(run(
        client
            .tool("scp")
            .args(args)
            .args(down.options)
            .arg(remote_path(&down))
            .arg(&back),
        COMMAND_TIMEOUT,
    ));
    assert_same_file(&back, &data);
}

#[test]
fn scp_through_proxyjump() {
    let w = World::new();
    let jump = w.alice.jump(w.gw.port);
    scp_round_trip(&w.alice, &["-J", &jump], scp_same("root@web1"));
}

#[test]
fn scp_legacy_protocol_through_proxyjump() {
    let w = World::new();
    let jump = w.alice.jump(w.gw.port);
    scp_round_trip(&w.alice, &["-O", "-J", &jump], scp_same("root@web1"));
}

#[test]
fn scp_with_target_in_user_name() {
    let w = World::new();
    let port = w.gw.port.to_string();
    scp_round_trip(&w.alice, &["-P", &port], scp_user_form());
}

#[test]
fn scp_legacy_protocol_with_target_in_user_name() {
    let w = World::new();
    let port = w.gw.port.to_string();
    scp_round_trip(&w.alice, &["-O", "-P", &port], scp_user_form());
}

// ---- sftp ------------------------------------------------------------------

fn sftp_batch(client: &Client, args: &[&str], dest: &str) {
    let d = dirs(client);
    let src = d.local.join("sftp-src.bin");
    let data = write_random(&src, 512 * 1024 + 3);
    let remote = d.remote.join("sftp-dst.bin");
    let back = d.local.join("sftp-back.bin");
    let batch = d.local.join("batch");
    fs::write(
        &batch,
        format!(
            "put {src} {remote}\nget {remote} {back}\nls {dir}\nrm {remote}\n",
            src = src.display(),
            remote = remote.display(),
            back = back.display(),
            dir = d.remote.display(),
        ),
    )
    .expect("write batch file");
    let out = ok(run(
        client
            .tool("sftp")
            .args(args)
            .arg("-b")
            .arg(&batch)
            .arg(dest),
        COMMAND_TIMEOUT,
    ));
    assert!(
        out.stdout_str().contains("sftp-dst.bin"),
        "ls output:\n{out}"
    );
    assert_same_file(&back, &data);
    assert!(!remote.exists(), "rm did not remove {}", remote.display());
}

#[test]
fn sftp_batch_through_proxyjump() {
    let w = World::new();
    let jump = w.alice.jump(w.gw.port);
    sftp_batch(&w.alice, &["-J", &jump], "root@web1");
}

#[test]
fn sftp_batch_with_target_in_user_name() {
    let w = World::new();
    let port = w.gw.port.to_string();
    sftp_batch(&w.alice, &["-P", &port], "alice#web1@127.0.0.1");
}

// ---- rsync -----------------------------------------------------------------

/// A small tree with text, binary, empty and nested files.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).expect("mkdir tree");
    fs::write(root.join("a.txt"), "alpha\n").expect("write");
    fs::write(root.join("empty"), "").expect("write");
    write_random(&root.join("sub/b.bin"), 3 * 1024 * 1024 + 5);
    fs::write(root.join("sub/deeper/c.txt"), "gamma\n".repeat(1000)).expect("write");
}

/// Relative path and content of every file under `root`, sorted.
fn tree_contents(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
                out.push((rel, fs::read(&path).expect("read file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[track_caller]
fn assert_same_tree(actual: &Path, expected: &Path) {
    let (a, e) = (tree_contents(actual), tree_contents(expected));
    let names = |t: &[(PathBuf, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&e), "file lists differ");
    assert!(a == e, "file contents differ");
}

fn rsync_both_ways(client: &Client, shell: &str, remote_spec: &str) {
    let d = dirs(client);
    let src = d.local.join("tree");
    make_tree(&src);
    let remote = format!("{remote_spec}:{}/", d.remote.join("tree").display());
    ok(run(
        Command::new("rsync")
            .args(["-a", "-e", shell])
            .arg(format!("{}/", src.display()))
            .arg(&remote),
        COMMAND_TIMEOUT,
    ));
    assert_same_tree(&d.remote.join("tree"), &src);

    let back = d.local.join("back");
    ok(run(
        Command::new("rsync")
            .args(["-a", "-e", shell])
            .arg(&remote)
            .arg(format!("{}/", back.display())),
        COMMAND_TIMEOUT,
    ));
    assert_same_tree(&back, &src);
}

#[test]
fn rsync_through_proxyjump() {
    let w = World::new();
    let shell = w
        .alice
        .rsync_shell(&format!("-J {}", w.alice.jump(w.gw.port)));
    rsync_both_ways(&w.alice, &shell, "root@web1");
}

#[test]
fn rsync_with_target_in_user_name() {
    let w = World::new();
    let shell = w.alice.rsync_shell(&format!("-p {}", w.gw.port));
    rsync_both_ways(&w.alice, &shell, "alice#web1@127.0.0.1");
}

/// The oracle for the tests above: the same helpers straight to the target
/// (no gateway). If this fails, the machine's tools are at fault, not Vestibule.
#[test]
fn transfer_tools_work_directly_against_the_target() {
    let target = SshdTarget::start();
    let port = target.port.to_string();
    let admin = &target.admin;
    scp_round_trip(admin, &["-P", &port], scp_same("root@127.0.0.1"));
    sftp_batch(admin, &["-P", &port], "root@127.0.0.1");
    rsync_both_ways(
        admin,
        &admin.rsync_shell(&format!("-p {port}")),
        "root@127.0.0.1",
    );
}

// ---- port forwarding -------------------------------------------------------

/// A TCP echo server on 127.0.0.1, living as long as the test process.
fn start_echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let Ok(mut reader) = stream.try_clone() else {
                    return;
                };
                let _ = std::io::copy(&mut reader, &mut stream);
            });
        }
    });
    port
}

/// `ssh -N -L LOCAL:127.0.0.1:ECHO USER@gateway`, waited on until the local
/// port accepts connections. Returns the guard and the local port. A free port
/// can be taken by another test before ssh binds it: then ssh exits
/// (ExitOnForwardFailure) and we try another.
fn local_forward(w: &World, client: &Client, user: &str, echo_port: u16) -> (ChildGuard, u16) {
    let log_path = client.dir().join("forward.log");
    for _attempt in 0..3 {
        let local_port = free_port();
        let spec = format!("{local_port}:127.0.0.1:{echo_port}");
        let mut cmd = client.ssh_no_command(
            w.gw.port,
            user,
            &["-N", "-o", "ExitOnForwardFailure=yes", "-L", &spec],
        );
        let log = File::create(&log_path).expect("forward log");
        let mut child = ChildGuard::spawn(&mut cmd, Stdio::null(), Stdio::from(log));
        let listening = wait_until(Duration::from_secs(30), || {
            if child.exited() {
                return Some(false);
            }
            TcpStream::connect(("127.0.0.1", local_port))
                .is_ok()
                .then_some(true)
        });
        if listening == Some(true) && !child.exited() {
            return (child, local_port);
        }
    }
    panic!(
        "ssh -L never listened; its stderr:\n{}",
        common::tail_of(&log_path, 2000)
    );
}

/// Send `payload` to 127.0.0.1:`port`, half-close, read everything back.
fn exchange(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut writer = stream.try_clone()?;
    let payload = payload.to_vec();
    // Write on a thread so a large payload cannot deadlock against the echo.
    let sender = thread::spawn(move || {
        let result = writer.write_all(&payload);
        let _ = writer.shutdown(Shutdown::Write);
        result
    });
    let mut back = Vec::new();
    let read = stream.read_to_end(&mut back);
    let _ = sender.join();
    read.map(|_| back)
}

#[test]
fn local_port_forwarding_carries_bytes_when_allowed() {
    let w = World::new();
    let echo = start_echo_server();
    let (_ssh, port) = local_forward(&w, &w.alice, "alice:web1", echo);
    let payload = random_bytes(256 * 1024);
    let back = exchange(port, &payload).expect("exchange through forward");
    assert_same_bytes(&back, &payload, "echoed through -L");
    // The forwarded connection is recorded: its destination and the bytes
    // each way, complete once the channel has closed. (The probe that waited
    // for the forward to listen is recorded too, with no bytes.)
    let sent = payload.len() as u64;
    let recorded = wait_until(Duration::from_secs(15), || {
        let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        list.into_iter().find(|r| {
            r["kind"]["type"] == "forward"
                && r["state"] == "complete"
                && r["traffic"]["input"] == sent
        })
    })
    .unwrap_or_else(|| {
        let out = w.gw.cli(&["recordings", "list", "--json"]);
        panic!("no complete forward recording:\n{out}")
    });
    assert_eq!(recorded["kind"]["host"], "127.0.0.1", "{recorded}");
    assert_eq!(recorded["kind"]["port"], echo, "{recorded}");
    assert_eq!(recorded["traffic"]["input"], sent, "{recorded}");
    assert_eq!(recorded["traffic"]["output"], sent, "{recorded}");
}

#[test]
fn local_port_forwarding_is_refused_without_the_role_flag() {
    let w = World::new();
    w.add_role("noforward", "*", "root", false);
    let gina = w.new_user("gina", &["noforward"]);
    gina_still_has_a_shell(&w, &gina);
    let echo = start_echo_server();
    let (mut ssh, port) = local_forward(&w, &gina, "gina:web1", echo);
    let result = exchange(port, b"must not arrive\n");
    assert!(
        !ssh.exited(),
        "ssh -L died; was port {port} really its own?"
    );
    match result {
        Ok(back) => assert!(back.is_empty(), "bytes came back through a refused forward"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            ),
            "forwarded connection was neither closed nor echoed: {e}"
        ),
    }
}

fn gina_still_has_a_shell(w: &World, gina: &Client) {
    w.exec_as(gina, "gina:web1", "echo ok")
        .assert_ok()
        .assert_stdout("ok\n");
}

/// ProxyJump only reaches registered targets: a `-W` to some other address must
/// not become a raw TCP tunnel, even for a user allowed to forward ports. (The
/// gateway may accept the channel and speak SSH in it, refusing later; only
/// raw bytes reaching the address would be wrong.)
#[test]
fn jump_channel_to_an_unregistered_address_is_not_a_tunnel() {
    let w = World::new();
    let echo = start_echo_server();
    let to = format!("127.0.0.1:{echo}");
    let mut ssh = w.alice.ssh_no_command(w.gw.port, "alice", &["-W", &to]);
    let out = run_with_stdin(&mut ssh, b"raw-tunnel-probe\n".to_vec(), COMMAND_TIMEOUT);
    assert!(
        !out.stdout_str().contains("raw-tunnel-probe"),
        "bytes were echoed through an unregistered address:\n{out}"
    );
}

#[test]
fn remote_port_forwarding_is_refused_without_the_role_flag() {
    let w = World::new();
    w.add_role("noforward", "*", "root", false);
    let gina = w.new_user("gina", &["noforward"]);
    let out = run(
        &mut gina.ssh_with(
            w.gw.port,
            "gina:web1",
            &["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:1"],
            "true",
        ),
        COMMAND_TIMEOUT,
    );
    out.assert_failed();
}
