//! Encryption at rest through the real relay: what customers and agents write, names and
//! files are nowhere on disk in the clear while every API and frame serves them as
//! written; and a key rotation while messages keep flowing leaves every message readable
//! and nothing under the old key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kefu_proto::frame::{
    ClientFrame, CloseConversation, ConversationChange, HelloAuth, RateConversation, Role, SendMessage, ServerFrame,
    Session,
};
use kefu_proto::{ContactId, ConversationId};
use kefu_relay::Store;
use kefu_relay::crypto::{Keyring, Keys, generate_key_line};
use kefu_tests::{Client, TestRelay, http_client};
use reqwest::Method;
use serde_json::json;

/// How long a test waits for the relay to pick up a changed key file (it looks every 5 s).
const RELOAD_DEADLINE: Duration = Duration::from_secs(60);

/// Every file under `dir` (database, its write-ahead log, attachments) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// A key file (mode 600) in its own directory, outside the data dir.
struct KeyFile {
    path: PathBuf,
    lines: Vec<String>,
    _dir: tempfile::TempDir,
}

impl KeyFile {
    fn new(first_id: &str) -> anyhow::Result<KeyFile> {
        let dir = tempfile::tempdir()?;
        let mut file = KeyFile { path: dir.path().join("keys"), lines: Vec::new(), _dir: dir };
        file.add(first_id)?;
        Ok(file)
    }

    /// Appends a new key, which becomes the active one.
    fn add(&mut self, id: &str) -> anyhow::Result<()> {
        self.lines.push(generate_key_line(id)?);
        self.write()
    }

    /// Drops a key.
    fn remove(&mut self, id: &str) -> anyhow::Result<()> {
        self.lines.retain(|line| !line.starts_with(&format!("{id} ")));
        self.write()
    }

    fn write(&self) -> anyhow::Result<()> {
        // Written beside and renamed, as an operator's editor would, so the relay never
        // reads half a file.
        let staged = self.path.with_extension("new");
        std::fs::write(&staged, format!("# kefu keys, the last one active\n{}\n", self.lines.join("\n")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&staged, &self.path)?;
        Ok(())
    }

    /// The store, as `kefu-relay keys …` opens it in another process.
    async fn store(&self, data_dir: &Path) -> anyhow::Result<Store> {
        let keyring = Keyring::parse(&self.lines.join("\n"))?;
        Ok(Store::open_with_keys(data_dir, Keys::fixed(keyring)).await?)
    }
}

fn contact_of(customer: &Client) -> ContactId {
    match &customer.welcome.as_ref().expect("welcomed").session {
        Session::Customer { contact_id, .. } => *contact_id,
        _ => unreachable!("a customer session"),
    }
}

/// A named customer (the name is what the panel and the history show).
async fn named_customer(relay: &TestRelay, name: &str) -> anyhow::Result<Client> {
    let mut customer = relay.connect("/ws/customer").await?;
    let auth = HelloAuth::Customer {
        widget_key: relay.widget_key.clone(),
        customer_token: None,
        name: Some(name.into()),
        group: None,
        customer_id: None,
        customer_signature: None,
    };
    customer.hello(auth, vec![]).await?;
    Ok(customer)
}

/// The bodies of a conversation's history, as agents read it.
async fn history(relay: &TestRelay, token: &str, conversation: ConversationId) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/v1/conversations/{conversation}/messages?after={after}&limit=200");
        let (status, page) = relay.api(Method::GET, &path, token, None).await?;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().expect("messages").clone();
        let Some(last) = messages.last() else { return Ok(bodies) };
        after = last["seq"].as_u64().expect("seq");
        bodies.extend(messages.iter().map(|m| m["body"].as_str().expect("body").to_string()));
    }
}

