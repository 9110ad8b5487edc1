//! Event lines, written straight into the recorder's buffer.
//!
//! These run on the data path for every chunk the gateway forwards, so they
//! append to a reused `Vec` and never allocate once it has grown to its working
//! size. serde_json would do the escaping too, but only from a `&str`, which
//! session output is not guaranteed to be.

use std::io::Write;
use std::time::Duration;

use crate::batch::{Batch, Payload};

/// Second byte of the escape for each byte that JSON strings may not hold raw:
/// `u` means `\u00XX`; 0 means copy as is.
const ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Of 8 bytes (little-endian), a mask whose lowest set bit marks the first one
/// that needs escaping: below 0x20, `"` or `\\`. Higher set bits may be
/// spurious (borrows), the lowest never is. Bytes from 0x80 are left alone.
#[inline]
fn escape_mask(w: u64) -> u64 {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    control | zero_in(w ^ (ONES * u64::from(b'"'))) | zero_in(w ^ (ONES * u64::from(b'\\')))
}

/// Where the next byte that needs escaping is, from `i` on.
#[inline]
fn next_escape(s: &[u8], mut i: usize) -> Option<usize> {
    while let Some(word) = s.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let m = escape_mask(u64::from_le_bytes(word));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s.get(i..)?
        .iter()
        .position(|&b| ESCAPES[b as usize] != 0)
        .map(|p| i + p)
}

/// Append valid UTF-8 as the inside of a JSON string, finding the bytes to
/// escape eight at a time: this is most of a terminal recording's cost on
/// the data path.
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len());
    let mut start = 0;
    while let Some(j) = next_escape(s, start) {
        out.extend_from_slice(&s[start..j]);
        let b = s[j];
        let e = ESCAPES[b as usize];
        if e == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        start = j + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// Start an event line: `[1.234567, "o", `.
pub(crate) fn open_event(out: &mut Vec<u8>, t: Duration, code: &str) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "[{}.{:06}, \"{code}\", ",
        t.as_secs(),
        t.subsec_micros()
    );
}

pub(crate) fn close_event(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]\n");
}

/// The start of a UTF-8 sequence that a chunk boundary cut, completed by the
/// next chunk.
#[derive(Debug, Default)]
pub(crate) struct Utf8Carry {
    buf: [u8; 4],
    len: usize,
}

/// What completing a carried sequence with the next chunk gave.
enum Completed<'a> {
    /// Nothing was carried.
    Nothing,
    /// A whole character (its bytes) and the rest of the chunk.
    Char([u8; 4], usize, &'a [u8]),
    /// The chunk ended before the character did; it stays carried.
    StillOpen,
    /// Not valid UTF-8: the carried bytes were taken back into the caller's view.
    Invalid,
}

impl Utf8Carry {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn set(&mut self, tail: &[u8]) {
        // from_utf8 only reports an incomplete tail of at most 3 bytes.
        let n = tail.len().min(4);
        self.buf[..n].copy_from_slice(&tail[..n]);
        self.len = n;
    }

    fn complete<'a>(&mut self, data: &'a [u8]) -> Completed<'a> {
        if self.len == 0 {
            return Completed::Nothing;
        }
        let need = match self.buf[0] {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        let mut rest = data;
        while self.len < need {
            match rest.first() {
                Some(&b) if b & 0xc0 == 0x80 => {
                    self.buf[self.len] = b;
                    self.len += 1;
                    rest = &rest[1..];
                }
                Some(_) => return Completed::Invalid,
                None => return Completed::StillOpen,
            }
        }
        let ch = self.buf;
        self.len = 0;
        if std::str::from_utf8(&ch[..need]).is_ok() {
            Completed::Char(ch, need, rest)
        } else {
            Completed::Invalid
        }
    }
}

/// Append `data` as JSON string content, continuing the sequence a previous
/// chunk cut; invalid bytes become U+FFFD (asciicast holds text only).
pub(crate) fn push_text_lossy(carry: &mut Utf8Carry, data: &[u8], out: &mut Vec<u8>) {
    let mut data = data;
    match carry.complete(data) {
        Completed::Nothing => {}
        Completed::StillOpen => return,
        Completed::Char(ch, n, rest) => {
            out.extend_from_slice(&ch[..n]);
            data = rest;
        }
        Completed::Invalid => {
            out.extend_from_slice("\u{fffd}".as_bytes());
            carry.len = 0;
        }
    }
    loop {
        match std::str::from_utf8(data) {
            Ok(_) => {
                escape_into(out, data);
                return;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                escape_into(out, &data[..valid]);
                match e.error_len() {
                    Some(n) => {
                        out.extend_from_slice("\u{fffd}".as_bytes());
                        data = &data[valid + n..];
                    }
                    None => {
                        carry.set(&data[valid..]);
                        return;
                    }
                }
            }
        }
    }
}

