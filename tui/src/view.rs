//! Drawing. Everything here reads `&App` and writes into a buffer; nothing changes state
//! except the scrollback's size, recorded for scrolling (a `Cell`), and the wrap caches.
//!
//! ```text
//! ┌ 我的会话 ─────┐┌ 1:李女士  2:Tom ──────────────────────────────┐
//! │▶ 李女士 VIP 2 ││ 10:31 李女士                                   │
//! │  web · 等 3m  ││   你好，我的快递到哪了？                       │
//! │  Tom          ││ 10:32 小王 ✓✓                                  │
//! │  app          ││   您好，正在为您查询。                         │
//! │               │└────────────────────────────────────────────────┘
//! │               │ 李女士 正在输入…                                  
//! │               │┌ 回复 ──────────────────────────────────────────┐
//! │               ││ 写回复…                                         │
//! └───────────────┘└────────────────────────────────────────────────┘
//!  ● online │ connected │ load 2/5 │ NORMAL │            ? help  : palette
//! ```

use kefu_proto::UnixMillis;
use kefu_proto::frame::{AuthorKind, Presence};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use crate::app::{App, Connection, Conversation, Overlay, PromptKind, ScrollArea};
use crate::command::Command;
use crate::keymap::Mode;
use crate::palette;
use crate::scrollback::{Delivery, Entry};
use crate::text::{truncate, width};

/// Width of the conversation list.
const SIDEBAR_WIDTH: u16 = 30;
/// Most rows the composer grows to (text rows, without its border).
const COMPOSER_MAX_ROWS: u16 = 6;

/// The whole screen, drawn from the app's state.
pub struct Workstation<'a> {
    /// What to draw.
    pub app: &'a App,
}

/// Where each part of the screen goes.
struct Areas {
    sidebar: Rect,
    tabs: Rect,
    scrollback: Rect,
    typing: Rect,
    composer: Rect,
    status: Rect,
}

fn areas(app: &App, area: Rect) -> Areas {
    let [main, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let sidebar_width = SIDEBAR_WIDTH.min(main.width / 3);
    let [sidebar, centre] = Layout::horizontal([Constraint::Length(sidebar_width), Constraint::Min(10)]).areas(main);
    let draft_rows = app.active().map_or(1, |c| c.draft.lines().len() as u16).clamp(1, COMPOSER_MAX_ROWS);
    let [tabs, scrollback, typing, composer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(draft_rows + 2),
    ])
    .areas(centre);
    Areas { sidebar, tabs, scrollback, typing, composer, status }
}

/// Draws the workstation and places the terminal cursor at the caret (the composer's,
/// or the palette's), so input methods open their window there.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    frame.render_widget(&Workstation { app }, area);
    if let Some(position) = caret(app, area) {
        frame.set_cursor_position(position);
    }
}

/// Where the caret is, if the agent is typing somewhere.
pub fn caret(app: &App, area: Rect) -> Option<Position> {
    match &app.overlay {
        Some(Overlay::Palette { query, .. }) => {
            let rect = palette_rect(area);
            Some(
                Position::new(rect.x + 3 + width(query) as u16, rect.y + 1)
                    .min(Position::new(rect.right() - 2, rect.y + 1)),
            )
        }
        Some(Overlay::Prompt { input, .. }) => {
            let rect = prompt_rect(area);
            Some(Position::new((rect.x + 3 + width(input) as u16).min(rect.right() - 2), rect.y + 2))
        }
        Some(Overlay::Help { .. }) => None,
        None if app.mode == Mode::Insert => {
            let conversation = app.active()?;
            let inner = Block::default().borders(Borders::ALL).inner(areas(app, area).composer);
            let cursor = conversation.draft.screen_cursor();
            let (top_row, top_col) = conversation.draft.scroll_offset();
            let x = inner.x + (cursor.col as u16).saturating_sub(top_col);
            let y = inner.y + (cursor.row as u16).saturating_sub(top_row);
            Some(Position::new(x.min(inner.right().saturating_sub(1)), y.min(inner.bottom().saturating_sub(1))))
        }
        None => None,
    }
}

