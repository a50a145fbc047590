//! `kefu-relay`: the relay's command line. Parses arguments, sets up logging, and hands
//! over to the library.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kefu_proto::frame::Role;
use kefu_relay::config::Config;
use kefu_relay::store::DEFAULT_WORKSPACE;
use kefu_relay::{Store, admin};

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
    /// Show workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
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
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Show a workspace and its public widget key.
    Show {
        /// Workspace slug.
        #[arg(default_value = DEFAULT_WORKSPACE)]
        slug: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { listen } => serve(config, listen).await,
            Command::Agent { command } => agent(config, command).await,
            Command::Workspace { command: WorkspaceCommand::Show { slug } } => {
                let store = Store::open(&config.data_dir).await?;
                let workspace = admin::show_workspace(&store, &slug).await?;
                println!("workspace:  {} ({})", workspace.slug, workspace.name);
                println!("widget key: {}", workspace.widget_key);
                store.close().await;
                Ok(())
            }
        }
    })
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
        eprintln!("kefu relay on http://{}  (data: {})", listener.local_addr()?, config.data_dir.display());
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

async fn agent(config: Config, command: AgentCommand) -> anyhow::Result<()> {
    let store = Store::open(&config.data_dir).await?;
    match command {
        AgentCommand::Add { email, name, role, password_stdin, workspace } => {
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
            let (id, generated) = admin::add_agent(&store, &workspace, &email, &name, role, password).await?;
            println!("agent {id} created: {email} ({})", role.as_str());
            if let Some(password) = generated {
                println!("password: {password}");
            }
        }
        AgentCommand::List { workspace } => {
            let agents = admin::list_agents(&store, &workspace).await?;
            println!("{:<6} {:<30} {:<24} {:<11} CAPACITY", "ID", "EMAIL", "NAME", "ROLE");
            for a in agents {
                let v = a.view;
                println!("{:<6} {:<30} {:<24} {:<11} {}", v.id, v.email, v.name, v.role.as_str(), v.max_concurrent);
            }
        }
    }
    store.close().await;
    Ok(())
}