/// At the end of a stream, a cut sequence that never completed.
pub(crate) fn finish_text_lossy(carry: &mut Utf8Carry, out: &mut Vec<u8>) {
    if !carry.is_empty() {
        out.extend_from_slice("\u{fffd}".as_bytes());
        carry.len = 0;
    }
}

/// Append `data` as exact events: UTF-8 text as `code` events and anything else
/// as raw `code` + "b" blobs, so an exec transcript reproduces the command's
/// bytes. A chunk that looks binary (a NUL, or text that escaping would blow
/// up) goes whole as a blob: by reference when the gateway shared its buffer,
/// else copied. `scratch` is a reused buffer for the rare joined piece.
pub(crate) fn push_exact(
    carry: &mut Utf8Carry,
    scratch: &mut Vec<u8>,
    t: Duration,
    code: &str,
    binary_code: &str,
    data: Payload<'_>,
    out: &mut Batch,
) {
    let bytes = data.as_slice();
    if !bytes.contains(&0) {
        let mark = out.mark();
        let saved = Utf8Carry {
            buf: carry.buf,
            len: carry.len,
        };
        push_text_exact(carry, scratch, t, code, binary_code, bytes, out);
        if out.len_since(mark) <= bytes.len() + bytes.len() / 2 + 64 {
            return;
        }
        out.truncate(mark);
        *carry = saved;
    }
    if carry.is_empty() {
        push_blob(out, t, binary_code, data);
    } else {
        scratch.clear();
        scratch.extend_from_slice(carry.bytes());
        scratch.extend_from_slice(bytes);
        push_blob(out, t, binary_code, Payload::Borrowed(scratch));
        carry.len = 0;
    }
}

fn push_text_exact(
    carry: &mut Utf8Carry,
    scratch: &mut Vec<u8>,
    t: Duration,
    code: &str,
    binary_code: &str,
    data: &[u8],
    out: &mut Batch,
) {
    let mut first: &[u8] = &[];
    let ch;
    let mut rest = data;
    // complete() consumes the carry; an invalid sequence needs its bytes back.
    let before = Utf8Carry {
        buf: carry.buf,
        len: carry.len,
    };
    match carry.complete(data) {
        Completed::Nothing => {}
        Completed::StillOpen => return,
        Completed::Char(c, n, r) => {
            ch = c;
            first = &ch[..n];
            rest = r;
        }
        Completed::Invalid => {
            scratch.clear();
            scratch.extend_from_slice(before.bytes());
            scratch.extend_from_slice(data);
            push_blob(out, t, binary_code, Payload::Borrowed(scratch));
            carry.len = 0;
            return;
        }
    }
    let (valid, bad) = match std::str::from_utf8(rest) {
        Ok(_) => (rest.len(), None),
        Err(e) => (e.valid_up_to(), Some(e.error_len())),
    };
    if !first.is_empty() || valid > 0 {
        let text = out.text();
        open_event(text, t, code);
        text.push(b'"');
        text.extend_from_slice(first);
        escape_into(text, &rest[..valid]);
        text.push(b'"');
        close_event(text);
    }
    match bad {
        None => {}
        Some(None) => carry.set(&rest[valid..]),
        Some(Some(_)) => push_blob(out, t, binary_code, Payload::Borrowed(&rest[valid..])),
    }
}

/// At the end of a stream, a cut sequence that never completed, kept exactly.
pub(crate) fn finish_exact(carry: &mut Utf8Carry, t: Duration, binary_code: &str, out: &mut Batch) {
    if !carry.is_empty() {
        push_blob(out, t, binary_code, Payload::Borrowed(carry.bytes()));
        carry.len = 0;
    }
}

