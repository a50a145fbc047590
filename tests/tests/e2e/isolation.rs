//! Workspaces are tenants: nothing of one reaches another. Workspace A (the default) is
//! filled with one of everything, marked `MARKER-A`; from workspace B an admin (the
//! strongest role), an agent socket, a customer and a channel secret try every route of
//! the relay (`kefu_relay::http::ROUTES`, kept equal to the router by a relay test) and
//! every client frame kind against A's objects. Each must answer as if A's object did not
//! exist, and no answer may carry anything of A.

use std::path::Path;

use kefu_proto::frame::{
    BodyFormat, ClientFrame, CloseConversation, LeaveMessage, MarkRead, ObserveConversation, PickConversation,
    RateConversation, ResolveConversation, Role, SendMessage, ServerFrame, Session, Supervise, TakeOverConversation,
    TransferConversation, TransferTarget, Typing,
};
use kefu_proto::{ConversationId, ErrorCode};
use kefu_relay::{Store, admin};
use kefu_tests::{PASSWORD, TestRelay, http_client};
use reqwest::Method;
use serde_json::{Value, json};

const MARKER: &str = "MARKER-A";

/// A's objects, by id.
struct WorkspaceA {
    conversation: ConversationId,
    contact: i64,
    agent: i64,
    attachment: String,
    channel: i64,
    social_channel: i64,
    canned: i64,
    article: i64,
    ticket: i64,
}

async fn created(relay: &TestRelay, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, reply) = relay.api(Method::POST, path, token, Some(body)).await?;
    anyhow::ensure!((200..300).contains(&status), "{path}: {status} {reply}");
    Ok(reply)
}

/// Fills workspace A with one of everything.
async fn fill_a(relay: &TestRelay) -> anyhow::Result<WorkspaceA> {
    let admin = relay.agent_with("admin@a.example", &format!("{MARKER} admin"), Role::Admin, 5, "").await?;
    let (_, me) = relay.api(Method::GET, "/api/v1/me", &admin, None).await?;
    created(relay, &admin, "/api/v1/groups", json!({"slug": "marker-a-group", "name": MARKER})).await?;
    let mut agent = relay.agent(&admin, vec![]).await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "a1", &format!("{MARKER} customer message")).await?.conversation_id;
    agent.expect_assignment_of(conversation).await?;
    agent.say_acked(Some(conversation), "r1", &format!("{MARKER} reply")).await?;
    let contact = match &customer.welcome.as_ref().expect("welcomed").session {
        Session::Customer { contact_id, .. } => contact_id.0,
        _ => unreachable!("a customer session"),
    };
    let upload = http_client()
        .post(relay.url(&format!("/api/v1/conversations/{conversation}/attachments?name=marker-a.txt")))
        .bearer_auth(&admin)
        .body(format!("{MARKER} file"))
        .send()
        .await?;
    anyhow::ensure!(upload.status() == 201, "upload: {}", upload.status());
    let attachment = upload.json::<Value>().await?["id"].as_str().expect("an id").to_string();
    let channel = created(relay, &admin, "/api/v1/channels", json!({"kind": "app", "name": MARKER})).await?;
    let mapping = json!({"user_id": "u", "text": "t"});
    let social = json!({"kind": "social", "name": format!("{MARKER} social"), "mapping": mapping});
    let social = created(relay, &admin, "/api/v1/channels", social).await?;
    let canned = json!({"shortcut": "marker", "title": MARKER, "body": MARKER, "scope": "workspace"});
    let canned = created(relay, &admin, "/api/v1/canned", canned).await?;
    let article = json!({"title": format!("{MARKER} article"), "language": "en", "body": MARKER});
    let article = created(relay, &admin, "/api/v1/kb/articles", article).await?;
    let ticket = json!({"subject": format!("{MARKER} ticket"), "description": MARKER, "conversation_id": conversation});
    let ticket = created(relay, &admin, "/api/v1/tickets", ticket).await?;
    Ok(WorkspaceA {
        conversation,
        contact,
        agent: me["id"].as_i64().expect("an id"),
        attachment,
        channel: channel["id"].as_i64().expect("an id"),
        social_channel: social["id"].as_i64().expect("an id"),
        canned: canned["id"].as_i64().expect("an id"),
        article: article["id"].as_i64().expect("an id"),
        ticket: ticket["id"].as_i64().or_else(|| ticket["ticket"]["id"].as_i64()).expect("an id"),
    })
}

/// The path with A's ids in place of its parameters.
fn with_ids(path: &str, a: &WorkspaceA) -> String {
    let family = path.split('/').find(|s| !s.is_empty() && *s != "api" && *s != "v1").unwrap_or_default();
    let id = match family {
        "agents" => a.agent.to_string(),
        "conversations" => a.conversation.to_string(),
        "attachments" => a.attachment.clone(),
        "contacts" => a.contact.to_string(),
        "channels" => a.channel.to_string(),
        "hooks" => a.social_channel.to_string(),
        "canned" => a.canned.to_string(),
        "kb" => a.article.to_string(),
        "tickets" => a.ticket.to_string(),
        _ => String::new(),
    };
    path.replace("{id}", &id).replace("{slug}", "marker-a-group").replace("{delivery}", "1")
}