impl Widget for &Workstation<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let a = areas(app, area);
        render_sidebar(app, a.sidebar, buf);
        render_tabs(app, a.tabs, buf);
        render_scrollback(app, a.scrollback, buf);
        render_typing(app, a.typing, buf);
        render_composer(app, a.composer, buf);
        render_status(app, a.status, buf);
        match &app.overlay {
            Some(Overlay::Help { scroll }) => render_help(app, *scroll, area, buf),
            Some(Overlay::Palette { query, selected }) => render_palette(app, query, *selected, area, buf),
            Some(Overlay::Prompt { kind, input }) => render_prompt(app, *kind, input, area, buf),
            None => {}
        }
    }
}

/// "45s", "3m", "1h05m".
pub fn format_wait(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// "HH:MM" in the local zone.
pub fn format_clock(at: UnixMillis, utc_offset_secs: i32) -> String {
    let secs = (at / 1000 + i64::from(utc_offset_secs)).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

fn pane<'a>(title: Line<'a>, focused: bool, app: &App) -> Block<'a> {
    let style = if focused { app.theme.focus } else { app.theme.dim };
    Block::default().borders(Borders::ALL).border_style(style).title(title)
}

fn render_sidebar(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.mode == Mode::Normal && app.overlay.is_none();
    let title = Line::from(format!(" 我的会话 Mine ({}) ", app.conversations.len()));
    let block = pane(title, focused, app);
    let inner = block.inner(area);
    block.render(area, buf);
    if app.conversations.is_empty() {
        let hint = match app.connection {
            Connection::Online if app.presence == Presence::Online => "等待新会话… waiting for customers",
            Connection::Online => "离开中 away: press p to go online",
            _ => "",
        };
        Paragraph::new(Line::styled(hint, app.theme.dim)).wrap(Default::default()).render(inner, buf);
        return;
    }
    let usable = inner.width as usize;
    // Two rows per conversation; keep the selection on screen.
    let per_page = (inner.height as usize / 2).max(1);
    let first = app.selected.saturating_sub(per_page - 1);
    for (row, (i, conversation)) in app.conversations.iter().enumerate().skip(first).take(per_page).enumerate() {
        let y = inner.y + (row * 2) as u16;
        let selected = i == app.selected;
        let open = app.tabs.contains(&conversation.id());
        let marker = if selected {
            "▶ "
        } else if open {
            "· "
        } else {
            "  "
        };
        let unread = conversation.unread();
        let badge = if unread > 0 { format!(" {unread}") } else { String::new() };
        let vip = if conversation.view.contact.vip { " VIP" } else { "" };
        let name_room = usable.saturating_sub(2 + vip.len() + badge.len());
        let name = truncate(&conversation.customer_name(), name_room);
        let pad = usable.saturating_sub(2 + width(&name) + vip.len() + badge.len());
        let base = if selected { app.theme.selected } else { Style::default() };
        let first_line = Line::from(vec![
            Span::styled(marker, base),
            Span::styled(name, base.patch(app.theme.customer)),
            Span::styled(vip, base.patch(app.theme.alert)),
            Span::styled(" ".repeat(pad), base),
            Span::styled(badge, base.patch(app.theme.alert)),
        ]);
        buf.set_line(inner.x, y, &first_line, inner.width);
        if y + 1 < inner.bottom() {
            let mut detail = vec![Span::styled(format!("  {}", conversation.view.channel.as_str()), app.theme.dim)];
            if let Some(since) = conversation.waiting_since() {
                let waited = app.now - since;
                let style = if waited >= 120_000 { app.theme.alert } else { app.theme.pending };
                detail.push(Span::styled(format!(" · 等 {}", format_wait(waited)), style));
            }
            if conversation.customer_typing(app.now) {
                detail.push(Span::styled(" · 输入中", app.theme.pending));
            }
            let state = conversation.view.state;
            if state != kefu_proto::frame::ConversationState::Assigned {
                detail.push(Span::styled(format!(" · {}", state.as_str()), app.theme.dim));
            }
            buf.set_line(inner.x, y + 1, &Line::from(detail), inner.width);
        }
    }
}

