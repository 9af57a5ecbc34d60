//! The gateway's flags; each has an environment variable `SWITCHYARD_<FLAG>` (lists
//! comma-separated).

use crate::connections::ConnectionLimits;
use crate::rules::Selection;
use crate::sources::ApiSources;
use crate::upstream::UpstreamOptions;
use crate::upstreams::BackendSpec;
use ipnet::IpNet;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_common::tls::{ClientFiles, ClientTls, ServerFiles, TlsError};
use switchyard_common::units::{parse_duration, parse_mem_size};

/// What the gateway serves and where calls go: shared by `gateway`, `switchyard gateway`,
/// `switchyard serve` and `switchyard openapi`.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// A gRPC backend, `URL` (the default) or `SERVICE_GLOB=URL` for the services the glob
    /// matches (`user.v1.*=http://users:50051`; the most specific key wins); repeat for more,
    /// the same key twice makes a set that calls are spread over.
    #[arg(
        long = "backend",
        env = "SWITCHYARD_BACKEND",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    pub backends: Vec<BackendSpec>,
    /// A FileDescriptorSet to serve (`protoc --include_imports -o FILE`, `buf build -o FILE`);
    /// repeatable. With no --descriptor-set, --proto or --reflect, the built-in reference
    /// services are served.
    #[arg(long = "descriptor-set", env = "SWITCHYARD_DESCRIPTOR_SET", value_delimiter = ',')]
    pub descriptor_sets: Vec<PathBuf>,
    /// A `.proto` file to compile and serve; repeatable. google/api, google/rpc and the
    /// well-known types are built in.
    #[arg(long = "proto", env = "SWITCHYARD_PROTO", value_delimiter = ',')]
    pub protos: Vec<PathBuf>,
    /// Where --proto files and their imports are found; repeatable (default: the current
    /// folder).
    #[arg(long = "proto-path", env = "SWITCHYARD_PROTO_PATH", value_delimiter = ',')]
    pub proto_paths: Vec<PathBuf>,
    /// Load the services every backend lists through gRPC server reflection.
    #[arg(long, env = "SWITCHYARD_REFLECT")]
    pub reflect: bool,
    /// With --reflect, ask the backends again this often (e.g. 30s); off by default.
    #[arg(long, env = "SWITCHYARD_REFLECT_INTERVAL", value_parser = parse_duration)]
    pub reflect_interval: Option<Duration>,
    /// Serve only the services matching this glob (`pkg.v1.*`); repeatable. Default: every
    /// service with at least one google.api.http binding.
    #[arg(long = "service", env = "SWITCHYARD_SERVICE", value_delimiter = ',')]
    pub services: Vec<String>,
    /// Give every method without a google.api.http binding `POST /{package.Service}/{Method}`
    /// with the whole body as the request.
    #[arg(long, env = "SWITCHYARD_DEFAULT_BINDINGS")]
    pub default_bindings: bool,
}

impl ApiArgs {
    /// The sources of the API.
    pub fn sources(&self) -> ApiSources {
        ApiSources {
            descriptor_sets: self.descriptor_sets.clone(),
            protos: self.protos.clone(),
            proto_paths: self.proto_paths.clone(),
            reflect: self.reflect,
        }
    }

    /// Which services are served.
    pub fn selection(&self) -> Selection {
        Selection { services: self.services.clone(), default_bindings: self.default_bindings }
    }
}

/// The standalone gateway's command line: where it listens, and its settings. `switchyard
/// serve` names the address `--http-listen` instead (same environment variable).
#[derive(clap::Args, Debug, Clone)]
pub struct Command {
    /// Address the REST/JSON server listens on (HTTP/1.1 and h2c on the same port).
    #[arg(long, env = "SWITCHYARD_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); reloaded on SIGHUP.
    #[arg(long, env = "SWITCHYARD_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "SWITCHYARD_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, env = "SWITCHYARD_GATEWAY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    pub config: Config,
}

impl Command {
    /// Binds, loads the API and serves until SIGINT/SIGTERM. A configuration the gateway
    /// cannot serve is an error the caller should end with exit status 2 (see [`exit_status`]).
    pub async fn run(mut self) -> anyhow::Result<()> {
        self.apply_tls()?;
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let gateway = crate::server::gateway(&self.config).await?;
        let backends: Vec<&str> = gateway.api().upstreams().all().iter().map(|u| u.name()).collect();
        tracing::info!(addr = %listener.local_addr()?, backends = ?backends, "gateway listening");
        crate::server::serve_gateway(listener, gateway, &self.config, switchyard_common::shutdown::signal()).await
    }
}

