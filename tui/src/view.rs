//! Drawing. Everything here reads `&App` and writes into a buffer; nothing changes state
//! except the scrollback's size, recorded for scrolling (a `Cell`), and the wrap caches.
//!
//! ```text
//! ┌ 我的会话 ─────┐┌ 1:李女士  2:Tom ─────────────────┐┌ 客户 Customer ──┐
//! │▶ 李女士 VIP 2 ││ 10:31 李女士                      ││ 李女士 VIP      │
//! │  web · 等 3m  ││   你好，我的快递到哪了？          ││ web: w-8841     │
//! │  Tom          ││ 10:32 小王 ✓✓                     ││ 历史会话 (2)    │
//! │  app          ││   您好，正在为您查询。            ││ 分配原因 …      │
//! ├ 排队 Queue ───┤│ 10:33 小王 内部备注 note          ││                 │
//! │▶ 1 VIP 陈小姐 ││ ┃ 客户是老顾客                    ││                 │
//! │  2 Tom    2m  │└───────────────────────────────────┘└─────────────────┘
//! │               │ 李女士 正在输入…
//! │               │┌ 回复 ─────────────────────────────────────────────────┐
//! │               ││ 写回复…                                                │
//! └───────────────┘└───────────────────────────────────────────────────────┘
//!  ● online │ connected │ load 2/5 │ queue 2 │ NORMAL │      ? help  : palette
//! ```
//!
//! Left: my conversations above the queues I serve. Centre: tabs, scrollback, typing (or
//! canned-reply suggestions), composer. Right (toggled): the customer panel.
//!
//! Supervisors and admins may open the supervisor pane beside all of that (a split):
//! queues with their longest wait coloured against the alert limit, agents, the selected
//! agent's conversations, the alerts feed, and the pane's keys. My own work keeps the rest
//! of the width.
//!
//! ```text
//! ┌ 监控 Supervisor ─────────────────────────────┐
//! │队列 Queues       waiting   longest online cap│
//! │▶ presales              3  ■ 2m05s      1   3 │
//! │坐席 Agents       presence  load  reply convs │
//! │▶ 小王              online   2/3    41s     2 │
//! │会话 小王          #id         waiting       │
//! │▶ 李女士 VIP        #1            1m10s       │
//! │告警 Alerts (1 on)                            │
//! │▶  2m05s ■ 排队过久 long wait: …              │
//! │tab table · o observe · c take over · …       │
//! └──────────────────────────────────────────────┘
//! ```
//!
//! The knowledge base, the tickets and the report are boards over the screen: a query (or
//! filter) line, a list on the left, the selected entry on the right, the keys at the
//! bottom (the report: key figures beside its charts, the agents below). The article
//! editor takes the knowledge base's place: four one-line fields above the Markdown text,
//! a message row and the keys. The audit log (admins) is a table over the same area, one
//! event a line, newest on top, the highlighted event's details below it.
//!
//! A message whose personal data the relay masked for me says so in its header
//! (`已遮盖 masked`); once revealed, `已显示 revealed`.

use kefu_proto::UnixMillis;
use kefu_proto::api::{CannedScope, EventView, TicketDetails};
use kefu_proto::frame::{
    AuthorKind, ConversationState, MonitoredCustomer, Presence, TicketPriority, TicketStatus, TicketView,
};
use kefu_proto::report::Report;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Borders, Clear, Paragraph, Sparkline, Widget};

use crate::api::TicketScope;
use crate::app::{App, Connection, Conversation, Fetched, Overlay, PromptKind, RESOLUTION_CODES, ScrollArea};
use crate::article_editor::Field;
use crate::audit;
use crate::command::Command;
use crate::keymap::Mode;
use crate::palette;
use crate::reports::{self, ReportRange, ReportWindow};
use crate::scrollback::{Delivery, Entry, Masking};
use crate::supervisor::{self, Section, SlaBand, alert_kind_label};
use crate::text::{self, truncate, width};

/// Width of the conversation list.
const SIDEBAR_WIDTH: u16 = 30;
/// Most rows the composer grows to (text rows, without its border).
const COMPOSER_MAX_ROWS: u16 = 6;
/// Width of the customer panel.
const PANEL_WIDTH: u16 = 38;
/// Routing explanations the customer panel shows, newest first.
const PANEL_DECISIONS: usize = 3;
/// Width of the supervisor pane: this share of the screen (in twentieths)…
const SUPERVISOR_SHARE: u16 = 9;
/// …but at least this wide (if half the screen allows)…
const SUPERVISOR_MIN_WIDTH: u16 = 46;
/// …and at most this.
const SUPERVISOR_MAX_WIDTH: u16 = 72;

/// The whole screen, drawn from the app's state.
pub struct Workstation<'a> {
    /// What to draw.
    pub app: &'a App,
}

/// Where each part of the screen goes.
struct Areas {
    sidebar: Rect,
    queue: Rect,
    tabs: Rect,
    scrollback: Rect,
    typing: Rect,
    composer: Rect,
    panel: Option<Rect>,
    supervisor: Option<Rect>,
    status: Rect,
}

fn areas(app: &App, area: Rect) -> Areas {
    let [main, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    // The supervisor pane splits the screen; my own work keeps the rest, laid out as ever.
    let (main, supervisor) = if app.supervisor.open {
        let width =
            (main.width * SUPERVISOR_SHARE / 20).clamp(SUPERVISOR_MIN_WIDTH, SUPERVISOR_MAX_WIDTH).min(main.width / 2);
        let [work, pane] = Layout::horizontal([Constraint::Min(10), Constraint::Length(width)]).areas(main);
        (work, Some(pane))
    } else {
        (main, None)
    };
    let sidebar_width = SIDEBAR_WIDTH.min(main.width / 3);
    let [left, rest] = Layout::horizontal([Constraint::Length(sidebar_width), Constraint::Min(10)]).areas(main);
    // The queue pane grows with the line, up to two fifths of the column.
    let listed = app.queued().len() as u16;
    let more = u16::from(app.queue_total() as usize > app.queued().len());
    let queue_rows = (listed + more).max(1).saturating_add(2).min(left.height * 2 / 5).max(3);
    let [sidebar, queue] = Layout::vertical([Constraint::Min(4), Constraint::Length(queue_rows)]).areas(left);
    let (centre, panel) = if app.panel {
        let width = PANEL_WIDTH.min(rest.width / 2);
        let [centre, panel] = Layout::horizontal([Constraint::Min(10), Constraint::Length(width)]).areas(rest);
        (centre, Some(panel))
    } else {
        (rest, None)
    };
    let draft_rows = app.active().map_or(1, |c| c.draft.lines().len() as u16).clamp(1, COMPOSER_MAX_ROWS);
    let [tabs, scrollback, typing, composer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(draft_rows + 2),
    ])
    .areas(centre);
    Areas { sidebar, queue, tabs, scrollback, typing, composer, panel, supervisor, status }
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
        Some(Overlay::Palette { query, .. } | Overlay::Canned { query, .. } | Overlay::Transfer { query, .. }) => {
            let rect = palette_rect(area);
            Some(
                Position::new(rect.x + 3 + width(query) as u16, rect.y + 1)
                    .min(Position::new(rect.right() - 2, rect.y + 1)),
            )
        }
        Some(Overlay::Prompt {
            kind:
                PromptKind::DeleteCanned(_)
                | PromptKind::DeleteArticle { .. }
                | PromptKind::DiscardArticle
                | PromptKind::RevealMaskedData(_),
            ..
        }) => None,
        Some(Overlay::ArticleEditor) => {
            let editor = app.article_editor.as_ref()?;
            let rect = editor_areas(area).field(editor.focus);
            let textarea = editor.area(editor.focus);
            let cursor = textarea.screen_cursor();
            let (top_row, top_col) = textarea.scroll_offset();
            let x = rect.x + (cursor.col as u16).saturating_sub(top_col);
            let y = rect.y + (cursor.row as u16).saturating_sub(top_row);
            Some(Position::new(x.min(rect.right().saturating_sub(1)), y.min(rect.bottom().saturating_sub(1))))
        }
        Some(Overlay::Prompt { input, .. }) => {
            let rect = prompt_rect(area);
            Some(Position::new((rect.x + 3 + width(input) as u16).min(rect.right() - 2), rect.y + 2))
        }
        Some(Overlay::Knowledge | Overlay::Tickets | Overlay::Audit) => {
            let query = match app.overlay {
                Some(Overlay::Knowledge) => &app.kb.query,
                Some(Overlay::Tickets) => &app.tickets.filter,
                _ => &app.audit.filter,
            };
            let rect = board_rect(area);
            Some(
                Position::new(rect.x + 3 + width(query) as u16, rect.y + 1)
                    .min(Position::new(rect.right() - 2, rect.y + 1)),
            )
        }
        Some(Overlay::Help { .. } | Overlay::Report) => None,
        None if app.mode == Mode::Insert => {
            let conversation = app.active().filter(|c| c.is_writable())?;
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
        render_queue(app, a.queue, buf);
        render_tabs(app, a.tabs, buf);
        render_scrollback(app, a.scrollback, buf);
        render_typing(app, a.typing, buf);
        render_composer(app, a.composer, buf);
        if let Some(panel) = a.panel {
            render_panel(app, panel, buf);
        }
        if let Some(pane) = a.supervisor {
            render_supervisor(app, pane, buf);
        }
        render_status(app, a.status, buf);
        match &app.overlay {
            Some(Overlay::Help { scroll }) => render_help(app, *scroll, area, buf),
            Some(Overlay::Palette { query, selected }) => render_palette(app, query, *selected, area, buf),
            Some(Overlay::Prompt { kind, input }) => {
                // A question about a ticket or an article keeps what it is about in view
                // behind it.
                match kind.opened_from() {
                    Some(Overlay::Tickets) => render_tickets(app, area, buf),
                    Some(Overlay::Knowledge) => render_knowledge(app, area, buf),
                    Some(Overlay::ArticleEditor) => render_article_editor(app, area, buf),
                    _ => {}
                }
                render_prompt(app, kind, input, area, buf)
            }
            Some(Overlay::Canned { query, selected }) => render_canned(app, query, *selected, area, buf),
            Some(Overlay::Transfer { conversation, query, selected }) => {
                render_transfer(app, *conversation, query, *selected, area, buf)
            }
            Some(Overlay::Knowledge) => render_knowledge(app, area, buf),
            Some(Overlay::ArticleEditor) => render_article_editor(app, area, buf),
            Some(Overlay::Tickets) => render_tickets(app, area, buf),
            Some(Overlay::Report) => render_report(app, area, buf),
            Some(Overlay::Audit) => render_audit(app, area, buf),
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

/// "2025-11-20" in the local zone.
pub fn format_date(at: UnixMillis, utc_offset_secs: i32) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let days = (at / 1000 + i64::from(utc_offset_secs)).div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn pane<'a>(title: Line<'a>, focused: bool, app: &App) -> Block<'a> {
    let style = if focused { app.theme.focus } else { app.theme.dim };
    Block::default().borders(Borders::ALL).border_style(style).title(title)
}

fn render_sidebar(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.input_mode() == Mode::Normal;
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
            if conversation.observed {
                detail.push(Span::styled(" · 旁听 observing", app.theme.note));
            } else if conversation.detached.is_some() {
                detail.push(Span::styled(" · 已移走 moved away", app.theme.dim));
            } else if state != ConversationState::Assigned {
                detail.push(Span::styled(format!(" · {}", state.as_str()), app.theme.dim));
            }
            if let Some(intent) = &conversation.view.intent {
                detail.push(Span::styled(format!(" · 意图 {intent}"), app.theme.bot));
            }
            buf.set_line(inner.x, y + 1, &Line::from(detail), inner.width);
        }
    }
}

