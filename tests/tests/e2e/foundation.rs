//! The foundation: exchange, resume, duplicates, restart, limits, login.

use kefu_proto::frame::{
    AuthorKind, ClientFrame, ConversationChange, ConversationState, HelloAuth, MarkRead, Ping, ResolveConversation,
    ResumePoint, ServerFrame, Session, Typing, close_code,
};
use kefu_proto::limits::{MAX_BODY_BYTES, MAX_FRAME_BYTES};
use kefu_proto::{ConversationId, ErrorCode};
use kefu_tests::{Client, Ending, PASSWORD, TestRelay, assert_contiguous, http_client};

type Result = anyhow::Result<()>;

/// A customer writes first; returns the conversation the relay opened.
async fn customer_opens(customer: &mut Client, body: &str) -> anyhow::Result<ConversationId> {
    let ack = customer.say_acked(None, "c-open", body).await?;
    assert_eq!(ack.seq, 1);
    assert!(!ack.duplicate);
    Ok(ack.conversation_id)
}

/// The agent waits until `conversation` is assigned to it and reads its first message.
async fn agent_takes(
    agent: &mut Client,
    conversation: ConversationId,
) -> anyhow::Result<kefu_proto::frame::MessageFrame> {
    agent.expect_assignment_of(conversation).await?;
    let first = agent.expect_message().await?;
    assert_eq!((first.conversation_id, first.seq), (conversation, 1));
    Ok(first)
}

