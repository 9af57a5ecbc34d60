//! The standalone gateway: `gateway --listen ADDR --backend URL [--proto FILE ...]`.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Switchyard's REST/JSON to gRPC gateway")]
struct Args {
    #[command(flatten)]
    command: gateway::config::Command,
}

fn main() {
    switchyard_common::logging::init();
    let Args { command } = Args::parse();
    let result = command.config.runtime().map_err(anyhow::Error::from).and_then(|rt| rt.block_on(command.run()));
    switchyard_common::logging::flush();
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(gateway::config::exit_status(&e));
    }
}
