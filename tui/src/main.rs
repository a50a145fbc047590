//! `kefu`: the agent workstation's command line. Without a command it opens the
//! workstation with the credentials `kefu login` stored.

// The doc comments below are clap's `--help` text, printed as written: a URL or a
// `[section]` there is for the terminal, not a link for rustdoc.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kefu_tui::app::App;
use kefu_tui::config::{Credentials, Paths, Settings};
use kefu_tui::event_loop::{self, Shell};
use kefu_tui::notify::{Desktop, Notifications};
use kefu_tui::theme::Theme;
use kefu_tui::tls::Trust;
use kefu_tui::worker;

/// kefu: the terminal workstation for customer-service agents.
///
/// Run `kefu login --relay URL --email E` once, then `kefu` to work. `kefu demo` shows
/// everything with a relay and simulated customers in this process.
///
/// Files: credentials in ~/.config/kefu/credentials.toml (mode 0600); settings in
/// ~/.config/kefu/config.toml (theme = "dark" | "light" | "mono"; keymap = "default" |
/// "vim"; keymap_file = "PATH" merged over it; [notifications] desktop = true|false,
/// bell = true|false; ca_file = "PATH" of the CA that signs an https relay's
/// certificate, trusted instead of the system's roots); the log in
/// ~/.local/share/kefu/kefu.log (KEFU_LOG sets its filter). XDG_CONFIG_HOME and
/// XDG_DATA_HOME move them.
///
/// In the workstation, `?` lists every key and `:` or Ctrl-P finds any action by name.
#[derive(Parser)]
#[command(name = "kefu", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Log in to a relay and store its URL and the token for `kefu`.
    Login {
        /// The relay's base URL, e.g. https://kefu.example or http://127.0.0.1:7700.
        #[arg(long, env = "KEFU_RELAY")]
        relay: String,
        /// A PEM file of the CA that signs the relay's certificate, trusted instead of the
        /// system's roots (kept with the credentials) [default: ca_file in config.toml].
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Your e-mail as the relay knows it.
        #[arg(long)]
        email: String,
        /// The workspace's slug, when your e-mail is in several.
        #[arg(long)]
        workspace: Option<String>,
        /// Read the password from the first line of standard input instead of asking
        /// (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Revoke the stored token at the relay and forget it.
    Logout,
    /// Check that a relay answers and print its version and database health.
    Status {
        /// The relay's base URL (default: the one you logged in to, else 127.0.0.1:7700).
        #[arg(long, env = "KEFU_RELAY")]
        relay: Option<String>,
        /// A PEM file of the CA that signs the relay's certificate [default: the one you
        /// logged in with, else ca_file in config.toml].
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Start a relay in this process with simulated customers and open the workstation
    /// as a demo agent. Nothing is kept afterwards.
    #[cfg(feature = "demo")]
    Demo,
    /// Print the key bindings in force (after config.toml and keymap_file), with what each
    /// action does.
    Keys,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let paths = Paths::platform()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            None => {
                init_logging(&paths)?;
                let credentials = Credentials::load(&paths.credentials())?;
                workstation(&paths, credentials).await
            }
            Some(Command::Login { relay, ca_file, email, workspace, password_stdin }) => {
                login(&paths, relay, ca_file, email, workspace, password_stdin).await
            }
            Some(Command::Logout) => {
                let path = paths.credentials();
                let credentials = Credentials::load(&path)?;
                let trust = trust(&paths, None, Some(&credentials))?;
                kefu_tui::login::logout(&credentials.relay, &trust, &credentials.token).await?;
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                println!("logged out of {}", credentials.relay);
                Ok(())
            }
            Some(Command::Status { relay, ca_file }) => {
                let credentials = Credentials::load(&paths.credentials()).ok();
                let trust = trust(&paths, ca_file, credentials.as_ref())?;
                let relay =
                    relay.or_else(|| credentials.map(|c| c.relay)).unwrap_or_else(|| "http://127.0.0.1:7700".into());
                let health = kefu_tui::login::health(&relay, &trust).await?;
                println!("relay {relay}: {} (version {}, database {})", health.status, health.version, health.database);
                if health.status != "ok" {
                    std::process::exit(1);
                }
                Ok(())
            }
            #[cfg(feature = "demo")]
            Some(Command::Demo) => {
                init_logging(&paths)?;
                let demo = kefu_tui::demo::Demo::start().await?;
                let result = workstation(&paths, demo.credentials.clone()).await;
                demo.stop().await;
                result
            }
            Some(Command::Keys) => {
                let settings_path = paths.settings();
                let keymap = Settings::load(&settings_path)?.keymap(&settings_path)?;
                for mode in kefu_tui::keymap::Mode::ALL {
                    println!("[{}]", mode.name());
                    for (keys, command) in keymap.bindings(mode) {
                        println!("  {keys:<14} {:<20} {}", command.name(), command.doc());
                    }
                }
                Ok(())
            }
        }
    })
}

