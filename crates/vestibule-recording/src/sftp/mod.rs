//! An SFTP v3 decoder that turns a channel's two byte streams into file
//! operations (open, close with byte counts, rename, remove, mkdir, rmdir,
//! setstat, opendir, symlink) with their outcome.
//!
//! It never stores file content: of a WRITE or DATA packet only the header is
//! read and the payload is skipped as it streams past, whatever the chunk
//! boundaries. Buffers and maps are reused, so in the steady state of a
//! transfer nothing is allocated per packet.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

mod wire;

use wire::*;

/// SSH_FXF_* open flags.
const PFLAGS: [(u32, &str); 6] = [
    (0x01, "read"),
    (0x02, "write"),
    (0x04, "append"),
    (0x08, "creat"),
    (0x10, "trunc"),
    (0x20, "excl"),
];

/// Attributes a SETSTAT asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Octal, e.g. "644".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<u32>,
}

/// One file operation and how the server answered it (`status`: "ok",
/// "no such file", "permission denied", ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SftpOp {
    Open {
        path: String,
        flags: String,
        status: String,
    },
    /// Also emitted at the end of the session for files never closed
    /// (`status: "not closed"`).
    Close {
        path: String,
        bytes_read: u64,
        bytes_written: u64,
        status: String,
    },
    Rename {
        from: String,
        to: String,
        status: String,
    },
    Remove {
        path: String,
        status: String,
    },
    Mkdir {
        path: String,
        status: String,
    },
    Rmdir {
        path: String,
        status: String,
    },
    Setstat {
        path: String,
        attrs: SftpAttrs,
        status: String,
    },
    Opendir {
        path: String,
        status: String,
    },
    Symlink {
        link: String,
        target: String,
        status: String,
    },
    /// The stream stopped making sense as SFTP; later bytes are only counted.
    Undecodable {
        reason: String,
    },
}

/// What a request is waiting for.
#[derive(Debug)]
enum Pending {
    Open { path: String, pflags: u32 },
    Opendir { path: String },
    Close { file: usize },
    Read { file: usize },
    Write { file: usize, len: u64 },
    Fsetstat { file: usize, attrs: SftpAttrs },
    Done(SftpOp),
}

#[derive(Debug)]
struct OpenFile {
    path: String,
    read: u64,
    written: u64,
    dir: bool,
}

/// Outstanding requests and open handles are bounded so that a peer cannot make
/// the decoder grow without limit; past these it gives up (and says so).
const MAX_PENDING: usize = 1 << 16;
const MAX_FILES: usize = 1 << 12;

