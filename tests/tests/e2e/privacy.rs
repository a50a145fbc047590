//! A customer's data on request: the export holds all of it, and erasure leaves none of
//! it anywhere on disk — the database file, its write-ahead log, the attachment files —
//! while the history keeps its shape.

use std::path::Path;

use kefu_proto::frame::{
    BodyFormat, ClientFrame, CloseConversation, ConversationChange, HelloAuth, RateConversation, Role, SendMessage,
    ServerFrame, Session,
};
use kefu_proto::{ContactId, ErrorCode};
use kefu_relay::Store;
use kefu_relay::erasure::ERASED;
use kefu_tests::{TestRelay, http_client};
use reqwest::Method;
use serde_json::json;

/// What the customer gave away, each of which must be gone after erasure.
const PERSONAL: [&str; 6] =
    ["张三丰", "13812345678", "zhang.sanfeng@example.com", "建国路88号", "11010519491231002X", "身份证照片"];

/// Every occurrence of `needle` in the data dir's files (database, log, attachments).
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn an_erased_customer_leaves_no_personal_data_on_disk_and_the_export_had_it_all() -> anyhow::Result<()> {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("li@shop.example", "小李", Role::Admin, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.connect("/ws/customer").await?;
    let auth = HelloAuth::Customer {
        widget_key: relay.widget_key.clone(),
        customer_token: None,
        name: Some("张三丰".into()),
        group: None,
        customer_id: None,
        customer_signature: None,
    };
    customer.hello(auth, vec![]).await?;
    let contact = match &customer.welcome.as_ref().expect("welcomed").session {
        Session::Customer { contact_id, .. } => *contact_id,
        _ => unreachable!("a customer session"),
    };
    let words = "我是张三丰，手机 13812345678，邮箱 zhang.sanfeng@example.com，送到建国路88号";
    let conversation = customer.say_acked(None, "c1", words).await?.conversation_id;
    agent.expect_assignment_of(conversation).await?;
    let file = http_client()
        .post(relay.url("/api/v1/attachments?name=身份证照片.txt"))
        .bearer_auth(customer.customer_token())
        .body("11010519491231002X")
        .send()
        .await?;
    assert_eq!(file.status(), 201);
    agent.say_acked(Some(conversation), "a1", "好的张先生，已记下 13812345678").await?;
    let note = ClientFrame::Send(SendMessage {
        client_msg_id: "n1".into(),
        conversation_id: Some(conversation),
        body: "客户邮箱 zhang.sanfeng@example.com".into(),
        format: BodyFormat::Text,
        internal: true,
        attachments: vec![],
    });
    agent.send(&note).await?;
    let ticket =
        json!({"subject": "回访张三丰 13812345678", "description": "地址 建国路88号", "conversation_id": conversation});
    let (status, ticket) = relay.api(Method::POST, "/api/v1/tickets", &token, Some(ticket)).await?;
    assert_eq!(status, 201, "{ticket}");
    let ticket_id = ticket["id"].as_i64().or_else(|| ticket["ticket"]["id"].as_i64()).expect("an id");
    let note = json!({"body": "已联系 zhang.sanfeng@example.com"});
    let (status, _) =
        relay.api(Method::POST, &format!("/api/v1/tickets/{ticket_id}/notes"), &token, Some(note)).await?;
    assert_eq!(status, 204);
    let close = CloseConversation { conversation_id: conversation, resolution: Some("已回电 13812345678".into()) };
    agent.send(&ClientFrame::Close(close)).await?;
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Closed => Some(()),
            _ => None,
        })
        .await?;
    let rate =
        RateConversation { conversation_id: Some(conversation), score: 2, comment: Some("张三丰 不满意".into()) };
    customer.send(&ClientFrame::Rate(rate)).await?;
    customer.send(&ClientFrame::Ping(Default::default())).await?;
    customer.expect(|f| matches!(f, ServerFrame::Pong(_)).then_some(())).await?;

    // Another customer, still talking: not erasable yet.
    let mut other = relay.customer().await?;
    let other_conversation = other.say_acked(None, "o1", "在吗").await?.conversation_id;
    let other_contact = match &other.welcome.as_ref().expect("welcomed").session {
        Session::Customer { contact_id, .. } => *contact_id,
        _ => unreachable!("a customer session"),
    };
    let _ = other_conversation;

    let store = Store::open(&relay.data_dir).await?;
    let workspace = kefu_relay::admin::show_workspace(&store, "default").await?.id;
    let export = serde_json::to_string(&store.export_contact(workspace, contact, "cli").await?)?;
    // Everything but the file's bytes, which the export names (the CLI copies the files).
    for needle in PERSONAL.iter().filter(|n| **n != "11010519491231002X") {
        assert!(export.contains(needle), "the export holds {needle}");
    }
    let refused = store.erase_contact(workspace, other_contact, &relay.data_dir, "cli").await.unwrap_err();
    assert_eq!(refused.to_client().code, ErrorCode::Conflict);
    let unknown = store.erase_contact(workspace, ContactId(999_999), &relay.data_dir, "cli").await.unwrap_err();
    assert_eq!(unknown.to_client().code, ErrorCode::NotFound);

    let erased = store.erase_contact(workspace, contact, &relay.data_dir, "cli").await?;
    assert_eq!((erased.conversations, erased.messages, erased.attachments, erased.tickets), (1, 3, 1, 1));
    store.close().await;
    for needle in PERSONAL {
        assert_eq!(files_holding(&relay.data_dir, needle), Vec::<String>::new(), "{needle} is still on disk");
    }

    // The history keeps its shape: the customer's words erased, the agent's masked.
    let (_, page) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), &token, None).await?;
    let bodies: Vec<&str> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, [ERASED, "好的张先生，已记下 138****5678", "客户邮箱 z***@example.com"]);
    // And the erasure is on record.
    let (_, log) = relay.api(Method::GET, "/api/v1/events?kind=contact.", &token, None).await?;
    let kinds: Vec<&str> = log.as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["contact.exported", "contact.erased"]);
    Ok(())
}

