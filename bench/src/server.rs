//! The servers under load, as processes of their own: the relay binary on a fresh data
//! dir with agents made through its CLI, this tool's forwarder, or a mosquitto broker on a
//! configuration of its own. Each may be pinned to a CPU with `taskset`, so that it and the
//! load tool do not share a core.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The password given to every benchmark agent.
pub const AGENT_PASSWORD: &str = "kefu bench agent password";

/// A server process the tool started; killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id (for `/proc` figures).
    pub pid: u32,
    /// The relay's default workspace widget key.
    pub widget_key: Option<String>,
    /// The relay's data dir, or mosquitto's configuration and persistence dir.
    _data_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Stops the server with SIGTERM (the relay commits what it holds) and waits.
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        for _ in 0..300 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the server did not stop within 30 s of SIGTERM; killed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A command, under `taskset -c <cpus>` when `cpus` is given.
fn pinned(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpus]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Pins this process (every thread, present and future) to `cpus`.
pub fn pin_self(cpus: &str) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset -c {cpus} failed");
    }
    Ok(())
}

/// Starts `kefu-bench forwarder` (this executable) on a free loopback port.
pub fn spawn_forwarder(cpus: Option<&str>) -> Result<Server> {
    let exe = std::env::current_exe()?;
    let mut child = pinned(&exe, cpus)
        .args(["forwarder", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the forwarder")?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("listening on ").context("the forwarder did not say where it listens")?;
    let pid = child.id();
    Ok(Server { child, addr: addr.parse()?, pid, widget_key: None, _data_dir: None })
}

/// How to start a relay for a benchmark.
#[derive(Debug, Clone)]
pub struct RelaySpawn {
    /// The `kefu-relay` binary.
    pub bin: PathBuf,
    /// CPUs to pin it to.
    pub cpus: Option<String>,
    /// Agents to create.
    pub agents: usize,
    /// Each agent's capacity (conversations at once).
    pub capacity: u32,
    /// Frames queued per connection before it is disconnected as a slow consumer.
    pub outbound_queue: usize,
}

/// The relay's configuration for a benchmark: the per-connection frame rate, the
/// customers' limits per address and per shop (every client comes from 127.0.0.1) and the
/// login rate raised (one connection carries a whole conversation's load), re-routing off
/// (runs are shorter than its delay anyway), everything else as shipped.
pub fn relay_config(outbound_queue: usize) -> String {
    format!(
        "[limits]\nframes_per_second = 1000000\nframe_burst = 1000000\nmax_connections = 19000\noutbound_queue = {outbound_queue}\n\
         customer_connections_per_ip = 1000000\ncustomer_connects_per_minute_per_ip = 1000000\n\
         customer_messages_per_second_per_workspace = 1000000\n\n\
         [auth]\nlogins_per_minute_per_ip = 100000\nlogins_per_minute_per_email = 100000\n\n\
         [routing]\nreroute_unanswered_secs = 0\n"
    )
}

/// The `kefu-relay` next to this executable (`target/release/kefu-relay` beside
/// `target/release/kefu-bench`).
pub fn default_relay_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name(format!("kefu-relay{}", std::env::consts::EXE_SUFFIX))
}

/// Starts a relay on a fresh data dir with `spawn.agents` agents; returns it and their
/// e-mails.
pub fn spawn_relay(spawn: &RelaySpawn) -> Result<(Server, Vec<String>)> {
    if !spawn.bin.exists() {
        bail!("{} does not exist: run `cargo build --release -p kefu-relay`", spawn.bin.display());
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, relay_config(spawn.outbound_queue))?;
    let data = dir.path().join("data");
    let mut emails = Vec::new();
    for i in 0..spawn.agents {
        let email = format!("agent{i}@bench.invalid");
        let mut child = Command::new(&spawn.bin)
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .args(["agent", "add", "--email", &email, "--name", &format!("Bench agent {i}")])
            .args(["--capacity", &spawn.capacity.to_string(), "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("running kefu-relay agent add")?;
        writeln!(child.stdin.take().expect("piped"), "{AGENT_PASSWORD}")?;
        if !child.wait()?.success() {
            bail!("kefu-relay agent add failed for {email}");
        }
        emails.push(email);
    }
    let mut child = pinned(&spawn.bin, spawn.cpus.as_deref())
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEFU_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kefu-relay serve")?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line.clone()).is_err() {
                // Nobody listens any more: pass warnings and errors through.
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("relay: {line}");
                }
            }
        }
    });
    let (mut addr, mut widget_key) = (None, None);
    while addr.is_none() || widget_key.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(30)).context("the relay did not start")?;
        if let Some(rest) = line.split("kefu relay on http://").nth(1) {
            addr = Some(rest.split_whitespace().next().unwrap_or_default().parse::<SocketAddr>()?);
        }
        if let Some(rest) = line.split("widget key of workspace 'default': ").nth(1) {
            widget_key = Some(rest.trim().to_string());
        }
    }
    drop(rx);
    let pid = child.id();
    let server = Server { child, addr: addr.expect("set"), pid, widget_key, _data_dir: Some(dir) };
    Ok((server, emails))
}

