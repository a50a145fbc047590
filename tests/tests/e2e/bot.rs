//! The bot through the relay: it answers from the knowledge base, takes feedback, and
//! hands over to a person with the whole exchange and the intent.

use kefu_proto::frame::{AuthorKind, ConversationChange, ConversationState, Role, ServerFrame};
use kefu_relay::evaluation::SAMPLE_ARTICLES;
use kefu_tests::{Client, TestRelay};
use reqwest::Method;

type Result = anyhow::Result<()>;

/// A relay with the sample knowledge base loaded through the API, and an admin's token.
pub(crate) async fn relay_with_kb() -> anyhow::Result<(TestRelay, String)> {
    let relay = TestRelay::start().await?;
    let admin = relay.agent_with("kb@shop.example", "Admin", Role::Admin, 0, "").await?;
    let articles: Vec<serde_json::Value> = serde_json::from_str(SAMPLE_ARTICLES)?;
    for article in articles {
        let (status, body) = relay.api(Method::POST, "/api/v1/kb/articles", &admin, Some(article)).await?;
        assert_eq!(status, 201, "{body}");
    }
    Ok((relay, admin))
}

pub(crate) async fn bot_says(customer: &mut Client) -> anyhow::Result<String> {
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
    let assigned = agent.expect_assigned().await?.conversation;
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
    let assigned = agent.expect_assigned().await?.conversation.id;
    assert_eq!(assigned, conversation);
    relay.stop().await?;
    Ok(())
}

/// A stand-in for an outside service on 127.0.0.1:0: answers every POST with what
/// `reply` returns for the body and headers, and counts the calls.
struct FakeService {
    url: String,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

type Reply = std::sync::Arc<dyn Fn(&axum::http::HeaderMap, &[u8]) -> (u16, String) + Send + Sync>;

async fn fake_service(path: &str, reply: Reply) -> anyhow::Result<FakeService> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let reply = reply.clone();
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let (status, body) = reply(&headers, &body);
                (axum::http::StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body)
            }
        }),
    );
    let (addr, stop) = kefu_tests::serve_loopback(app).await?;
    let url = format!("http://{addr}{path}");
    Ok(FakeService { url, calls, _stop: stop })
}

/// Starts a relay with the sample knowledge base and the bot configured by `bot`.
async fn relay_with_bot(bot: kefu_relay::config::BotConfig) -> anyhow::Result<TestRelay> {
    let relay = TestRelay::start_with(move |c| c.bot = bot).await?;
    let admin = relay.agent_with("kb@shop.example", "Admin", Role::Admin, 0, "").await?;
    let articles: Vec<serde_json::Value> = serde_json::from_str(SAMPLE_ARTICLES)?;
    for article in articles {
        relay.api(Method::POST, "/api/v1/kb/articles", &admin, Some(article)).await?;
    }
    Ok(relay)
}

#[tokio::test]
async fn a_language_model_phrases_answers_and_the_article_goes_out_when_it_fails() -> Result {
    use std::sync::atomic::{AtomicBool, Ordering};
    let failing = std::sync::Arc::new(AtomicBool::new(false));
    let fail = failing.clone();
    let model = fake_service(
        "/v1/chat/completions",
        std::sync::Arc::new(move |_, body| {
            let request: serde_json::Value = serde_json::from_slice(body).unwrap();
            let grounded = request["messages"][1]["content"].as_str().unwrap_or("").contains("Article:");
            if fail.load(Ordering::SeqCst) || !grounded {
                (500, "{}".into())
            } else {
                (200, r#"{"choices":[{"message":{"role":"assistant","content":"（模型）您可以在“我的订单”里查看物流。"}}]}"#.into())
            }
        }),
    )
    .await?;
    let bot = kefu_relay::config::BotConfig {
        llm: Some(kefu_relay::outside::LlmConfig {
            url: model.url.clone(),
            model: "shop-assistant".into(),
            api_key: Some("sk-test".into()),
            timeout_ms: 2000,
            failures_before_pause: 2,
            pause_secs: 3600,
        }),
        ..Default::default()
    };
    let relay = relay_with_bot(bot).await?;
    let mut customer = relay.customer().await?;
    customer.say_acked(None, "c1", "我的快递到哪了").await?;
    let phrased = bot_says(&mut customer).await?;
    assert!(phrased.starts_with("（模型）") && phrased.contains("有帮助吗"), "{phrased}");

    // The model fails: the article goes out as it is; after two failures it is not asked.
    failing.store(true, Ordering::SeqCst);
    for (i, question) in ["发票怎么开", "能开公司抬头的发票吗", "退货运费谁出"].iter().enumerate()
    {
        let mut c = relay.customer().await?;
        c.say_acked(None, &format!("q{i}"), question).await?;
        let answer = bot_says(&mut c).await?;
        assert!(answer.starts_with("**"), "the plain article: {answer}");
    }
    assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 3, "one good call, two failures, then paused");
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_automation_answers_its_intent_with_signed_requests_or_hands_over() -> Result {
    use std::sync::atomic::{AtomicBool, Ordering};
    let decline = std::sync::Arc::new(AtomicBool::new(false));
    let declining = decline.clone();
    let automation = fake_service(
        "/hooks/order-status",
        std::sync::Arc::new(move |headers, body| {
            let timestamp: i64 = headers["x-kefu-timestamp"].to_str().unwrap().parse().unwrap();
            let signature = headers["x-kefu-signature"].to_str().unwrap();
            if !kefu_relay::outside::verify("shop-secret", timestamp, body, signature) {
                return (401, "{}".into());
            }
            let request: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(request["intent"], "order_status");
            if declining.load(Ordering::SeqCst) {
                (200, r#"{"handover": true}"#.into())
            } else {
                (200, r#"{"answer": "您的订单 8812 已到达杭州转运中心，预计明天送达。"}"#.into())
            }
        }),
    )
    .await?;
    let bot = kefu_relay::config::BotConfig {
        automations: vec![kefu_relay::outside::AutomationConfig {
            intent: "order_status".into(),
            url: automation.url.clone(),
            secret: "shop-secret".into(),
            timeout_ms: 2000,
        }],
        ..Default::default()
    };
    let relay = relay_with_bot(bot).await?;
    let token = relay.agent_with("ops@shop.example", "Ops", Role::Agent, 5, "").await?;
    let mut customer = relay.customer().await?;
    customer.say_acked(None, "c1", "我的快递到哪了").await?;
    let answer = bot_says(&mut customer).await?;
    assert!(answer.contains("杭州转运中心"), "{answer}");

    decline.store(true, Ordering::SeqCst);
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut other = relay.customer().await?;
    let conversation = other.say_acked(None, "o1", "快递三天没动了 到哪了").await?.conversation_id;
    let handover = bot_says(&mut other).await?;
    assert!(handover.contains("转接"), "{handover}");
    let assigned = agent.expect_assigned().await?.conversation.id;
    assert_eq!(assigned, conversation);
    relay.stop().await?;
    Ok(())
}
