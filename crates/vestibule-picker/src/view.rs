//! Screen layout and drawing of the picker into a ratatui [`Buffer`].
//!
//! Everything here clips to the area it is given, so any screen size,
//! down to zero by zero, draws without panicking.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::{PickerEntry, State};

/// Shown instead of the list when the person may use no target at all.
pub(crate) const EMPTY_MESSAGE: &str =
    "You may not use any target yet; ask an administrator for a role.";
/// Shown instead of the list when the filter matches nothing.
pub(crate) const NO_MATCH_MESSAGE: &str = "no target matches";
const KEYS_HELP: &str = "↑/↓ move · Enter connect · Esc cancel";
const FILTER_LABEL: &str = "Filter: ";
const FILTER_HINT: &str = " type to narrow the list";
const MARKER_SELECTED: &str = "> ";
const MARKER_WIDTH: u16 = 2;
const COLUMN_GAP: u16 = 2;
/// Widest the target and login columns grow, so the description keeps room.
const MAX_TARGET_WIDTH: usize = 40;
const MAX_LOGIN_WIDTH: usize = 24;

const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);
const LABEL: Style = Style::new().add_modifier(Modifier::BOLD);
const HINT: Style = Style::new().add_modifier(Modifier::DIM);
const CARET: Style = Style::new().add_modifier(Modifier::REVERSED);
const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED.union(Modifier::BOLD));
const LOGIN: Style = Style::new().fg(Color::Cyan);
const DESCRIPTION: Style = Style::new().add_modifier(Modifier::DIM);
const FOOTER: Style = Style::new().add_modifier(Modifier::DIM);

/// Where each part of the screen goes. Parts that do not fit have a height
/// of zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Areas {
    pub(crate) title: Rect,
    pub(crate) filter: Rect,
    pub(crate) list: Rect,
    pub(crate) footer: Rect,
}

/// Splits the screen into title, filter, list and footer rows. On very short
/// screens the list keeps priority, then the filter, then the footer.
pub(crate) fn layout(area: Rect) -> Areas {
    let (title_h, filter_h, footer_h) = match area.height {
        0 | 1 => (0, 0, 0),
        2 => (0, 1, 0),
        3 => (0, 1, 1),
        _ => (1, 1, 1),
    };
    let list_h = area.height.saturating_sub(title_h + filter_h + footer_h);
    let mut y = area.y;
    let mut next = |height: u16| {
        let rect = Rect::new(area.x, y, area.width, height);
        y = y.saturating_add(height);
        rect
    };
    Areas {
        title: next(title_h),
        filter: next(filter_h),
        list: next(list_h),
        footer: next(footer_h),
    }
}

/// Display width of the widest target and login, capped.
pub(crate) fn column_widths(entries: &[PickerEntry]) -> (u16, u16) {
    let widest = |f: fn(&PickerEntry) -> &str, cap: usize| {
        let width = entries
            .iter()
            .map(|e| Span::raw(f(e)).width())
            .max()
            .unwrap_or(0)
            .min(cap);
        u16::try_from(width).unwrap_or(0)
    };
    (
        widest(|e| &e.target, MAX_TARGET_WIDTH),
        widest(|e| &e.login, MAX_LOGIN_WIDTH),
    )
}

/// Draws the whole picker into `buf`, adjusting the scroll offset so the
/// selection is visible.
pub(crate) fn draw(state: &mut State, area: Rect, buf: &mut Buffer) {
    let area = area.intersection(buf.area);
    let areas = layout(area);
    put(Line::styled(state.title.as_str(), TITLE), areas.title, buf);
    draw_filter(state, areas.filter, buf);
    draw_list(state, areas.list, buf);
    draw_footer(state, areas.footer, buf);
}