#[tokio::test]
async fn what_customers_write_is_sealed_on_disk_and_served_in_the_clear() -> anyhow::Result<()> {
    const NAME: &str = "欧阳娜娜";
    const PHRASE: &str = "紫色长颈鹿在午夜跳舞 13812345678";
    const REPLY: &str = "agent-reply-xyzzy-quux";
    const NOTE: &str = "私下备注-凤凰花开";
    const FILE: &str = "发票内容-only-in-the-file-4711";
    const TICKET: &str = "寄到建国路88号-靛青";
    const COMMENT: &str = "满意-孔雀蓝";
    let keys = KeyFile::new("k1")?;
    let key_file = keys.path.clone();
    let relay = TestRelay::start_with(move |c| c.encryption.key_file = Some(key_file)).await?;
    let token = relay.agent_with("li@shop.example", "小李", Role::Agent, 5, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let mut customer = named_customer(&relay, NAME).await?;
    let contact = contact_of(&customer);

    let conversation = customer.say_acked(None, "c1", PHRASE).await?.conversation_id;
    agent.expect_assignment_of(conversation).await?;
    let live = agent.expect_message().await?;
    assert_eq!((live.body.as_str(), live.author.name.as_deref()), (PHRASE, Some(NAME)));
    let upload = http_client()
        .post(relay.url("/api/v1/attachments?name=发票.txt"))
        .bearer_auth(customer.customer_token())
        .body(FILE)
        .send()
        .await?;
    assert_eq!(upload.status(), 201);
    let file_id = upload.json::<serde_json::Value>().await?["id"].as_str().expect("an id").to_string();
    agent.say_acked(Some(conversation), "a1", REPLY).await?;
    assert_eq!(customer.expect_message().await?.body, REPLY);
    let note = SendMessage {
        client_msg_id: "n1".into(),
        conversation_id: Some(conversation),
        body: NOTE.into(),
        format: Default::default(),
        internal: true,
        attachments: vec![],
    };
    agent.send(&ClientFrame::Send(note)).await?;
    agent.expect(|f| matches!(f, ServerFrame::Ack(a) if a.client_msg_id == "n1").then_some(())).await?;
    let ticket = json!({"subject": TICKET, "description": format!("{TICKET}，电话 13812345678"), "conversation_id": conversation});
    let (status, ticket) = relay.api(Method::POST, "/api/v1/tickets", &token, Some(ticket)).await?;
    assert_eq!(status, 201, "{ticket}");
    let ticket_id = ticket["id"].as_i64().or_else(|| ticket["ticket"]["id"].as_i64()).expect("a ticket id");
    agent.send(&ClientFrame::Close(CloseConversation { conversation_id: conversation, resolution: None })).await?;
    customer
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Closed => Some(()),
            _ => None,
        })
        .await?;
    let rate = RateConversation { conversation_id: Some(conversation), score: 5, comment: Some(COMMENT.into()) };
    customer.send(&ClientFrame::Rate(rate)).await?;
    customer.send(&ClientFrame::Ping(Default::default())).await?;
    customer.expect(|f| matches!(f, ServerFrame::Pong(_)).then_some(())).await?;

    // Nothing of it on disk in the clear: not in the database, its log, or the files.
    for needle in [NAME, PHRASE, "13812345678", REPLY, NOTE, FILE, TICKET, COMMENT] {
        let found = files_holding(&relay.data_dir, needle.as_bytes());
        assert_eq!(found, Vec::<String>::new(), "{needle} is on disk in the clear");
    }
    assert!(files_holding(&relay.data_dir, b"enc1:k1:").iter().any(|f| f.contains("kefu.db")), "sealed values");

    // Everyone who may read it reads it as written.
    assert_eq!(history(&relay, &token, conversation).await?, [PHRASE, REPLY, NOTE]);
    let (_, panel) = relay.api(Method::GET, &format!("/api/v1/contacts/{contact}"), &token, None).await?;
    assert_eq!(panel["name"], NAME);
    let (_, page) =
        relay.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), &token, None).await?;
    assert_eq!(page["messages"][0]["author"]["name"], NAME);
    let (_, details) = relay.api(Method::GET, &format!("/api/v1/tickets/{ticket_id}"), &token, None).await?;
    assert_eq!(details["ticket"]["subject"], TICKET, "{details}");
    let download =
        http_client().get(relay.url(&format!("/api/v1/attachments/{file_id}"))).bearer_auth(&token).send().await?;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await?.as_ref(), FILE.as_bytes());
    // The export (as `contact export` writes it) has it all in the clear.
    let store = keys.store(&relay.data_dir).await?;
    let workspace = kefu_relay::admin::show_workspace(&store, "default").await?.id;
    let export = serde_json::to_string(&store.export_contact(workspace, contact, "cli").await?)?;
    for needle in [NAME, PHRASE, REPLY, NOTE, TICKET, COMMENT] {
        assert!(export.contains(needle), "the export holds {needle}");
    }
    let bytes = kefu_relay::attachments::read(&relay.data_dir, &file_id, &store.keys().current()).await?;
    assert_eq!(bytes, FILE.as_bytes());
    // Without the key, nothing reads: an error, never garbage.
    let keyless = Store::open(&relay.data_dir).await?;
    let refused = keyless.export_contact(workspace, contact, "cli").await.unwrap_err().to_string();
    assert!(refused.contains("'k1'") && refused.contains("not in the keyring"), "{refused}");
    keyless.close().await;
    store.close().await;
    Ok(())
}

