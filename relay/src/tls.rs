//! Built-in TLS: the relay's certificate, reloadable while serving, and a listener that
//! hands axum connections already through their TLS handshake.
//!
//! - [`install_crypto_provider`]: rustls on *ring*, once per process. Every TLS user in the
//!   relay (the listener, reqwest for webhooks and the outside services) needs it first;
//!   [`http_client`] installs it, and trusts the system's root certificates.
//! - [`ServerCertificate`]: the certificate chain and key from `[tls]`, behind a lock that
//!   [`ServerCertificate::reload`] swaps. rustls asks it for the certificate at each
//!   handshake ([`ResolvesServerCert`]), so a reload changes what new connections see and
//!   leaves open ones alone.
//! - [`TlsListener`]: an [`axum::serve::Listener`] over a TCP listener. Handshakes run on
//!   their own tasks, bounded in number and time, so a slow or silent client holds up
//!   nobody else; `accept` returns the next finished one. `axum::serve` stays in charge of
//!   graceful shutdown exactly as over plain TCP: dropping the listener aborts the
//!   handshakes still in flight.
//! - [`reload_on_hangup`]: SIGHUP reloads the files; a file that does not load is logged
//!   and the certificate in use is kept.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::{Error, Result};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at once; past this, new TCP connections wait in the backlog.
const MAX_HANDSHAKES: usize = 1024;

/// Installs rustls's *ring* provider as the process default, unless one already is (the
/// binary installs it in `main`, a test process may run several relays).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client builder that trusts the system's root certificates, after the crypto
/// provider is installed (reqwest, built without a provider of its own, panics otherwise).
/// Outbound URLs (webhooks, the model, automations) may be `https://`.
pub fn http_client() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().tls_certs_only(system_roots().iter().cloned())
}

/// The system's root certificates (`/etc/ssl/certs` and the like, `SSL_CERT_FILE`), read
/// once. A system with none (a bare container) still builds clients: `http://` works, and
/// `https://` fails per request with an unknown-issuer error, after a warning here.
fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "a system root certificate could not be read");
        }
        let roots: Vec<reqwest::Certificate> =
            found.certs.iter().filter_map(|der| reqwest::Certificate::from_der(der).ok()).collect();
        if roots.is_empty() {
            tracing::warn!(
                "no root certificates on this system: https:// webhooks will fail (install ca-certificates)"
            );
        }
        roots
    })
}

/// The relay's certificate chain and key, as read from `[tls]`, and reread on demand.
pub struct ServerCertificate {
    /// The chain's PEM file.
    cert_file: PathBuf,
    /// The key's PEM file.
    key_file: PathBuf,
    /// Parses the key and signs handshakes.
    provider: Arc<CryptoProvider>,
    /// What handshakes present now; replaced whole by a reload.
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl ServerCertificate {
    /// Reads the chain and key; an unreadable file, no certificate, no key, or a key that
    /// does not belong to the certificate is an error naming the file.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerCertificate>> {
        install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(cert_file, key_file, &provider)?;
        tracing::info!(
            cert_file = %cert_file.display(),
            sha256 = %fingerprint(&current),
            "TLS certificate loaded"
        );
        Ok(Arc::new(ServerCertificate {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Rereads both files and, if they load, presents them to every handshake from now on.
    /// On error the certificate in use stays.
    pub fn reload(&self) -> Result<()> {
        let fresh = read_pair(&self.cert_file, &self.key_file, &self.provider)?;
        let sha256 = fingerprint(&fresh);
        *self.current.write().expect("certificate lock") = Arc::new(fresh);
        tracing::info!(cert_file = %self.cert_file.display(), %sha256, "TLS certificate reloaded");
        Ok(())
    }

    /// The SHA-256 of the certificate presented now (hex), as `openssl x509 -fingerprint
    /// -sha256` prints it without colons.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current.read().expect("certificate lock"))
    }

    /// A rustls server configuration presenting this certificate: TLS 1.3 and 1.2, HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // The relay speaks HTTP/1.1 only (WebSockets upgrade from it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

/// Reads a chain and its key and checks that they belong together.
fn read_pair(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let bad = |file: &Path, what: String| Error::Config(format!("tls: {}: {what}", file.display()));
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| bad(cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert_file, "no CERTIFICATE block".into()));
    }
    warn_if_readable_by_others(key_file);
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad(key_file, e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| bad(key_file, format!("not a usable key for {}: {e}", cert_file.display())))
}

/// The SHA-256 of the end-entity certificate, hex.
fn fingerprint(key: &CertifiedKey) -> String {
    key.cert.first().map(|cert| hex::encode(Sha256::digest(cert.as_ref()))).unwrap_or_default()
}

/// A private key others can read is a key to replace; say so, but serve.
#[cfg(unix)]
fn warn_if_readable_by_others(key_file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(key_file)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            key_file = %key_file.display(),
            mode = format!("{:o}", metadata.permissions().mode() & 0o777),
            "the TLS key is readable by other users: chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_key_file: &Path) {}

/// Reloads `certificate` on each SIGHUP until the task is aborted.
#[cfg(unix)]
pub async fn reload_on_hangup(certificate: Arc<ServerCertificate>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: the TLS certificate will not reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        // Reading two small files: not worth a blocking thread.
        if let Err(e) = certificate.reload() {
            tracing::error!(error = %e, sha256 = %certificate.fingerprint(), "TLS certificate reload failed; still serving the previous certificate");
        }
    }
}

/// Without SIGHUP there is nothing to listen for: the certificate stays as loaded.
#[cfg(not(unix))]
pub async fn reload_on_hangup(_certificate: Arc<ServerCertificate>) {
    std::future::pending::<()>().await
}

/// A TCP listener whose connections come out through a TLS handshake.
pub struct TlsListener {
    /// Where connections arrive.
    tcp: TcpListener,
    /// Runs the server side of each handshake.
    acceptor: TlsAcceptor,
    /// Handshakes in flight; aborted when the listener is dropped at shutdown.
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Serves `certificate` on `tcp`.
    pub fn new(tcp: TcpListener, certificate: &Arc<ServerCertificate>) -> Result<TlsListener> {
        Ok(TlsListener { tcp, acceptor: TlsAcceptor::from(certificate.server_config()?), handshakes: JoinSet::new() })
    }

    /// Starts the handshake of a new TCP connection on its own task.
    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        crate::no_delay(&stream);
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                // Port scanners, plain HTTP on the TLS port, clients that distrust the
                // certificate: nothing the operator can act on one by one.
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(e) => accept_failed(e).await,
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// What axum does for a failed `accept` on plain TCP: a connection that went away before
/// it was accepted is nothing; anything else (out of file descriptors) is logged and the
/// listener pauses a second so it does not spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
