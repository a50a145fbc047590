//! Configuration: defaults, then a TOML file (`--config`), then flags and environment
//! variables (`--listen`/`KEFU_LISTEN`, `--data-dir`/`KEFU_DATA_DIR`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The documented default address: loopback only, so a fresh start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// Everything the relay can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory holding the SQLite database and stored files.
    pub data_dir: PathBuf,
    /// Per-connection and per-relay limits.
    pub limits: LimitsConfig,
    /// Agent authentication.
    pub auth: AuthConfig,
    /// The group-commit writer.
    pub journal: JournalConfig,
    /// How conversations are routed to agents.
    pub routing: RoutingConfig,
    /// The bot that answers from the knowledge base before a person is needed.
    pub bot: BotConfig,
    /// The app and social channels: webhook pushes and inbound signatures.
    pub channels: ChannelsConfig,
}

/// Pushing replies to channels' webhooks, and checking what platforms post.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelsConfig {
    /// Attempts at one delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the first retry; each further retry waits twice as long.
    pub retry_first_secs: u64,
    /// The longest wait between two attempts.
    pub retry_max_secs: u64,
    /// How long one push may take.
    pub request_timeout_secs: u64,
    /// Pushes in flight at once, across channels.
    pub concurrency: usize,
    /// How far an inbound webhook's timestamp may be from now (either way).
    pub signature_tolerance_secs: u64,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            max_attempts: 8,
            retry_first_secs: 5,
            retry_max_secs: 3600,
            request_timeout_secs: 10,
            concurrency: 8,
            signature_tolerance_secs: 300,
        }
    }
}

/// The bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// Whether new conversations start with the bot (when the workspace has articles).
    pub enabled: bool,
    /// Intent definitions (JSON, as `relay/kb/intents.json`); the shipped ones when absent.
    pub intents_file: Option<PathBuf>,
    /// Below this confidence (0 to 1) the bot hands over to a person at once.
    pub min_confidence: f32,
    /// Bot answers that did not help before it hands over.
    pub max_unresolved_turns: u32,
    /// An OpenAI-compatible model to phrase answers from articles (optional).
    pub llm: Option<crate::outside::LlmConfig>,
    /// The shop's endpoints that answer intents (order status, address changes).
    pub automations: Vec<crate::outside::AutomationConfig>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            enabled: true,
            intents_file: None,
            min_confidence: 0.3,
            max_unresolved_turns: 3,
            llm: None,
            automations: Vec::new(),
        }
    }
}

impl BotConfig {
    /// The intent definitions to use.
    pub fn intents(&self) -> Result<Vec<crate::intent::IntentDef>> {
        let text = match &self.intents_file {
            None => crate::intent::DEFAULT_INTENTS.to_string(),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?,
        };
        serde_json::from_str(&text).map_err(|e| Error::Config(format!("intents: {e}")))
    }
}

/// Routing settings that apply to every workspace (groups carry their own escalation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Seconds a disconnected agent keeps their conversations before they return to the
    /// queue.
    pub grace_secs: u64,
    /// Seconds an assigned conversation may go without an agent reply before it moves to
    /// another agent with room; 0 turns re-routing off.
    pub reroute_unanswered_secs: u64,
    /// Hours during which a returning customer goes back to the agent who served them
    /// last (when that agent is online with room); 0 turns it off.
    pub sticky_window_hours: u64,
    /// Whether agents (not only supervisors) may take queued conversations by hand.
    pub agents_may_pick: bool,
    /// Queue priority of each channel: lower is served first.
    pub channel_priority: ChannelPriority,
}

/// Queue priority per channel kind (lower first), within VIPs and within everyone else.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelPriority {
    /// Apps and mini-programs (HTTP API).
    pub app: u16,
    /// The web widget.
    pub web: u16,
    /// Social platforms (webhooks).
    pub social: u16,
}

impl Default for ChannelPriority {
    fn default() -> Self {
        ChannelPriority { app: 1, web: 2, social: 3 }
    }
}

impl ChannelPriority {
    /// The priority of a channel kind.
    pub fn of(&self, kind: kefu_proto::frame::ChannelKind) -> u16 {
        use kefu_proto::frame::ChannelKind;
        match kind {
            ChannelKind::App => self.app,
            ChannelKind::Web => self.web,
            ChannelKind::Social => self.social,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            grace_secs: 60,
            reroute_unanswered_secs: 180,
            sticky_window_hours: 72,
            agents_may_pick: true,
            channel_priority: ChannelPriority::default(),
        }
    }
}

