//! The `kefu-relay` binary itself: administrative commands, the default data dir, and a
//! clean exit on SIGTERM that keeps everything acknowledged.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn relay() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu-relay"));
    command
        .env_remove("KEFU_CONFIG")
        .env_remove("KEFU_DATA_DIR")
        .env_remove("KEFU_LISTEN")
        .env_remove("KEFU_KEYS")
        .env("KEFU_LOG", "warn");
    command
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("runs");
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

fn with_data_dir(dir: &Path) -> Command {
    let mut command = relay();
    command.arg("--data-dir").arg(dir);
    command
}

#[test]
fn agents_are_added_listed_and_duplicates_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = with_data_dir(dir.path())
        .args(["agent", "add", "--email", "Wang@Shop.example", "--name", "小王", "--role", "supervisor"])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("password:"),
        "nothing printed when a password was given"
    );

    let generated =
        run_ok(with_data_dir(dir.path()).args(["agent", "add", "--email", "li@shop.example", "--name", "Li"]));
    let password =
        generated.lines().find_map(|l| l.strip_prefix("password: ")).expect("a generated password is printed");
    assert!(password.len() >= 10);

    let list = run_ok(with_data_dir(dir.path()).args(["agent", "list"]));
    assert!(list.contains("wang@shop.example") && list.contains("小王") && list.contains("supervisor"), "{list}");
    assert!(list.contains("li@shop.example"), "{list}");

    let again = with_data_dir(dir.path())
        .args(["agent", "add", "--email", "li@shop.example", "--name", "Li"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let bad_role = with_data_dir(dir.path())
        .args(["agent", "add", "--email", "x@shop.example", "--name", "X", "--role", "boss"])
        .output();
    assert!(!bad_role.unwrap().status.success());

    let show = run_ok(with_data_dir(dir.path()).args(["workspace", "show"]));
    assert!(show.lines().any(|l| l.starts_with("widget key: wk_")), "{show}");

    // Nobody logged in yet: nothing to revoke; an unknown e-mail is an error.
    let revoked = run_ok(with_data_dir(dir.path()).args(["agent", "revoke", "--email", "li@shop.example"]));
    assert_eq!(revoked.trim(), "0 tokens of li@shop.example revoked");
    let unknown = with_data_dir(dir.path()).args(["agent", "revoke", "--email", "nobody@shop.example"]).output();
    assert!(String::from_utf8_lossy(&unknown.unwrap().stderr).contains("no agent with e-mail nobody@shop.example"));
}

#[test]
fn channels_are_added_with_their_secret_listed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let added = run_ok(with_data_dir(dir.path()).args([
        "channel",
        "add",
        "app",
        "--name",
        "shop-app",
        "--webhook-url",
        "http://127.0.0.1:9/replies",
    ]));
    let secret = added.lines().find_map(|l| l.strip_prefix("secret:")).expect("the secret is printed").trim();
    assert!(secret.starts_with("kfs_"), "{added}");
    assert!(added.contains("POST /api/v1/channels/1/messages"), "{added}");
    let mapping = dir.path().join("mapping.json");
    std::fs::write(&mapping, r#"{"user_id": "sender.id", "text": "message.text"}"#).unwrap();
    run_ok(with_data_dir(dir.path()).args(["channel", "add", "social", "--name", "douyin", "--mapping"]).arg(&mapping));

    let list = run_ok(with_data_dir(dir.path()).args(["channel", "list"]));
    assert!(list.contains("shop-app") && list.contains("douyin") && list.contains("0 pending, 0 dead"), "{list}");
    assert!(!list.contains(secret), "list shows no secrets: {list}");
    let show = run_ok(with_data_dir(dir.path()).args(["channel", "show", "1"]));
    assert!(show.contains(secret), "{show}");

    let refused = |args: &[&str]| {
        let output = with_data_dir(dir.path()).args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    assert!(refused(&["channel", "add", "social", "--name", "nomap"]).contains("mapping"));
    assert!(refused(&["channel", "add", "app", "--name", "shop-app"]).contains("exists"));
    assert!(refused(&["channel", "add", "app", "--name", "x", "--webhook-url", "ftp://x"]).contains("webhook_url"));
    assert!(refused(&["channel", "add", "app", "--name", "y", "--group", "nope"]).contains("no group"));

    let show = run_ok(with_data_dir(dir.path()).args(["workspace", "show"]));
    assert!(show.contains("identity secret"), "{show}");
}

#[test]
fn a_bad_config_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "[limits]\nframes_per_secnd = 3\n").unwrap();
    let output = relay().arg("--config").arg(&config).arg("serve").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("relay.toml") && stderr.contains("frames_per_secnd"), "{stderr}");
}

