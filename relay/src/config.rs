//! Configuration: defaults, then a TOML file (`--config`), then flags and environment
//! variables (`--listen`/`KEFU_LISTEN`, `--data-dir`/`KEFU_DATA_DIR`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertRules, BusinessHours};
use crate::error::{Error, Result};

/// The documented default address: loopback only, so a fresh start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// The longest any duration setting may be: a hundred years, in seconds.
pub const MAX_DURATION_SECS: u64 = 100 * 365 * 86_400;

/// The most any size setting (connections, queues, batches, windows) may be: far above
/// what one relay serves.
pub const MAX_SIZE: usize = 1 << 24;

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
    /// Alerts for supervisors.
    pub alerts: AlertsConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Personal data in the workstation.
    pub privacy: PrivacyConfig,
    /// How long closed conversations are kept.
    pub retention: RetentionConfig,
    /// Built-in TLS on the main address.
    pub tls: TlsConfig,
    /// Encryption at rest.
    pub encryption: EncryptionConfig,
}

/// Encryption at rest (`docs/security.md`, "Encryption at rest"): the keys come from a key
/// file or from `KEFU_KEYS`, never from this file or the database; with neither,
/// encryption is off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Lines of `<key id> <base64 key>`, the last one active; mode 600. Re-read on SIGHUP
    /// and when it changes.
    pub key_file: Option<PathBuf>,
    /// The keys from `KEFU_KEYS` (set by the command line, never read from TOML).
    #[serde(skip)]
    pub keys: Option<crate::crypto::KeyText>,
}

/// Built-in TLS: with both files set, the main address serves HTTPS and WSS only (TLS 1.3,
/// or 1.2 for older clients); without them, plain HTTP (behind a proxy that terminates
/// TLS, or on loopback). SIGHUP reloads both files; see `docs/deploy.md`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM: the relay's certificate first, then intermediates.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1); readable by the relay's user alone.
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }
}

/// Alerts: their thresholds, business hours, and where they are pushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// A customer waiting in a queue this long raises an alert.
    pub wait_secs: u64,
    /// An agent leaving a customer's message unanswered this long raises an alert.
    pub reply_secs: u64,
    /// When groups must have someone online, `HH:MM-HH:MM` in the shop's time (closing
    /// before opening: over midnight); empty: never checked.
    pub business_hours: String,
    /// The days business hours apply: `mon` … `sun`.
    pub business_days: Vec<String>,
    /// The shop's offset from UTC in minutes; absent: this machine's.
    pub utc_offset_minutes: Option<i32>,
    /// How many of the latest ratings the CSAT alerts look at.
    pub csat_window: usize,
    /// Their average below this raises an alert.
    pub csat_min: f64,
    /// Bad ratings (1 or 2) among them, at least this many and twice as many as in the
    /// window before, raise an alert.
    pub bad_ratings_min: usize,
    /// Alerts are also POSTed here (JSON, signed like channel webhooks when a secret is set).
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the webhook's `x-kefu-signature`.
    pub webhook_secret: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            wait_secs: 120,
            reply_secs: 300,
            business_hours: "09:00-21:00".into(),
            business_days: WEEKDAYS.iter().map(|d| d.to_string()).collect(),
            utc_offset_minutes: None,
            csat_window: 20,
            csat_min: 3.5,
            bad_ratings_min: 3,
            webhook_url: None,
            webhook_secret: None,
        }
    }
}

