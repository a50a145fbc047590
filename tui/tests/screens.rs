//! Snapshot tests of the main screens, drawn into ratatui's `TestBackend` from an `App`
//! brought into shape by the same actions the real loop feeds it (frames as JSON, keys).
//! Snapshots live in `tests/snapshots/`; with `CI=true` a missing one fails.

use kefu_tui::api::{ApiAnswer, ApiFailure, ApiRequest};
use kefu_tui::app::{Action, App, NetEvent};
use kefu_tui::keymap::{KeyPress, Keymap};
use kefu_tui::theme::Theme;
use kefu_tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Position;
use ratatui::style::{Color, Modifier};
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

fn answer(app: &mut App, request: ApiRequest, answer: serde_json::Value) {
    let answer = match &request {
        ApiRequest::Canned => ApiAnswer::Canned(serde_json::from_value(answer).unwrap()),
        ApiRequest::Agents => ApiAnswer::Agents(serde_json::from_value(answer).unwrap()),
        ApiRequest::Groups => ApiAnswer::Groups(serde_json::from_value(answer).unwrap()),
        ApiRequest::Contact(_) => ApiAnswer::Contact(serde_json::from_value(answer).unwrap()),
        ApiRequest::Routing(_) => ApiAnswer::Routing(serde_json::from_value(answer).unwrap()),
        ApiRequest::KbSearch { .. } => ApiAnswer::KbHits(serde_json::from_value(answer).unwrap()),
        ApiRequest::KbArticle(_) => ApiAnswer::KbArticle(serde_json::from_value(answer).unwrap()),
        ApiRequest::Tickets(_) => ApiAnswer::Tickets(serde_json::from_value(answer).unwrap()),
        ApiRequest::Ticket(_) => ApiAnswer::Ticket(serde_json::from_value(answer).unwrap()),
        ApiRequest::Reveal(_) => ApiAnswer::Revealed(serde_json::from_value(answer).unwrap()),
        ApiRequest::Events { .. } => ApiAnswer::Events(serde_json::from_value(answer).unwrap()),
        other => panic!("not used here: {other:?}"),
    };
    app.update(Action::Api { request, result: Ok(answer) });
}

fn queued(id: i64, name: &str, vip: bool, group: &str, minutes: i64) -> serde_json::Value {
    json!({
        "id": id, "state": "queued", "channel": "web",
        "contact": {"id": 100 + id, "name": name, "vip": vip},
        "last_seq": 1, "created_at": NOW - minutes * 60_000, "queued_at": NOW - minutes * 60_000,
        "group": group, "priority": if vip { 100 } else { 200 },
    })
}

fn canned() -> serde_json::Value {
    json!([
        {"id": 1, "shortcut": "hi", "title": "问候 Greeting", "body": "{customer.name}，您好！我是{agent.name}，很高兴为您服务。", "scope": "workspace"},
        {"id": 2, "shortcut": "invoice", "title": "发票 Invoice", "body": "发票会在订单完成后 3 个工作日内开具，请提供抬头和税号。", "scope": "workspace"},
        {"id": 3, "shortcut": "wait", "title": "稍等 One moment", "body": "稍等，我帮您查一下。", "scope": "personal"},
    ])
}

/// The busy app with two queues waiting, a private note, a file, and a transfer
/// received in conversation 3.
fn full_app() -> App {
    let mut app = busy_app();
    app.relay_url = "http://127.0.0.1:7700".into();
    server(
        &mut app,
        json!({"type": "queue_list", "group": "presales", "total": 2,
               "conversations": [queued(11, "赵先生", true, "presales", 4), queued(12, "Anna Schmidt", false, "presales", 2)]}),
    );
    server(
        &mut app,
        json!({"type": "queue_list", "group": "aftersales", "total": 1,
               "conversations": [queued(13, "周女士", false, "aftersales", 1)]}),
    );
    server(
        &mut app,
        json!({
            "type": "message", "conversation_id": 1, "seq": 4, "author": {"kind": "agent", "id": 7, "name": "小王"},
            "body": "老顾客，上次丢件已补发，这次优先跟进。", "format": "text", "at": NOW - 60_000, "internal": true,
        }),
    );
    server(
        &mut app,
        json!({
            "type": "message", "conversation_id": 1, "seq": 5, "author": {"kind": "customer", "id": 101},
            "body": "", "format": "text", "at": NOW - 30_000,
            "attachments": [{"id": "a1b2c3", "name": "快递单.jpg", "size": 84_210, "content_type": "image/jpeg"}],
        }),
    );
    app
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
    busy_app_as("agent")
}

