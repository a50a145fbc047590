//! Where kefu keeps things, and what it reads at start.
//!
//! - `credentials.toml` in the config dir: the relay URL and the agent's token, written by
//!   `kefu login` with mode 0600 because the token is a password.
//! - `config.toml` in the config dir: theme, key map, notification settings and the CA that
//!   signs the relay's certificate, written by the agent. Unknown or bad entries are
//!   refused at load with a message naming them.
//! - `kefu.log` in the data dir: the log (never the terminal the workstation draws on).
//!
//! Both dirs follow the platform (`~/.config/kefu`, `~/.local/share/kefu` on Linux,
//! honouring `XDG_CONFIG_HOME` and `XDG_DATA_HOME`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keymap::Keymap;

/// The directories kefu uses.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Credentials and settings.
    pub config_dir: PathBuf,
    /// The log.
    pub data_dir: PathBuf,
}

impl Paths {
    /// The platform's directories for kefu.
    pub fn platform() -> Result<Paths> {
        let dirs = directories::ProjectDirs::from("", "", "kefu")
            .ok_or_else(|| Error::Credentials("no home directory: cannot place kefu's files".into()))?;
        Ok(Paths { config_dir: dirs.config_dir().to_path_buf(), data_dir: dirs.data_dir().to_path_buf() })
    }

    /// `credentials.toml`.
    pub fn credentials(&self) -> PathBuf {
        self.config_dir.join("credentials.toml")
    }

    /// `config.toml`.
    pub fn settings(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// `kefu.log`.
    pub fn log(&self) -> PathBuf {
        self.data_dir.join("kefu.log")
    }
}

/// What `kefu login` stores: enough to connect without asking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The relay's base URL (`http://host:port`).
    pub relay: String,
    /// The bearer token; it is a password, hence the file mode.
    pub token: String,
    /// The e-mail it was issued to, to show who is logged in.
    pub email: String,
    /// When the token stops working (Unix ms), to say so before the relay does.
    pub expires_at: i64,
    /// The CA file given to `kefu login --ca-file` (absolute), trusted for this relay
    /// instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Credentials {
    /// Reads the credentials `kefu login` stored.
    pub fn load(path: &Path) -> Result<Credentials> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Credentials(format!(
                    "not logged in ({} does not exist): run `kefu login --relay URL --email E` first, or `kefu demo`",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        toml::from_str(&text).map_err(|e| Error::Credentials(format!("{}: {e}", path.display())))
    }

    /// Writes the credentials with mode 0600 (created that way, never readable by others).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).map_err(|e| Error::Credentials(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_private(path, text.as_bytes()).map_err(|e| Error::io(path, e))
    }

    /// The agent WebSocket URL of the relay.
    pub fn agent_ws_url(&self) -> String {
        ws_url(&self.relay, "/ws/agent")
    }
}

/// `http://h:p` → `ws://h:p/path` (and https → wss).
pub fn ws_url(relay: &str, path: &str) -> String {
    let base = relay.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}{path}")
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An older file may have been created with wider permissions; narrow them.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThemeName {
    /// Light text on a dark terminal.
    #[default]
    Dark,
    /// Dark text on a light terminal.
    Light,
    /// No colours, only bold and reverse (for screen readers and odd terminals).
    Mono,
}

/// How the agent hears about new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// Desktop notifications (through D-Bus); off by itself after the first failure.
    pub desktop: bool,
    /// The terminal bell, also the fallback when desktop notifications fail.
    pub bell: bool,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings { desktop: true, bell: true }
    }
}

/// `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Colours.
    pub theme: ThemeName,
    /// The shipped key map to start from: `default` or `vim`.
    pub keymap: String,
    /// A key file of one's own, merged over `keymap`.
    pub keymap_file: Option<PathBuf>,
    /// Notifications.
    pub notifications: NotificationSettings,
    /// A PEM file of the CA that signs the relay's certificate, trusted instead of the
    /// system's roots (`kefu login --ca-file` overrides it for the relay it logs in to).
    pub ca_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            theme: ThemeName::Dark,
            keymap: "default".into(),
            keymap_file: None,
            notifications: NotificationSettings::default(),
            ca_file: None,
        }
    }
}

impl Settings {
    /// Reads `path`; a missing file means the defaults. Bad entries are errors naming them.
    pub fn load(path: &Path) -> Result<Settings> {
        match std::fs::read_to_string(path) {
            Ok(text) => Settings::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Parses the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Settings> {
        toml::from_str(text).map_err(|e| Error::Settings { path: path.into(), message: e.to_string() })
    }

    /// The key map these settings name: the shipped base, then the user's file over it.
    pub fn keymap(&self, path: &Path) -> Result<Keymap> {
        let base = Keymap::shipped(&self.keymap)
            .map_err(|e| Error::Settings { path: path.into(), message: format!("keymap: {e}") })?;
        let Some(file) = &self.keymap_file else { return Ok(base) };
        let text = std::fs::read_to_string(file).map_err(|e| Error::Settings {
            path: path.into(),
            message: format!("keymap_file: cannot read {}: {e}", file.display()),
        })?;
        base.merged(&file.display().to_string(), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_when_absent_and_reject_bad_entries_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());

        let good =
            "theme = \"light\"\nkeymap = \"vim\"\nca_file = \"/etc/kefu/ca.pem\"\n[notifications]\ndesktop = false\n";
        let settings = Settings::parse(&path, good).unwrap();
        assert_eq!(settings.theme, ThemeName::Light);
        assert_eq!(settings.ca_file.as_deref(), Some(Path::new("/etc/kefu/ca.pem")));
        assert!(!settings.notifications.desktop && settings.notifications.bell);
        settings.keymap(&path).unwrap();

        for (text, needle) in [
            ("theme = \"pink\"\n", "theme"),
            ("colour = \"red\"\n", "colour"),
            ("ca_file = 3\n", "ca_file"),
            ("ca-file = \"ca.pem\"\n", "ca-file"),
            ("[notifications]\nsound = true\n", "sound"),
            ("[notifications]\ndesktop = \"yes\"\n", "desktop"),
        ] {
            let err = Settings::parse(&path, text).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("config.toml"), "{err:?} should name {needle}");
        }
        let err = Settings::parse(&path, "keymap = \"emacs\"\n").unwrap().keymap(&path).unwrap_err().to_string();
        assert!(err.contains("keymap") && err.contains("emacs"), "{err}");

        let keys = dir.path().join("keys.toml");
        std::fs::write(&keys, "[normal]\n\"x\" = \"explode\"\n").unwrap();
        let settings = Settings { keymap_file: Some(keys), ..Settings::default() };
        let err = settings.keymap(&path).unwrap_err().to_string();
        assert!(err.contains("keys.toml") && err.contains("explode"), "{err}");
    }

    #[test]
    fn credentials_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu").join("credentials.toml");
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(err.contains("kefu login"), "{err}");
        let creds = Credentials {
            relay: "http://127.0.0.1:7700/".into(),
            token: "kfa_secret".into(),
            email: "wang@shop.example".into(),
            expires_at: 1,
            ca_file: None,
        };
        creds.save(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), creds);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("ca_file"), "no CA file, no key");
        let pinned = Credentials { ca_file: Some("/etc/kefu/ca.pem".into()), ..creds.clone() };
        pinned.save(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), pinned);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(creds.agent_ws_url(), "ws://127.0.0.1:7700/ws/agent");
        assert_eq!(ws_url("https://kefu.example", "/ws/agent"), "wss://kefu.example/ws/agent");
    }
}
