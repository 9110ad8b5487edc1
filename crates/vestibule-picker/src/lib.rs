//! The terminal target picker of Vestibule.
//!
//! When a person connects to the gateway without naming a target and asks
//! for a PTY, the gateway shows a small full-screen list of the (target,
//! login) pairs that person may use. This crate owns that picker: its state
//! (filter text, matching entries, selection, scrolling), the decoding of the
//! raw key bytes the person types, and the drawing of the screen as ANSI
//! bytes (through ratatui and an in-memory backend).
//!
//! It is a pure, synchronous state machine. It must not touch the network,
//! the database, the terminal of the machine it runs on, threads or timers,
//! and it makes no authorization decision: it only shows the entries it is
//! given and reports which one was chosen. The caller moves bytes between the
//! SSH channel and [`Picker`], and must still check that the chosen entry is
//! allowed before connecting.
//!
//! ```
//! use vestibule_picker::{Picker, PickerEntry, PickerOutcome};
//!
//! let entries = vec![PickerEntry::new("db1", "postgres", "10.0.0.5:22  env=prod")];
//! let mut picker = Picker::new("Vestibule — alice".to_string(), entries, 80, 24);
//! let mut to_client = Picker::enter_sequence().to_vec();
//! to_client.extend(picker.render());
//! // ... bytes typed by the person arrive from the channel:
//! match picker.feed(b"db\r") {
//!     PickerOutcome::Pending => to_client.extend(picker.render()),
//!     PickerOutcome::Chosen(entry) => {
//!         to_client.extend_from_slice(Picker::leave_sequence());
//!         assert_eq!(entry.target, "db1");
//!     }
//!     PickerOutcome::Cancelled => to_client.extend_from_slice(Picker::leave_sequence()),
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ansi_backend;
mod keys;
mod view;

use core::convert::Infallible;

use ratatui::Terminal;
use ratatui::layout::{Rect, Size};

use crate::ansi_backend::AnsiBackend;
use crate::keys::{Key, KeyDecoder};

/// Largest screen width drawn; wider screens use only this many columns.
/// Sizes come from the client, so they are capped to bound memory use.
const MAX_COLS: u16 = 500;
/// Largest screen height drawn; taller screens use only this many rows.
const MAX_ROWS: u16 = 250;
/// Longest filter kept, in characters; further typing is ignored.
const MAX_FILTER_CHARS: usize = 256;

/// One (target, login) pair the person may choose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PickerEntry {
    /// The target's name, as the person would type it after `@`.
    pub target: String,
    /// The login to use on the target.
    pub login: String,
    /// Free text shown after the login, e.g. `"127.0.0.1:22  env=prod"`.
    pub description: String,
}

impl PickerEntry {
    /// Builds an entry from its three parts.
    pub fn new(
        target: impl Into<String>,
        login: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            target: target.into(),
            login: login.into(),
            description: description.into(),
        }
    }
}

/// Where the picker stands after some input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickerOutcome {
    /// The person has not decided yet; keep feeding input.
    Pending,
    /// The person chose this entry (a copy of one given to [`Picker::new`]).
    Chosen(PickerEntry),
    /// The person gave up (Esc, Ctrl-C or Ctrl-D).
    Cancelled,
}

/// State shared by the key handling and the drawing code.
#[derive(Debug)]
struct State {
    title: String,
    entries: Vec<PickerEntry>,
    /// Lower-cased "target login description" of each entry.
    haystacks: Vec<String>,
    filter: String,
    /// True when `filter` changed since `matches` was computed.
    filter_dirty: bool,
    /// Indexes into `entries` of the entries matching the filter.
    matches: Vec<usize>,
    /// Position of the selection in `matches`.
    selected: usize,
    /// Position in `matches` of the first visible row.
    offset: usize,
    /// Display width of the target column (widest target, capped).
    target_width: u16,
    /// Display width of the login column (widest login, capped).
    login_width: u16,
}

impl State {
    fn refilter(&mut self) {
        if !self.filter_dirty {
            return;
        }
        self.filter_dirty = false;
        let needle = self.filter.to_lowercase();
        self.matches = (0..self.entries.len())
            .filter(|&i| {
                self.haystacks
                    .get(i)
                    .is_some_and(|haystack| haystack.contains(&needle))
            })
            .collect();
        // A new filter selects its first match. (Following the previously
        // selected entry would make the result depend on how the typed bytes
        // were split across reads, since filtering is done once per read.)
        self.selected = 0;
        self.offset = 0;
    }

    fn select(&mut self, position: usize) {
        self.selected = position.min(self.matches.len().saturating_sub(1));
    }

    /// Adjusts `offset` so the selection is inside a list `height` rows tall.
    fn scroll_into_view(&mut self, height: usize) {
        if height == 0 {
            return;
        }
        let last_start = self.matches.len().saturating_sub(height);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset.saturating_add(height) {
            self.offset = self.selected.saturating_sub(height - 1);
        }
        self.offset = self.offset.min(last_start);
    }
}

/// The picker: feed it the person's bytes, send back what
/// [`render`](Picker::render) returns.
pub struct Picker {
    state: State,
    decoder: KeyDecoder,
    terminal: Terminal<AnsiBackend>,
    outcome: PickerOutcome,
    /// Repaint everything on the next render (first render, Ctrl-L).
    full_redraw: bool,
}

