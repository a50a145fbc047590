//! Security through the real relay: every permission of the matrix (`docs/security.md`,
//! `kefu_relay::permissions::MATRIX`) tried with every role, and sign-in lock-out.

use kefu_proto::frame::{ClientFrame, Role, ServerFrame, Session, Supervise};
use kefu_proto::{ContactId, ErrorCode};
use kefu_relay::permissions::{MATRIX, Permission, allows};
use kefu_tests::{PASSWORD, TestRelay, http_client};
use reqwest::Method;
use serde_json::{Value, json};

type Result = anyhow::Result<()>;

/// What the matrix walk works on.
struct Fixture {
    /// An agent to change.
    agent_id: i64,
}

/// A new customer's contact (after hello; no conversation yet).
async fn contact(relay: &TestRelay) -> anyhow::Result<ContactId> {
    let customer = relay.customer().await?;
    match &customer.welcome.as_ref().expect("welcomed").session {
        Session::Customer { contact_id, .. } => Ok(*contact_id),
        _ => unreachable!("a customer session"),
    }
}

/// Exercises `permission` as `token`; `Ok(true)` when the relay allowed it (a success
/// status, or the monitor for `supervise`), `Ok(false)` when it answered `forbidden`.
/// Anything else fails the test: the probe must be valid in every other respect.
async fn attempt(
    relay: &TestRelay,
    token: &str,
    permission: Permission,
    n: usize,
    fx: &Fixture,
) -> anyhow::Result<bool> {
    let api = |method: Method, path: String, body: Option<Value>| async move {
        let (status, body) = relay.api(method, &path, token, body).await?;
        match status {
            200..=299 => Ok(true),
            403 => {
                anyhow::ensure!(body["error"]["code"] == "forbidden", "{body}");
                Ok(false)
            }
            _ => anyhow::bail!("{path}: {status} {body}"),
        }
    };
    match permission {
        Permission::ManageSharedCanned => {
            let body = json!({"shortcut": format!("p{n}"), "title": "t", "body": "b", "scope": "workspace"});
            api(Method::POST, "/api/v1/canned".into(), Some(body)).await
        }
        Permission::WriteKnowledgeBase => {
            let body = json!({"title": format!("Article {n}"), "language": "en", "body": "Some text."});
            api(Method::POST, "/api/v1/kb/articles".into(), Some(body)).await
        }
        Permission::ReadReports => api(Method::GET, "/api/v1/reports/summary".into(), None).await,
        Permission::ChangeAgentLoad => {
            api(Method::PATCH, format!("/api/v1/agents/{}", fx.agent_id), Some(json!({"max_concurrent": 4}))).await
        }
        Permission::ChangeAgentSkills => {
            api(Method::PATCH, format!("/api/v1/agents/{}", fx.agent_id), Some(json!({"skills": []}))).await
        }
        Permission::ManageGroups => {
            api(Method::POST, "/api/v1/groups".into(), Some(json!({"slug": format!("g{n}")}))).await
        }
        Permission::MarkVip => {
            let who = contact(relay).await?;
            api(Method::PATCH, format!("/api/v1/contacts/{who}"), Some(json!({"vip": true}))).await
        }
        Permission::MergeContacts => {
            let (into, from) = (contact(relay).await?, contact(relay).await?);
            api(Method::POST, format!("/api/v1/contacts/{into}/merge"), Some(json!({"from": from}))).await
        }
        Permission::ReadChannels => api(Method::GET, "/api/v1/channels".into(), None).await,
        Permission::ManageChannels => {
            let body = json!({"kind": "app", "name": format!("app {n}")});
            api(Method::POST, "/api/v1/channels".into(), Some(body)).await
        }
        Permission::ReadEventLog => api(Method::GET, "/api/v1/events".into(), None).await,
        Permission::Supervise => {
            let mut client = relay.agent(token, vec![]).await?;
            client.send(&ClientFrame::Supervise(Supervise { active: true })).await?;
            let answer = client
                .expect(|f| match f {
                    ServerFrame::Monitor(_) => Some(Ok(())),
                    ServerFrame::Error(e) => Some(Err(e.code)),
                    _ => None,
                })
                .await?;
            match answer {
                Ok(()) => Ok(true),
                Err(ErrorCode::Forbidden) => Ok(false),
                Err(code) => anyhow::bail!("supervise refused with {code:?}"),
            }
        }
    }
}

