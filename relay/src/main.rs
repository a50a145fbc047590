//! `kefu-relay`: the relay's command line. Parses arguments, sets up logging, and hands
//! over to the library.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kefu_proto::api::{CannedScope, NewArticle, NewCannedReply};
use kefu_proto::frame::Role;
use kefu_relay::config::Config;
use kefu_relay::store::DEFAULT_WORKSPACE;
use kefu_relay::{Store, admin, evaluation};

/// mimalloc, not glibc's malloc: at every message the sessions and hubs allocate and
/// free small frames and strings across tasks; it took a fifth of the runtime's thread
/// flat out (docs/BENCHMARKS.md, finding 31). SQLite keeps the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// kefu relay: routes customer conversations to agents and stores them durably.
#[derive(Parser)]
#[command(name = "kefu-relay", version, about)]
struct Cli {
    /// TOML configuration file (see README.md, "Configuration").
    #[arg(long, env = "KEFU_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory for the database and files [default: the platform data dir, e.g. ~/.local/share/kefu].
    #[arg(long, env = "KEFU_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve customers and agents.
    Serve {
        /// Address to listen on [default: 127.0.0.1:7700, or `listen` in the config file].
        #[arg(long, env = "KEFU_LISTEN")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Manage skill groups (presales, aftersales, english, …).
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Manage the knowledge base (articles the bot answers from and agents search).
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Manage canned replies.
    Canned {
        #[command(subcommand)]
        command: CannedCommand,
    },
    /// Manage channels: more widget keys (web), the HTTP API (app), platforms' webhooks (social).
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// Show workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Delete closed conversations older than `[retention] conversations_days` now (the
    /// relay also does it every hour).
    Purge,
    /// Check the event log's hash chain and print its head.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A customer's data on request: export it, or erase it.
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Copy the database (consistently, while the relay serves) to FILE, and its
    /// attachments to FILE.attachments/.
    Backup {
        /// The new backup file.
        file: PathBuf,
    },
    /// Encryption at rest: make a key, re-seal everything under the active key while the
    /// relay serves, or count what each key still seals.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Put a backup in place as the data dir's database (stop the relay first).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace the data dir's existing database.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum KbCommand {
    /// Import articles: a JSON file (an array of {slug, title, body, tags, intents,
    /// language}), a Markdown file (title from its first "# " line, slug from its name), or
    /// a directory of Markdown files. Articles with the same slug are replaced.
    Import {
        /// The file or directory.
        path: PathBuf,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Write every article to a JSON file (importable again).
    Export {
        /// The file to write ("-" for standard output).
        path: PathBuf,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// List articles.
    List {
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Search as customers' questions are searched.
    Search {
        /// The question.
        query: String,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Measure search and intent quality: top-1/top-3 accuracy and intent accuracy on an
    /// evaluation set (the shipped sample unless files are given).
    Eval {
        /// Articles (JSON, as for import).
        #[arg(long)]
        articles: Option<PathBuf>,
        /// Questions: a JSON array of {q, article (slug or null), intent}.
        #[arg(long)]
        questions: Option<PathBuf>,
        /// Intent definitions (JSON).
        #[arg(long)]
        intents: Option<PathBuf>,
        /// Also list every question that missed.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum CannedCommand {
    /// Add a canned reply: shared by the workspace, or personal with --agent.
    Add {
        /// Typed as /shortcut in the workstation: a-z, 0-9, '-', '_'.
        #[arg(long)]
        shortcut: String,
        /// What it is about.
        #[arg(long)]
        title: String,
        /// The text; {customer.name} and {agent.name} are filled in when inserted.
        #[arg(long)]
        body: String,
        /// Make it personal to the agent with this e-mail.
        #[arg(long)]
        agent: Option<String>,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// List canned replies.
    List {
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Remove a canned reply by id.
    Remove {
        /// The reply's id (see `canned list`).
        id: i64,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a skill group.
    Add {
        /// Short unique name: a-z, 0-9, '-', '_'.
        slug: String,
        /// Display name [default: the slug].
        #[arg(long)]
        name: Option<String>,
        /// Group that takes over conversations waiting here too long.
        #[arg(long)]
        fallback: Option<String>,
        /// Seconds a conversation may wait before escalating [default: 120 with --fallback or --widen].
        #[arg(long)]
        escalate_after: Option<u32>,
        /// With no fallback: escalate to any online agent.
        #[arg(long)]
        widen: bool,
        /// New conversations with no chosen group go here.
        #[arg(long)]
        default: bool,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// List skill groups.
    List {
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Remove a skill group no open conversation uses.
    Remove {
        /// The group's slug.
        slug: String,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create an agent. Without --password-stdin a password is generated and printed once.
    Add {
        /// Login e-mail.
        #[arg(long)]
        email: String,
        /// Display name shown to customers.
        #[arg(long)]
        name: String,
        /// agent, supervisor or admin.
        #[arg(long, default_value = "agent")]
        role: Role,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
        /// Most conversations at once [default: 5].
        #[arg(long)]
        capacity: Option<u32>,
        /// Skill groups, e.g. presales:senior,english (level junior unless given).
        #[arg(long)]
        skills: Option<String>,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Change an agent's capacity or skills.
    Set {
        /// The agent's e-mail.
        #[arg(long)]
        email: String,
        /// Most conversations at once.
        #[arg(long)]
        capacity: Option<u32>,
        /// Skill groups, replacing the current ones, e.g. presales:senior,english ("" for none).
        #[arg(long)]
        skills: Option<String>,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// List agents.
    List {
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Sign an agent out everywhere: every token revoked, open workstations closed
    /// (within seconds when the relay runs).
    Revoke {
        /// The agent's e-mail.
        #[arg(long)]
        email: String,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Add a channel and print its secret (app, social) or widget key (web).
    Add {
        /// web, app or social.
        kind: kefu_proto::frame::ChannelKind,
        /// A name unique in the workspace.
        #[arg(long)]
        name: String,
        /// Skill group its new conversations go to [default: the workspace's default group].
        #[arg(long)]
        group: Option<String>,
        /// Queue priority of its new conversations, 0 to 99, lower first [default: by kind].
        #[arg(long)]
        priority: Option<u16>,
        /// App and social: the URL replies are pushed to (signed); without one they are fetched.
        #[arg(long)]
        webhook_url: Option<String>,
        /// Social: a JSON file mapping the platform's fields (see docs/protocol.md).
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// List channels.
    List {
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Show one channel with its secret.
    Show {
        /// The channel's id (see `channel list`).
        id: i64,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole event log; exit 1 at the first entry that was changed, inserted or
    /// removed.
    Verify,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new key line ("<id> <base64 key>") to append to the key file, where the
    /// last line is the active key.
    Generate {
        /// The key's id: letters, digits, '-', '_', '.' [default: today's date, e.g. 2026-06-01].
        #[arg(long)]
        id: Option<String>,
    },
    /// Re-seal every value and file that is not under the active key (plaintext too), in
    /// small batches, while the relay serves. Add the new key last in the key file and let
    /// the relay reload it (SIGHUP, or within 5 s) first.
    Rotate,
    /// Count the values and files each key seals; a key with none left may be removed.
    Status,
}

#[derive(Subcommand)]
enum ContactCommand {
    /// Write everything stored about a contact to DIR: contact.json and its files.
    Export {
        /// The contact's id.
        id: i64,
        /// A new directory for the export.
        #[arg(long)]
        to: PathBuf,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
    /// Erase a contact's personal data everywhere (its conversations must be closed).
    Erase {
        /// The contact's id.
        id: i64,
        /// Confirm: erasure cannot be undone.
        #[arg(long)]
        yes: bool,
        /// Workspace slug.
        #[arg(long, default_value = DEFAULT_WORKSPACE)]
        workspace: String,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Add a workspace (a separate shop: its own agents, widget key and data). A running
    /// relay serves it from its next start.
    Add {
        /// Short unique name, e.g. jewelry-shop.
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Show a workspace and its public widget key.
    Show {
        /// Workspace slug.
        #[arg(default_value = DEFAULT_WORKSPACE)]
        slug: String,
    },
    /// Show or set the web origins allowed to embed the widget (none set: any origin).
    Origins {
        /// Replace them with these, comma-separated (e.g. https://shop.example); "" for any.
        #[arg(long)]
        set: Option<String>,
        /// Workspace slug.
        #[arg(default_value = DEFAULT_WORKSPACE)]
        slug: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // rustls on *ring*, before anything makes a TLS connection or listener.
    kefu_relay::tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(|| kefu_relay::privacy::MaskedLog(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    // Keys in the environment, never on the command line (where `ps` shows them).
    if let Ok(keys) = std::env::var(kefu_relay::crypto::KEYS_VARIABLE) {
        config.encryption.keys = Some(kefu_relay::crypto::KeyText(keys));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { listen } => serve(config, listen).await,
            Command::Agent { command } => agent(config, command).await,
            Command::Group { command } => group(config, command).await,
            Command::Canned { command } => canned(config, command).await,
            Command::Kb { command } => kb(config, command).await,
            Command::Channel { command } => channel(config, command).await,
            Command::Backup { file } => {
                let summary = kefu_relay::backup::backup(&config.data_dir, &file).await?;
                println!(
                    "backed up {} conversations, {} messages and {} attachments to {} ({} bytes)",
                    summary.conversations,
                    summary.messages,
                    summary.attachments,
                    file.display(),
                    summary.database_bytes
                );
                Ok(())
            }
            Command::Restore { file, replace } => {
                let summary = kefu_relay::backup::restore(&file, &config.data_dir, replace).await?;
                println!(
                    "restored {} conversations, {} messages and {} attachments into {}",
                    summary.conversations,
                    summary.messages,
                    summary.attachments,
                    config.data_dir.display()
                );
                Ok(())
            }
            Command::Workspace { command: WorkspaceCommand::Origins { set, slug } } => {
                let store = Store::open(&config.data_dir).await?;
                let workspace = admin::show_workspace(&store, &slug).await?;
                let origins = match set {
                    Some(list) => {
                        let origins: Vec<String> = list
                            .split(',')
                            .map(|o| o.trim().trim_end_matches('/').to_string())
                            .filter(|o| !o.is_empty())
                            .collect();
                        if let Some(bad) =
                            origins.iter().find(|o| !(o.starts_with("https://") || o.starts_with("http://")))
                        {
                            bail!("'{bad}' is not an origin such as https://shop.example");
                        }
                        store.set_allowed_origins(workspace.id, &origins).await?;
                        origins
                    }
                    None => workspace.allowed_origins,
                };
                if origins.is_empty() {
                    println!("any origin may embed the widget of '{slug}'");
                } else {
                    println!("{}", origins.join("\n"));
                }
                store.close().await;
                Ok(())
            }
            Command::Contact { command } => contact(config, command).await,
            Command::Keys { command } => keys(config, command).await,
            Command::Purge => {
                let Some(cutoff) = config.retention.cutoff(kefu_relay::clock::now_ms()) else {
                    bail!("retention is off: set [retention] conversations_days in the config file");
                };
                let store = Store::open(&config.data_dir).await?;
                let purged = store.purge_closed_before(cutoff, &config.data_dir).await?;
                store.close().await;
                println!(
                    "purged {} conversations closed over {} days ago ({} messages, {} files)",
                    purged.conversations, config.retention.conversations_days, purged.messages, purged.files
                );
                Ok(())
            }
            Command::Audit { command: AuditCommand::Verify } => {
                let store = Store::open(&config.data_dir).await?;
                let found = store.verify_audit().await?;
                store.close().await;
                if let Some(id) = found.broken_at {
                    bail!(
                        "the event log was tampered with at entry {id} ({} entries before it are intact)",
                        found.intact
                    );
                }
                println!("{} entries intact ({} from before the chain)", found.intact, found.unchained);
                if let Some((id, hash)) = found.head {
                    println!("head: entry {id}, hash {hash} (keep it elsewhere to detect truncation)");
                }
                Ok(())
            }
            Command::Workspace { command: WorkspaceCommand::Add { slug, name } } => {
                let store = Store::open(&config.data_dir).await?;
                let workspace = admin::add_workspace(&store, &slug, &name).await?;
                println!("workspace {} added; widget key {}", workspace.slug, workspace.widget_key);
                println!("a running relay serves it from its next start");
                store.close().await;
                Ok(())
            }
            Command::Workspace { command: WorkspaceCommand::Show { slug } } => {
                let store = Store::open(&config.data_dir).await?;
                let workspace = admin::show_workspace(&store, &slug).await?;
                println!("workspace:  {} ({})", workspace.slug, workspace.name);
                println!("widget key: {}", workspace.widget_key);
                println!("identity secret (signs customer ids for the widget; keep it on the shop's server):");
                println!("            {}", store.identity_secret(workspace.id).await?);
                store.close().await;
                Ok(())
            }
        }
    })
}

/// The database with the keys of `[encryption]`, for commands that read or write what they
/// seal.
async fn open_with_keys(config: &Config) -> anyhow::Result<Store> {
    let keys = kefu_relay::crypto::Keys::load(config.encryption.key_file.as_deref(), config.encryption.keys.as_ref())?;
    Ok(Store::open_with_keys(&config.data_dir, keys).await?)
}

async fn keys(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    if let KeysCommand::Generate { id } = command {
        let id = id.unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%d").to_string());
        println!("{}", kefu_relay::crypto::generate_key_line(&id)?);
        eprintln!("append it as the last line of the key file (mode 600): it becomes the active key");
        return Ok(());
    }
    let store = open_with_keys(&config).await?;
    let print = |status: &kefu_relay::rotation::KeyStatus| {
        let name = |key: &Option<String>| key.clone().unwrap_or_else(|| "plaintext".into());
        for (field, by_key) in &status.columns {
            let counts: Vec<String> = by_key.iter().map(|(key, n)| format!("{} {n}", name(key))).collect();
            println!("{:<20} {}", field.column(), if counts.is_empty() { "empty".into() } else { counts.join(", ") });
        }
        let files: Vec<String> = status.files.iter().map(|(key, n)| format!("{} {n}", name(key))).collect();
        println!("{:<20} {}", "attachment files", if files.is_empty() { "none".into() } else { files.join(", ") });
    };
    match command {
        KeysCommand::Generate { .. } => unreachable!("handled above"),
        KeysCommand::Status => {
            let keyring = store.keys().current();
            match keyring.active_id() {
                Some(active) => {
                    println!("active key: {active} (keys: {})", keyring.ids().collect::<Vec<_>>().join(", "))
                }
                None => println!("encryption is off (no key file, no KEFU_KEYS)"),
            }
            let status = store.key_status(&config.data_dir).await?;
            print(&status);
            if let Some(active) = keyring.active_id() {
                let unused: Vec<&str> = keyring
                    .ids()
                    .filter(|id| *id != active && !status.totals().contains_key(&Some(id.to_string())))
                    .collect();
                if !unused.is_empty() {
                    println!(
                        "seal nothing here any more: {} (backups made before the rotation still need them)",
                        unused.join(", ")
                    );
                }
            }
        }
        KeysCommand::Rotate => {
            let rotated = store.rotate_keys(&config.data_dir).await?;
            let values: u64 = rotated.values.iter().map(|(_, n)| n).sum();
            println!("re-sealed {values} values and {} files under key {}", rotated.files, rotated.active);
            print(&store.key_status(&config.data_dir).await?);
            if rotated.failed > 0 {
                store.close().await;
                bail!(
                    "{} values or files did not open and were left as they were; the first: {}",
                    rotated.failed,
                    rotated.first_failure.unwrap_or_default()
                );
            }
            if rotated.left > 0 {
                println!(
                    "{} values are still under other keys: written by a relay that had not loaded key {} yet; reload it (SIGHUP) and run this again",
                    rotated.left, rotated.active
                );
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn contact(config: Config, command: ContactCommand) -> anyhow::Result<()> {
    let store = open_with_keys(&config).await?;
    match command {
        ContactCommand::Export { id, to, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            if to.exists() {
                bail!("{} exists; choose a new directory", to.display());
            }
            let export = store.export_contact(ws, kefu_proto::ContactId(id), "cli").await?;
            std::fs::create_dir_all(&to)?;
            std::fs::write(to.join("contact.json"), serde_json::to_vec_pretty(&export)?)?;
            let mut files = 0;
            for file in export["attachments"].as_array().into_iter().flatten() {
                let Some(id) = file["id"].as_str().filter(|id| kefu_relay::attachments::is_id(id)) else { continue };
                let name = kefu_relay::attachments::clean_name(file["name"].as_str().unwrap_or("file"));
                let bytes = kefu_relay::attachments::read(&config.data_dir, id, &store.keys().current()).await?;
                std::fs::write(to.join(format!("{id}-{name}")), bytes)?;
                files += 1;
            }
            println!("contact {id} exported to {} (contact.json and {files} files)", to.display());
        }
        ContactCommand::Erase { id, yes, workspace } => {
            if !yes {
                bail!("erasure cannot be undone: pass --yes to erase contact {id}");
            }
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let erased = store.erase_contact(ws, kefu_proto::ContactId(id), &config.data_dir, "cli").await?;
            println!(
                "contact {id} erased: {} conversations, {} messages, {} tickets, {} files",
                erased.conversations, erased.messages, erased.tickets, erased.attachments
            );
        }
    }
    store.close().await;
    Ok(())
}

async fn serve(mut config: Config, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    {
        let store = Store::open(&config.data_dir).await?;
        let workspace = admin::show_workspace(&store, DEFAULT_WORKSPACE).await?;
        let scheme = if config.tls.files().is_some() { "https" } else { "http" };
        eprintln!("kefu relay on {scheme}://{}  (data: {})", listener.local_addr()?, config.data_dir.display());
        eprintln!("widget key of workspace '{}': {}", workspace.slug, workspace.widget_key);
        store.close().await;
    }
    kefu_relay::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn skills_text(skills: &[kefu_proto::frame::Skill]) -> String {
    let text: Vec<String> = skills.iter().map(|s| format!("{}:{}", s.group, s.level.as_str())).collect();
    if text.is_empty() { "-".into() } else { text.join(",") }
}

/// Prints rows under a header, columns padded by display width (Chinese names are two
/// columns a character).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    use unicode_width::UnicodeWidthStr;
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.width())))).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Reads articles from a JSON file, a Markdown file or a directory of Markdown files.
fn read_articles(path: &std::path::Path) -> anyhow::Result<Vec<NewArticle>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        files.sort();
        return files.iter().map(|f| markdown_article(f)).collect();
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|x| x == "md") {
        return Ok(vec![markdown_article(path)?]);
    }
    serde_json::from_str(&text).with_context(|| format!("{} is not a JSON array of articles", path.display()))
}

/// An article from a Markdown file: the first "# " line is the title, the rest the body.
fn markdown_article(path: &std::path::Path) -> anyhow::Result<NewArticle> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("article").to_lowercase();
    let lines: Vec<&str> = text.lines().collect();
    let (title, body) = match lines.iter().position(|l| l.starts_with("# ")) {
        Some(i) => {
            let body: Vec<&str> = lines.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, l)| *l).collect();
            (lines[i][2..].trim().to_string(), body.join("\n"))
        }
        None => (stem.clone(), text.clone()),
    };
    let language = kefu_relay::intent::language_of(&format!("{title} {body}")).to_string();
    let slug: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    Ok(NewArticle { slug: Some(slug), title, body: body.trim().to_string(), tags: vec![], intents: vec![], language })
}

async fn kb(config: Config, command: KbCommand) -> anyhow::Result<()> {
    if let KbCommand::Eval { articles, questions, intents, verbose } = command {
        let read = |p: &Option<PathBuf>, default: &str| -> anyhow::Result<String> {
            match p {
                Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())),
                None => Ok(default.to_string()),
            }
        };
        let (articles, questions, intents) = evaluation::load(
            &read(&articles, evaluation::SAMPLE_ARTICLES)?,
            &read(&questions, evaluation::SAMPLE_QUESTIONS)?,
            &read(&intents, kefu_relay::intent::DEFAULT_INTENTS)?,
        )?;
        let report = evaluation::evaluate(&articles, &questions, intents)?;
        let share = |n: usize| n as f64 * 100.0 / report.search_questions.max(1) as f64;
        println!(
            "articles {}, questions {} ({} with an expected article)",
            articles.len(),
            questions.len(),
            report.search_questions
        );
        println!(
            "search   top-1 {:5.1}%  top-3 {:5.1}%   (BM25 alone: top-1 {:5.1}%, top-3 {:5.1}%)",
            report.top1_rate() * 100.0,
            report.top3_rate() * 100.0,
            share(report.bm25_top1),
            share(report.bm25_top3),
        );
        println!(
            "intents  {:5.1}%  ({} of {})",
            report.intent_rate() * 100.0,
            report.intents_right,
            report.intent_questions
        );
        if verbose {
            for miss in &report.misses {
                println!("  {miss}");
            }
        }
        return Ok(());
    }
    let store = Store::open(&config.data_dir).await?;
    match command {
        KbCommand::Import { path, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let articles = read_articles(&path)?;
            for new in &articles {
                let slug =
                    kefu_relay::knowledge::check_article(new).with_context(|| format!("article “{}”", new.title))?;
                store.save_article(ws, &slug, new).await?;
            }
            println!("{} articles imported", articles.len());
        }
        KbCommand::Export { path, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let articles: Vec<NewArticle> = store
                .articles(ws)
                .await?
                .into_iter()
                .map(|a| NewArticle {
                    slug: Some(a.slug),
                    title: a.title,
                    body: a.body,
                    tags: a.tags,
                    intents: a.intents,
                    language: a.language,
                })
                .collect();
            let json = serde_json::to_string_pretty(&articles)?;
            if path.as_os_str() == "-" {
                println!("{json}");
            } else {
                std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("{} articles written to {}", articles.len(), path.display());
            }
        }
        KbCommand::List { workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let rows: Vec<Vec<String>> = store
                .articles(ws)
                .await?
                .into_iter()
                .map(|a| vec![a.id.to_string(), a.slug, a.language, a.intents.join(","), a.title])
                .collect();
            print_table(&["ID", "SLUG", "LANG", "INTENTS", "TITLE"], &rows);
        }
        KbCommand::Search { query, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let knowledge = kefu_relay::knowledge::Knowledge::load(&store, config.bot.intents()?).await?;
            let hits = knowledge.answers(ws, &query, 5)?;
            let terms = kefu_relay::kb::KnowledgeBase::terms(&query);
            let classification = knowledge.classifier.classify(&query, &[]);
            println!("terms: {}", terms.join(" "));
            println!(
                "intent: {:?} ({:.0}%: {})",
                classification.intent,
                classification.confidence * 100.0,
                classification.reason
            );
            for hit in hits {
                if let Some(a) = store.article(ws, hit.id).await? {
                    let excerpt = kefu_relay::kb::snippet(&a.body, &terms, 80);
                    println!("{:6.2}  {}  {}\n        {excerpt}", hit.score, a.slug, a.title);
                }
            }
        }
        KbCommand::Eval { .. } => unreachable!("handled above"),
    }
    store.close().await;
    Ok(())
}

async fn channel(config: Config, command: ChannelCommand) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir).await?;
    let print = |c: &kefu_relay::channels::ChannelRecord| {
        println!("channel {}: {} ({})", c.id, c.name, c.kind.as_str());
        if let Some(key) = &c.widget_key {
            println!("widget key:  {key}");
        }
        if let Some(secret) = &c.secret {
            println!("secret:      {secret}");
        }
        if let Some(url) = &c.webhook_url {
            println!("webhook url: {url}");
        }
        match c.kind {
            kefu_proto::frame::ChannelKind::App => println!("messages:    POST /api/v1/channels/{}/messages", c.id),
            kefu_proto::frame::ChannelKind::Social => println!("webhook in:  POST /hooks/{}", c.id),
            kefu_proto::frame::ChannelKind::Web => {}
        }
    };
    match command {
        ChannelCommand::Add { kind, name, group, priority, webhook_url, mapping, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let mapping = match mapping {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    Some(serde_json::from_str(&text).with_context(|| format!("mapping in {}", path.display()))?)
                }
                None => None,
            };
            let new = kefu_proto::api::NewChannel { kind, name, group, priority, webhook_url, mapping };
            let group = kefu_relay::http::channels::check_new_channel(&store, ws, &new).await?;
            let channel = store.add_channel(ws, &new, group, None).await?;
            print(&channel);
        }
        ChannelCommand::List { workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let mut rows = Vec::new();
            for c in store.channels(ws).await? {
                let counts = store.outbox_counts(c.id).await?;
                rows.push(vec![
                    c.id.to_string(),
                    c.kind.as_str().to_string(),
                    c.name.clone(),
                    c.group.map(|(_, slug)| slug).unwrap_or_else(|| "(default)".into()),
                    c.webhook_url.clone().unwrap_or_else(|| "(fetched)".into()),
                    format!("{} pending, {} dead", counts.pending, counts.dead),
                    if c.disabled { "disabled".into() } else { "enabled".into() },
                ]);
            }
            print_table(&["ID", "KIND", "NAME", "GROUP", "REPLIES", "OUTBOX", "STATE"], &rows);
        }
        ChannelCommand::Show { id, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            match store.channel(id).await? {
                Some(c) if c.workspace == ws => print(&c),
                _ => bail!("no channel {id} in workspace '{workspace}'"),
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn canned(config: Config, command: CannedCommand) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir).await?;
    match command {
        CannedCommand::Add { shortcut, title, body, agent, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let owner = match agent {
                Some(email) => Some(admin::agent_by_email(&store, ws, &email).await?.view.id),
                None => None,
            };
            let scope = if owner.is_some() { CannedScope::Personal } else { CannedScope::Workspace };
            let new = NewCannedReply { shortcut, title, body, scope };
            kefu_relay::http::workstation::check_canned(&new)?;
            let reply = store.add_canned_reply(ws, owner, &new).await?;
            println!("canned reply {} added: /{}", reply.id, reply.shortcut);
        }
        CannedCommand::List { workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let rows: Vec<Vec<String>> = store
                .all_canned_replies(ws)
                .await?
                .into_iter()
                .map(|(r, owner)| {
                    let body: String = r.body.chars().take(40).collect();
                    vec![
                        r.id.to_string(),
                        format!("/{}", r.shortcut),
                        r.title,
                        owner.unwrap_or_else(|| "(shared)".into()),
                        body,
                    ]
                })
                .collect();
            print_table(&["ID", "SHORTCUT", "TITLE", "OWNER", "TEXT"], &rows);
        }
        CannedCommand::Remove { id, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            if !store.remove_canned_reply(ws, id, None).await? {
                bail!("no canned reply {id}");
            }
            println!("canned reply {id} removed");
        }
    }
    store.close().await;
    Ok(())
}

async fn group(config: Config, command: GroupCommand) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir).await?;
    match command {
        GroupCommand::Add { slug, name, fallback, escalate_after, widen, default, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let new = kefu_proto::api::NewGroup {
                slug,
                name,
                fallback,
                escalate_after_secs: escalate_after,
                widen,
                is_default: default,
            };
            let group = admin::add_group(&store, ws, &new).await?;
            println!("group {} created", group.slug);
        }
        GroupCommand::List { workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let groups = store.groups(ws).await?;
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    let view = admin::group_view(g, &groups);
                    vec![
                        view.slug,
                        view.name,
                        view.fallback.unwrap_or_else(|| if view.widen { "(any agent)".into() } else { "-".into() }),
                        view.escalate_after_secs.map_or("-".into(), |s| format!("{s}s")),
                        if view.is_default { "yes".into() } else { "".into() },
                    ]
                })
                .collect();
            print_table(&["GROUP", "NAME", "FALLBACK", "ESCALATE AFTER", "DEFAULT"], &rows);
        }
        GroupCommand::Remove { slug, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            store.remove_group(ws, &slug).await?;
            println!("group {slug} removed");
        }
    }
    store.close().await;
    Ok(())
}

async fn agent(config: Config, command: AgentCommand) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir).await?;
    match command {
        AgentCommand::Add { email, name, role, password_stdin, capacity, skills, workspace } => {
            let password = if password_stdin {
                let mut input = String::new();
                std::io::stdin().read_to_string(&mut input).context("reading the password from stdin")?;
                let line = input.lines().next().unwrap_or("").to_string();
                if line.is_empty() {
                    bail!("no password on standard input");
                }
                Some(line)
            } else {
                None
            };
            let skills = skills.as_deref().map(admin::parse_skills).transpose()?;
            if let Some(skills) = &skills {
                // Every named group must exist before the agent is created.
                let ws = admin::show_workspace(&store, &workspace).await?.id;
                let groups = store.groups(ws).await?;
                if let Some(missing) = skills.iter().find(|s| !groups.iter().any(|g| g.slug == s.group)) {
                    bail!(
                        "no group '{}': create it first with `kefu-relay group add {}`",
                        missing.group,
                        missing.group
                    );
                }
            }
            let (id, generated) = admin::add_agent(&store, &workspace, &email, &name, role, password).await?;
            if capacity.is_some() || skills.is_some() {
                let ws = admin::show_workspace(&store, &workspace).await?.id;
                admin::update_agent(&store, ws, id, capacity, skills.as_deref()).await?;
            }
            println!("agent {id} created: {email} ({})", role.as_str());
            if let Some(password) = generated {
                println!("password: {password}");
            }
        }
        AgentCommand::Set { email, capacity, skills, workspace } => {
            let skills = skills.as_deref().map(admin::parse_skills).transpose()?;
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let agent = admin::agent_by_email(&store, ws, &email).await?;
            let agent = admin::update_agent(&store, ws, agent.view.id, capacity, skills.as_deref()).await?;
            println!(
                "agent {} updated: capacity {}, skills {}",
                agent.view.email,
                agent.view.max_concurrent,
                skills_text(&agent.view.skills)
            );
        }
        AgentCommand::Revoke { email, workspace } => {
            let ws = admin::show_workspace(&store, &workspace).await?.id;
            let agent = admin::agent_by_email(&store, ws, &email).await?;
            let revoked = store.revoke_agent_tokens(ws, agent.view.id, "cli").await?;
            println!("{revoked} tokens of {} revoked", agent.view.email);
        }
        AgentCommand::List { workspace } => {
            let agents = admin::list_agents(&store, &workspace).await?;
            let rows: Vec<Vec<String>> = agents
                .into_iter()
                .map(|a| {
                    let v = a.view;
                    vec![
                        v.id.to_string(),
                        v.email,
                        v.name,
                        v.role.as_str().into(),
                        v.max_concurrent.to_string(),
                        skills_text(&v.skills),
                    ]
                })
                .collect();
            print_table(&["ID", "EMAIL", "NAME", "ROLE", "CAPACITY", "SKILLS"], &rows);
        }
    }
    store.close().await;
    Ok(())
}
