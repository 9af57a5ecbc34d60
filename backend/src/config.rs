//! The backend's flags; each has an environment variable so that deployments need no wrapper.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The standalone backend's command line: where it listens, and its settings. `switchyard
/// serve` names the address `--grpc-listen` instead (same environment variable).
#[derive(clap::Args, Debug, Clone)]
pub struct Command {
    /// Address the gRPC server listens on (HTTP/2, plaintext).
    #[arg(long, env = "SWITCHYARD_BACKEND_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Address for Prometheus metrics at `/metrics` (calls per method and gRPC code, latency);
    /// off unless set. (`switchyard serve` shows them at the gateway's `/metrics`.)
    #[arg(long, env = "SWITCHYARD_BACKEND_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve TLS with this certificate chain (PEM); reloaded on SIGHUP.
    #[arg(long, env = "SWITCHYARD_BACKEND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "SWITCHYARD_BACKEND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "SWITCHYARD_BACKEND_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    pub telemetry: switchyard_common::telemetry::TelemetryArgs,
    #[command(flatten)]
    pub config: Config,
}

impl Command {
    /// Binds the addresses and serves until `shutdown`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.config.tls = switchyard_common::tls::ServerFiles::from_flags(
            self.tls_cert.as_ref(),
            self.tls_key.as_ref(),
            self.tls_client_ca.as_ref(),
        )?;
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        tracing::info!(
            addr = %listener.local_addr()?,
            database = %crate::store::redacted(&self.config.database),
            "backend listening"
        );
        if let Some(addr) = self.metrics_listen {
            crate::metrics::listen(addr).await?;
        }
        let telemetry = self.telemetry.init("switchyard-backend")?;
        let served = crate::run(listener, &self.config, shutdown).await;
        if let Some(t) = telemetry {
            t.shutdown();
        }
        served
    }
}

/// How to run the backend (the address it listens on is the command's own flag).
#[derive(clap::Args, Debug, Clone)]
#[group(id = "backend_settings")]
pub struct Config {
    /// Database URL: sqlite://PATH (the file and its folder are created when missing), or
    /// postgres://USER:PASSWORD@HOST:PORT/DB for several backend instances on one database.
    #[arg(long, env = "SWITCHYARD_DATABASE", default_value = "sqlite://data/switchyard.db")]
    pub database: String,
    /// Folder for uploaded files (created when missing).
    #[arg(long, env = "SWITCHYARD_UPLOAD_DIR", default_value = "data/uploads")]
    pub upload_dir: PathBuf,
    /// Largest accepted upload, in bytes (suffixes KiB, MiB, GiB allowed).
    #[arg(long, env = "SWITCHYARD_MAX_UPLOAD_SIZE", default_value = "1GiB", value_parser = switchyard_common::units::parse_size)]
    pub max_upload_size: u64,
    /// Compress responses (`gzip` or `zstd`) for clients that accept it; requests are accepted
    /// compressed either way. Off by default: on loopback it costs more CPU than it saves.
    #[arg(long, env = "SWITCHYARD_COMPRESSION", value_parser = ["gzip", "zstd"])]
    pub compression: Option<String>,
    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
    /// TLS for the gRPC port (its flags are the command's: `--tls-…` or `--grpc-tls-…`).
    #[arg(skip)]
    pub tls: Option<switchyard_common::tls::ServerFiles>,
}

impl Config {
    /// A config with every setting at its default but the database and upload folder, which
    /// live under `dir`.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Config {
            database: format!("sqlite://{}", dir.join("switchyard.db").display()),
            upload_dir: dir.join("uploads"),
            max_upload_size: 1 << 30,
            compression: None,
            auth: Default::default(),
            tls: None,
        }
    }
}