impl Command {
    /// Moves the listener's TLS flags into the settings.
    pub fn apply_tls(&mut self) -> Result<(), crate::api::ConfigError> {
        self.config.tls =
            ServerFiles::from_flags(self.tls_cert.as_ref(), self.tls_key.as_ref(), self.tls_client_ca.as_ref())?;
        Ok(())
    }
}

/// The exit status for an error ending the process: 2 for a configuration the gateway cannot
/// serve (as clap does for bad flags), 1 for anything else.
pub fn exit_status(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<crate::api::ConfigError>().is_some() { 2 } else { 1 }
}

/// How to run the gateway (the address it listens on is the command's own flag).
#[derive(clap::Args, Debug, Clone)]
#[group(id = "gateway_settings")]
pub struct Config {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Deadline of unary calls when the client sends no Grpc-Timeout header (e.g. 30s, 500ms;
    /// 0 for none). Streaming calls only get the client's own Grpc-Timeout.
    #[arg(long, env = "SWITCHYARD_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Largest accepted request body of a unary route, and of one message of a streaming one
    /// (an NDJSON line, a WebSocket frame), e.g. 4MiB. Keep it at or below the backend's
    /// message size limit (4 MiB for tonic and grpc-go by default).
    #[arg(long, env = "SWITCHYARD_MAX_BODY_SIZE", default_value = "4MiB", value_parser = parse_mem_size)]
    pub max_body_size: usize,
    /// Largest request header section (names, values and 32 bytes a header, as HTTP/2 counts
    /// them); larger requests get 431. Keep it below the backend's header list limit.
    #[arg(long, env = "SWITCHYARD_MAX_HEADER_SIZE", default_value = "16KiB", value_parser = parse_mem_size)]
    pub max_header_size: usize,
    /// Time a client has to send a request's headers, from their first byte; slower
    /// connections are closed.
    #[arg(long, env = "SWITCHYARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client connection with no request in flight is kept open.
    #[arg(long, env = "SWITCHYARD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 PINGs to clients and to the backend (a peer that does not answer
    /// within the same time is dropped); 0 for none.
    #[arg(long, env = "SWITCHYARD_HTTP2_KEEPALIVE_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// Longest pause in the arrival of a request body; a body that stops for longer gets 408.
    #[arg(long, env = "SWITCHYARD_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Client connections served at once; further ones are answered 503 and closed.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// HTTP/2 connections to the backend that calls are spread over (more open while all are at
    /// the backend's concurrent stream limit).
    #[arg(long, env = "SWITCHYARD_BACKEND_CONNECTIONS", default_value_t = 2)]
    pub backend_connections: usize,
    /// Calls in flight to the backend at once, live streams included.
    #[arg(long, env = "SWITCHYARD_BACKEND_MAX_CONCURRENCY", default_value_t = 1024)]
    pub backend_max_concurrency: usize,
    /// Calls that may wait for one of those slots; beyond that a call gets 503 at once.
    #[arg(long, env = "SWITCHYARD_BACKEND_QUEUE", default_value_t = 512)]
    pub backend_queue: usize,
    /// How often every backend's grpc.health.v1 service is asked whether it serves; one that
    /// does not leaves its balanced set until it does again. 0: no checks.
    #[arg(long, env = "SWITCHYARD_HEALTH_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_check_interval: Duration,
    /// Requests per second each client (by address) may make; beyond, 429 with Retry-After.
    /// Default: no limit.
    #[arg(long, env = "SWITCHYARD_RATE_LIMIT")]
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// One log line per request (method, route, status, gRPC code, latency, request id, bytes)
    /// at info level: `on` or `off`.
    #[arg(long, env = "SWITCHYARD_ACCESS_LOG", default_value = "on", value_parser = ["on", "off"])]
    pub access_log: String,
    /// Compress requests to the backend (`gzip` or `zstd`); responses are accepted compressed
    /// either way. Off by default: on loopback it costs more CPU than it saves.
    #[arg(long, env = "SWITCHYARD_BACKEND_COMPRESSION", value_parser = ["gzip", "zstd"])]
    pub backend_compression: Option<String>,
    /// Proxies (CIDR, e.g. 10.0.0.0/8) whose X-Forwarded-For, X-Forwarded-Proto,
    /// X-Forwarded-Host and Forwarded headers are kept and appended to; from anyone else they
    /// are replaced.
    #[arg(long = "trusted-proxy", env = "SWITCHYARD_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
    /// Worker threads of the gateway's runtime. Default: half the cores (at least one), since a
    /// gateway usually shares its machine with the backend — on 2 cores one thread that never
    /// hands requests to another thread served ~30% more requests than two.
    #[arg(long, env = "SWITCHYARD_GATEWAY_THREADS")]
    pub threads: Option<usize>,
    /// How long a worker thread spins before it sleeps while at most one request is in progress
    /// (see `gateway::idle`); `0` turns it off. The spin stops as soon as a socket has input, so
    /// it buys latency at low load (a median a third to a half lower at concurrency 1 on a 2-core
    /// VM) for CPU (up to twice the spin per request there); with more requests in progress it
    /// never runs. Turn it off where CPU is billed or capped by the microsecond.
    #[arg(long, env = "SWITCHYARD_IDLE_SPIN", default_value = "200us", value_parser = parse_duration)]
    pub idle_spin: Duration,
    /// Origins that browsers may call the API from (CORS), comma-separated or repeated; `*` for
    /// any. Default: none, so only same-origin pages can.
    #[arg(long = "cors-origin", env = "SWITCHYARD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// The CA (PEM) `https://` backends' certificates must chain to. Default: the system's.
    #[arg(long, env = "SWITCHYARD_BACKEND_CA")]
    pub backend_ca: Option<PathBuf>,
    /// A client certificate (PEM) the gateway shows `https://` backends (mutual TLS).
    #[arg(long, env = "SWITCHYARD_BACKEND_CLIENT_CERT", requires = "backend_key")]
    pub backend_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "SWITCHYARD_BACKEND_CLIENT_KEY", requires = "backend_cert")]
    pub backend_key: Option<PathBuf>,
    /// TLS for the listener (its flags are the command's: `--tls-…` or `--http-tls-…`).
    #[arg(skip)]
    pub tls: Option<ServerFiles>,
}

