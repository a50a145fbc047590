//! Built-in TLS through the `kefu-relay` binary: HTTPS and WSS with a certificate from a
//! test CA, refusals for clients that do not trust it and for plain HTTP, a SIGHUP that
//! swaps the certificate for new connections while open ones carry on (and a bad file that
//! changes nothing), and a clean exit on SIGTERM.
//!
//! The relay's log (standard error) is read line by line: it says when it serves and when a
//! reload was done or refused, so the test waits on what happened, never on time.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long to wait for the relay to say something (a guard against a hang, not a speed
/// requirement).
const LOG_WAIT: Duration = Duration::from_secs(60);

/// A certificate authority of the test's own, and the files it writes.
struct TestCa {
    /// Signs the relay's certificates.
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        TestCa { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for 127.0.0.1 and localhost named `common_name`.
    fn issue(&self, common_name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }

    /// A rustls client configuration that trusts this CA alone.
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// An HTTP client that trusts this CA alone.
    fn http_client(&self) -> reqwest::Client {
        kefu_relay::tls::install_crypto_provider();
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap()])
            .build()
            .unwrap()
    }
}

/// Puts `issued` in place the way certificate tools do: each file written beside and
/// renamed over the old one, the key readable by its owner alone.
fn install(issued: &Issued, cert_file: &Path, key_file: &Path) {
    replace(cert_file, issued.cert_pem.as_bytes());
    replace(key_file, issued.key_pem.as_bytes());
}

fn replace(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, bytes).unwrap();
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

/// The relay's standard error, a line at a time.
struct RelayLog {
    lines: mpsc::UnboundedReceiver<String>,
}

impl RelayLog {
    /// Reads `stderr` on a thread of its own until the relay closes it.
    fn follow(stderr: std::fs::File) -> RelayLog {
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        RelayLog { lines }
    }

    /// The first line from now on that contains `text`.
    async fn wait_for(&mut self, text: &str) -> String {
        let found = tokio::time::timeout(LOG_WAIT, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the relay's log ended before it said '{text}'"),
            Err(_) => panic!("the relay did not say '{text}'"),
        }
    }
}

/// Sends `signal` (`HUP`, `TERM`) to the process `pid`.
fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap().success());
}

/// The certificate a new TLS connection to `port` is shown (trusting `ca`).
async fn presented_certificate(port: u16, ca: &TestCa) -> CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config());
    let tls = connector.connect(ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().expect("the relay shows a certificate")[0].clone().into_owned()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A customer over WSS after its welcome.
async fn wss_customer(port: u16, widget_key: &str, ca: &TestCa) -> Socket {
    let connector = tokio_tungstenite::Connector::Rustls(ca.client_config());
    let url = format!("wss://127.0.0.1:{port}/ws/customer");
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)).await.unwrap();
    let hello = serde_json::json!({"type":"hello","protocol":1,"auth":{"kind":"customer","widget_key":widget_key}});
    ws.send(Message::Text(hello.to_string().into())).await.unwrap();
    let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("no welcome") };
    let welcome: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws
}

/// Sends one message and waits for its ack.
async fn say_acked(ws: &mut Socket, id: &str) {
    let send = serde_json::json!({"type":"send","client_msg_id":id,"body":format!("消息 {id}")});
    ws.send(Message::Text(send.to_string().into())).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("the connection ended before the ack") };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["type"] == "ack" {
            assert_eq!(frame["client_msg_id"], id, "{frame}");
            return;
        }
    }
}

/// Whether `error`, or anything that caused it, is rustls refusing the peer's certificate.
/// An `io::Error` hides what it wraps from `source()`, so it is unwrapped by hand.
fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut error = error;
    loop {
        if let Some(rustls_error) = error.downcast_ref::<rustls::Error>() {
            return matches!(rustls_error, rustls::Error::InvalidCertificate(_));
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            error = inner;
            continue;
        }
        match error.source() {
            Some(source) => error = source,
            None => return false,
        }
    }
}

#[tokio::test]
async fn the_relay_serves_https_and_wss_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("kefu test CA");
    let (cert_file, key_file) = (dir.path().join("relay.crt"), dir.path().join("relay.key"));
    let first = ca.issue("relay one");
    install(&first, &cert_file, &key_file);
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!("[tls]\ncert_file = {:?}\nkey_file = {:?}\n", cert_file.display(), key_file.display()),
    )
    .unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu-relay"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEFU_CONFIG")
        .env_remove("KEFU_DATA_DIR")
        .env_remove("KEFU_LISTEN")
        .env("KEFU_LOG", "warn,kefu_relay::tls=info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut log = RelayLog::follow(std::fs::File::from(child.stderr.take().unwrap().into_owned_fd().unwrap()));
    let serving = log.wait_for("kefu relay on https://").await;
    let address = serving.split("https://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let widget_key = log.wait_for("widget key of workspace 'default': ").await.rsplit(' ').next().unwrap().to_string();

    // HTTPS with the CA trusted.
    let health: serde_json::Value =
        ca.http_client().get(format!("https://{address}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    // A client that trusts another CA refuses the certificate.
    let stranger = TestCa::new("someone else's CA").http_client();
    let refused = stranger.get(format!("https://{address}/healthz")).send().await.unwrap_err();
    assert!(is_certificate_error(&refused), "not a certificate error: {refused:?}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = kefu_relay::tls::http_client().no_proxy().build().unwrap();
    assert!(plain.get(format!("http://{address}/healthz")).send().await.is_err());

    // A customer over WSS; this connection stays open across the reloads.
    let mut open = wss_customer(port, &widget_key, &ca).await;
    say_acked(&mut open, "before").await;
    assert_eq!(presented_certificate(port, &ca).await, first.der);

    // A reload from a broken file keeps the certificate in use.
    replace(&cert_file, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    signal(pid, "HUP");
    log.wait_for("TLS certificate reload failed").await;
    assert_eq!(presented_certificate(port, &ca).await, first.der);

    // A reload from new files: new connections see the new certificate.
    let second = ca.issue("relay two");
    install(&second, &cert_file, &key_file);
    signal(pid, "HUP");
    let reloaded = log.wait_for("TLS certificate reloaded").await;
    assert!(reloaded.contains(&hex_sha256(&second.der)), "{reloaded}");
    assert_eq!(presented_certificate(port, &ca).await, second.der);
    let health = ca.http_client().get(format!("https://{address}/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    // The connection opened before both reloads still works, and so does a new one.
    say_acked(&mut open, "after").await;
    let mut fresh = wss_customer(port, &widget_key, &ca).await;
    say_acked(&mut fresh, "fresh").await;

    // SIGTERM: connections are told the relay is going away, and it exits cleanly.
    signal(pid, "TERM");
    common::closes_going_away_and_exits_cleanly(&mut open, &mut child).await;
}

/// The fingerprint the relay logs for a certificate.
fn hex_sha256(der: &CertificateDer<'_>) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}

#[test]
fn a_key_that_does_not_match_the_certificate_stops_the_relay_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("kefu test CA");
    let (one, two) = (ca.issue("one"), ca.issue("two"));
    let cert_file: PathBuf = dir.path().join("relay.crt");
    let key_file: PathBuf = dir.path().join("relay.key");
    replace(&cert_file, one.cert_pem.as_bytes());
    replace(&key_file, two.key_pem.as_bytes());
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!("[tls]\ncert_file = {:?}\nkey_file = {:?}\n", cert_file.display(), key_file.display()),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kefu-relay"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEFU_CONFIG")
        .env("KEFU_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("relay.key") && stderr.contains("relay.crt"), "{stderr}");
}
