//! `kefu`: the agent workstation's command line.
//!
//! The full-screen workstation is built in its own module tree; for now the binary offers
//! the commands that do not need a screen.

use clap::{Parser, Subcommand};

/// kefu: the terminal workstation for customer-service agents.
#[derive(Parser)]
#[command(name = "kefu", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that a relay answers and print its version and database health.
    Status {
        /// The relay's base URL.
        #[arg(long, env = "KEFU_RELAY", default_value = "http://127.0.0.1:7700")]
        relay: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Status { relay } => {
            let url = format!("{}/healthz", relay.trim_end_matches('/'));
            let client = reqwest::Client::builder().build()?;
            let health: kefu_proto::api::Health = client
                .get(&url)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the relay at {relay}: {e}"))?
                .json()
                .await?;
            println!("relay {relay}: {} (version {}, database {})", health.status, health.version, health.database);
            if health.status != "ok" {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
