//! Encoded events waiting for the writer.
//!
//! The encoder writes event text into a `Vec`. A large binary payload (the
//! body of an `ob` blob: a download's bytes) is not copied in: the batch keeps
//! the reference-counted `Bytes` the gateway forwards, and the writer copies
//! it once, straight into the file's staging buffer. On the data path that
//! costs a reference count instead of a copy of every byte.

use bytes::Bytes;

/// Payloads smaller than this are copied into the text: a handle and its
/// bookkeeping cost more than copying a terminal's few bytes.
pub(crate) const SHARE_AT_LEAST: usize = 4 << 10;

/// A chunk of channel data handed to the recorder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    /// Borrowed for the call only: copied if kept.
    Borrowed(&'a [u8]),
    /// The gateway's own buffer: kept by reference when it goes whole.
    Shared(&'a Bytes),
}

impl Payload<'_> {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Shared(b) => b,
        }
    }
}

/// A payload that goes in after `text[..at]`.
#[derive(Debug)]
struct Spliced {
    at: usize,
    bytes: Bytes,
}

/// Event text with payloads spliced in, in file order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    text: Vec<u8>,
    spliced: Vec<Spliced>,
    spliced_len: usize,
}

/// A point to go back to when an event is refused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    text: usize,
    spliced: usize,
    spliced_len: usize,
}

impl Batch {
    pub(crate) fn with_capacity(text: usize) -> Batch {
        Batch {
            text: Vec::with_capacity(text),
            ..Batch::default()
        }
    }

    /// Bytes the batch adds to the file.
    pub(crate) fn len(&self) -> usize {
        self.text.len() + self.spliced_len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The event text, for encoders that write text only.
    pub(crate) fn text(&mut self) -> &mut Vec<u8> {
        &mut self.text
    }

    /// Append `payload` raw: by reference when it is shared and large enough.
    pub(crate) fn push_payload(&mut self, payload: Payload<'_>) {
        match payload {
            Payload::Shared(bytes) if bytes.len() >= SHARE_AT_LEAST => {
                self.spliced_len += bytes.len();
                self.spliced.push(Spliced {
                    at: self.text.len(),
                    bytes: bytes.clone(),
                });
            }
            other => self.text.extend_from_slice(other.as_slice()),
        }
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            text: self.text.len(),
            spliced: self.spliced.len(),
            spliced_len: self.spliced_len,
        }
    }

    /// Bytes added since `mark`.
    pub(crate) fn len_since(&self, mark: Mark) -> usize {
        self.len() - (mark.text + mark.spliced_len)
    }

    /// Drop everything added since `mark`.
    pub(crate) fn truncate(&mut self, mark: Mark) {
        self.text.truncate(mark.text);
        self.spliced.truncate(mark.spliced);
        self.spliced_len = mark.spliced_len;
    }

    /// The batch's bytes in file order, as slices (empty ones left out).
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        // Even steps are the text before payload i/2 (or after the last),
        // odd steps the payload itself.
        let n = self.spliced.len();
        (0..=2 * n)
            .map(move |step| {
                let i = step / 2;
                if step % 2 == 1 {
                    return &self.spliced[i].bytes[..];
                }
                let from = if i == 0 { 0 } else { self.spliced[i - 1].at };
                let to = self.spliced.get(i).map_or(self.text.len(), |s| s.at);
                &self.text[from..to]
            })
            .filter(|piece| !piece.is_empty())
    }

    /// Empty the batch, releasing the payloads it held.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.spliced.clear();
        self.spliced_len = 0;
    }

    /// Empty a batch the writer has written, for the next round. A burst grew
    /// it; once rounds are small again the growth goes back (keeping `idle`
    /// bytes of text), so an idle session holds only a little.
    pub(crate) fn recycle(&mut self, idle: usize) {
        let taken = self.len();
        let had_payloads = !self.spliced.is_empty();
        self.clear();
        if self.text.capacity() > idle && taken < self.text.capacity() / 4 {
            self.text.shrink_to(idle);
        }
        if !had_payloads && self.spliced.capacity() > 0 {
            self.spliced = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(b: &Batch) -> Vec<u8> {
        b.pieces().flatten().copied().collect()
    }

    #[test]
    fn pieces_come_in_file_order() {
        let big = Bytes::from(vec![b'x'; SHARE_AT_LEAST]);
        let small = Bytes::from_static(b"tiny");
        let mut b = Batch::default();
        b.text().extend_from_slice(b"[1]\n");
        b.push_payload(Payload::Shared(&big));
        b.push_payload(Payload::Shared(&big));
        b.text().extend_from_slice(b"\n[2]\n");
        b.push_payload(Payload::Shared(&small));
        b.push_payload(Payload::Borrowed(b"copied"));
        let mut want = b"[1]\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\n[2]\ntinycopied");
        assert_eq!(joined(&b), want);
        assert_eq!(b.len(), want.len());
        // Only the large shared payloads are held by reference.
        assert_eq!(b.spliced.len(), 2);
        assert_eq!(b.pieces().count(), 4);
    }

    #[test]
    fn truncate_drops_text_and_payloads_after_the_mark() {
        let big = Bytes::from(vec![7u8; SHARE_AT_LEAST + 1]);
        let mut b = Batch::default();
        b.text().extend_from_slice(b"kept");
        b.push_payload(Payload::Shared(&big));
        let mark = b.mark();
        b.text().extend_from_slice(b"dropped");
        b.push_payload(Payload::Shared(&big));
        assert_eq!(b.len_since(mark), 7 + big.len());
        b.truncate(mark);
        let mut want = b"kept".to_vec();
        want.extend_from_slice(&big);
        assert_eq!(joined(&b), want);
        assert_eq!(b.len(), want.len());
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.pieces().count(), 0);
    }

    #[test]
    fn a_quiet_round_gives_a_burst_growth_back() {
        let big = Bytes::from(vec![1u8; SHARE_AT_LEAST]);
        let mut b = Batch::with_capacity(64);
        b.text().extend_from_slice(&[b'x'; 10_000]);
        for _ in 0..40 {
            b.push_payload(Payload::Shared(&big));
        }
        // The burst's own round keeps the room: the next may be as big.
        b.recycle(64);
        assert!(b.text.capacity() >= 10_000);
        assert!(b.spliced.capacity() >= 40);
        // A small round after it hands both back.
        b.text().extend_from_slice(b"prompt$ ");
        b.recycle(64);
        assert!(b.text.capacity() < 1000, "{}", b.text.capacity());
        assert_eq!(b.spliced.capacity(), 0);
    }
}
