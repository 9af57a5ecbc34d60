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
    switchyard_common::logging::init();
    let Args { command } = Args::parse();
    let result = command.run(switchyard_common::shutdown::signal()).await;
    switchyard_common::logging::flush();
    result
}
