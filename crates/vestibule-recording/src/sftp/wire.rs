//! SFTP packet framing over a byte stream, and reading packet fields.

use super::SftpAttrs;

pub(super) const FXP_INIT: u8 = 1;
pub(super) const FXP_VERSION: u8 = 2;
pub(super) const FXP_OPEN: u8 = 3;
pub(super) const FXP_CLOSE: u8 = 4;
pub(super) const FXP_READ: u8 = 5;
pub(super) const FXP_WRITE: u8 = 6;
pub(super) const FXP_SETSTAT: u8 = 9;
pub(super) const FXP_FSETSTAT: u8 = 10;
pub(super) const FXP_OPENDIR: u8 = 11;
pub(super) const FXP_REMOVE: u8 = 13;
pub(super) const FXP_MKDIR: u8 = 14;
pub(super) const FXP_RMDIR: u8 = 15;
pub(super) const FXP_RENAME: u8 = 18;
pub(super) const FXP_SYMLINK: u8 = 20;
pub(super) const FXP_STATUS: u8 = 101;
pub(super) const FXP_HANDLE: u8 = 102;
pub(super) const FXP_DATA: u8 = 103;
pub(super) const FXP_EXTENDED: u8 = 200;

/// Packets kept whole (requests with paths, short replies) are far below this;
/// anything longer is skipped rather than buffered.
pub(super) const MAX_KEPT: usize = 64 << 10;
/// Of a WRITE: type, id, handle (at most 256 bytes by the spec), offset, length.
pub(super) const WRITE_PREFIX: usize = 1 + 4 + 4 + 256 + 8 + 4;
/// Of a DATA reply: type, id, length.
pub(super) const DATA_PREFIX: usize = 1 + 4 + 4;

/// One direction's framing: length, then the kept prefix, then bytes skipped.
#[derive(Debug, Default)]
pub(super) struct Framer {
    len_buf: [u8; 4],
    len_have: usize,
    /// Length of the current packet; 0 while its length field is read.
    total: usize,
    keep: usize,
    skip: usize,
    body: Vec<u8>,
}

pub(super) fn keep_for(packet_type: u8, total: usize) -> usize {
    match packet_type {
        FXP_WRITE => WRITE_PREFIX.min(total),
        FXP_INIT | FXP_VERSION | FXP_OPEN | FXP_CLOSE | FXP_READ | FXP_SETSTAT | FXP_FSETSTAT
        | FXP_OPENDIR | FXP_REMOVE | FXP_MKDIR | FXP_RMDIR | FXP_RENAME | FXP_SYMLINK
        | FXP_STATUS | FXP_HANDLE | FXP_EXTENDED
            if total <= MAX_KEPT =>
        {
            total
        }
        // DATA, and replies we only need the request id of (NAME, ATTRS, ...).
        _ => DATA_PREFIX.min(total),
    }
}

impl Framer {
    /// Feed bytes; `on_packet` gets each packet's kept prefix and its length.
    pub(super) fn feed(
        &mut self,
        mut data: &[u8],
        mut on_packet: impl FnMut(&[u8], usize),
    ) -> Result<(), &'static str> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if self.total == 0 {
                let n = (4 - self.len_have).min(data.len());
                self.len_buf[self.len_have..self.len_have + n].copy_from_slice(&data[..n]);
                self.len_have += n;
                data = &data[n..];
                if self.len_have == 4 {
                    self.len_have = 0;
                    self.total = u32::from_be_bytes(self.len_buf) as usize;
                    if self.total == 0 {
                        return Err("empty packet");
                    }
                    self.keep = 0;
                    self.body.clear();
                }
                continue;
            }
            if self.keep == 0 {
                self.keep = keep_for(data[0], self.total);
            }
            let n = (self.keep - self.body.len()).min(data.len());
            self.body.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.body.len() == self.keep {
                on_packet(&self.body, self.total);
                self.skip = self.total - self.keep;
                self.total = 0;
            }
        }
        Ok(())
    }
}

/// Big-endian fields of an SFTP packet.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    }
    pub(super) fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(super) fn path(&mut self) -> Option<String> {
        self.string()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    pub(super) fn attrs(&mut self) -> Option<SftpAttrs> {
        let flags = self.u32()?;
        let mut a = SftpAttrs::default();
        if flags & 0x1 != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & 0x2 != 0 {
            a.uid = Some(self.u32()?);
            a.gid = Some(self.u32()?);
        }
        if flags & 0x4 != 0 {
            a.mode = Some(format!("{:o}", self.u32()? & 0o7777));
        }
        if flags & 0x8 != 0 {
            a.atime = Some(self.u32()?);
            a.mtime = Some(self.u32()?);
        }
        Some(a)
    }
}