#[tokio::test]
async fn every_permission_is_granted_to_exactly_the_roles_the_matrix_names() -> Result {
    let relay = TestRelay::start().await?;
    let tokens = [
        (Role::Agent, relay.agent_with("agent@shop.example", "Agent", Role::Agent, 5, "").await?),
        (Role::Supervisor, relay.agent_with("sup@shop.example", "Supervisor", Role::Supervisor, 5, "").await?),
        (Role::Admin, relay.agent_with("admin@shop.example", "Admin", Role::Admin, 5, "").await?),
    ];
    let (_, me) = relay.api(Method::GET, "/api/v1/me", &tokens[0].1, None).await?;
    let fx = Fixture { agent_id: me["id"].as_i64().expect("an id") };
    let mut n = 0;
    for (permission, what, _) in MATRIX {
        for (role, token) in &tokens {
            n += 1;
            let allowed = attempt(&relay, token, *permission, n, &fx).await?;
            assert_eq!(allowed, allows(*role, *permission), "{what} ({permission:?}) as {}", role.as_str());
        }
    }
    Ok(())
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_email_out_with_a_clear_wait() -> Result {
    let relay = TestRelay::start_with(|c| {
        c.auth.logins_per_minute_per_email = 100;
        c.auth.lockout_after_failures = 3;
    })
    .await?;
    relay.agent_with("chen@shop.example", "陈", Role::Agent, 5, "").await?;
    relay.agent_with("wang@shop.example", "小王", Role::Agent, 5, "").await?;
    let http = http_client();
    let login = |email: &'static str, password: &'static str| {
        http.post(relay.url("/api/v1/login")).json(&json!({"email": email, "password": password})).send()
    };
    for _ in 0..2 {
        assert_eq!(login("chen@shop.example", "wrong password").await?.status(), 401);
    }
    // A success before the limit clears the count.
    assert_eq!(login("chen@shop.example", PASSWORD).await?.status(), 200);
    for _ in 0..3 {
        assert_eq!(login("chen@shop.example", "wrong password").await?.status(), 401);
    }
    // Locked: even the right password waits, and the answer says how long.
    let locked = login("chen@shop.example", PASSWORD).await?;
    assert_eq!(locked.status(), 429);
    let body: Value = locked.json().await?;
    assert_eq!(body["error"]["code"], "rate_limited");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("too many failed logins for this e-mail; try again in "), "{message}");
    // Another e-mail is not affected.
    assert_eq!(login("wang@shop.example", PASSWORD).await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn customers_are_limited_per_address_and_per_shop_with_clear_refusals() -> Result {
    let relay = TestRelay::start_with(|c| {
        c.limits.customer_connections_per_ip = 2;
        c.limits.customer_messages_per_second_per_workspace = 3;
    })
    .await?;
    let first = relay.customer().await?;
    let mut second = relay.customer().await?;
    // A third connection from the same address is refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(relay.url("/ws/customer").replace("http", "ws")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())?;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("2 customer connections are open from your address"), "{message}");
        }
        other => anyhow::bail!("expected HTTP 429, got {other:?}"),
    }
    // Closing one makes room.
    first.close().await?;
    let _third = relay.customer().await?;

    // Past the shop's message rate, messages are refused (and kept by nobody), not lost
    // silently: the sender is told, names the message, and may send it again.
    for i in 0..6 {
        second.say(None, &format!("m{i}"), "hello").await?;
    }
    let mut acked = 0;
    let mut limited = Vec::new();
    while acked + limited.len() < 6 {
        match second.recv().await? {
            ServerFrame::Ack(_) => acked += 1,
            ServerFrame::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                assert!(e.message.contains("more than 3 customer messages a second"), "{}", e.message);
                limited.push(e.client_msg_id.expect("the refused message is named"));
            }
            _ => {}
        }
    }
    assert!(acked >= 3 && !limited.is_empty(), "{acked} acked, {limited:?} limited");
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_and_elsewhere_the_header_is_ignored() -> Result {
    let login = |relay: &TestRelay, forwarded: &'static str| {
        http_client()
            .post(relay.url("/api/v1/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": "nobody@shop.example", "password": "wrong password"}))
            .send()
    };
    // The relay trusts its proxy on loopback: two attempts per client address.
    let proxied = TestRelay::start_with(|c| {
        c.auth.logins_per_minute_per_ip = 2;
        c.auth.logins_per_minute_per_email = 100;
        c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await?;
    for _ in 0..2 {
        assert_eq!(login(&proxied, "203.0.113.5").await?.status(), 401);
    }
    assert_eq!(login(&proxied, "203.0.113.5").await?.status(), 429, "that client is over its limit");
    assert_eq!(login(&proxied, "203.0.113.6").await?.status(), 401, "another client is not");
    // The audit log says where each operation came from: here, the forwarded client.
    let admin = proxied.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await?;
    let signed_in = http_client()
        .post(proxied.url("/api/v1/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"email": "admin@shop.example", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(signed_in.status(), 200);
    let (_, logins) = proxied.api(Method::GET, "/api/v1/events?kind=agent.login", &admin, None).await?;
    let origins: Vec<&str> = logins.as_array().expect("events").iter().filter_map(|e| e["origin"].as_str()).collect();
    assert_eq!(origins, ["127.0.0.1", "198.51.100.7"]);
    // Without trusted proxies the header changes nothing: the peer is the client.
    let direct = TestRelay::start_with(|c| {
        c.auth.logins_per_minute_per_ip = 2;
        c.auth.logins_per_minute_per_email = 100;
    })
    .await?;
    assert_eq!(login(&direct, "203.0.113.5").await?.status(), 401);
    assert_eq!(login(&direct, "203.0.113.6").await?.status(), 401);
    assert_eq!(login(&direct, "203.0.113.7").await?.status(), 429, "a forged header does not reset the limit");
    Ok(())
}
