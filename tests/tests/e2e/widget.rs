//! The web widget in a real browser: Debian's headless chromium, driven over WebDriver by
//! chromedriver with fantoccini, on a shop page the relay serves itself (`/widget/demo`,
//! same origin as the relay, under its strict Content-Security-Policy). An agent on a
//! plain WebSocket (the harness's [`Client`]) is the other side.
//!
//! chromedriver runs on a free loopback port in its own process group, so that the browser
//! it starts ends with it even when a test fails. Every wait polls the page until what it
//! looks for appears, under a generous guard; nothing waits on a fixed sleep.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use kefu_proto::frame::{
    AuthorKind, BodyFormat, ClientFrame, ConversationChange, MarkRead, ResolveConversation, Role, SendMessage,
    ServerFrame, Typing,
};
use kefu_proto::{ConversationId, Seq};
use kefu_relay::{Store, admin};
use kefu_tests::{Client, TestRelay, http_client};
use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Debian's browser and its matching driver (packages `chromium`, `chromium-driver`).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long to wait for the page to show something, or for the browser to start, before
/// failing: a guard against a hang, not a speed requirement.
const PAGE_WAIT: Duration = Duration::from_secs(60);

/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);

/// A 1×1 PNG, as a customer's photo.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A headless chromium under chromedriver, with a profile of its own.
struct Browser {
    /// The WebDriver session.
    page: fantoccini::Client,
    /// chromedriver, leader of the process group the browser runs in.
    driver: std::process::Child,
    /// The browser's profile (and its localStorage), removed at the end.
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Result<Browser> {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the widget's browser test needs Debian's chromium and chromium-driver \
                 (scripts/test installs them: apt-get install chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let profile = tempfile::tempdir()?;
        let driver = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", profile.path().join("chromedriver.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start chromedriver")?;
        let mut browser_args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--no-proxy-server".into(),
            "--lang=zh-CN".into(),
            "--window-size=1200,900".into(),
        ];
        browser_args.push(format!("--user-data-dir={}", profile.path().join("chromium").display()));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": browser_args,
                "prefs": {"intl.accept_languages": "zh-CN,zh"},
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        // chromedriver needs a moment before it listens: try until it answers.
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        let page = loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(capabilities.clone()).connect(&webdriver).await
            {
                Ok(page) => break page,
                Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Err(e) => {
                    let log = std::fs::read_to_string(profile.path().join("chromedriver.log")).unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                    bail!("cannot open a chromium session through chromedriver: {e}\n{tail}");
                }
            }
        };
        Ok(Browser { page, driver, _profile: profile })
    }

    /// Ends the session (chromedriver closes the browser).
    async fn close(self) -> Result<()> {
        self.page.clone().close().await?;
        Ok(())
    }

    async fn goto(&self, url: &str) -> Result<()> {
        self.page.goto(url).await?;
        Ok(())
    }

    async fn reload(&self) -> Result<()> {
        self.page.refresh().await?;
        Ok(())
    }

    async fn js(&self, script: &str) -> Result<serde_json::Value> {
        Ok(self.page.execute(script, vec![]).await?)
    }

    /// Waits until `condition` (a JavaScript expression) is truthy; returns its value.
    async fn until(&self, condition: &str) -> Result<serde_json::Value> {
        let script = format!("return ({condition}) || null;");
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let value = self.js(&script).await?;
            if !value.is_null() {
                return Ok(value);
            }
            if tokio::time::Instant::now() > deadline {
                let widget = self
                    .js("const w = document.getElementById('kefu-widget'); return w ? w.innerText : 'no widget';")
                    .await?;
                bail!(
                    "the page never showed `{condition}`; the widget shows:\n{}",
                    widget.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matching `css` shows `text`; returns all of its text.
    async fn wait_text(&self, css: &str, text: &str) -> Result<String> {
        let condition = format!(
            "[...document.querySelectorAll({css})].map(e => e.innerText).find(t => t.includes({text}))",
            css = serde_json::to_string(css)?,
            text = serde_json::to_string(text)?,
        );
        Ok(self.until(&condition).await?.as_str().unwrap_or_default().to_string())
    }

    /// Waits until an element matching `css` is on the page and shown.
    async fn wait_shown(&self, css: &str) -> Result<fantoccini::elements::Element> {
        let css_json = serde_json::to_string(css)?;
        self.until(&format!("[...document.querySelectorAll({css_json})].some(e => e.offsetParent !== null)")).await?;
        Ok(self.page.find(Locator::Css(css)).await?)
    }

    async fn count(&self, css: &str) -> Result<usize> {
        Ok(self.page.find_all(Locator::Css(css)).await?.len())
    }

    async fn click(&self, css: &str) -> Result<()> {
        self.wait_shown(css).await?.click().await?;
        Ok(())
    }

    async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.wait_shown(css).await?.send_keys(text).await?;
        Ok(())
    }

    /// The (conversation, seq) of every stored message the widget shows, top to bottom.
    async fn shown_messages(&self) -> Result<Vec<(i64, Seq)>> {
        let value = self
            .js("return [...document.querySelectorAll('.kefu-msg[data-seq]')].map(e => [+e.dataset.conv, +e.dataset.seq]);")
            .await?;
        Ok(serde_json::from_value(value)?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the browser it started share a process group: end them all, so
        // a failed test leaves no browser behind. (After a clean close this finds only
        // chromedriver.)
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

fn send(
    conversation: ConversationId,
    id: &str,
    body: &str,
    format: BodyFormat,
    attachments: Vec<String>,
) -> ClientFrame {
    ClientFrame::Send(SendMessage {
        client_msg_id: id.into(),
        conversation_id: Some(conversation),
        body: body.into(),
        format,
        internal: false,
        attachments,
    })
}

/// Sends and waits for the ack; returns the seq.
async fn agent_says(agent: &mut Client, frame: ClientFrame) -> Result<Seq> {
    let ClientFrame::Send(message) = &frame else { bail!("not a send") };
    let id = message.client_msg_id.clone();
    agent.send(&frame).await?;
    agent
        .expect(|f| match f {
            ServerFrame::Ack(a) if a.client_msg_id == id => Some(a.seq),
            _ => None,
        })
        .await
}

/// A loopback TCP forwarder to the relay that the test can cut and mend, like a network
/// that drops: cutting ends every connection through it and refuses new ones.
struct Cable {
    /// Where the browser connects.
    addr: SocketAddr,
    /// True while connections pass.
    up: watch::Sender<bool>,
}

impl Cable {
    async fn to(target: SocketAddr) -> Result<Cable> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, watching) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut up = watching.clone();
                if !*up.borrow() {
                    continue; // dropped at once: the connection is refused
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up.wait_for(|up| !up) => {}
                    }
                });
            }
        });
        Ok(Cable { addr, up })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn mend(&self) {
        self.up.send_replace(true);
    }
}