fn render_tabs(app: &App, area: Rect, buf: &mut Buffer) {
    if app.tabs.is_empty() {
        buf.set_line(area.x, area.y, &Line::styled(" 没有打开的会话 no tab open", app.theme.dim), area.width);
        return;
    }
    let mut spans = Vec::new();
    for (i, id) in app.tabs.iter().enumerate() {
        let Some(conversation) = app.conversation(*id) else { continue };
        let unread = conversation.unread();
        let mark = if unread > 0 { format!("({unread})") } else { String::new() };
        let label = format!(" {}:{}{mark} ", i + 1, truncate(&conversation.customer_name(), 12));
        let style = if i == app.active_tab { app.theme.selected.add_modifier(Modifier::BOLD) } else { app.theme.body };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw("│"));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

fn delivery_mark(app: &App, conversation: &Conversation, entry: &Entry) -> Span<'static> {
    match &entry.delivery {
        Delivery::Received => Span::raw(""),
        Delivery::Queued => Span::styled(" ⏳ 待发 queued", app.theme.pending),
        Delivery::Sending => Span::styled(" … 发送中 sending", app.theme.pending),
        Delivery::Acked if entry.seq.is_some_and(|s| s <= conversation.customer_read_seq) => {
            Span::styled(" ✓✓ 已读 read", app.theme.ok)
        }
        Delivery::Acked => Span::styled(" ✓ 已送达 sent", app.theme.ok),
        Delivery::Failed(reason) => Span::styled(format!(" ✗ 未发送 not sent: {reason}"), app.theme.alert),
    }
}

fn header_line(app: &App, conversation: &Conversation, entry: &Entry) -> Line<'static> {
    let name = match (&entry.author.name, entry.author.kind) {
        (Some(name), _) => name.clone(),
        (None, AuthorKind::Customer) => conversation.customer_name(),
        (None, AuthorKind::Agent) => "我 me".into(),
        (None, AuthorKind::Bot) => "机器人 bot".into(),
        (None, AuthorKind::System) => "系统 system".into(),
    };
    let name_style = match entry.author.kind {
        AuthorKind::Customer => app.theme.customer,
        AuthorKind::Agent => app.theme.me,
        AuthorKind::Bot | AuthorKind::System => app.theme.dim,
    };
    Line::from(vec![
        Span::styled(format_clock(entry.at, app.utc_offset_secs), app.theme.dim),
        Span::raw(" "),
        Span::styled(name, name_style),
        delivery_mark(app, conversation, entry),
    ])
}

fn render_scrollback(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(conversation) = app.active() else {
        let block = pane(Line::from(" kefu "), false, app);
        let inner = block.inner(area);
        block.render(area, buf);
        let lines = vec![
            Line::from("欢迎使用 kefu · Welcome to kefu"),
            Line::from(""),
            Line::styled("Conversations assigned to you appear on the left and open as tabs.", app.theme.dim),
            Line::styled("? shows every key; : (or Ctrl-P) finds any action by name.", app.theme.dim),
        ];
        Paragraph::new(lines).wrap(Default::default()).render(inner, buf);
        return;
    };
    let view = &conversation.view;
    let vip = if view.contact.vip { " · VIP" } else { "" };
    let title = Line::from(vec![
        Span::styled(format!(" {}", conversation.customer_name()), app.theme.customer),
        Span::raw(format!("{vip} · {} · #{} · {} ", view.channel.as_str(), view.id, view.state.as_str())),
    ]);
    let block = pane(title, false, app);
    let inner = block.inner(area);
    block.render(area, buf);
    app.scroll_area.set(ScrollArea { width: inner.width, height: inner.height });
    let entries = conversation.scrollback.entries();
    let mut y = inner.y;
    for (index, skip, take) in conversation.scrollback.visible(inner.width, inner.height as usize, &app.theme) {
        let entry = &entries[index];
        let body = entry.body_lines(inner.width, &app.theme);
        for row in skip..skip + take {
            if row == 0 {
                buf.set_line(inner.x, y, &header_line(app, conversation, entry), inner.width);
            } else if let Some(line) = body.get(row - 1) {
                buf.set_line(inner.x, y, line, inner.width);
            }
            y += 1;
        }
    }
    if conversation.scrollback.scroll != crate::scrollback::ScrollPos::Follow && inner.height > 0 {
        let hint = Line::styled(" ↓ 更多 more below (end) ", app.theme.selected);
        let x = inner.right().saturating_sub(hint.width() as u16);
        buf.set_line(x, inner.bottom() - 1, &hint, inner.width);
    }
}

