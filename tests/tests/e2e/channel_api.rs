//! Channels through the real relay: a shop's backend posting customers' messages (app),
//! a platform's signed webhooks (social), replies pushed to a local receiver that checks
//! every signature (failing at first, and across a restart), dead letters, and one contact
//! across the widget and the app.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kefu_proto::api::{ChannelView, InboundReceipt, OutboundMessage, OutboundPage, SocialKind};
use kefu_proto::frame::{ChannelKind, ClientFrame, CloseConversation, HelloAuth, Role, ServerFrame, Session};
use kefu_relay::Config;
use kefu_tests::{Client, FRAME_WAIT, TestRelay, http_client};
use reqwest::Method;
use serde_json::{Value, json};

type Result = anyhow::Result<()>;

/// Retries every second, so a test sees several attempts without waiting long.
fn quick_retries(config: &mut Config) {
    config.channels.retry_first_secs = 1;
    config.channels.retry_max_secs = 1;
    config.channels.max_attempts = 30;
}

/// A webhook receiver on loopback that checks each push's signature with the channel's
/// secret, answers 500 while told to fail, and records what it acknowledged.
struct Receiver {
    url: String,
    /// Pushes answered with 500 from now on (counts down); `usize::MAX`: until changed.
    failures_left: Arc<AtomicUsize>,
    /// Every push that came, acknowledged or not.
    attempts: Arc<AtomicUsize>,
    /// Acknowledged pushes, by delivery id, each with how often it was acknowledged.
    acknowledged: Arc<Mutex<Vec<(i64, OutboundMessage)>>>,
    /// Pushes whose signature did not verify.
    bad_signatures: Arc<AtomicUsize>,
    secret: Arc<Mutex<String>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    async fn start(failures: usize) -> anyhow::Result<Receiver> {
        let failures_left = Arc::new(AtomicUsize::new(failures));
        let attempts = Arc::new(AtomicUsize::new(0));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let bad_signatures = Arc::new(AtomicUsize::new(0));
        let secret = Arc::new(Mutex::new(String::new()));
        let state =
            (failures_left.clone(), attempts.clone(), acknowledged.clone(), bad_signatures.clone(), secret.clone());
        let app = axum::Router::new().route(
            "/kefu-replies",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (failures_left, attempts, acknowledged, bad_signatures, secret) = state.clone();
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let expected =
                        kefu_tests::webhook_signature(&secret.lock().unwrap(), &header("x-kefu-timestamp"), &body);
                    if header("x-kefu-signature") != expected {
                        bad_signatures.fetch_add(1, Ordering::SeqCst);
                        return axum::http::StatusCode::UNAUTHORIZED;
                    }
                    let failing = failures_left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                            0 => None,
                            usize::MAX => Some(usize::MAX),
                            n => Some(n - 1),
                        })
                        .is_ok();
                    if failing {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let message: OutboundMessage = serde_json::from_slice(&body).expect("a pushed reply");
                    assert_eq!(header("x-kefu-delivery"), message.id.to_string());
                    acknowledged.lock().unwrap().push((message.id, message));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let (addr, stop) = kefu_tests::serve_loopback(app).await?;
        let url = format!("http://{addr}/kefu-replies");
        Ok(Receiver { url, failures_left, attempts, acknowledged, bad_signatures, secret, _stop: stop })
    }

