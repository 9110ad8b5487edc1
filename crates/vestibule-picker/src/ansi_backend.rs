//! A ratatui [`Backend`] that writes ANSI escape sequences into memory.
//!
//! The gateway has no local terminal: the size comes from the SSH client's
//! PTY request and window-change messages, and the output is bytes to send
//! down the channel. Every cell is placed with absolute cursor positioning
//! (`ESC [ row ; col H`); the backend never relies on `\n` or `\r`.

use core::convert::Infallible;
use std::io::Write as _;

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};

/// Colours and attributes of the last SGR sequence sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pen {
    fg: Color,
    bg: Color,
    modifier: Modifier,
}

impl Pen {
    /// The terminal's state right after `ESC [ 0 m`.
    const RESET: Pen = Pen {
        fg: Color::Reset,
        bg: Color::Reset,
        modifier: Modifier::empty(),
    };
}

/// In-memory backend: drawing appends ANSI bytes to a buffer that
/// [`AnsiBackend::take_output`] hands over.
#[derive(Debug)]
pub(crate) struct AnsiBackend {
    out: Vec<u8>,
    size: Size,
    /// Where the cursor is, as far as we know.
    cursor: Position,
    /// The position right after the last cell written, if we are sure the
    /// terminal's cursor is there (only after single-width ASCII).
    next_cell: Option<Position>,
    /// The SGR state of the terminal, if known.
    pen: Option<Pen>,
    /// Whether the cursor is shown, if known.
    cursor_visible: Option<bool>,
}

impl AnsiBackend {
    /// A backend for a screen of the given size, with nothing written yet.
    pub(crate) fn new(size: Size) -> Self {
        Self {
            out: Vec::new(),
            size,
            cursor: Position::ORIGIN,
            next_cell: None,
            pen: None,
            cursor_visible: None,
        }
    }

    /// Changes the size reported to ratatui; the next draw notices the change
    /// and repaints everything.
    pub(crate) fn set_size(&mut self, size: Size) {
        self.size = size;
    }

    /// Takes the bytes written since the last call.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    fn move_to(&mut self, position: Position) {
        // Terminal rows and columns are 1-based.
        let row = u32::from(position.y) + 1;
        let col = u32::from(position.x) + 1;
        let _ = write!(self.out, "\x1b[{row};{col}H");
        self.cursor = position;
        self.next_cell = None;
    }

    fn set_pen(&mut self, pen: Pen) {
        if self.pen == Some(pen) {
            return;
        }
        // Always start from a reset so no attribute lingers.
        self.out.extend_from_slice(b"\x1b[0");
        for (flag, code) in [
            (Modifier::BOLD, "1"),
            (Modifier::DIM, "2"),
            (Modifier::ITALIC, "3"),
            (Modifier::UNDERLINED, "4"),
            (Modifier::SLOW_BLINK, "5"),
            (Modifier::RAPID_BLINK, "6"),
            (Modifier::REVERSED, "7"),
            (Modifier::HIDDEN, "8"),
            (Modifier::CROSSED_OUT, "9"),
        ] {
            if pen.modifier.contains(flag) {
                self.out.push(b';');
                self.out.extend_from_slice(code.as_bytes());
            }
        }
        push_color(&mut self.out, pen.fg, false);
        push_color(&mut self.out, pen.bg, true);
        self.out.push(b'm');
        self.pen = Some(pen);
    }

    /// Writes a cell's symbol, replacing control characters so that text from
    /// the entry list can never smuggle escape sequences to the terminal.
    fn put_symbol(&mut self, symbol: &str) {
        let mut buf = [0u8; 4];
        for c in symbol.chars() {
            let c = if c.is_control() { '?' } else { c };
            self.out
                .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }

    fn erase(&mut self, sequence: &[u8]) {
        // Erasing fills with the current background: reset it first.
        self.out.extend_from_slice(b"\x1b[0m");
        self.pen = Some(Pen::RESET);
        self.out.extend_from_slice(sequence);
    }
}

/// Appends `;code` for a colour (foreground or background).
fn push_color(out: &mut Vec<u8>, color: Color, background: bool) {
    let base: u8 = if background { 40 } else { 30 };
    let bright: u8 = if background { 100 } else { 90 };
    let code = match color {
        Color::Reset => return,
        Color::Black => base,
        Color::Red => base + 1,
        Color::Green => base + 2,
        Color::Yellow => base + 3,
        Color::Blue => base + 4,
        Color::Magenta => base + 5,
        Color::Cyan => base + 6,
        Color::Gray => base + 7,
        Color::DarkGray => bright,
        Color::LightRed => bright + 1,
        Color::LightGreen => bright + 2,
        Color::LightYellow => bright + 3,
        Color::LightBlue => bright + 4,
        Color::LightMagenta => bright + 5,
        Color::LightCyan => bright + 6,
        Color::White => bright + 7,
        Color::Indexed(i) => {
            let _ = write!(out, ";{};5;{i}", base + 8);
            return;
        }
        Color::Rgb(r, g, b) => {
            let _ = write!(out, ";{};2;{r};{g};{b}", base + 8);
            return;
        }
    };
    let _ = write!(out, ";{code}");
}