fn draw_filter(state: &State, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let label_width = put(Line::styled(FILTER_LABEL, LABEL), area, buf);
    let Some(text_width) = area.width.checked_sub(label_width).filter(|w| *w > 0) else {
        return;
    };
    let text_area = Rect::new(area.x + label_width, area.y, text_width, 1);
    let mut spans = vec![Span::raw(state.filter.as_str()), Span::styled(" ", CARET)];
    if state.filter.is_empty() {
        spans.push(Span::styled(FILTER_HINT, HINT));
    }
    // When the filter is wider than the room, show its end (where typing happens).
    let content_width = Span::raw(state.filter.as_str()).width().saturating_add(1);
    let scroll =
        u16::try_from(content_width.saturating_sub(usize::from(text_width))).unwrap_or(u16::MAX);
    Paragraph::new(Line::from(spans))
        .scroll((0, scroll))
        .render(text_area, buf);
}

fn draw_list(state: &mut State, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    if state.entries.is_empty() {
        Paragraph::new(EMPTY_MESSAGE)
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    if state.matches.is_empty() {
        put(Line::styled(NO_MATCH_MESSAGE, HINT), area, buf);
        return;
    }
    state.scroll_into_view(usize::from(area.height));

    let room = area.width.saturating_sub(MARKER_WIDTH);
    let target_w = state.target_width.min(room / 2);
    let after_target = room.saturating_sub(target_w + COLUMN_GAP);
    let login_w = state.login_width.min(after_target / 2);
    let login_x = MARKER_WIDTH + target_w + COLUMN_GAP;
    let description_x = login_x + login_w + if login_w > 0 { COLUMN_GAP } else { 0 };

    let rows = state
        .matches
        .iter()
        .enumerate()
        .skip(state.offset)
        .take(usize::from(area.height));
    for ((position, &index), y) in rows.zip(area.y..area.bottom()) {
        let Some(entry) = state.entries.get(index) else {
            continue;
        };
        let row = Rect::new(area.x, y, area.width, 1);
        let selected = position == state.selected;
        let (marker, target, login, description) = if selected {
            buf.set_style(row, SELECTED);
            (MARKER_SELECTED, SELECTED, SELECTED, SELECTED)
        } else {
            ("", Style::new(), LOGIN, DESCRIPTION)
        };
        cell(buf, row, 0, MARKER_WIDTH, marker, target);
        cell(buf, row, MARKER_WIDTH, target_w, &entry.target, target);
        cell(buf, row, login_x, login_w, &entry.login, login);
        cell(
            buf,
            row,
            description_x,
            u16::MAX,
            &entry.description,
            description,
        );
    }
}

/// Draws `text` in the part of `row` from column `x` that is `width` wide.
fn cell(buf: &mut Buffer, row: Rect, x: u16, width: u16, text: &str, style: Style) {
    let Some(room) = row.width.checked_sub(x) else {
        return;
    };
    let area = Rect::new(row.x.saturating_add(x), row.y, width.min(room), 1);
    put(Line::styled(text, style), area, buf);
}

/// Renders a one-line `line` at the start of `area`, touching only the cells
/// it covers, and returns the width used.
fn put(line: Line<'_>, area: Rect, buf: &mut Buffer) -> u16 {
    let width = u16::try_from(line.width())
        .unwrap_or(u16::MAX)
        .min(area.width);
    line.render(Rect { width, ..area }, buf);
    width
}

fn draw_footer(state: &State, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let count = Line::styled(
        format!("{} of {}", state.matches.len(), state.entries.len()),
        FOOTER,
    );
    let count_width = u16::try_from(count.width())
        .unwrap_or(u16::MAX)
        .min(area.width);
    let count_x = area.right().saturating_sub(count_width);
    put(count, Rect::new(count_x, area.y, count_width, 1), buf);
    let help_width = area.width.saturating_sub(count_width.saturating_add(1));
    put(
        Line::styled(KEYS_HELP, FOOTER),
        Rect::new(area.x, area.y, help_width, 1),
        buf,
    );
}