/// Customers sending, each its own conversation, until told to stop; returns each one's
/// conversation and the bodies it had acknowledged, in order.
async fn keep_sending(
    mut customer: Client,
    tag: usize,
    first: usize,
    stop: Arc<AtomicBool>,
    started: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<(ConversationId, Vec<String>)> {
    let mut sent = Vec::new();
    let mut conversation = None;
    // Bounded: stops when told, and in any case after this many (the agent reads its
    // frames only at the end, and holds at most `limits.outbound_queue` of them).
    for n in first..first + 1_000 {
        let body = format!("customer {tag} message {n}");
        let ack = customer.say_acked(conversation, &format!("{tag}-{n}"), &body).await?;
        conversation = Some(ack.conversation_id);
        sent.push(body);
        if n == first + 20 {
            let _ = started.send(()).await;
        }
        if stop.load(Ordering::Relaxed) && n > first + 20 {
            break;
        }
    }
    Ok((conversation.expect("sent at least once"), sent))
}

#[tokio::test]
async fn keys_rotate_while_messages_flow_and_every_message_still_reads() -> anyhow::Result<()> {
    const CUSTOMERS: usize = 3;
    let mut keys = KeyFile::new("k1")?;
    let key_file = keys.path.clone();
    let relay = TestRelay::start_with(move |c| {
        c.encryption.key_file = Some(key_file.clone());
        // The customers below send as fast as they are acknowledged, to keep the journal
        // writing throughout the rotation; the per-connection frame rate is not what this
        // test is about.
        c.limits.frames_per_second = 100_000;
        c.limits.frame_burst = 100_000;
    })
    .await?;
    let token = relay.agent_with("rota@shop.example", "Rota", Role::Agent, 10, "").await?;
    let mut agent = relay.agent(&token, vec![]).await?;

    // Before the rotation: messages and a file under k1.
    let mut customers = Vec::new();
    let mut conversations = Vec::new();
    let mut expected: Vec<Vec<String>> = Vec::new();
    for tag in 0..CUSTOMERS {
        let mut customer = relay.customer().await?;
        let mut sent = Vec::new();
        let mut conversation = None;
        for n in 0..100 {
            let body = format!("customer {tag} message {n}");
            conversation = Some(customer.say_acked(conversation, &format!("{tag}-{n}"), &body).await?.conversation_id);
            sent.push(body);
        }
        conversations.push(conversation.expect("opened"));
        expected.push(sent);
        customers.push(customer);
    }
    let upload = http_client()
        .post(relay.url(&format!("/api/v1/conversations/{}/attachments?name=a.txt", conversations[0])))
        .bearer_auth(&token)
        .body("the file before rotation")
        .send()
        .await?;
    assert_eq!(upload.status(), 201);
    let file_id = upload.json::<serde_json::Value>().await?["id"].as_str().expect("an id").to_string();

    // A new active key; the relay picks it up by itself: wait until what it writes is
    // sealed under k2.
    keys.add("k2")?;
    let operator = keys.store(&relay.data_dir).await?;
    let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
    let mut probe = 0;
    loop {
        let body = format!("customer 0 message probe {probe}");
        customers[0].say_acked(Some(conversations[0]), &format!("probe-{probe}"), &body).await?;
        expected[0].push(body);
        probe += 1;
        let status = operator.key_status(&relay.data_dir).await?;
        if status.totals().get(&Some("k2".to_string())).is_some_and(|n| *n > 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the relay never sealed under k2: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rotation while every customer keeps writing.
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, mut started) = tokio::sync::mpsc::channel(CUSTOMERS);
    let mut senders = Vec::new();
    for (tag, customer) in customers.into_iter().enumerate() {
        let first = expected[tag].len() + 1_000;
        senders.push(tokio::spawn(keep_sending(customer, tag, first, stop.clone(), started_tx.clone())));
    }
    for _ in 0..CUSTOMERS {
        started.recv().await.expect("a sender started");
    }
    let rotated = operator.rotate_keys(&relay.data_dir).await?;
    stop.store(true, Ordering::Relaxed);
    for (tag, sender) in senders.into_iter().enumerate() {
        let (conversation, sent) = sender.await??;
        assert_eq!(conversation, conversations[tag]);
        expected[tag].extend(sent);
    }
    assert_eq!((rotated.failed, rotated.left, rotated.files), (0, 0, 1), "{rotated:?}");

    // Nothing left under k1, or in the clear: k1 may go.
    let status = operator.key_status(&relay.data_dir).await?;
    assert_eq!(status.totals().keys().cloned().collect::<Vec<_>>(), [Some("k2".to_string())], "{status:?}");
    operator.close().await;

    // Every message, from before, during and after the rotation, reads back in order;
    // the agent saw each one live as it was written.
    for (tag, conversation) in conversations.iter().enumerate() {
        assert_eq!(history(&relay, &token, *conversation).await?, expected[tag], "customer {tag}");
    }
    let mut unseen: BTreeSet<String> = expected.iter().flatten().cloned().collect();
    while !unseen.is_empty() {
        let m = agent.expect_message().await?;
        assert!(unseen.remove(&m.body), "an unexpected or repeated message {:?}", m.body);
    }

    // With k1 removed from the key file, a restarted relay reads everything, files too.
    keys.remove("k1")?;
    let key_file = keys.path.clone();
    let relay = relay.restart_with(move |c| c.encryption.key_file = Some(key_file)).await?;
    let token = relay.login("rota@shop.example", kefu_tests::PASSWORD).await?;
    for (tag, conversation) in conversations.iter().enumerate() {
        assert_eq!(history(&relay, &token, *conversation).await?, expected[tag], "customer {tag} after restart");
    }
    let download =
        http_client().get(relay.url(&format!("/api/v1/attachments/{file_id}"))).bearer_auth(&token).send().await?;
    assert_eq!(download.bytes().await?.as_ref(), b"the file before rotation");
    Ok(())
}