fn render_queue(app: &App, area: Rect, buf: &mut Buffer) {
    let title = Line::from(format!(" 排队 Queue ({}) ", app.queue_total()));
    let block = pane(title, false, app);
    let inner = block.inner(area);
    block.render(area, buf);
    let queued = app.queued();
    if queued.is_empty() {
        buf.set_line(inner.x, inner.y, &Line::styled("无人排队 nobody waiting", app.theme.dim), inner.width);
        return;
    }
    let more = app.queue_total() as usize - queued.len().min(app.queue_total() as usize);
    let rows = (inner.height as usize).saturating_sub(usize::from(more > 0)).max(1);
    let selected = app.queue_selected.min(queued.len() - 1);
    let first = selected.saturating_sub(rows - 1);
    let usable = inner.width as usize;
    for (row, (i, (group, position, view))) in queued.iter().enumerate().skip(first).take(rows).enumerate() {
        let marker = if i == selected { "▶" } else { " " };
        let lead = format!("{marker}{position:>2} ");
        let mark = if view.contact.vip {
            "VIP "
        } else if view.priority == 0 {
            // Returned to the queue: served before everyone else.
            "↩ "
        } else {
            ""
        };
        let waited = app.now - view.queued_at.unwrap_or(view.created_at);
        let wait_style = if waited >= 120_000 { app.theme.alert } else { app.theme.pending };
        let right = format!(" {} {}", truncate(group.unwrap_or("any"), 9), format_wait(waited));
        let name_room = usable.saturating_sub(width(&lead) + width(mark) + width(&right));
        let name = truncate(&crate::app::customer_name(view), name_room);
        let pad = usable.saturating_sub(width(&lead) + width(mark) + width(&name) + width(&right));
        let base = if i == selected { app.theme.focus } else { Style::default() };
        let line = Line::from(vec![
            Span::styled(lead, base),
            Span::styled(mark, app.theme.alert),
            Span::styled(name, app.theme.customer),
            Span::raw(" ".repeat(pad)),
            Span::styled(right, wait_style),
        ]);
        buf.set_line(inner.x, inner.y + row as u16, &line, inner.width);
    }
    if more > 0 {
        let line = Line::styled(format!("  … +{more} more"), app.theme.dim);
        buf.set_line(inner.x, inner.bottom() - 1, &line, inner.width);
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
        // What I only observe says so on its tab.
        let observing = if conversation.observed { "旁听 " } else { "" };
        let label = format!(" {}:{observing}{}{mark} ", i + 1, truncate(&conversation.customer_name(), 12));
        let style = if i == app.active_tab { app.theme.selected.add_modifier(Modifier::BOLD) } else { app.theme.body };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw("│"));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

fn delivery_mark(app: &App, conversation: &Conversation, entry: &Entry) -> Span<'static> {
    match &entry.delivery {
        Delivery::Received => Span::raw(""),
        // A note is stored for agents; it never reaches (nor is read by) the customer.
        Delivery::Acked if entry.internal => Span::styled(" ✓ 已保存 saved", app.theme.ok),
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
        // The bot is always named as such, whatever name it signs with.
        (_, AuthorKind::Bot) => "机器人 bot".into(),
        (Some(name), _) => name.clone(),
        (None, AuthorKind::Customer) => conversation.customer_name(),
        (None, AuthorKind::Agent) => "我 me".into(),
        (None, AuthorKind::System) => "系统 system".into(),
    };
    let name_style = match entry.author.kind {
        AuthorKind::Customer => app.theme.customer,
        AuthorKind::Agent => app.theme.me,
        AuthorKind::Bot => app.theme.bot,
        AuthorKind::System => app.theme.dim,
    };
    let mut spans = vec![
        Span::styled(format_clock(entry.at, app.utc_offset_secs), app.theme.dim),
        Span::raw(" "),
        Span::styled(name, name_style),
    ];
    if entry.internal {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(" 内部备注 note ", app.theme.note.add_modifier(Modifier::REVERSED)));
    }
    if let Some(via) = &entry.via {
        spans.push(Span::styled(format!(" via {via}"), app.theme.dim));
    }
    match entry.masking {
        Masking::Clear => {}
        Masking::Masked => spans.push(Span::styled(" 已遮盖 masked", app.theme.dim)),
        Masking::Revealed => spans.push(Span::styled(" 已显示 revealed", app.theme.pending)),
    }
    spans.push(delivery_mark(app, conversation, entry));
    Line::from(spans)
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
    let group = view.group.as_deref().map(|g| format!(" · {g}")).unwrap_or_default();
    let observed_state;
    let state = if conversation.observed {
        let holder = view.assignee.as_ref().map_or_else(|| view.state.as_str().to_string(), |a| a.name.clone());
        observed_state = format!("旁听 observing · {holder}");
        observed_state.as_str()
    } else if conversation.detached.is_some() {
        "已移走 moved away"
    } else {
        view.state.as_str()
    };
    let mut title = vec![
        Span::styled(format!(" {}", conversation.customer_name()), app.theme.customer),
        Span::raw(format!("{vip} · {}{group} · #{} · {state} ", view.channel.as_str(), view.id)),
    ];
    if let Some(intent) = &view.intent {
        title.push(Span::styled(format!("· 意图 intent: {intent} "), app.theme.bot));
    }
    let title = Line::from(title);
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
    let Some(conversation) = app.active() else { return };
    // While a /shortcut is typed, this row suggests canned replies.
    let draft = conversation.draft_text();
    if app.mode == Mode::Insert
        && let Some(word) = crate::canned::shortcut_in(&draft)
    {
        let mut spans = vec![Span::styled(" ", app.theme.dim)];
        match &app.canned {
            None => spans.push(Span::styled("快捷回复加载中 canned replies loading…", app.theme.dim)),
            Some(_) => {
                let matches = app.canned_matches(word);
                if matches.is_empty() {
                    spans.push(Span::styled(format!("没有 /{word} no canned reply matches"), app.theme.dim));
                }
                for reply in matches.iter().take(4) {
                    spans.push(Span::styled(format!("/{}", reply.shortcut), app.theme.me));
                    spans.push(Span::styled(format!(" {}  ", truncate(&reply.title, 14)), app.theme.dim));
                }
                if !matches.is_empty() {
                    spans.push(Span::styled("tab 展开 expand", app.theme.pending));
                }
            }
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
        return;
    }
    if conversation.customer_typing(app.now) {
        let line = Line::styled(format!(" {} 正在输入… typing", conversation.customer_name()), app.theme.pending);
        buf.set_line(area.x, area.y, &line, area.width);
    }
}

