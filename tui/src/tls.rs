//! How the workstation trusts a relay over `https://` and `wss://`.
//!
//! One rustls client configuration serves both the HTTP API (reqwest) and the WebSocket
//! (tokio-tungstenite), so they can never disagree about a certificate. It trusts either the
//! platform's verifier (the system's root certificates; on macOS and Windows the OS itself)
//! or, with a CA file (`kefu login --ca-file`, `ca_file` in `config.toml`), that CA alone:
//! a relay with a certificate from a company CA is trusted, and nothing else is.
//!
//! Plain `http://` relays (loopback, the demo) need none of it, so nothing here is read for
//! them and a system without root certificates still reaches them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// Where the relay's certificate is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl Trust {
    /// Trusting the CA in `ca_file`, or the system's roots when `None`.
    pub fn new(ca_file: Option<PathBuf>) -> Trust {
        Trust { ca_file }
    }

    /// The rustls configuration for a TLS connection to the relay.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Relay(format!("TLS: {e}")))?;
        let config = match &self.ca_file {
            Some(path) => builder.with_root_certificates(read_roots(path)?).with_no_client_auth(),
            None => {
                let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                    Error::Relay(format!(
                        "cannot check the relay's certificate: {e}; install the system's CA certificates, \
                         or name the relay's CA with --ca-file (or ca_file in config.toml)"
                    ))
                })?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
            }
        };
        Ok(Arc::new(config))
    }

    /// An HTTP client for `relay`; proxies are skipped for loopback relays (tests, the demo).
    pub fn http_client(&self, relay: &str) -> Result<reqwest::Client> {
        install_crypto_provider();
        let loopback = ["://127.", "://localhost", "://[::1]"].iter().any(|p| relay.contains(p));
        let builder = reqwest::Client::builder();
        let builder = if loopback { builder.no_proxy() } else { builder };
        let builder = if is_tls(relay) {
            builder.tls_backend_preconfigured(rustls::ClientConfig::clone(&*self.client_config()?))
        } else {
            // No root certificates are needed for plain HTTP: do not make reqwest look for
            // the system's (it fails to build where there are none).
            builder.tls_certs_only([])
        };
        builder.build().map_err(|e| Error::Relay(format!("cannot make an HTTP client: {}", describe(&e))))
    }

    /// What tokio-tungstenite dials `url` with: this trust for `wss://`, nothing for `ws://`.
    pub fn ws_connector(&self, url: &str) -> Result<Option<tokio_tungstenite::Connector>> {
        if !is_tls(url) {
            return Ok(None);
        }
        Ok(Some(tokio_tungstenite::Connector::Rustls(self.client_config()?)))
    }
}

/// Whether `url` is `https://` or `wss://`.
fn is_tls(url: &str) -> bool {
    let url = url.trim_start();
    ["https://", "wss://"].iter().any(|scheme| url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)))
}

/// Installs rustls's *ring* provider as the process default unless one is already (reqwest
/// panics on building a client without one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The CA certificates in a PEM file; a file without any is an error naming it.
fn read_roots(path: &Path) -> Result<rustls::RootCertStore> {
    let bad = |what: String| Error::Relay(format!("CA file {}: {what}", path.display()));
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(path).and_then(|certs| certs.collect()).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block (a PEM file is expected)".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    Ok(roots)
}

/// An error and its causes in one line; a certificate the relay presented and this
/// workstation does not trust says so and what to do about it.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(rustls::Error::InvalidCertificate(why)) = rustls_cause(error) {
        return format!(
            "the relay's TLS certificate is not trusted ({why:?}): if the relay uses a certificate \
             from your own CA, pass that CA's certificate with --ca-file FILE (or set ca_file in \
             config.toml)"
        );
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = error.source();
    }
    text
}

/// The rustls error behind `error`, if any. An `io::Error` does not show what it wraps
/// through `source()`, so it is unwrapped by hand.
fn rustls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut error = error;
    loop {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            error = inner;
            continue;
        }
        error = error.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Trust::new(Some(empty)).client_config().unwrap_err().to_string();
        assert!(err.contains("ca.pem") && err.contains("CERTIFICATE"), "{err}");
        let err = Trust::new(Some(dir.path().join("missing.pem"))).client_config().unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }

    #[test]
    fn plain_relays_need_no_tls_and_certificate_errors_say_what_to_do() {
        // A CA file that does not exist is not read for a plain relay.
        let trust = Trust::new(Some("/nonexistent/ca.pem".into()));
        trust.http_client("http://127.0.0.1:7700").unwrap();
        assert!(trust.ws_connector("ws://127.0.0.1:7700/ws/agent").unwrap().is_none());
        assert!(trust.http_client("HTTPS://kefu.example").is_err());
        assert!(is_tls("wss://kefu.example/ws/agent") && !is_tls("http://kefu.example"));

        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let text = describe(&std::io::Error::other(refused));
        assert!(text.contains("not trusted") && text.contains("UnknownIssuer") && text.contains("--ca-file"), "{text}");
    }
}