#[tokio::test]
async fn masked_roles_see_personal_data_masked_until_an_audited_reveal() -> anyhow::Result<()> {
    let relay = TestRelay::start_with(|c| c.privacy.masked_roles = vec![Role::Agent]).await?;
    let agent_token = relay.agent_with("wang@shop.example", "小王", Role::Agent, 5, "").await?;
    let admin_token = relay.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await?;
    let mut agent = relay.agent(&agent_token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "你好").await?.conversation_id;
    agent.expect_assignment_of(conversation).await?;
    agent.expect_message().await?;
    let mut admin = relay.agent(&admin_token, vec![]).await?;
    let observe = kefu_proto::frame::ObserveConversation { conversation_id: conversation, active: true };
    admin.send(&ClientFrame::Observe(observe)).await?;
    admin.messages_until("你好").await?;

    customer.say_acked(None, "c2", "电话 13812345678，邮箱 li.na@example.com").await?;
    let live = agent.expect_message().await?;
    assert_eq!(live.body, "电话 138****5678，邮箱 l***@example.com");
    assert!(live.masked);
    let unmasked = admin.expect_message().await?;
    assert_eq!((unmasked.body.as_str(), unmasked.masked), ("电话 13812345678，邮箱 li.na@example.com", false));

    // The history and a resumed connection are masked the same way for the agent.
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let (_, page) = relay.api(Method::GET, &path, &agent_token, None).await?;
    assert_eq!(page["messages"][1]["body"], "电话 138****5678，邮箱 l***@example.com");
    assert_eq!(page["messages"][1]["masked"], true);
    let (_, page) = relay.api(Method::GET, &path, &admin_token, None).await?;
    assert_eq!(page["messages"][1]["body"], "电话 13812345678，邮箱 li.na@example.com");
    let mut again = relay.agent(&agent_token, vec![]).await?;
    let resumed = again.messages_until("电话 138****5678，邮箱 l***@example.com").await?;
    assert!(resumed.last().is_some_and(|m| m.masked));

    // A reveal shows it, and says so in the audit log.
    let (status, revealed) =
        relay.api(Method::POST, &format!("/api/v1/conversations/{conversation}/reveal"), &agent_token, None).await?;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["messages"], json!([{"seq": 2, "body": "电话 13812345678，邮箱 li.na@example.com"}]));
    let (_, log) = relay.api(Method::GET, "/api/v1/events?kind=pii.revealed", &admin_token, None).await?;
    let entry = &log[0];
    assert_eq!(
        (entry["actor_kind"].as_str(), entry["conversation_id"].as_i64()),
        (Some("agent"), Some(conversation.0))
    );
    assert!(!log.to_string().contains("13812345678"), "the log never holds the data");
    Ok(())
}

