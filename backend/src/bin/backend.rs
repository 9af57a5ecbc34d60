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
    command.run(switchyard_common::shutdown::signal()).await
}