fn render_composer(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.mode == Mode::Insert && app.overlay.is_none();
    let format = if app.markdown { "Markdown" } else { "text" };
    let active = app.active();
    let note = active.is_some_and(|c| c.note_mode);
    let block = match active {
        Some(c) if c.observed => Block::default()
            .borders(Borders::ALL)
            .border_style(app.theme.note)
            .title(Line::styled(" 悄悄话 Whisper — only agents see it ", app.theme.note)),
        Some(c) if !c.is_mine() => pane(Line::from(" 只读 Read-only — not yours any more "), false, app),
        _ if note => Block::default()
            .borders(Borders::ALL)
            .border_style(app.theme.note)
            .title(Line::styled(" 内部备注 Private note — 客户看不到 the customer never sees it ", app.theme.note)),
        _ => pane(Line::from(format!(" 回复 Reply ({format}) ")), focused, app),
    };
    let inner = block.inner(area);
    block.render(area, buf);
    match active {
        Some(conversation) if !conversation.is_writable() => {
            let why = conversation.detached.clone().unwrap_or_else(|| "closed".into());
            buf.set_line(
                inner.x,
                inner.y,
                &Line::styled(format!("{why}; x closes the tab"), app.theme.dim),
                inner.width,
            );
        }
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
        Mode::Editor => "EDIT",
        Mode::Supervisor => "MONITOR",
    };
    let sep = Span::styled(" │ ", theme.status_bar);
    let mut left = vec![presence, sep.clone(), connection, sep.clone(), Span::styled(load, theme.status_bar)];
    let waiting = app.queue_total();
    if waiting > 0 {
        left.push(sep.clone());
        left.push(Span::styled(format!("排队 queue {waiting}"), theme.status_bar.patch(theme.pending)));
    }
    let alerts = app.supervisor.alerts_on();
    if alerts > 0 {
        left.push(sep.clone());
        left.push(Span::styled(format!("告警 alerts {alerts}"), theme.status_bar.patch(theme.alert)));
    }
    if let Some(open) = app.tickets.open_count() {
        left.push(sep.clone());
        let style = if open > 0 { theme.status_bar.patch(theme.pending) } else { theme.status_bar };
        left.push(Span::styled(format!("工单 tickets {open}"), style));
    }
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

/// Blanks `rect` for an overlay. A wide (Chinese) character just left of it would hide
/// the overlay's left border (its second column is the border's cell), so it goes too.
fn clear(rect: Rect, buf: &mut Buffer) {
    Clear.render(rect, buf);
    if rect.x == 0 {
        return;
    }
    for y in rect.top()..rect.bottom() {
        if let Some(cell) = buf.cell_mut(Position::new(rect.x - 1, y))
            && width(cell.symbol()) > 1
        {
            cell.set_symbol(" ");
        }
    }
}

fn centered(area: Rect, width_pct: u16, height: u16) -> Rect {
    let width = (area.width * width_pct / 100).max(20).min(area.width);
    let height = height.min(area.height);
    Rect::new(area.x + (area.width - width) / 2, area.y + (area.height - height) / 3, width, height)
}

fn render_help(app: &App, scroll: usize, area: Rect, buf: &mut Buffer) {
    let rect = centered(area, 80, area.height.saturating_sub(2));
    clear(rect, buf);
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
    clear(rect, buf);
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

/// The end of `s` in at most `max` columns, with `…` when cut: a long answer shows where
/// the caret is.
fn tail(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut used = 1;
    for c in s.chars().rev() {
        let w = width(c.encode_utf8(&mut [0; 4]));
        if used + w > max {
            break;
        }
        used += w;
        kept.push(c);
    }
    std::iter::once('…').chain(kept.into_iter().rev()).collect()
}

fn prompt_rect(area: Rect) -> Rect {
    centered(area, 60, 5)
}

fn render_prompt(app: &App, kind: &PromptKind, input: &str, area: Rect, buf: &mut Buffer) {
    let rect = prompt_rect(area);
    clear(rect, buf);
    let conversation = |id| match app.customer_of(id) {
        Some(name) => format!("{name} #{id}"),
        None => format!("#{id}"),
    };
    // The codes' list is long: up and down walk it (the first is the default).
    let codes = format!("↑↓ {} codes", RESOLUTION_CODES.len());
    let (title, question, hint) = match kind {
        PromptKind::Resolve(id) => (
            " 解决 Resolve ",
            format!("{}: resolution code", conversation(*id)),
            format!("{codes} · enter: resolve · esc: cancel"),
        ),
        PromptKind::Close(id) => (
            " 关闭 Close ",
            format!("{}: close for good, with resolution code", conversation(*id)),
            format!("{codes} · enter: close · esc: keep it"),
        ),
        PromptKind::TransferNote(id, to) => (
            " 转接 Transfer ",
            format!("{} → {}: a note for them (optional)", conversation(*id), app.target_label(to)),
            "enter: transfer · esc: cancel".to_string(),
        ),
        PromptKind::AttachFile(id) => (
            " 发送文件 Send a file ",
            format!("{}: the file's path (images, PDF or text, at most 10 MiB)", conversation(*id)),
            "enter: upload and send · esc: cancel".to_string(),
        ),
        PromptKind::NewCanned(_) => (
            " 保存快捷回复 New canned reply ",
            "shortcut and title, e.g. `refund 退款说明`".to_string(),
            "the composer's text becomes the reply, yours only · enter: save".to_string(),
        ),
        PromptKind::TicketStatus(id) => (
            " 工单状态 Ticket status ",
            format!("{}: new status", ticket_label(app, *id)),
            "↑↓ open pending solved closed · enter: change · esc: back".to_string(),
        ),
        PromptKind::TicketNote(id) => (
            " 工单备注 Ticket note ",
            format!("{}: a note for whoever works on it", ticket_label(app, *id)),
            "enter: add · esc: back".to_string(),
        ),
        PromptKind::NewTicket { conversation: id, priority } => (
            " 新工单 New ticket ",
            format!("{}: the ticket's subject", conversation(*id)),
            format!("优先级 priority: {} (↑↓) · enter: create · esc: cancel", priority.as_str()),
        ),
        PromptKind::AgentCapacity { agent, name } => {
            let now = app.supervisor.agents().iter().find(|a| a.agent.id == *agent).map(|a| (a.load, a.capacity));
            let now = now.map(|(load, capacity)| format!(" (now {capacity}, holding {load})")).unwrap_or_default();
            (
                " 容量 Capacity ",
                format!("{name}: conversations at once{now}"),
                "a whole number; 0 takes no new ones · enter: change · esc: cancel".to_string(),
            )
        }
        PromptKind::DeleteArticle { title, .. } => (
            " 删除文章 Delete article ",
            format!("delete 《{title}》 from the knowledge base?"),
            "enter: delete it for good · esc: keep it".to_string(),
        ),
        PromptKind::RevealMaskedData(id) => {
            let masked = app.conversation(*id).map_or(0, |c| c.scrollback.masked());
            let plural = if masked == 1 { "" } else { "s" };
            (
                " 显示个人信息 Reveal personal data ",
                format!("{}: show the personal data masked in {masked} message{plural}?", conversation(*id)),
                "enter: reveal · esc: keep it masked".to_string(),
            )
        }
        PromptKind::DiscardArticle => (
            " 放弃修改 Discard changes ",
            "the article has unsaved changes: leave without saving them?".to_string(),
            "enter: discard them · esc: keep editing".to_string(),
        ),
        PromptKind::DeleteCanned(id) => {
            let shortcut =
                app.canned.iter().flatten().find(|r| r.id == *id).map(|r| r.shortcut.clone()).unwrap_or_default();
            (
                " 删除 Delete ",
                format!("delete your canned reply /{shortcut} for good?"),
                "enter: delete · esc: keep it".to_string(),
            )
        }
    };
    let block = Block::default().borders(Borders::ALL).border_style(app.theme.focus).title(title);
    let inner = block.inner(rect);
    block.render(rect, buf);
    buf.set_line(inner.x, inner.y, &Line::from(question), inner.width);
    if let PromptKind::RevealMaskedData(_) = kind {
        let note = "the relay records who revealed it in the audit log";
        buf.set_line(inner.x, inner.y + 1, &Line::styled(note, app.theme.pending), inner.width);
    } else if !matches!(
        kind,
        PromptKind::DeleteCanned(_) | PromptKind::DeleteArticle { .. } | PromptKind::DiscardArticle
    ) {
        buf.set_line(
            inner.x,
            inner.y + 1,
            &Line::from(vec![Span::styled("> ", app.theme.focus), Span::raw(tail(input, inner.width as usize - 3))]),
            inner.width,
        );
    }
    buf.set_line(inner.x, inner.y + 2, &Line::styled(hint, app.theme.dim), inner.width);
}

/// A list to pick from, with a query line, as the palette draws it.
struct Picker<'a> {
    /// The box's title.
    title: &'a str,
    /// What was typed.
    query: &'a str,
    /// One line per choice.
    rows: Vec<Line<'a>>,
    /// The highlighted choice.
    selected: usize,
    /// Lines at the bottom (preview, hints).
    footer: Vec<Line<'a>>,
}

fn render_picker(app: &App, picker: Picker<'_>, area: Rect, buf: &mut Buffer) {
    let Picker { title, query, rows, selected, footer } = picker;
    let rect = palette_rect(area);
    clear(rect, buf);
    let block = Block::default().borders(Borders::ALL).border_style(app.theme.focus).title(title.to_string());
    let inner = block.inner(rect);
    block.render(rect, buf);
    buf.set_line(
        inner.x,
        inner.y,
        &Line::from(vec![Span::styled("> ", app.theme.focus), Span::raw(query.to_string())]),
        inner.width,
    );
    let footer_rows = footer.len() as u16;
    let list_rows = inner.height.saturating_sub(1 + footer_rows) as usize;
    let first = selected.saturating_sub(list_rows.saturating_sub(1));
    for (row, (i, line)) in rows.iter().enumerate().skip(first).take(list_rows).enumerate() {
        let y = inner.y + 1 + row as u16;
        if i == selected {
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), app.theme.selected);
        }
        buf.set_line(inner.x, y, line, inner.width);
    }
    for (i, line) in footer.iter().enumerate() {
        buf.set_line(inner.x, inner.bottom() - footer_rows + i as u16, line, inner.width);
    }
}

fn render_canned(app: &App, query: &str, selected: usize, area: Rect, buf: &mut Buffer) {
    let matches = app.canned_matches(query);
    let rows: Vec<Line<'_>> = matches
        .iter()
        .map(|r| {
            let scope = match r.scope {
                CannedScope::Workspace => "共享 shared",
                CannedScope::Personal => "我的 mine",
            };
            Line::from(vec![
                Span::styled(format!(" /{:<12} ", r.shortcut), app.theme.me),
                Span::styled(format!("{:<10} ", scope), app.theme.dim),
                Span::raw(r.title.clone()),
            ])
        })
        .collect();
    let mut footer = Vec::new();
    match (&app.canned, matches.get(selected)) {
        (None, _) => footer.push(Line::styled(" 加载中 loading canned replies…", app.theme.dim)),
        (Some(_), None) => footer.push(Line::styled(" 没有匹配 nothing matches", app.theme.dim)),
        (Some(_), Some(reply)) => {
            // A preview as it will be inserted, variables filled in.
            let customer = app.active().and_then(|c| c.view.contact.name.clone());
            let agent = app.agent.as_ref().map(|a| a.name.as_str());
            let text = crate::canned::expand(&reply.body, customer.as_deref(), agent);
            let preview: String = text.lines().next().unwrap_or_default().to_string();
            footer.push(Line::styled(format!(" » {preview}"), app.theme.body));
        }
    }
    let delete = app.keymap.keys_for(Mode::Overlay, Command::DeleteCanned).into_iter().next().unwrap_or_default();
    footer.push(Line::styled(format!(" enter 插入 insert · {delete} 删除我的 delete mine · esc"), app.theme.dim));
    let title = " 快捷回复 Canned replies — type to find ";
    render_picker(app, Picker { title, query, rows, selected, footer }, area, buf);
}

fn render_transfer(
    app: &App,
    conversation: kefu_proto::ConversationId,
    query: &str,
    selected: usize,
    area: Rect,
    buf: &mut Buffer,
) {
    let targets = app.transfer_targets(query);
    let rows: Vec<Line<'_>> = targets
        .iter()
        .map(|t| {
            Line::from(vec![
                Span::styled(format!(" {} ", t.label), app.theme.me),
                Span::styled(t.detail.clone(), app.theme.dim),
            ])
        })
        .collect();
    let name = app.customer_label(conversation);
    let mut footer = Vec::new();
    if app.agents.is_none() || app.groups.is_none() {
        footer.push(Line::styled(" 加载中 loading agents and groups…", app.theme.dim));
    }
    footer.push(Line::styled(" enter: next, a note · the agent must be online with room", app.theme.dim));
    let title = format!(" 转接 Transfer {name} — to an agent or a group ");
    render_picker(app, Picker { title: &title, query, rows, selected, footer }, area, buf);
}

fn render_panel(app: &App, area: Rect, buf: &mut Buffer) {
    let block = pane(Line::from(" 客户 Customer "), false, app);
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(conversation) = app.active() else {
        buf.set_line(inner.x, inner.y, &Line::styled("no conversation open", app.theme.dim), inner.width);
        return;
    };
    let theme = &app.theme;
    let heading = |text: &str| Line::styled(text.to_string(), theme.focus.add_modifier(Modifier::BOLD));
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(intent) = &conversation.view.intent {
        lines.push(Line::styled(format!("意图 intent: {intent}"), theme.bot));
    }
    match app.contacts.get(&conversation.view.contact.id) {
        None | Some(Fetched::Loading) => lines.push(Line::styled("加载中 loading…", theme.dim)),
        Some(Fetched::Failed(why)) => lines.push(Line::styled(format!("cannot load: {why}"), theme.alert)),
        Some(Fetched::Ready(contact)) => {
            let name = contact.name.clone().unwrap_or_else(|| conversation.customer_name());
            let mut first = vec![Span::styled(name, theme.customer)];
            if contact.vip {
                first.push(Span::styled(" VIP", theme.alert));
            }
            first.push(Span::styled(format!(" #{}", contact.id), theme.dim));
            lines.push(Line::from(first));
            if let Some(id) = &contact.customer_id {
                lines.push(Line::styled(format!("客户号 customer id: {id}"), theme.dim));
            }
            for channel in &contact.channels {
                lines.push(Line::styled(format!("{}: {}", channel.kind.as_str(), channel.external_id), theme.dim));
            }
            lines.push(Line::from(""));
            lines.push(heading(&format!("历史会话 Conversations ({})", contact.conversations.len())));
            for c in &contact.conversations {
                let now = if c.id == conversation.id() { "← now" } else { "" };
                let mut spans = vec![
                    Span::styled(format!("{} ", format_date(c.created_at, app.utc_offset_secs)), theme.dim),
                    Span::raw(format!("{} ", c.state.as_str())),
                ];
                if let Some(resolution) = &c.resolution {
                    spans.push(Span::styled(format!("{resolution} "), theme.ok));
                }
                spans.push(Span::styled(now, theme.focus));
                lines.push(Line::from(spans));
                let agent = c.agent.as_deref().unwrap_or("—");
                let detail = format!("  {} · {agent} · {} msgs", c.channel.as_str(), c.messages);
                lines.push(Line::styled(detail, theme.dim));
            }
        }
    }
    lines.push(Line::from(""));
    lines.push(heading("分配原因 Why it came to you"));
    match app.routing.get(&conversation.id()) {
        None | Some(Fetched::Loading) => lines.push(Line::styled("加载中 loading…", theme.dim)),
        Some(Fetched::Failed(why)) => lines.push(Line::styled(format!("cannot load: {why}"), theme.alert)),
        Some(Fetched::Ready(history)) if history.decisions.is_empty() => {
            lines.push(Line::styled("no routing decision recorded", theme.dim));
        }
        Some(Fetched::Ready(history)) => {
            for decision in history.decisions.iter().rev().take(PANEL_DECISIONS) {
                let kind = decision.kind.strip_prefix("routing.").unwrap_or(&decision.kind);
                lines.push(Line::styled(
                    format!("{} {kind}", format_clock(decision.at, app.utc_offset_secs)),
                    theme.dim,
                ));
                lines.push(Line::from(decision.explanation.clone()));
            }
        }
    }
    Paragraph::new(lines).wrap(Default::default()).render(inner, buf);
}