/// `serve` with no data dir uses the platform data dir, and SIGTERM stops it with exit
/// code 0 after everything acknowledged is on disk.
#[tokio::test]
async fn serve_uses_the_platform_data_dir_and_exits_cleanly_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let data_home = home.path().join("data");
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu-relay"));
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEFU_DATA_DIR")
        .env_remove("KEFU_CONFIG")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", &data_home);
    let (mut child, addr, widget_key, _) = start_serving(serve.env("KEFU_LOG", "warn")).await;
    let database = data_home.join("kefu").join("kefu.db");
    assert!(database.exists(), "database in the platform data dir: {}", database.display());

    let (mut ws, _) = customer(&addr, &widget_key).await;
    say_acked(&mut ws, 0..20).await;

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    common::closes_going_away_and_exits_cleanly(&mut ws, &mut child).await;

    // Everything acknowledged is in the database.
    let expected: Vec<String> = (0..20).map(|i| format!("消息 {i}")).collect();
    assert_eq!(bodies(&data_home.join("kefu")).await, expected);
}

/// Starts `serve` (already given its arguments) and reads its address and widget key from
/// standard error; the lines after them keep coming on the returned channel.
async fn start_serving(
    serve: &mut tokio::process::Command,
) -> (tokio::process::Child, String, String, std::sync::mpsc::Receiver<String>) {
    let mut child = serve.stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let stderr = child.stderr.take().unwrap().into_owned_fd().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(std::fs::File::from(stderr)).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let (addr, widget_key, lines) = tokio::task::spawn_blocking(move || {
        let mut addr = None;
        for line in lines.iter() {
            if let Some(rest) = line.strip_prefix("kefu relay on http://") {
                addr = rest.split_whitespace().next().map(str::to_string);
            }
            if let Some((_, key)) = line.split_once("widget key of workspace 'default': ") {
                return (addr.expect("address printed first"), key.trim().to_string(), lines);
            }
        }
        panic!("the relay did not print its address and widget key");
    })
    .await
    .unwrap();
    (child, addr, widget_key, lines)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A new customer after hello; returns the socket and the customer token.
async fn customer(addr: &str, widget_key: &str) -> (Socket, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/customer")).await.unwrap();
    let hello = serde_json::json!({"type":"hello","protocol":1,"auth":{"kind":"customer","widget_key":widget_key}});
    ws.send(Message::Text(hello.to_string().into())).await.unwrap();
    let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("no welcome") };
    let welcome: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
    let token = welcome["session"]["customer_token"].as_str().expect("a customer token").to_string();
    (ws, token)
}

/// Sends `消息 i` for each i and waits until each is acknowledged.
async fn say_acked(ws: &mut Socket, range: std::ops::Range<u32>) {
    let count = range.len();
    for i in range {
        let send = serde_json::json!({"type":"send","client_msg_id":format!("m{i}"),"body":format!("消息 {i}")});
        ws.send(Message::Text(send.to_string().into())).await.unwrap();
    }
    let mut acked = 0;
    while acked < count {
        let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("connection ended early") };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["type"] == "ack" {
            acked += 1;
        }
    }
}