/// The CA the relay's certificate is checked against: the one given on the command line,
/// else the one `kefu login` was given (kept in the credentials), else `ca_file` in
/// config.toml, else none (the system's roots).
fn trust(paths: &Paths, given: Option<PathBuf>, credentials: Option<&Credentials>) -> Result<Trust> {
    if given.is_some() {
        return Ok(Trust::new(given));
    }
    if let Some(ca_file) = credentials.and_then(|c| c.ca_file.clone()) {
        return Ok(Trust::new(Some(ca_file)));
    }
    Ok(Trust::new(Settings::load(&paths.settings())?.ca_file))
}

async fn login(
    paths: &Paths,
    relay: String,
    ca_file: Option<PathBuf>,
    email: String,
    workspace: Option<String>,
    password_stdin: bool,
) -> Result<()> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password(format!("password for {email} at {relay}: ")).context("cannot read the password")?
    };
    if password.is_empty() {
        bail!("no password given");
    }
    // Kept with the credentials as an absolute path, so `kefu` finds it from anywhere.
    let ca_file = match ca_file {
        Some(path) => {
            Some(std::fs::canonicalize(&path).with_context(|| format!("cannot read the CA file {}", path.display()))?)
        }
        None => None,
    };
    let trust = trust(paths, ca_file.clone(), None)?;
    let response = kefu_tui::login::login(&relay, &trust, &email, &password, workspace).await?;
    let credentials = Credentials {
        relay: relay.trim_end_matches('/').to_string(),
        token: response.token,
        email: response.agent.email.clone(),
        expires_at: response.expires_at,
        ca_file,
    };
    let path = paths.credentials();
    credentials.save(&path)?;
    println!("logged in as {} <{}>; credentials in {}", response.agent.name, response.agent.email, path.display());
    println!("run `kefu` to open the workstation");
    Ok(())
}

/// Logs go to a file in the data dir: the terminal belongs to the workstation.
fn init_logging(paths: &Paths) -> Result<()> {
    std::fs::create_dir_all(&paths.data_dir).with_context(|| format!("cannot create {}", paths.data_dir.display()))?;
    let path = paths.log();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the log {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::sync::Mutex::new(file)).init();
    Ok(())
}

/// Opens the full-screen workstation until the agent quits.
async fn workstation(paths: &Paths, credentials: Credentials) -> Result<()> {
    let settings_path = paths.settings();
    let settings = Settings::load(&settings_path)?;
    let keymap = settings.keymap(&settings_path)?;
    if credentials.expires_at < worker::now_ms() {
        bail!("the stored token expired: run `kefu login` again");
    }
    let prefix = format!("kefu-{:08x}", rand::random::<u32>());
    let mut app = App::new(keymap, Theme::named(settings.theme), prefix, worker::now_ms());
    app.utc_offset_secs = chrono::Local::now().offset().local_minus_utc();
    app.relay_url = credentials.relay.clone();
    let (actions_tx, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let trust = trust(paths, None, Some(&credentials))?;
    let api = kefu_tui::api::ApiClient::new(&credentials.relay, &trust, &credentials.token, actions_tx.clone())?;
    let ws_url = credentials.agent_ws_url();
    let tls = trust.ws_connector(&ws_url)?;
    let (handle, worker_task) = worker::spawn(ws_url, credentials.token.clone(), tls, actions_tx);
    let notifications = Notifications::new(settings.notifications, Desktop);
    tracing::info!(relay = %credentials.relay, email = %credentials.email, "workstation starting");

    let mut terminal = ratatui::init();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableBracketedPaste);
    let shell = Shell {
        worker: &handle,
        api: &api,
        actions: actions_rx,
        notifications: &notifications,
        bell: Box::new(|| {
            let mut out = std::io::stdout();
            let _ = out.write_all(b"\x07");
            let _ = out.flush();
        }),
    };
    let events = crossterm::event::EventStream::new();
    let result = event_loop::run(&mut terminal, &mut app, events, shell).await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    drop(handle);
    let _ = worker_task.await;
    tracing::info!("workstation closed");
    result.context("the terminal failed")
}
