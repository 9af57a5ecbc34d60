//! The backend's flags; each has an environment variable so that deployments need no wrapper.

use std::net::SocketAddr;

/// How to run the backend.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Address the gRPC server listens on (HTTP/2, plaintext).
    #[arg(
        long,
        env = "SWITCHYARD_BACKEND_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,
    /// Database URL: sqlite://PATH (the file and its folder are created when missing).
    #[arg(
        long,
        env = "SWITCHYARD_DATABASE",
        default_value = "sqlite://data/switchyard.db"
    )]
    pub database: String,
}