impl Backend for AnsiBackend {
    type Error = Infallible;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        for (x, y, cell) in content {
            if x >= self.size.width || y >= self.size.height {
                continue;
            }
            let position = Position { x, y };
            if self.next_cell != Some(position) {
                self.move_to(position);
            }
            self.set_pen(Pen {
                fg: cell.fg,
                bg: cell.bg,
                modifier: cell.modifier,
            });
            let symbol = cell.symbol();
            self.put_symbol(symbol);
            let simple =
                symbol.len() == 1 && symbol.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            self.next_cell = if simple {
                x.checked_add(1).map(|x| Position { x, y })
            } else {
                None
            };
            self.cursor = self.next_cell.unwrap_or(position);
        }
        Ok(())
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        if self.cursor_visible != Some(false) {
            self.out.extend_from_slice(b"\x1b[?25l");
            self.cursor_visible = Some(false);
        }
        Ok(())
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        if self.cursor_visible != Some(true) {
            self.out.extend_from_slice(b"\x1b[?25h");
            self.cursor_visible = Some(true);
        }
        Ok(())
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.move_to(position.into());
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.clear_region(ClearType::All)
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        let sequence: &[u8] = match clear_type {
            ClearType::All => b"\x1b[2J",
            ClearType::AfterCursor => b"\x1b[J",
            ClearType::BeforeCursor => b"\x1b[1J",
            ClearType::CurrentLine => b"\x1b[2K",
            ClearType::UntilNewLine => b"\x1b[K",
        };
        self.erase(sequence);
        Ok(())
    }

    fn size(&self) -> Result<Size, Self::Error> {
        Ok(self.size)
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        Ok(WindowSize {
            columns_rows: self.size,
            pixels: Size::new(0, 0),
        })
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Style;

    fn cell(symbol: &str, style: Style) -> Cell {
        let mut cell = Cell::default();
        cell.set_symbol(symbol).set_style(style);
        cell
    }

    fn draw(backend: &mut AnsiBackend, cells: &[(u16, u16, Cell)]) -> String {
        let Ok(()) = backend.draw(cells.iter().map(|(x, y, c)| (*x, *y, c)));
        String::from_utf8_lossy(&backend.take_output()).into_owned()
    }

    #[test]
    fn positions_absolutely_and_skips_moves_for_adjacent_cells() {
        let mut backend = AnsiBackend::new(Size::new(10, 3));
        let plain = Style::default();
        let out = draw(
            &mut backend,
            &[
                (0, 0, cell("a", plain)),
                (1, 0, cell("b", plain)),
                (5, 2, cell("c", plain)),
            ],
        );
        assert_eq!(out, "\x1b[1;1H\x1b[0mab\x1b[3;6Hc");
        assert!(!out.contains('\n') && !out.contains('\r'));
    }

    #[test]
    fn styles_become_sgr() {
        let mut backend = AnsiBackend::new(Size::new(10, 3));
        let style = Style::new()
            .fg(Color::Red)
            .bg(Color::Indexed(17))
            .add_modifier(Modifier::BOLD | Modifier::REVERSED);
        let out = draw(&mut backend, &[(0, 0, cell("x", style))]);
        assert_eq!(out, "\x1b[1;1H\x1b[0;1;7;31;48;5;17mx");
        let rgb = Style::new().fg(Color::Rgb(1, 2, 3)).bg(Color::White);
        let out = draw(&mut backend, &[(1, 0, cell("y", rgb))]);
        assert_eq!(out, "\x1b[0;38;2;1;2;3;107my");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut backend = AnsiBackend::new(Size::new(10, 3));
        let out = draw(&mut backend, &[(0, 0, cell("\x1b", Style::default()))]);
        assert!(out.ends_with('?'));
        assert_eq!(out.matches('\x1b').count(), 2);
    }

    #[test]
    fn wide_symbols_force_a_move_and_out_of_range_cells_are_dropped() {
        let mut backend = AnsiBackend::new(Size::new(4, 1));
        let plain = Style::default();
        let out = draw(
            &mut backend,
            &[
                (0, 0, cell("界", plain)),
                (2, 0, cell("a", plain)),
                (9, 9, cell("z", plain)),
            ],
        );
        assert_eq!(out, "\x1b[1;1H\x1b[0m界\x1b[1;3Ha");
    }

    #[test]
    fn cursor_visibility_is_only_sent_on_change() {
        let mut backend = AnsiBackend::new(Size::new(4, 1));
        let _ = backend.hide_cursor();
        let _ = backend.hide_cursor();
        let _ = backend.show_cursor();
        assert_eq!(backend.take_output(), b"\x1b[?25l\x1b[?25h");
    }

    #[test]
    fn clearing_resets_attributes_first() {
        let mut backend = AnsiBackend::new(Size::new(4, 1));
        let _ = backend.clear();
        assert_eq!(backend.take_output(), b"\x1b[0m\x1b[2J");
    }
}
