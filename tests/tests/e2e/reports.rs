//! Reports through the real relay, on a manual clock so every time is exact: answered
//! conversations, a transfer, an abandoned one and a rating, as a supervisor sees them.

use std::time::Duration;

use kefu_proto::ConversationId;
use kefu_proto::frame::{
    ClientFrame, ConversationChange, LeaveMessage, Ping, RateConversation, ResolveConversation, Role, ServerFrame,
    Session, TransferConversation, TransferTarget,
};
use kefu_tests::{Client, TestRelay, http_client};
use reqwest::Method;
use serde_json::{Value, json};

type Result = anyhow::Result<()>;

/// The manual clock's start: Friday 2027-01-15 08:00 UTC.
const T: i64 = 1_800_000_000_000;

async fn sees(customer: &mut Client, change: ConversationChange) -> anyhow::Result<()> {
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == change => Some(()),
            _ => None,
        })
        .await
}

fn resolve(conversation: ConversationId) -> ClientFrame {
    ClientFrame::Resolve(ResolveConversation { conversation_id: conversation, resolution: None })
}

#[tokio::test]
async fn a_supervisor_reads_exact_figures_of_a_scripted_morning() -> Result {
    let relay = TestRelay::start_manual(|c| c.routing.reroute_unanswered_secs = 0).await?;
    let admin = relay.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await?;
    let (status, body) = relay.api(Method::POST, "/api/v1/groups", &admin, Some(json!({"slug": "night"}))).await?;
    assert_eq!(status, 201, "{body}");
    let lead = relay.agent_with("lead@shop.example", "Lead", Role::Supervisor, 0, "").await?;
    let amy_token = relay.agent_with("amy@shop.example", "Amy", Role::Agent, 5, "").await?;
    let ben_token = relay.agent_with("ben@shop.example", "Ben", Role::Agent, 5, "").await?;
    let mut amy = relay.agent(&amy_token, vec![]).await?;
    let second = Duration::from_secs(1);

    // 0 s: the first customer is answered in 10 s, resolved, and rates it 5.
    let mut first = relay.customer().await?;
    let c1 = first.say_acked(None, "c1", "发票开好了吗").await?.conversation_id;
    amy.expect_assignment_of(c1).await?;
    relay.advance(10 * second);
    amy.say_acked(Some(c1), "a1", "开好了，已发到您的邮箱").await?;
    amy.send(&resolve(c1)).await?;
    sees(&mut first, ConversationChange::Resolved).await?;
    first.send(&ClientFrame::Rate(RateConversation { conversation_id: Some(c1), score: 5, comment: None })).await?;
    first.send(&ClientFrame::Ping(Ping { nonce: 1 })).await?;
    first.expect(|f| matches!(f, ServerFrame::Pong(_)).then_some(())).await?;

    // 10 s: the second waits 80 s for an answer and stays open.
    let mut second_customer = relay.customer().await?;
    let c2 = second_customer.say_acked(None, "c1", "退货地址是哪里").await?.conversation_id;
    amy.expect_assignment_of(c2).await?;
    relay.advance(80 * second);
    amy.say_acked(Some(c2), "a2", "请寄到杭州仓").await?;

    // 90 s: the third is answered in 30 s, then transferred to Ben, who resolves it.
    let mut third = relay.customer().await?;
    let c3 = third.say_acked(None, "c1", "我要换货").await?.conversation_id;
    amy.expect_assignment_of(c3).await?;
    relay.advance(30 * second);
    amy.say_acked(Some(c3), "a3", "我请同事帮您").await?;
    let mut ben = relay.agent(&ben_token, vec![]).await?;
    let Some(Session::Agent { agent: ben_view, .. }) = ben.welcome.as_ref().map(|w| w.session.clone()) else {
        unreachable!("an agent's welcome")
    };
    amy.send(&ClientFrame::Transfer(TransferConversation {
        conversation_id: c3,
        to: TransferTarget::Agent { agent_id: ben_view.id },
        note: None,
    }))
    .await?;
    ben.expect_assignment_of(c3).await?;
    relay.advance(10 * second);
    ben.send(&resolve(c3)).await?;
    sees(&mut third, ConversationChange::Resolved).await?;

    // 130 s: the fourth waits in a group nobody serves and, 20 s later, leaves a message.
    let mut fourth = relay.customer_in("night").await?;
    fourth.say_acked(None, "c1", "有人吗").await?;
    fourth.expect(|f| matches!(f, ServerFrame::Queue(_)).then_some(())).await?;
    relay.advance(20 * second);
    fourth.send(&ClientFrame::LeaveMessage(LeaveMessage { body: "明天请回电".into(), contact_info: None })).await?;
    sees(&mut fourth, ConversationChange::Resolved).await?;

    let range = format!("from={T}&to={}", T + 3_600_000);
    let (status, report) = relay.api(Method::GET, &format!("/api/v1/reports/summary?{range}"), &lead, None).await?;
    assert_eq!(status, 200, "{report}");
    let expected: &[(&str, Value)] = &[
        ("/overall/conversations", json!(4)),
        ("/overall/queued", json!(4)),
        ("/overall/resolved", json!(2)),
        ("/overall/abandoned", json!(1)),
        ("/overall/still_open", json!(1)),
        ("/overall/resolution_rate", json!(0.5)),
        ("/overall/abandonment_rate", json!(0.25)),
        // First responses: 10, 30 and 80 s.
        ("/overall/first_response", json!({"count": 3, "mean_ms": 40000.0, "p50_ms": 30000, "p90_ms": 80000})),
        (
            "/overall/service_level",
            json!({"answered": 3, "within_15s": 1, "within_60s": 2, "share_15s": 1.0 / 3.0, "share_60s": 2.0 / 3.0}),
        ),
        ("/overall/reply_time/mean_ms", json!(40000.0)),
        // Handle and resolution: 10 s (first) and 40 s (third).
        ("/overall/handle_time", json!({"count": 2, "mean_ms": 25000.0, "p50_ms": 10000, "p90_ms": 40000})),
        ("/overall/resolution_time/mean_ms", json!(25000.0)),
        ("/overall/transfers", json!(1)),
        ("/overall/csat", json!({"ratings": 1, "average": 5.0, "distribution": [0, 0, 0, 0, 1]})),
        ("/by_group/0/group", Value::Null),
        ("/by_group/0/figures/conversations", json!(3)),
        ("/by_group/1/group", json!("night")),
        ("/by_group/1/figures/abandonment_rate", json!(1.0)),
        ("/by_agent/0/name", json!("Amy")),
        ("/by_agent/0/figures/conversations", json!(2)),
        ("/by_agent/0/figures/first_response/count", json!(3)),
        ("/by_agent/1/name", json!("Ben")),
        ("/by_agent/1/figures/conversations", json!(1)),
        ("/by_agent/1/figures/transfers", json!(1)),
        ("/by_channel/0/channel", json!("web")),
        // Friday 08:00 UTC, 16:00 in the shop's UTC+8.
        ("/arrivals/counts/4/8", json!(4)),
    ];
    for (pointer, value) in expected {
        assert_eq!(report.pointer(pointer), Some(value), "{pointer} in {report:#}");
    }

    // The default range is the seven days up to now; arrivals in the shop's time.
    let (status, arrivals) =
        relay.api(Method::GET, "/api/v1/reports/arrivals?tz_offset_minutes=480", &lead, None).await?;
    assert_eq!(status, 200, "{arrivals}");
    assert_eq!(arrivals["arrivals"]["counts"][4][16], 4, "{arrivals}");
    assert_eq!(arrivals["query"]["to"], T + 150_000);
    let (status, agents) =
        relay.api(Method::GET, &format!("/api/v1/reports/agents?{range}&agent={}", ben_view.id), &admin, None).await?;
    assert_eq!(status, 200, "{agents}");
    assert_eq!(agents["agents"].as_array().map(Vec::len), Some(1), "{agents}");

    // Agents may not read reports; bad parameters are named.
    let (status, refused) = relay.api(Method::GET, "/api/v1/reports/summary", &amy_token, None).await?;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("forbidden")), "{refused}");
    let (status, refused) = relay.api(Method::GET, "/api/v1/reports/summary?from=yesterday", &lead, None).await?;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_request")), "{refused}");
    let (status, _) = relay.api(Method::GET, &format!("/api/v1/reports/summary?from=0&to={T}"), &lead, None).await?;
    assert_eq!(status, 400, "more than 366 days");

    // The same as CSV: a header row, then overall, groups, agents, channels.
    let response = http_client()
        .get(relay.url(&format!("/api/v1/reports/summary?{range}")))
        .bearer_auth(&lead)
        .header("accept", "text/csv")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await?;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("scope,key,name,conversations,queued,resolved,"), "{csv}");
    assert!(lines[1].starts_with("overall,,,4,4,2,"), "{csv}");
    assert_eq!(lines.len(), 1 + 1 + 2 + 2 + 1, "{csv}");
    let response = http_client()
        .get(relay.url(&format!("/api/v1/reports/arrivals?{range}&format=csv")))
        .bearer_auth(&lead)
        .send()
        .await?;
    assert!(response.text().await?.starts_with("weekday,h00,"));
    relay.stop().await?;
    Ok(())
}
