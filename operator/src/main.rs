//! `shardline-operator`: parses flags, sets up logging and signal handling,
//! and hands over to [`shardline_operator::run::run`] (or prints rendered
//! objects for `render`).

use clap::Parser;
use shardline_operator::run::{Cli, Command};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Render { file, namespace }) = &cli.command {
        let text = std::fs::read_to_string(file)?;
        print!("{}", shardline_operator::render::render(&text, namespace)?);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .json()
        .init();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    shardline_operator::run::run(cli.run, rx).await?;
    Ok(())
}
