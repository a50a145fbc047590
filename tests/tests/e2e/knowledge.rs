//! The knowledge base through the relay: articles written by supervisors, searched by
//! agents in Chinese and English.

use kefu_proto::frame::Role;
use kefu_tests::TestRelay;
use reqwest::Method;
use serde_json::json;

type Result = anyhow::Result<()>;

#[tokio::test]
async fn articles_are_written_searched_and_removed() -> Result {
    let relay = TestRelay::start().await?;
    let lead = relay.agent_with("kb@shop.example", "Lead", Role::Supervisor, 5, "").await?;
    let agent = relay.agent_with("a@shop.example", "Agent", Role::Agent, 5, "").await?;
    let refund = json!({
        "slug": "refund-zh", "title": "退款多久到账", "language": "zh", "intents": ["refund"],
        "body": "退款审核通过后原路退回：支付宝、微信 1-3 个工作日到账，银行卡 3-7 个工作日。"
    });
    let (status, created) = relay.api(Method::POST, "/api/v1/kb/articles", &lead, Some(refund.clone())).await?;
    assert_eq!(status, 201, "{created}");
    let (status, _) = relay.api(Method::POST, "/api/v1/kb/articles", &agent, Some(refund)).await?;
    assert_eq!(status, 403, "agents read the knowledge base; supervisors write it");
    let shipping = json!({"title": "When will my order ship?", "language": "en", "body": "Orders paid before 4pm ship the same day."});
    let (status, shipped) = relay.api(Method::POST, "/api/v1/kb/articles", &lead, Some(shipping)).await?;
    assert_eq!((status, shipped["slug"].as_str()), (201, Some("when-will-my-order-ship-en")));

    let search = |q: &str| format!("/api/v1/kb/search?q={}", urlencode(q));
    let (_, hits) = relay.api(Method::GET, &search("钱什么时候能退回来"), &agent, None).await?;
    assert_eq!(hits[0]["slug"], "refund-zh");
    assert!(hits[0]["snippet"].as_str().unwrap().contains("到账"), "{hits}");
    let (_, hits) = relay.api(Method::GET, &search("how soon does it ship"), &agent, None).await?;
    assert_eq!(hits[0]["slug"], "when-will-my-order-ship-en");

    let bad = json!({"title": "", "body": "x"});
    assert_eq!(relay.api(Method::POST, "/api/v1/kb/articles", &lead, Some(bad)).await?.0, 400);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(relay.api(Method::DELETE, &format!("/api/v1/kb/articles/{id}"), &lead, None).await?.0, 204);
    let (_, hits) = relay.api(Method::GET, &search("退款到账"), &agent, None).await?;
    assert!(hits.as_array().unwrap().iter().all(|h| h["slug"] != "refund-zh"), "removed from search at once: {hits}");
    relay.stop().await?;
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