/// A body that is valid for the route (so that only the workspace can make it fail).
fn body_for(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("PATCH", "/api/v1/agents/{id}") => json!({"max_concurrent": 1}),
        ("POST", "/api/v1/groups") => json!({"slug": "b-group"}),
        ("PATCH", "/api/v1/contacts/{id}") => json!({"vip": true}),
        ("POST", "/api/v1/contacts/{id}/merge") => json!({"from": 999_999}),
        ("POST", "/api/v1/channels") => json!({"kind": "app", "name": "b channel"}),
        ("PATCH", "/api/v1/channels/{id}") => json!({"disabled": true}),
        ("POST", "/api/v1/channels/{id}/messages") => json!({"customer_id": "b-1", "body": "hello"}),
        ("POST", "/hooks/{id}") => json!({"u": "b-1", "t": "hello"}),
        ("POST", "/api/v1/canned") => json!({"shortcut": "b", "title": "b", "body": "b", "scope": "workspace"}),
        ("POST", "/api/v1/kb/articles") | ("PUT", "/api/v1/kb/articles/{id}") => {
            json!({"title": "B article", "language": "en", "body": "B text"})
        }
        ("POST", "/api/v1/tickets") => json!({"subject": "B ticket", "description": "b"}),
        ("PATCH", "/api/v1/tickets/{id}") => json!({"status": "solved"}),
        ("POST", "/api/v1/tickets/{id}/notes") => json!({"body": "b note"}),
        ("POST", "/api/v1/login") => json!({"email": "admin@b.example", "password": PASSWORD}),
        _ => return None,
    };
    Some(body)
}

async fn start_with_two_workspaces(dir: &Path) -> anyhow::Result<(TestRelay, String)> {
    let store = Store::open(dir).await?;
    let b = admin::add_workspace(&store, "rival", "Rival shop").await?;
    admin::add_agent(&store, "rival", "admin@b.example", "B admin", Role::Admin, Some(PASSWORD.into())).await?;
    store.close().await;
    let relay = TestRelay::start_in(dir.to_path_buf(), |_| {}).await?;
    Ok((relay, b.widget_key))
}

