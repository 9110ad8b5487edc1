//! The recording formats: the header line of each, and the encoder that turns
//! channel traffic into event lines.
//!
//! PTY sessions are asciicast v2: `[t, "o", text]`, `[t, "i", text]`,
//! `[t, "r", "COLSxROWS"]`. Everything else is JSON lines in the same event
//! shape, after a header object with `"vestibule_recording": 1`:
//!
//! | code | data | meaning |
//! |------|------|---------|
//! | `o` `e` `i` | string | stdout, stderr, input as UTF-8 text |
//! | `ob` `eb` `ib` | N | the same, as N raw bytes on the following line (binary output) |
//! | `r` | `"COLSxROWS"` | window change |
//! | `x` | number | exit status |
//! | `n` | `{"output", "stderr", "input"}` | byte counts so far |
//! | `f` | object | an SFTP file operation ([`crate::SftpOp`]) |

use std::time::Duration;

use serde_json::json;

use crate::batch::{Batch, Payload};
use crate::encode::{
    Utf8Carry, close_event, finish_exact, finish_text_lossy, open_event, push_exact,
    push_text_lossy,
};
use crate::meta::{Mode, RecordingInfo, SessionKind, Traffic};
use crate::sftp::SftpDecoder;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Output,
    Stderr,
    Input,
}

