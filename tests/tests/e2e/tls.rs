//! The workstation against a relay with built-in TLS: a certificate from the test's own CA,
//! which `kefu` refuses until it is told to trust that CA (`--ca-file`), then uses for the
//! API and the WebSocket alike.

use std::path::Path;

use anyhow::{Context, Result};
use kefu_proto::frame::Role;
use kefu_relay::config::TlsConfig;
use kefu_relay::{Store, admin};
use kefu_tests::{PASSWORD, TestRelay};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::tui::{Home, Tmux, kefu_binary, run_kefu};

/// Writes a CA (`ca.pem`) and a certificate it signed for 127.0.0.1 and localhost
/// (`relay.crt`, `relay.key`) into `dir`; returns the relay's `[tls]` section.
fn make_certificates(dir: &Path) -> Result<TlsConfig> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "kefu test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut relay = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    relay.distinguished_name.push(DnType::CommonName, "kefu relay");
    let cert = relay.signed_by(&key, &ca)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    let (cert_file, key_file) = (dir.join("relay.crt"), dir.join("relay.key"));
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    Ok(TlsConfig { cert_file: Some(cert_file), key_file: Some(key_file) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_logs_in_over_https_only_when_it_trusts_the_relays_ca_and_then_works_over_wss() -> Result<()> {
    let kefu_bin = kefu_binary().await?;
    let certificates = tempfile::tempdir()?;
    let tls = make_certificates(certificates.path())?;
    let ca_file = certificates.path().join("ca.pem");
    let relay = TestRelay::start_with(|config| config.tls = tls).await?;
    let store = Store::open(&relay.data_dir).await?;
    admin::add_agent(&store, "default", "wang@shop.example", "小王", Role::Agent, Some(PASSWORD.into())).await?;
    store.close().await;
    let url = format!("https://127.0.0.1:{}", relay.addr.port());
    let home = Home::new()?;
    let login = ["login", "--relay", url.as_str(), "--email", "wang@shop.example", "--password-stdin"];

    // The system's roots do not know the test CA: refused, saying why and what to do.
    let refused = run_kefu(&kefu_bin, &home, &login).await?;
    assert!(!refused.status.success(), "logged in without trusting the CA");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate") && stderr.contains("--ca-file"), "unclear refusal: {stderr}");
    let credentials = home.config.join("kefu").join("credentials.toml");
    assert!(!credentials.exists(), "nothing is stored after a refusal");

    // Trusting the CA: logged in, and the CA is kept with the credentials.
    let mut with_ca = login.to_vec();
    with_ca.extend(["--ca-file", ca_file.to_str().context("a UTF-8 path")?]);
    let accepted = run_kefu(&kefu_bin, &home, &with_ca).await?;
    assert!(accepted.status.success(), "kefu login failed: {}", String::from_utf8_lossy(&accepted.stderr));
    let stored = std::fs::read_to_string(&credentials)?;
    assert!(stored.contains("ca_file") && stored.contains("ca.pem"), "{stored}");

    // Later commands use the stored CA.
    let status = run_kefu(&kefu_bin, &home, &["status"]).await?;
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && stdout.contains(&format!("relay {url}: ok")), "{stdout}");

    // The workstation's WebSocket goes over wss:// with the same trust.
    let tmux = Tmux::start(&kefu_bin, &home.env()).await?;
    tmux.wait_for("已连接 connected").await?;
    tmux.keys(&["q"]).await?;
    tmux.wait_exit().await?;
    relay.stop().await?;
    Ok(())
}
