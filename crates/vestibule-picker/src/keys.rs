//! Decoding of the raw bytes a person types into picker keys.
//!
//! The bytes come straight from the SSH channel, so they are untrusted: any
//! sequence must decode without panicking. Unknown escape sequences and
//! control bytes are dropped, invalid UTF-8 is dropped byte by byte, and a
//! sequence cut short at the end of one read is kept in a small pending buffer
//! until the next read completes it.

/// One key the picker reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// A printable character to append to the filter.
    Char(char),
    /// Delete the last character of the filter (0x7f, 0x08).
    Backspace,
    /// Delete the last word of the filter (Ctrl-W, Alt-Backspace).
    DeleteWord,
    /// Clear the whole filter (Ctrl-U).
    ClearFilter,
    /// Choose the selected entry (CR or LF).
    Enter,
    /// Give up without choosing (Esc, Ctrl-C, Ctrl-D).
    Cancel,
    /// Move the selection up one row (Up arrow, Ctrl-P).
    Up,
    /// Move the selection down one row (Down arrow, Ctrl-N).
    Down,
    /// Move the selection up one page.
    PageUp,
    /// Move the selection down one page.
    PageDown,
    /// Select the first entry.
    Home,
    /// Select the last entry.
    End,
    /// Repaint the whole screen (Ctrl-L).
    Redraw,
}

/// Longest escape sequence we are willing to wait for. Anything longer is
/// garbage and is discarded, which also bounds the pending buffer.
const MAX_SEQUENCE: usize = 32;

const ESC: u8 = 0x1b;

/// What [`parse_one`] found at the start of its input.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A key, and how many bytes it used.
    Key(Key, usize),
    /// Bytes to drop (always at least one).
    Skip(usize),
    /// The input is the beginning of a sequence that may still be completed.
    Incomplete,
}

/// Turns a stream of raw bytes into [`Key`]s, keeping incomplete sequences
/// between calls.
#[derive(Debug, Default)]
pub(crate) struct KeyDecoder {
    pending: Vec<u8>,
}

impl KeyDecoder {
    /// Decodes `input` (preceded by whatever was pending) and appends the
    /// keys found to `out`.
    ///
    /// A lone `ESC` at the very end of the input counts as the Esc key: the
    /// gateway has no timer, and a person pressing Esc must not have to wait
    /// for another key. Longer incomplete sequences (`ESC [`, `ESC [ 5`, the
    /// first bytes of a UTF-8 character) are kept for the next call.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut Vec<Key>) {
        let mut buf = core::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
        let mut rest = buf.as_slice();
        while !rest.is_empty() {
            let used = match parse_one(rest) {
                Parsed::Key(key, used) => {
                    out.push(key);
                    used
                }
                Parsed::Skip(used) => used,
                Parsed::Incomplete => {
                    // parse_one only reports Incomplete for short prefixes,
                    // but keep the bound explicit.
                    if rest.len() <= MAX_SEQUENCE {
                        self.pending = rest.to_vec();
                    }
                    return;
                }
            };
            rest = rest.get(used.max(1)..).unwrap_or_default();
        }
    }

    /// Forgets any incomplete sequence.
    pub(crate) fn reset(&mut self) {
        self.pending.clear();
    }
}

/// Decodes the first key (or the first bytes to drop) of a non-empty slice.
fn parse_one(s: &[u8]) -> Parsed {
    let Some(&first) = s.first() else {
        return Parsed::Skip(1);
    };
    match first {
        ESC => parse_escape(s),
        b'\r' | b'\n' => Parsed::Key(Key::Enter, 1),
        0x7f | 0x08 => Parsed::Key(Key::Backspace, 1),
        0x15 => Parsed::Key(Key::ClearFilter, 1),
        0x17 => Parsed::Key(Key::DeleteWord, 1),
        0x03 | 0x04 => Parsed::Key(Key::Cancel, 1),
        0x10 => Parsed::Key(Key::Up, 1),
        0x0e => Parsed::Key(Key::Down, 1),
        0x0c => Parsed::Key(Key::Redraw, 1),
        0x20..=0x7e => Parsed::Key(Key::Char(char::from(first)), 1),
        0x00..=0x1f => Parsed::Skip(1),
        _ => parse_utf8(s, first),
    }
}