/// The bodies of every message in the data dir, by conversation, in order.
async fn bodies(data_dir: &Path) -> Vec<String> {
    let store = kefu_relay::Store::open(data_dir).await.unwrap();
    let mut bodies = Vec::new();
    for conversation in store.open_conversations(kefu_proto::WorkspaceId(1)).await.unwrap() {
        let range = kefu_relay::store::MessageRange::After(0);
        let messages = store.messages(conversation.view.id, range, 1000, true).await.unwrap();
        bodies.extend(messages.into_iter().map(|m| m.body));
    }
    store.close().await;
    bodies
}

/// A backup made while the relay serves holds everything acknowledged before it (and the
/// files), and a restore brings it back into another data dir, where a relay serves it.
#[tokio::test]
async fn a_backup_taken_while_serving_restores_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (live, restored) = (dir.path().join("live"), dir.path().join("restored"));
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu-relay"));
    serve.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&live).env_remove("KEFU_CONFIG");
    let (mut child, addr, widget_key, _) = start_serving(serve.env("KEFU_LOG", "warn")).await;
    let (mut ws, token) = customer(&addr, &widget_key).await;
    say_acked(&mut ws, 0..20).await;
    let upload = kefu_relay::tls::http_client().no_proxy().build().unwrap();
    let file: serde_json::Value = upload
        .post(format!("http://{addr}/api/v1/attachments?name=receipt.txt"))
        .bearer_auth(&token)
        .body("订单 20251120-8841 的收据")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let attachment = file["id"].as_str().expect("an attachment id").to_string();

    let backup = dir.path().join("kefu-backup.db");
    let made = run_ok(with_data_dir(&live).arg("backup").arg(&backup));
    assert!(made.contains("20 messages and 1 attachments"), "{made}");
    let again = with_data_dir(&live).arg("backup").arg(&backup).output().unwrap();
    assert!(!again.status.success(), "an existing backup is never overwritten");
    // Messages after the backup are not in it.
    say_acked(&mut ws, 20..25).await;
    assert!(Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap().success());
    assert!(child.wait().await.unwrap().success());

    let done = run_ok(with_data_dir(&restored).arg("restore").arg(&backup));
    assert!(done.contains("20 messages and 1 attachments"), "{done}");
    let expected: Vec<String> = (0..20).map(|i| format!("消息 {i}")).collect();
    assert_eq!(bodies(&restored).await, expected);
    let bytes = std::fs::read(restored.join("attachments").join(&attachment)).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), "订单 20251120-8841 的收据");
    // A second restore needs --replace; a damaged file is refused and replaces nothing.
    let refused = with_data_dir(&restored).arg("restore").arg(&backup).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--replace"));
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, b"not a database at all").unwrap();
    let refused = with_data_dir(&restored).args(["restore", "--replace"]).arg(&damaged).output().unwrap();
    assert!(!refused.status.success());
    assert_eq!(bodies(&restored).await.len(), 20, "the restored database is untouched");

    // A relay serves the restored data dir.
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu-relay"));
    serve.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&restored).env_remove("KEFU_CONFIG");
    let (mut child, addr, _, _) = start_serving(serve.env("KEFU_LOG", "warn")).await;
    let health: serde_json::Value =
        upload.get(format!("http://{addr}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    child.kill().await.unwrap();
}

/// Logs never carry personal data in the clear: an e-mail at a refused login is masked.
#[tokio::test]
async fn logs_mask_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu-relay"));
    serve.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).env_remove("KEFU_CONFIG");
    let (mut child, addr, _, lines) = start_serving(serve.env("KEFU_LOG", "info")).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let login = serde_json::json!({"email": "zhang.sanfeng@example.com", "password": "not the password"});
    let refused = http.post(format!("http://{addr}/api/v1/login")).json(&login).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap().success());
    assert!(child.wait().await.unwrap().success());
    let log: Vec<String> = lines.iter().collect();
    let refusal = log.iter().find(|l| l.contains("login refused")).expect("the refusal is logged");
    assert!(refusal.contains("z***@example.com"), "{refusal}");
    assert!(log.iter().all(|l| !l.contains("zhang.sanfeng@example.com")), "{log:#?}");
}