/// The rectangle of the knowledge-base and tickets boards.
fn board_rect(area: Rect) -> Rect {
    // Below the top row and above the status bar, which stays in view.
    let width = (area.width * 94 / 100).max(20).min(area.width);
    let height = area.height.saturating_sub(2);
    Rect::new(area.x + (area.width - width) / 2, area.y + area.height.min(1), width, height)
}

/// The first key bound to `command` in the overlay, for the boards' hints.
fn overlay_key(app: &App, command: Command) -> String {
    app.keymap.keys_for(Mode::Overlay, command).into_iter().next().unwrap_or_else(|| ":".into())
}

/// A board: a query line with a note on its right, a list beside a detail, and hints.
struct Board<'a> {
    /// The box's title.
    title: Line<'a>,
    /// What was typed.
    query: &'a str,
    /// Shown at the right of the query line (searching, counts, scope).
    query_note: Line<'a>,
    /// The list's rows (two per entry).
    rows: Vec<[Line<'a>; 2]>,
    /// Shown instead of the list when it is empty.
    empty: Line<'a>,
    /// The highlighted entry.
    selected: usize,
    /// The detail of the highlighted entry, unwrapped.
    detail: Vec<text::StyledLine>,
    /// Rows the detail is scrolled.
    scroll: usize,
    /// The keys.
    hints: Line<'a>,
}

fn render_board(app: &App, board: Board<'_>, area: Rect, buf: &mut Buffer) {
    let rect = board_rect(area);
    clear(rect, buf);
    let block = Block::default().borders(Borders::ALL).border_style(app.theme.focus).title(board.title);
    let inner = block.inner(rect);
    block.render(rect, buf);
    if inner.height < 4 {
        return;
    }
    let note_width = board.query_note.width() as u16;
    buf.set_line(
        inner.x,
        inner.y,
        &Line::from(vec![Span::styled("> ", app.theme.focus), Span::raw(board.query.to_string())]),
        inner.width.saturating_sub(note_width + 1),
    );
    buf.set_line(inner.right().saturating_sub(note_width), inner.y, &board.query_note, note_width);
    let body = Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 2);
    buf.set_line(inner.x, inner.bottom() - 1, &board.hints, inner.width);
    let [list, detail] = Layout::horizontal([Constraint::Percentage(42), Constraint::Min(10)]).areas(body);
    // The list, two rows per entry, the highlight kept on screen.
    if board.rows.is_empty() {
        Paragraph::new(board.empty).wrap(Default::default()).render(list, buf);
    } else {
        let per_page = (list.height as usize / 2).max(1);
        let first = board.selected.saturating_sub(per_page - 1);
        for (row, (i, lines)) in board.rows.iter().enumerate().skip(first).take(per_page).enumerate() {
            let y = list.y + (row * 2) as u16;
            if i == board.selected {
                buf.set_style(Rect::new(list.x, y, list.width, 2.min(list.bottom() - y)), app.theme.selected);
            }
            buf.set_line(list.x, y, &lines[0], list.width);
            if y + 1 < list.bottom() {
                buf.set_line(list.x, y + 1, &lines[1], list.width);
            }
        }
    }
    // The detail, behind a rule.
    let detail_block = Block::default().borders(Borders::LEFT).border_style(app.theme.dim);
    let detail_inner = detail_block.inner(detail);
    detail_block.render(detail, buf);
    let text_area =
        Rect::new(detail_inner.x + 1, detail_inner.y, detail_inner.width.saturating_sub(1), detail_inner.height);
    let lines = text::wrap(&board.detail, text_area.width, "");
    let scroll = board.scroll.min(lines.len().saturating_sub(text_area.height as usize));
    for (row, line) in lines.iter().skip(scroll).take(text_area.height as usize).enumerate() {
        buf.set_line(text_area.x, text_area.y + row as u16, line, text_area.width);
    }
    if lines.len() > scroll + text_area.height as usize && text_area.height > 0 {
        let more = Line::styled(" ↓ pgdn ", app.theme.selected);
        let x = text_area.right().saturating_sub(more.width() as u16);
        buf.set_line(x, text_area.bottom() - 1, &more, text_area.width);
    }
}

fn render_knowledge(app: &App, area: Rect, buf: &mut Buffer) {
    let kb = &app.kb;
    let theme = &app.theme;
    let query_note = if kb.searching() {
        Line::styled("搜索中 searching… ", theme.pending)
    } else {
        match &kb.results {
            Some(Fetched::Ready(hits)) => Line::styled(format!("{} 条结果 results ", hits.len()), theme.dim),
            _ => Line::from(""),
        }
    };
    let rows: Vec<[Line<'_>; 2]> = kb
        .hits()
        .iter()
        .map(|hit| {
            [
                Line::from(vec![
                    Span::styled(format!(" {}", hit.title), Style::default().add_modifier(Modifier::BOLD)),
                    Span::styled(format!(" {}", hit.language), theme.dim),
                ]),
                Line::styled(format!("   {}", hit.snippet.replace('\n', " ")), theme.dim),
            ]
        })
        .collect();
    let empty = match &kb.results {
        None => Line::styled(" 输入问题搜索 type a question: 退货运费 · return shipping", theme.dim),
        Some(Fetched::Loading) => Line::styled(" 搜索中 searching…", theme.dim),
        Some(Fetched::Failed(why)) => Line::styled(format!(" 搜索失败 search failed: {why}"), theme.alert),
        Some(Fetched::Ready(_)) => Line::styled(" 没有找到 nothing found — try other words", theme.dim),
    };
    let mut detail: Vec<text::StyledLine> = Vec::new();
    if let Some(hit) = kb.selected_hit() {
        let heading = theme.markdown.heading;
        match kb.selected_article() {
            Some(Fetched::Ready(article)) => {
                detail.push(vec![(article.title.clone(), heading)]);
                let mut meta = format!("kb:{} · {}", article.slug, article.language);
                if !article.intents.is_empty() {
                    meta.push_str(&format!(" · 意图 {}", article.intents.join(", ")));
                }
                if !article.tags.is_empty() {
                    meta.push_str(&format!(" · 标签 {}", article.tags.join(", ")));
                }
                meta.push_str(&format!(" · {}", format_date(article.updated_at, app.utc_offset_secs)));
                detail.push(vec![(meta, theme.dim)]);
                detail.push(Vec::new());
                detail.extend(text::markdown(&article.body, theme.body, &theme.markdown));
            }
            Some(Fetched::Failed(why)) => {
                detail.push(vec![(hit.title.clone(), heading)]);
                detail.push(vec![(format!("cannot load the article: {why}"), theme.alert)]);
            }
            None | Some(Fetched::Loading) => {
                detail.push(vec![(hit.title.clone(), heading)]);
                detail.push(vec![(hit.snippet.clone(), theme.body)]);
                detail.push(vec![("加载中 loading the article…".to_string(), theme.dim)]);
            }
        }
    }
    let hints = Line::styled(
        format!(
            " {} 插入摘要 snippet · {} 全文 article · {} 链接 link · pgup/pgdn 预览 preview · esc",
            overlay_key(app, Command::Accept),
            overlay_key(app, Command::KbInsertArticle),
            overlay_key(app, Command::KbInsertLink),
        ),
        theme.dim,
    );
    // Writing is offered in the title to those who may; agents are told why if they try.
    let title = if app.can_write_kb() {
        Line::from(format!(
            " 知识库 Knowledge base — {} 新建 new · {} 编辑 edit · {} 删除 delete ",
            overlay_key(app, Command::KbNewArticle),
            overlay_key(app, Command::KbEditArticle),
            overlay_key(app, Command::KbDeleteArticle),
        ))
    } else {
        Line::from(" 知识库 Knowledge base — 中文或英文搜索 search in Chinese or English ")
    };
    let board = Board {
        title,
        query: &kb.query,
        query_note,
        rows,
        empty,
        selected: kb.selected,
        detail,
        scroll: kb.preview_scroll,
        hints,
    };
    render_board(app, board, area, buf);
}

/// Where the article editor's parts go.
struct EditorAreas {
    /// The whole box.
    rect: Rect,
    /// The one-line fields' labels and inputs, in [`Field::ALL`] order (body excluded).
    lines: [(Rect, Rect); 4],
    /// The body's label row.
    body_label: Rect,
    /// The body's text.
    body: Rect,
    /// A row for the error or the save in progress.
    message: Rect,
    /// The keys.
    hints: Rect,
}

impl EditorAreas {
    /// Where `field`'s text goes.
    fn field(&self, field: Field) -> Rect {
        match Field::ALL.iter().position(|f| *f == field) {
            Some(i) if i < self.lines.len() => self.lines[i].1,
            _ => self.body,
        }
    }
}

/// Width of the editor's field labels.
const EDITOR_LABEL_WIDTH: u16 = 16;

fn editor_areas(area: Rect) -> EditorAreas {
    let rect = board_rect(area);
    let inner = Block::default().borders(Borders::ALL).inner(rect);
    let row = |y: u16| Rect::new(inner.x, y.min(inner.bottom().saturating_sub(1)), inner.width, 1);
    let input_x = inner.x + EDITOR_LABEL_WIDTH.min(inner.width);
    let lines = std::array::from_fn(|i| {
        let y = (inner.y + i as u16).min(inner.bottom().saturating_sub(1));
        (
            Rect::new(inner.x, y, EDITOR_LABEL_WIDTH.min(inner.width), 1),
            Rect::new(input_x, y, inner.right().saturating_sub(input_x + 1), 1),
        )
    });
    let body_top = inner.y + 5;
    let body_height = inner.bottom().saturating_sub(body_top + 2);
    EditorAreas {
        rect,
        lines,
        body_label: row(inner.y + 4),
        body: Rect::new(inner.x + 1, body_top.min(inner.bottom()), inner.width.saturating_sub(2), body_height),
        message: row(inner.bottom().saturating_sub(2)),
        hints: row(inner.bottom().saturating_sub(1)),
    }
}

fn render_article_editor(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(editor) = &app.article_editor else { return };
    let theme = &app.theme;
    let a = editor_areas(area);
    clear(a.rect, buf);
    let mut title = match &editor.editing {
        Some(editing) => format!(" 编辑文章 Edit article kb:{} ", editing.slug),
        None => " 新建文章 New article ".to_string(),
    };
    if editor.is_dirty() {
        title.push_str("— 未保存 unsaved ");
    }
    let block = Block::default().borders(Borders::ALL).border_style(theme.focus).title(title);
    let inner = block.inner(a.rect);
    block.render(a.rect, buf);
    if inner.height < 8 {
        return;
    }
    let label_style = |field: Field| {
        if editor.focus == field { theme.focus.add_modifier(Modifier::BOLD) } else { theme.dim }
    };
    let marker = |field: Field| if editor.focus == field { "▶" } else { " " };
    for (i, (label, input)) in a.lines.iter().enumerate() {
        let field = Field::ALL[i];
        let line = Line::styled(format!("{}{}", marker(field), field.label()), label_style(field));
        buf.set_line(label.x, label.y, &line, label.width);
        editor.area(field).render(*input, buf);
    }
    let body_label = Line::from(vec![
        Span::styled(format!("{}{}", marker(Field::Body), Field::Body.label()), label_style(Field::Body)),
        Span::styled(format!(" {}", "─".repeat(a.body_label.width as usize)), theme.dim),
    ]);
    buf.set_line(a.body_label.x, a.body_label.y, &body_label, a.body_label.width);
    editor.area(Field::Body).render(a.body, buf);
    let message = match (&editor.error, editor.saving) {
        (Some(error), _) => {
            let about = error.field.map(|f| format!("{}: ", f.label())).unwrap_or_default();
            Line::styled(format!(" ⚠ {about}{}", error.message), theme.alert)
        }
        (None, true) => Line::styled(" 保存中 saving…", theme.pending),
        (None, false) => match &editor.editing {
            Some(_) => Line::styled(" saving replaces the article; its link (kb:…) stays the same", theme.dim),
            None => Line::styled(" the link name (kb:…) is made from the title when saved", theme.dim),
        },
    };
    buf.set_line(a.message.x, a.message.y, &message, a.message.width);
    // Named keys first (esc before C-c).
    let key = |command: Command| {
        let keys = app.keymap.keys_for(Mode::Editor, command);
        keys.iter().find(|k| k.len() > 1 && !k.contains('-')).or(keys.first()).cloned().unwrap_or_else(|| ":".into())
    };
    let hints = Line::styled(
        format!(
            " {} 保存 save · {}/{} 切换 field · {} 取消 cancel · 正文 text: enter 换行 new line",
            key(Command::KbSaveArticle),
            key(Command::NextField),
            key(Command::PrevField),
            key(Command::Cancel),
        ),
        theme.dim,
    );
    buf.set_line(a.hints.x, a.hints.y, &hints, a.hints.width);
}

fn status_style(app: &App, status: TicketStatus) -> Style {
    match status {
        TicketStatus::Open => app.theme.alert,
        TicketStatus::Pending => app.theme.pending,
        TicketStatus::Solved => app.theme.ok,
        TicketStatus::Closed => app.theme.dim,
    }
}

fn priority_style(app: &App, priority: TicketPriority) -> Style {
    match priority {
        TicketPriority::Urgent | TicketPriority::High => app.theme.alert,
        TicketPriority::Normal | TicketPriority::Low => app.theme.dim,
    }
}

/// "#12 退款未到账" for prompts about a ticket.
fn ticket_label(app: &App, id: i64) -> String {
    let subject = app
        .tickets
        .mine
        .iter()
        .flatten()
        .chain(match &app.tickets.list {
            Some(Fetched::Ready(list)) => list.iter(),
            _ => [].iter(),
        })
        .find(|t| t.id == id)
        .map(|t| truncate(&t.subject, 30))
        .unwrap_or_default();
    format!("工单 #{id} {subject}")
}

fn ticket_rows<'a>(app: &App, ticket: &TicketView) -> [Line<'a>; 2] {
    let assignee = ticket.assignee.as_ref().map_or("未分配 unassigned".to_string(), |a| a.name.clone());
    [
        Line::from(vec![
            Span::styled(format!(" #{} ", ticket.id), app.theme.dim),
            Span::styled(ticket.subject.clone(), Style::default().add_modifier(Modifier::BOLD)),
        ]),
        Line::from(vec![
            Span::raw("   "),
            Span::styled(ticket.status.as_str(), status_style(app, ticket.status)),
            Span::styled(" · ", app.theme.dim),
            Span::styled(ticket.priority.as_str(), priority_style(app, ticket.priority)),
            Span::styled(
                format!(" · {assignee} · {}", format_date(ticket.updated_at, app.utc_offset_secs)),
                app.theme.dim,
            ),
        ]),
    ]
}

