//! What agents work with besides chatting: private notes, history pages, the customer
//! panel, canned replies, and files.

use kefu_proto::ErrorCode;
use kefu_proto::frame::{ClientFrame, CloseConversation, ConversationChange, Role, SendMessage, ServerFrame, Session};
use kefu_tests::{TestRelay, http_client};
use reqwest::Method;
use serde_json::json;

type Result = anyhow::Result<()>;

fn note(conversation: kefu_proto::ConversationId, id: &str, body: &str) -> ClientFrame {
    ClientFrame::Send(SendMessage {
        client_msg_id: id.into(),
        conversation_id: Some(conversation),
        body: body.into(),
        format: Default::default(),
        internal: true,
        attachments: vec![],
    })
}

#[tokio::test]
async fn private_notes_reach_agents_only() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("n@shop.example", "Nina", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut second_screen = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "我要换货").await?.conversation_id;
    agent.expect_assigned().await?;
    second_screen.expect_assigned().await?;

    agent.send(&note(conversation, "n1", "老客户，上次换过一次")).await?;
    let ack = agent.expect(|f| match f {
        ServerFrame::Ack(a) if a.client_msg_id == "n1" => Some(a.seq),
        _ => None,
    });
    assert_eq!(ack.await?, 2);
    let seen = second_screen.messages_until("老客户，上次换过一次").await?;
    assert!(seen.last().unwrap().internal);
    agent.say_acked(Some(conversation), "a1", "好的，请提供订单号").await?;
    let got = customer.expect_message().await?;
    assert_eq!((got.seq, got.body.as_str()), (3, "好的，请提供订单号"), "the note was never sent to the customer");

    // Nor on resume from the start.
    let token_c = customer.customer_token();
    customer.drop_connection();
    let mut customer = relay.customer_resuming(Some(token_c), vec![]).await?;
    let history = customer.messages_until("好的，请提供订单号").await?;
    assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 3]);

    // Customers cannot write notes.
    customer.send(&ClientFrame::Send(SendMessage { internal: true, ..text("c2", "sneaky") })).await?;
    assert_eq!(customer.expect_error().await?.code, ErrorCode::Forbidden);

    // History through the API shows the note to agents.
    let (status, page) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), &token, None).await?;
    assert_eq!(status, 200);
    assert_eq!(page["messages"][1]["internal"], true);
    relay.stop().await?;
    Ok(())
}

fn text(id: &str, body: &str) -> SendMessage {
    SendMessage {
        client_msg_id: id.into(),
        conversation_id: None,
        body: body.into(),
        format: Default::default(),
        internal: false,
        attachments: vec![],
    }
}

