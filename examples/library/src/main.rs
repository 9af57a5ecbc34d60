//! `library-server --listen ADDR`: the example service, for the gateway to front.

use clap::Parser;

#[derive(Parser)]
#[command(about = "An example gRPC service (books on shelves) with server reflection")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LIBRARY_LISTEN", default_value = "127.0.0.1:50061")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("library-server listening on {}", listener.local_addr()?);
    library_example::serve(listener, switchyard_common::shutdown::signal()).await
}
