//! The customer side of channels: allowed origins for the widget, and ratings.

use futures_util::{SinkExt, StreamExt};
use kefu_proto::ErrorCode;
use kefu_proto::frame::{
    ClientFrame, ConversationChange, RateConversation, ResolveConversation, Role, ServerFrame, close_code,
};
use kefu_relay::Store;
use kefu_tests::{TestRelay, http_client};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Result = anyhow::Result<()>;

#[tokio::test]
async fn customers_rate_resolved_conversations_once_each() -> Result {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("r@shop.example", "Rae", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "发票开好了吗").await?.conversation_id;
    let rate = |score: u8, comment: &str| {
        ClientFrame::Rate(RateConversation {
            conversation_id: Some(conversation),
            score,
            comment: Some(comment.into()),
        })
    };
    customer.send(&rate(5, "too early")).await?;
    let refused = customer.expect_error().await?;
    assert_eq!(refused.code, ErrorCode::Conflict, "not before it is resolved");
    assert_eq!(refused.conversation_id, Some(conversation), "the refusal names the conversation rated");

    agent.expect_assigned().await?;
    agent.send(&ClientFrame::Resolve(ResolveConversation { conversation_id: conversation, resolution: None })).await?;
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Resolved => Some(()),
            _ => None,
        })
        .await?;
    customer.send(&rate(4, "还行")).await?;
    customer.send(&rate(5, "回复很快，很满意")).await?;
    // A ping answered after both means both were handled.
    customer.send(&ClientFrame::Ping(kefu_proto::frame::Ping { nonce: 1 })).await?;
    customer.expect(|f| matches!(f, ServerFrame::Pong(_)).then_some(())).await?;
    let store = Store::open(&relay.data_dir).await?;
    assert_eq!(
        store.rating(conversation).await?,
        Some((5, Some("回复很快，很满意".into()))),
        "the second replaces the first"
    );
    store.close().await;

    let mut stranger = relay.customer().await?;
    stranger.send(&rate(1, "not mine")).await?;
    assert_eq!(stranger.expect_error().await?.code, ErrorCode::NotFound);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn only_allowed_origins_may_use_the_widget_key() -> Result {
    let relay = TestRelay::start().await?;
    let store = Store::open(&relay.data_dir).await?;
    let workspace = kefu_relay::admin::show_workspace(&store, "default").await?.id;
    store.set_allowed_origins(workspace, &["https://shop.example".into()]).await?;
    store.close().await;
    let relay = relay.restart().await?;

    let hello = |key: &str| {
        serde_json::json!({"type": "hello", "protocol": 1, "auth": {"kind": "customer", "widget_key": key}}).to_string()
    };
    async fn connect_from(relay: &TestRelay, origin: &str) -> anyhow::Result<kefu_tests::RawSocket> {
        let mut request = format!("ws://{}/ws/customer", relay.addr).into_client_request()?;
        request.headers_mut().insert("origin", origin.parse()?);
        Ok(tokio_tungstenite::connect_async(request).await?.0)
    }
    let mut elsewhere = connect_from(&relay, "https://evil.example").await?;
    elsewhere.send(Message::Text(hello(&relay.widget_key).into())).await?;
    let mut closed = None;
    while let Some(Ok(message)) = elsewhere.next().await {
        if let Message::Close(frame) = message {
            closed = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(closed, Some(close_code::FORBIDDEN));

    let mut shop = connect_from(&relay, "https://shop.example").await?;
    shop.send(Message::Text(hello(&relay.widget_key).into())).await?;
    let first = shop.next().await.expect("a frame")?;
    assert!(first.to_text()?.contains("\"welcome\""), "{first}");

    // Apps send no Origin and pass; the harness's customer is one.
    let customer = relay.customer().await?;
    let token = customer.customer_token();
    let preflight = http_client()
        .request(reqwest::Method::OPTIONS, relay.url("/api/v1/attachments"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await?;
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://shop.example");
    let upload = |origin: &'static str| {
        http_client()
            .post(relay.url("/api/v1/attachments?name=a.txt"))
            .header("origin", origin)
            .bearer_auth(&token)
            .body("订单号 123")
            .send()
    };
    assert_eq!(upload("https://shop.example").await?.status(), 201);
    assert_eq!(upload("https://evil.example").await?.status(), 403);
    relay.stop().await?;
    Ok(())
}