fn render_typing(app: &App, area: Rect, buf: &mut Buffer) {
    if let Some(conversation) = app.active()
        && conversation.customer_typing(app.now)
    {
        let line = Line::styled(format!(" {} 正在输入… typing", conversation.customer_name()), app.theme.pending);
        buf.set_line(area.x, area.y, &line, area.width);
    }
}

fn render_composer(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.mode == Mode::Insert && app.overlay.is_none();
    let format = if app.markdown { "Markdown" } else { "text" };
    let title = Line::from(format!(" 回复 Reply ({format}) "));
    let block = pane(title, focused, app);
    let inner = block.inner(area);
    block.render(area, buf);
    match app.active() {
        Some(conversation) => (&conversation.draft).render(inner, buf),
        None => {
            buf.set_line(inner.x, inner.y, &Line::styled("—", app.theme.dim), inner.width);
        }
    }
}

fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    buf.set_style(area, theme.status_bar);
    let presence = match app.presence {
        Presence::Online => Span::styled(" ● 在线 online ", theme.status_bar.patch(theme.ok)),
        Presence::Away => Span::styled(" ◐ 离开 away ", theme.status_bar.patch(theme.pending)),
        Presence::Offline => Span::styled(" ○ 离线 offline ", theme.status_bar),
    };
    let connection = match &app.connection {
        Connection::Online => Span::styled("已连接 connected", theme.status_bar),
        Connection::Handshaking => Span::styled("握手 handshaking…", theme.status_bar.patch(theme.pending)),
        Connection::Connecting { attempt: 0 } => {
            Span::styled("连接中 connecting…", theme.status_bar.patch(theme.pending))
        }
        Connection::Connecting { attempt } => {
            Span::styled(format!("重连中 reconnecting (try {})…", attempt + 1), theme.status_bar.patch(theme.pending))
        }
        Connection::Retrying { reason, retry_at, .. } => Span::styled(
            format!("断开 disconnected: {reason}; retry in {}", format_wait((retry_at - app.now).max(0) + 999)),
            theme.status_bar.patch(theme.alert),
        ),
        Connection::LoggedOut(reason) => {
            Span::styled(format!("已登出 logged out: {reason} — run kefu login"), theme.status_bar.patch(theme.alert))
        }
    };
    let load = match &app.agent {
        Some(agent) => format!("负载 load {}/{}", app.load(), agent.max_concurrent),
        None => "负载 load -".into(),
    };
    let mode = match app.input_mode() {
        Mode::Normal => "NORMAL",
        Mode::Insert => "INSERT",
        Mode::Overlay => "MENU",
    };
    let sep = Span::styled(" │ ", theme.status_bar);
    let mut left = vec![presence, sep.clone(), connection, sep.clone(), Span::styled(load, theme.status_bar)];
    left.push(sep.clone());
    left.push(Span::styled(mode, theme.status_bar.add_modifier(Modifier::BOLD)));
    if !app.pending_keys().is_empty() {
        left.push(sep.clone());
        left.push(Span::styled(crate::keymap::format_sequence(app.pending_keys()), theme.status_bar));
    }
    let left = Line::from(left);
    buf.set_line(area.x, area.y, &left, area.width);
    let right = match &app.status {
        Some(status) => {
            let style = if status.is_error { theme.status_bar.patch(theme.alert) } else { theme.status_bar };
            Span::styled(format!("{} ", status.text), style)
        }
        None => {
            let help = app.keymap.keys_for(Mode::Normal, Command::Help).into_iter().next().unwrap_or_default();
            let palette = app.keymap.keys_for(Mode::Normal, Command::Palette).into_iter().next().unwrap_or_default();
            Span::styled(format!("{help} 帮助 help  {palette} 命令 palette "), theme.status_bar)
        }
    };
    let used = left.width() as u16;
    let room = area.width.saturating_sub(used + 1);
    let text = truncate(&right.content, room as usize);
    let x = area.right().saturating_sub(width(&text) as u16);
    buf.set_span(x.max(area.x + used + 1), area.y, &Span::styled(text, right.style), room);
}

fn centered(area: Rect, width_pct: u16, height: u16) -> Rect {
    let width = (area.width * width_pct / 100).max(20).min(area.width);
    let height = height.min(area.height);
    Rect::new(area.x + (area.width - width) / 2, area.y + (area.height - height) / 3, width, height)
}

