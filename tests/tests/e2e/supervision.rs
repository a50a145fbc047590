//! Supervision through the real relay: the live monitor, alerts (to supervisors, the
//! webhook and the event log), observing, whispering, taking over, reassigning, setting an
//! agent's capacity and presence, and the operators' `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kefu_proto::api::EventView;
use kefu_proto::frame::{
    AlertChange, AlertFrame, AlertKind, AuthorKind, BodyFormat, ClientFrame, ConversationChange, MonitorFrame,
    ObserveConversation, Presence, Role, SendMessage, ServerFrame, Supervise, TakeOverConversation,
    TransferConversation, TransferTarget,
};
use kefu_proto::{ConversationId, ErrorCode};
use kefu_tests::{Client, FRAME_WAIT, TestRelay, http_client, serve_loopback, webhook_signature};
use reqwest::Method;
use serde_json::{Value, json};

type Result = anyhow::Result<()>;

const HOOK_SECRET: &str = "alert-hook-secret";

/// A loopback receiver of alert pushes: keeps each body whose signature verifies.
struct AlertHook {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl AlertHook {
    async fn start() -> anyhow::Result<AlertHook> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        let app = axum::Router::new().route(
            "/alerts",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let keep = keep.clone();
                async move {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let expected = webhook_signature(HOOK_SECRET, &header("x-kefu-timestamp"), &body);
                    if header("x-kefu-signature") != expected {
                        return axum::http::StatusCode::UNAUTHORIZED;
                    }
                    keep.lock().unwrap().push(serde_json::from_slice(&body).expect("JSON"));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let (addr, stop) = serve_loopback(app).await?;
        let url = format!("http://{addr}/alerts");
        Ok(AlertHook { url, received, _stop: stop })
    }

    /// Waits for a push about alert `id` with `change`.
    async fn wait_for(&self, id: &str, change: &str) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            let found =
                self.received.lock().unwrap().iter().find(|b| b["alert"]["id"] == id && b["change"] == change).cloned();
            if let Some(body) = found {
                return Ok(body);
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "no {change} push for {id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn next_alert(client: &mut Client) -> anyhow::Result<AlertFrame> {
    client
        .expect(|f| match f {
            ServerFrame::Alert(a) => Some(a.clone()),
            _ => None,
        })
        .await
}

/// The next monitor frame that satisfies `check`.
async fn monitor_until(client: &mut Client, check: impl Fn(&MonitorFrame) -> bool) -> anyhow::Result<MonitorFrame> {
    client
        .expect(|f| match f {
            ServerFrame::Monitor(m) if check(m) => Some(m.clone()),
            _ => None,
        })
        .await
}

/// The event log as `admin` sees it, of kinds starting with `kind`.
async fn events(relay: &TestRelay, admin: &str, kind: &str) -> anyhow::Result<Vec<EventView>> {
    let (status, body) = relay.api(Method::GET, &format!("/api/v1/events?kind={kind}&limit=1000"), admin, None).await?;
    anyhow::ensure!(status == 200, "events: {status} {body}");
    Ok(serde_json::from_value(body)?)
}

/// Waits until the event log holds an entry of `kind` that `matches`.
async fn logged(
    relay: &TestRelay,
    admin: &str,
    kind: &str,
    matches: impl Fn(&EventView) -> bool,
) -> anyhow::Result<EventView> {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        if let Some(e) = events(relay, admin, kind).await?.into_iter().find(|e| matches(e)) {
            return Ok(e);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no {kind} event arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_customer_waiting_past_two_minutes_alerts_supervisors_once_and_resolves_when_served() -> Result {
    let hook = AlertHook::start().await?;
    let url = hook.url.clone();
    let relay = TestRelay::start_manual(move |c| {
        c.alerts.webhook_url = Some(url);
        c.alerts.webhook_secret = Some(HOOK_SECRET.into());
        c.alerts.business_hours = "00:00-24:00".into();
    })
    .await?;
    let admin = relay.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await?;
    let (status, reply) =
        relay.api(Method::POST, "/api/v1/groups", &admin, Some(json!({"slug": "after_sales"}))).await?;
    assert_eq!(status, 201, "{reply}");
    let supervisor_token = relay.agent_with("li@shop.example", "Supervisor Li", Role::Supervisor, 0, "").await?;
    let mut supervisor = relay.agent(&supervisor_token, vec![]).await?;
    supervisor.send(&ClientFrame::Supervise(Supervise { active: true })).await?;
    let first = monitor_until(&mut supervisor, |_| true).await?;
    let after_sales = first.groups.iter().find(|g| g.group.as_deref() == Some("after_sales")).expect("listed");
    assert_eq!((after_sales.waiting, after_sales.agents_online), (0, 0));
    assert_eq!(first.wait_alert_ms, 120_000);
    assert!(first.agents.iter().any(|a| a.agent.name == "Supervisor Li" && a.presence == Presence::Online));

    // Business hours all day and nobody in after_sales: that alone is an alert.
    relay.advance(Duration::from_secs(1));
    let nobody = next_alert(&mut supervisor).await?;
    assert_eq!((nobody.change, nobody.alert.kind), (AlertChange::Fired, AlertKind::NoAgentOnline));
    assert_eq!(nobody.alert.id, "no_agent_online:after_sales");

    let mut customer = relay.customer_in("after_sales").await?;
    let conversation = customer.say_acked(None, "c1", "我的退款什么时候到？").await?.conversation_id;
    // The monitor goes out on the relay's ticks (each second), when something changed.
    relay.advance(Duration::from_secs(1));
    let waiting = monitor_until(&mut supervisor, |m| {
        m.groups.iter().any(|g| g.group.as_deref() == Some("after_sales") && g.waiting == 1)
    })
    .await?;
    let queued_at = waiting.groups.iter().find_map(|g| g.oldest_queued_at).expect("the wait is timed");

    // 1 min 59 s: not yet. 2 min 1 s: the alert, once, even as the wait goes on.
    relay.advance(Duration::from_secs(118));
    relay.advance(Duration::from_secs(2));
    let long = next_alert(&mut supervisor).await?;
    let id = format!("long_wait:{conversation}");
    assert_eq!((long.change, long.alert.id.as_str()), (AlertChange::Fired, id.as_str()));
    assert_eq!(long.alert.conversation_id, Some(conversation));
    assert_eq!(long.alert.group.as_deref(), Some("after_sales"));
    let waited = long.alert.since - queued_at;
    assert!((120_000..=121_000).contains(&waited), "fired after {waited} ms of waiting");
    let with_alert = monitor_until(&mut supervisor, |m| m.alerts.iter().any(|a| a.id == id)).await?;
    assert!(with_alert.alerts.iter().any(|a| a.id == "no_agent_online:after_sales"));
    let pushed = hook.wait_for(&id, "fired").await?;
    assert_eq!(pushed["alert"]["kind"], "long_wait");
    relay.advance(Duration::from_secs(30));

    // An agent of the group comes: the customer is served and both alerts clear.
    let agent_token = relay.agent_with("wang@shop.example", "小王", Role::Agent, 5, "after_sales").await?;
    let mut agent = relay.agent(&agent_token, vec![]).await?;
    agent.expect_assignment_of(conversation).await?;
    relay.advance(Duration::from_secs(1));
    let mut resolved = Vec::new();
    while resolved.len() < 2 {
        let alert = next_alert(&mut supervisor).await?;
        assert_eq!(alert.change, AlertChange::Resolved, "{} fired again while it was on", alert.alert.id);
        resolved.push(alert.alert.id);
    }
    resolved.sort();
    assert_eq!(resolved, [id.clone(), "no_agent_online:after_sales".to_string()]);
    hook.wait_for(&id, "resolved").await?;

    // The event log holds each change once.
    logged(&relay, &admin, "alert.resolved", |e| e.data["id"] == id.as_str()).await?;
    let log = events(&relay, &admin, "alert.").await?;
    let about = |kind: &str| log.iter().filter(|e| e.kind == kind && e.data["id"] == id.as_str()).count();
    assert_eq!((about("alert.fired"), about("alert.resolved")), (1, 1));
    assert!(log.iter().all(|e| e.actor_kind == "system"));
    Ok(())
}

#[tokio::test]
async fn supervisors_observe_whisper_reassign_and_take_over_and_every_step_is_audited() -> Result {
    let relay = TestRelay::start().await?;
    let admin = relay.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await?;
    let a_token = relay.agent_with("a@shop.example", "Agent A", Role::Agent, 5, "").await?;
    let b_token = relay.agent_with("b@shop.example", "Agent B", Role::Agent, 5, "").await?;
    let s_token = relay.agent_with("s@shop.example", "Supervisor S", Role::Supervisor, 0, "").await?;
    let mut a = relay.agent(&a_token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "hello, my parcel is late").await?.conversation_id;
    a.expect_assignment_of(conversation).await?;
    let mut s = relay.agent(&s_token, vec![]).await?;
    let supervisor_id = match &s.welcome.as_ref().expect("welcomed").session {
        kefu_proto::frame::Session::Agent { agent, .. } => agent.id,
        _ => unreachable!("an agent session"),
    };

    // Agents may not observe.
    a.send(&ClientFrame::Observe(ObserveConversation { conversation_id: conversation, active: true })).await?;
    assert_eq!(a.expect_error().await?.code, ErrorCode::Forbidden);

    // The supervisor follows it: the history, then live messages.
    s.send(&ClientFrame::Observe(ObserveConversation { conversation_id: conversation, active: true })).await?;
    let observed = s.expect_conversation().await?;
    assert_eq!((observed.change, observed.conversation.id), (ConversationChange::Observed, conversation));
    assert_eq!(s.expect_message().await?.body, "hello, my parcel is late");
    customer.say_acked(None, "c2", "it was due on Monday").await?;
    assert_eq!(s.expect_message().await?.body, "it was due on Monday");
    let seen = a.messages_until("it was due on Monday").await?;
    assert_eq!(seen.last().map(|m| m.body.as_str()), Some("it was due on Monday"));

    // A whisper reaches the agent, never the customer; the supervisor cannot write to
    // the customer in a conversation that is not theirs.
    let whisper = |id: &str, body: &str, internal: bool| {
        ClientFrame::Send(SendMessage {
            client_msg_id: id.into(),
            conversation_id: Some(conversation),
            body: body.into(),
            format: BodyFormat::Text,
            internal,
            attachments: vec![],
        })
    };
    s.send(&whisper("w1", "offer the 10 yuan coupon", true)).await?;
    let note = a.expect_message().await?;
    assert_eq!((note.body.as_str(), note.internal), ("offer the 10 yuan coupon", true));
    assert_eq!(note.author.name.as_deref(), Some("Supervisor S"));
    s.send(&whisper("w2", "hi, I am the supervisor", false)).await?;
    assert_eq!(s.expect_error().await?.code, ErrorCode::NotFound);
    a.say_acked(Some(conversation), "a1", "Sorry! Here is a coupon.").await?;
    assert_eq!(customer.expect_message().await?.body, "Sorry! Here is a coupon.", "the note never reached them");

    // Stopping and observing again brings the whole history again (the client let go of it).
    let observe = |active| ClientFrame::Observe(ObserveConversation { conversation_id: conversation, active });
    s.messages_until("Sorry! Here is a coupon.").await?;
    s.send(&observe(false)).await?;
    s.send(&observe(true)).await?;
    assert_eq!(s.expect_conversation().await?.change, ConversationChange::Observed);
    let again = s.messages_until("Sorry! Here is a coupon.").await?;
    assert_eq!(again.first().map(|m| m.body.as_str()), Some("hello, my parcel is late"));

    // Reassign to B (the supervisor does not hold it).
    let mut b = relay.agent(&b_token, vec![]).await?;
    let to_b = TransferTarget::Agent { agent_id: agent_id(&b) };
    s.send(&ClientFrame::Transfer(TransferConversation { conversation_id: conversation, to: to_b, note: None }))
        .await?;
    b.expect_assignment_of(conversation).await?;
    let moved = s.expect_conversation().await?;
    assert_eq!(moved.change, ConversationChange::Observed);
    assert_eq!(moved.conversation.assignee.map(|x| x.name).as_deref(), Some("Agent B"));

    // Take over: the supervisor holds it, beyond a capacity of 0, and writes to the customer.
    s.send(&ClientFrame::TakeOver(TakeOverConversation { conversation_id: conversation })).await?;
    s.expect_assignment_of(conversation).await?;
    let lost = b
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Unassigned => Some(c.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(lost.conversation.id, conversation);
    s.say_acked(Some(conversation), "s1", "I am taking care of this personally.").await?;
    let from_supervisor = customer.expect_message().await?;
    assert_eq!(from_supervisor.author.name.as_deref(), Some("Supervisor S"));
    let (_, history) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/routing"), &s_token, None).await?;
    let last = history["decisions"].as_array().and_then(|d| d.last()).cloned().unwrap_or_default();
    assert_eq!(last["explanation"], "Supervisor S took it over from Agent B");

    // Capacity and presence: supervisors may set them, agents may not.
    let a_id = agent_id(&a);
    let patch = json!({"max_concurrent": 2, "presence": "away"});
    let (status, _) =
        relay.api(Method::PATCH, &format!("/api/v1/agents/{a_id}"), &b_token, Some(patch.clone())).await?;
    assert_eq!(status, 403);
    let (status, body) = relay.api(Method::PATCH, &format!("/api/v1/agents/{a_id}"), &s_token, Some(patch)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_concurrent"], 2);
    let presence = a
        .expect(|f| match f {
            ServerFrame::Presence(p) => Some(p.status),
            _ => None,
        })
        .await?;
    assert_eq!(presence, Presence::Away);

    // Every step, with who did it and from where.
    let by_supervisor = |e: &EventView| e.actor_id == Some(supervisor_id.0);
    for kind in ["supervisor.observed", "supervisor.reassigned", "agent.changed", "agent.presence_set"] {
        let event = logged(&relay, &admin, kind, by_supervisor).await?;
        assert_eq!(event.actor_kind, "agent", "{kind}");
        assert_eq!(event.origin.as_deref(), Some("127.0.0.1"), "{kind}");
    }
    let taken =
        logged(&relay, &admin, "routing.assigned", |e| by_supervisor(e) && e.data["details"]["rule"] == "taken_over")
            .await?;
    assert_eq!(taken.conversation_id, Some(conversation));
    assert_eq!(taken.origin.as_deref(), Some("127.0.0.1"));
    Ok(())
}

fn agent_id(client: &Client) -> kefu_proto::AgentId {
    match &client.welcome.as_ref().expect("welcomed").session {
        kefu_proto::frame::Session::Agent { agent, .. } => agent.id,
        _ => unreachable!("an agent session"),
    }
}

#[tokio::test]
async fn supervisors_alone_may_supervise_take_over_and_read_the_event_log() -> Result {
    let relay = TestRelay::start().await?;
    let agent_token = relay.agent_with("a@shop.example", "Agent A", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&agent_token, vec![]).await?;
    agent.send(&ClientFrame::Supervise(Supervise { active: true })).await?;
    assert_eq!(agent.expect_error().await?.code, ErrorCode::Forbidden);
    agent.send(&ClientFrame::TakeOver(TakeOverConversation { conversation_id: ConversationId(1) })).await?;
    assert_eq!(agent.expect_error().await?.code, ErrorCode::Forbidden);
    let (status, _) = relay.api(Method::GET, "/api/v1/events", &agent_token, None).await?;
    assert_eq!(status, 403);
    let s_token = relay.agent_with("s@shop.example", "Supervisor S", Role::Supervisor, 0, "").await?;
    let mut s = relay.agent(&s_token, vec![]).await?;
    s.send(&ClientFrame::TakeOver(TakeOverConversation { conversation_id: ConversationId(999) })).await?;
    assert_eq!(s.expect_error().await?.code, ErrorCode::NotFound);
    s.send(&ClientFrame::Observe(ObserveConversation { conversation_id: ConversationId(999), active: true })).await?;
    assert_eq!(s.expect_error().await?.code, ErrorCode::NotFound);
    Ok(())
}

const METRICS_TOKEN: &str = "metrics-token-0123456789";

#[tokio::test]
async fn metrics_need_the_token_or_the_private_address_and_count_what_happened() -> Result {
    // A free port for the private address (taken and released at once).
    let private = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let relay = TestRelay::start_with(move |c| {
        c.metrics.token = Some(METRICS_TOKEN.into());
        c.metrics.listen = Some(private);
    })
    .await?;
    let mut customer = relay.customer().await?;
    customer.say_acked(None, "c1", "anyone there?").await?;

    let scrape = |token: Option<&'static str>| {
        let mut request = http_client().get(relay.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(scrape(None).await?.status(), 401);
    assert_eq!(scrape(Some("metrics-token-wrong")).await?.status(), 401);
    let response = scrape(Some(METRICS_TOKEN)).await?;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str()?.starts_with("application/openmetrics-text"));
    let text = response.text().await?;
    for line in [
        "kefu_connections{side=\"customer\"} 1",
        "kefu_messages_stored_total{author=\"customer\"} 1",
        "kefu_queue_waiting{workspace=\"default\",queue=\"any\"} 1",
        "kefu_routing_decisions_total{outcome=\"queued\",rule=\"nobody_online\"} 1",
        "kefu_outbox_deliveries{state=\"pending\"} 0",
        "kefu_agents{workspace=\"default\",presence=\"online\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    let commits = text
        .lines()
        .find_map(|l| l.strip_prefix("kefu_journal_commit_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the commit histogram");
    assert!(commits >= 1, "{commits} commits counted");

    // The private address needs no token.
    let private = http_client().get(format!("http://{private}/metrics")).send().await?;
    assert_eq!(private.status(), 200);
    assert!(private.text().await?.contains("kefu_queue_oldest_wait_seconds"));

    // Without a token or address, there is no /metrics.
    let plain = TestRelay::start().await?;
    assert_eq!(http_client().get(plain.url("/metrics")).send().await?.status(), 404);
    Ok(())
}

#[tokio::test]
async fn a_supervisor_takes_a_conversation_from_the_bot_and_no_agent_is_offered_it() -> Result {
    let (relay, admin) = super::bot::relay_with_kb().await?;
    // An agent online with room all along: the conversation must not pass through them.
    let a_token = relay.agent_with("a@shop.example", "Agent A", Role::Agent, 5, "").await?;
    let s_token = relay.agent_with("s@shop.example", "Supervisor S", Role::Supervisor, 0, "").await?;
    let mut a = relay.agent(&a_token, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "我的快递到哪了").await?.conversation_id;
    let answer = super::bot::bot_says(&mut customer).await?;
    let mut s = relay.agent(&s_token, vec![]).await?;
    let supervisor_id = agent_id(&s);

    // The monitor lists it as with the bot: that is where the supervisor finds it.
    s.send(&ClientFrame::Supervise(Supervise { active: true })).await?;
    let before = monitor_until(&mut s, |m| m.with_bot.iter().any(|c| c.id == conversation)).await?;
    let listed = before.with_bot.iter().find(|c| c.id == conversation).unwrap();
    assert_eq!(before.with_bot_total, 1);
    assert!(!listed.customer.vip && listed.since <= before.at, "{listed:?}");
    assert_eq!(listed.customer.contact, None, "the customer gave no name: the client labels them");
    assert!(before.agents.iter().all(|a| a.conversations.is_empty()), "nobody holds it");

    s.send(&ClientFrame::TakeOver(TakeOverConversation { conversation_id: conversation })).await?;
    let taken = s.expect_assignment_of(conversation).await?;
    let after = monitor_until(&mut s, |m| {
        m.agents.iter().any(|a| a.agent.id == supervisor_id && a.conversations.iter().any(|c| c.id == conversation))
    })
    .await?;
    assert!(after.with_bot.is_empty() && after.with_bot_total == 0, "{:?}", after.with_bot);
    assert_eq!(taken.conversation.assignee.map(|x| x.id), Some(supervisor_id));
    let history = s.messages_until(&answer).await?;
    let authors: Vec<AuthorKind> = history.iter().map(|m| m.author.kind).collect();
    assert_eq!(authors, vec![AuthorKind::Customer, AuthorKind::Bot], "the whole exchange with the bot");

    // The customer writes again: it reaches the supervisor, and the bot keeps quiet. A bot
    // still answering replies as soon as the message is stored, which in practice beats
    // the supervisor's round trip; the stored history below is checked too.
    customer.say_acked(None, "c2", "还没收到，能帮我查一下吗").await?;
    assert_eq!(s.expect_message().await?.body, "还没收到，能帮我查一下吗");
    s.say_acked(Some(conversation), "s1", "我是主管，我来帮您查。").await?;
    let next = customer.expect_message().await?;
    assert_eq!((next.author.kind, next.body.as_str()), (AuthorKind::Agent, "我是主管，我来帮您查。"));

    // One routing decision, straight to the supervisor, and the hand-over in the event
    // log with who asked for it and from where.
    let (_, routing) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/routing"), &s_token, None).await?;
    let decisions = routing["decisions"].as_array().cloned().unwrap_or_default();
    let assigned: Vec<&Value> = decisions.iter().filter(|d| d["kind"] == "routing.assigned").collect();
    assert_eq!(assigned.len(), 1, "{routing}");
    assert_eq!(assigned[0]["explanation"], "Supervisor S took it over from the bot");
    let handed =
        logged(&relay, &admin, "conversation.handed_over", |e| e.conversation_id == Some(conversation)).await?;
    assert_eq!((handed.actor_kind.as_str(), handed.actor_id), ("agent", Some(supervisor_id.0)));
    assert_eq!(handed.data["reason"], "taken_over");
    assert_eq!(handed.origin.as_deref(), Some("127.0.0.1"));
    let (_, messages) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), &s_token, None).await?;
    let stored: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["author"]["kind"].as_str().unwrap()).collect();
    assert_eq!(stored, vec!["customer", "bot", "customer", "agent"]);

    // Agent A, idle with room, heard nothing of it: everything A received up to the
    // answer to a frame sent now, none of it about this conversation.
    let mut about_it = Vec::new();
    a.send(&ClientFrame::Observe(ObserveConversation { conversation_id: conversation, active: true })).await?;
    let refused = a
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.conversation.id == conversation => {
                about_it.push(format!("{:?}", c.change));
                None
            }
            ServerFrame::Message(m) if m.conversation_id == conversation => {
                about_it.push(m.body.clone());
                None
            }
            ServerFrame::Error(e) => Some(e.code),
            _ => None,
        })
        .await?;
    assert_eq!(refused, ErrorCode::Forbidden, "agents may not observe");
    assert!(about_it.is_empty(), "agent A was told of it: {about_it:?}");
    relay.stop().await?;
    Ok(())
}