/// Decodes a multi-byte UTF-8 character starting with `lead` (>= 0x80).
fn parse_utf8(s: &[u8], lead: u8) -> Parsed {
    let len = match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Parsed::Skip(1),
    };
    let Some(bytes) = s.get(..len) else {
        let tail = s.get(1..).unwrap_or_default();
        return if tail.iter().all(|b| (0x80..=0xbf).contains(b)) {
            Parsed::Incomplete
        } else {
            Parsed::Skip(1)
        };
    };
    match core::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.chars().next())
    {
        Some(c) if !c.is_control() => Parsed::Key(Key::Char(c), len),
        Some(_) => Parsed::Skip(len),
        None => Parsed::Skip(1),
    }
}

/// Decodes a sequence starting with ESC.
fn parse_escape(s: &[u8]) -> Parsed {
    match s.get(1) {
        // The simplest rule that never leaves a person waiting: a trailing
        // lone ESC is the Esc key.
        None => Parsed::Key(Key::Cancel, 1),
        Some(b'[') => parse_csi(s),
        Some(b'O') => parse_ss3(s),
        // ESC ESC: the first one is the Esc key.
        Some(&ESC) => Parsed::Key(Key::Cancel, 1),
        // Alt-Backspace.
        Some(0x7f) | Some(0x08) => Parsed::Key(Key::DeleteWord, 2),
        // Any other Alt-modified key is ignored.
        Some(_) => Parsed::Skip(2),
    }
}

/// Decodes `ESC O x` (SS3, sent by terminals in application cursor mode).
fn parse_ss3(s: &[u8]) -> Parsed {
    match s.get(2) {
        None => Parsed::Incomplete,
        Some(b'A') => Parsed::Key(Key::Up, 3),
        Some(b'B') => Parsed::Key(Key::Down, 3),
        Some(b'H') => Parsed::Key(Key::Home, 3),
        Some(b'F') => Parsed::Key(Key::End, 3),
        Some(0x40..=0x7e) => Parsed::Skip(3),
        // Not a sequence after all (Alt-O); look at the next byte afresh.
        Some(_) => Parsed::Skip(2),
    }
}