/// How to start mosquitto for a benchmark.
#[derive(Debug, Clone)]
pub struct MosquittoSpawn {
    /// The `mosquitto` binary.
    pub bin: PathBuf,
    /// CPUs to pin it to.
    pub cpus: Option<String>,
    /// `persistence true`: sessions, subscriptions and queued messages are saved to
    /// `mosquitto.db` every `autosave_interval` (1,800 s by default) and at exit.
    pub persistence: bool,
}

/// mosquitto's configuration for a benchmark: one loopback listener, anonymous clients,
/// everything as shipped but two limits. `max_inflight_messages` (outgoing QoS 1 messages
/// in flight per client, 20 by default) is lifted, since a pair keeps 32 in flight flat out;
/// Nagle is turned off, as on the relay's and the forwarder's sockets.
/// `max_queued_messages` keeps its 1,000 per client, far above what a pair has queued.
pub fn mosquitto_config(port: u16, persistence: bool, dir: &Path) -> String {
    format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\n\
         persistence {persistence}\npersistence_location {}/\n\
         max_inflight_messages 0\nset_tcp_nodelay true\n\
         log_dest stderr\nlog_type error\nlog_type warning\n",
        dir.display()
    )
}

/// A loopback port free at the time of asking (for servers that cannot say which port
/// they bound).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts mosquitto on a free loopback port with [`mosquitto_config`], and waits until it
/// accepts connections.
pub fn spawn_mosquitto(spawn: &MosquittoSpawn) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    // Started as root, mosquitto changes to its own user, who must be able to write the
    // persistence database here.
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777))?;
    let port = free_port()?;
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(&config, mosquitto_config(port, spawn.persistence, &data))?;
    let mut child = pinned(&spawn.bin, spawn.cpus.as_deref())
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} (apt-get install mosquitto)", spawn.bin.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if let Some(status) = child.try_wait()? {
            bail!("mosquitto exited at start: {status}");
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            let pid = child.id();
            return Ok(Server { child, addr, pid, widget_key: None, _data_dir: Some(dir) });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("mosquitto did not listen on {addr} within 10 s")
}

/// An HTTP client that never goes through a proxy. reqwest has no crypto provider of its
/// own: rustls's *ring* one is installed first (once per process).
fn http_client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

/// Logs in over `POST /api/v1/login`; returns the bearer token.
pub async fn login(addr: SocketAddr, email: &str, password: &str) -> Result<String> {
    let client = http_client()?;
    let response = client
        .post(format!("http://{addr}/api/v1/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("login of {email} failed: {} {}", response.status(), response.text().await?);
    }
    let body: kefu_proto::api::LoginResponse = response.json().await?;
    Ok(body.token)
}

/// Waits until the relay answers `/healthz` (it binds before it opens its database).
pub async fn wait_healthy(addr: SocketAddr) -> Result<()> {
    let client = http_client()?;
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("http://{addr}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the relay at {addr} did not become healthy")
}
