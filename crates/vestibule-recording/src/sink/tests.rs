use std::fs;

use super::*;
use crate::digest::{HashAlgorithm, RecordingDigest};

/// Bytes that differ from block to block and run to run, so misplaced or
/// repeated blocks show.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed << 40) >> 11) as u8)
        .collect()
}

struct Case {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sink: Sink,
    hasher: ContentHasher,
    expected: Vec<u8>,
}

fn case(head_len: usize, direct: bool) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    let head = pattern(head_len, 99);
    fs::write(&path, &head).unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut hasher = ContentHasher::new(HashAlgorithm::Blake3);
    hasher.update(&head);
    Case {
        sink: Sink::new(file, &path, head.len() as u64, direct),
        _dir: dir,
        path,
        hasher,
        expected: head,
    }
}

impl Case {
    fn append(&mut self, data: &[u8]) {
        self.append_pieces(&[data]);
    }

    /// One write round of several pieces, as a batch with spliced payloads
    /// hands them over.
    fn append_pieces(&mut self, pieces: &[&[u8]]) {
        let len = pieces.iter().map(|p| p.len()).sum();
        self.sink
            .append(len, pieces.iter().copied(), &mut self.hasher)
            .unwrap();
        for p in pieces {
            self.expected.extend_from_slice(p);
        }
    }

    fn on_disk(&self) -> Vec<u8> {
        fs::read(&self.path).unwrap()
    }

    fn check(&self) {
        let disk = self.on_disk();
        assert_eq!(disk.len(), self.expected.len());
        assert!(disk == self.expected, "file content differs");
        assert_eq!(self.sink.len(), self.expected.len() as u64);
        let hash = self.hasher.clone().finish();
        assert_eq!(hash, RecordingDigest::of(HashAlgorithm::Blake3, &disk));
    }
}

/// Whether this test's file system does direct I/O at all (tmpfs before
/// Linux 6.6, some overlay set-ups do not); the content checks run either way.
fn has_direct(c: &Case) -> bool {
    c.sink.direct.is_some()
}

#[test]
fn bursts_go_direct_and_every_byte_lands_in_order() {
    for head_len in [0, 100, 4096, 5000] {
        let mut c = case(head_len, true);
        let direct = has_direct(&c);
        // Small writes first: page cache, no staging.
        c.append(b"[0.1, \"o\", \"hello\"]\n");
        assert!(!c.sink.staging());
        // A burst (bigger than the staging window, ending mid-block).
        c.append(&pattern(STAGING_BYTES * 3 + 777, 1));
        assert_eq!(c.sink.staging(), direct);
        // Between ticks the tail may be in memory only: everything up to it
        // is on disk already.
        let disk = c.on_disk();
        assert!(disk.len() as u64 + 4096 > c.sink.len());
        assert_eq!(disk[..], c.expected[..disk.len()]);
        c.sink.flush_tail(true).unwrap();
        c.check();
        // More small and large rounds, with ticks between.
        c.append(&pattern(10, 2));
        c.append(&pattern(BURST_BYTES + 1, 3));
        c.sink.flush_tail(true).unwrap();
        c.check();
        // A quiet interval ends the burst.
        c.sink.flush_tail(true).unwrap();
        assert!(!c.sink.staging());
        c.append(&pattern(33, 4));
        c.check();
        // And a new burst starts from the partial block on disk.
        c.append(&pattern(BURST_BYTES * 2 + 5, 5));
        c.sink.flush_tail(false).unwrap();
        c.check();
        if direct {
            assert!(
                c.sink.direct_bytes >= (STAGING_BYTES * 3) as u64,
                "{}",
                c.sink.direct_bytes
            );
        }
    }
}

#[test]
fn a_round_of_many_pieces_is_one_burst_written_in_order() {
    for direct in [true, false] {
        let mut c = case(123, direct);
        // Pieces each below the burst size whose round is above it, as a
        // download's 32 KiB packets between event headers.
        let bodies: Vec<Vec<u8>> = (0..40).map(|i| pattern(32 << 10, 20 + i)).collect();
        let mut pieces: Vec<&[u8]> = Vec::new();
        for body in &bodies {
            pieces.push(b"[0.5, \"ob\", 32768]\n");
            pieces.push(body);
            pieces.push(b"\n");
        }
        c.append_pieces(&pieces);
        assert_eq!(c.sink.staging(), has_direct(&c));
        c.sink.flush_tail(false).unwrap();
        c.check();
        if has_direct(&c) {
            assert!(c.sink.direct_bytes >= (36 << 15), "{}", c.sink.direct_bytes);
        }
    }
}

#[test]
fn without_direct_io_everything_goes_through_the_page_cache() {
    let mut c = case(10, false);
    c.append(&pattern(STAGING_BYTES * 2 + 3, 6));
    assert!(!c.sink.staging());
    c.check();
    c.sink.flush_tail(true).unwrap();
    assert_eq!(c.sink.direct_bytes, 0);
    c.check();
}

#[test]
fn the_direct_descriptor_is_separate_and_the_lock_stays_on_the_file() {
    let mut c = case(0, true);
    if !has_direct(&c) {
        return;
    }
    c.append(&pattern(BURST_BYTES, 7));
    assert!(c.sink.staging());
    c.sink.file().try_lock().unwrap();
    let other = File::open(&c.path).unwrap();
    assert!(other.try_lock().is_err());
}

#[test]
fn refused_direct_writes_fall_back_to_the_page_cache_mid_burst() {
    let mut c = case(100, true);
    let Some(d) = c.sink.direct.as_mut() else {
        return;
    };
    d.misalign = true;
    c.append(&pattern(STAGING_BYTES * 2 + 777, 8));
    assert!(c.sink.direct.is_none(), "direct I/O still in use");
    assert_eq!(c.sink.direct_bytes, 0);
    c.check();
    c.append(&pattern(BURST_BYTES * 3, 9));
    c.sink.flush_tail(true).unwrap();
    c.check();
}