fn flags_text(pflags: u32) -> String {
    let names: Vec<&str> = PFLAGS
        .iter()
        .filter(|(bit, _)| pflags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join(",")
}

fn status_text(code: u32) -> String {
    match code {
        0 => "ok".into(),
        1 => "eof".into(),
        2 => "no such file".into(),
        3 => "permission denied".into(),
        4 => "failure".into(),
        5 => "bad message".into(),
        6 => "no connection".into(),
        7 => "connection lost".into(),
        8 => "unsupported".into(),
        n => format!("status {n}"),
    }
}

fn with_status(op: SftpOp, status: String) -> SftpOp {
    match op {
        SftpOp::Rename { from, to, .. } => SftpOp::Rename { from, to, status },
        SftpOp::Remove { path, .. } => SftpOp::Remove { path, status },
        SftpOp::Mkdir { path, .. } => SftpOp::Mkdir { path, status },
        SftpOp::Rmdir { path, .. } => SftpOp::Rmdir { path, status },
        SftpOp::Setstat { path, attrs, .. } => SftpOp::Setstat {
            path,
            attrs,
            status,
        },
        SftpOp::Symlink { link, target, .. } => SftpOp::Symlink {
            link,
            target,
            status,
        },
        other => other,
    }
}

/// Decodes both directions of one SFTP channel. Feed it the person's bytes
/// with [`SftpDecoder::feed_client`] and the target's with
/// [`SftpDecoder::feed_server`], in any chunks; take the operations it found
/// with [`SftpDecoder::take_ops`].
#[derive(Debug, Default)]
pub struct SftpDecoder {
    client: Framer,
    server: Framer,
    pending: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, usize>,
    files: Vec<Option<OpenFile>>,
    free: Vec<usize>,
    ops: Vec<SftpOp>,
    broken: bool,
}

impl SftpDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes from the person (requests).
    pub fn feed_client(&mut self, data: &[u8]) {
        if self.broken {
            return;
        }
        let mut framer = std::mem::take(&mut self.client);
        let r = framer.feed(data, |pkt, _| self.on_request(pkt));
        self.client = framer;
        if let Err(why) = r {
            self.give_up(why);
        }
    }

    /// Bytes from the target (replies).
    pub fn feed_server(&mut self, data: &[u8]) {
        if self.broken {
            return;
        }
        let mut framer = std::mem::take(&mut self.server);
        let r = framer.feed(data, |pkt, _| self.on_reply(pkt));
        self.server = framer;
        if let Err(why) = r {
            self.give_up(why);
        }
    }

    /// Operations decoded so far, oldest first.
    pub fn take_ops(&mut self) -> std::vec::Drain<'_, SftpOp> {
        self.ops.drain(..)
    }

    /// The channel ended: files still open are reported with what moved.
    pub fn finish(&mut self) {
        for f in self.files.iter_mut().filter_map(Option::take) {
            if !f.dir {
                self.ops.push(SftpOp::Close {
                    path: f.path,
                    bytes_read: f.read,
                    bytes_written: f.written,
                    status: "not closed".into(),
                });
            }
        }
        self.handles.clear();
    }

    fn give_up(&mut self, why: &str) {
        self.broken = true;
        self.ops.push(SftpOp::Undecodable {
            reason: why.to_owned(),
        });
    }

    fn file(&self, handle: &[u8]) -> Option<usize> {
        self.handles.get(handle).copied()
    }

    fn await_reply(&mut self, id: u32, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.give_up("too many outstanding requests");
            return;
        }
        self.pending.insert(id, p);
    }

    fn on_request(&mut self, pkt: &[u8]) {
        let _ = self.request(pkt);
    }

    fn request(&mut self, pkt: &[u8]) -> Option<()> {
        let mut r = Reader(pkt);
        let ty = r.u8()?;
        if ty == FXP_INIT {
            return Some(());
        }
        let id = r.u32()?;
        let pending = match ty {
            FXP_OPEN => {
                let path = r.path()?;
                let pflags = r.u32()?;
                Pending::Open { path, pflags }
            }
            FXP_OPENDIR => Pending::Opendir { path: r.path()? },
            FXP_CLOSE => Pending::Close {
                file: self.file(r.string()?)?,
            },
            FXP_READ => Pending::Read {
                file: self.file(r.string()?)?,
            },
            FXP_WRITE => {
                let file = self.file(r.string()?)?;
                let _offset = r.u64()?;
                let len = u64::from(r.u32()?);
                Pending::Write { file, len }
            }
            FXP_SETSTAT => {
                let path = r.path()?;
                let attrs = r.attrs()?;
                Pending::Done(SftpOp::Setstat {
                    path,
                    attrs,
                    status: String::new(),
                })
            }
            FXP_FSETSTAT => {
                let file = self.file(r.string()?)?;
                Pending::Fsetstat {
                    file,
                    attrs: r.attrs()?,
                }
            }
            FXP_REMOVE => Pending::Done(SftpOp::Remove {
                path: r.path()?,
                status: String::new(),
            }),
            FXP_MKDIR => Pending::Done(SftpOp::Mkdir {
                path: r.path()?,
                status: String::new(),
            }),
            FXP_RMDIR => Pending::Done(SftpOp::Rmdir {
                path: r.path()?,
                status: String::new(),
            }),
            FXP_RENAME => {
                let from = r.path()?;
                let to = r.path()?;
                Pending::Done(SftpOp::Rename {
                    from,
                    to,
                    status: String::new(),
                })
            }
            // OpenSSH sends the link's target first and the link second (the
            // reverse of the draft); recorded in OpenSSH's order.
            FXP_SYMLINK => {
                let target = r.path()?;
                let link = r.path()?;
                Pending::Done(SftpOp::Symlink {
                    link,
                    target,
                    status: String::new(),
                })
            }
            FXP_EXTENDED => match r.string()? {
                b"posix-rename@openssh.com" => {
                    let from = r.path()?;
                    let to = r.path()?;
                    Pending::Done(SftpOp::Rename {
                        from,
                        to,
                        status: String::new(),
                    })
                }
                b"lsetstat@openssh.com" => {
                    let path = r.path()?;
                    let attrs = r.attrs()?;
                    Pending::Done(SftpOp::Setstat {
                        path,
                        attrs,
                        status: String::new(),
                    })
                }
                _ => return Some(()),
            },
            _ => return Some(()),
        };
        self.await_reply(id, pending);
        Some(())
    }

    fn on_reply(&mut self, pkt: &[u8]) {
        let _ = self.reply(pkt);
    }

    fn reply(&mut self, pkt: &[u8]) -> Option<()> {
        let mut r = Reader(pkt);
        let ty = r.u8()?;
        if ty == FXP_VERSION {
            return Some(());
        }
        let id = r.u32()?;
        let pending = self.pending.remove(&id)?;
        match ty {
            FXP_STATUS => {
                let code = r.u32()?;
                self.status(pending, code);
            }
            FXP_HANDLE => {
                let handle = r.string()?;
                match pending {
                    Pending::Open { path, pflags } => {
                        self.ops.push(SftpOp::Open {
                            path: path.clone(),
                            flags: flags_text(pflags),
                            status: "ok".into(),
                        });
                        self.open_file(handle, path, false);
                    }
                    Pending::Opendir { path } => {
                        self.ops.push(SftpOp::Opendir {
                            path: path.clone(),
                            status: "ok".into(),
                        });
                        self.open_file(handle, path, true);
                    }
                    _ => {}
                }
            }
            FXP_DATA => {
                if let Pending::Read { file } = pending {
                    let len = u64::from(r.u32()?);
                    if let Some(Some(f)) = self.files.get_mut(file) {
                        f.read += len;
                    }
                }
            }
            _ => {}
        }
        Some(())
    }

    fn status(&mut self, pending: Pending, code: u32) {
        match pending {
            Pending::Open { path, pflags } => self.ops.push(SftpOp::Open {
                path,
                flags: flags_text(pflags),
                status: status_text(code),
            }),
            Pending::Opendir { path } => self.ops.push(SftpOp::Opendir {
                path,
                status: status_text(code),
            }),
            Pending::Close { file } => {
                // The handle is gone whatever the server says.
                if let Some(f) = self.close_file(file)
                    && !f.dir
                {
                    self.ops.push(SftpOp::Close {
                        path: f.path,
                        bytes_read: f.read,
                        bytes_written: f.written,
                        status: status_text(code),
                    });
                }
            }
            Pending::Read { .. } => {}
            Pending::Write { file, len } => {
                if code == 0
                    && let Some(Some(f)) = self.files.get_mut(file)
                {
                    f.written += len;
                }
            }
            Pending::Fsetstat { file, attrs } => {
                let path = match self.files.get(file) {
                    Some(Some(f)) => f.path.clone(),
                    _ => String::new(),
                };
                self.ops.push(SftpOp::Setstat {
                    path,
                    attrs,
                    status: status_text(code),
                });
            }
            Pending::Done(op) => self.ops.push(with_status(op, status_text(code))),
        }
    }

    fn open_file(&mut self, handle: &[u8], path: String, dir: bool) {
        let f = OpenFile {
            path,
            read: 0,
            written: 0,
            dir,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.files[i] = Some(f);
                i
            }
            None if self.files.len() < MAX_FILES => {
                self.files.push(Some(f));
                self.files.len() - 1
            }
            None => {
                self.give_up("too many open handles");
                return;
            }
        };
        if let Some(old) = self.handles.insert(handle.to_vec(), idx) {
            // A handle the server reused without a close we saw.
            self.files[old] = None;
            self.free.push(old);
        }
    }

    fn close_file(&mut self, file: usize) -> Option<OpenFile> {
        let f = self.files.get_mut(file)?.take()?;
        self.handles.retain(|_, &mut i| i != file);
        self.free.push(file);
        Some(f)
    }
}

#[cfg(test)]
mod tests;
