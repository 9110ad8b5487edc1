//! Where a recording's bytes go on disk: bursts by direct I/O, the rest through
//! the page cache.
//!
//! Bulk output (a download through the gateway) would otherwise be copied into
//! the page cache, have ext4 reserve and map every 4 KiB page as it is dirtied,
//! be written back, and finally be evicted again, for a file nobody reads while
//! it is written. On this project's benchmark machine that cost about half as
//! much CPU as hashing the same bytes. With `O_DIRECT` the device reads the
//! bytes from our own buffer instead.
//!
//! Direct I/O writes whole aligned blocks only, so a burst is staged in an
//! aligned buffer; whole blocks go out as they fill and the last partial block
//! (less than one block) stays in memory. At every flush tick, and at the end,
//! that tail is written through the page cache, so the file on disk always
//! ends at an event boundary after a flush, exactly as before. Quiet sessions
//! never stage anything: their small writes go through the page cache as they
//! always did, and the staging buffer is given back when a burst ends.
//!
//! A file system that does not do direct I/O (statx reports no alignment, or a
//! direct write fails with EINVAL) gets page-cache writes only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, OFlags, StatxFlags};

use crate::digest::ContentHasher;

const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();

/// Size of the aligned staging buffer while a burst lasts.
pub(crate) const STAGING_BYTES: usize = 1 << 20;

/// Bytes copied into the staging window in one step: the hash that follows
/// reads them from the nearest cache rather than from memory.
const STAGE_STEP: usize = 64 << 10;

/// The hash is fed whole slabs that end at a multiple of this in the file.
/// BLAKE3 hashes 16 of its 1 KiB chunks side by side only where they line up
/// with its tree; a download's pieces (32 KiB between short event headers)
/// do not, and fed one by one they cost a quarter more.
const HASH_SLAB: u64 = 16 << 10;

/// A write round at least this big starts staging (direct I/O); a flush
/// interval with less than this since the last tick ends it.
pub(crate) const BURST_BYTES: usize = 128 << 10;

/// The most alignment we accept from statx (anything larger is unusual enough
/// to not be worth a big buffer).
const MAX_ALIGN: usize = 64 << 10;

/// The recording's data file, open normally (it holds the lock, takes the
/// small writes and the tails) and, while a burst lasts, a second time with
/// `O_DIRECT`: an idle session keeps one descriptor.
pub(crate) struct Sink {
    file: File,
    direct: Option<Direct>,
    /// Bytes of the recording handed to the sink (the file's logical length).
    len: u64,
    /// Bytes handed in since the last tick.
    since_tick: usize,
    /// Bytes written by direct I/O (for tests and figures).
    pub(crate) direct_bytes: u64,
}

struct Direct {
    path: PathBuf,
    /// Block size and buffer alignment for direct writes.
    align: usize,
    burst: Option<Burst>,
    /// Tests: stage at a misaligned address, so the kernel refuses the
    /// direct writes (EINVAL) as a file system without direct I/O would.
    #[cfg(test)]
    misalign: bool,
}

/// What a burst holds: the `O_DIRECT` descriptor and the staging window.
struct Burst {
    file: File,
    staging: Staging,
}

/// An aligned window into an over-allocated Vec (no unsafe code needed).
struct Staging {
    mem: Vec<u8>,
    start: usize,
    /// File offset of the window's first byte (a multiple of `align`).
    pos: u64,
    /// Bytes in the window not yet written directly (a partial block after
    /// each round).
    filled: usize,
    /// Bytes at the window's start already hashed.
    hashed: usize,
    /// The partial block is already on disk through the page cache.
    tail_written: bool,
}