#[tokio::test]
async fn health_reports_version_and_database() -> Result {
    let relay = TestRelay::start().await?;
    let response = http_client().get(relay.url("/healthz")).send().await?;
    assert_eq!(response.status(), 200);
    let health: kefu_proto::api::Health = response.json().await?;
    assert_eq!(health.status, "ok");
    assert_eq!(health.database, "ok");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn customer_and_agent_exchange_messages_both_ways() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("wang@shop.example", "小王").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;

    let conversation = customer_opens(&mut customer, "你好，我的快递到哪了？").await?;
    agent.expect_assignment_of(conversation).await?;
    let first = agent.expect_message().await?;
    assert_eq!((first.seq, first.body.as_str()), (1, "你好，我的快递到哪了？"));
    assert_eq!(first.author.kind, AuthorKind::Customer);

    // The customer hears who took the conversation.
    let assigned = customer.expect_assigned().await?;
    assert_eq!(assigned.conversation.assignee.map(|a| a.name), Some("小王".to_string()));

    let ack = agent.say_acked(Some(conversation), "a-1", "您好！订单已发货，预计明天送达。").await?;
    assert_eq!(ack.seq, 2);
    let reply = customer.expect_message().await?;
    assert_eq!((reply.seq, reply.body.as_str()), (2, "您好！订单已发货，预计明天送达。"));
    assert_eq!(reply.author.kind, AuthorKind::Agent);
    assert_eq!(reply.author.name.as_deref(), Some("小王"));

    customer.say_acked(None, "c-2", "Thanks! Can I change the address?").await?;
    let m = agent.expect_message().await?;
    assert_eq!((m.seq, m.body.as_str()), (3, "Thanks! Can I change the address?"));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_queued_conversation_is_delivered_when_an_agent_comes_online() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("li@shop.example", "Li").await?;
    let mut customer = relay.customer().await?;
    let conversation = customer_opens(&mut customer, "Is this jacket available in XL?").await?;
    customer.say_acked(None, "c-2", "Hello?").await?;
    let queued = relay.customer_resuming(Some(customer.customer_token()), vec![]).await?;
    match &queued.welcome.as_ref().unwrap().session {
        Session::Customer { conversation: Some(c), .. } => assert_eq!(c.state, ConversationState::Queued),
        other => panic!("expected the queued conversation in the welcome, got {other:?}"),
    }

    let mut agent = relay.agent(&token, vec![]).await?;
    agent.expect_assignment_of(conversation).await?;
    let history = agent.messages_until("Hello?").await?;
    assert_contiguous(&history, 1, 2);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn capacity_is_never_exceeded() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("cap@shop.example", "Cap").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customers = Vec::new();
    let mut conversations = Vec::new();
    for i in 0..6 {
        let mut c = relay.customer().await?;
        conversations.push(customer_opens(&mut c, &format!("question {i}")).await?);
        customers.push(c);
    }
    let mut assigned = Vec::new();
    while assigned.len() < 5 {
        let c = agent.expect_conversation().await?;
        if c.change == ConversationChange::Assigned {
            assigned.push(c.conversation.id);
        }
    }
    assert_eq!(assigned, conversations[..5].to_vec(), "first come, first served");
    // The sixth waits: resolving one frees a slot and it arrives next.
    agent
        .send(&ClientFrame::Resolve(ResolveConversation {
            conversation_id: assigned[0],
            resolution: Some("answered".into()),
        }))
        .await?;
    let next = agent.expect_assigned().await?.conversation.id;
    assert_eq!(next, conversations[5]);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_dropped_customer_resumes_without_loss_or_duplicates() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("zhao@shop.example", "Zhao").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer_opens(&mut customer, "退货怎么操作？").await?;
    agent_takes(&mut agent, conversation).await?;
    agent.say_acked(Some(conversation), "a-1", "请在订单页点击申请退货。").await?;
    let got = customer.expect_message().await?;
    assert_eq!(got.seq, 2);
    let customer_token = customer.customer_token();
    customer.drop_connection();

    // While the customer is away the agent writes three more messages.
    for i in 0..3 {
        agent.say_acked(Some(conversation), &format!("a-away-{i}"), &format!("补充说明 {i}")).await?;
    }
    let mut customer = relay
        .customer_resuming(Some(customer_token), vec![ResumePoint { conversation_id: conversation, after_seq: 2 }])
        .await?;
    let resumed = customer.messages_until("补充说明 2").await?;
    assert_contiguous(&resumed, 3, 5);

    // Live messages continue right after, with nothing repeated.
    agent.say_acked(Some(conversation), "a-live", "还有其他问题吗？").await?;
    let live = customer.messages_until("还有其他问题吗？").await?;
    assert_contiguous(&live, 6, 6);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_dropped_agent_resumes_every_conversation_from_its_last_seq() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("qian@shop.example", "Qian").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut first = relay.customer().await?;
    let mut second = relay.customer().await?;
    let c1 = customer_opens(&mut first, "first customer").await?;
    let c2 = customer_opens(&mut second, "second customer").await?;
    agent.expect_assignment_of(c1).await?;
    agent.expect_assignment_of(c2).await?;
    agent.drop_connection();

    first.say_acked(None, "f-2", "first: are you there?").await?;
    second.say_acked(None, "s-2", "second: hello?").await?;
    second.say_acked(None, "s-3", "second: hello again").await?;

    let mut agent = relay
        .agent(
            &token,
            vec![ResumePoint { conversation_id: c1, after_seq: 1 }, ResumePoint { conversation_id: c2, after_seq: 1 }],
        )
        .await?;
    match &agent.welcome.as_ref().unwrap().session {
        Session::Agent { conversations, .. } => {
            let ids: Vec<_> = conversations.iter().map(|c| c.id).collect();
            assert_eq!(ids, vec![c1, c2]);
        }
        other => panic!("{other:?}"),
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(agent.expect_message().await?);
    }
    let mut seqs: Vec<_> = got.iter().map(|m| (m.conversation_id, m.seq)).collect();
    seqs.sort();
    assert_eq!(seqs, vec![(c1, 2), (c2, 2), (c2, 3)]);
    // Nothing else is pending: the next message is the new one.
    first.say_acked(None, "f-3", "first: sentinel").await?;
    let next = agent.expect_message().await?;
    assert_eq!((next.conversation_id, next.seq), (c1, 3));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_resent_message_is_stored_once_and_acked_with_its_original_seq() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("sun@shop.example", "Sun").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer_opens(&mut customer, "发票怎么开？").await?;
    agent_takes(&mut agent, conversation).await?;

    // The same client id again, as a client does when it did not see the ack.
    let again = customer.say_acked(None, "c-open", "发票怎么开？").await?;
    assert_eq!((again.seq, again.duplicate, again.conversation_id), (1, true, conversation));
    // And again after reconnecting.
    let customer_token = customer.customer_token();
    customer.drop_connection();
    let mut customer = relay
        .customer_resuming(Some(customer_token), vec![ResumePoint { conversation_id: conversation, after_seq: 1 }])
        .await?;
    let again = customer.say_acked(None, "c-open", "发票怎么开？").await?;
    assert_eq!((again.seq, again.duplicate), (1, true));

    customer.say_acked(None, "c-next", "sentinel").await?;
    let next = agent.expect_message().await?;
    assert_eq!((next.seq, next.body.as_str()), (2, "sentinel"), "the duplicate was not delivered again");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn history_survives_a_restart_and_clients_resume() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("zhou@shop.example", "Zhou").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer_opens(&mut customer, "优惠券为什么不能用？").await?;
    agent_takes(&mut agent, conversation).await?;
    agent.say_acked(Some(conversation), "a-1", "请问是哪张优惠券？").await?;
    customer.say_acked(None, "c-2", "满200减30的那张").await?;
    let customer_token = customer.customer_token();

    let relay = relay.restart().await?;
    // The old connections were closed with "going away".
    assert!(matches!(customer.expect_end().await?, Ending::Closed(close_code::GOING_AWAY, _) | Ending::Dropped));

    let mut customer = relay
        .customer_resuming(Some(customer_token), vec![ResumePoint { conversation_id: conversation, after_seq: 1 }])
        .await?;
    let history = customer.messages_until("满200减30的那张").await?;
    assert_contiguous(&history, 2, 3);
    // The agent still holds the conversation after the restart and gets all of it.
    let mut agent = relay.agent(&token, vec![]).await?;
    let all = agent.messages_until("满200减30的那张").await?;
    assert_contiguous(&all, 1, 3);
    agent.say_acked(Some(conversation), "a-2", "这张券仅限服饰类商品。").await?;
    let m = customer.expect_message().await?;
    assert_eq!(m.seq, 4);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn typing_is_relayed_and_read_receipts_move_forward() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("wu@shop.example", "Wu").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer_opens(&mut customer, "size question").await?;
    agent_takes(&mut agent, conversation).await?;

    agent.send(&ClientFrame::Typing(Typing { conversation_id: Some(conversation), active: true })).await?;
    let typing = customer
        .expect(|f| match f {
            ServerFrame::Typing(t) => Some(*t),
            _ => None,
        })
        .await?;
    assert_eq!((typing.author, typing.active), (AuthorKind::Agent, true));

    agent.send(&ClientFrame::Read(MarkRead { conversation_id: Some(conversation), seq: 1 })).await?;
    let read = customer
        .expect(|f| match f {
            ServerFrame::Read(r) => Some(*r),
            _ => None,
        })
        .await?;
    assert_eq!((read.reader, read.seq), (AuthorKind::Agent, 1));
    // A receipt beyond the last message is clamped to it.
    customer.send(&ClientFrame::Read(MarkRead { conversation_id: None, seq: 99 })).await?;
    let read = agent
        .expect(|f| match f {
            ServerFrame::Read(r) => Some(*r),
            _ => None,
        })
        .await?;
    assert_eq!((read.reader, read.seq), (AuthorKind::Customer, 1));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn resolving_then_writing_again_reopens_the_conversation() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("zheng@shop.example", "Zheng").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer_opens(&mut customer, "when will it ship?").await?;
    agent_takes(&mut agent, conversation).await?;
    agent
        .send(&ClientFrame::Resolve(ResolveConversation {
            conversation_id: conversation,
            resolution: Some("answered".into()),
        }))
        .await?;
    let resolved = customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Resolved => Some(c.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(resolved.conversation.state, ConversationState::Resolved);

    let ack = customer.say_acked(None, "c-again", "one more thing").await?;
    assert_eq!((ack.conversation_id, ack.seq), (conversation, 2));
    let reopened = customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Reopened => Some(c.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(reopened.conversation.state, ConversationState::Queued);
    // The agent still online with room takes it straight back, and sees the new message.
    agent.expect_assignment_of(conversation).await?;
    let m = agent.messages_until("one more thing").await?;
    assert_contiguous(&m, 2, 2);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bad_frames_get_documented_errors_and_other_clients_carry_on() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("feng@shop.example", "Feng").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut good = relay.customer().await?;
    let conversation = customer_opens(&mut good, "I am a well-behaved customer").await?;
    agent_takes(&mut agent, conversation).await?;

    let mut bad = relay.customer().await?;
    let cases: Vec<(String, ErrorCode)> = vec![
        ("this is not json".into(), ErrorCode::BadRequest),
        (r#"{"type":"teleport"}"#.into(), ErrorCode::BadRequest),
        (r#"{"type":"send","client_msg_id":"x"}"#.into(), ErrorCode::BadRequest),
        (
            format!(r#"{{"type":"send","client_msg_id":"big","body":"{}"}}"#, "长".repeat(MAX_BODY_BYTES / 3 + 1)),
            ErrorCode::TooLarge,
        ),
        (r#"{"type":"resolve","conversation_id":1}"#.into(), ErrorCode::Forbidden),
        (r#"{"type":"hello","protocol":1,"auth":{"kind":"agent","token":"x"}}"#.into(), ErrorCode::BadRequest),
    ];
    for (input, code) in cases {
        bad.send_raw(&input).await?;
        let error = bad.expect_error().await?;
        assert_eq!(error.code, code, "{}", &input[..input.len().min(60)]);
    }
    // The refusal tells an unknown type from a bad field of a known one, supervisors' too.
    for (input, says) in [
        (r#"{"type":"teleport"}"#, r#"unknown frame type "teleport""#),
        (r#"{"type":"take_over","conversation_id":"x"}"#, r#"invalid "take_over" frame"#),
    ] {
        bad.send_raw(input).await?;
        let error = bad.expect_error().await?;
        assert!(error.message.contains(says), "{input}: {}", error.message);
    }
    // The oversize body named its message in the refusal.
    bad.send_raw(&format!(r#"{{"type":"send","client_msg_id":"big2","body":"{}"}}"#, "x".repeat(MAX_BODY_BYTES + 1)))
        .await?;
    let error = bad.expect_error().await?;
    assert_eq!((error.code, error.client_msg_id.as_deref()), (ErrorCode::TooLarge, Some("big2")));
    // Still usable after all that.
    bad.send(&ClientFrame::Ping(Ping { nonce: 7 })).await?;
    assert!(matches!(bad.recv().await?, ServerFrame::Pong(Ping { nonce: 7 })));

    // An oversize frame closes that connection with 1009.
    bad.send_raw(&format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES + 10))).await?;
    match bad.expect_end().await? {
        Ending::Closed(code, reason) => {
            assert_eq!(code, close_code::TOO_LARGE);
            assert!(reason.contains(&MAX_FRAME_BYTES.to_string()), "{reason}");
        }
        Ending::Dropped => panic!("expected a close frame with a reason"),
    }

    // Meanwhile the good customer and the agent never noticed.
    good.say_acked(None, "g-2", "still here").await?;
    let m = agent.expect_message().await?;
    assert_eq!((m.seq, m.body.as_str()), (2, "still here"));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bad_hellos_are_refused_with_a_reason() -> Result {
    let relay = TestRelay::start().await?;
    let other = TestRelay::start().await?;
    let token = relay.agent_token("han@shop.example", "Han").await?;

    // Wrong agent token.
    let mut client = relay.connect("/ws/agent").await?;
    client.send_raw(r#"{"type":"hello","protocol":1,"auth":{"kind":"agent","token":"kfa_forged"}}"#).await?;
    let error = client.expect_error().await?;
    assert_eq!(error.code, ErrorCode::Unauthorized);
    assert!(matches!(client.expect_end().await?, Ending::Closed(close_code::UNAUTHORIZED, _)));

    // Another relay's (another workspace's) widget key.
    let mut client = relay.connect("/ws/customer").await?;
    let auth = HelloAuth::Customer {
        widget_key: other.widget_key.clone(),
        customer_token: None,
        name: None,
        group: None,
        customer_id: None,
        customer_signature: None,
    };
    assert!(client.hello(auth, vec![]).await.is_err());
    assert!(matches!(client.expect_end().await?, Ending::Closed(close_code::UNAUTHORIZED, _)));

    // A valid agent token on the customer endpoint.
    let mut client = relay.connect("/ws/customer").await?;
    assert!(client.hello(HelloAuth::Agent { token: token.clone() }, vec![]).await.is_err());
    assert!(matches!(client.expect_end().await?, Ending::Closed(close_code::BAD_HELLO, _)));

    // Something other than hello first.
    let mut client = relay.connect("/ws/customer").await?;
    client.send_raw(r#"{"type":"ping"}"#).await?;
    let error = client.expect_error().await?;
    assert_eq!(error.code, ErrorCode::BadRequest);
    assert!(matches!(client.expect_end().await?, Ending::Closed(close_code::BAD_HELLO, _)));

    // A customer token from another workspace does not reach that contact: a new one is made.
    let mut elsewhere = other.customer().await?;
    let foreign_token = elsewhere.customer_token();
    let Session::Customer { contact_id: foreign_contact, .. } = elsewhere.welcome.as_ref().unwrap().session.clone()
    else {
        unreachable!()
    };
    customer_opens(&mut elsewhere, "secret order 12345").await?;
    let here = relay.customer_resuming(Some(foreign_token.clone()), vec![]).await?;
    match &here.welcome.as_ref().unwrap().session {
        Session::Customer { customer_token, conversation, contact_id } => {
            assert_ne!(customer_token, &foreign_token);
            assert!(conversation.is_none());
            let _ = (contact_id, foreign_contact);
        }
        other => panic!("{other:?}"),
    }
    other.stop().await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn login_checks_passwords_tokens_and_rate() -> Result {
    let relay = TestRelay::start_with(|c| c.auth.logins_per_minute_per_email = 3).await?;
    let token = relay.agent_token("chen@shop.example", "Chen").await?;
    let http = http_client();

    let me = http.get(relay.url("/api/v1/me")).bearer_auth(&token).send().await?;
    assert_eq!(me.status(), 200);
    let me: kefu_proto::frame::AgentView = me.json().await?;
    assert_eq!(me.email, "chen@shop.example");

    let wrong = http
        .post(relay.url("/api/v1/login"))
        .json(&serde_json::json!({"email": "chen@shop.example", "password": "not the password"}))
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    let body: kefu_proto::api::ApiErrorBody = wrong.json().await?;
    assert_eq!(body.error.code, ErrorCode::Unauthorized);

    let forged = http.get(relay.url("/api/v1/me")).bearer_auth("kfa_forged").send().await?;
    assert_eq!(forged.status(), 401);
    let missing = http.get(relay.url("/api/v1/me")).send().await?;
    assert_eq!(missing.status(), 401);
    let malformed =
        http.post(relay.url("/api/v1/login")).header("content-type", "application/json").body("{").send().await?;
    assert_eq!(malformed.status(), 400);

    // The e-mail's quota (3 a minute) is spent: even the right password is now refused.
    let _ = relay.login("chen@shop.example", "still wrong").await;
    let limited = http
        .post(relay.url("/api/v1/login"))
        .json(&serde_json::json!({"email": "chen@shop.example", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(limited.status(), 429);
    let body: kefu_proto::api::ApiErrorBody = limited.json().await?;
    assert_eq!(body.error.code, ErrorCode::RateLimited);

    // Logout revokes the token for HTTP and WebSocket alike, and ends its open sessions.
    let mut session = relay.agent(&token, vec![]).await?;
    let out = http.post(relay.url("/api/v1/logout")).bearer_auth(&token).send().await?;
    assert_eq!(out.status(), 204);
    let me = http.get(relay.url("/api/v1/me")).bearer_auth(&token).send().await?;
    assert_eq!(me.status(), 401);
    assert_eq!(session.expect_end().await?, Ending::Closed(close_code::SUPERSEDED, "logged out".into()));
    let mut client = relay.connect("/ws/agent").await?;
    assert!(client.hello(HelloAuth::Agent { token }, vec![]).await.is_err());
    relay.stop().await?;
    Ok(())
}

/// `kefu-relay agent revoke` (another process, writing the database) signs an agent out
/// everywhere: every token stops working over HTTP, and the running relay closes the
/// agent's open workstations.
#[tokio::test]
async fn revoking_an_agent_ends_every_token_and_open_session() -> anyhow::Result<()> {
    let relay = TestRelay::start().await?;
    let laptop = relay.agent_token("chen@shop.example", "陈").await?;
    let phone = relay.login("chen@shop.example", PASSWORD).await?;
    let other = relay.agent_token("wang@shop.example", "小王").await?;
    let mut laptop_session = relay.agent(&laptop, vec![]).await?;
    let mut phone_session = relay.agent(&phone, vec![]).await?;
    let mut other_session = relay.agent(&other, vec![]).await?;

    let store = kefu_relay::Store::open(&relay.data_dir).await?;
    let workspace = kefu_relay::admin::show_workspace(&store, "default").await?.id;
    let chen = kefu_relay::admin::agent_by_email(&store, workspace, "chen@shop.example").await?;
    assert_eq!(store.revoke_agent_tokens(workspace, chen.view.id, "cli").await?, 2);
    store.close().await;

    let http = http_client();
    for token in [&laptop, &phone] {
        let me = http.get(relay.url("/api/v1/me")).bearer_auth(token).send().await?;
        assert_eq!(me.status(), 401);
    }
    for session in [&mut laptop_session, &mut phone_session] {
        assert_eq!(session.expect_end().await?, Ending::Closed(close_code::SUPERSEDED, "logged out".into()));
    }
    // Another agent is untouched.
    let me = http.get(relay.url("/api/v1/me")).bearer_auth(&other).send().await?;
    assert_eq!(me.status(), 200);
    other_session.send(&ClientFrame::Ping(Default::default())).await?;
    assert!(matches!(other_session.recv().await?, ServerFrame::Pong(_)));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_without_hurting_others() -> Result {
    let relay = TestRelay::start_with(|c| {
        c.limits.frames_per_second = 5;
        c.limits.frame_burst = 5;
    })
    .await?;
    let token = relay.agent_token("flood@shop.example", "Guard").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut good = relay.customer().await?;
    let conversation = customer_opens(&mut good, "hi").await?;
    agent_takes(&mut agent, conversation).await?;

    let mut flood = relay.connect("/ws/customer").await?;
    flood
        .hello(
            HelloAuth::Customer {
                widget_key: relay.widget_key.clone(),
                customer_token: None,
                name: None,
                group: None,
                customer_id: None,
                customer_signature: None,
            },
            vec![],
        )
        .await?;
    for i in 0..20 {
        flood.send(&ClientFrame::Ping(Ping { nonce: i })).await?;
    }
    let error = flood.expect_error().await?;
    assert_eq!(error.code, ErrorCode::RateLimited);
    match flood.expect_end().await? {
        Ending::Closed(code, _) => assert_eq!(code, close_code::RATE_LIMITED),
        Ending::Dropped => panic!("expected a close with a reason"),
    }
    good.say_acked(None, "g-2", "unaffected").await?;
    assert_eq!(agent.expect_message().await?.body, "unaffected");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_before_upgrade() -> Result {
    let relay = TestRelay::start_with(|c| c.limits.max_connections = 2).await?;
    let _a = relay.customer().await?;
    let _b = relay.customer().await?;
    let third = tokio_tungstenite::connect_async(format!("ws://{}/ws/customer", relay.addr)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    relay.stop().await?;
    Ok(())
}