impl core::fmt::Debug for Picker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Picker")
            .field("state", &self.state)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl Picker {
    /// Creates a picker showing `entries` (in the given order) under `title`
    /// on a screen of `cols` × `rows` cells, as given by the client's PTY
    /// request. Nothing is drawn until [`render`](Picker::render).
    pub fn new(title: String, entries: Vec<PickerEntry>, cols: u16, rows: u16) -> Self {
        let haystacks = entries
            .iter()
            .map(|e| format!("{} {} {}", e.target, e.login, e.description).to_lowercase())
            .collect();
        let (target_width, login_width) = view::column_widths(&entries);
        let state = State {
            title,
            matches: (0..entries.len()).collect(),
            entries,
            haystacks,
            filter: String::new(),
            filter_dirty: false,
            selected: 0,
            offset: 0,
            target_width,
            login_width,
        };
        let terminal = match Terminal::new(AnsiBackend::new(clamp_size(cols, rows))) {
            Ok(terminal) => terminal,
            Err(never) => match never {},
        };
        Self {
            state,
            decoder: KeyDecoder::default(),
            terminal,
            outcome: PickerOutcome::Pending,
            full_redraw: true,
        }
    }

    /// Feeds bytes typed by the person, exactly as read from the channel.
    ///
    /// The bytes may hold several keys, or part of a key whose rest comes in
    /// the next call. Any byte sequence is accepted: unknown sequences and
    /// control bytes are ignored. A lone ESC at the end of `bytes` counts as
    /// the Esc key.
    ///
    /// Returns [`PickerOutcome::Pending`] until the person chooses or
    /// cancels; from then on every call returns that same final outcome and
    /// ignores its input.
    pub fn feed(&mut self, bytes: &[u8]) -> PickerOutcome {
        if self.outcome != PickerOutcome::Pending {
            return self.outcome.clone();
        }
        let mut keys = Vec::new();
        self.decoder.decode(bytes, &mut keys);
        for key in keys {
            self.apply(key);
            if self.outcome != PickerOutcome::Pending {
                self.decoder.reset();
                break;
            }
        }
        self.state.refilter();
        self.outcome.clone()
    }

    /// Records a new screen size (from a window-change request). The next
    /// [`render`](Picker::render) repaints the whole screen. Sizes above
    /// 500 × 250 are treated as 500 × 250.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.terminal.backend_mut().set_size(clamp_size(cols, rows));
    }

    /// Returns the ANSI bytes that bring the person's screen up to date.
    ///
    /// The first call (and the first after a resize or Ctrl-L) clears the
    /// screen and draws everything; later calls send only the cells that
    /// changed since the previous call, so the result may be empty. Every
    /// cell is placed with absolute cursor positioning.
    pub fn render(&mut self) -> Vec<u8> {
        self.state.refilter();
        if self.full_redraw {
            self.full_redraw = false;
            infallible(self.terminal.clear());
        }
        let state = &mut self.state;
        infallible(self.terminal.draw(|frame| {
            let area = frame.area();
            view::draw(state, area, frame.buffer_mut());
        }));
        self.terminal.backend_mut().take_output()
    }

    /// Bytes to send before the first [`render`](Picker::render): switch to
    /// the alternate screen, hide the cursor, turn off line wrapping and
    /// clear the screen.
    pub fn enter_sequence() -> &'static [u8] {
        b"\x1b[?1049h\x1b[?25l\x1b[?7l\x1b[0m\x1b[H\x1b[2J"
    }

    /// Bytes to send once the outcome is final: reset attributes, turn line
    /// wrapping back on, show the cursor and leave the alternate screen,
    /// which brings back what the person's terminal showed before.
    pub fn leave_sequence() -> &'static [u8] {
        b"\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l"
    }

    fn apply(&mut self, key: Key) {
        let state = &mut self.state;
        match key {
            Key::Char(c) => {
                if state.filter.chars().count() < MAX_FILTER_CHARS {
                    state.filter.push(c);
                    state.filter_dirty = true;
                }
            }
            Key::Backspace => {
                state.filter_dirty |= state.filter.pop().is_some();
            }
            Key::DeleteWord => {
                let kept = state
                    .filter
                    .trim_end()
                    .trim_end_matches(|c: char| !c.is_whitespace());
                let kept_len = kept.len();
                state.filter_dirty |= kept_len != state.filter.len();
                state.filter.truncate(kept_len);
            }
            Key::ClearFilter => {
                state.filter_dirty |= !state.filter.is_empty();
                state.filter.clear();
            }
            Key::Redraw => self.full_redraw = true,
            Key::Cancel => self.outcome = PickerOutcome::Cancelled,
            Key::Enter => {
                state.refilter();
                let chosen = state
                    .matches
                    .get(state.selected)
                    .and_then(|&i| state.entries.get(i));
                if let Some(entry) = chosen {
                    self.outcome = PickerOutcome::Chosen(entry.clone());
                }
            }
            Key::Up | Key::Down | Key::PageUp | Key::PageDown | Key::Home | Key::End => {
                state.refilter();
                let page = self.list_height().max(1);
                let state = &mut self.state;
                let current = state.selected;
                let target = match key {
                    Key::Up => current.saturating_sub(1),
                    Key::Down => current.saturating_add(1),
                    Key::PageUp => current.saturating_sub(page),
                    Key::PageDown => current.saturating_add(page),
                    Key::Home => 0,
                    _ => usize::MAX,
                };
                state.select(target);
                state.scroll_into_view(page);
            }
        }
    }

    /// Number of list rows on the current screen.
    fn list_height(&self) -> usize {
        let size = infallible(self.terminal.size());
        usize::from(
            view::layout(Rect::new(0, 0, size.width, size.height))
                .list
                .height,
        )
    }
}

/// Caps a client-supplied size to what we are willing to allocate.
fn clamp_size(cols: u16, rows: u16) -> Size {
    Size::new(cols.min(MAX_COLS), rows.min(MAX_ROWS))
}

fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}
