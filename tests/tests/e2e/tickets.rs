//! Tickets through the relay: a message left while nobody is online becomes a ticket,
//! assigned automatically; agents make, assign, note and close tickets.

use kefu_proto::frame::{ClientFrame, ConversationChange, LeaveMessage, Role, ServerFrame, TicketChange};
use kefu_tests::TestRelay;
use reqwest::Method;
use serde_json::json;

type Result = anyhow::Result<()>;

#[tokio::test]
async fn a_message_left_while_nobody_is_online_becomes_an_assigned_ticket() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("night@shop.example", "夜班小李", Role::Agent, 5, "").await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "在吗？").await?.conversation_id;
    let agents_online = customer
        .expect(|f| match f {
            ServerFrame::Queue(q) => Some(q.agents_online),
            _ => None,
        })
        .await?;
    assert_eq!(agents_online, 0, "the customer is told nobody is there");
    customer
        .send(&ClientFrame::LeaveMessage(LeaveMessage {
            body: "订单 8812 的发票抬头写错了，请帮忙重开\n公司：杭州某某有限公司".into(),
            contact_info: Some("138 0000 1234".into()),
        }))
        .await?;
    let ticket = customer
        .expect(|f| match f {
            ServerFrame::Ticket(t) if t.change == TicketChange::Created => Some(t.ticket.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(ticket.subject, "订单 8812 的发票抬头写错了，请帮忙重开");
    assert_eq!(ticket.conversation_id, Some(conversation));
    assert_eq!(ticket.assignee.as_ref().map(|a| a.name.as_str()), Some("夜班小李"), "assigned automatically");
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Resolved => Some(()),
            _ => None,
        })
        .await?;

    // The agent finds it in the morning, with the contact details and its history.
    let (_, mine) = relay.api(Method::GET, "/api/v1/tickets?assignee=me&status=open", &token, None).await?;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, details) = relay.api(Method::GET, &format!("/api/v1/tickets/{}", ticket.id), &token, None).await?;
    assert!(details["ticket"]["description"].as_str().unwrap().contains("138 0000 1234"));
    assert_eq!(details["history"][0]["kind"], "ticket.created");
    assert_eq!(details["history"][0]["actor_kind"], "customer");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn agents_make_assign_note_and_solve_tickets() -> Result {
    let relay = TestRelay::start().await?;
    let first = relay.agent_with("a@shop.example", "Amy", Role::Agent, 5, "").await?;
    let second = relay.agent_with("b@shop.example", "Ben", Role::Agent, 5, "").await?;
    let mut ben = relay.agent(&second, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "My parcel arrived damaged").await?.conversation_id;

    let new = json!({"subject": "Replace damaged lamp", "description": "Photo received; send a new one.", "conversation_id": conversation, "assignee_id": null, "priority": "high"});
    let (status, ticket) = relay.api(Method::POST, "/api/v1/tickets", &first, Some(new)).await?;
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["created_by"], "agent");
    let id = ticket["id"].as_i64().unwrap();

    let amy_id = relay.api(Method::GET, "/api/v1/me", &first, None).await?.1["id"].as_i64().unwrap();
    let ben_id = relay.api(Method::GET, "/api/v1/me", &second, None).await?.1["id"].as_i64().unwrap();
    let to_ben = json!({"assignee_id": ben_id, "status": "pending"});
    let (status, _) = relay.api(Method::PATCH, &format!("/api/v1/tickets/{id}"), &first, Some(to_ben)).await?;
    assert_eq!(status, 200);
    let heard = ben
        .expect(|f| match f {
            ServerFrame::Ticket(t) if t.change == TicketChange::Assigned && t.ticket.id == id => Some(t.ticket.status),
            _ => None,
        })
        .await?;
    assert_eq!(heard.as_str(), "pending");

    let (status, _) = relay
        .api(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            &second,
            Some(json!({"body": "New lamp shipped, tracking SF123"})),
        )
        .await?;
    assert_eq!(status, 204);
    let (_, solved) =
        relay.api(Method::PATCH, &format!("/api/v1/tickets/{id}"), &second, Some(json!({"status": "solved"}))).await?;
    assert_eq!(solved["status"], "solved");
    let (_, details) = relay.api(Method::GET, &format!("/api/v1/tickets/{id}"), &first, None).await?;
    let kinds: Vec<&str> = details["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["ticket.created", "ticket.updated", "ticket.note", "ticket.updated"]);
    assert_eq!(details["notes"][0]["author"], "Ben");
    assert_eq!(details["history"][1]["data"]["assignee_id"]["to"], ben_id);
    let _ = amy_id;

    let (_, open) = relay.api(Method::GET, "/api/v1/tickets?status=open", &first, None).await?;
    assert!(open.as_array().unwrap().is_empty());
    for (query, expected) in [("?status=bogus", 400), ("?assignee=nobody", 400), ("?group=nope", 404)] {
        assert_eq!(
            relay.api(Method::GET, &format!("/api/v1/tickets{query}"), &first, None).await?.0,
            expected,
            "{query}"
        );
    }
    let bad = json!({"subject": "", "description": "x"});
    assert_eq!(relay.api(Method::POST, "/api/v1/tickets", &first, Some(bad)).await?.0, 400);
    relay.stop().await?;
    Ok(())
}
