//! The workstation end to end: the real `kefu` binary, inside tmux, against a real relay.
//!
//! How the binary is found: `cargo test --workspace` builds every package's binaries
//! before running tests, so `kefu` sits in the target dir next to this test's executable
//! (`target/debug/kefu`, one level above `deps/`). When it is missing (e.g. after `cargo
//! test -p kefu-tests` on a fresh target dir) the test builds it with the same cargo
//! (`$CARGO build -p kefu-tui --bin kefu`) first.
//!
//! tmux runs on its own socket in a temporary dir, so it never touches the user's tmux.
//! The screen is read with `capture-pane` and polled until the expected text appears,
//! under a generous overall guard; nothing waits on a fixed sleep.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kefu_proto::api::{CannedScope, NewCannedReply};
use kefu_proto::frame::{AuthorKind, Role, ServerFrame};
use kefu_relay::evaluation::SAMPLE_ARTICLES;
use kefu_relay::{Store, admin};
use kefu_tests::{Client, PASSWORD, TestRelay};
use reqwest::Method;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long to wait for the screen to show something before failing (a guard against a
/// hang, not a speed requirement).
const SCREEN_WAIT: Duration = Duration::from_secs(60);

/// The `kefu` binary, built if needed.
pub(crate) async fn kefu_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe.parent().context("test executable has no directory")?;
    let profile_dir = deps.parent().context("deps/ has no parent")?;
    let kefu = profile_dir.join(format!("kefu{}", std::env::consts::EXE_SUFFIX));
    if !kefu.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "kefu-tui", "--bin", "kefu"])
            .status()
            .await
            .context("cannot run cargo to build kefu")?;
        if !status.success() || !kefu.exists() {
            bail!("kefu is not built at {}: run `cargo build -p kefu-tui` first", kefu.display());
        }
    }
    Ok(kefu)
}

