//! Reading recordings back. A recording is a header line, then one event per
//! line, except that a JSON-lines transcript's binary chunk is a blob: the
//! line `[t, "ob", N]`, then N raw bytes and a newline.

use serde_json::Value;

use crate::events::Stream;
use crate::meta::Traffic;

/// One event of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Seconds since the recording started.
    pub time: f64,
    /// `o`, `i`, `r` (asciicast); also `e`, `ob`, `eb`, `ib`, `x`, `n`, `f`.
    pub code: String,
    /// The event's JSON data (a blob's is its length).
    pub data: Value,
    /// A blob's raw bytes.
    pub bytes: Option<Vec<u8>>,
}

/// The length announced by a blob's line, if it is one. Blob lines are short
/// and end in a number, which no text event does.
fn blob_len(line: &[u8]) -> Option<usize> {
    if line.len() > 64 || !line.ends_with(b"]") {
        return None;
    }
    let (_, code, n): (f64, String, u64) = serde_json::from_slice(line).ok()?;
    if code.len() == 2 && code.ends_with('b') {
        usize::try_from(n).ok()
    } else {
        None
    }
}

/// A line, with the blob that follows it if it announces one.
pub(crate) struct Split<'a> {
    pub(crate) line: &'a [u8],
    pub(crate) blob: Option<&'a [u8]>,
}

/// The record at the front of `buf` and how many bytes it spans; None while
/// it is not whole yet (a live file, or the torn end a crash left).
pub(crate) fn split_record(buf: &[u8]) -> Option<(Split<'_>, usize)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..nl];
    match blob_len(line) {
        None => Some((Split { line, blob: None }, nl + 1)),
        Some(n) => {
            let end = nl.checked_add(1)?.checked_add(n)?;
            if buf.len() <= end {
                return None;
            }
            let blob = &buf[nl + 1..end];
            Some((
                Split {
                    line,
                    blob: Some(blob),
                },
                end + 1,
            ))
        }
    }
}

/// One event line parsed: `[t, code, data]`.
pub(crate) fn parse_event(line: &[u8]) -> Option<(f64, String, Value)> {
    serde_json::from_slice(line).ok()
}

/// Add what one record holds to `traffic`, for a recording whose process died
/// before writing its counts: data events add their length (in bytes as
/// stored, which for a terminal's lossy text may differ slightly from what
/// crossed the channel), and a counts event (`n`) replaces the whole.
pub(crate) fn tally(record: &Split<'_>, traffic: &mut Traffic) {
    let Some((_, code, data)) = parse_event(record.line) else {
        return;
    };
    if let Some(stream) = stream_of(&code) {
        let len = match (record.blob, &data) {
            (Some(blob), _) => blob.len(),
            (None, Value::String(text)) => text.len(),
            _ => return,
        };
        traffic.add(stream, len as u64);
    } else if code == "n"
        && let Ok(counts) = serde_json::from_value::<Traffic>(data)
    {
        *traffic = counts;
    }
}

/// The stream a data event's code (`o`, `ob`, `e`, `eb`, `i`, `ib`) carries.
pub(crate) fn stream_of(code: &str) -> Option<Stream> {
    match code {
        "o" | "ob" => Some(Stream::Output),
        "e" | "eb" => Some(Stream::Stderr),
        "i" | "ib" => Some(Stream::Input),
        _ => None,
    }
}

/// The header (when the first line is an object) and the events of a
/// recording's content; a torn end is ignored.
pub fn parse_events(content: &[u8]) -> (Option<Value>, Vec<RecordedEvent>) {
    let mut header = None;
    let mut events = Vec::new();
    let mut rest = content;
    let mut first = true;
    while let Some((rec, used)) = split_record(rest) {
        rest = &rest[used..];
        if std::mem::take(&mut first)
            && let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(rec.line)
        {
            header = Some(v);
            continue;
        }
        if let Some((time, code, data)) = parse_event(rec.line) {
            events.push(RecordedEvent {
                time,
                code,
                data,
                bytes: rec.blob.map(<[u8]>::to_vec),
            });
        }
    }
    (header, events)
}

/// Streams a file's records: feed bytes, take whole records.
#[derive(Debug, Default)]
pub(crate) struct RecordBuffer {
    pending: Vec<u8>,
    /// Bytes of whole records taken so far.
    pub(crate) consumed: u64,
}

impl RecordBuffer {
    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// Hand each whole record to `each`; keep the unfinished rest.
    pub(crate) fn drain<E>(
        &mut self,
        mut each: impl FnMut(Split<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start = 0;
        while let Some((rec, used)) = split_record(&self.pending[start..]) {
            each(rec)?;
            start += used;
        }
        self.pending.drain(..start);
        self.consumed += start as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_and_lines_split_at_any_boundary() {
        let content =
            b"{\"h\":1}\n[0.1, \"o\", \"a]\"]\n[0.2, \"ob\", 3]\n\n]\n\n[0.3, \"x\", 0]\n";
        let (h, ev) = parse_events(content);
        assert_eq!(h.unwrap()["h"], 1);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[1].bytes.as_deref(), Some(&b"\n]\n"[..]));
        for cut in 0..content.len() {
            let mut rb = RecordBuffer::default();
            let mut n = 0;
            rb.feed(&content[..cut]);
            let mut count = |_: Split<'_>| -> Result<(), ()> {
                n += 1;
                Ok(())
            };
            rb.drain(&mut count).unwrap();
            rb.feed(&content[cut..]);
            rb.drain(&mut count).unwrap();
            assert_eq!(n, 4, "cut at {cut}");
            assert_eq!(rb.consumed, content.len() as u64);
        }
        // A torn blob is not a record.
        let (_, ev) = parse_events(&content[..40]);
        assert_eq!(ev.len(), 1);
    }

    fn tallied(content: &[u8]) -> Traffic {
        let mut rb = RecordBuffer::default();
        let mut traffic = Traffic::default();
        rb.feed(content);
        let Ok(()) = rb.drain(|rec| {
            tally(&rec, &mut traffic);
            Ok::<_, std::convert::Infallible>(())
        });
        traffic
    }

    #[test]
    fn tally_counts_text_blobs_and_count_events() {
        let transcript = "{\"vestibule_recording\":1}\n[0.1, \"o\", \"h\\u00e9\\n\"]\n[0.2, \"ob\", 3]\n\u{0}\u{1}\u{2}\n[0.3, \"e\", \"err\"]\n[0.4, \"ib\", 2]\nab\n[0.5, \"r\", \"80x24\"]\n[0.6, \"x\", 0]\n";
        assert_eq!(
            tallied(transcript.as_bytes()),
            Traffic {
                output: 4 + 3,
                stderr: 3,
                input: 2
            }
        );
        // Counts-only formats: the last counts event is the whole.
        let counts = b"{\"vestibule_recording\":1}\n[1.0, \"n\", {\"output\": 5, \"stderr\": 0, \"input\": 9}]\n[2.0, \"n\", {\"output\": 7, \"stderr\": 1, \"input\": 9}]\n";
        assert_eq!(
            tallied(counts),
            Traffic {
                output: 7,
                stderr: 1,
                input: 9
            }
        );
        // A torn last record adds nothing.
        assert_eq!(tallied(&transcript.as_bytes()[..60]).output, 4);
    }
}