/// An agent by name when known (me, or from the directory), else by id.
fn agent_name(app: &App, id: i64) -> String {
    app.agent
        .iter()
        .chain(app.agents.iter().flatten())
        .find(|a| a.id.0 == id)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| format!("agent #{id}"))
}

/// A history entry's data in a line: `status=pending, priority=high`.
fn event_data(data: &serde_json::Value) -> String {
    match data {
        serde_json::Value::Object(map) => map
            .iter()
            // The ticket's own id is already in the heading.
            .filter(|(k, v)| !v.is_null() && k.as_str() != "ticket_id")
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={}", truncate(s, 40)),
                other => format!("{k}={}", truncate(&other.to_string(), 40)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => truncate(&other.to_string(), 60),
    }
}

fn ticket_detail(app: &App, ticket: &TicketView, details: Option<&Fetched<TicketDetails>>) -> Vec<text::StyledLine> {
    let theme = &app.theme;
    let when =
        |at: UnixMillis| format!("{} {}", format_date(at, app.utc_offset_secs), format_clock(at, app.utc_offset_secs));
    // The details' copy is the freshest when it is held.
    let ticket = match details {
        Some(Fetched::Ready(d)) => &d.ticket,
        _ => ticket,
    };
    let heading = |text: &str| vec![(text.to_string(), theme.focus.add_modifier(Modifier::BOLD))];
    let mut lines: Vec<text::StyledLine> =
        vec![vec![(format!("#{} {}", ticket.id, ticket.subject), theme.markdown.heading)]];
    lines.push(vec![
        ("状态 status: ".to_string(), theme.dim),
        (ticket.status.as_str().to_string(), status_style(app, ticket.status)),
        (" · 优先级 priority: ".to_string(), theme.dim),
        (ticket.priority.as_str().to_string(), priority_style(app, ticket.priority)),
    ]);
    let assignee = ticket.assignee.as_ref().map_or("未分配 unassigned".to_string(), |a| a.name.clone());
    let mut who = format!("负责人 assignee: {assignee}");
    if let Some(group) = &ticket.group {
        who.push_str(&format!(" · 组 group: {group}"));
    }
    lines.push(vec![(who, theme.dim)]);
    let mut origin = Vec::new();
    if let Some(conversation) = ticket.conversation_id {
        let held = if app.conversation(conversation).is_some() { " (open here)" } else { "" };
        origin.push(format!("会话 conversation #{conversation}{held}"));
    }
    if let Some(contact) = ticket.contact_id {
        origin.push(format!("客户 contact #{contact}"));
    }
    if !origin.is_empty() {
        lines.push(vec![(origin.join(" · "), theme.dim)]);
    }
    lines.push(vec![(
        format!(
            "创建 created {} by {} · 更新 updated {}",
            when(ticket.created_at),
            ticket.created_by,
            when(ticket.updated_at)
        ),
        theme.dim,
    )]);
    lines.push(Vec::new());
    lines.push(heading("描述 Description"));
    lines.extend(text::plain(&ticket.description, theme.body));
    match details {
        None | Some(Fetched::Loading) => {
            lines.push(Vec::new());
            lines.push(vec![("加载中 loading notes and history…".to_string(), theme.dim)]);
        }
        Some(Fetched::Failed(why)) => {
            lines.push(Vec::new());
            lines.push(vec![(format!("cannot load notes and history: {why}"), theme.alert)]);
        }
        Some(Fetched::Ready(d)) => {
            lines.push(Vec::new());
            lines.push(heading(&format!("备注 Notes ({})", d.notes.len())));
            for note in &d.notes {
                let author = note.author.clone().unwrap_or_else(|| "系统 system".into());
                lines.push(vec![(format!("{} ", when(note.at)), theme.dim), (author, theme.me)]);
                for line in text::plain(&note.body, theme.body) {
                    let mut indented = vec![("  ".to_string(), theme.body)];
                    indented.extend(line);
                    lines.push(indented);
                }
            }
            lines.push(Vec::new());
            lines.push(heading(&format!("历史 History ({})", d.history.len())));
            for event in &d.history {
                let kind = event.kind.strip_prefix("ticket.").unwrap_or(&event.kind);
                let actor = match event.actor_id {
                    Some(id) if event.actor_kind == "agent" => agent_name(app, id),
                    Some(id) => format!("{} #{id}", event.actor_kind),
                    None => event.actor_kind.clone(),
                };
                let data = event_data(&event.data);
                let mut line = vec![(format!("{} ", when(event.at)), theme.dim), (kind.to_string(), theme.body)];
                line.push((format!(" · {actor}"), theme.dim));
                if !data.is_empty() {
                    line.push((format!(" · {data}"), theme.dim));
                }
                lines.push(line);
            }
        }
    }
    lines
}

fn render_tickets(app: &App, area: Rect, buf: &mut Buffer) {
    let board = &app.tickets;
    let theme = &app.theme;
    let shown = board.shown();
    let (mine, open) = match board.scope {
        TicketScope::Mine => (theme.selected, theme.dim),
        TicketScope::Open => (theme.dim, theme.selected),
    };
    let query_note = Line::from(vec![
        Span::styled(format!("{} ", overlay_key(app, Command::TicketScope)), theme.dim),
        Span::styled(" 我的 mine ", mine),
        Span::raw(" "),
        Span::styled(" 全部待处理 all open ", open),
        Span::raw(" "),
    ]);
    let rows: Vec<[Line<'_>; 2]> = shown.iter().map(|t| ticket_rows(app, t)).collect();
    let empty = match &board.list {
        None | Some(Fetched::Loading) => Line::styled(" 加载中 loading tickets…", theme.dim),
        Some(Fetched::Failed(why)) => Line::styled(format!(" cannot load tickets: {why}"), theme.alert),
        Some(Fetched::Ready(list)) if !list.is_empty() => {
            Line::styled(" 没有匹配 nothing matches the filter", theme.dim)
        }
        Some(Fetched::Ready(_)) => match board.scope {
            TicketScope::Mine => Line::styled(" 没有你的工单 no tickets of yours", theme.dim),
            TicketScope::Open => Line::styled(" 没有待处理的工单 no open tickets", theme.dim),
        },
    };
    let selected = board.selected_index();
    let detail = match shown.get(selected) {
        Some(ticket) => ticket_detail(app, ticket, board.details.get(&ticket.id)),
        None => Vec::new(),
    };
    let hints = Line::styled(
        format!(
            " {} 去会话 conversation · {} 状态 status · {} 备注 note · {} 我的/全部 mine/all · esc",
            overlay_key(app, Command::Accept),
            overlay_key(app, Command::TicketStatus),
            overlay_key(app, Command::TicketNote),
            overlay_key(app, Command::TicketScope),
        ),
        theme.dim,
    );
    let count = shown.len();
    let title = Line::from(format!(" 工单 Tickets ({count}) — type to filter "));
    let board =
        Board { title, query: &board.filter, query_note, rows, empty, selected, detail, scroll: board.scroll, hints };
    render_board(app, board, area, buf);
}

/// "11-21 10:31:05" in the local zone: an audit log's time, to the second.
fn audit_time(at: UnixMillis, utc_offset_secs: i32) -> String {
    let date = format_date(at, utc_offset_secs);
    let secs = (at / 1000 + i64::from(utc_offset_secs)).rem_euclid(60);
    format!("{} {}:{secs:02}", &date[5..], format_clock(at, utc_offset_secs))
}

/// Who did an event: an agent by name when known (me, or from the directory).
fn audit_actor(app: &App, event: &EventView) -> String {
    audit::actor(event, |id| {
        app.agent.iter().chain(app.agents.iter().flatten()).find(|a| a.id.0 == id).map(|a| a.name.clone())
    })
}

/// The conversation an event is about: `#12 李女士` when its customer is known.
fn audit_conversation(app: &App, event: &EventView) -> String {
    match event.conversation_id {
        Some(id) => match app.customer_of(id) {
            Some(name) => format!("#{id} {name}"),
            None => format!("#{id}"),
        },
        None => "—".into(),
    }
}

/// Widths of the audit log's columns (time, kind, actor, conversation); the data takes
/// the rest.
const AUDIT_COLUMNS: [usize; 4] = [14, 22, 12, 18];

fn render_audit(app: &App, area: Rect, buf: &mut Buffer) {
    let log = &app.audit;
    let theme = &app.theme;
    let rect = board_rect(area);
    clear(rect, buf);
    let shown = log.shown();
    let title = format!(
        " 审计日志 Audit log ({}) — newest on top, {} at most; type a kind prefix (alert., pii.) to filter ",
        shown.len(),
        audit::KEEP
    );
    let block = Block::default().borders(Borders::ALL).border_style(theme.focus).title(title);
    let inner = block.inner(rect);
    block.render(rect, buf);
    if inner.height < 8 {
        return;
    }
    let [query, heading, list, rule, detail, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(inner);
    // The filter, and how fresh the list is.
    let note = if log.loading() {
        Line::styled("加载中 loading… ", theme.pending)
    } else if let Some(why) = &log.error {
        Line::styled(format!("✗ {} ", truncate(why, 50)), theme.alert)
    } else if let Some(at) = log.refreshed_at {
        let refresh = overlay_key(app, Command::AuditRefresh);
        Line::styled(
            format!("更新 updated {} · {refresh} 刷新 refresh ", audit_time(at, app.utc_offset_secs)),
            theme.dim,
        )
    } else {
        Line::default()
    };
    let note_width = note.width() as u16;
    buf.set_line(
        query.x,
        query.y,
        &Line::from(vec![Span::styled("> ", theme.focus), Span::raw(log.filter.clone())]),
        query.width.saturating_sub(note_width + 1),
    );
    buf.set_line(query.right().saturating_sub(note_width), query.y, &note, note_width);
    let [time, kind, actor, conversation] = AUDIT_COLUMNS;
    let columns = |cells: [String; 5]| {
        let [a, b, c, d, e] = cells;
        format!(
            "{} {} {} {} {e}",
            cell(&a, time, false),
            cell(&b, kind, false),
            cell(&c, actor, false),
            cell(&d, conversation, false)
        )
    };
    let names = ["时间 time", "类型 kind", "操作者 actor", "会话 conversation", "详情 data"].map(String::from);
    buf.set_line(
        heading.x,
        heading.y,
        &Line::styled(columns(names), theme.dim.add_modifier(Modifier::BOLD)),
        heading.width,
    );
    // The events, the highlight kept on screen.
    if shown.is_empty() {
        let empty = if !log.loaded() && log.loading() {
            Line::styled(" 加载中 loading the audit log…", theme.dim)
        } else if let (false, Some(why)) = (log.loaded(), &log.error) {
            Line::styled(format!(" cannot load the audit log: {why}"), theme.alert)
        } else if log.prefix().is_empty() {
            Line::styled(" 日志为空 no events yet", theme.dim)
        } else {
            Line::styled(format!(" 没有匹配 no event of a kind starting with \"{}\"", log.prefix()), theme.dim)
        };
        buf.set_line(list.x, list.y, &empty, list.width);
    }
    let selected = log.selected_index();
    let rows = list.height as usize;
    let first = selected.saturating_sub(rows.saturating_sub(1));
    for (row, (i, event)) in shown.iter().enumerate().skip(first).take(rows).enumerate() {
        let y = list.y + row as u16;
        let line = columns([
            audit_time(event.at, app.utc_offset_secs),
            event.kind.clone(),
            audit_actor(app, event),
            audit_conversation(app, event),
            audit::summary(&event.data),
        ]);
        let style = if i == selected { theme.selected } else { theme.body };
        buf.set_style(Rect::new(list.x, y, list.width, 1), style);
        buf.set_line(list.x, y, &Line::styled(line, style), list.width);
    }
    if shown.len() > first + rows {
        let more = Line::styled(format!(" ↓ {} older ", shown.len() - first - rows), theme.selected);
        let x = list.right().saturating_sub(more.width() as u16);
        buf.set_line(x, list.bottom() - 1, &more, list.width);
    }
    // The highlighted event in full.
    buf.set_line(rule.x, rule.y, &Line::styled("─".repeat(rule.width as usize), theme.dim), rule.width);
    if let Some(event) = shown.get(selected) {
        let when =
            format!("{} {}", format_date(event.at, app.utc_offset_secs), audit_time(event.at, app.utc_offset_secs));
        let who = match event.actor_id {
            Some(id) => format!("{} ({}#{id})", audit_actor(app, event), event.actor_kind),
            None => event.actor_kind.clone(),
        };
        let mut about = String::new();
        if let Some(id) = event.conversation_id {
            let held = if app.conversation(id).is_some() { " (open here)" } else { "" };
            about = format!(" · 会话 conversation {}{held}", audit_conversation(app, event));
        }
        let mut lines: Vec<text::StyledLine> = vec![vec![
            (format!("#{} ", event.id), theme.dim),
            (event.kind.clone(), theme.focus.add_modifier(Modifier::BOLD)),
            (format!(" · {} · {who}{about}", &when[..10]), theme.dim),
        ]];
        lines.push(vec![(event.data.to_string(), theme.body)]);
        let wrapped = text::wrap(&lines, detail.width, "");
        for (row, line) in wrapped.iter().take(detail.height as usize).enumerate() {
            buf.set_line(detail.x, detail.y + row as u16, line, detail.width);
        }
    }
    let keys = Line::styled(
        format!(
            " ↑↓ pgup pgdn 滚动 scroll · {} 去会话 go to the conversation · {} 刷新 refresh · esc",
            overlay_key(app, Command::Accept),
            overlay_key(app, Command::AuditRefresh),
        ),
        theme.dim,
    );
    buf.set_line(hints.x, hints.y, &keys, hints.width);
}

/// `text` cut or padded to exactly `columns` display columns, on the left or the right.
fn cell(text: &str, columns: usize, right: bool) -> String {
    let text = truncate(text, columns);
    let pad = " ".repeat(columns.saturating_sub(width(&text)));
    if right { format!("{pad}{text}") } else { format!("{text}{pad}") }
}

/// The first key bound to `command` in the supervisor pane.
fn pane_key(app: &App, command: Command) -> String {
    app.keymap.keys_for(Mode::Supervisor, command).into_iter().next().unwrap_or_else(|| ":".into())
}

/// One table of the supervisor pane: a heading row (its title and column names) and rows,
/// the highlighted one kept in view.
struct PaneTable<'a> {
    /// The heading row.
    heading: Line<'a>,
    /// One line per row.
    rows: Vec<Line<'a>>,
    /// Shown when there are no rows.
    empty: Line<'a>,
    /// The highlighted row.
    selected: usize,
    /// The selection is in this table and the pane has the keyboard.
    active: bool,
}

fn render_pane_table(app: &App, table: PaneTable<'_>, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    buf.set_line(area.x, area.y, &table.heading, area.width);
    let rows = (area.height - 1) as usize;
    if table.rows.is_empty() {
        if rows > 0 {
            buf.set_line(area.x, area.y + 1, &table.empty, area.width);
        }
        return;
    }
    let first = table.selected.saturating_sub(rows.saturating_sub(1));
    for (row, (i, line)) in table.rows.iter().enumerate().skip(first).take(rows).enumerate() {
        let y = area.y + 1 + row as u16;
        buf.set_line(area.x, y, line, area.width);
        if i == table.selected && table.active {
            buf.set_style(Rect::new(area.x, y, area.width, 1), app.theme.selected);
        }
    }
}

/// The heading of a pane table: its title, then column names, in the table's columns.
fn pane_heading<'a>(app: &App, title: String, section: Section, columns: Vec<String>) -> Line<'a> {
    let here = app.supervisor.section == section;
    let style = if here { app.theme.focus.add_modifier(Modifier::BOLD) } else { app.theme.focus };
    let mut spans = vec![Span::styled(title, style)];
    spans.extend(columns.into_iter().map(|c| Span::styled(c, app.theme.dim)));
    Line::from(spans)
}

/// "▶ " on the highlighted row.
fn marker(selected: bool) -> &'static str {
    if selected { "▶ " } else { "  " }
}

/// Whether a pane table shows its highlighted row: the table with the selection does,
/// and the agents while their conversations have it (whose they are).
fn marks(app: &App, table: Section) -> bool {
    let here = app.supervisor.section;
    here == table || (table == Section::Agents && here == Section::Conversations)
}

/// A conversation's customer in a pane table: the name (with VIP) in `name_columns`, then
/// the conversation's id in `id_columns`, marked 旁听 when I observe it.
fn customer_cells(
    app: &App,
    customer: &MonitoredCustomer,
    id: kefu_proto::ConversationId,
    name_columns: usize,
    id_columns: usize,
) -> [Span<'static>; 4] {
    let vip = if customer.vip { " VIP" } else { "" };
    let name = truncate(&supervisor::customer_label(customer), name_columns.saturating_sub(vip.len()));
    let pad = " ".repeat(name_columns.saturating_sub(width(&name) + vip.len()));
    let observed = if app.conversation(id).is_some_and(|held| held.observed) { "旁听" } else { "" };
    [
        Span::styled(name, app.theme.customer),
        Span::styled(vip, app.theme.alert),
        Span::raw(pad),
        Span::styled(cell(&format!("{observed} #{id}"), id_columns, true), app.theme.dim),
    ]
}

fn sla_style(app: &App, band: SlaBand) -> Style {
    match band {
        SlaBand::Calm => app.theme.ok,
        SlaBand::Near => app.theme.pending,
        SlaBand::Breached => app.theme.alert,
    }
}

fn presence_span(app: &App, presence: Presence, columns: usize) -> Span<'static> {
    match presence {
        Presence::Online => Span::styled(cell("● online", columns, true), app.theme.ok),
        Presence::Away => Span::styled(cell("◐ away", columns, true), app.theme.pending),
        Presence::Offline => Span::styled(cell("○ offline", columns, true), app.theme.dim),
    }
}