/// Decodes `ESC [ params final` (CSI).
fn parse_csi(s: &[u8]) -> Parsed {
    let mut end = 2;
    loop {
        let Some(&b) = s.get(end) else {
            return Parsed::Incomplete;
        };
        match b {
            0x40..=0x7e => break,
            0x20..=0x3f if end < MAX_SEQUENCE => end += 1,
            // Too long, or a byte that cannot be part of a CSI sequence:
            // drop what we have read and look at the rest afresh.
            _ => return Parsed::Skip(end),
        }
    }
    let used = end + 1;
    let params = s.get(2..end).unwrap_or_default();
    let final_byte = s.get(end).copied().unwrap_or_default();
    if !params.iter().all(|b| b.is_ascii_digit() || *b == b';') {
        // Private or intermediate bytes: nothing we understand.
        return Parsed::Skip(used);
    }
    let first_param = params.split(|b| *b == b';').next().unwrap_or_default();
    let key = match (final_byte, first_param) {
        (b'A', _) => Some(Key::Up),
        (b'B', _) => Some(Key::Down),
        (b'H', _) => Some(Key::Home),
        (b'F', _) => Some(Key::End),
        (b'~', b"1" | b"7") => Some(Key::Home),
        (b'~', b"4" | b"8") => Some(Key::End),
        (b'~', b"5") => Some(Key::PageUp),
        (b'~', b"6") => Some(Key::PageDown),
        _ => None,
    };
    match key {
        Some(key) => Parsed::Key(key, used),
        None => Parsed::Skip(used),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(chunks: &[&[u8]]) -> Vec<Key> {
        let mut decoder = KeyDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.decode(chunk, &mut out);
        }
        out
    }

    #[test]
    fn printable_and_controls() {
        assert_eq!(
            keys(&[b"ab\x7f\x08\x15\x17\r\n\x03\x04\x10\x0e\x0c\x01\t"]),
            vec![
                Key::Char('a'),
                Key::Char('b'),
                Key::Backspace,
                Key::Backspace,
                Key::ClearFilter,
                Key::DeleteWord,
                Key::Enter,
                Key::Enter,
                Key::Cancel,
                Key::Cancel,
                Key::Up,
                Key::Down,
                Key::Redraw,
            ]
        );
    }

    #[test]
    fn arrows_pages_home_end() {
        let input = b"\x1b[A\x1b[B\x1bOA\x1bOB\x1b[5~\x1b[6~\x1b[H\x1b[F\x1b[1~\x1b[4~\x1bOH\x1bOF\x1b[1;5A";
        assert_eq!(
            keys(&[input]),
            vec![
                Key::Up,
                Key::Down,
                Key::Up,
                Key::Down,
                Key::PageUp,
                Key::PageDown,
                Key::Home,
                Key::End,
                Key::Home,
                Key::End,
                Key::Home,
                Key::End,
                Key::Up,
            ]
        );
    }

    #[test]
    fn unknown_sequences_are_ignored() {
        let input = b"\x1b[C\x1b[D\x1b[3~\x1b[200~x\x1b[201~\x1b[?1;2c\x1bOP\x1bxy";
        assert_eq!(keys(&[input]), vec![Key::Char('x'), Key::Char('y')]);
    }

    #[test]
    fn lone_and_double_escape_cancel() {
        assert_eq!(keys(&[b"\x1b"]), vec![Key::Cancel]);
        assert_eq!(keys(&[b"a\x1b"]), vec![Key::Char('a'), Key::Cancel]);
        assert_eq!(keys(&[b"\x1b\x1b[A"]), vec![Key::Cancel, Key::Up]);
    }

    #[test]
    fn sequences_split_across_reads() {
        assert_eq!(keys(&[b"\x1b[", b"B"]), vec![Key::Down]);
        assert_eq!(keys(&[b"\x1b[6", b"~"]), vec![Key::PageDown]);
        assert_eq!(keys(&[b"\x1bO", b"A"]), vec![Key::Up]);
        assert_eq!(keys(&[b"\x1b[1;", b"5", b"B"]), vec![Key::Down]);
        let e_acute = "é".as_bytes();
        assert_eq!(keys(&[&e_acute[..1], &e_acute[1..]]), vec![Key::Char('é')]);
        let snowman = "☃".as_bytes();
        assert_eq!(
            keys(&[&snowman[..1], &snowman[1..2], &snowman[2..]]),
            vec![Key::Char('☃')]
        );
    }

    #[test]
    fn invalid_utf8_is_dropped() {
        assert_eq!(
            keys(&[b"\xff\xc0a\xe2\x28\xa1b\x80\xc2\x85"]),
            vec![Key::Char('a'), Key::Char('('), Key::Char('b')]
        );
        // A truncated lead byte followed by ASCII does not swallow the ASCII.
        assert_eq!(keys(&[b"\xe2a"]), vec![Key::Char('a')]);
    }

    #[test]
    fn overlong_csi_is_discarded_and_pending_stays_small() {
        let mut decoder = KeyDecoder::default();
        let mut out = Vec::new();
        let mut input = b"\x1b[".to_vec();
        input.extend(std::iter::repeat_n(b'1', 1000));
        decoder.decode(&input, &mut out);
        assert!(decoder.pending.len() <= MAX_SEQUENCE);
        decoder.decode(b"\x1b[", &mut out);
        assert!(decoder.pending.len() <= MAX_SEQUENCE);
        decoder.reset();
        assert!(decoder.pending.is_empty());
    }

    #[test]
    fn control_char_aborts_csi() {
        assert_eq!(keys(&[b"\x1b[1\r"]), vec![Key::Enter]);
    }
}