#[tokio::test]
async fn retention_deletes_closed_conversations_past_their_time_and_keeps_the_rest() -> anyhow::Result<()> {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("li@shop.example", "小李", Role::Admin, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut old = relay.customer().await?;
    let closed = old.say_acked(None, "o1", "an old question").await?.conversation_id;
    agent.expect_assignment_of(closed).await?;
    let file = http_client()
        .post(relay.url("/api/v1/attachments?name=old.txt"))
        .bearer_auth(old.customer_token())
        .body("old file")
        .send()
        .await?;
    assert_eq!(file.status(), 201);
    let ticket = json!({"subject": "follow up", "description": "call back", "conversation_id": closed});
    let (_, ticket) = relay.api(Method::POST, "/api/v1/tickets", &token, Some(ticket)).await?;
    let ticket_id = ticket["id"].as_i64().or_else(|| ticket["ticket"]["id"].as_i64()).expect("an id");
    agent.send(&ClientFrame::Close(CloseConversation { conversation_id: closed, resolution: None })).await?;
    old.expect(|f| match f {
        ServerFrame::Conversation(c) if c.change == ConversationChange::Closed => Some(()),
        _ => None,
    })
    .await?;
    let mut current = relay.customer().await?;
    let open = current.say_acked(None, "n1", "a question today").await?.conversation_id;

    let store = Store::open(&relay.data_dir).await?;
    let cutoff = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64 + 1;
    let purged = store.purge_closed_before(cutoff, &relay.data_dir).await?;
    assert_eq!((purged.conversations, purged.messages, purged.files), (1, 1, 1));
    assert_eq!(store.purge_closed_before(cutoff, &relay.data_dir).await?.conversations, 0, "nothing twice");
    let audit = store.verify_audit().await?;
    assert_eq!(
        (audit.broken_at, audit.unchained),
        (None, 0),
        "every entry, the tickets' and the purge's too, is chained"
    );
    store.close().await;

    let (status, _) = relay.api(Method::GET, &format!("/api/v1/conversations/{closed}/messages"), &token, None).await?;
    assert_eq!(status, 404);
    let (status, page) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{open}/messages"), &token, None).await?;
    assert_eq!((status, page["messages"][0]["body"].as_str()), (200, Some("a question today")));
    let (status, ticket) = relay.api(Method::GET, &format!("/api/v1/tickets/{ticket_id}"), &token, None).await?;
    assert_eq!(status, 200, "the ticket stays");
    assert!(ticket.to_string().contains("follow up"));
    assert_eq!(std::fs::read_dir(relay.data_dir.join("attachments"))?.count(), 0, "the file is gone");
    let (_, log) = relay.api(Method::GET, "/api/v1/events?kind=retention.", &token, None).await?;
    assert_eq!(log[0]["data"]["conversations"], 1);
    Ok(())
}