impl Staging {
    fn new(align: usize) -> Staging {
        let mem = vec![0u8; STAGING_BYTES + align];
        let start = mem.as_ptr().align_offset(align).min(align);
        Staging {
            mem,
            start,
            pos: 0,
            filled: 0,
            hashed: 0,
            tail_written: true,
        }
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + STAGING_BYTES]
    }

    /// Hash the bytes staged since the last call: up to the last slab
    /// boundary, or (`all`) every one of them.
    fn hash(&mut self, hasher: &mut ContentHasher, all: bool) {
        let end = if all {
            self.filled
        } else {
            let file_end = self.pos + self.filled as u64;
            // Whole slabs only; pos is block-aligned, so this stays in the window.
            let cut = (file_end / HASH_SLAB * HASH_SLAB).saturating_sub(self.pos) as usize;
            cut.max(self.hashed)
        };
        let from = self.hashed;
        if end > from {
            hasher.update(&self.window()[from..end]);
            self.hashed = end;
        }
    }
}

/// Direct-I/O alignment for the file, when its file system supports it.
fn direct_alignment(file: &File) -> Option<usize> {
    let st = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
    if !StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::DIOALIGN) {
        return None;
    }
    let offset = st.stx_dio_offset_align as usize;
    let mem = st.stx_dio_mem_align as usize;
    if offset == 0 || mem == 0 {
        return None;
    }
    // Page-sized blocks at least: fewer, larger requests.
    let align = offset.max(mem).max(4096);
    (align.is_power_of_two() && align <= MAX_ALIGN).then_some(align)
}

impl Sink {
    /// `file` already holds `len` bytes (the header); `path` is reopened for
    /// direct I/O when `direct` is asked for and the file system has it.
    pub(crate) fn new(file: File, path: &Path, len: u64, direct: bool) -> Sink {
        let direct = direct
            .then(|| direct_alignment(&file))
            .flatten()
            .map(|align| Direct {
                path: path.to_owned(),
                align,
                burst: None,
                #[cfg(test)]
                misalign: false,
            });
        Sink {
            file,
            direct,
            len,
            since_tick: 0,
            direct_bytes: 0,
        }
    }

