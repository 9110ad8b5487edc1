//! Throughput of the hot path, for docs/recording.md. Run it optimized:
//!
//! ```text
//! cargo test --release -p vestibule-recording --test throughput -- --ignored --nocapture
//! ```
//!
//! - "hot path": CPU time of the calling thread inside `output()` (or
//!   `output_shared()`, as the gateway calls it), which is what the gateway's
//!   data path pays per byte;
//! - "all": CPU time of the whole process (hot path, the writer's copies
//!   into the page cache, SHA-256, finish) per GiB handed in, to compare with
//!   the gateway's own CPU per GiB in docs/benchmarks.md;
//! - "wall": until `finish()` has written, synced and hashed everything, the
//!   producer awaiting `ready()` after each chunk as a pump would. With the
//!   default directory this includes the disk; `BENCH_DIR=/dev/shm` leaves it out,
//!   `BENCH_SYNC=0` leaves out the periodic fdatasync, `BENCH_DIRECT=0` direct
//!   I/O (page-cache writes only). `BENCH_ONLY=TEXT`
//!   runs only the cases whose name holds TEXT.

mod common;

use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};

use common::*;
use vestibule_recording::{RecordingStore, SessionKind};

const CHUNK: usize = 32 << 10;
const TOTAL: usize = 1 << 30;

fn terminal_chunk() -> Vec<u8> {
    let line = "drwxr-xr-x  2 root root  4096 Jan  1 00:00 \x1b[01;34mdirectory-ü\x1b[0m\r\n";
    line.as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(CHUNK)
        .collect()
}

fn log_chunk() -> Vec<u8> {
    let line = "2025-01-01T00:00:00Z INFO request served path=/api/v1/items status=200 took=3ms\n";
    line.as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(CHUNK)
        .collect()
}

fn binary_chunk() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn cpu(id: ClockId) -> Duration {
    let t = clock_gettime(id);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// How the chunks are handed in.
#[derive(Clone, Copy)]
enum Handing {
    /// `output(&[u8])`: the recorder copies what it keeps.
    Borrowed,
    /// `output_shared(&Bytes)`, as the gateway's pump does: a ring of distinct
    /// buffers (more than a core's cache holds), so the writer reads them
    /// from memory as it would a download's packets.
    Shared,
}

const RING: usize = 64;

async fn measure(name: &str, kind: SessionKind, chunk: &[u8], handing: Handing) {
    // BENCH_ONLY=zeros runs only the cases whose name holds that text.
    if std::env::var("BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    // BENCH_DIR=/dev/shm takes the disk out of the end-to-end figure.
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let mut c = config(dir.path());
    // BENCH_DIRECT=0 writes through the page cache only, to price direct I/O.
    if std::env::var("BENCH_DIRECT").is_ok_and(|v| v == "0") {
        c.direct_io = false;
    }
    // BENCH_SYNC=0 leaves out the periodic fdatasync, to price it.
    if std::env::var("BENCH_SYNC").is_ok_and(|v| v == "0") {
        c.sync_on_flush = false;
    }
    let ring: Vec<bytes::Bytes> = (0..RING)
        .map(|_| bytes::Bytes::copy_from_slice(chunk))
        .collect();
    let store = RecordingStore::open(&c).await.unwrap();
    let rec = store.start(meta(kind)).await.unwrap();
    let start = Instant::now();
    let cpu_start = cpu(ClockId::ProcessCPUTime);
    let mut in_calls = Duration::ZERO;
    let mut sent = 0;
    while sent < TOTAL {
        // No await inside output(): the same thread before and after.
        let t = cpu(ClockId::ThreadCPUTime);
        match handing {
            Handing::Borrowed => rec.output(chunk).unwrap(),
            Handing::Shared => rec.output_shared(&ring[sent / chunk.len() % RING]).unwrap(),
        }
        in_calls += cpu(ClockId::ThreadCPUTime).saturating_sub(t);
        sent += chunk.len();
        // What a pump would do: let a slow disk push back.
        rec.ready().await;
    }
    let summary = rec.finish().await.unwrap();
    let total = start.elapsed();
    let all = cpu(ClockId::ProcessCPUTime).saturating_sub(cpu_start);
    let mb = sent as f64 / 1e6;
    let gib = sent as f64 / (1u64 << 30) as f64;
    println!(
        "{name:<32} hot path {:>6.0} MB/s = {:.3} CPU s/GiB | all {:.2} CPU s/GiB | wall {:>4.0} MB/s | file {:>4.0} MB",
        mb / in_calls.as_secs_f64(),
        in_calls.as_secs_f64() / gib,
        all.as_secs_f64() / gib,
        mb / total.as_secs_f64(),
        summary.bytes as f64 / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --release --ignored"]
async fn output_throughput_32k_chunks() {
    use Handing::*;
    println!("1 GiB in 32 KiB chunks per case");
    let terminal = terminal_chunk();
    measure("pty, terminal text (asciicast)", pty(), &terminal, Borrowed).await;
    measure(
        "exec, log text (json lines)",
        exec("tail -f log"),
        &log_chunk(),
        Borrowed,
    )
    .await;
    let binary = binary_chunk();
    let zeros = [0u8; CHUNK];
    for (name, chunk) in [("binary", &binary[..]), ("zeros", &zeros[..])] {
        for (how, handing) in [("copied", Borrowed), ("shared", Shared)] {
            measure(
                &format!("exec, {name} (raw blobs, {how})"),
                exec("cat /dev/urandom"),
                chunk,
                handing,
            )
            .await;
        }
    }
    measure("scp (counts only)", exec("scp -f /big"), &binary, Borrowed).await;
}
