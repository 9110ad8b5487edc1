//! End-to-end: several channels over one client connection (OpenSSH connection
//! multiplexing), and a stalled channel that must not stall its neighbours.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{COMMAND_TIMEOUT, ChildGuard, World, run, wait_until};

/// A ControlMaster connection for `alice:web1`; muxed clients reuse it.
struct Master {
    _process: ChildGuard,
    control: PathBuf,
}

impl Master {
    fn start(w: &World) -> Self {
        let control = w.alice.dir().join("ctl");
        let path = format!("ControlPath={}", control.display());
        let mut cmd = w.alice.ssh_no_command(
            w.gw.port,
            "alice:web1",
            &["-N", "-o", "ControlMaster=yes", "-o", &path],
        );
        let process = ChildGuard::spawn(&mut cmd, Stdio::null(), Stdio::null());
        wait_until(COMMAND_TIMEOUT, || control.exists().then_some(()))
            .expect("the ControlMaster never created its socket");
        Self {
            _process: process,
            control,
        }
    }

    fn muxed(&self, w: &World, command: &str) -> Command {
        let path = format!("ControlPath={}", self.control.display());
        w.alice.ssh_with(
            w.gw.port,
            "alice:web1",
            &["-o", "ControlMaster=no", "-o", &path],
            command,
        )
    }
}

fn authentications(w: &World) -> usize {
    w.gw.log().matches("Authenticated {").count()
}

#[test]
fn several_channels_share_one_connection() {
    let w = World::new();
    let master = Master::start(&w);
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = master.muxed(&w, &format!("sleep 0.5; echo channel-{i}"));
            thread::spawn(move || run(&mut cmd, COMMAND_TIMEOUT))
        })
        .collect();
    for (i, handle) in runs.into_iter().enumerate() {
        let out = handle.join().expect("muxed client thread");
        out.assert_ok().assert_stdout(&format!("channel-{i}\n"));
    }
    assert_one_connection(&w);
}

#[test]
fn a_stalled_channel_does_not_stall_its_neighbours() {
    let w = World::new();
    let master = Master::start(&w);
    // Nobody reads this client's stdout: its pipe fills, its channel's window
    // closes, and the gateway must hold that channel's data without pausing the
    // connection the other channels share.
    let _stalled = ChildGuard::spawn(
        &mut master.muxed(&w, "head -c 200000000 /dev/zero"),
        Stdio::piped(),
        Stdio::null(),
    );
    thread::sleep(Duration::from_secs(2));
    assert_neighbours_answer(&w, &master);
}

#[test]
fn a_target_that_stops_reading_does_not_stall_its_neighbours() {
    let w = World::new();
    let master = Master::start(&w);
    // This channel's target reads nothing while its input keeps coming: the
    // gateway must close that channel's window, not stop reading the
    // connection the other channels share (upstream russh parks the whole
    // session loop once the channel's queue is full).
    let mut cmd = master.muxed(&w, "sleep 60");
    let mut feeding = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the fed client");
    let mut stdin = feeding.stdin.take().expect("stdin of the fed client");
    thread::spawn(move || {
        let chunk = vec![0u8; 64 * 1024];
        while stdin.write_all(&chunk).is_ok() {}
    });
    thread::sleep(Duration::from_secs(2));
    assert_neighbours_answer(&w, &master);
    let _ = feeding.kill();
    let _ = feeding.wait();
}

/// Other channels of the master's connection still run commands.
#[track_caller]
fn assert_neighbours_answer(w: &World, master: &Master) {
    for i in 0..3 {
        run(
            &mut master.muxed(w, &format!("echo alive-{i}")),
            Duration::from_secs(20),
        )
        .assert_ok()
        .assert_stdout(&format!("alive-{i}\n"));
    }
    assert_one_connection(w);
}

#[track_caller]
fn assert_one_connection(w: &World) {
    assert_eq!(
        authentications(w),
        1,
        "expected one connection:\n{}",
        w.gw.log()
    );
}
