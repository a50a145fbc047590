//! Routing through the real relay: capacity and the queue, VIP, skills, grace, transfers,
//! escalation, picks, and the recorded reasons.

use std::time::Duration;

use kefu_proto::frame::{
    ClientFrame, ConversationChange, PickConversation, ResolveConversation, Role, ServerFrame, TransferConversation,
    TransferTarget,
};
use kefu_proto::{ConversationId, ErrorCode};
use kefu_tests::{Client, TestRelay};
use reqwest::Method;
use serde_json::json;

type Result = anyhow::Result<()>;

/// A customer writes first; returns the conversation the relay opened.
async fn opens(customer: &mut Client, body: &str) -> anyhow::Result<ConversationId> {
    Ok(customer.say_acked(None, "first", body).await?.conversation_id)
}

/// Waits until `conversation` is assigned to this agent; returns the transfer note, if any.
async fn gets(agent: &mut Client, conversation: ConversationId) -> anyhow::Result<Option<String>> {
    Ok(agent.expect_assignment_of(conversation).await?.transfer.and_then(|t| t.note))
}

/// Waits for this customer's queue position.
async fn position(customer: &mut Client) -> anyhow::Result<(u32, u32)> {
    customer
        .expect(|f| match f {
            ServerFrame::Queue(q) => Some((q.position, q.agents_online)),
            _ => None,
        })
        .await
}

/// The agent a customer's conversation went to, by name.
async fn served_by(customer: &mut Client) -> anyhow::Result<String> {
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Assigned => {
                c.conversation.assignee.as_ref().map(|a| a.name.clone())
            }
            _ => None,
        })
        .await
}

async fn admin(relay: &TestRelay) -> anyhow::Result<String> {
    relay.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await
}

async fn group(relay: &TestRelay, admin: &str, body: serde_json::Value) -> Result {
    let (status, reply) = relay.api(Method::POST, "/api/v1/groups", admin, Some(body)).await?;
    assert_eq!(status, 201, "{reply}");
    Ok(())
}

