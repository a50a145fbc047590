//! Snapshot tests of the main screens, drawn into ratatui's `TestBackend` from an `App`
//! brought into shape by the same actions the real loop feeds it (frames as JSON, keys).
//! Snapshots live in `tests/snapshots/`; with `CI=true` a missing one fails.

use kefu_tui::app::{Action, App, NetEvent};
use kefu_tui::keymap::{KeyPress, Keymap};
use kefu_tui::theme::Theme;
use kefu_tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Position;
use serde_json::json;

/// 2025-11-21 08:00 in Beijing.
const NOW: i64 = 1_763_683_200_000;

fn server(app: &mut App, frame: serde_json::Value) {
    app.update(Action::Server(serde_json::from_value(frame).expect("a valid server frame")));
}

fn conversation(id: i64, name: &str, vip: bool, channel: &str) -> serde_json::Value {
    json!({
        "id": id, "state": "assigned", "channel": channel,
        "contact": {"id": 100 + id, "name": name, "vip": vip},
        "assignee": {"id": 7, "name": "小王"},
        "last_seq": 0, "created_at": NOW, "queued_at": NOW,
    })
}

fn message(conversation: i64, seq: u64, customer: bool, body: &str, minutes_ago: i64) -> serde_json::Value {
    let author = if customer {
        json!({"kind": "customer", "id": 100 + conversation})
    } else {
        json!({"kind": "agent", "id": 7, "name": "小王"})
    };
    json!({
        "type": "message", "conversation_id": conversation, "seq": seq, "author": author,
        "body": body, "format": "text", "at": NOW - minutes_ago * 60_000,
    })
}

fn keys(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::Key(KeyPress::char(c)));
    }
}

fn key(app: &mut App, key: &str) {
    app.update(Action::Key(KeyPress::parse(key).unwrap()));
}

/// 小王 online with three conversations, a history in the first, the customer typing.
fn busy_app() -> App {
    let mut app = App::new(Keymap::default_bindings(), Theme::default(), "kefu-test".into(), NOW - 10 * 60_000);
    app.utc_offset_secs = 8 * 3600;
    app.update(Action::Net(NetEvent::Opened));
    server(
        &mut app,
        json!({
            "type": "welcome", "protocol": 1,
            "session": {
                "kind": "agent",
                "agent": {"id": 7, "name": "小王", "email": "wang@shop.example", "role": "agent", "max_concurrent": 5},
                "presence": "online",
                "conversations": [
                    conversation(1, "李女士", true, "web"),
                    conversation(2, "Tom Becker", false, "app"),
                    conversation(3, "王先生", false, "social"),
                ],
            },
            "limits": {"max_frame_bytes": 65536, "max_body_bytes": 32768, "frames_per_second": 50, "frame_burst": 200},
        }),
    );
    server(&mut app, message(1, 1, true, "你好，我的快递到哪了？订单号 20251120-8841", 6));
    server(&mut app, message(1, 2, false, "您好，您的包裹已到达上海转运中心，预计明天送达。", 5));
    server(&mut app, json!({"type": "read", "conversation_id": 1, "reader": "customer", "seq": 2}));
    server(&mut app, message(1, 3, true, "昨天就显示到上海了，今天能送到吗？我下午不在家，可以放快递柜吗？", 3));
    server(&mut app, message(2, 1, true, "Hi! Can I return these shoes? They are half a size too small.", 4));
    server(&mut app, message(3, 1, true, "可以开发票吗？公司抬头的那种。", 1));
    app.update(Action::Tick(NOW));
    server(&mut app, json!({"type": "typing", "conversation_id": 1, "author": "customer", "active": true}));
    app
}

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::draw(frame, app)).unwrap();
    terminal
}

#[test]
fn workstation_with_chinese_conversations() {
    let mut app = busy_app();
    key(&mut app, "enter");
    keys(&mut app, "可以的，");
    let mut terminal = draw(&app, 100, 24);
    insta::assert_snapshot!(terminal.backend());
    // The terminal cursor sits at the caret (where input methods open their window):
    // after four wide characters, eight columns into the composer.
    let composer_inner_x = 30 + 1;
    assert_eq!(terminal.get_cursor_position().unwrap(), Position::new(composer_inner_x + 8, 21));
}

#[test]
fn help_overlay_lists_bindings_with_their_docs() {
    let mut app = busy_app();
    key(&mut app, "?");
    insta::assert_snapshot!(draw(&app, 100, 30).backend());
}

#[test]
fn palette_finds_actions() {
    let mut app = busy_app();
    key(&mut app, "C-p");
    keys(&mut app, "pres");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn resolve_prompt() {
    let mut app = busy_app();
    key(&mut app, "r");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn disconnected_with_a_queued_message() {
    let mut app = busy_app();
    app.update(Action::Net(NetEvent::Lost { reason: "closed 1001".into(), retry_at: NOW + 4_000, attempt: 3 }));
    key(&mut app, "enter");
    keys(&mut app, "稍等，我帮您查一下。");
    key(&mut app, "enter");
    key(&mut app, "esc");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn first_start_before_any_conversation() {
    let app = App::new(Keymap::default_bindings(), Theme::default(), "kefu-test".into(), NOW);
    insta::assert_snapshot!(draw(&app, 80, 16).backend());
}
