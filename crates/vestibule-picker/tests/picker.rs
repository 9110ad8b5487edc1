//! Behaviour of the picker through its public API.

mod common;

use common::{Screen, chosen_target, entries, many, picker, screen_of};
use vestibule_picker::{Picker, PickerEntry, PickerOutcome};

const EMPTY_MESSAGE: &str = "You may not use any target yet; ask an administrator for a role.";

#[test]
fn first_render_shows_title_filter_entries_footer() {
    let mut p = picker(entries(), 80, 12);
    let screen = screen_of(&mut p, 80, 12);
    let text = screen.text();
    assert_eq!(screen.row_text(0), "Vestibule — alice");
    assert!(screen.row_text(1).starts_with("Filter: "));
    for name in [
        "web1",
        "alice",
        "web2",
        "deploy",
        "db1",
        "postgres",
        "env=staging",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    let footer = screen.row_text(11);
    assert!(
        footer.contains("↑/↓ move · Enter connect · Esc cancel"),
        "{footer}"
    );
    assert!(footer.ends_with("3 of 3"), "{footer}");
}

#[test]
fn selection_is_drawn_reversed() {
    let mut p = picker(entries(), 80, 12);
    let raw = p.render();
    let raw_text = String::from_utf8(raw.clone()).expect("UTF-8");
    assert!(
        raw_text.contains(";7m"),
        "no reverse-video SGR in {raw_text:?}"
    );
    let mut screen = Screen::new(80, 12);
    screen.apply(&raw);
    let (row, col) = screen.find("web1").expect("web1 shown");
    assert!(screen.attr_at(row, col).reverse);
    assert!(
        screen.attr_at(row, 79).reverse,
        "the whole row is highlighted"
    );
    let (row, col) = screen.find("web2").expect("web2 shown");
    assert!(!screen.attr_at(row, col).reverse);

    p.feed(b"\x1b[B");
    screen.apply(&p.render());
    let (row, col) = screen.find("web2").expect("web2 shown");
    assert!(screen.attr_at(row, col).reverse);
    let (row, col) = screen.find("web1").expect("web1 shown");
    assert!(!screen.attr_at(row, col).reverse);
}

#[test]
fn typing_filters_case_insensitively_on_all_fields() {
    let mut p = picker(entries(), 80, 12);
    assert_eq!(p.feed(b"WEB"), PickerOutcome::Pending);
    let screen = screen_of(&mut p, 80, 12);
    let text = screen.text();
    assert!(text.contains("Filter: WEB"));
    assert!(text.contains("web1") && text.contains("web2") && !text.contains("db1"));
    assert!(text.contains("2 of 3"));

    let mut p = picker(entries(), 80, 12);
    p.feed(b"Env=Prod");
    let text = screen_of(&mut p, 80, 12).text();
    assert!(text.contains("web1") && text.contains("db1") && !text.contains("web2"));

    // "target login" is one searchable string.
    let mut p = picker(entries(), 80, 12);
    assert_eq!(chosen_target(p.feed(b"db1 post\r")), "db1");
}

#[test]
fn no_match_message_and_editing_the_filter() {
    let mut p = picker(entries(), 80, 12);
    let mut screen = Screen::new(80, 12);
    let mut show = |p: &mut Picker| {
        screen.apply(&p.render());
        screen.text()
    };
    p.feed(b"zzz");
    let text = show(&mut p);
    assert!(text.contains("no target matches"), "{text}");
    assert!(text.contains("0 of 3"));
    assert_eq!(
        p.feed(b"\r"),
        PickerOutcome::Pending,
        "Enter with nothing listed"
    );

    p.feed(b"\x7f\x7f\x7f");
    let text = show(&mut p);
    assert!(
        text.contains("3 of 3") && !text.contains("no target"),
        "{text}"
    );

    p.feed(b"db\x15"); // Ctrl-U clears
    assert!(show(&mut p).contains("3 of 3"));
    p.feed(b"web2 x\x17"); // Ctrl-W removes the last word
    let text = show(&mut p);
    assert!(text.contains("Filter: web2"), "{text}");
    assert!(text.contains("1 of 3"));
}

#[test]
fn selection_moves_and_clamps() {
    let mut p = picker(entries(), 80, 12);
    p.feed(b"\x1b[A\x1b[A"); // up at the top stays at the top
    assert_eq!(chosen_target(p.feed(b"\r")), "web1");

    let mut p = picker(entries(), 80, 12);
    p.feed(&b"\x1b[B".repeat(10)); // down past the end stays at the end
    assert_eq!(chosen_target(p.feed(b"\r")), "db1");

    let mut p = picker(entries(), 80, 12);
    p.feed(b"\x0e\x0e\x10"); // Ctrl-N, Ctrl-N, Ctrl-P
    assert_eq!(chosen_target(p.feed(b"\r")), "web2");

    let mut p = picker(entries(), 80, 12);
    p.feed(b"\x1bOB\x1b[F\x1b[H\x1b[4~");
    assert_eq!(chosen_target(p.feed(b"\n")), "db1");
}

#[test]
fn enter_returns_the_selected_entry_after_filtering() {
    let mut p = picker(entries(), 80, 12);
    assert_eq!(
        p.feed(b"web\x1b[B\r"),
        PickerOutcome::Chosen(PickerEntry::new(
            "web2",
            "deploy",
            "10.0.0.2:22  env=staging"
        ))
    );

    // Changing the filter selects its first match, however the bytes arrive.
    let mut p = picker(entries(), 80, 12);
    p.feed(b"\x1b[B\x1b[B"); // db1
    assert_eq!(chosen_target(p.feed(b"1\r")), "web1");
    let mut p = picker(entries(), 80, 12);
    assert_eq!(chosen_target(p.feed(b"\x1b[B\x1b[B1\r")), "web1");
    let mut p = picker(entries(), 80, 12);
    p.feed(b"1\x1b[B");
    p.feed(b"x\x7f");
    assert_eq!(chosen_target(p.feed(b"\r")), "web1");
}

#[test]
fn escape_ctrl_c_ctrl_d_cancel_and_outcome_sticks() {
    for keys in [&b"\x1b"[..], b"\x03", b"\x04", b"we\x03b\r", b"\x1b\x1b"] {
        let mut p = picker(entries(), 80, 12);
        assert_eq!(p.feed(keys), PickerOutcome::Cancelled, "{keys:?}");
        assert_eq!(p.feed(b"\r"), PickerOutcome::Cancelled);
    }
    let mut p = picker(entries(), 80, 12);
    assert_eq!(chosen_target(p.feed(b"\r\x03")), "web1");
    assert_eq!(chosen_target(p.feed(b"\x03")), "web1");
}

#[test]
fn key_sequences_split_across_feeds() {
    let mut p = picker(entries(), 80, 12);
    assert_eq!(p.feed(b"\x1b["), PickerOutcome::Pending);
    assert_eq!(p.feed(b"B"), PickerOutcome::Pending);
    assert_eq!(chosen_target(p.feed(b"\r")), "web2");

    let mut p = picker(many(30), 80, 12);
    assert_eq!(p.feed(b"\x1b[6"), PickerOutcome::Pending);
    assert_eq!(p.feed(b"~"), PickerOutcome::Pending);
    assert_eq!(
        chosen_target(p.feed(b"\r")),
        "host009",
        "one page is 9 rows"
    );

    let mut p = picker(vec![PickerEntry::new("café", "root", "")], 80, 12);
    let bytes = "é\r".as_bytes();
    assert_eq!(p.feed(&bytes[..1]), PickerOutcome::Pending);
    assert_eq!(chosen_target(p.feed(&bytes[1..])), "café");
}

#[test]
fn long_lists_scroll_to_keep_the_selection_visible() {
    let mut p = picker(many(50), 40, 10); // 7 list rows
    let mut screen = screen_of(&mut p, 40, 10);
    assert!(screen.text().contains("host000") && !screen.text().contains("host007"));

    p.feed(b"\x1b[F");
    screen.apply(&p.render());
    let text = screen.text();
    assert!(
        text.contains("host049") && !text.contains("host000"),
        "{text}"
    );
    let (row, col) = screen.find("host049").expect("last entry shown");
    assert!(screen.attr_at(row, col).reverse);
    assert_eq!(row, 8, "last entry sits on the last list row");

    p.feed(b"\x1b[5~");
    screen.apply(&p.render());
    let (row, col) = screen.find("host042").expect("a page up");
    assert!(screen.attr_at(row, col).reverse);

    p.feed(b"\x1b[H");
    screen.apply(&p.render());
    assert!(screen.text().contains("host000"));
    assert_eq!(chosen_target(p.feed(b"\r")), "host000");
}

#[test]
fn incremental_renders_match_a_fresh_render() {
    let steps: [&[u8]; 8] = [
        b"",
        b"h",
        b"\x1b[B\x1b[B",
        b"ost01",
        b"\x7f\x7f",
        b"\x1b[6~",
        b"\x15",
        b"zz",
    ];
    let mut incremental = picker(many(40), 50, 12);
    let mut screen = Screen::new(50, 12);
    let mut typed = Vec::new();
    for step in steps {
        incremental.feed(step);
        screen.apply(&incremental.render());
        typed.extend_from_slice(step);
        let mut fresh = picker(many(40), 50, 12);
        fresh.feed(&typed);
        assert_eq!(
            screen.dump(),
            screen_of(&mut fresh, 50, 12).dump(),
            "after {typed:?}"
        );
    }
}

#[test]
fn unchanged_state_renders_nothing_and_ctrl_l_redraws() {
    let mut p = picker(entries(), 80, 12);
    let first = p.render();
    assert!(first.windows(4).any(|w| w == b"\x1b[2J"));
    assert!(p.render().is_empty());
    p.feed(b"\x0c");
    let again = p.render();
    assert!(again.windows(4).any(|w| w == b"\x1b[2J"));
    assert!(again.windows(4).any(|w| w == b"web1"));
}

#[test]
fn resize_redraws_everything() {
    let mut p = picker(entries(), 80, 12);
    p.render();
    p.resize(100, 30);
    let raw = p.render();
    assert!(raw.windows(4).any(|w| w == b"\x1b[2J"), "screen cleared");
    let mut screen = Screen::new(100, 30);
    screen.apply(&raw);
    assert!(screen.text().contains("web1") && screen.text().contains("db1"));
    assert!(
        screen.row_text(29).ends_with("3 of 3"),
        "footer on the new last row"
    );

    p.resize(30, 6);
    let mut screen = Screen::new(30, 6);
    screen.apply(&p.render());
    assert!(screen.text().contains("web1"));
}

#[test]
fn empty_list_explains_what_to_do() {
    let mut p = picker(Vec::new(), 100, 10);
    let text = screen_of(&mut p, 100, 10).text();
    assert!(text.contains(EMPTY_MESSAGE), "{text}");
    assert!(text.contains("0 of 0"));
    assert_eq!(p.feed(b"\r"), PickerOutcome::Pending);
    assert_eq!(p.feed(b"\x1b"), PickerOutcome::Cancelled);

    // On a narrow screen the message wraps instead of being cut.
    let mut p = picker(Vec::new(), 30, 10);
    let text = screen_of(&mut p, 30, 10).text();
    assert!(text.contains("administrator"), "{text}");
}

#[test]
fn enter_and_leave_sequences() {
    let enter = Picker::enter_sequence();
    assert!(enter.windows(8).any(|w| w == b"\x1b[?1049h"));
    assert!(enter.windows(6).any(|w| w == b"\x1b[?25l"));
    let leave = Picker::leave_sequence();
    assert!(leave.windows(8).any(|w| w == b"\x1b[?1049l"));
    assert!(leave.windows(6).any(|w| w == b"\x1b[?25h"));
    assert!(leave.windows(4).any(|w| w == b"\x1b[0m"));
    let mut screen = Screen::new(10, 3);
    screen.apply(enter);
    screen.apply(leave);
}

#[test]
fn picker_can_live_in_an_async_task() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Picker>();
    assert_send::<PickerOutcome>();
}