#[tokio::test]
async fn history_comes_in_pages_both_ways() -> Result {
    let relay = TestRelay::start_with(|c| {
        c.limits.frames_per_second = 1000;
        c.limits.frame_burst = 1000;
    })
    .await?;
    let token = relay.agent_with("p@shop.example", "Pat", Role::Agent, 5, "").await?;
    let mut customer = relay.customer().await?;
    let mut conversation = None;
    for i in 1..=120 {
        conversation = Some(customer.say_acked(None, &format!("m{i}"), &format!("消息 {i}")).await?.conversation_id);
    }
    let conversation = conversation.unwrap();
    let path = |q: &str| format!("/api/v1/conversations/{conversation}/messages{q}");
    let seqs = |page: &serde_json::Value| -> Vec<u64> {
        page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect()
    };
    let (_, first) = relay.api(Method::GET, &path("?limit=50"), &token, None).await?;
    assert_eq!((seqs(&first), first["more"].as_bool()), ((1..=50).collect(), Some(true)));
    let (_, latest) = relay.api(Method::GET, &path("?before=121&limit=50"), &token, None).await?;
    assert_eq!((seqs(&latest), latest["more"].as_bool()), ((71..=120).collect(), Some(true)));
    let (_, older) = relay.api(Method::GET, &path("?before=71&limit=100"), &token, None).await?;
    assert_eq!((seqs(&older), older["more"].as_bool()), ((1..=70).collect(), Some(false)));
    let (_, rest) = relay.api(Method::GET, &path("?after=100"), &token, None).await?;
    assert_eq!((seqs(&rest), rest["more"].as_bool()), ((101..=120).collect(), Some(false)));
    let (status, _) = relay.api(Method::GET, &path("?before=5&after=1"), &token, None).await?;
    assert_eq!(status, 400);
    let (status, _) = relay.api(Method::GET, "/api/v1/conversations/9999/messages", &token, None).await?;
    assert_eq!(status, 404);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_customer_panel_lists_every_conversation_with_its_outcome() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("q@shop.example", "Quinn", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let Session::Customer { contact_id, .. } = customer.welcome.clone().unwrap().session else { unreachable!() };
    let first = customer.say_acked(None, "c1", "第一次咨询").await?.conversation_id;
    agent.expect_assigned().await?;
    agent
        .send(&ClientFrame::Close(CloseConversation { conversation_id: first, resolution: Some("answered".into()) }))
        .await?;
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Closed => Some(()),
            _ => None,
        })
        .await?;
    let second = customer.say_acked(None, "c2", "又来了").await?.conversation_id;
    assert_ne!(first, second);

    let (status, panel) = relay.api(Method::GET, &format!("/api/v1/contacts/{contact_id}"), &token, None).await?;
    assert_eq!(status, 200);
    let conversations = panel["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2);
    assert_eq!(conversations[0]["id"], second.0);
    assert_eq!(conversations[1]["resolution"], "answered");
    assert_eq!(conversations[1]["agent"], "Quinn");
    assert_eq!(panel["channels"][0]["kind"], "web");
    let (status, _) = relay.api(Method::GET, "/api/v1/contacts/424242", &token, None).await?;
    assert_eq!(status, 404);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn canned_replies_are_shared_or_personal() -> Result {
    let relay = TestRelay::start().await?;
    let lead = relay.agent_with("lead@shop.example", "Lead", Role::Supervisor, 5, "").await?;
    let amy = relay.agent_with("amy@shop.example", "Amy", Role::Agent, 5, "").await?;
    let bob = relay.agent_with("bob@shop.example", "Bob", Role::Agent, 5, "").await?;
    let shared = json!({"shortcut": "ship", "title": "发货时间", "body": "您好 {customer.name}，订单一般 48 小时内发货。", "scope": "workspace"});
    let (status, _) = relay.api(Method::POST, "/api/v1/canned", &amy, Some(shared.clone())).await?;
    assert_eq!(status, 403, "agents make personal replies only");
    let (status, _) = relay.api(Method::POST, "/api/v1/canned", &lead, Some(shared.clone())).await?;
    assert_eq!(status, 201);
    let (status, _) = relay.api(Method::POST, "/api/v1/canned", &lead, Some(shared)).await?;
    assert_eq!(status, 409);
    let mine =
        json!({"shortcut": "thanks", "title": "Thanks", "body": "Thanks for waiting, {customer.name}! — {agent.name}"});
    let (status, created) = relay.api(Method::POST, "/api/v1/canned", &amy, Some(mine)).await?;
    assert_eq!((status, created["scope"].as_str()), (201, Some("personal")));
    let bad = json!({"shortcut": "Bad Shortcut", "title": "x", "body": "y"});
    assert_eq!(relay.api(Method::POST, "/api/v1/canned", &amy, Some(bad)).await?.0, 400);

    let shortcuts = |list: &serde_json::Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|r| r["shortcut"].as_str().unwrap().to_string()).collect()
    };
    let (_, for_amy) = relay.api(Method::GET, "/api/v1/canned", &amy, None).await?;
    assert_eq!(shortcuts(&for_amy), vec!["ship", "thanks"]);
    let (_, for_bob) = relay.api(Method::GET, "/api/v1/canned", &bob, None).await?;
    assert_eq!(shortcuts(&for_bob), vec!["ship"]);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(relay.api(Method::DELETE, &format!("/api/v1/canned/{id}"), &bob, None).await?.0, 404);
    assert_eq!(relay.api(Method::DELETE, &format!("/api/v1/canned/{id}"), &amy, None).await?.0, 204);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn files_are_checked_stored_and_served_only_to_who_may_see_them() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("f@shop.example", "Fay", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let http = http_client();

    // The customer's first message is a photo, uploaded before any conversation exists.
    let mut customer = relay.customer().await?;
    let customer_token = customer.customer_token();
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR fake image".to_vec();
    let upload = http
        .post(relay.url("/api/v1/attachments?name=../../破损照片.png"))
        .bearer_auth(&customer_token)
        .body(png.clone())
        .send()
        .await?;
    assert_eq!(upload.status(), 201);
    let photo: serde_json::Value = upload.json().await?;
    assert_eq!((photo["name"].as_str(), photo["content_type"].as_str()), (Some("破损照片.png"), Some("image/png")));
    let photo_id = photo["id"].as_str().unwrap().to_string();
    customer.send(&ClientFrame::Send(SendMessage { attachments: vec![photo_id.clone()], ..text("c1", "") })).await?;
    let conversation = agent.expect_assigned().await?.conversation.id;
    let m = agent.expect_message().await?;
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].id, photo_id);

    // The agent answers with a PDF.
    let pdf = b"%PDF-1.7\n% invoice".to_vec();
    let upload = http
        .post(relay.url(&format!("/api/v1/conversations/{conversation}/attachments?name=发票.pdf")))
        .bearer_auth(&token)
        .body(pdf.clone())
        .send()
        .await?;
    assert_eq!(upload.status(), 201);
    let invoice: serde_json::Value = upload.json().await?;
    let invoice_id = invoice["id"].as_str().unwrap().to_string();
    agent
        .send(&ClientFrame::Send(SendMessage {
            conversation_id: Some(conversation),
            attachments: vec![invoice_id.clone()],
            ..text("a1", "这是您的发票")
        }))
        .await?;
    let got = customer.expect_message().await?;
    assert_eq!(got.attachments[0].content_type, "application/pdf");

    // The customer downloads it, with safe headers.
    let download =
        http.get(relay.url(&format!("/api/v1/attachments/{invoice_id}"))).bearer_auth(&customer_token).send().await?;
    assert_eq!(download.status(), 200);
    let headers = download.headers().clone();
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-disposition"].to_str()?.starts_with("attachment; filename*=UTF-8''"));
    assert_eq!(download.bytes().await?.to_vec(), pdf);

    // Another customer sees nothing, and cannot attach someone else's file.
    let mut stranger = relay.customer().await?;
    let stranger_token = stranger.customer_token();
    let peek =
        http.get(relay.url(&format!("/api/v1/attachments/{invoice_id}"))).bearer_auth(&stranger_token).send().await?;
    assert_eq!(peek.status(), 404);
    stranger
        .send(&ClientFrame::Send(SendMessage { attachments: vec![photo_id.clone()], ..text("s1", "mine now") }))
        .await?;
    assert_eq!(stranger.expect_error().await?.code, ErrorCode::NotFound);

    // Types by content, and size limits.
    let exe = http
        .post(relay.url(&format!("/api/v1/conversations/{conversation}/attachments?name=photo.png")))
        .bearer_auth(&token)
        .body(b"MZ\x90\x00\x03\x00\x00\x00 not a photo".to_vec())
        .send()
        .await?;
    assert_eq!(exe.status(), 400);
    let huge = http
        .post(relay.url(&format!("/api/v1/conversations/{conversation}/attachments?name=big.txt")))
        .bearer_auth(&token)
        .body(vec![b'a'; kefu_proto::limits::MAX_ATTACHMENT_BYTES + 1])
        .send()
        .await?;
    assert_eq!(huge.status(), 413);
    let anonymous = http.get(relay.url(&format!("/api/v1/attachments/{invoice_id}"))).send().await?;
    assert_eq!(anonymous.status(), 401);
    let traversal = http.get(relay.url("/api/v1/attachments/..%2F..%2Fkefu.db")).bearer_auth(&token).send().await?;
    assert_eq!(traversal.status(), 404);
    relay.stop().await?;
    Ok(())
}
