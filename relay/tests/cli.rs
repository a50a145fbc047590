//! The `kefu-relay` binary itself: administrative commands, the default data dir, and a
//! clean exit on SIGTERM that keeps everything acknowledged.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn relay() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu-relay"));
    command.env_remove("KEFU_CONFIG").env_remove("KEFU_DATA_DIR").env_remove("KEFU_LISTEN").env("KEFU_LOG", "warn");
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
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu-relay"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEFU_DATA_DIR")
        .env_remove("KEFU_CONFIG")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", &data_home)
        .env("KEFU_LOG", "warn")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap().into_owned_fd().unwrap();
    let (addr, widget_key) = tokio::task::spawn_blocking(move || {
        let mut addr = None;
        for line in BufReader::new(std::fs::File::from(stderr)).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("kefu relay on http://") {
                addr = rest.split_whitespace().next().map(str::to_string);
            }
            if let Some((_, key)) = line.split_once("widget key of workspace 'default': ") {
                return (addr.expect("address printed first"), key.trim().to_string());
            }
        }
        panic!("the relay did not print its address and widget key");
    })
    .await
    .unwrap();
    let database = data_home.join("kefu").join("kefu.db");
    assert!(database.exists(), "database in the platform data dir: {}", database.display());

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/customer")).await.unwrap();
    let hello = serde_json::json!({"type":"hello","protocol":1,"auth":{"kind":"customer","widget_key":widget_key}});
    ws.send(Message::Text(hello.to_string().into())).await.unwrap();
    for i in 0..20 {
        let send = serde_json::json!({"type":"send","client_msg_id":format!("m{i}"),"body":format!("消息 {i}")});
        ws.send(Message::Text(send.to_string().into())).await.unwrap();
    }
    let mut acked = 0;
    while acked < 20 {
        let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("connection ended early") };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["type"] == "ack" {
            acked += 1;
        }
    }

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // The client is told the relay is going away.
    let closing = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closing, Some(1001));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "exit status {status:?}");

    // Everything acknowledged is in the database.
    let store = kefu_relay::Store::open(&data_home.join("kefu")).await.unwrap();
    let conversations = store.open_conversations(kefu_proto::WorkspaceId(1)).await.unwrap();
    assert_eq!(conversations.len(), 1);
    let messages =
        store.messages(conversations[0].view.id, kefu_relay::store::MessageRange::After(0), 100, true).await.unwrap();
    let bodies: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("消息 {i}")).collect();
    assert_eq!(bodies, expected);
    store.close().await;
}
