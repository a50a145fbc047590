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