#[test]
fn contacts_are_exported_and_erased_only_when_asked_plainly() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(with_data_dir(dir.path()).args(["workspace", "show"]));
    let unconfirmed = with_data_dir(dir.path()).args(["contact", "erase", "1"]).output().unwrap();
    assert!(!unconfirmed.status.success());
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    let unknown = with_data_dir(dir.path()).args(["contact", "erase", "7", "--yes"]).output().unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no contact 7"));
    let out = dir.path().join("export");
    let unknown = with_data_dir(dir.path()).args(["contact", "export", "7", "--to"]).arg(&out).output().unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no contact 7"));
    let added = run_ok(with_data_dir(dir.path()).args(["workspace", "add", "jewelry", "--name", "珠宝店"]));
    assert!(added.contains("workspace jewelry added; widget key wk_"), "{added}");
    let again = with_data_dir(dir.path()).args(["workspace", "add", "jewelry", "--name", "x"]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Retention: off unless configured; with it, a purge with nothing due purges nothing.
    let off = with_data_dir(dir.path()).arg("purge").output().unwrap();
    assert!(String::from_utf8_lossy(&off.stderr).contains("retention is off"));
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "[retention]\nconversations_days = 30\n").unwrap();
    let none = run_ok(with_data_dir(dir.path()).arg("--config").arg(&config).arg("purge"));
    assert_eq!(none.trim(), "purged 0 conversations closed over 30 days ago (0 messages, 0 files)");
}

#[test]
fn the_audit_chain_is_verified_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(with_data_dir(dir.path()).args(["agent", "add", "--email", "li@shop.example", "--name", "Li"]));
    run_ok(with_data_dir(dir.path()).args(["group", "add", "presales"]));
    let fine = run_ok(with_data_dir(dir.path()).args(["audit", "verify"]));
    assert!(fine.contains("2 entries intact") && fine.contains("head: entry 2"), "{fine}");
    // Someone edits the file behind the relay's back.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("kefu.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DROP TRIGGER events_no_update").execute(&pool).await.unwrap();
        sqlx::query("UPDATE events SET data = '{}' WHERE id = 1").execute(&pool).await.unwrap();
        pool.close().await;
    });
    let broken = with_data_dir(dir.path()).args(["audit", "verify"]).output().unwrap();
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("tampered with at entry 1"));
}

#[test]
fn keys_are_generated_counted_and_rotated_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = run_ok(relay().args(["keys", "generate", "--id", "k1"]));
    let line = line.trim();
    assert!(line.starts_with("k1 ") && line.len() > 40, "{line}");

    let status = run_ok(with_data_dir(dir.path()).args(["keys", "status"]));
    assert!(status.contains("encryption is off"), "{status}");
    let refused = with_data_dir(dir.path()).args(["keys", "rotate"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("encryption is off"));

    let rotated = run_ok(with_data_dir(dir.path()).env("KEFU_KEYS", line).args(["keys", "rotate"]));
    assert!(rotated.contains("under key k1") && rotated.contains("messages.body"), "{rotated}");
    let status = run_ok(with_data_dir(dir.path()).env("KEFU_KEYS", line).args(["keys", "status"]));
    assert!(status.contains("active key: k1"), "{status}");

    // A key file others may read is refused, naming the file and the fix.
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{line}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = dir.path().join("relay.toml");
        std::fs::write(&config, format!("[encryption]\nkey_file = {:?}\n", keys.display().to_string())).unwrap();
        let refused = with_data_dir(dir.path()).arg("--config").arg(&config).args(["keys", "status"]).output().unwrap();
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("chmod 600") && stderr.contains("keys"), "{stderr}");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        let status = run_ok(with_data_dir(dir.path()).arg("--config").arg(&config).args(["keys", "status"]));
        assert!(status.contains("active key: k1"), "{status}");
    }
}