fn render_help(app: &App, scroll: usize, area: Rect, buf: &mut Buffer) {
    let rect = centered(area, 80, area.height.saturating_sub(2));
    Clear.render(rect, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.focus)
        .title(" 帮助 Help — every key and action (esc closes) ");
    let inner = block.inner(rect);
    block.render(rect, buf);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for mode in Mode::ALL {
        let bindings = app.keymap.bindings(mode);
        lines.push(Line::styled(format!("{} mode", mode.name()), app.theme.focus.add_modifier(Modifier::BOLD)));
        for &command in Command::ALL {
            let keys: Vec<&str> = bindings.iter().filter(|(_, c)| *c == command).map(|(k, _)| k.as_str()).collect();
            if keys.is_empty() {
                continue;
            }
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<18}", truncate(&keys.join(" "), 18)), app.theme.me),
                Span::styled(format!("{:<20}", command.name()), app.theme.dim),
                Span::raw(command.doc()),
            ]));
        }
        lines.push(Line::from(""));
    }
    let unbound: Vec<&str> = Command::ALL
        .iter()
        .filter(|c| Mode::ALL.iter().all(|m| app.keymap.keys_for(*m, **c).is_empty()))
        .map(|c| c.name())
        .collect();
    if !unbound.is_empty() {
        lines.push(Line::styled(format!("no key (use the palette): {}", unbound.join(", ")), app.theme.dim));
    }
    let scroll = scroll.min(lines.len().saturating_sub(inner.height as usize));
    Paragraph::new(lines).scroll((scroll as u16, 0)).render(inner, buf);
}

fn palette_rect(area: Rect) -> Rect {
    centered(area, 70, 16)
}

fn render_palette(app: &App, query: &str, selected: usize, area: Rect, buf: &mut Buffer) {
    let rect = palette_rect(area);
    Clear.render(rect, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.focus)
        .title(" 命令 Palette — type to find an action, enter runs it ");
    let inner = block.inner(rect);
    block.render(rect, buf);
    buf.set_line(
        inner.x,
        inner.y,
        &Line::from(vec![Span::styled("> ", app.theme.focus), Span::raw(query)]),
        inner.width,
    );
    let matches = palette::matches(&app.keymap, query);
    let rows = inner.height.saturating_sub(1) as usize;
    let first = selected.saturating_sub(rows.saturating_sub(1));
    for (row, (i, entry)) in matches.iter().enumerate().skip(first).take(rows).enumerate() {
        let style = if i == selected { app.theme.selected } else { Style::default() };
        let keys = entry.keys.first().cloned().unwrap_or_default();
        let line = Line::from(vec![
            Span::styled(format!(" {:<19}", entry.command.name()), style.patch(app.theme.me)),
            Span::styled(format!("{keys:<9} "), style.patch(app.theme.dim)),
            Span::styled(entry.command.doc(), style),
        ]);
        buf.set_line(inner.x, inner.y + 1 + row as u16, &line, inner.width);
    }
    if matches.is_empty() {
        buf.set_line(inner.x, inner.y + 1, &Line::styled(" 没有匹配 no action matches", app.theme.dim), inner.width);
    }
}

fn prompt_rect(area: Rect) -> Rect {
    centered(area, 60, 5)
}

fn render_prompt(app: &App, kind: PromptKind, input: &str, area: Rect, buf: &mut Buffer) {
    let rect = prompt_rect(area);
    Clear.render(rect, buf);
    let (id, title, question) = match kind {
        PromptKind::Resolve(id) => (id, " 解决 Resolve ", "resolution code (enter: resolve · esc: cancel):"),
        PromptKind::Close(id) => (id, " 关闭 Close ", "close for good? (enter: close · esc: keep it)"),
    };
    let name = app.conversation(id).map(Conversation::customer_name).unwrap_or_default();
    let block = Block::default().borders(Borders::ALL).border_style(app.theme.focus).title(title);
    let inner = block.inner(rect);
    block.render(rect, buf);
    buf.set_line(inner.x, inner.y, &Line::from(format!("{name} #{id}: {question}")), inner.width);
    if matches!(kind, PromptKind::Resolve(_)) {
        buf.set_line(
            inner.x,
            inner.y + 1,
            &Line::from(vec![Span::styled("> ", app.theme.focus), Span::raw(input)]),
            inner.width,
        );
    }
}