impl RoutingConfig {
    /// The re-routing delay, if re-routing is on.
    pub fn reroute_ms(&self) -> Option<i64> {
        (self.reroute_unanswered_secs > 0).then(|| self.reroute_unanswered_secs as i64 * 1000)
    }

    /// The sticky window.
    pub fn sticky_window_ms(&self) -> i64 {
        self.sticky_window_hours as i64 * 3_600_000
    }
}

/// Limits that protect the relay and its clients from each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most WebSocket connections at once; more are refused with 503 before upgrading.
    /// The process may hold about 20,000 open files here.
    pub max_connections: usize,
    /// Sustained frames per second a connection may send.
    pub frames_per_second: u32,
    /// Frames a connection may send in a burst above the sustained rate.
    pub frame_burst: u32,
    /// Seconds a new connection has to send its `hello`.
    pub hello_timeout_secs: u64,
    /// Frames queued for one connection before it counts as a slow consumer and is
    /// disconnected (it resumes on reconnect).
    pub outbound_queue: usize,
}

/// Agent authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a login token lasts, in hours.
    pub token_ttl_hours: u64,
    /// Login attempts allowed per minute from one IP address.
    pub logins_per_minute_per_ip: u32,
    /// Login attempts allowed per minute for one e-mail address.
    pub logins_per_minute_per_email: u32,
}

/// Group-commit settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Most operations committed in one transaction (one fsync).
    pub max_batch: usize,
    /// Operations waiting for the writer before senders are made to wait.
    pub queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("default listen address parses"),
            data_dir: default_data_dir(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            journal: JournalConfig::default(),
            routing: RoutingConfig::default(),
            bot: BotConfig::default(),
            channels: ChannelsConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 19_000,
            frames_per_second: 50,
            frame_burst: 200,
            hello_timeout_secs: 10,
            outbound_queue: 4096,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { token_ttl_hours: 24 * 7, logins_per_minute_per_ip: 20, logins_per_minute_per_email: 5 }
    }
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { max_batch: 2048, queue: 65_536 }
    }
}

/// The platform data directory (e.g. `~/.local/share/kefu` on Linux).
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "kefu")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("kefu-data"))
}

impl Config {
    /// Defaults, overlaid by the TOML file at `path` when given. A named file that does not
    /// exist or does not parse is an error naming the file.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let config: Config = toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.check()?;
        Ok(config)
    }

    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        let l = &self.limits;
        if l.max_connections == 0 || l.frames_per_second == 0 || l.outbound_queue == 0 {
            return Err(Error::Config(
                "limits.max_connections, limits.frames_per_second and limits.outbound_queue must be positive".into(),
            ));
        }
        if self.journal.max_batch == 0 || self.journal.queue == 0 {
            return Err(Error::Config("journal.max_batch and journal.queue must be positive".into()));
        }
        if !(0.0..=1.0).contains(&self.bot.min_confidence) || self.bot.max_unresolved_turns == 0 {
            return Err(Error::Config(
                "bot.min_confidence must be 0 to 1 and bot.max_unresolved_turns at least 1".into(),
            ));
        }
        let c = &self.channels;
        if c.max_attempts == 0 || c.retry_first_secs == 0 || c.request_timeout_secs == 0 || c.concurrency == 0 {
            return Err(Error::Config(
                "channels.max_attempts, retry_first_secs, request_timeout_secs and concurrency must be positive".into(),
            ));
        }
        if c.retry_max_secs < c.retry_first_secs || c.signature_tolerance_secs == 0 {
            return Err(Error::Config(
                "channels.retry_max_secs must be at least retry_first_secs; signature_tolerance_secs positive".into(),
            ));
        }
        let p = &self.routing.channel_priority;
        if p.app > 99 || p.web > 99 || p.social > 99 {
            return Err(Error::Config("routing.channel_priority values must be 0 to 99".into()));
        }
        if self.auth.token_ttl_hours == 0
            || self.auth.logins_per_minute_per_ip == 0
            || self.auth.logins_per_minute_per_email == 0
        {
            return Err(Error::Config("auth settings must be positive".into()));
        }
        Ok(())
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("kefu.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_overlays_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\n[limits]\nframes_per_second = 7\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.frames_per_second, 7);
        assert_eq!(config.limits.max_connections, LimitsConfig::default().max_connections);
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("relay.toml") && err.contains("lisen"), "{err}");
        let err = Config::load(Some(&dir.path().join("nope.toml"))).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }
}