#[tokio::test]
async fn a_shop_page_chats_with_an_agent_reloads_with_its_history_and_rates() -> Result<()> {
    let relay = TestRelay::start().await?;
    let token = relay.agent_token("wang@shop.example", "小王").await?;
    let mut agent = relay.agent(&token, vec![]).await?;
    let browser = Browser::start().await?;
    let cable = Cable::to(relay.addr).await?;
    let shop = cable.url(&format!("/widget/demo?key={}", relay.widget_key));
    browser.goto(&shop).await?;

    // The customer opens the bubble and asks, in Chinese.
    let question = "你好，我想问一下订单 20251120-8841 什么时候发货？";
    browser.click(".kefu-bubble").await?;
    // The style sheet loaded under the page's Content-Security-Policy.
    browser.until("getComputedStyle(document.getElementById('kefu-widget')).position === 'fixed'").await?;
    browser.type_into(".kefu-input", question).await?;
    browser.click(".kefu-send").await?;
    let message = agent.expect_message().await?;
    assert_eq!(message.body, question);
    assert_eq!(message.author.kind, AuthorKind::Customer);
    let conversation = message.conversation_id;
    browser.wait_text(".kefu-agent-name", "小王").await?;
    browser.until("document.querySelector('.kefu-msg-own[data-seq=\"1\"]:not(.kefu-pending)')").await?;

    // Typing, both ways.
    agent.send(&ClientFrame::Typing(Typing { conversation_id: Some(conversation), active: true })).await?;
    browser.wait_text(".kefu-typing", "小王").await?;
    browser.type_into(".kefu-input", "好").await?;
    agent
        .expect(|f| match f {
            ServerFrame::Typing(t) if t.author == AuthorKind::Customer && t.active => Some(()),
            _ => None,
        })
        .await?;
    browser.page.find(Locator::Css(".kefu-input")).await?.clear().await?;

    // The agent answers in Markdown, then with text that looks like HTML.
    let reply = "您好，**已为您加急**，预计*明天*发货。\n物流单号 `SF1234567890`，可在 [物流查询](https://shop.example/track?id=8841) 查看。";
    let reply_seq = agent_says(&mut agent, send(conversation, "wang-1", reply, BodyFormat::Markdown, vec![])).await?;
    let tricky = "<img src=x onerror=\"document.title='pwned'\"><b>这不是粗体</b>";
    agent_says(&mut agent, send(conversation, "wang-2", tricky, BodyFormat::Markdown, vec![])).await?;
    browser.wait_text(".kefu-msg-agent strong", "已为您加急").await?;
    browser.until("document.querySelector('.kefu-typing').hidden").await?; // the answer ends the typing
    assert_eq!(browser.page.find(Locator::Css(".kefu-msg-agent em")).await?.text().await?, "明天");
    assert_eq!(browser.page.find(Locator::Css(".kefu-msg-agent code")).await?.text().await?, "SF1234567890");
    let link = browser.page.find(Locator::Css(".kefu-msg-agent a")).await?;
    assert_eq!(link.text().await?, "物流查询");
    assert_eq!(link.attr("href").await?.as_deref(), Some("https://shop.example/track?id=8841"));
    assert!(link.attr("rel").await?.unwrap_or_default().contains("noopener"));
    let body = browser.wait_text(".kefu-msg-agent .kefu-body", "这不是粗体").await?;
    assert!(body.contains("<b>这不是粗体</b>"), "shown as text: {body}");
    assert_eq!(browser.count(".kefu-msg-agent img, .kefu-msg-agent b").await?, 0, "no markup from a message");
    assert_ne!(browser.page.title().await?, "pwned");
    browser.wait_text(".kefu-msg-agent .kefu-author", "小王").await?;

    // Read receipts: the widget reports what it showed; the agent's receipt shows as read.
    let read = agent
        .expect(|f| match f {
            ServerFrame::Read(r) if r.reader == AuthorKind::Customer && r.seq > reply_seq => Some(r.seq),
            _ => None,
        })
        .await?;
    assert_eq!(read, reply_seq + 1);
    agent.send(&ClientFrame::Read(MarkRead { conversation_id: Some(conversation), seq: 1 })).await?;
    browser.until("document.querySelector('.kefu-msg-own[data-seq=\"1\"] .kefu-receipt.kefu-read')").await?;

    // The network drops: the widget keeps what the customer sends meanwhile, reconnects and
    // sends it, once.
    cable.cut();
    browser.wait_text(".kefu-status", "重连").await?;
    let offline_note = "网络断了，这条还能发出去吗？";
    browser.type_into(".kefu-input", offline_note).await?;
    browser.click(".kefu-send").await?;
    browser.wait_shown(".kefu-msg-own.kefu-pending").await?;
    cable.mend();
    let resent = agent.expect_message().await?;
    assert_eq!(resent.body, offline_note);
    browser
        .until(&format!("document.querySelector('.kefu-msg-own[data-seq=\"{}\"]:not(.kefu-pending)')", resent.seq))
        .await?;
    browser.until("document.querySelector('.kefu-status').hidden").await?;

    // A photo: uploaded with progress, sent as an attachment, shown inline from a blob.
    let files = tempfile::tempdir()?;
    let photo = files.path().join("破损照片.png");
    std::fs::write(&photo, PNG)?;
    browser.page.find(Locator::Css(".kefu-file-input")).await?.send_keys(&photo.display().to_string()).await?;
    let sent = agent.expect_message().await?;
    assert_eq!(sent.body, "");
    assert_eq!(sent.attachments.len(), 1);
    assert_eq!(sent.attachments[0].name, "破损照片.png");
    assert_eq!(sent.attachments[0].content_type, "image/png");
    browser
        .until("[...document.querySelectorAll('.kefu-msg-own .kefu-image')].some(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth === 1)")
        .await?;

    // A file over 10 MiB is refused before any upload.
    let big = files.path().join("视频.mp4");
    std::fs::write(&big, vec![0u8; 10 * 1024 * 1024 + 1])?;
    browser.page.find(Locator::Css(".kefu-file-input")).await?.send_keys(&big.display().to_string()).await?;
    browser.wait_text(".kefu-notice", "10 MB").await?;

    // The agent sends a file: a download link, fetched with the customer's token.
    let upload = http_client()
        .post(relay.url(&format!("/api/v1/conversations/{}/attachments?name=%E5%8F%91%E7%A5%A8.txt", conversation.0)))
        .bearer_auth(&token)
        .body("发票抬头：杭州某某有限公司")
        .send()
        .await?;
    assert_eq!(upload.status().as_u16(), 201);
    let invoice: serde_json::Value = upload.json().await?;
    let invoice_id = invoice["id"].as_str().context("attachment id")?.to_string();
    agent_says(&mut agent, send(conversation, "wang-3", "发票请查收", BodyFormat::Text, vec![invoice_id.clone()]))
        .await?;
    let file_link = browser.wait_text(".kefu-msg-agent .kefu-file", "发票.txt").await?;
    assert!(file_link.contains("发票.txt"), "{file_link}");

    // A reload shows the same history, once each, and continues the same conversation.
    let before = browser.shown_messages().await?;
    assert_eq!(before.len(), 6, "question, two replies, the note sent offline, photo, file: {before:?}");
    browser.reload().await?;
    browser.wait_text(".kefu-msg-own .kefu-body", question).await?;
    browser.wait_text(".kefu-agent-name", "小王").await?;
    assert_eq!(browser.shown_messages().await?, before, "the same messages after a reload, none twice");

    // What the agent writes while the page is gone arrives when it is back.
    browser.goto("about:blank").await?;
    let missed =
        agent_says(&mut agent, send(conversation, "wang-4", "您离开时我们已经发货了。", BodyFormat::Text, vec![]))
            .await?;
    browser.goto(&shop).await?;
    browser.wait_text(".kefu-msg-agent .kefu-body", "您离开时我们已经发货了").await?;
    let mut expected = before.clone();
    expected.push((conversation.0, missed));
    assert_eq!(browser.shown_messages().await?, expected);

    // A browser that kept only the token gets the whole history from the relay.
    browser
        .js(&format!(
            "localStorage.removeItem('kefu:{key}:history'); localStorage.removeItem('kefu:{key}:seqs');",
            key = relay.widget_key
        ))
        .await?;
    browser.reload().await?;
    browser.wait_text(".kefu-msg-agent .kefu-body", "您离开时我们已经发货了").await?;
    assert_eq!(browser.shown_messages().await?, expected, "the relay's history, in order, once each");
    assert_eq!(browser.count(".kefu-msg-own .kefu-image").await?, 1);

    // The agent resolves; the customer rates the conversation.
    agent
        .send(&ClientFrame::Resolve(ResolveConversation {
            conversation_id: conversation,
            resolution: Some("answered".into()),
        }))
        .await?;
    agent
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.change == ConversationChange::Resolved => Some(()),
            _ => None,
        })
        .await?;
    browser.wait_shown(".kefu-rating").await?;
    browser.click(".kefu-star[data-score=\"5\"]").await?;
    assert_eq!(browser.count(".kefu-star.kefu-on").await?, 5);
    browser.type_into(".kefu-rating-comment", "客服很耐心，谢谢！").await?;
    browser.click(".kefu-rating-submit").await?;
    browser.wait_shown(".kefu-rating-thanks").await?;
    assert_eq!(browser.count(".kefu-rating").await?, 0, "the form gives way to the thanks");
    let store = Store::open(&relay.data_dir).await?;
    assert_eq!(store.rating(conversation).await?, Some((5, Some("客服很耐心，谢谢！".to_string()))));
    store.close().await;
    // Rated once: a reload does not ask again.
    browser.reload().await?;
    browser.wait_text(".kefu-status", "已解决").await?;
    assert_eq!(browser.count(".kefu-rating").await?, 0);

    browser.close().await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_bot_answers_then_with_nobody_online_the_widget_takes_a_message() -> Result<()> {
    let relay = TestRelay::start().await?;
    let token = relay.agent_with("night@shop.example", "夜班小李", Role::Supervisor, 5, "").await?;
    // With an article in the knowledge base, new conversations start with the bot.
    let article = json!({
        "slug": "shipping-time-zh", "title": "发货时间", "language": "zh", "intents": ["shipping_time"],
        "body": "16 点前付款当天发货，之后次日发货。\n- 顺丰：1-2 天送达\n- 其他快递：3-5 天送达",
    });
    let (status, body) = relay.api(Method::POST, "/api/v1/kb/articles", &token, Some(article)).await?;
    assert_eq!(status, 201, "{body}");
    let browser = Browser::start().await?;
    let shop = format!("/widget/demo?key={}&name=%E6%9D%8E%E5%A5%B3%E5%A3%AB", relay.widget_key);
    browser.goto(&relay.url(&shop)).await?;

    browser.click(".kefu-bubble").await?;
    browser.type_into(".kefu-input", "请问什么时候发货？").await?;
    browser.click(".kefu-send").await?;
    browser.wait_text(".kefu-msg-bot .kefu-author", "智能助手").await?;
    let answer = browser.page.find(Locator::Css(".kefu-msg-bot .kefu-body")).await?.text().await?;
    assert!(!answer.is_empty() && !answer.contains("**"), "the bot's Markdown is rendered: {answer}");

    // The customer asks for a person; nobody is online, so the widget offers the form.
    browser.type_into(".kefu-input", "转人工").await?;
    browser.click(".kefu-send").await?;
    browser.wait_text(".kefu-status.kefu-queue", "第 1 位").await?;
    browser.wait_text(".kefu-status", "客服暂不在线").await?;
    browser.type_into(".kefu-offline-body", "订单 8812 的发票抬头写错了，请帮忙重开").await?;
    browser.type_into(".kefu-offline-contact", "138 0000 1234").await?;
    browser.click(".kefu-offline-submit").await?;
    let confirmation = browser.wait_text(".kefu-ticket", "#").await?;
    assert_eq!(browser.count(".kefu-offline").await?, 0, "the form gives way to the confirmation");
    // No agent served the conversation, so there is nothing to rate.
    browser.wait_text(".kefu-status", "已解决").await?;
    assert_eq!(browser.count(".kefu-rating").await?, 0);

    let (status, tickets) = relay.api(Method::GET, "/api/v1/tickets?assignee=me", &token, None).await?;
    assert_eq!(status, 200);
    let tickets = tickets.as_array().context("a list")?;
    assert_eq!(tickets.len(), 1);
    assert!(confirmation.contains(&format!("#{}", tickets[0]["id"])), "{confirmation}");
    assert_eq!(tickets[0]["subject"], "订单 8812 的发票抬头写错了，请帮忙重开");
    assert!(tickets[0]["description"].as_str().unwrap_or_default().contains("138 0000 1234"));
    let contact = tickets[0]["contact_id"].as_i64().context("contact")?;
    let (_, panel) = relay.api(Method::GET, &format!("/api/v1/contacts/{contact}"), &token, None).await?;
    assert_eq!(panel["name"], "李女士", "the page's data-name names the contact");

    // Once the shop allows only its own origin, the widget on another page stays quiet.
    let store = Store::open(&relay.data_dir).await?;
    let workspace = admin::show_workspace(&store, "default").await?.id;
    store.set_allowed_origins(workspace, &["https://shop.example".to_string()]).await?;
    store.close().await;
    let relay = relay.restart().await?;
    browser.goto(&relay.url(&shop)).await?;
    browser.click(".kefu-bubble").await?;
    browser.wait_text(".kefu-status", "暂不可用").await?;

    browser.close().await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_widget_is_served_with_caching_headers_and_the_demo_page_with_a_strict_policy() -> Result<()> {
    let relay = TestRelay::start().await?;
    let http = http_client();
    for (path, content_type) in
        [("/widget.js", "application/javascript; charset=utf-8"), ("/widget.css", "text/css; charset=utf-8")]
    {
        let response = http.get(relay.url(path)).send().await?;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(headers["cache-control"], "public, max-age=300");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let etag = headers["etag"].to_str()?.to_string();
        assert!(!response.text().await?.is_empty());
        let again = http.get(relay.url(path)).header("if-none-match", &etag).send().await?;
        assert_eq!(again.status().as_u16(), 304, "{path} unchanged");
        assert_eq!(again.headers()["etag"], etag.as_str());
    }

    let page = http.get(relay.url(&format!("/widget/demo?key={}&group=presales", relay.widget_key))).send().await?;
    assert_eq!(page.status().as_u16(), 200);
    let policy = page.headers()["content-security-policy"].to_str()?.to_string();
    for rule in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(rule), "{policy}");
    }
    let html = page.text().await?;
    assert!(
        html.contains(&format!(r#"<script src="/widget.js" data-key="{}" data-group="presales">"#, relay.widget_key))
    );
    let tricky = http.get(relay.url("/widget/demo?key=wk_x%22%3E%3Cscript%3E")).send().await?;
    assert_eq!(tricky.status().as_u16(), 400, "a key that is not a key");
    let (status, body) = relay.api(Method::GET, "/widget/demo", "unused", None).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));
    relay.stop().await?;
    Ok(())
}