#[tokio::test]
async fn nothing_of_one_workspace_reaches_another_through_any_route_or_frame() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (relay, b_widget_key) = start_with_two_workspaces(dir.path()).await?;
    let a = fill_a(&relay).await?;
    let b_admin = relay.login("admin@b.example", PASSWORD).await?;
    let b_channel = created(&relay, &b_admin, "/api/v1/channels", json!({"kind": "app", "name": "B app"})).await?;
    let b_secret = b_channel["secret"].as_str().expect("a secret").to_string();

    let http = http_client();
    let mut tried = 0;
    for (method, path) in kefu_relay::http::ROUTES {
        // Not about any workspace's data: health, metrics (off here), sign-in/out, and
        // the WebSockets (their frames are tried below).
        if matches!(*path, "/healthz" | "/metrics" | "/api/v1/logout" | "/ws/customer" | "/ws/agent") {
            continue;
        }
        tried += 1;
        let url = relay.url(&with_ids(path, &a));
        let mut request = http.request(method.parse()?, &url);
        // A channel's own routes take its secret; everything else B's admin token.
        request = match *path {
            "/api/v1/channels/{id}/messages" => request.bearer_auth(&b_secret),
            "/hooks/{id}" => request,
            _ => request.bearer_auth(&b_admin),
        };
        if let Some(body) = body_for(method, path) {
            request = request.json(&body);
        } else if *method == "POST" {
            request = request.body("b bytes");
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        assert!(!text.contains(MARKER), "{method} {path} answered with A's data: {status} {text}");
        if path.contains('{') {
            // Named an object of A: as if it did not exist (a channel's own routes: the
            // wrong secret or signature).
            let expected: &[u16] = match *path {
                "/api/v1/channels/{id}/messages" | "/hooks/{id}" => &[401, 404],
                _ => &[404],
            };
            assert!(expected.contains(&status), "{method} {path}: {status} {text}");
        } else {
            assert_ne!(status, 403, "{method} {path}: B's admin may do it in B: {text}");
            assert!(status < 500, "{method} {path}: {status} {text}");
        }
    }
    assert!(tried >= 40, "the sweep covered {tried} routes");

    // A is untouched: its contact is no VIP, its group, channel and ticket are as they were.
    let a_admin = relay.login("admin@a.example", PASSWORD).await?;
    let (_, contact) = relay.api(Method::GET, &format!("/api/v1/contacts/{}", a.contact), &a_admin, None).await?;
    assert_eq!(contact["contact"]["vip"].as_bool().or(contact["vip"].as_bool()), Some(false), "{contact}");
    let (status, channel) = relay.api(Method::GET, &format!("/api/v1/channels/{}", a.channel), &a_admin, None).await?;
    assert_eq!((status, channel["disabled"].as_bool().unwrap_or(false)), (200, false), "{channel}");
    let (_, groups) = relay.api(Method::GET, "/api/v1/groups", &a_admin, None).await?;
    assert!(groups.to_string().contains("marker-a-group"));
    let (status, _) = relay.api(Method::GET, &format!("/api/v1/kb/articles/{}", a.article), &a_admin, None).await?;
    assert_eq!(status, 200);

    // Every frame kind from B's staff socket, naming A's conversation.
    let mut b_agent = relay.agent(&b_admin, vec![]).await?;
    let id = a.conversation;
    let send = |internal| {
        ClientFrame::Send(SendMessage {
            client_msg_id: format!("b-{internal}"),
            conversation_id: Some(id),
            body: "from B".into(),
            format: BodyFormat::Text,
            internal,
            attachments: vec![],
        })
    };
    let frames = vec![
        send(false),
        send(true),
        ClientFrame::Typing(Typing { conversation_id: Some(id), active: true }),
        ClientFrame::Read(MarkRead { conversation_id: Some(id), seq: 1 }),
        ClientFrame::Resolve(ResolveConversation { conversation_id: id, resolution: None }),
        ClientFrame::Close(CloseConversation { conversation_id: id, resolution: None }),
        ClientFrame::Transfer(TransferConversation {
            conversation_id: id,
            to: TransferTarget::Group { group: None },
            note: None,
        }),
        ClientFrame::Pick(PickConversation { conversation_id: id }),
        ClientFrame::Observe(ObserveConversation { conversation_id: id, active: true }),
        ClientFrame::TakeOver(TakeOverConversation { conversation_id: id }),
    ];
    for frame in &frames {
        // Exhaustive on purpose: a new frame kind must be added to this sweep.
        match frame {
            ClientFrame::Send(_)
            | ClientFrame::Typing(_)
            | ClientFrame::Read(_)
            | ClientFrame::Resolve(_)
            | ClientFrame::Close(_)
            | ClientFrame::Transfer(_)
            | ClientFrame::Pick(_)
            | ClientFrame::Observe(_)
            | ClientFrame::TakeOver(_) => {}
            // Name no conversation of anyone else: the customer's own, the sender's own
            // presence, the sender's monitor, and liveness.
            ClientFrame::Hello(_)
            | ClientFrame::Presence(_)
            | ClientFrame::Supervise(_)
            | ClientFrame::Ping(_)
            | ClientFrame::LeaveMessage(_)
            | ClientFrame::Rate(_) => unreachable!("not in the list"),
        }
        b_agent.send(frame).await?;
        let error = b_agent.expect_error().await?;
        assert!(
            matches!(error.code, ErrorCode::NotFound | ErrorCode::Conflict),
            "{} answered {:?}: {}",
            frame.kind(),
            error.code,
            error.message
        );
        assert!(!error.message.contains(MARKER));
    }
    // B's monitor shows nothing of A.
    b_agent.send(&ClientFrame::Supervise(Supervise { active: true })).await?;
    let monitor = b_agent
        .expect(|f| match f {
            ServerFrame::Monitor(m) => Some(m.clone()),
            _ => None,
        })
        .await?;
    let text = serde_json::to_string(&monitor)?;
    assert!(!text.contains(MARKER) && !text.contains("marker-a-group"), "{text}");

    // B's customers: their frames never reach A's conversation; A's files are not theirs.
    let mut b_customer = relay.connect("/ws/customer").await?;
    let auth = kefu_proto::frame::HelloAuth::Customer {
        widget_key: b_widget_key,
        customer_token: None,
        name: None,
        group: None,
        customer_id: None,
        customer_signature: None,
    };
    b_customer.hello(auth, vec![]).await?;
    let b_token = b_customer.customer_token();
    let customer_frames =
        [send(false), ClientFrame::Rate(RateConversation { conversation_id: Some(id), score: 1, comment: None })];
    for frame in &customer_frames {
        b_customer.send(frame).await?;
        let error = b_customer.expect_error().await?;
        assert_eq!(error.code, ErrorCode::NotFound, "{}: {}", frame.kind(), error.message);
    }
    let leave = ClientFrame::LeaveMessage(LeaveMessage { body: "from B".into(), contact_info: None });
    b_customer.send(&leave).await?;
    let file =
        http.get(relay.url(&format!("/api/v1/attachments/{}", a.attachment))).bearer_auth(&b_token).send().await?;
    assert_eq!(file.status(), 404);
    // A's history holds nothing from B.
    let (_, history) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{}/messages", a.conversation), &a_admin, None).await?;
    assert!(!history.to_string().contains("from B"), "{history}");

    // Every route above that wrote to the event log went through its hash chain.
    let store = Store::open(&relay.data_dir).await?;
    let audit = store.verify_audit().await?;
    store.close().await;
    assert_eq!((audit.broken_at, audit.unchained), (None, 0), "{audit:?}");
    assert!(audit.intact > 20, "{audit:?}");
    Ok(())
}
