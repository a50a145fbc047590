//! The bot through the relay: it answers from the knowledge base, takes feedback, and
//! hands over to a person with the whole exchange and the intent.

use kefu_proto::frame::{AuthorKind, ConversationChange, ConversationState, Role, ServerFrame};
use kefu_relay::evaluation::SAMPLE_ARTICLES;
use kefu_tests::{Client, TestRelay};
use reqwest::Method;

type Result = anyhow::Result<()>;

/// A relay with the sample knowledge base loaded through the API.
async fn relay_with_kb() -> anyhow::Result<(TestRelay, String)> {
    let relay = TestRelay::start().await?;
    let admin = relay.agent_with("kb@shop.example", "Admin", Role::Admin, 0, "").await?;
    let articles: Vec<serde_json::Value> = serde_json::from_str(SAMPLE_ARTICLES)?;
    for article in articles {
        let (status, body) = relay.api(Method::POST, "/api/v1/kb/articles", &admin, Some(article)).await?;
        assert_eq!(status, 201, "{body}");
    }
    Ok((relay, admin))
}

async fn bot_says(customer: &mut Client) -> anyhow::Result<String> {
    customer
        .expect(|f| match f {
            ServerFrame::Message(m) if m.author.kind == AuthorKind::Bot => Some(m.body.clone()),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn the_bot_answers_then_hands_over_with_the_whole_exchange() -> Result {
    let (relay, _) = relay_with_kb().await?;
    let token = relay.agent_with("zhang@shop.example", "小张", Role::Agent, 5, "").await?;
    let mut customer = relay.customer().await?;
    let ack = customer.say_acked(None, "c1", "我的快递到哪了").await?;
    let conversation = ack.conversation_id;
    let opened = customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Opened => Some(c.conversation.state),
            _ => None,
        })
        .await?;
    assert_eq!(opened, ConversationState::Bot);
    let answer = bot_says(&mut customer).await?;
    assert!(answer.contains("物流") && answer.contains("有帮助吗"), "{answer}");

    // Nobody is bothered while the bot answers: an online agent gets nothing yet.
    let mut agent = relay.agent(&token, vec![]).await?;
    customer.say_acked(None, "c2", "转人工").await?;
    let handover = bot_says(&mut customer).await?;
    assert!(handover.contains("转接"), "{handover}");
    let assigned = agent
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Assigned => Some(c.conversation.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(assigned.id, conversation);
    assert_eq!(assigned.intent.as_deref(), Some("order_status"), "the agent sees what it is about");
    let history = agent.messages_until("转人工").await?;
    let authors: Vec<AuthorKind> = history.iter().map(|m| m.author.kind).collect();
    assert_eq!(authors, vec![AuthorKind::Customer, AuthorKind::Bot, AuthorKind::Customer]);
    let handover_note = agent.expect_message().await?;
    assert_eq!(handover_note.author.kind, AuthorKind::Bot);

    let (_, history) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), &token, None).await?;
    assert_eq!(history["messages"].as_array().unwrap().len(), 4);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_helpful_answer_resolves_and_three_unhelpful_ones_reach_a_person() -> Result {
    let (relay, _) = relay_with_kb().await?;
    let token = relay.agent_with("li@shop.example", "Li", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;

    let mut happy = relay.customer().await?;
    happy.say_acked(None, "h1", "how long does a refund take to reach my card").await?;
    let answer = bot_says(&mut happy).await?;
    assert!(answer.contains("Did this help?"), "{answer}");
    happy.say_acked(None, "h2", "yes thanks").await?;
    bot_says(&mut happy).await?;
    happy
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Resolved => Some(()),
            _ => None,
        })
        .await?;

    let mut unhappy = relay.customer().await?;
    let conversation = unhappy.say_acked(None, "u1", "我的快递到哪了").await?.conversation_id;
    for (i, line) in ["没用", "物流三天没动了", "没用", "快递还是没收到", "没有用"].iter().enumerate()
    {
        bot_says(&mut unhappy).await?;
        unhappy.say_acked(None, &format!("u{}", i + 2), line).await?;
    }
    let last = bot_says(&mut unhappy).await?;
    assert!(last.contains("转接"), "{last}");
    let assigned = agent
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Assigned => Some(c.conversation.id),
            _ => None,
        })
        .await?;
    assert_eq!(assigned, conversation);
    relay.stop().await?;
    Ok(())
}
