//! Untrusted input and odd screen sizes: nothing may panic or leak.

mod common;

use common::{Screen, entries, many, picker, screen_of};
use vestibule_picker::{PickerEntry, PickerOutcome};

#[test]
fn tiny_and_huge_sizes_do_not_panic() {
    for cols in 0..=24u16 {
        for rows in 0..=6u16 {
            for list in [entries(), many(20), Vec::new()] {
                let mut p = picker(list, cols, rows);
                let mut screen = Screen::new(cols, rows);
                screen.apply(&p.render());
                p.feed(b"h\x1b[B\x1b[6~\x1b[F");
                screen.apply(&p.render());
                p.feed(b"\x7f\x1b[5~");
                screen.apply(&p.render());
            }
        }
    }
    let mut p = picker(entries(), 20, 5);
    let screen = screen_of(&mut p, 20, 5);
    assert!(screen.text().contains("web1"), "{}", screen.text());

    let mut p = picker(many(5), u16::MAX, u16::MAX);
    assert!(!p.render().is_empty());
    p.resize(u16::MAX, 1);
    p.render();
}

#[test]
fn entry_text_cannot_inject_escape_sequences() {
    let evil = PickerEntry::new("evil\x1b[31m", "root\x1b]0;pwned\x07", "\r\nnext\x1b[2J");
    let mut p = picker(vec![evil.clone()], 80, 12);
    let raw = p.render();
    let text = String::from_utf8(raw.clone()).expect("UTF-8");
    assert!(!text.contains("\x1b[31m") && !text.contains("\x1b]") && !text.contains('\x07'));
    assert_eq!(
        text.matches("\x1b[2J").count(),
        1,
        "only the picker's own clear"
    );
    Screen::new(80, 12).apply(&raw); // panics on anything unexpected
    assert_eq!(
        p.feed(b"\r"),
        PickerOutcome::Chosen(evil),
        "returned unchanged"
    );
}

#[test]
fn garbage_input_never_panics() {
    let mut seed: u64 = 0x5eed_1e57_0b1e;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as u32
    };
    // Bias towards bytes that start or continue escape and UTF-8 sequences.
    const INTERESTING: &[u8] = b"\x1b\x1b\x1b[[[O~;0156ABHF\x7f\x08\x15\x17\x10\x0e\x0c\xc3\xa9\xe2\x98\x83\xf0\x9f\xff\x80 ";
    for round in 0..300 {
        let cols = (next() % 90) as u16;
        let rows = (next() % 30) as u16;
        let mut p = picker(many((next() % 40) as usize), cols, rows);
        let mut screen = Screen::new(cols, rows);
        for _ in 0..20 {
            let len = next() % 48;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 3 {
                    0 => INTERESTING[(next() as usize) % INTERESTING.len()],
                    _ => (next() % 256) as u8,
                })
                .filter(|b| !matches!(b, b'\r' | b'\n' | 0x03 | 0x04))
                .collect();
            // Keep most rounds going: drop a trailing lone ESC (which cancels).
            let bytes = bytes.strip_suffix(b"\x1b").unwrap_or(&bytes).to_vec();
            let outcome = p.feed(&bytes);
            if round % 7 == 0 {
                // Sometimes resize, including to nothing.
                let (c, r) = ((next() % 60) as u16, (next() % 20) as u16);
                p.resize(c, r);
                screen = Screen::new(c, r);
            }
            screen.apply(&p.render());
            if outcome != PickerOutcome::Pending {
                break;
            }
        }
    }
    // And fully unfiltered bytes, controls included.
    for _ in 0..2000 {
        let mut p = picker(entries(), 40, 8);
        let len = next() % 64;
        let bytes: Vec<u8> = (0..len).map(|_| (next() % 256) as u8).collect();
        let _ = p.feed(&bytes);
        let _ = p.render();
    }
}