/// The first line of a recording file.
pub(crate) fn header(info: &RecordingInfo) -> Vec<u8> {
    let vestibule = json!({
        "recording_id": info.id,
        "session_id": info.session_id,
        "person": info.person,
        "target": info.target,
        "login": info.login,
        "ticket": info.ticket,
        "via_jump": info.via_jump,
    });
    let value = match (&info.kind, info.mode) {
        (
            SessionKind::Pty {
                term,
                cols,
                rows,
                command,
            },
            Mode::Asciicast,
        ) => {
            let mut title = format!("{} as {}@{}", info.person, info.login, info.target);
            if let Some(c) = command {
                title.push_str(": ");
                title.push_str(c);
            }
            json!({
                "version": 2,
                "width": cols,
                "height": rows,
                "timestamp": info.started.timestamp(),
                "env": {"TERM": term},
                "title": title,
                "vestibule": vestibule,
            })
        }
        _ => json!({
            "vestibule_recording": 1,
            "mode": info.mode,
            "kind": info.kind,
            "started": info.started,
            "vestibule": vestibule,
        }),
    };
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Per-format encoding state of one recorder.
#[derive(Debug)]
pub(crate) enum Encoder {
    Cast {
        out: Utf8Carry,
        err: Utf8Carry,
        input: Utf8Carry,
        record_input: bool,
    },
    Transcript {
        out: Utf8Carry,
        err: Utf8Carry,
        input: Utf8Carry,
        scratch: Vec<u8>,
        record_input: bool,
    },
    Counts,
    Sftp(Box<SftpDecoder>),
}

impl Encoder {
    pub(crate) fn new(mode: Mode, record_input: bool) -> Encoder {
        match mode {
            Mode::Asciicast => Encoder::Cast {
                out: Utf8Carry::default(),
                err: Utf8Carry::default(),
                input: Utf8Carry::default(),
                record_input,
            },
            Mode::Transcript => Encoder::Transcript {
                out: Utf8Carry::default(),
                err: Utf8Carry::default(),
                input: Utf8Carry::default(),
                scratch: Vec::new(),
                record_input,
            },
            Mode::CountsOnly => Encoder::Counts,
            Mode::Sftp => Encoder::Sftp(Box::default()),
        }
    }

    /// Append the events for one chunk of channel data.
    pub(crate) fn data(&mut self, t: Duration, stream: Stream, data: Payload<'_>, out: &mut Batch) {
        match self {
            Encoder::Cast {
                out: o,
                err,
                input,
                record_input,
            } => {
                let (carry, code) = match stream {
                    Stream::Output => (o, "o"),
                    // A PTY's stderr is the same terminal.
                    Stream::Stderr => (err, "o"),
                    Stream::Input if *record_input => (input, "i"),
                    Stream::Input => return,
                };
                let out = out.text();
                let mark = out.len();
                open_event(out, t, code);
                out.push(b'"');
                let body = out.len();
                push_text_lossy(carry, data.as_slice(), out);
                if out.len() == body {
                    // Only the start of a character so far: no event yet.
                    out.truncate(mark);
                    return;
                }
                out.push(b'"');
                close_event(out);
            }
            Encoder::Transcript {
                out: o,
                err,
                input,
                scratch,
                record_input,
            } => {
                let (carry, code, bin) = match stream {
                    Stream::Output => (o, "o", "ob"),
                    Stream::Stderr => (err, "e", "eb"),
                    Stream::Input if *record_input => (input, "i", "ib"),
                    Stream::Input => return,
                };
                push_exact(carry, scratch, t, code, bin, data, out);
            }
            Encoder::Counts => {}
            Encoder::Sftp(dec) => {
                match stream {
                    Stream::Output => dec.feed_server(data.as_slice()),
                    Stream::Input => dec.feed_client(data.as_slice()),
                    Stream::Stderr => return,
                }
                write_ops(dec, t, out.text());
            }
        }
    }

    pub(crate) fn resize(&mut self, t: Duration, cols: u16, rows: u16, out: &mut Batch) {
        if let Encoder::Cast { .. } | Encoder::Transcript { .. } = self {
            let out = out.text();
            open_event(out, t, "r");
            let _ = std::io::Write::write_fmt(out, format_args!("\"{cols}x{rows}\""));
            close_event(out);
        }
    }

    pub(crate) fn exit_status(&mut self, t: Duration, status: u32, out: &mut Batch) {
        // asciicast v2 has no exit event; the metadata keeps it for PTYs.
        if !matches!(self, Encoder::Cast { .. }) {
            let out = out.text();
            open_event(out, t, "x");
            let _ = std::io::Write::write_fmt(out, format_args!("{status}"));
            close_event(out);
        }
    }

    /// At each periodic flush: byte counts for the formats that keep only
    /// counts, so a crash loses at most one interval of them.
    pub(crate) fn on_flush(
        &mut self,
        t: Duration,
        traffic: Traffic,
        written: &mut Traffic,
        out: &mut Batch,
    ) {
        if matches!(self, Encoder::Counts | Encoder::Sftp(_)) && traffic != *written {
            counts_event(t, traffic, out.text());
            *written = traffic;
        }
    }

    /// The channel ended: what a cut character or an open file still holds.
    pub(crate) fn on_end(&mut self, t: Duration, out: &mut Batch) {
        match self {
            Encoder::Cast {
                out: o, err, input, ..
            } => {
                let out = out.text();
                for (carry, code) in [(o, "o"), (err, "o"), (input, "i")] {
                    if !carry.is_empty() {
                        open_event(out, t, code);
                        out.push(b'"');
                        finish_text_lossy(carry, out);
                        out.push(b'"');
                        close_event(out);
                    }
                }
            }
            Encoder::Transcript {
                out: o, err, input, ..
            } => {
                finish_exact(o, t, "ob", out);
                finish_exact(err, t, "eb", out);
                finish_exact(input, t, "ib", out);
            }
            Encoder::Counts => {}
            Encoder::Sftp(dec) => {
                dec.finish();
                write_ops(dec, t, out.text());
            }
        }
    }
}

fn write_ops(dec: &mut SftpDecoder, t: Duration, out: &mut Vec<u8>) {
    for op in dec.take_ops() {
        open_event(out, t, "f");
        // Serializing a plain struct into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &op);
        close_event(out);
    }
}

fn counts_event(t: Duration, traffic: Traffic, out: &mut Vec<u8>) {
    open_event(out, t, "n");
    let _ = serde_json::to_writer(&mut *out, &traffic);
    close_event(out);
}