/// Weekday names, Monday first.
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl AlertsConfig {
    /// The rules, checked.
    pub fn rules(&self) -> Result<AlertRules> {
        let bad = |what: String| Error::Config(format!("alerts.{what}"));
        if self.wait_secs == 0 || self.reply_secs == 0 || self.csat_window == 0 {
            return Err(bad("wait_secs, reply_secs and csat_window must be positive".into()));
        }
        if !(1.0..=5.0).contains(&self.csat_min) {
            return Err(bad("csat_min must be 1 to 5".into()));
        }
        let business_hours = match self.business_hours.trim() {
            "" => None,
            text => {
                let (open, close) = text
                    .split_once('-')
                    .and_then(|(o, c)| Some((minute_of_day(o)?, minute_of_day(c)?)))
                    .ok_or_else(|| bad(format!("business_hours '{text}' is not HH:MM-HH:MM")))?;
                let mut days = [false; 7];
                for day in &self.business_days {
                    let index = WEEKDAYS
                        .iter()
                        .position(|d| d.eq_ignore_ascii_case(day.trim()))
                        .ok_or_else(|| bad(format!("business_days: '{day}' is not one of {}", WEEKDAYS.join(", "))))?;
                    days[index] = true;
                }
                let utc_offset_minutes =
                    self.utc_offset_minutes.unwrap_or_else(|| chrono::Local::now().offset().local_minus_utc() / 60);
                // unsigned_abs: `abs` of i32::MIN overflows.
                if utc_offset_minutes.unsigned_abs() > 14 * 60 {
                    return Err(bad("utc_offset_minutes must be within ±840".into()));
                }
                Some(BusinessHours { days, open_minute: open, close_minute: close, utc_offset_minutes })
            }
        };
        Ok(AlertRules {
            wait_ms: self.wait_secs as i64 * 1000,
            reply_ms: self.reply_secs as i64 * 1000,
            business_hours,
            csat_window: self.csat_window,
            csat_min: self.csat_min,
            bad_ratings_min: self.bad_ratings_min,
        })
    }
}

/// `HH:MM` as minutes since midnight; `24:00` is the end of the day.
fn minute_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// How long data is kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Closed conversations older than this many days are deleted with their messages and
    /// files (every hour); 0 keeps them forever.
    pub conversations_days: u32,
}

impl RetentionConfig {
    /// Conversations closed before this instant are due, when retention is on.
    pub fn cutoff(&self, now: kefu_proto::UnixMillis) -> Option<kefu_proto::UnixMillis> {
        (self.conversations_days > 0).then(|| now - self.conversations_days as i64 * 86_400_000)
    }
}

/// Personal data in the workstation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Roles whose workstations see phone, ID-card and bank-card numbers and e-mails in
    /// messages masked (`138****5678`); they may reveal a conversation's, which is audited.
    pub masked_roles: Vec<kefu_proto::frame::Role>,
}

impl PrivacyConfig {
    /// Whether `role` sees personal data masked.
    pub fn masks(&self, role: kefu_proto::frame::Role) -> bool {
        self.masked_roles.contains(&role)
    }
}

/// The Prometheus endpoint, `GET /metrics`: off unless a token or a listen address is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Served on the main address to requests bearing this token.
    pub token: Option<String>,
    /// Served without a token on this separate address (keep it private).
    pub listen: Option<SocketAddr>,
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
    /// Customer connections open at once from one address.
    pub customer_connections_per_ip: u32,
    /// New customer connections a minute from one address.
    pub customer_connects_per_minute_per_ip: u32,
    /// Customers' messages a second into one workspace (all its widget keys and channels'
    /// customers together).
    pub customer_messages_per_second_per_workspace: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (exact addresses).
    pub trusted_proxies: Vec<std::net::IpAddr>,
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
    /// Failed logins in a row that lock an e-mail out.
    pub lockout_after_failures: u32,
    /// The first lock's length; each further failure doubles it…
    pub lockout_first_secs: u64,
    /// …up to this.
    pub lockout_max_secs: u64,
}