/// A blob: `[t, "ob", N]`, a newline, N raw bytes, a newline. Bulk binary
/// output costs no encoding, and no copy on the data path when shared.
fn push_blob(out: &mut Batch, t: Duration, code: &str, bytes: Payload<'_>) {
    let text = out.text();
    open_event(text, t, code);
    let _ = write!(text, "{}", bytes.as_slice().len());
    close_event(text);
    out.push_payload(bytes);
    out.text().push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy_chunks(chunks: &[&[u8]]) -> String {
        let mut carry = Utf8Carry::default();
        let mut out = vec![b'"'];
        for c in chunks {
            push_text_lossy(&mut carry, c, &mut out);
        }
        finish_text_lossy(&mut carry, &mut out);
        out.push(b'"');
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn escapes_parse_back() {
        let s = "a\"b\\c\n\r\t\x08\x0c\x01\x1b[31mé€😀\x7f";
        assert_eq!(lossy_chunks(&[s.as_bytes()]), s);
    }

    #[test]
    fn every_ascii_byte_at_every_offset_round_trips() {
        for b in 0u8..128 {
            for pos in 0..20 {
                let mut s = "abcdefghijklmnopqrstu".as_bytes().to_vec();
                s[pos] = b;
                let text = String::from_utf8(s).unwrap();
                assert_eq!(lossy_chunks(&[text.as_bytes()]), text, "byte {b} at {pos}");
            }
        }
    }

    #[test]
    fn binary_looking_chunks_go_as_base64() {
        let mut carry = Utf8Carry::default();
        let mut scratch = Vec::new();
        let mut out = Batch::default();
        let zeros = [0u8; 1000];
        push_exact(
            &mut carry,
            &mut scratch,
            Duration::ZERO,
            "o",
            "ob",
            Payload::Borrowed(&zeros),
            &mut out,
        );
        assert!(joined(&out).starts_with(b"[0.000000, \"ob\", "));
        assert!(out.len() < 1400, "{}", out.len());
        out.clear();
        let controls = [1u8; 1000];
        push_exact(
            &mut carry,
            &mut scratch,
            Duration::ZERO,
            "o",
            "ob",
            Payload::Borrowed(&controls),
            &mut out,
        );
        assert!(out.len() < 1400, "{}", out.len());
        assert_eq!(
            exact_chunks(&[b"ab\xe2\x82", &zeros]),
            [&b"ab\xe2\x82"[..], &zeros].concat()
        );
    }

    #[test]
    fn characters_split_across_chunks_survive() {
        let s = "é€😀 x 😀";
        let b = s.as_bytes();
        for cut in 0..b.len() {
            for cut2 in cut..b.len() {
                assert_eq!(lossy_chunks(&[&b[..cut], &b[cut..cut2], &b[cut2..]]), s);
            }
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(lossy_chunks(&[b"a\xffb"]), "a\u{fffd}b");
        assert_eq!(lossy_chunks(&[b"a\xe2\x82", b"b"]), "a\u{fffd}b");
        assert_eq!(lossy_chunks(&[b"a\xe2\x82"]), "a\u{fffd}");
    }

    fn joined(b: &Batch) -> Vec<u8> {
        b.pieces().flatten().copied().collect()
    }

    /// Encode `chunks` as exact events, each shared as the gateway hands
    /// them (large blobs kept by reference), and decode them back.
    fn exact_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut carry = Utf8Carry::default();
        let mut scratch = Vec::new();
        let mut out = Batch::default();
        for c in chunks {
            let shared = bytes::Bytes::copy_from_slice(c);
            push_exact(
                &mut carry,
                &mut scratch,
                Duration::ZERO,
                "o",
                "ob",
                Payload::Shared(&shared),
                &mut out,
            );
        }
        finish_exact(&mut carry, Duration::ZERO, "ob", &mut out);
        // Decode the events back into bytes.
        let out = joined(&out);
        let (_, events) = crate::records::parse_events(&out);
        let mut back = Vec::new();
        for e in events {
            match (e.code.as_str(), e.bytes) {
                ("o", None) => back.extend_from_slice(e.data.as_str().unwrap().as_bytes()),
                ("ob", Some(b)) => back.extend(b),
                (other, _) => panic!("{other}"),
            }
        }
        back
    }

    #[test]
    fn large_binary_chunks_are_kept_by_reference_and_read_back_exactly() {
        let mut big = vec![0u8; 40 << 10];
        for (i, b) in big.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        // A cut character before it joins the blob (copied); the rest go whole.
        let got = exact_chunks(&[b"ab\xe2\x82", &big, &big, b"tail"]);
        assert_eq!(got, [&b"ab\xe2\x82"[..], &big, &big, b"tail"].concat());
    }

    #[test]
    fn exact_events_keep_every_byte() {
        let mut data = "héllo € 😀\n".as_bytes().to_vec();
        data.extend_from_slice(&[0xff, 0x00, 0xe2, 0x82]);
        data.extend_from_slice("tail 😀".as_bytes());
        data.extend_from_slice(&[0xf0, 0x9f]);
        for cut in 0..data.len() {
            for cut2 in cut..data.len() {
                let got = exact_chunks(&[&data[..cut], &data[cut..cut2], &data[cut2..]]);
                assert_eq!(got, data, "cuts {cut} {cut2}");
            }
        }
    }
}