fn render_supervisor(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let pane_state = &app.supervisor;
    let focused = app.input_mode() == Mode::Supervisor;
    let mut title = vec![Span::raw(" 监控 Supervisor ")];
    if !app.is_online() && pane_state.monitor.is_some() {
        title.push(Span::styled("— 断开 disconnected: figures may be stale ", theme.alert));
    }
    let block = pane(Line::from(title), focused, app);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height < 3 || inner.width < 20 {
        return;
    }
    let w = inner.width as usize;
    let now = app.now;
    let at = |section: Section| focused && pane_state.section == section;

    // Queues: the longest wait coloured against the alert limit.
    let q_cols = [8, 10, 7, 5];
    let q_name = w.saturating_sub(2 + q_cols.iter().sum::<usize>()).max(4);
    let queue_rows: Vec<Line<'_>> = pane_state
        .queues()
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            let name = queue.group.as_deref().unwrap_or("any");
            let (wait, style) = match (pane_state.longest_wait(queue, now), pane_state.sla_band(queue, now)) {
                (Some(wait), Some(band)) => {
                    (format!("{} {}", band.mark(), reports::duration(Some(wait))), sla_style(app, band))
                }
                _ => ("—".to_string(), theme.dim),
            };
            Line::from(vec![
                Span::raw(marker(i == pane_state.queue_selected && marks(app, Section::Queues))),
                Span::raw(cell(name, q_name, false)),
                Span::raw(cell(&queue.waiting.to_string(), q_cols[0], true)),
                Span::styled(cell(&wait, q_cols[1], true), style),
                Span::raw(cell(&queue.agents_online.to_string(), q_cols[2], true)),
                Span::raw(cell(&queue.capacity.to_string(), q_cols[3], true)),
            ])
        })
        .collect();
    let queues = PaneTable {
        heading: pane_heading(
            app,
            cell("队列 Queues", 2 + q_name, false),
            Section::Queues,
            vec![
                cell("waiting", q_cols[0], true),
                cell("longest", q_cols[1], true),
                cell("online", q_cols[2], true),
                cell("cap", q_cols[3], true),
            ],
        ),
        rows: queue_rows,
        empty: Line::styled("  没有队列 no queues", theme.dim),
        selected: pane_state.queue_selected,
        active: at(Section::Queues),
    };

    // Conversations the bot is answering, longest first: choosable, to observe or take
    // over before the customer gives up on it.
    let b_cols = [8, 12, 11, 7];
    let b_name = w.saturating_sub(2 + b_cols.iter().sum::<usize>()).max(4);
    let bot_index = pane_state.bot_index();
    let bot_rows: Vec<Line<'_>> = pane_state
        .with_bot()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let since = pane_state.with_bot_for(c, now).map_or_else(|| "—".to_string(), format_wait);
            let mut spans = vec![Span::raw(marker(i == bot_index && marks(app, Section::Bot)))];
            spans.extend(customer_cells(app, &c.customer, c.id, b_name, b_cols[0]));
            spans.extend([
                Span::raw(cell(c.intent.as_deref().unwrap_or("—"), b_cols[1], true)),
                Span::raw(cell(c.group.as_deref().unwrap_or("any"), b_cols[2], true)),
                Span::raw(cell(&since, b_cols[3], true)),
            ]);
            Line::from(spans)
        })
        .collect();
    let total = pane_state.with_bot_total();
    let listed = pane_state.with_bot().len();
    let bot_title = if total > listed {
        format!("机器人 Bot ({listed} of {total})")
    } else {
        format!("机器人 Bot ({total})")
    };
    let bot = PaneTable {
        heading: pane_heading(
            app,
            cell(&bot_title, 2 + b_name, false),
            Section::Bot,
            vec![
                cell("#id", b_cols[0], true),
                cell("intent", b_cols[1], true),
                cell("group", b_cols[2], true),
                cell("for", b_cols[3], true),
            ],
        ),
        rows: bot_rows,
        empty: Line::styled("  机器人没有会话 the bot is answering no one", theme.dim),
        selected: bot_index,
        active: at(Section::Bot),
    };

    // Agents: presence, load against capacity, time since their last reply.
    let a_cols = [10, 6, 8, 6];
    let a_name = w.saturating_sub(2 + a_cols.iter().sum::<usize>()).max(4);
    let agent_index = pane_state.agent_index();
    let agent_rows: Vec<Line<'_>> = pane_state
        .agents()
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let full = agent.capacity > 0 && agent.load >= agent.capacity;
            let load_style = if full { theme.pending } else { theme.body };
            let reply = pane_state.since_last_reply(agent, now).map_or_else(|| "—".to_string(), format_wait);
            Line::from(vec![
                Span::raw(marker(i == agent_index && marks(app, Section::Agents))),
                Span::styled(cell(&agent.agent.name, a_name, false), theme.me),
                presence_span(app, agent.presence, a_cols[0]),
                Span::styled(cell(&format!("{}/{}", agent.load, agent.capacity), a_cols[1], true), load_style),
                Span::raw(cell(&reply, a_cols[2], true)),
                Span::raw(cell(&agent.conversations.len().to_string(), a_cols[3], true)),
            ])
        })
        .collect();
    let agents = PaneTable {
        heading: pane_heading(
            app,
            cell("坐席 Agents", 2 + a_name, false),
            Section::Agents,
            vec![
                cell("presence", a_cols[0], true),
                cell("load", a_cols[1], true),
                cell("reply", a_cols[2], true),
                cell("convs", a_cols[3], true),
            ],
        ),
        rows: agent_rows,
        empty: Line::styled(
            if pane_state.monitor.is_some() {
                "  没有坐席 no agents"
            } else {
                "  等待监控 waiting for the monitor…"
            },
            theme.dim,
        ),
        selected: agent_index,
        active: at(Section::Agents),
    };

    // The selected agent's conversations: choosable, to observe, take over or reassign.
    let c_cols = [8, 10];
    let c_name = w.saturating_sub(2 + c_cols.iter().sum::<usize>()).max(4);
    let selected_agent = pane_state.selected_agent();
    let conversation_index = pane_state.conversation_index();
    let conversation_rows: Vec<Line<'_>> = selected_agent
        .map(|agent| agent.conversations.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let waiting = pane_state.awaiting_reply(c, now);
            let (waited, style) = match (waiting, pane_state.monitor.as_ref()) {
                (Some(ms), Some(monitor)) => {
                    (format!("等 {}", format_wait(ms)), sla_style(app, SlaBand::of(ms, monitor.wait_alert_ms)))
                }
                _ => ("—".to_string(), theme.dim),
            };
            let mut spans = vec![Span::raw(marker(i == conversation_index && marks(app, Section::Conversations)))];
            spans.extend(customer_cells(app, &c.customer, c.id, c_name, c_cols[0]));
            spans.push(Span::styled(cell(&waited, c_cols[1], true), style));
            Line::from(spans)
        })
        .collect();
    let whose = selected_agent.map_or_else(|| "会话 Conversations".to_string(), |a| format!("会话 {}", a.agent.name));
    let conversations = PaneTable {
        heading: pane_heading(
            app,
            cell(&whose, 2 + c_name, false),
            Section::Conversations,
            vec![cell("#id", c_cols[0], true), cell("waiting", c_cols[1], true)],
        ),
        rows: conversation_rows,
        empty: Line::styled("  没有会话 holds no conversation", theme.dim),
        selected: conversation_index,
        active: at(Section::Conversations),
    };

    // Alerts, newest first, with their age; resolved ones marked until they go.
    let alert_index = pane_state.alert_index();
    let alert_rows: Vec<Line<'_>> = pane_state
        .alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let selected = i == alert_index && marks(app, Section::Alerts);
            let (mark, style) = if alert.is_on() { ("■ ", theme.alert) } else { ("✓ ", theme.dim) };
            let what = if alert.is_on() { "" } else { "已解除 resolved · " };
            Line::from(vec![
                Span::raw(marker(selected)),
                Span::styled(cell(&format_wait(alert.age(now)), 6, true), theme.dim),
                Span::raw(" "),
                Span::styled(mark, style),
                Span::styled(format!("{what}{}", alert_kind_label(alert.alert.kind)), style),
                Span::styled(format!(": {}", alert.alert.message), if alert.is_on() { theme.body } else { theme.dim }),
            ])
        })
        .collect();
    let alerts = PaneTable {
        heading: pane_heading(app, format!("告警 Alerts ({} on)", pane_state.alerts_on()), Section::Alerts, Vec::new()),
        rows: alert_rows,
        empty: Line::styled("  没有告警 no alerts", theme.dim),
        selected: alert_index,
        active: at(Section::Alerts),
    };

    // The keys, from the key map in force, on up to two rows at the bottom.
    let hints = if focused {
        format!(
            "{} 表 table · {} 旁听 observe · {} 接管 take over · {} 转接 reassign · {} 容量 capacity · {} 在线/离开 presence · {} 返回 back",
            pane_key(app, Command::MonitorNextSection),
            pane_key(app, Command::Observe),
            pane_key(app, Command::TakeOver),
            pane_key(app, Command::Transfer),
            pane_key(app, Command::AgentCapacity),
            pane_key(app, Command::AgentPresence),
            pane_key(app, Command::SupervisorFocus),
        )
    } else {
        let key = |command| app.keymap.keys_for(Mode::Normal, command).into_iter().next().unwrap_or_else(|| ":".into());
        format!(
            "{} 进入 focus the pane · {} 关闭 close · {} 报表 report",
            key(Command::SupervisorFocus),
            key(Command::Supervisor),
            key(Command::Report)
        )
    };
    let hint_lines = text::wrap(&[vec![(hints, theme.dim)]], inner.width, "");
    let hint_rows = hint_lines.len().clamp(1, 2) as u16;
    for (i, line) in hint_lines.iter().take(hint_rows as usize).enumerate() {
        buf.set_line(inner.x, inner.bottom() - hint_rows + i as u16, line, inner.width);
    }

    // Each table gets a heading and a row at least; then rows as they need, agents
    // first, then queues, the bot's conversations, the agent's; the alerts take what is
    // left.
    let tables = [queues, bot, agents, conversations, alerts];
    let body = inner.height.saturating_sub(hint_rows) as usize;
    let wanted: Vec<usize> = tables.iter().map(|t| 1 + t.rows.len().max(1)).collect();
    let mut heights = [2usize; 5];
    let mut left = body.saturating_sub(2 * heights.len());
    for i in [2, 0, 1, 3, 4] {
        let more = wanted[i].saturating_sub(heights[i]).min(left);
        heights[i] += more;
        left -= more;
    }
    heights[4] += left;
    let mut y = inner.y;
    let bottom = inner.bottom().saturating_sub(hint_rows);
    for (table, height) in tables.into_iter().zip(heights) {
        let height = (height as u16).min(bottom.saturating_sub(y));
        render_pane_table(app, table, Rect::new(inner.x, y, inner.width, height), buf);
        y += height;
    }
}

