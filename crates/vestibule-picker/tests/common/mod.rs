//! Shared test fixtures, and a minimal terminal emulator for checking what
//! the picker sends.
//!
//! It understands exactly the sequences the picker is allowed to emit and
//! panics on anything else (including bare control characters such as `\n`),
//! so tests fail loudly if the output ever drifts.

#![allow(dead_code)]

use vestibule_picker::{Picker, PickerEntry, PickerOutcome};

/// Attributes of one cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attr {
    pub bold: bool,
    pub dim: bool,
    pub reverse: bool,
    /// Other SGR parameters in force (colours, italics...), as text.
    pub other: Vec<String>,
}

/// One cell of the emulated screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub attr: Attr,
}

impl Default for Cell {
    fn default() -> Self {
        Self {
            text: " ".to_string(),
            attr: Attr::default(),
        }
    }
}

/// The emulated screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub cols: usize,
    pub rows: usize,
    pub cells: Vec<Vec<Cell>>,
    row: usize,
    col: usize,
    attr: Attr,
}

impl Screen {
    pub fn new(cols: u16, rows: u16) -> Self {
        let (cols, rows) = (usize::from(cols), usize::from(rows));
        Self {
            cols,
            rows,
            cells: vec![vec![Cell::default(); cols]; rows],
            row: 0,
            col: 0,
            attr: Attr::default(),
        }
    }

    /// Applies bytes sent by the picker.
    pub fn apply(&mut self, bytes: &[u8]) {
        let text = std::str::from_utf8(bytes).expect("output is UTF-8");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                assert_eq!(chars.next(), Some('['), "only CSI sequences are sent");
                let mut params = String::new();
                let final_char = loop {
                    let c = chars.next().expect("complete CSI sequence");
                    if ('\x40'..='\x7e').contains(&c) {
                        break c;
                    }
                    params.push(c);
                };
                self.csi(&params, final_char);
            } else {
                assert!(!c.is_control(), "bare control character {c:?} in output");
                assert!(
                    self.row < self.rows && self.col < self.cols,
                    "write of {c:?} outside the screen at {},{}",
                    self.row,
                    self.col
                );
                self.cells[self.row][self.col] = Cell {
                    text: c.to_string(),
                    attr: self.attr.clone(),
                };
                self.col += 1;
            }
        }
    }

    fn csi(&mut self, params: &str, final_char: char) {
        let numbers = || params.split(';').map(|p| p.parse::<usize>().unwrap_or(0));
        match final_char {
            'H' => {
                let mut n = numbers();
                let row = n.next().unwrap_or(1).max(1);
                let col = n.next().unwrap_or(1).max(1);
                // Moving outside is harmless (terminals clamp); writing is checked.
                self.row = row - 1;
                self.col = col - 1;
            }
            'J' => {
                assert_eq!(params, "2", "only full clears are expected");
                self.cells = vec![vec![Cell::default(); self.cols]; self.rows];
            }
            'h' | 'l' if params.starts_with('?') => {}
            'm' => self.sgr(params),
            _ => panic!("unexpected sequence ESC [ {params} {final_char}"),
        }
    }

    fn sgr(&mut self, params: &str) {
        let mut parts = params.split(';');
        while let Some(p) = parts.next() {
            match p {
                "" | "0" => self.attr = Attr::default(),
                "1" => self.attr.bold = true,
                "2" => self.attr.dim = true,
                "7" => self.attr.reverse = true,
                "38" | "48" => {
                    let kind = parts.next().expect("colour kind");
                    let n = if kind == "5" { 1 } else { 3 };
                    let values: Vec<_> = parts.by_ref().take(n).collect();
                    self.attr
                        .other
                        .push(format!("{p};{kind};{}", values.join(";")));
                }
                other => self.attr.other.push(other.to_string()),
            }
        }
    }

    /// The text of one row, without trailing spaces.
    pub fn row_text(&self, row: usize) -> String {
        let text: String = self.cells[row].iter().map(|c| c.text.as_str()).collect();
        text.trim_end().to_string()
    }

    /// All rows, joined with newlines.
    pub fn text(&self) -> String {
        (0..self.rows)
            .map(|r| self.row_text(r))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Row and column where `needle` first appears.
    pub fn find(&self, needle: &str) -> Option<(usize, usize)> {
        (0..self.rows).find_map(|r| {
            let cells = &self.cells[r];
            (0..cells.len()).find_map(|c| {
                let rest: String = cells[c..].iter().map(|c| c.text.as_str()).collect();
                rest.starts_with(needle).then_some((r, c))
            })
        })
    }

    /// Text and attributes of every row, for readable comparisons: each row
    /// is followed by a line with one letter per cell (`r` reversed, `b`
    /// bold, `d` dim, `c` other attributes, `.` plain).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (r, row) in self.cells.iter().enumerate() {
            out.push_str(&self.row_text(r));
            out.push('\n');
            for cell in row {
                let a = &cell.attr;
                out.push(match () {
                    _ if a.reverse => 'r',
                    _ if a.bold => 'b',
                    _ if a.dim => 'd',
                    _ if !a.other.is_empty() => 'c',
                    _ => '.',
                });
            }
            out.push('\n');
        }
        out
    }

    pub fn attr_at(&self, row: usize, col: usize) -> &Attr {
        &self.cells[row][col].attr
    }
}

/// Three entries: web1/alice, web2/deploy, db1/postgres.
pub fn entries() -> Vec<PickerEntry> {
    vec![
        PickerEntry::new("web1", "alice", "10.0.0.1:22  env=prod"),
        PickerEntry::new("web2", "deploy", "10.0.0.2:22  env=staging"),
        PickerEntry::new("db1", "postgres", "10.0.0.5:22  env=prod"),
    ]
}

/// `n` entries host000, host001... all with login root.
pub fn many(n: usize) -> Vec<PickerEntry> {
    (0..n)
        .map(|i| PickerEntry::new(format!("host{i:03}"), "root", format!("10.1.0.{i}:22")))
        .collect()
}

pub fn picker(entries: Vec<PickerEntry>, cols: u16, rows: u16) -> Picker {
    Picker::new("Vestibule — alice".to_string(), entries, cols, rows)
}

/// Renders into a fresh emulated screen. Only meaningful for a picker's
/// first render (or one after a resize), which draws everything.
pub fn screen_of(p: &mut Picker, cols: u16, rows: u16) -> Screen {
    let mut screen = Screen::new(cols, rows);
    screen.apply(&p.render());
    screen
}

pub fn chosen_target(outcome: PickerOutcome) -> String {
    match outcome {
        PickerOutcome::Chosen(entry) => entry.target,
        other => panic!("expected a choice, got {other:?}"),
    }
}