/// Group-commit settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Most operations committed in one transaction (one fsync).
    pub max_batch: usize,
    /// Operations waiting for the writer before senders are made to wait.
    pub queue: usize,
    /// Plain messages are appended to the message log and synced there, and folded into
    /// the tables each second by a thread of their own, instead of each commit writing
    /// SQLite's pages (docs/BENCHMARKS.md, finding 25). Off: every message is written to
    /// the tables in its commit.
    pub message_log: bool,
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
            alerts: AlertsConfig::default(),
            metrics: MetricsConfig::default(),
            privacy: PrivacyConfig::default(),
            retention: RetentionConfig::default(),
            tls: TlsConfig::default(),
            encryption: EncryptionConfig::default(),
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
            customer_connections_per_ip: 200,
            customer_connects_per_minute_per_ip: 600,
            customer_messages_per_second_per_workspace: 5000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl_hours: 24 * 7,
            logins_per_minute_per_ip: 20,
            logins_per_minute_per_email: 5,
            lockout_after_failures: 5,
            lockout_first_secs: 60,
            lockout_max_secs: 3600,
        }
    }
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { max_batch: 2048, queue: 65_536, message_log: true }
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
        Config::from_toml(&text).map_err(|e| match e {
            Error::Config(message) => Error::Config(format!("{}: {message}", path.display())),
            e => e,
        })
    }

    /// A config file's text over the defaults, checked: what `load` reads, without the file
    /// (the config fuzz target feeds it directly).
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        self.check_ranges()?;
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
        let a = &self.auth;
        if a.lockout_after_failures == 0 || a.lockout_first_secs == 0 || a.lockout_max_secs < a.lockout_first_secs {
            return Err(Error::Config(
                "auth.lockout_after_failures and lockout_first_secs must be positive, lockout_max_secs at least lockout_first_secs"
                    .into(),
            ));
        }
        self.alerts.rules()?;
        if self.metrics.token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(Error::Config("metrics.token must be at least 16 characters".into()));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(Error::Config("tls.cert_file and tls.key_file are set together or not at all".into()));
        }
        Ok(())
    }

    /// Durations and sizes within what the relay can use: it turns durations into
    /// milliseconds from now, and hands sizes to tokio's semaphores and channels, which
    /// panic beyond their limit; a number past these bounds cannot be meant.
    fn check_ranges(&self) -> Result<()> {
        let hours = |h: u64| h.saturating_mul(3600);
        let millis = |ms: u64| ms / 1000;
        let llm = self.bot.llm.as_ref();
        let durations = [
            ("limits.hello_timeout_secs", self.limits.hello_timeout_secs),
            ("auth.token_ttl_hours", hours(self.auth.token_ttl_hours)),
            ("auth.lockout_first_secs", self.auth.lockout_first_secs),
            ("auth.lockout_max_secs", self.auth.lockout_max_secs),
            ("routing.grace_secs", self.routing.grace_secs),
            ("routing.reroute_unanswered_secs", self.routing.reroute_unanswered_secs),
            ("routing.sticky_window_hours", hours(self.routing.sticky_window_hours)),
            ("channels.retry_first_secs", self.channels.retry_first_secs),
            ("channels.retry_max_secs", self.channels.retry_max_secs),
            ("channels.request_timeout_secs", self.channels.request_timeout_secs),
            ("channels.signature_tolerance_secs", self.channels.signature_tolerance_secs),
            ("alerts.wait_secs", self.alerts.wait_secs),
            ("alerts.reply_secs", self.alerts.reply_secs),
            ("bot.llm.timeout_ms", llm.map_or(0, |l| millis(l.timeout_ms))),
            ("bot.llm.pause_secs", llm.map_or(0, |l| l.pause_secs)),
        ];
        let automations = self.bot.automations.iter().map(|a| ("bot.automations.timeout_ms", millis(a.timeout_ms)));
        if let Some((name, _)) = durations.into_iter().chain(automations).find(|&(_, secs)| secs > MAX_DURATION_SECS) {
            return Err(Error::Config(format!("{name} is longer than a hundred years")));
        }
        let sizes = [
            ("limits.max_connections", self.limits.max_connections),
            ("limits.outbound_queue", self.limits.outbound_queue),
            ("journal.max_batch", self.journal.max_batch),
            ("journal.queue", self.journal.queue),
            ("channels.concurrency", self.channels.concurrency),
            ("alerts.csat_window", self.alerts.csat_window),
        ];
        if let Some((name, _)) = sizes.into_iter().find(|&(_, n)| n > MAX_SIZE) {
            return Err(Error::Config(format!("{name} must be at most {MAX_SIZE}")));
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
    fn alert_rules_from_the_file() {
        let alerts = |text: &str| -> Result<AlertRules> {
            let config: Config =
                toml::from_str(&format!("[alerts]\n{text}")).map_err(|e| Error::Config(e.to_string()))?;
            config.alerts.rules()
        };
        let rules =
            alerts("business_hours = \"08:30-22:00\"\nbusiness_days = [\"mon\", \"fri\"]\nutc_offset_minutes = 480")
                .unwrap();
        let hours = rules.business_hours.unwrap();
        assert_eq!((hours.open_minute, hours.close_minute, hours.utc_offset_minutes), (510, 1320, 480));
        assert_eq!(hours.days, [true, false, false, false, true, false, false]);
        assert_eq!((rules.wait_ms, rules.reply_ms), (120_000, 300_000));
        assert!(alerts("business_hours = \"\"").unwrap().business_hours.is_none());
        for bad in ["business_hours = \"9-21\"", "business_days = [\"someday\"]", "wait_secs = 0", "csat_min = 9.0"] {
            assert!(alerts(bad).is_err(), "{bad}");
        }
    }

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
    fn numbers_beyond_what_the_relay_can_use_are_refused_not_overflowed() {
        // Found by the relay_config fuzz target (the first), the rest run through it by
        // hand: each was accepted and then overflowed (milliseconds from now, `abs`, the
        // hello deadline) or made tokio panic (a semaphore or channel of more permits than
        // it holds).
        let found = "[limits]\nhello_timeout_secs = 9223372036854775807\n\n[metrics]\nlisten = \"127.0.0.1:9100\"\n\
                     token = \"0123456789abcdef0123\"\n\n[privacy]\nmasked_roles = [\"agent\"]\n\n[retention]\n\
                     conversations_days = 365\n\n[routing]\nsticky_window_hours = 7883960576013198709\n";
        let cases = [
            (found, "hello_timeout_secs"),
            ("[routing]\nsticky_window_hours = 7883960576013198709", "sticky_window_hours"),
            ("[alerts]\nwait_secs = 9223372036854775807", "wait_secs"),
            ("[alerts]\nutc_offset_minutes = -2147483648", "utc_offset_minutes"),
            ("[routing]\ngrace_secs = 9223372036854775807", "grace_secs"),
            ("[journal]\nqueue = 9223372036854775807", "journal.queue"),
            ("[limits]\nmax_connections = 2305843009213693952", "max_connections"),
            ("[bot.llm]\nurl = \"http://x\"\nmodel = \"m\"\npause_secs = 9223372036854775807", "pause_secs"),
        ];
        for (text, named) in cases {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
        let longest = format!("[routing]\ngrace_secs = {MAX_DURATION_SECS}\n[journal]\nqueue = {MAX_SIZE}");
        let config = Config::from_toml(&longest).unwrap();
        assert_eq!((config.routing.grace_secs, config.journal.queue), (MAX_DURATION_SECS, MAX_SIZE));
        assert!(Config::from_toml("[alerts]\nutc_offset_minutes = -840").is_ok());
    }

    #[test]
    fn tls_needs_both_files_and_no_others() {
        let tls = |text: &str| -> Result<Config> {
            let config: Config = toml::from_str(&format!("[tls]\n{text}")).map_err(|e| Error::Config(e.to_string()))?;
            config.check().map(|()| config)
        };
        let config = tls("cert_file = \"/etc/kefu/cert.pem\"\nkey_file = \"/etc/kefu/key.pem\"").unwrap();
        assert_eq!(config.tls.files(), Some((Path::new("/etc/kefu/cert.pem"), Path::new("/etc/kefu/key.pem"))));
        assert!(tls("").unwrap().tls.files().is_none());
        for bad in ["cert_file = \"/c.pem\"", "key_file = \"/k.pem\"", "certificate = \"/c.pem\""] {
            let err = tls(bad).unwrap_err().to_string();
            assert!(err.contains("cert_file") || err.contains("certificate"), "{bad}: {err}");
        }
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