/// "2025-11-15 00:00 → 2025-11-21 08:00 (UTC+08:00)".
fn window_label(window: &ReportWindow) -> String {
    let offset = window.tz_offset_minutes * 60;
    let at = |ms: UnixMillis| format!("{} {}", format_date(ms, offset), format_clock(ms, offset));
    let sign = if window.tz_offset_minutes < 0 { '-' } else { '+' };
    let minutes = window.tz_offset_minutes.abs();
    format!("{} → {} (UTC{sign}{:02}:{:02})", at(window.from), at(window.to - 1), minutes / 60, minutes % 60)
}

/// The report's key figures, one per line: a label and its value.
fn key_figures(app: &App, report: &Report) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let f = &report.overall;
    let sl = &f.service_level;
    let line = |label: &str, value: String, detail: String| {
        Line::from(vec![
            Span::styled(cell(label, 24, false), theme.dim),
            Span::styled(value, Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(detail, theme.dim),
        ])
    };
    let csat = match f.csat.average {
        Some(avg) => format!("{avg:.2} / 5"),
        None => "—".to_string(),
    };
    let distribution =
        f.csat.distribution.iter().enumerate().map(|(i, n)| format!("{}★ {n}", i + 1)).collect::<Vec<_>>().join(" · ");
    vec![
        Line::styled("关键指标 Key figures", theme.focus.add_modifier(Modifier::BOLD)),
        line(
            "会话 conversations",
            f.conversations.to_string(),
            format!("  {} queued · {} still open", f.queued, f.still_open),
        ),
        line(
            "解决率 resolution",
            reports::percent(f.resolution_rate),
            format!("  {} resolved · {} by the bot", f.resolved, f.bot_resolved),
        ),
        line(
            "放弃率 abandonment",
            reports::percent(f.abandonment_rate),
            format!("  {} of {} queued", f.abandoned, f.queued),
        ),
        line(
            "首响 first response",
            format!("p50 {}", reports::duration(f.first_response.p50_ms)),
            format!("  · p90 {}", reports::duration(f.first_response.p90_ms)),
        ),
        line(
            "服务水平 service level",
            format!("15s {}", reports::percent(sl.share_15s)),
            format!("  · 60s {} of {} answered", reports::percent(sl.share_60s), sl.answered),
        ),
        line("满意度 CSAT", csat, format!("  {} ratings", f.csat.ratings)),
        Line::styled(format!("  {distribution}"), theme.dim),
        line("转接 transfers", f.transfers.to_string(), format!("  in {} conversations", f.transferred_conversations)),
        line("重开 reopens", f.reopens.to_string(), format!("  in {} conversations", f.reopened_conversations)),
        line(
            "处理 handle time",
            format!("p50 {}", reports::duration(f.handle_time.p50_ms)),
            format!("  · resolution p50 {}", reports::duration(f.resolution_time.p50_ms)),
        ),
    ]
}