impl Config {
    /// A config for `backend` with every other setting at its default.
    pub fn for_backend(backend: impl Into<String>) -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        // The defaults as clap declares them (environment variables included).
        let mut config = Defaults::parse_from(["gateway"]).config;
        config.api.backends = vec![BackendSpec { key: None, url: backend.into() }];
        config
    }

    /// The bounds on client connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            http2_keepalive: Some(self.http2_keepalive_interval).filter(|d| !d.is_zero()),
            max_header_size: self.max_header_size,
            rate_limit: self.rate_limit,
        }
    }

    /// How to use the backend's connections. TLS settings are read when a TLS flag is given or
    /// a backend is `https://`.
    pub fn upstream_options(&self) -> Result<UpstreamOptions, TlsError> {
        let wants_tls = self.backend_ca.is_some()
            || self.backend_cert.is_some()
            || self.api.backends.iter().any(|b| b.url.starts_with("https://"));
        let tls = if wants_tls {
            Some(ClientTls::load(ClientFiles {
                ca: self.backend_ca.clone(),
                cert: self.backend_cert.clone(),
                key: self.backend_key.clone(),
            })?)
        } else {
            None
        };
        Ok(UpstreamOptions {
            tls,
            connections: self.backend_connections.max(1),
            max_concurrency: self.backend_max_concurrency.max(1),
            queue: self.backend_queue,
            keepalive: Some(self.http2_keepalive_interval).filter(|d| !d.is_zero()),
            compression: match self.backend_compression.as_deref() {
                Some("gzip") => Some(tonic::codec::CompressionEncoding::Gzip),
                Some("zstd") => Some(tonic::codec::CompressionEncoding::Zstd),
                _ => None,
            },
            ..UpstreamOptions::default()
        })
    }

    /// The runtime this gateway runs on (see `threads`).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.threads.unwrap_or(cores / 2).max(1);
        let spin = self.idle_spin;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .on_thread_park(crate::idle::park_hook(spin))
            .enable_all()
            .build()
    }
}