    fn acknowledged(&self) -> Vec<(i64, OutboundMessage)> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// Waits until `count` pushes were acknowledged.
    async fn wait_for(&self, count: usize) -> anyhow::Result<Vec<(i64, OutboundMessage)>> {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            let acknowledged = self.acknowledged();
            if acknowledged.len() >= count {
                return Ok(acknowledged);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} pushes arrived",
                acknowledged.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until at least `count` pushes came (acknowledged or not).
    async fn wait_for_attempts(&self, count: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        while self.attempts.load(Ordering::SeqCst) < count {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "no push arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Adds a channel as `admin`.
async fn add_channel(relay: &TestRelay, admin: &str, body: Value) -> anyhow::Result<ChannelView> {
    let (status, view) = relay.api(Method::POST, "/api/v1/channels", admin, Some(body)).await?;
    anyhow::ensure!(status == 201, "adding a channel: {status} {view}");
    Ok(serde_json::from_value(view)?)
}

/// Posts a customer's message to an app channel; returns the status and body.
async fn post_message(
    relay: &TestRelay,
    channel: &ChannelView,
    secret: &str,
    key: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut request = http_client()
        .post(relay.url(&format!("/api/v1/channels/{}/messages", channel.id)))
        .bearer_auth(secret)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// Messages of a conversation as an agent sees them.
async fn history(relay: &TestRelay, token: &str, conversation: i64) -> anyhow::Result<Vec<Value>> {
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let (status, page) = relay.api(Method::GET, &path, token, None).await?;
    anyhow::ensure!(status == 200, "history: {status} {page}");
    Ok(page["messages"].as_array().cloned().unwrap_or_default())
}

/// A channel's deliveries once their states are `states` (the relay records an outcome
/// just after the receiver answered); fails with what it last saw after [`FRAME_WAIT`].
async fn recorded_deliveries(
    relay: &TestRelay,
    admin: &str,
    channel: &ChannelView,
    states: &[&str],
) -> anyhow::Result<Value> {
    let path = format!("/api/v1/channels/{}/deliveries", channel.id);
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let (_, deliveries) = relay.api(Method::GET, &path, admin, None).await?;
        let seen: Vec<&str> = deliveries.as_array().into_iter().flatten().filter_map(|d| d["state"].as_str()).collect();
        if seen == states {
            return Ok(deliveries);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "deliveries not recorded as {states:?}: {deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reply(
    agent: &mut Client,
    conversation: kefu_proto::ConversationId,
    id: &str,
    body: &str,
) -> anyhow::Result<()> {
    agent.say_acked(Some(conversation), id, body).await?;
    Ok(())
}

#[tokio::test]
async fn an_app_channel_takes_messages_once_and_pushes_signed_replies_until_acknowledged() -> Result {
    let receiver = Receiver::start(2).await?;
    let relay = TestRelay::start_with(quick_retries).await?;
    let admin = relay.agent_with("admin@shop.example", "Ada", Role::Admin, 0, "").await?;
    let channel =
        add_channel(&relay, &admin, json!({"kind": "app", "name": "shop-app", "webhook_url": receiver.url})).await?;
    let secret = channel.secret.clone().expect("admins see the secret");
    *receiver.secret.lock().unwrap() = secret.clone();
    let token = relay.agent_with("li@shop.example", "Li", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;

    let message = json!({"customer_id": "u-42", "name": "张三", "body": "我的订单什么时候发货？"});
    let (status, first) = post_message(&relay, &channel, &secret, Some("order-q-1"), message.clone()).await?;
    assert_eq!(status, 201, "{first}");
    let receipt: InboundReceipt = serde_json::from_value(first)?;
    assert!(!receipt.duplicate);
    let (status, again) = post_message(&relay, &channel, &secret, Some("order-q-1"), message.clone()).await?;
    assert_eq!(status, 200, "a retried POST is answered from what was stored: {again}");
    let again: InboundReceipt = serde_json::from_value(again)?;
    assert_eq!((again.conversation_id, again.seq, again.duplicate), (receipt.conversation_id, receipt.seq, true));

    let assigned = agent.expect_assignment_of(receipt.conversation_id).await?;
    assert_eq!(assigned.conversation.channel, ChannelKind::App);
    assert_eq!(assigned.conversation.contact.name.as_deref(), Some("张三"));
    let seen = agent.expect_message().await?;
    assert_eq!(seen.body, "我的订单什么时候发货？");
    let via = seen.via.expect("the agent sees the channel");
    assert_eq!((via.channel, via.name.as_str()), (ChannelKind::App, "shop-app"));

    reply(&mut agent, receipt.conversation_id, "r1", "今天下午发出，请留意物流短信。").await?;
    let pushed = receiver.wait_for(1).await?;
    assert_eq!(pushed.len(), 1, "acknowledged once");
    let (_, out) = &pushed[0];
    assert_eq!(out.customer_id, "u-42");
    assert_eq!(out.body, "今天下午发出，请留意物流短信。");
    assert_eq!(out.author.name.as_deref(), Some("Li"));
    assert_eq!(out.conversation_id, receipt.conversation_id);
    assert_eq!(receiver.attempts.load(Ordering::SeqCst), 3, "two failures, then the acknowledged push");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);

    // The relay records the push as delivered once the receiver's answer is back, which
    // may be just after the receiver counted it.
    let deliveries = recorded_deliveries(&relay, &admin, &channel, &["delivered"]).await?;
    assert_eq!(deliveries[0]["attempts"], 3, "{deliveries}");
    // The same reply can also be fetched.
    let page: OutboundPage = http_client()
        .get(relay.url(&format!("/api/v1/channels/{}/messages?after=0", channel.id)))
        .bearer_auth(&secret)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page.messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["今天下午发出，请留意物流短信。"]);
    assert_eq!(page.next_after, out.id);

    // Refusals store nothing.
    let (status, error) = post_message(&relay, &channel, "kfs_wrong", None, message.clone()).await?;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("unauthorized")), "{error}");
    let unknown = ChannelView { id: channel.id + 100, ..channel.clone() };
    let (status, _) = post_message(&relay, &unknown, &secret, None, message.clone()).await?;
    assert_eq!(status, 404);
    let huge = json!({"customer_id": "u-42", "body": "长".repeat(40_000)});
    let (status, error) = post_message(&relay, &channel, &secret, None, huge).await?;
    assert_eq!((status, error["error"]["code"].as_str()), (413, Some("too_large")), "{error}");
    let (status, _) = post_message(&relay, &channel, &secret, Some("has space"), message.clone()).await?;
    assert_eq!(status, 400);
    let (status, _) = post_message(&relay, &channel, &secret, None, json!({"customer_id": "", "body": "hi"})).await?;
    assert_eq!(status, 400);
    let bodies: Vec<String> = history(&relay, &token, receipt.conversation_id.0)
        .await?
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(bodies, ["我的订单什么时候发货？", "今天下午发出，请留意物流短信。"]);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn replies_waiting_for_a_receiver_survive_a_restart_and_arrive_once_each_in_order() -> Result {
    let receiver = Receiver::start(usize::MAX).await?;
    let relay = TestRelay::start_with(quick_retries).await?;
    let admin = relay.agent_with("admin@shop.example", "Ada", Role::Admin, 0, "").await?;
    let channel =
        add_channel(&relay, &admin, json!({"kind": "app", "name": "mini", "webhook_url": receiver.url})).await?;
    let secret = channel.secret.clone().unwrap();
    *receiver.secret.lock().unwrap() = secret.clone();
    let token = relay.agent_with("li@shop.example", "Li", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let message = json!({"customer_id": "mp-openid-1", "body": "能开发票吗"});
    let (_, receipt) = post_message(&relay, &channel, &secret, Some("m1"), message).await?;
    let receipt: InboundReceipt = serde_json::from_value(receipt)?;
    agent.expect_assignment_of(receipt.conversation_id).await?;
    for (i, text) in ["可以开。", "请把抬头和税号发给我。", "开好后发到您的邮箱。"].iter().enumerate()
    {
        reply(&mut agent, receipt.conversation_id, &format!("r{i}"), text).await?;
    }
    receiver.wait_for_attempts(2).await?;
    agent.close().await?;
    let relay = relay
        .restart_with(|config| {
            // The receiver recovers while the relay is down.
            receiver.failures_left.store(0, Ordering::SeqCst);
            quick_retries(config);
        })
        .await?;
    let pushed = receiver.wait_for(3).await?;
    let bodies: Vec<&str> = pushed.iter().map(|(_, m)| m.body.as_str()).collect();
    assert_eq!(bodies, ["可以开。", "请把抬头和税号发给我。", "开好后发到您的邮箱。"], "in order");
    let mut per_delivery: HashMap<i64, usize> = HashMap::new();
    for (id, _) in &pushed {
        *per_delivery.entry(*id).or_default() += 1;
    }
    assert!(per_delivery.values().all(|n| *n == 1), "each acknowledged once: {per_delivery:?}");
    // The relay recorded each as delivered, so nothing is left to push again.
    recorded_deliveries(&relay, &admin, &channel, &["delivered"; 3]).await?;
    assert_eq!(receiver.acknowledged().len(), 3);
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_is_dead_lettered_visible_and_retried_by_hand() -> Result {
    let receiver = Receiver::start(usize::MAX).await?;
    let relay = TestRelay::start_with(|c| {
        quick_retries(c);
        c.channels.max_attempts = 2;
    })
    .await?;
    let admin = relay.agent_with("admin@shop.example", "Ada", Role::Admin, 5, "").await?;
    let channel =
        add_channel(&relay, &admin, json!({"kind": "app", "name": "shop-app", "webhook_url": receiver.url})).await?;
    let secret = channel.secret.clone().unwrap();
    *receiver.secret.lock().unwrap() = secret.clone();
    let mut agent = relay.agent(&admin, vec![]).await?;
    let (_, receipt) =
        post_message(&relay, &channel, &secret, None, json!({"customer_id": "u-1", "body": "退货地址是哪里"})).await?;
    let receipt: InboundReceipt = serde_json::from_value(receipt)?;
    agent.expect_assignment_of(receipt.conversation_id).await?;
    reply(&mut agent, receipt.conversation_id, "r1", "退货地址：上海市……").await?;
    let path = format!("/api/v1/channels/{}/deliveries?state=dead", channel.id);
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    let dead = loop {
        let (_, dead) = relay.api(Method::GET, &path, &admin, None).await?;
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            break dead;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead[0]["attempts"], 2, "{dead}");
    assert_eq!(dead[0]["last_error"], "HTTP 500");
    let (_, view) = relay.api(Method::GET, &format!("/api/v1/channels/{}", channel.id), &admin, None).await?;
    assert_eq!(view["outbox"]["dead"], 1);

    receiver.failures_left.store(0, Ordering::SeqCst);
    let retry = format!("/api/v1/channels/{}/deliveries/{}/retry", channel.id, dead[0]["id"]);
    let (status, _) = relay.api(Method::POST, &retry, &admin, None).await?;
    assert_eq!(status, 204);
    let pushed = receiver.wait_for(1).await?;
    assert_eq!(pushed[0].1.body, "退货地址：上海市……");
    let (status, _) = relay.api(Method::POST, &retry, &admin, None).await?;
    assert_eq!(status, 404, "only a dead letter can be retried");
    relay.stop().await?;
    Ok(())
}

/// A platform's webhook: `body` signed at `timestamp` with `secret`.
async fn hook(
    relay: &TestRelay,
    channel: i64,
    secret: &str,
    timestamp: i64,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let text = serde_json::to_vec(body)?;
    let signature = kefu_tests::webhook_signature(secret, &timestamp.to_string(), &text);
    hook_raw(relay, channel, &timestamp.to_string(), &signature, text).await
}

async fn hook_raw(
    relay: &TestRelay,
    channel: i64,
    timestamp: &str,
    signature: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Value)> {
    let response = http_client()
        .post(relay.url(&format!("/hooks/{channel}")))
        .header("x-kefu-timestamp", timestamp)
        .header("x-kefu-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn social_webhooks_are_verified_mapped_and_answered_the_way_they_came() -> Result {
    let relay = TestRelay::start().await?;
    let admin = relay.agent_with("admin@shop.example", "Ada", Role::Admin, 0, "").await?;
    let mapping = json!({
        "user_id": "sender.id", "display_name": "sender.nickname", "text": "message.content",
        "kind": "event", "event_id": "event_id",
        "kinds": {"im_message": "dm", "live_comment": "live", "item_comment": "comment"}
    });
    let channel =
        add_channel(&relay, &admin, json!({"kind": "social", "name": "抖音直播", "mapping": mapping})).await?;
    let secret = channel.secret.clone().unwrap();
    let token = relay.agent_with("li@shop.example", "Li", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;

    let event = json!({
        "event": "live_comment", "event_id": "ev-1001",
        "sender": {"id": 88001, "nickname": "小李"},
        "message": {"content": "主播，这款有优惠券吗？"}
    });
    let now = now_secs();
    let (status, receipt) = hook(&relay, channel.id, &secret, now, &event).await?;
    assert_eq!(status, 201, "{receipt}");
    let receipt: InboundReceipt = serde_json::from_value(receipt)?;

    // Replays, forgeries, stale timestamps, malformed events, unknown channels: 4xx, nothing stored.
    let (status, error) = hook(&relay, channel.id, &secret, now, &event).await?;
    assert_eq!(status, 401, "the same signed request again is a replay: {error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("replayed"));
    let mut other = event.clone();
    other["event_id"] = json!("ev-1002");
    let (status, _) = hook(&relay, channel.id, "kfs_not-the-secret", now, &other).await?;
    assert_eq!(status, 401);
    let (status, error) = hook(&relay, channel.id, &secret, now - 3600, &other).await?;
    assert_eq!(status, 401, "an hour-old timestamp: {error}");
    let text = serde_json::to_vec(&other)?;
    let (status, _) = hook_raw(&relay, channel.id, "", "", text).await?;
    assert_eq!(status, 401, "unsigned");
    let (status, error) =
        hook(&relay, channel.id, &secret, now, &json!({"event": "live_comment", "sender": {"id": 1}})).await?;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("message.content"));
    let (status, _) = hook(&relay, channel.id + 50, &secret, now, &other).await?;
    assert_eq!(status, 404);
    let huge = vec![b' '; 70 * 1024];
    let (status, _) = hook_raw(
        &relay,
        channel.id,
        &now.to_string(),
        &kefu_tests::webhook_signature(&secret, &now.to_string(), &huge),
        huge,
    )
    .await?;
    assert_eq!(status, 413);

    agent.expect_assignment_of(receipt.conversation_id).await?;
    let seen = agent.expect_message().await?;
    assert_eq!(seen.body, "主播，这款有优惠券吗？");
    assert_eq!(seen.author.name.as_deref(), Some("小李"));
    let via = seen.via.expect("via the social channel");
    assert_eq!((via.channel, via.source), (ChannelKind::Social, Some(SocialKind::Live)));
    assert_eq!(history(&relay, &token, receipt.conversation_id.0).await?.len(), 1, "nothing else was stored");

    reply(&mut agent, receipt.conversation_id, "r1", "有的，下单页领取满199减20。").await?;
    let page: OutboundPage = http_client()
        .get(relay.url(&format!("/api/v1/channels/{}/messages", channel.id)))
        .bearer_auth(&secret)
        .send()
        .await?
        .json()
        .await?;
    let out = page.messages.first().expect("the reply is in the feed");
    assert_eq!(out.customer_id, "88001");
    assert_eq!(out.body, "有的，下单页领取满199减20。");
    let reply_to = out.reply_to.as_ref().expect("a social reply says what it answers");
    assert_eq!((reply_to.kind, reply_to.event_id.as_deref()), (SocialKind::Live, Some("ev-1001")));
    relay.stop().await?;
    Ok(())
}

/// A widget customer signed in with the shop's customer id.
async fn signed_widget_customer(
    relay: &TestRelay,
    customer_id: &str,
    signature: &str,
    token: Option<String>,
) -> anyhow::Result<Client> {
    let mut client = relay.connect("/ws/customer").await?;
    let auth = HelloAuth::Customer {
        widget_key: relay.widget_key.clone(),
        customer_token: token,
        name: None,
        group: None,
        customer_id: Some(customer_id.into()),
        customer_signature: Some(signature.into()),
    };
    client.hello(auth, vec![]).await?;
    Ok(client)
}

fn contact_of(client: &Client) -> kefu_proto::ContactId {
    match &client.welcome.as_ref().expect("welcomed").session {
        Session::Customer { contact_id, .. } => *contact_id,
        other => panic!("not a customer session: {other:?}"),
    }
}

#[tokio::test]
async fn the_shops_customer_id_makes_one_contact_across_the_widget_and_the_app() -> Result {
    let relay = TestRelay::start().await?;
    let admin = relay.agent_with("admin@shop.example", "Ada", Role::Admin, 5, "").await?;
    let store = kefu_relay::Store::open(&relay.data_dir).await?;
    let workspace = kefu_relay::admin::show_workspace(&store, "default").await?.id;
    let identity_secret = store.identity_secret(workspace).await?;
    store.close().await;
    let channel = add_channel(&relay, &admin, json!({"kind": "app", "name": "shop-app"})).await?;
    let secret = channel.secret.clone().unwrap();
    let mut agent = relay.agent(&admin, vec![]).await?;

    // The customer starts in the app…
    let (_, receipt) = post_message(
        &relay,
        &channel,
        &secret,
        None,
        json!({"customer_id": "c-7", "name": "王女士", "body": "尺码偏大吗"}),
    )
    .await?;
    let receipt: InboundReceipt = serde_json::from_value(receipt)?;
    agent.expect_assignment_of(receipt.conversation_id).await?;
    agent
        .send(&ClientFrame::Close(CloseConversation { conversation_id: receipt.conversation_id, resolution: None }))
        .await?;

    // …and continues on the web, signed in: the same contact, with the app conversation in
    // their history.
    let signature = kefu_relay::channels::identity_signature(&identity_secret, "c-7");
    let mut web = signed_widget_customer(&relay, "c-7", &signature, None).await?;
    assert_eq!(contact_of(&web), receipt.contact_id);
    let web_conversation = web.say_acked(None, "w1", "我换个码数").await?.conversation_id;
    assert_ne!(web_conversation, receipt.conversation_id);
    let path = format!("/api/v1/contacts/{}", receipt.contact_id);
    let (_, panel) = relay.api(Method::GET, &path, &admin, None).await?;
    assert_eq!(panel["customer_id"], "c-7", "{panel}");
    let kinds: Vec<&str> =
        panel["conversations"].as_array().unwrap().iter().map(|c| c["channel"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["web", "app"], "newest first, every channel");

    // A forged signature is refused at hello.
    let mut forged = relay.connect("/ws/customer").await?;
    let auth = HelloAuth::Customer {
        widget_key: relay.widget_key.clone(),
        customer_token: None,
        name: None,
        group: None,
        customer_id: Some("c-7".into()),
        customer_signature: Some(kefu_relay::channels::identity_signature("guess", "c-7")),
    };
    assert!(forged.hello(auth, vec![]).await.is_err(), "a wrong signature is not welcomed");

    // An anonymous visitor who signs in later is folded into the customer's contact.
    let visitor = relay.customer().await?;
    let visitor_token = visitor.customer_token();
    let visitor_id = contact_of(&visitor);
    visitor.close().await?;
    let signature_8 = kefu_relay::channels::identity_signature(&identity_secret, "c-8");
    let (_, other) =
        post_message(&relay, &channel, &secret, None, json!({"customer_id": "c-8", "body": "在吗"})).await?;
    let other: InboundReceipt = serde_json::from_value(other)?;
    let signed_in = signed_widget_customer(&relay, "c-8", &signature_8, Some(visitor_token.clone())).await?;
    assert_eq!(contact_of(&signed_in), other.contact_id);
    assert_eq!(signed_in.customer_token(), visitor_token, "the visitor keeps their token");
    let (status, _) = relay.api(Method::GET, &format!("/api/v1/contacts/{visitor_id}"), &admin, None).await?;
    assert_eq!(status, 200, "the merged contact still reads");

    // Merging by hand: audited, refused while the other has a conversation open.
    let merge = format!("/api/v1/contacts/{}/merge", receipt.contact_id);
    let (status, error) = relay.api(Method::POST, &merge, &admin, Some(json!({"from": other.contact_id}))).await?;
    assert_eq!(status, 409, "{error}");
    let agent_token = relay.agent_with("li@shop.example", "Li", Role::Agent, 0, "").await?;
    let (status, _) = relay.api(Method::POST, &merge, &agent_token, Some(json!({"from": other.contact_id}))).await?;
    assert_eq!(status, 403, "agents may not merge");
    agent.expect_assignment_of(other.conversation_id).await?;
    agent
        .send(&ClientFrame::Close(CloseConversation { conversation_id: other.conversation_id, resolution: None }))
        .await?;
    agent
        .expect(|f| match f {
            ServerFrame::Conversation(c)
                if c.conversation.id == other.conversation_id
                    && c.change == kefu_proto::frame::ConversationChange::Closed =>
            {
                Some(())
            }
            _ => None,
        })
        .await?;
    let (status, error) = relay.api(Method::POST, &merge, &admin, Some(json!({"from": other.contact_id}))).await?;
    assert_eq!(status, 204, "{error}");
    let (_, panel) = relay.api(Method::GET, &path, &admin, None).await?;
    let conversations = panel["conversations"].as_array().unwrap();
    assert!(conversations.iter().any(|c| c["id"] == other.conversation_id.0), "{panel}");
    let store = kefu_relay::Store::open(&relay.data_dir).await?;
    let merged = store.contact_by_identity(workspace, "shop", "c-8").await?.expect("identity moved");
    assert_eq!(merged.id, receipt.contact_id);
    store.close().await;
    drop(web);
    relay.stop().await?;
    Ok(())
}