/// [`busy_app`] with 小王 in `role` (agent, supervisor or admin).
fn busy_app_as(role: &str) -> App {
    let mut app = App::new(Keymap::default_bindings(), Theme::default(), "kefu-test".into(), NOW - 10 * 60_000);
    app.utc_offset_secs = 8 * 3600;
    app.update(Action::Net(NetEvent::Opened));
    server(
        &mut app,
        json!({
            "type": "welcome", "protocol": 1,
            "session": {
                "kind": "agent",
                "agent": {"id": 7, "name": "小王", "email": "wang@shop.example", "role": role, "max_concurrent": 5},
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

#[test]
fn queue_note_attachment_and_customer_panel() {
    let mut app = full_app();
    key(&mut app, "J");
    key(&mut app, "v");
    answer(
        &mut app,
        ApiRequest::Contact(kefu_proto::ContactId(101)),
        json!({
            "id": 101, "name": "李女士", "vip": true,
            "channels": [{"kind": "web", "external_id": "w-8841"}],
            "conversations": [
                {"id": 1, "channel": "web", "state": "assigned", "created_at": NOW - 600_000, "agent": "小王", "messages": 5},
                {"id": 0, "channel": "app", "state": "closed", "created_at": NOW - 9 * 86_400_000,
                 "resolved_at": NOW - 9 * 86_400_000 + 3_600_000, "resolution": "refund_issued", "agent": "李娜", "messages": 12},
            ],
        }),
    );
    answer(
        &mut app,
        ApiRequest::Routing(kefu_proto::ConversationId(1)),
        json!({"conversation_id": 1, "decisions": [
            {"at": NOW - 700_000, "kind": "routing.queued", "explanation": "No agent of presales had room; it waits first in line.", "details": {}},
            {"at": NOW - 600_000, "kind": "routing.assigned", "explanation": "VIP customer: 小王 is a senior of presales with the lightest load (1 of 5).", "details": {}},
        ]}),
    );
    insta::assert_snapshot!(draw(&app, 140, 30).backend());
}

#[test]
fn messages_from_app_and_social_channels_say_where_they_came_from() {
    let mut app = full_app();
    server(
        &mut app,
        json!({"type": "conversation", "change": "assigned", "conversation": conversation(5, "小李", false, "social")}),
    );
    let mut live = message(5, 1, true, "主播，这款有优惠券吗？", 3);
    live["via"] = json!({"channel": "social", "name": "抖音直播", "source": "live"});
    server(&mut app, live);
    let mut app_message = message(5, 2, true, "我在 App 里下单了，订单 8812", 1);
    app_message["via"] = json!({"channel": "app", "name": "shop-app"});
    server(&mut app, app_message);
    key(&mut app, "4");
    key(&mut app, "v");
    answer(
        &mut app,
        ApiRequest::Contact(kefu_proto::ContactId(105)),
        json!({
            "id": 105, "name": "小李", "vip": false, "customer_id": "c-8812",
            "channels": [{"kind": "social", "external_id": "3:88001"}, {"kind": "app", "external_id": "c-8812"}],
            "conversations": [{"id": 5, "channel": "social", "state": "assigned", "created_at": NOW - 300_000, "agent": "小王", "messages": 2}],
        }),
    );
    insta::assert_snapshot!(draw(&app, 140, 24).backend());
}

#[test]
fn note_mode_and_a_received_transfer() {
    let mut app = full_app();
    server(
        &mut app,
        json!({
            "type": "conversation", "change": "assigned",
            "conversation": conversation(4, "孙先生", false, "web"),
            "transfer": {"from": {"id": 8, "name": "李娜"}, "note": "要换货，尺码 42 → 43，已确认库存"},
        }),
    );
    key(&mut app, "4");
    key(&mut app, "n");
    key(&mut app, "enter");
    keys(&mut app, "已联系仓库");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn canned_reply_picker_and_shortcut_suggestions() {
    let mut app = full_app();
    answer(&mut app, ApiRequest::Canned, canned());
    key(&mut app, "enter");
    keys(&mut app, "/i");
    insta::assert_snapshot!("shortcut_suggestions", draw(&app, 100, 24).backend());
    key(&mut app, "esc");
    key(&mut app, "/");
    keys(&mut app, "fapiao");
    key(&mut app, "C-u");
    keys(&mut app, "发票");
    insta::assert_snapshot!("canned_picker", draw(&app, 100, 24).backend());
}

#[test]
fn transfer_picker_and_note() {
    let mut app = full_app();
    key(&mut app, "t");
    answer(
        &mut app,
        ApiRequest::Agents,
        json!([
            {"id": 7, "name": "小王", "email": "wang@shop.example", "role": "agent", "max_concurrent": 5},
            {"id": 8, "name": "李娜", "email": "lina@shop.example", "role": "agent", "max_concurrent": 5,
             "skills": [{"group": "aftersales", "level": "senior"}]},
        ]),
    );
    answer(
        &mut app,
        ApiRequest::Groups,
        json!([{"id": 1, "slug": "presales", "name": "售前"}, {"id": 2, "slug": "aftersales", "name": "售后"}]),
    );
    insta::assert_snapshot!("transfer_picker", draw(&app, 100, 24).backend());
    keys(&mut app, "售后");
    key(&mut app, "enter");
    keys(&mut app, "客户要退款");
    insta::assert_snapshot!("transfer_note", draw(&app, 100, 24).backend());
}

#[test]
fn close_prompt_offers_resolution_codes() {
    let mut app = busy_app();
    key(&mut app, "C");
    key(&mut app, "down");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

/// Types a knowledge-base query and lets it rest, so it is searched.
fn search(app: &mut App, query: &str) {
    key(app, "C-u");
    keys(app, query);
    app.update(Action::Tick(NOW + 1_000));
}

fn return_hits() -> serde_json::Value {
    json!([
        {"id": 4, "slug": "return-shipping-zh", "title": "退货运费谁承担", "snippet": "因质量问题退货的，运费由我们承担；无理由退货的运费由您承担。", "score": 7.52, "language": "zh"},
        {"id": 5, "slug": "return-policy-zh", "title": "七天无理由退货", "snippet": "签收后七天内，商品完好即可申请无理由退货。", "score": 5.1, "language": "zh"},
        {"id": 9, "slug": "return-shipping-en", "title": "Who pays for return shipping", "snippet": "Returns of faulty items are free; otherwise the return label is deducted.", "score": 2.3, "language": "en"},
    ])
}

#[test]
fn knowledge_base_search_with_a_preview() {
    let mut app = busy_app();
    key(&mut app, "s");
    search(&mut app, "退货运费");
    answer(&mut app, ApiRequest::KbSearch { query: "退货运费".into() }, return_hits());
    answer(
        &mut app,
        ApiRequest::KbArticle(4),
        json!({
            "id": 4, "slug": "return-shipping-zh", "title": "退货运费谁承担",
            "body": "# 退货运费谁承担\n\n- **质量问题**：运费由我们承担，寄回后凭单号报销。\n- **无理由退货**：运费由您承担。\n\n退货地址见 [退货说明](https://shop.example/returns)。\n\n> 提示：请在包裹内附上订单号 `20251120-8841`。",
            "tags": ["退货", "运费"], "intents": ["return_shipping"], "language": "zh", "updated_at": NOW - 86_400_000,
        }),
    );
    insta::assert_snapshot!(draw(&app, 120, 30).backend());
}

#[test]
fn knowledge_base_in_english_while_the_article_loads() {
    let mut app = busy_app();
    key(&mut app, "s");
    search(&mut app, "who pays return shipping");
    answer(
        &mut app,
        ApiRequest::KbSearch { query: "who pays return shipping".into() },
        json!([return_hits()[2], return_hits()[0]]),
    );
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

fn tickets() -> serde_json::Value {
    json!([
        {"id": 11, "subject": "补开发票：上海某某科技有限公司", "description": "客户要公司抬头的增值税普通发票。\n税号 91310000MA1FL8XX3C。",
         "status": "open", "priority": "high", "assignee": {"id": 7, "name": "小王"}, "group": "presales",
         "contact_id": 103, "conversation_id": 3, "created_by": "agent", "created_at": NOW - 3 * 3_600_000, "updated_at": NOW - 3_600_000},
        {"id": 12, "subject": "换货 42 → 43", "description": "尺码不合适，已确认 43 码有货。", "status": "pending", "priority": "normal",
         "assignee": {"id": 7, "name": "小王"}, "group": "aftersales", "created_by": "agent",
         "created_at": NOW - 2 * 86_400_000, "updated_at": NOW - 86_400_000},
        {"id": 9, "subject": "Refund not received", "description": "Left a message at 02:13.", "status": "solved", "priority": "urgent",
         "assignee": {"id": 7, "name": "小王"}, "contact_id": 140, "created_by": "customer",
         "created_at": NOW - 5 * 86_400_000, "updated_at": NOW - 4 * 86_400_000},
    ])
}

fn tickets_app() -> App {
    let mut app = busy_app();
    answer(&mut app, ApiRequest::Tickets(kefu_tui::api::TicketScope::Mine), tickets());
    key(&mut app, "T");
    answer(&mut app, ApiRequest::Tickets(kefu_tui::api::TicketScope::Mine), tickets());
    answer(
        &mut app,
        ApiRequest::Ticket(11),
        json!({
            "ticket": tickets()[0],
            "notes": [
                {"author": "小王", "body": "已请财务开票，预计明天寄出。", "at": NOW - 3_000_000},
                {"author": "李娜", "body": "快递单号 SF1234567890", "at": NOW - 3_600_000},
            ],
            "history": [
                {"at": NOW - 3 * 3_600_000, "kind": "ticket.created", "actor_kind": "agent", "actor_id": 7, "data": {"priority": "high"}},
                {"at": NOW - 3_600_000, "kind": "ticket.note", "actor_kind": "agent", "actor_id": 8, "data": {}},
                {"at": NOW - 3_000_000, "kind": "ticket.updated", "actor_kind": "agent", "actor_id": 7, "data": {"status": "open", "assignee_id": null}},
            ],
        }),
    );
    app
}

#[test]
fn tickets_with_details_notes_and_history() {
    let app = tickets_app();
    insta::assert_snapshot!(draw(&app, 120, 30).backend());
}

#[test]
fn ticket_status_prompt() {
    let mut app = tickets_app();
    key(&mut app, "A-s");
    key(&mut app, "down");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn new_ticket_from_the_conversation() {
    let mut app = busy_app();
    answer(&mut app, ApiRequest::Tickets(kefu_tui::api::TicketScope::Mine), tickets());
    key(&mut app, "N");
    key(&mut app, "down");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn a_conversation_handed_over_by_the_bot() {
    let mut app = busy_app();
    answer(&mut app, ApiRequest::Tickets(kefu_tui::api::TicketScope::Mine), tickets());
    let mut handed = conversation(5, "周女士", false, "web");
    handed["intent"] = json!("order_status");
    handed["group"] = json!("aftersales");
    handed["last_seq"] = json!(4);
    server(&mut app, json!({"type": "conversation", "change": "assigned", "conversation": handed}));
    let bot = |seq: u64, body: &str, minutes_ago: i64| {
        json!({
            "type": "message", "conversation_id": 5, "seq": seq, "author": {"kind": "bot"},
            "body": body, "format": "markdown", "at": NOW - minutes_ago * 60_000,
        })
    };
    server(&mut app, message(5, 1, true, "我的快递到哪了？", 3));
    server(
        &mut app,
        bot(
            2,
            "**查询物流**\n\n在「我的订单」里点开订单即可看到物流轨迹。\n\n这个回答有帮助吗？回复“有用”或“没用”；需要人工请回复“人工”。",
            3,
        ),
    );
    server(&mut app, message(5, 3, true, "没用，转人工", 2));
    server(&mut app, bot(4, "好的，正在为您转接人工客服，请稍候。", 2));
    key(&mut app, "4");
    key(&mut app, "v");
    answer(
        &mut app,
        ApiRequest::Contact(kefu_proto::ContactId(105)),
        json!({"id": 105, "name": "周女士", "vip": false, "channels": [{"kind": "web", "external_id": "w-5"}], "conversations": []}),
    );
    answer(
        &mut app,
        ApiRequest::Routing(kefu_proto::ConversationId(5)),
        json!({"conversation_id": 5, "decisions": [
            {"at": NOW - 120_000, "kind": "routing.assigned", "explanation": "The bot handed it over (the customer asked); 小王 of aftersales had room.", "details": {}},
        ]}),
    );
    insta::assert_snapshot!(draw(&app, 140, 30).backend());
}

/// A supervisor with the knowledge base open on 退货运费, the first article loaded.
fn supervisor_in_the_knowledge_base() -> App {
    let mut app = busy_app_as("supervisor");
    key(&mut app, "s");
    search(&mut app, "退货运费");
    answer(&mut app, ApiRequest::KbSearch { query: "退货运费".into() }, return_hits());
    answer(
        &mut app,
        ApiRequest::KbArticle(4),
        json!({
            "id": 4, "slug": "return-shipping-zh", "title": "退货运费谁承担",
            "body": "# 退货运费谁承担\n\n- **质量问题**：运费由我们承担。\n- **无理由退货**：运费由您承担。",
            "tags": ["退货", "运费"], "intents": ["return_shipping"], "language": "zh", "updated_at": NOW - 86_400_000,
        }),
    );
    app
}

#[test]
fn article_editor_writing_a_new_article_in_chinese() {
    let mut app = supervisor_in_the_knowledge_base();
    key(&mut app, "A-c");
    keys(&mut app, "发票抬头怎么改");
    key(&mut app, "enter");
    keys(&mut app, "发票，抬头");
    key(&mut app, "enter");
    keys(&mut app, "invoice_title");
    key(&mut app, "tab");
    key(&mut app, "tab");
    app.update(Action::Paste(
        "## 开票前\n在「我的订单」里点**修改发票**，改抬头和税号。\n\n## 开票后\n联系客服作废重开，一般 1-3 个工作日。"
            .into(),
    ));
    insta::assert_snapshot!(draw(&app, 120, 30).backend());
}

#[test]
fn article_editor_refused_by_the_relay() {
    let mut app = supervisor_in_the_knowledge_base();
    key(&mut app, "A-e");
    keys(&mut app, "（2025 版）");
    key(&mut app, "C-s");
    let Some(ApiRequest::KbReplaceArticle { id, article }) = app
        .article_editor
        .as_ref()
        .and_then(|e| e.saving.then(|| ApiRequest::KbReplaceArticle { id: 4, article: e.to_new_article().unwrap() }))
    else {
        panic!("the save was sent")
    };
    app.update(Action::Api {
        request: ApiRequest::KbReplaceArticle { id, article },
        result: Err(ApiFailure { status: Some(400), code: None, message: "at most 20 tags of 1 to 32 bytes".into() }),
    });
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

#[test]
fn deleting_an_article_is_confirmed_by_name() {
    let mut app = supervisor_in_the_knowledge_base();
    key(&mut app, "A-d");
    insta::assert_snapshot!(draw(&app, 100, 24).backend());
}

/// The monitor as the relay sends it at `NOW` (the alert limit is 3 minutes): a queue in
/// each band (any: 20 s, aftersales: 100 s, presales: 200 s) and one with nobody waiting;
/// four agents; one alert on.
fn monitor() -> serde_json::Value {
    let held = |id: i64, contact: &str, vip: bool, waiting_s: Option<i64>| {
        let mut c = json!({"id": id, "contact_id": 100 + id, "contact": contact, "vip": vip});
        if let Some(s) = waiting_s {
            c["awaiting_reply_since"] = json!(NOW - s * 1000);
        }
        c
    };
    json!({
        "type": "monitor", "at": NOW, "wait_alert_ms": 180_000,
        "groups": [
            {"waiting": 1, "oldest_queued_at": NOW - 20_000, "agents_online": 3, "capacity": 12},
            {"group": "aftersales", "waiting": 2, "oldest_queued_at": NOW - 100_000, "agents_online": 1, "capacity": 3},
            {"group": "presales", "waiting": 4, "oldest_queued_at": NOW - 200_000, "agents_online": 2, "capacity": 8},
            {"group": "vip", "waiting": 0, "agents_online": 1, "capacity": 5},
        ],
        "agents": [
            {"agent": {"id": 7, "name": "小王"}, "role": "supervisor", "presence": "online", "load": 3, "capacity": 5,
             "last_reply_at": NOW - 50_000,
             "conversations": [held(1, "李女士", true, Some(180)), held(2, "Tom Becker", false, Some(240)), held(3, "王先生", false, Some(60))]},
            {"agent": {"id": 8, "name": "李娜"}, "role": "agent", "presence": "online", "load": 3, "capacity": 3,
             "last_reply_at": NOW - 240_000,
             "conversations": [held(41, "赵先生", true, Some(120)), held(42, "孙先生", false, None), held(43, "Anna Schmidt", false, Some(15))]},
            {"agent": {"id": 10, "name": "张伟"}, "role": "agent", "presence": "away", "load": 1, "capacity": 4,
             "conversations": [held(44, "周女士", false, None)]},
            {"agent": {"id": 11, "name": "陈静"}, "role": "agent", "presence": "offline", "load": 0, "capacity": 5,
             "conversations": []},
        ],
        "alerts": [
            {"id": "long_wait:31", "kind": "long_wait", "message": "a customer has waited 3m in presales",
             "since": NOW - 30_000, "conversation_id": 31, "group": "presales"},
        ],
        "with_bot": [
            {"id": 51, "contact_id": 151, "contact": "刘女士", "vip": false, "group": "aftersales", "intent": "refund", "since": NOW - 95_000},
            {"id": 52, "contact_id": 152, "contact": "Mia Wong", "vip": true, "since": NOW - 20_000},
        ],
        "with_bot_total": 2,
    })
}

/// 小王, a supervisor, with the pane open on [`monitor`] ten seconds after it came, 李娜
/// selected; two alerts fired since, one of them resolved.
fn supervising_app() -> App {
    let mut app = busy_app_as("supervisor");
    key(&mut app, "M");
    server(&mut app, monitor());
    let alert = |id: &str, kind: &str, message: &str, since: i64| json!({"id": id, "kind": kind, "message": message, "since": since, "conversation_id": 41, "agent_id": 8});
    server(
        &mut app,
        json!({"type": "alert", "change": "fired", "at": NOW,
               "alert": alert("agent_not_replying:41", "agent_not_replying", "李娜 has not answered 赵先生 for 2m", NOW)}),
    );
    let csat = json!({"id": "csat_low", "kind": "csat_low", "message": "CSAT of the last 20 ratings: 3.1", "since": NOW - 600_000});
    server(&mut app, json!({"type": "alert", "change": "fired", "at": NOW - 600_000, "alert": csat}));
    server(&mut app, json!({"type": "alert", "change": "resolved", "at": NOW, "alert": csat}));
    app.update(Action::Tick(NOW + 10_000));
    key(&mut app, "j");
    app
}

/// The row of the screen that holds `text`, and the column where it starts.
fn find(terminal: &Terminal<TestBackend>, text: &str) -> (u16, u16) {
    let buffer = terminal.backend().buffer();
    for y in 0..buffer.area.height {
        let mut row = String::new();
        let mut columns = Vec::new();
        let mut x = 0;
        while x < buffer.area.width {
            let symbol = buffer[(x, y)].symbol();
            for _ in symbol.chars() {
                columns.push(x);
            }
            row.push_str(symbol);
            // A wide character covers the next cell too.
            x += (unicode_width::UnicodeWidthStr::width(symbol) as u16).max(1);
        }
        if let Some(at) = row.find(text) {
            return (columns[row[..at].chars().count()], y);
        }
    }
    panic!("{text:?} is not on the screen");
}

/// Row `y` of the screen as text.
fn row_text(terminal: &Terminal<TestBackend>, y: u16) -> String {
    let buffer = terminal.backend().buffer();
    let mut row = String::new();
    let mut x = 0;
    while x < buffer.area.width {
        let symbol = buffer[(x, y)].symbol();
        row.push_str(symbol);
        x += (unicode_width::UnicodeWidthStr::width(symbol) as u16).max(1);
    }
    row
}

/// The colour `text` is drawn in (its first cell).
fn colour_of(terminal: &Terminal<TestBackend>, text: &str) -> Color {
    let (x, y) = find(terminal, text);
    terminal.backend().buffer()[(x, y)].fg
}

#[test]
fn supervisor_pane_with_queues_in_each_band_agents_and_alerts() {
    let app = supervising_app();
    let terminal = draw(&app, 140, 30);
    insta::assert_snapshot!(terminal.backend());
    // The longest waits, counted from the relay's clock plus the 10 s since the monitor
    // came, in their SLA colours: under half the limit, under it, past it.
    assert_eq!(colour_of(&terminal, "● 30s"), Color::Green);
    assert_eq!(colour_of(&terminal, "▲ 1m50s"), Color::Yellow);
    assert_eq!(colour_of(&terminal, "■ 3m30s"), Color::Red);
    // Nobody waits in vip: no colour to give.
    let (_, vip) = find(&terminal, "vip ");
    let (dash, row) = find(&terminal, "—");
    assert_eq!((row, terminal.backend().buffer()[(dash, row)].fg), (vip, Color::DarkGray));
    // 李娜 is full and selected; her conversations are listed with their waits.
    let (x, lina) = find(&terminal, "李娜");
    let (_, full) = find(&terminal, "3/3");
    assert_eq!(lina, full);
    assert!(terminal.backend().buffer()[(x, lina)].modifier.contains(Modifier::REVERSED), "highlighted");
    find(&terminal, "会话 李娜");
    find(&terminal, "赵先生 VIP");
    // The bot's conversations, the longest with it first: what it is about, where it would
    // go, for how long.
    let (_, liu) = find(&terminal, "刘女士");
    let (_, mia) = find(&terminal, "Mia Wong VIP");
    assert!(liu < mia);
    let liu_row = row_text(&terminal, liu);
    let columns: Vec<&str> = liu_row.split('│').find(|c| c.contains("刘女士")).unwrap().split_whitespace().collect();
    assert_eq!(columns, ["刘女士", "#51", "refund", "aftersales", "1m"], "{liu_row}");
    find(&terminal, "机器人 Bot (2)");
    // Alerts newest first, the resolved one marked; the status bar counts those on.
    let (_, newest) = find(&terminal, "坐席未回复 agent not replying");
    let (_, older) = find(&terminal, "排队过久 long wait");
    let (_, resolved) = find(&terminal, "已解除 resolved · 满意度低 CSAT low");
    assert!(newest < older && older < resolved);
    find(&terminal, "告警 alerts 2");
    find(&terminal, "MONITOR");
}

#[test]
fn an_agent_pressing_the_supervisor_key_is_told_why_nothing_opens() {
    let mut app = busy_app();
    key(&mut app, "M");
    let terminal = draw(&app, 140, 24);
    find(&terminal, "the supervisor pane is for supervisors and admins");
    assert!(!app.supervisor.open);
}

#[test]
fn observing_a_conversation_in_a_read_only_tab_with_a_whisper() {
    let mut app = supervising_app();
    key(&mut app, "tab");
    key(&mut app, "o");
    let mut observed = conversation(41, "赵先生", true, "app");
    observed["assignee"] = json!({"id": 8, "name": "李娜"});
    observed["last_seq"] = json!(3);
    server(&mut app, json!({"type": "conversation", "change": "observed", "conversation": observed}));
    server(&mut app, message(41, 1, true, "退款什么时候到账？", 4));
    server(
        &mut app,
        json!({"type": "message", "conversation_id": 41, "seq": 2, "author": {"kind": "agent", "id": 8, "name": "李娜"},
               "body": "您好，我帮您查一下。", "format": "text", "at": NOW - 180_000}),
    );
    server(&mut app, message(41, 3, true, "已经等了一周了", 2));
    key(&mut app, "w");
    key(&mut app, "i");
    keys(&mut app, "先道歉，再确认退款单号");
    let terminal = draw(&app, 140, 30);
    insta::assert_snapshot!(terminal.backend());
    find(&terminal, "4:旁听");
    find(&terminal, "旁听 observing · 李娜");
    find(&terminal, "悄悄话 Whisper");
}

/// A report of the last 7 days as the relay serves it.
fn sample_report() -> serde_json::Value {
    let durations = |p50: Option<i64>, p90: Option<i64>| json!({"count": 40, "mean_ms": p50.map(|p| p as f64 * 1.2), "p50_ms": p50, "p90_ms": p90});
    let figures = |conversations: u64, resolved: u64, p50: i64, csat: [u64; 5], transfers: u64| {
        let ratings: u64 = csat.iter().sum();
        let average = (ratings > 0)
            .then(|| csat.iter().enumerate().map(|(i, n)| (i as u64 + 1) * n).sum::<u64>() as f64 / ratings as f64);
        json!({
            "conversations": conversations, "queued": conversations - 4, "resolved": resolved, "bot_resolved": 4,
            "abandoned": 3, "still_open": 2,
            "resolution_rate": resolved as f64 / conversations as f64,
            "abandonment_rate": 3.0 / (conversations - 4) as f64,
            "first_response": durations(Some(p50), Some(p50 * 4)),
            "service_level": {"answered": 100, "within_15s": 41, "within_60s": 88, "share_15s": 0.41, "share_60s": 0.88},
            "reply_time": durations(Some(30_000), Some(90_000)),
            "handle_time": durations(Some(420_000), Some(1_500_000)),
            "resolution_time": durations(Some(610_000), Some(3_000_000)),
            "transfers": transfers, "transferred_conversations": transfers, "reopens": 2, "reopened_conversations": 2,
            "csat": {"ratings": ratings, "average": average, "distribution": csat},
        })
    };
    // Busy mornings and evenings, a quiet night.
    let day: Vec<u64> = (0..24)
        .map(|h| match h {
            0..=7 => 0,
            8..=11 => 3 + h % 3,
            12..=17 => 2,
            18..=21 => 4,
            _ => 1,
        })
        .collect();
    let counts: Vec<Vec<u64>> = (0..7).map(|d| day.iter().map(|n| n + u64::from(d < 5)).collect()).collect();
    json!({
        "query": {"from": NOW - 7 * 86_400_000, "to": NOW, "tz_offset_minutes": 480, "group": null, "agent": null, "channel": null},
        "overall": figures(120, 96, 21_000, [2, 3, 10, 40, 65], 12),
        "by_group": [],
        "by_agent": [
            {"agent_id": 7, "name": "小王", "figures": figures(52, 45, 18_000, [0, 1, 4, 20, 30], 3)},
            {"agent_id": 8, "name": "李娜", "figures": figures(41, 33, 25_000, [2, 2, 5, 15, 25], 6)},
            {"agent_id": 10, "name": "张伟", "figures": figures(23, 14, 52_000, [0, 0, 1, 5, 10], 3)},
        ],
        "by_channel": [],
        "arrivals": {"tz_offset_minutes": 480, "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "counts": counts},
    })
}

#[test]
fn report_of_seven_days_with_charts_and_agents() {
    let mut app = busy_app_as("supervisor");
    key(&mut app, "R");
    let window = app.report.report.as_ref().map(|(w, _)| *w).expect("the report was asked for");
    assert_eq!(window.tz_offset_minutes, 480, "in the local time zone");
    app.update(Action::Api {
        request: ApiRequest::Report(window),
        result: Ok(ApiAnswer::Report(Box::new(serde_json::from_value(sample_report()).unwrap()))),
    });
    key(&mut app, "down");
    let terminal = draw(&app, 140, 34);
    insta::assert_snapshot!(terminal.backend());
    // The range, and the figures a supervisor reads first.
    let (selected, row) = find(&terminal, " 7 天 7 days ");
    assert_eq!(terminal.backend().buffer()[(selected, row)].modifier, Modifier::REVERSED);
    find(&terminal, "2025-11-15 00:00 → 2025-11-21 08:00 (UTC+08:00)");
    for figure in ["120", "80.0%", "2.6%", "p50 21s", "· p90 1m24s", "15s 41.0%", "60s 88.0%", "4.36 / 5", "5★ 65"] {
        find(&terminal, figure);
    }
    find(&terminal, "peak");
    // The agents' table, 李娜 highlighted.
    let (_, lina) = find(&terminal, "李娜   ");
    let (x, _) = find(&terminal, "坐席 Agent");
    assert_eq!(terminal.backend().buffer()[(x, lina)].modifier, Modifier::REVERSED);
}

/// Every row of the screen as text (wide characters once).
fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let mut x = 0;
        while x < buffer.area.width {
            let symbol = buffer[(x, y)].symbol();
            text.push_str(symbol);
            x += (unicode_width::UnicodeWidthStr::width(symbol) as u16).max(1);
        }
        text.push('\n');
    }
    text
}

#[test]
fn a_masked_message_then_revealed() {
    let mut app = busy_app();
    let mut masked = message(1, 4, true, "我的手机 138****5678，发票请寄到 z***@example.com", 1);
    masked["masked"] = json!(true);
    server(&mut app, masked);
    let terminal = draw(&app, 140, 24);
    insta::assert_snapshot!("masked_message", terminal.backend());
    // The masked message says so, in its header.
    let (_, header) = find(&terminal, "已遮盖 masked");
    let (_, body) = find(&terminal, "138****5678");
    assert_eq!(body, header + 1, "the tag is on the masked message's header");
    assert_eq!(colour_of(&terminal, "已遮盖 masked"), Color::DarkGray, "discreet");
    // V asks first, saying the reveal is logged.
    key(&mut app, "V");
    let terminal = draw(&app, 140, 24);
    find(&terminal, "李女士 #1: show the personal data masked in 1 message?");
    find(&terminal, "the relay records who revealed it in the audit log");
    let request = app.update(Action::Key(KeyPress::parse("enter").unwrap()));
    let [kefu_tui::app::Effect::Api(request)] = &request[..] else { panic!("one request: {request:?}") };
    answer(
        &mut app,
        request.clone(),
        json!({"conversation_id": 1, "messages": [{"seq": 4, "body": "我的手机 13812345678，发票请寄到 zhang.li@example.com"}]}),
    );
    let terminal = draw(&app, 140, 24);
    insta::assert_snapshot!("revealed_message", terminal.backend());
    let (_, header) = find(&terminal, "已显示 revealed");
    let (_, body) = find(&terminal, "13812345678");
    assert_eq!(body, header + 1);
    assert!(!screen_text(&terminal).contains("138****5678"), "the masked text is gone");
    assert_eq!(colour_of(&terminal, "已显示 revealed"), Color::Yellow, "a reminder, not hidden away");
    find(&terminal, "已显示 revealed, recorded in the audit log: 1 message of 李女士");
}

#[test]
fn audit_log_with_a_few_events() {
    let mut app = busy_app_as("admin");
    key(&mut app, "A");
    answer(
        &mut app,
        ApiRequest::Agents,
        json!([
            {"id": 7, "name": "小王", "email": "wang@shop.example", "role": "admin", "max_concurrent": 5},
            {"id": 8, "name": "李娜", "email": "li@shop.example", "role": "agent", "max_concurrent": 3},
        ]),
    );
    let minute = 60_000;
    answer(
        &mut app,
        ApiRequest::Events { after: 0, kind: None, limit: 1000 },
        json!([
            {"id": 101, "at": NOW - 9 * minute, "kind": "routing.assigned", "actor_kind": "system", "conversation_id": 1,
             "data": {"agent_id": 7, "reason": "least_loaded"}},
            {"id": 102, "at": NOW - 7 * minute, "kind": "alert.fired", "actor_kind": "system", "conversation_id": 2,
             "data": {"alert": "long_wait:2", "kind": "long_wait"}},
            {"id": 103, "at": NOW - 5 * minute, "kind": "pii.revealed", "actor_kind": "agent", "actor_id": 8,
             "conversation_id": 1, "data": {"seqs": [4]}},
            {"id": 104, "at": NOW - 3 * minute, "kind": "agent.presence_set", "actor_kind": "agent", "actor_id": 9,
             "data": {"agent_id": 8, "presence": "away"}},
            {"id": 105, "at": NOW - minute, "kind": "conversation.closed", "actor_kind": "customer", "actor_id": 103,
             "conversation_id": 3, "data": {"resolution": "answered"}},
        ]),
    );
    key(&mut app, "down");
    key(&mut app, "down");
    let terminal = draw(&app, 140, 30);
    insta::assert_snapshot!(terminal.backend());
    // Newest on top, each with its time, kind, actor by name (else kind#id), conversation
    // with its customer, and data.
    let (_, newest) = find(&terminal, "conversation.closed");
    let (_, oldest) = find(&terminal, "routing.assigned");
    assert!(newest < oldest);
    let (_, revealed) = find(&terminal, "11-21 07:55:00 pii.revealed");
    for cell in ["李娜", "#1 李女士", "seqs=[4]"] {
        assert_eq!(find(&terminal, cell).1, revealed, "{cell} on the pii.revealed row");
    }
    find(&terminal, "agent#9");
    find(&terminal, "customer#103");
    // The highlighted event (the third from the top) in full below the list.
    let (x, _) = find(&terminal, "11-21 07:55:00 pii.revealed");
    assert!(terminal.backend().buffer()[(x, revealed)].modifier.contains(Modifier::REVERSED));
    find(&terminal, "#103 pii.revealed · 2025-11-21 · 李娜 (agent#8) · 会话 conversation #1 李女士 (open here)");
    // Typing a kind prefix narrows the list.
    keys(&mut app, "alert");
    let terminal = draw(&app, 140, 30);
    find(&terminal, "alert.fired");
    let screen = screen_text(&terminal);
    assert!(!screen.contains("pii.revealed") && !screen.contains("routing.assigned"), "{screen}");
    find(&terminal, "Audit log (1)");
}

#[test]
fn a_supervisor_pressing_the_audit_key_is_told_it_is_for_admins() {
    let mut app = busy_app_as("supervisor");
    key(&mut app, "A");
    let terminal = draw(&app, 140, 24);
    find(&terminal, "the audit log is for admins; you are signed in as a supervisor");
    assert!(app.overlay.is_none());
}