    /// The file, for syncs and for the lock it carries.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn into_file(self) -> File {
        self.file
    }

    /// A burst is being staged (its tail may still be in memory).
    pub(crate) fn staging(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| d.burst.is_some())
    }

    /// Bytes handed to the sink so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Append `pieces` (`len` bytes in all, in order) and hash them.
    /// Everything but a partial last block is written when this returns;
    /// [`Sink::flush_tail`] writes that too.
    pub(crate) fn append<'a>(
        &mut self,
        len: usize,
        pieces: impl IntoIterator<Item = &'a [u8]>,
        hasher: &mut ContentHasher,
    ) -> io::Result<()> {
        self.since_tick += len;
        let staging = match &mut self.direct {
            Some(d) if d.burst.is_some() || len >= BURST_BYTES => {
                if d.burst.is_none() {
                    match begin_burst(&self.file, d, self.len) {
                        Ok(burst) => d.burst = Some(burst),
                        // The open with O_DIRECT was refused: page cache only.
                        Err(e) if e.raw_os_error() == Some(EINVAL) => {
                            tracing::debug!(error = %e, "direct I/O refused; recording through the page cache");
                            self.direct = None;
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.direct.is_some()
            }
            _ => false,
        };
        if !staging {
            return self.write_round_buffered(len, pieces, hasher);
        }
        for piece in pieces {
            let mut rest = piece;
            while !rest.is_empty() {
                if !self.staging() {
                    // Direct I/O was refused mid-burst.
                    self.write_buffered(rest, hasher)?;
                    break;
                }
                let taken = self.stage(rest, hasher)?;
                rest = &rest[taken..];
            }
        }
        // The round's last bytes are hashed before they can move in the window.
        if let Some(Burst { staging: s, .. }) = self.direct.as_mut().and_then(|d| d.burst.as_mut())
        {
            s.hash(hasher, true);
        }
        self.write_blocks()
    }

    /// Without direct I/O, a round of several pieces (payloads kept by
    /// reference between event lines) is joined first: one system call instead
    /// of two per packet, and whole slabs for the hash.
    fn write_round_buffered<'a>(
        &mut self,
        len: usize,
        pieces: impl IntoIterator<Item = &'a [u8]>,
        hasher: &mut ContentHasher,
    ) -> io::Result<()> {
        let mut pieces = pieces.into_iter();
        let Some(first) = pieces.next() else {
            return Ok(());
        };
        if first.len() == len {
            return self.write_buffered(first, hasher);
        }
        let mut joined = Vec::with_capacity(len);
        joined.extend_from_slice(first);
        for piece in pieces {
            joined.extend_from_slice(piece);
        }
        self.write_buffered(&joined, hasher)
    }

    fn write_buffered(&mut self, data: &[u8], hasher: &mut ContentHasher) -> io::Result<()> {
        self.file.write_all_at(data, self.len)?;
        hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Copy as much of `data` as fits into the staging window, at most
    /// [`STAGE_STEP`] bytes, and hash the whole slabs it completes. A full
    /// window is hashed and written out at once.
    fn stage(&mut self, data: &[u8], hasher: &mut ContentHasher) -> io::Result<usize> {
        let Some(Burst { staging: s, .. }) = self.direct.as_mut().and_then(|d| d.burst.as_mut())
        else {
            return Ok(0);
        };
        let filled = s.filled;
        let n = data.len().min(STAGING_BYTES - filled).min(STAGE_STEP);
        s.window()[filled..filled + n].copy_from_slice(&data[..n]);
        s.filled += n;
        s.tail_written = false;
        self.len += n as u64;
        let full = s.filled == STAGING_BYTES;
        s.hash(hasher, full);
        if full {
            self.write_blocks()?;
        }
        Ok(n)
    }

    /// Write the staging window's whole blocks directly; the partial last
    /// block moves to the window's start.
    fn write_blocks(&mut self) -> io::Result<()> {
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        let align = d.align;
        let Some(Burst {
            file: direct,
            staging: s,
        }) = &mut d.burst
        else {
            return Ok(());
        };
        let whole = s.filled / align * align;
        if whole == 0 {
            return Ok(());
        }
        let pos = s.pos;
        let filled = s.filled;
        match write_direct(direct, &s.window()[..whole], pos) {
            Ok(()) => {
                let window = s.window();
                window.copy_within(whole..filled, 0);
                s.filled -= whole;
                s.hashed = s.filled;
                s.pos += whole as u64;
                self.direct_bytes += whole as u64;
            }
            Err(e) if e.raw_os_error() == Some(EINVAL) => {
                // The file system took the open but not the write: use the
                // page cache from here on.
                let window = s.window();
                self.file.write_all_at(&window[..filled], pos)?;
                tracing::debug!(error = %e, "direct I/O refused; recording through the page cache");
                self.direct = None;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Write the partial block a burst left in memory through the page cache,
    /// so the file on disk holds every byte handed in. On a tick (not the
    /// end), a flush interval that saw no burst gives the staging buffer back.
    pub(crate) fn flush_tail(&mut self, tick: bool) -> io::Result<()> {
        let quiet = std::mem::take(&mut self.since_tick) < BURST_BYTES;
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        let Some(Burst { staging: s, .. }) = &mut d.burst else {
            return Ok(());
        };
        if !s.tail_written {
            let (pos, filled) = (s.pos, s.filled);
            self.file.write_all_at(&s.window()[..filled], pos)?;
            s.tail_written = true;
        }
        if tick && quiet {
            d.burst = None;
        }
        Ok(())
    }
}

/// A burst opens the file for direct I/O; its staging window starts at the
/// block holding the file's end, with that block's bytes read back into it.
fn begin_burst(file: &File, d: &Direct, len: u64) -> io::Result<Burst> {
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags((OFlags::DIRECT | OFlags::CLOEXEC).bits() as i32)
        .open(&d.path)?;
    let align = d.align;
    let mut s = Staging::new(align);
    #[cfg(test)]
    if d.misalign {
        s.start += 1;
    }
    let align64 = align as u64;
    let pos = len / align64 * align64;
    s.pos = pos;
    let head = (len - pos) as usize;
    file.read_exact_at(&mut s.window()[..head], pos)?;
    s.filled = head;
    s.hashed = head;
    Ok(Burst {
        file: direct,
        staging: s,
    })
}

/// pwrite whole blocks with O_DIRECT; a short write continues where it ended.
fn write_direct(file: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