/// Arrivals by hour of the local day (all days of the range summed): a sparkline, each
/// hour as wide as the area allows, with the hours beneath.
fn render_arrivals(app: &App, report: &Report, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 24 {
        return;
    }
    let hours = reports::arrivals_by_hour(&report.arrivals);
    let (peak_hour, peak) =
        hours.iter().enumerate().max_by_key(|(h, n)| (**n, std::cmp::Reverse(*h))).unwrap_or((0, &0));
    let title = if *peak > 0 {
        format!("到达 Arrivals by hour · peak {peak} at {peak_hour:02}:00")
    } else {
        "到达 Arrivals by hour · none".to_string()
    };
    buf.set_line(area.x, area.y, &Line::styled(title, app.theme.focus.add_modifier(Modifier::BOLD)), area.width);
    let per_hour = (area.width as usize / 24).max(1);
    let wide: Vec<u64> = hours.iter().flat_map(|n| std::iter::repeat_n(*n, per_hour)).collect();
    let chart = Rect::new(area.x, area.y + 1, (24 * per_hour) as u16, area.height - 2);
    Sparkline::default().data(&wide).max((*peak).max(1)).style(app.theme.focus).render(chart, buf);
    let mut axis = String::new();
    for hour in (0..24).step_by(6) {
        axis.push_str(&cell(&format!("{hour:02}"), 6 * per_hour, false));
    }
    buf.set_line(area.x, area.bottom() - 1, &Line::styled(axis, app.theme.dim), area.width);
}

/// The CSAT distribution as bars, 1★ to 5★.
fn render_csat_chart(app: &App, report: &Report, area: Rect, buf: &mut Buffer) {
    if area.height < 3 {
        return;
    }
    buf.set_line(
        area.x,
        area.y,
        &Line::styled("满意度 CSAT", app.theme.focus.add_modifier(Modifier::BOLD)),
        area.width,
    );
    let bars: Vec<Bar<'_>> = report
        .overall
        .csat
        .distribution
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let style = if i < 2 { app.theme.alert } else { app.theme.ok };
            Bar::default().value(*n).label(Line::from(format!("{}★", i + 1))).style(style)
        })
        .collect();
    BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(3)
        .bar_gap(1)
        .value_style(app.theme.selected)
        .render(Rect::new(area.x, area.y + 1, area.width, area.height - 1), buf);
}

/// Conversations per agent, most first, as horizontal bars.
fn render_agent_chart(app: &App, report: &Report, area: Rect, buf: &mut Buffer) {
    if area.height < 2 {
        return;
    }
    let title = Line::styled("坐席会话 Conversations per agent", app.theme.focus.add_modifier(Modifier::BOLD));
    buf.set_line(area.x, area.y, &title, area.width);
    let mut agents: Vec<(&str, u64)> =
        report.by_agent.iter().map(|a| (a.name.as_str(), a.figures.conversations)).collect();
    agents.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let rows = (area.height - 1) as usize;
    let bars: Vec<Bar<'_>> = agents
        .iter()
        .take(rows)
        .map(|(name, n)| Bar::default().value(*n).label(Line::from(truncate(name, 10))).style(app.theme.me))
        .collect();
    if bars.is_empty() {
        buf.set_line(area.x, area.y + 1, &Line::styled("没有坐席 no agents", app.theme.dim), area.width);
        return;
    }
    BarChart::default()
        .direction(ratatui::layout::Direction::Horizontal)
        .data(BarGroup::default().bars(&bars))
        .bar_width(1)
        .bar_gap(0)
        .render(Rect::new(area.x, area.y + 1, area.width, area.height - 1), buf);
}

/// The per-agent table, the highlighted row kept in view.
fn render_agent_table(app: &App, report: &Report, selected: usize, area: Rect, buf: &mut Buffer) {
    if area.height < 2 {
        return;
    }
    let theme = &app.theme;
    let cols = [7, 10, 10, 10, 9, 7, 11];
    let name_width = (area.width as usize).saturating_sub(2 + cols.iter().sum::<usize>()).max(6);
    let headings = ["convs", "resolved", "1st p50", "1st p90", "SL 60s", "CSAT", "transfers"];
    let mut heading = vec![Span::styled(cell("坐席 Agent", 2 + name_width, false), theme.focus)];
    heading.extend(headings.iter().zip(cols).map(|(h, c)| Span::styled(cell(h, c, true), theme.dim)));
    buf.set_line(area.x, area.y, &Line::from(heading), area.width);
    if report.by_agent.is_empty() {
        buf.set_line(area.x, area.y + 1, &Line::styled("  没有坐席 no agent in this range", theme.dim), area.width);
        return;
    }
    let rows = (area.height - 1) as usize;
    let first = selected.saturating_sub(rows.saturating_sub(1));
    for (row, (i, agent)) in report.by_agent.iter().enumerate().skip(first).take(rows).enumerate() {
        let f = &agent.figures;
        let csat = f.csat.average.map_or_else(|| "—".to_string(), |a| format!("{a:.2}"));
        let values = [
            f.conversations.to_string(),
            f.resolved.to_string(),
            reports::duration(f.first_response.p50_ms),
            reports::duration(f.first_response.p90_ms),
            reports::percent(f.service_level.share_60s),
            csat,
            f.transfers.to_string(),
        ];
        let mut spans =
            vec![Span::raw(marker(i == selected)), Span::styled(cell(&agent.name, name_width, false), theme.me)];
        spans.extend(values.iter().zip(cols).map(|(v, c)| Span::raw(cell(v, c, true))));
        let y = area.y + 1 + row as u16;
        buf.set_line(area.x, y, &Line::from(spans), area.width);
        if i == selected {
            buf.set_style(Rect::new(area.x, y, area.width, 1), theme.selected);
        }
    }
}

fn render_report(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let board = &app.report;
    let rect = board_rect(area);
    clear(rect, buf);
    let mut title = vec![Span::raw(" 报表 Report — ")];
    for range in ReportRange::ALL {
        let style = if range == board.range { theme.selected } else { theme.dim };
        title.push(Span::styled(format!(" {} ", range.label()), style));
        title.push(Span::raw(" "));
    }
    let block = Block::default().borders(Borders::ALL).border_style(theme.focus).title(Line::from(title));
    let inner = block.inner(rect);
    block.render(rect, buf);
    if inner.height < 6 || inner.width < 40 {
        return;
    }
    let hints = Line::styled(
        format!(
            " {}/{} 范围 range · {} 导出 CSV export · ↑↓ 坐席 agents · esc",
            overlay_key(app, Command::ReportPrevRange),
            overlay_key(app, Command::ReportNextRange),
            overlay_key(app, Command::ReportExport),
        ),
        theme.dim,
    );
    buf.set_line(inner.x, inner.bottom() - 1, &hints, inner.width);
    let (window, fetched) = match &board.report {
        Some((window, fetched)) => (window, fetched),
        None => return,
    };
    let mut heading = vec![Span::styled(window_label(window), theme.dim)];
    match fetched {
        Fetched::Loading => heading.push(Span::styled("  加载中 loading…", theme.pending)),
        Fetched::Failed(why) => heading.push(Span::styled(format!("  ⚠ {why}"), theme.alert)),
        Fetched::Ready(_) if board.exporting => heading.push(Span::styled("  导出中 exporting…", theme.pending)),
        Fetched::Ready(_) => {}
    }
    buf.set_line(inner.x, inner.y, &Line::from(heading), inner.width);
    let Fetched::Ready(report) = fetched else { return };
    let body = Rect::new(inner.x, inner.y + 2, inner.width, inner.height.saturating_sub(3));
    let figures = key_figures(app, report);
    let top_height = (figures.len() as u16 + 1).min(body.height);
    let [top, agents] = Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(body);
    let [left, _, right] =
        Layout::horizontal([Constraint::Length(62.min(top.width / 2)), Constraint::Length(2), Constraint::Min(10)])
            .areas(top);
    for (i, line) in figures.iter().enumerate().take(left.height as usize) {
        buf.set_line(left.x, left.y + i as u16, line, left.width);
    }
    let [arrivals, charts] = Layout::vertical([Constraint::Length(6), Constraint::Min(0)]).areas(right);
    render_arrivals(app, report, arrivals, buf);
    let [csat, per_agent] = Layout::horizontal([Constraint::Length(21), Constraint::Min(10)]).areas(charts);
    render_csat_chart(app, report, csat, buf);
    render_agent_chart(
        app,
        report,
        Rect::new(per_agent.x + 1, per_agent.y, per_agent.width.saturating_sub(1), per_agent.height),
        buf,
    );
    render_agent_table(app, report, board.agent_selected, agents, buf);
}