#[tokio::test]
async fn the_sixth_customer_waits_first_in_line_and_is_served_when_a_slot_frees() -> Result {
    let relay = TestRelay::start_manual(|_| {}).await?;
    let token = relay.agent_with("wang@shop.example", "小王", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customers = Vec::new();
    let mut conversations = Vec::new();
    for i in 0..6 {
        let mut c = relay.customer().await?;
        conversations.push(opens(&mut c, &format!("问题 {i}")).await?);
        customers.push(c);
    }
    for c in &conversations[..5] {
        gets(&mut agent, *c).await?;
    }
    let (place, online) = position(&mut customers[5]).await?;
    assert_eq!((place, online), (1, 1), "the sixth is told it is first in line, with one agent online");

    agent
        .send(&ClientFrame::Resolve(ResolveConversation { conversation_id: conversations[0], resolution: None }))
        .await?;
    gets(&mut agent, conversations[5]).await?;
    assert_eq!(served_by(&mut customers[5]).await?, "小王");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_vip_jumps_the_queue() -> Result {
    let relay = TestRelay::start_manual(|_| {}).await?;
    let supervisor = relay.agent_with("lead@shop.example", "Lead", Role::Supervisor, 0, "").await?;
    let token = relay.agent_with("li@shop.example", "Li", Role::Agent, 1, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut first = relay.customer().await?;
    let c1 = opens(&mut first, "busy one").await?;
    gets(&mut agent, c1).await?;

    let mut ordinary = relay.customer().await?;
    let c2 = opens(&mut ordinary, "I was here first").await?;
    assert_eq!(position(&mut ordinary).await?.0, 1);

    let mut vip = relay.customer().await?;
    let kefu_proto::frame::Session::Customer { contact_id, .. } = vip.welcome.clone().unwrap().session else {
        unreachable!()
    };
    let (status, _) = relay
        .api(Method::PATCH, &format!("/api/v1/contacts/{contact_id}"), &supervisor, Some(json!({"vip": true})))
        .await?;
    assert_eq!(status, 204);
    let c3 = opens(&mut vip, "VIP here").await?;
    assert_eq!(position(&mut vip).await?.0, 1, "the VIP goes first in line");
    relay.advance(Duration::from_secs(1));
    assert_eq!(position(&mut ordinary).await?.0, 2, "the ordinary customer moves back");

    agent.send(&ClientFrame::Resolve(ResolveConversation { conversation_id: c1, resolution: None })).await?;
    gets(&mut agent, c3).await?;
    agent.send(&ClientFrame::Resolve(ResolveConversation { conversation_id: c3, resolution: None })).await?;
    gets(&mut agent, c2).await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn conversations_go_to_agents_with_the_skill() -> Result {
    let relay = TestRelay::start_manual(|_| {}).await?;
    let admin = admin(&relay).await?;
    group(&relay, &admin, json!({"slug": "presales"})).await?;
    group(&relay, &admin, json!({"slug": "aftersales"})).await?;
    let pre = relay.agent_with("pre@shop.example", "售前小李", Role::Agent, 5, "presales").await?;
    let after = relay.agent_with("after@shop.example", "售后小张", Role::Agent, 5, "aftersales").await?;
    let mut pre = relay.agent(&pre, vec![]).await?;
    let mut after = relay.agent(&after, vec![]).await?;

    let mut returning_goods = relay.customer_in("aftersales").await?;
    let c1 = opens(&mut returning_goods, "我要退货").await?;
    gets(&mut after, c1).await?;
    assert_eq!(served_by(&mut returning_goods).await?, "售后小张");

    let mut buying = relay.customer_in("presales").await?;
    let c2 = opens(&mut buying, "这款有现货吗？").await?;
    gets(&mut pre, c2).await?;

    // Nobody skilled online: the customer waits and is told nobody is there.
    after.close().await?;
    let mut later = relay.customer_in("aftersales").await?;
    let _c3 = opens(&mut later, "还有人吗").await?;
    assert_eq!(position(&mut later).await?, (1, 0));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_vanished_agent_s_conversations_return_after_the_grace_period() -> Result {
    let relay = TestRelay::start_manual(|c| c.routing.grace_secs = 60).await?;
    let first = relay.agent_with("a@shop.example", "A", Role::Agent, 5, "").await?;
    let second = relay.agent_with("b@shop.example", "B", Role::Agent, 5, "").await?;
    let mut a = relay.agent(&first, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = opens(&mut customer, "hello").await?;
    gets(&mut a, conversation).await?;
    a.say_acked(Some(conversation), "a1", "Hi, one moment").await?;
    let mut b = relay.agent(&second, vec![]).await?;
    assert_eq!(served_by(&mut customer).await?, "A");
    a.close().await?;

    // Within the grace period it stays with A.
    relay.advance(Duration::from_secs(59));
    customer.say_acked(None, "c2", "are you there?").await?;
    // Past it, it returns to the queue and B, online with room, gets it with its history.
    relay.advance(Duration::from_secs(2));
    gets(&mut b, conversation).await?;
    let history = b.messages_until("are you there?").await?;
    assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(served_by(&mut customer).await?, "B");

    let (status, history) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/routing"), &second, None).await?;
    assert_eq!(status, 200);
    let kinds: Vec<&str> =
        history["decisions"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["routing.assigned", "routing.returned", "routing.assigned"]);
    let why = history["decisions"][1]["explanation"].as_str().unwrap();
    assert!(why.contains("disconnected") && why.contains("60s"), "{why}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn transfers_to_an_agent_and_to_a_group_keep_the_history_and_the_note() -> Result {
    let relay = TestRelay::start_manual(|_| {}).await?;
    let admin = admin(&relay).await?;
    group(&relay, &admin, json!({"slug": "refunds"})).await?;
    let first = relay.agent_with("x@shop.example", "X", Role::Agent, 5, "").await?;
    let second = relay.agent_with("y@shop.example", "Y", Role::Agent, 5, "").await?;
    let third = relay.agent_with("z@shop.example", "Z", Role::Agent, 5, "refunds").await?;
    let mut x = relay.agent(&first, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = opens(&mut customer, "订单 1234 我要退款").await?;
    gets(&mut x, conversation).await?;
    assert_eq!(served_by(&mut customer).await?, "X");
    x.say_acked(Some(conversation), "x1", "我帮您转给同事").await?;

    let mut y = relay.agent(&second, vec![]).await?;
    let y_id = match &y.welcome.as_ref().unwrap().session {
        kefu_proto::frame::Session::Agent { agent, .. } => agent.id,
        _ => unreachable!(),
    };
    x.send(&ClientFrame::Transfer(TransferConversation {
        conversation_id: conversation,
        to: TransferTarget::Agent { agent_id: y_id },
        note: Some("客户要退款，已核实订单".into()),
    }))
    .await?;
    assert_eq!(gets(&mut y, conversation).await?.as_deref(), Some("客户要退款，已核实订单"));
    let history = y.messages_until("我帮您转给同事").await?;
    assert_eq!(history.len(), 2, "the receiver gets the whole history");
    assert_eq!(served_by(&mut customer).await?, "Y");
    x.expect(|f| match f {
        ServerFrame::Conversation(c) if c.change == ConversationChange::Unassigned => Some(()),
        _ => None,
    })
    .await?;

    // X no longer holds it.
    x.say(Some(conversation), "x2", "still here?").await?;
    let refused = x.expect_error().await?;
    assert_eq!(refused.code, ErrorCode::NotFound);
    assert_eq!(refused.conversation_id, Some(conversation), "the refusal names its conversation");

    // Y hands it to the refunds group; Z, who has the skill, gets it.
    let mut z = relay.agent(&third, vec![]).await?;
    y.send(&ClientFrame::Transfer(TransferConversation {
        conversation_id: conversation,
        to: TransferTarget::Group { group: Some("refunds".into()) },
        note: None,
    }))
    .await?;
    gets(&mut z, conversation).await?;

    // A transfer to an agent with no room is refused, and nothing moves.
    let full = relay.agent_with("full@shop.example", "Full", Role::Agent, 0, "").await?;
    let full = relay.agent(&full, vec![]).await?;
    let full_id = match &full.welcome.as_ref().unwrap().session {
        kefu_proto::frame::Session::Agent { agent, .. } => agent.id,
        _ => unreachable!(),
    };
    z.send(&ClientFrame::Transfer(TransferConversation {
        conversation_id: conversation,
        to: TransferTarget::Agent { agent_id: full_id },
        note: None,
    }))
    .await?;
    let refused = z.expect_error().await?;
    assert_eq!(refused.code, ErrorCode::Conflict);
    assert_eq!(refused.conversation_id, Some(conversation));
    assert!(refused.message.contains("no room"), "{}", refused.message);
    z.say_acked(Some(conversation), "z1", "退款已提交").await?;

    let (_, routing) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/routing"), &admin, None).await?;
    let explanations: Vec<&str> =
        routing["decisions"].as_array().unwrap().iter().map(|d| d["explanation"].as_str().unwrap()).collect();
    assert!(explanations.iter().any(|e| e.contains("transferred by X to Y")), "{explanations:?}");
    assert!(explanations.iter().any(|e| e.contains("Y transferred it to refunds")), "{explanations:?}");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_conversation_waiting_past_the_timeout_escalates_to_the_fallback_group() -> Result {
    let relay = TestRelay::start_manual(|_| {}).await?;
    let admin = admin(&relay).await?;
    group(&relay, &admin, json!({"slug": "english"})).await?;
    group(&relay, &admin, json!({"slug": "jewelry", "fallback": "english", "escalate_after_secs": 120})).await?;
    let english = relay.agent_with("en@shop.example", "Emma", Role::Agent, 5, "english").await?;
    let mut emma = relay.agent(&english, vec![]).await?;
    let mut customer = relay.customer_in("jewelry").await?;
    let conversation = opens(&mut customer, "Is this ring real gold?").await?;
    assert_eq!(position(&mut customer).await?, (1, 0));

    relay.advance(Duration::from_secs(119));
    relay.advance(Duration::from_secs(2));
    gets(&mut emma, conversation).await?;
    assert_eq!(served_by(&mut customer).await?, "Emma");
    let (_, routing) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/routing"), &admin, None).await?;
    let kinds: Vec<&str> =
        routing["decisions"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["routing.queued", "routing.escalated", "routing.assigned"]);
    assert!(routing["decisions"][0]["explanation"].as_str().unwrap().contains("nobody who serves it is online"));
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_supervisor_picks_a_queued_conversation_and_agents_see_the_queue() -> Result {
    let relay = TestRelay::start_manual(|c| c.routing.agents_may_pick = false).await?;
    let admin = admin(&relay).await?;
    group(&relay, &admin, json!({"slug": "vip-desk"})).await?;
    let lead = relay.agent_with("lead@shop.example", "Lead", Role::Supervisor, 2, "").await?;
    let plain = relay.agent_with("p@shop.example", "Plain", Role::Agent, 2, "").await?;
    let mut lead = relay.agent(&lead, vec![]).await?;
    let mut plain = relay.agent(&plain, vec![]).await?;
    let mut customer = relay.customer_in("vip-desk").await?;
    let conversation = opens(&mut customer, "waiting for the VIP desk").await?;
    relay.advance(Duration::from_secs(1));
    let listed = lead
        .expect(|f| match f {
            ServerFrame::QueueList(q) if q.group.as_deref() == Some("vip-desk") && q.total == 1 => {
                Some(q.conversations[0].id)
            }
            _ => None,
        })
        .await?;
    assert_eq!(listed, conversation);

    plain.send(&ClientFrame::Pick(PickConversation { conversation_id: conversation })).await?;
    let refused = plain.expect_error().await?;
    assert_eq!((refused.code, refused.conversation_id), (ErrorCode::Forbidden, Some(conversation)));
    lead.send(&ClientFrame::Pick(PickConversation { conversation_id: conversation })).await?;
    gets(&mut lead, conversation).await?;
    assert_eq!(served_by(&mut customer).await?, "Lead");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn groups_and_agents_are_managed_through_the_api_with_roles_checked() -> Result {
    let relay = TestRelay::start().await?;
    let admin = admin(&relay).await?;
    let agent = relay.agent_with("ag@shop.example", "Ag", Role::Agent, 5, "").await?;
    let (status, _) = relay.api(Method::POST, "/api/v1/groups", &agent, Some(json!({"slug": "x"}))).await?;
    assert_eq!(status, 403);
    let (status, body) = relay.api(Method::POST, "/api/v1/groups", &admin, Some(json!({"slug": "Bad Slug"}))).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));
    group(&relay, &admin, json!({"slug": "presales", "is_default": true})).await?;
    let (status, _) = relay.api(Method::POST, "/api/v1/groups", &admin, Some(json!({"slug": "presales"}))).await?;
    assert_eq!(status, 409);
    let (status, body) =
        relay.api(Method::POST, "/api/v1/groups", &admin, Some(json!({"slug": "gold", "fallback": "nowhere"}))).await?;
    assert_eq!(status, 404, "{body}");

    let (_, agents) = relay.api(Method::GET, "/api/v1/agents", &agent, None).await?;
    let id =
        agents.as_array().unwrap().iter().find(|a| a["email"] == "ag@shop.example").unwrap()["id"].as_i64().unwrap();
    let patch = json!({"max_concurrent": 3, "skills": [{"group": "presales", "level": "senior"}]});
    let (status, _) = relay.api(Method::PATCH, &format!("/api/v1/agents/{id}"), &agent, Some(patch.clone())).await?;
    assert_eq!(status, 403);
    let (status, view) = relay.api(Method::PATCH, &format!("/api/v1/agents/{id}"), &admin, Some(patch)).await?;
    assert_eq!(status, 200);
    assert_eq!(view["max_concurrent"], 3);
    assert_eq!(view["skills"][0]["level"], "senior");
    let (status, _) = relay.api(Method::GET, "/api/v1/conversations/999/routing", &agent, None).await?;
    assert_eq!(status, 404);
    let (status, _) = relay.api(Method::GET, "/api/v1/conversations/abc/routing", &agent, None).await?;
    assert_eq!(status, 400);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_queue_keeps_its_order_across_a_restart() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("late@shop.example", "Late", Role::Agent, 3, "").await?;
    let mut tokens = Vec::new();
    let mut conversations = Vec::new();
    for i in 0..3 {
        let mut customer = relay.customer().await?;
        conversations.push(opens(&mut customer, &format!("排队 {i}")).await?);
        assert_eq!(position(&mut customer).await?.0, i + 1);
        tokens.push(customer.customer_token());
    }
    let relay = relay.restart().await?;
    for (i, token) in tokens.into_iter().enumerate() {
        let mut customer = relay.customer_resuming(Some(token), vec![]).await?;
        assert_eq!(position(&mut customer).await?.0, i as u32 + 1, "customer {i} keeps their place");
    }
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut order = Vec::new();
    while order.len() < 3 {
        let c = agent.expect_conversation().await?;
        if c.change == ConversationChange::Assigned {
            order.push(c.conversation.id);
        }
    }
    assert_eq!(order, conversations, "served in the order they arrived");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_unanswered_conversation_moves_to_another_agent() -> Result {
    let relay = TestRelay::start_manual(|c| c.routing.reroute_unanswered_secs = 30).await?;
    let slow = relay.agent_with("slow@shop.example", "Slow", Role::Agent, 5, "").await?;
    let quick = relay.agent_with("quick@shop.example", "Quick", Role::Agent, 5, "").await?;
    let mut slow = relay.agent(&slow, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = opens(&mut customer, "有人吗？").await?;
    gets(&mut slow, conversation).await?;
    let mut quick = relay.agent(&quick, vec![]).await?;

    relay.advance(Duration::from_secs(31));
    let note = gets(&mut quick, conversation).await?.unwrap_or_default();
    assert!(note.contains("did not reply within 30s"), "{note}");
    slow.expect(|f| match f {
        ServerFrame::Conversation(c) if c.change == ConversationChange::Unassigned => Some(()),
        _ => None,
    })
    .await?;

    // Once answered, it stays.
    quick.say_acked(Some(conversation), "q1", "您好，我在").await?;
    relay.advance(Duration::from_secs(120));
    customer.say_acked(None, "c2", "好的").await?;
    let m = quick.messages_until("好的").await?;
    assert_eq!(m.last().map(|m| m.seq), Some(3));
    relay.stop().await?;
    Ok(())
}

/// A conversation is offered to an agent only once the message that opened it is stored:
/// the customer sees it opened, then the message acknowledged, then assigned, and the
/// agent's history at assignment starts with that message.
#[tokio::test]
async fn a_conversation_is_offered_only_once_the_message_that_opened_it_is_stored() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("a@shop.example", "Agent A", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    for round in 0..3 {
        let mut customer = relay.customer().await?;
        customer.say(None, &format!("first-{round}"), "在吗？").await?;
        let mut seen = Vec::new();
        let conversation = loop {
            match customer.recv().await? {
                ServerFrame::Conversation(c) => {
                    seen.push(format!("{:?}", c.change));
                    if c.change == ConversationChange::Assigned {
                        break c.conversation.id;
                    }
                }
                ServerFrame::Ack(ack) => seen.push(format!("ack {}", ack.seq)),
                ServerFrame::Error(e) => anyhow::bail!("refused: {e:?}"),
                _ => {}
            }
        };
        assert_eq!(seen, ["Opened", "ack 1", "Assigned"], "round {round}");
        agent.expect_assignment_of(conversation).await?;
        let first = agent.expect_message().await?;
        assert_eq!((first.conversation_id, first.seq, first.body.as_str()), (conversation, 1, "在吗？"));
    }
    relay.stop().await?;
    Ok(())
}
