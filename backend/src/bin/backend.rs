//! The standalone backend: `backend --listen ADDR --database URL`.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Switchyard's reference gRPC backend")]
struct Args {
    #[command(flatten)]
    command: backend::config::Command,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let Args { command } = Args::parse();
    let listener = tokio::net::TcpListener::bind(command.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, database = %command.config.database, "backend listening");
    backend::run(listener, &command.config, switchyard_common::shutdown::signal()).await
}