/// A tmux server of our own running one program.
pub(crate) struct Tmux {
    /// Holds tmux's socket.
    socket_dir: tempfile::TempDir,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.env("TMUX_TMPDIR", self.socket_dir.path()).env_remove("TMUX").args([
            "-L",
            "kefu-e2e",
            "-f",
            "/dev/null",
        ]);
        command
    }

    /// Starts `program` with `env` in a detached 120×32 session.
    pub(crate) async fn start(program: &Path, env: &[(&str, &Path)]) -> Result<Tmux> {
        let tmux = Tmux { socket_dir: tempfile::tempdir()? };
        let mut line = String::from("env");
        for (key, value) in env {
            line.push_str(&format!(" {key}='{}'", value.display()));
        }
        line.push_str(&format!(" '{}'", program.display()));
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", "kefu", "-x", "120", "-y", "32", &line])
            .status()
            .await
            .context("cannot run tmux (is it installed? scripts/test needs the `tmux` package)")?;
        if !status.success() {
            bail!("tmux new-session failed: {status}");
        }
        Ok(tmux)
    }

    /// The screen as text.
    async fn screen(&self) -> Result<String> {
        let output = self.command().args(["capture-pane", "-p", "-t", "kefu"]).output().await?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Waits until the screen shows `text`; fails with the screen after [`SCREEN_WAIT`].
    pub(crate) async fn wait_for(&self, text: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen().await?;
            if screen.contains(text) {
                return Ok(screen);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the screen never showed {text:?}; it shows:\n{screen}");
            }
            // Polling interval, not synchronisation: the condition is re-checked.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends tmux key names (`Enter`, `Escape`, `q`).
    pub(crate) async fn keys(&self, keys: &[&str]) -> Result<()> {
        let status = self.command().args(["send-keys", "-t", "kefu"]).args(keys).status().await?;
        if !status.success() {
            bail!("tmux send-keys failed");
        }
        Ok(())
    }

    /// Types text literally (UTF-8, e.g. Chinese).
    async fn type_text(&self, text: &str) -> Result<()> {
        let status = self.command().args(["send-keys", "-t", "kefu", "-l", text]).status().await?;
        if !status.success() {
            bail!("tmux send-keys -l failed");
        }
        Ok(())
    }

    /// Waits for the program (and so the session) to end.
    pub(crate) async fn wait_exit(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let alive = self.command().args(["has-session", "-t", "kefu"]).stderr(Stdio::null()).status().await?;
            if !alive.success() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("kefu did not exit; the screen shows:\n{}", self.screen().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .env("TMUX_TMPDIR", self.socket_dir.path())
            .args(["-L", "kefu-e2e", "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

/// A home of its own for one workstation: config, credentials and the log go there.
pub(crate) struct Home {
    dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    data: PathBuf,
}

impl Home {
    pub(crate) fn new() -> Result<Home> {
        let dir = tempfile::tempdir()?;
        let (config, data) = (dir.path().join("config"), dir.path().join("data"));
        Ok(Home { dir, config, data })
    }

    /// The environment that points `kefu` at this home.
    pub(crate) fn env(&self) -> [(&'static str, &Path); 2] {
        [("XDG_CONFIG_HOME", self.config.as_path()), ("XDG_DATA_HOME", self.data.as_path())]
    }
}

/// Runs `kefu` with `args` in `home`, the password on standard input.
pub(crate) async fn run_kefu(kefu: &Path, home: &Home, args: &[&str]) -> Result<std::process::Output> {
    let mut command = Command::new(kefu);
    for (key, value) in home.env() {
        command.env(key, value);
    }
    let mut child = command
        .args(args)
        .env_remove("KEFU_RELAY")
        .env("NO_PROXY", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(format!("{PASSWORD}\n").as_bytes()).await?;
    Ok(child.wait_with_output().await?)
}

/// `kefu login` as `email` with [`PASSWORD`] from standard input, into `home`.
/// The workstation in tmux, signed in to `relay` as `email` in a home of its own, once it
/// says it is connected. The home goes with the session (keep it alive as long).
async fn signed_in_workstation(kefu: &Path, relay: &TestRelay, email: &str) -> Result<(Home, Tmux)> {
    let home = Home::new()?;
    kefu_login(kefu, &home, relay, email).await?;
    let tmux = Tmux::start(kefu, &home.env()).await?;
    tmux.wait_for("已连接 connected").await?;
    Ok((home, tmux))
}

async fn kefu_login(kefu: &Path, home: &Home, relay: &TestRelay, email: &str) -> Result<()> {
    let relay_url = relay.url("");
    let output = run_kefu(kefu, home, &["login", "--relay", &relay_url, "--email", email, "--password-stdin"]).await?;
    assert!(output.status.success(), "kefu login failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_logs_in_receives_a_message_and_replies_from_the_workstation() -> Result<()> {
    let kefu = kefu_binary().await?;
    let relay = TestRelay::start().await?;
    let store = Store::open(&relay.data_dir).await?;
    admin::add_agent(&store, "default", "wang@shop.example", "小王", Role::Agent, Some(PASSWORD.into())).await?;
    let workspace = admin::show_workspace(&store, "default").await?;
    let thanks = NewCannedReply {
        shortcut: "thanks".into(),
        title: "致谢 Thanks".into(),
        body: "感谢您的耐心，{customer.name}！我是{agent.name}。".into(),
        scope: CannedScope::Workspace,
    };
    store.add_canned_reply(workspace.id, None, &thanks).await?;
    store.close().await;

    let home = Home::new()?;
    let env = home.env();

    // `kefu login`, the password from standard input.
    kefu_login(&kefu, &home, &relay, "wang@shop.example").await?;
    let credentials = home.config.join("kefu").join("credentials.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&credentials)?.permissions().mode() & 0o777, 0o600);
    }

    // The workstation, inside tmux.
    let tmux = Tmux::start(&kefu, &env).await?;
    tmux.wait_for("已连接 connected").await?;

    // A customer writes; the conversation is routed to the only agent online.
    let mut customer = relay.customer().await?;
    customer.say_acked(None, "web-1", "你好，我的快递到哪了？").await?;
    tmux.wait_for("你好，我的快递到哪了？").await?;

    // Reply from the keyboard: enter composes, enter sends.
    tmux.keys(&["Enter"]).await?;
    tmux.type_text("您好，正在为您查询。").await?;
    tmux.wait_for("您好，正在为您查询。").await?;
    tmux.keys(&["Enter"]).await?;

    let reply = customer.expect_message().await?;
    assert_eq!(reply.body, "您好，正在为您查询。");
    assert_eq!(reply.author.kind, AuthorKind::Agent);
    assert_eq!(reply.author.name.as_deref(), Some("小王"));
    tmux.wait_for("已送达 sent").await?;

    // A canned reply by shortcut: tab expands it (the customer gave no name), enter sends.
    tmux.type_text("/thanks").await?;
    tmux.keys(&["Tab"]).await?;
    tmux.wait_for("感谢您的耐心，客户！我是小王。").await?;
    tmux.keys(&["Enter"]).await?;
    assert_eq!(customer.expect_message().await?.body, "感谢您的耐心，客户！我是小王。");

    // A file: uploaded through the relay, then sent as an attachment.
    let file = home.dir.path().join("运单.txt");
    std::fs::write(&file, "运单号 SF1234567890\n")?;
    // Escape alone (with "f" in the same write the terminal would read Alt-f).
    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&["f"]).await?;
    tmux.wait_for("发送文件 Send a file").await?;
    tmux.type_text(&file.display().to_string()).await?;
    tmux.keys(&["Enter"]).await?;
    let sent = customer.expect_message().await?;
    assert_eq!(sent.attachments.len(), 1, "{sent:?}");
    assert_eq!(sent.attachments[0].name, "运单.txt");
    tmux.wait_for("附件 file 运单.txt").await?;

    // A private note stays among agents: the customer's next message is the reply after it.
    tmux.keys(&["Enter", "M-n"]).await?;
    tmux.wait_for("内部备注 Private note").await?;
    tmux.type_text("客户很着急").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.wait_for("已保存 saved").await?;
    tmux.keys(&["M-n"]).await?;
    tmux.type_text("马上为您处理").await?;
    tmux.keys(&["Enter"]).await?;
    assert_eq!(customer.expect_message().await?.body, "马上为您处理", "the note never reaches the customer");

    // Leave cleanly; the log went to the data dir, not the screen.
    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&["q"]).await?;
    tmux.wait_exit().await?;
    let log = std::fs::read_to_string(home.data.join("kefu").join("kefu.log"))?;
    assert!(log.contains("workstation starting"), "{log}");
    relay.stop().await?;
    Ok(())
}

/// A query value, percent-encoded (as the workstation sends it).
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What the bot says next to the customer.
async fn bot_says(customer: &mut Client) -> Result<String> {
    customer
        .expect(|f| match f {
            ServerFrame::Message(m) if m.author.kind == AuthorKind::Bot => Some(m.body.clone()),
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_from_the_knowledge_base_and_works_a_ticket() -> Result<()> {
    let kefu = kefu_binary().await?;
    let relay = TestRelay::start().await?;
    // The sample knowledge base, written by an admin (admins take no conversations or
    // tickets); with articles, new conversations start with the bot.
    let admin_token = relay.agent_with("kb@shop.example", "Admin", Role::Admin, 0, "").await?;
    let articles: Vec<serde_json::Value> = serde_json::from_str(SAMPLE_ARTICLES)?;
    for article in articles {
        let (status, body) = relay.api(Method::POST, "/api/v1/kb/articles", &admin_token, Some(article)).await?;
        assert_eq!(status, 201, "{body}");
    }
    let token = relay.agent_with("wang@shop.example", "小王", Role::Agent, 5, "").await?;

    let (_home, tmux) = signed_in_workstation(&kefu, &relay, "wang@shop.example").await?;
    tmux.wait_for("工单 tickets 0").await?;

    // The bot answers first; asked for a person, it hands over with the intent it found.
    let mut customer = relay.customer().await?;
    customer.say_acked(None, "web-1", "我的快递到哪了").await?;
    let answer = bot_says(&mut customer).await?;
    assert!(answer.contains("有帮助吗"), "{answer}");
    customer.say_acked(None, "web-2", "转人工").await?;
    bot_says(&mut customer).await?;
    tmux.wait_for("意图 intent: order_status").await?;
    tmux.wait_for("机器人 bot").await?;
    customer.say_acked(None, "web-3", "订单 20251120-8841 一周了还没到，运费能退吗").await?;
    tmux.wait_for("一周了还没到").await?;

    // The knowledge base in Chinese: searched as typed, the snippet of the first result
    // goes into the composer with enter, and to the customer with enter again.
    let search = |q: &str| format!("/api/v1/kb/search?q={}&limit=10", percent_encoded(q));
    let (status, hits) = relay.api(Method::GET, &search("退货运费"), &token, None).await?;
    assert_eq!(status, 200, "{hits}");
    let first = &hits[0];
    tmux.keys(&["s"]).await?;
    tmux.wait_for("知识库 Knowledge base").await?;
    tmux.type_text("退货运费").await?;
    tmux.wait_for(first["title"].as_str().context("a title")?).await?;
    tmux.wait_for("条结果 results").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.wait_for("INSERT").await?;
    tmux.keys(&["Enter"]).await?;
    let sent = customer.expect_message().await?;
    assert_eq!(sent.body, first["snippet"].as_str().context("a snippet")?.trim());

    // In English: a short link line to the best article.
    let (_, hits) = relay.api(Method::GET, &search("how long until my refund arrives"), &token, None).await?;
    let title = hits[0]["title"].as_str().context("a title")?;
    let slug = hits[0]["slug"].as_str().context("a slug")?;
    tmux.keys(&["F4"]).await?;
    tmux.wait_for("知识库 Knowledge base").await?;
    tmux.keys(&["C-u"]).await?;
    tmux.type_text("how long until my refund arrives").await?;
    tmux.wait_for(title).await?;
    tmux.keys(&["M-l"]).await?;
    tmux.wait_for(&format!("(kb:{slug})")).await?;
    tmux.keys(&["Enter"]).await?;
    assert_eq!(customer.expect_message().await?.body, format!("{title} (kb:{slug})"));

    // A ticket from the conversation: the subject is the customer's last message.
    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&["N"]).await?;
    tmux.wait_for("新工单 New ticket").await?;
    tmux.wait_for("> 订单 20251120-8841 一周了还没到，运费能退吗").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.wait_for("工单 tickets 1").await?;
    let (_, mine) = relay.api(Method::GET, "/api/v1/tickets?assignee=me", &token, None).await?;
    let ticket = &mine[0];
    let id = ticket["id"].as_i64().context("an id")?;
    assert_eq!(ticket["subject"], "订单 20251120-8841 一周了还没到，运费能退吗");
    assert!(ticket["conversation_id"].is_i64(), "{ticket}");
    assert!(ticket["description"].as_str().unwrap_or("").contains("> 转人工"), "{ticket}");

    // The tickets view: details, a status change and a note.
    tmux.keys(&["T"]).await?;
    tmux.wait_for("工单 Tickets (1)").await?;
    tmux.wait_for("历史 History").await?;
    tmux.keys(&["M-s"]).await?;
    tmux.wait_for("> pending").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.wait_for("工单 tickets 0").await?;
    tmux.keys(&["M-n"]).await?;
    tmux.wait_for("工单备注 Ticket note").await?;
    tmux.type_text("已联系快递，明天回电").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.wait_for("备注 Notes (1)").await?;
    let (_, details) = relay.api(Method::GET, &format!("/api/v1/tickets/{id}"), &token, None).await?;
    assert_eq!(details["ticket"]["status"], "pending");
    assert_eq!(details["notes"][0]["body"], "已联系快递，明天回电");
    // All open tickets: this one is pending, so none.
    tmux.keys(&["Tab"]).await?;
    tmux.wait_for("没有待处理的工单 no open tickets").await?;

    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&["q"]).await?;
    tmux.wait_exit().await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_writes_an_article_from_the_workstation_and_agents_find_it() -> Result<()> {
    let kefu = kefu_binary().await?;
    let relay = TestRelay::start().await?;
    relay.agent_with("chen@shop.example", "陈主管", Role::Supervisor, 5, "").await?;
    let agent_token = relay.agent_with("wang@shop.example", "小王", Role::Agent, 5, "").await?;

    let (_home, tmux) = signed_in_workstation(&kefu, &relay, "chen@shop.example").await?;

    // The knowledge base offers writing to a supervisor; alt-c opens the editor.
    tmux.keys(&["s"]).await?;
    tmux.wait_for("新建 new").await?;
    tmux.keys(&["M-c"]).await?;
    tmux.wait_for("新建文章 New article").await?;
    // Title, tags and intents, enter going from field to field; the language follows
    // the title (zh); tab goes on to the text, where enter starts a new line.
    tmux.type_text("发票抬头怎么修改").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.type_text("发票，抬头").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.type_text("invoice_title").await?;
    tmux.keys(&["Enter", "Tab"]).await?;
    tmux.wait_for("▶正文 Body").await?;
    tmux.type_text("## 开票前").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.type_text("在订单页点修改发票，填写新的抬头和税号。").await?;
    tmux.wait_for("填写新的抬头和税号").await?;
    tmux.keys(&["C-s"]).await?;
    tmux.wait_for("已创建 created 《发票抬头怎么修改》").await?;

    // The relay's search finds it for any agent, with what was typed.
    let path = format!("/api/v1/kb/search?q={}&limit=10", percent_encoded("发票抬头"));
    let (status, hits) = relay.api(Method::GET, &path, &agent_token, None).await?;
    assert_eq!(status, 200, "{hits}");
    let hit = hits
        .as_array()
        .context("a list")?
        .iter()
        .find(|h| h["title"] == "发票抬头怎么修改")
        .with_context(|| format!("the new article is found: {hits}"))?
        .clone();
    assert_eq!(hit["language"], "zh");
    let id = hit["id"].as_i64().context("an id")?;
    let (_, article) = relay.api(Method::GET, &format!("/api/v1/kb/articles/{id}"), &agent_token, None).await?;
    assert_eq!(article["body"], "## 开票前\n在订单页点修改发票，填写新的抬头和税号。");
    assert_eq!(article["tags"], serde_json::json!(["发票", "抬头"]));
    assert_eq!(article["intents"], serde_json::json!(["invoice_title"]));

    // The pane searched for it: delete it from there, confirming by name.
    tmux.wait_for("> 发票抬头怎么修改").await?;
    tmux.keys(&["M-d"]).await?;
    tmux.wait_for("delete 《发票抬头怎么修改》").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.wait_for("已删除 deleted").await?;
    let (status, _) = relay.api(Method::GET, &format!("/api/v1/kb/articles/{id}"), &agent_token, None).await?;
    assert_eq!(status, 404);

    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&["q"]).await?;
    tmux.wait_exit().await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_the_queues_gets_an_alert_observes_whispers_and_takes_over() -> Result<()> {
    let kefu = kefu_binary().await?;
    // A one-second wait limit, so the long-wait alert comes while the test looks.
    let relay = TestRelay::start_with(|c| {
        c.alerts.wait_secs = 1;
        c.alerts.business_hours = String::new();
    })
    .await?;
    let admin = relay.agent_with("admin@shop.example", "Admin", Role::Admin, 0, "").await?;
    let (status, body) =
        relay.api(Method::POST, "/api/v1/groups", &admin, Some(serde_json::json!({"slug": "after_sales"}))).await?;
    assert_eq!(status, 201, "{body}");
    relay.agent_with("li@shop.example", "李主管", Role::Supervisor, 0, "").await?;
    let wang = relay.agent_with("wang@shop.example", "小王", Role::Agent, 1, "after_sales").await?;
    let mut agent = relay.agent(&wang, vec![]).await?;
    let mut served = relay.customer_in("after_sales").await?;
    let conversation = served.say_acked(None, "a1", "我的退款到哪了？").await?.conversation_id;
    agent.expect_assignment_of(conversation).await?;
    let mut waiting = relay.customer_in("after_sales").await?;
    waiting.say_acked(None, "b1", "有人吗？").await?;

    let (_home, tmux) = signed_in_workstation(&kefu, &relay, "li@shop.example").await?;

    // The pane: the queue with its waiting customer, the agent at capacity, the alert.
    tmux.keys(&["M"]).await?;
    tmux.wait_for("监控 Supervisor").await?;
    tmux.wait_for("after_sales").await?;
    tmux.wait_for("1/1").await?;
    tmux.wait_for("排队过久 long wait").await?;

    // The pane has the keyboard: to the agents, to 小王's conversation; observe it.
    tmux.wait_for("MONITOR").await?;
    tmux.keys(&["Tab"]).await?;
    tmux.keys(&["Enter"]).await?;
    tmux.keys(&["o"]).await?;
    tmux.wait_for("旁听").await?;
    tmux.wait_for("我的退款到哪了？").await?;

    // A whisper: 小王 sees it as a note; the customer never does. (Each Escape is seen
    // taking effect before the next key: read together, Escape and a key are Alt-key.)
    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&["Enter"]).await?;
    tmux.type_text("先核实订单号").await?;
    tmux.keys(&["Enter"]).await?;
    let note = agent
        .expect(|f| match f {
            ServerFrame::Message(m) if m.internal => Some(m.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(note.body, "先核实订单号");
    assert_eq!(note.author.name.as_deref(), Some("李主管"));

    // Take over from the palette; the customer's next message reaches the supervisor.
    tmux.keys(&["Escape"]).await?;
    tmux.wait_for("NORMAL").await?;
    tmux.keys(&[":"]).await?;
    tmux.type_text("take over").await?;
    tmux.keys(&["Enter"]).await?;
    agent
        .expect(|f| match f {
            ServerFrame::Conversation(c) if c.conversation.id == conversation => {
                (c.change == kefu_proto::frame::ConversationChange::Unassigned).then_some(())
            }
            _ => None,
        })
        .await?;
    served.say_acked(None, "a2", "订单号是 20251120-8841").await?;
    tmux.wait_for("订单号是 20251120-8841").await?;

    // Today's report: both customers' conversations, both queued, still open.
    tmux.keys(&["R"]).await?;
    tmux.wait_for("2 queued · 2 still open").await?;
    relay.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_takes_a_conversation_from_the_bot_in_the_pane() -> Result<()> {
    let kefu = kefu_binary().await?;
    let (relay, _admin) = super::bot::relay_with_kb().await?;
    relay.agent_with("li@shop.example", "李主管", Role::Supervisor, 0, "").await?;
    let mut customer = relay.customer().await?;
    let conversation = customer.say_acked(None, "c1", "我的快递到哪了").await?.conversation_id;
    super::bot::bot_says(&mut customer).await?;

    let (_home, tmux) = signed_in_workstation(&kefu, &relay, "li@shop.example").await?;

    // The pane lists the conversation as the bot's; shift-tab goes up from the agents to
    // it, and `c` takes it over.
    tmux.keys(&["M"]).await?;
    tmux.wait_for("机器人 Bot (1)").await?;
    tmux.wait_for(&format!("#{conversation}")).await?;
    tmux.wait_for("MONITOR").await?;
    tmux.keys(&["BTab"]).await?;
    tmux.keys(&["c"]).await?;
    customer.expect_assigned().await?;
    // It opens as the supervisor's own, with the bot's answer in its history; the pane's
    // bot table empties.
    tmux.wait_for("机器人 Bot (0)").await?;
    tmux.wait_for("订单状态与物流查询").await?;
    customer.say_acked(None, "c2", "还没收到").await?;
    tmux.wait_for("还没收到").await?;
    relay.stop().await?;
    Ok(())
}
