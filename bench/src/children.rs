//! The servers under test, as child processes of this executable's own subcommands on
//! ephemeral loopback ports, with a fresh temporary database. Dropping [`Children`] stops them.

use crate::args::Peer;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A running server.
pub struct Server {
    /// What it is: "backend", "gateway", "legacy-rest", a peer's name.
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The servers of a default run.
pub struct Children {
    pub backend: Server,
    /// More backend instances on the same database ("backend-2", …).
    pub more_backends: Vec<Server>,
    pub gateway: Server,
    /// The same gateway with `--access-log off`.
    pub quiet: Server,
    pub legacy: Server,
    /// A migration-mode gateway in front of the legacy service, every route on legacy.
    pub passthrough: Server,
    /// A migration-mode gateway shadowing the read routes.
    pub shadow: Server,
    /// Other gateways in front of the same backend (`--peer`).
    pub peers: Vec<Server>,
}

/// The plan of the passthrough gateway: every benchmarked route stays on the legacy service.
const PASSTHROUGH_PLAN: &str = r#"
[[route]]
match = "GET /api/v1/users/{user_id}"
mode = "legacy"
[[route]]
match = "GET /api/v1/users"
mode = "legacy"
[[route]]
match = "GET /api/v1/users/{user_id}/orders"
mode = "legacy"
[[route]]
match = "POST /api/v1/users"
mode = "legacy"
[[route]]
match = "POST /api/v1/uploads"
mode = "legacy"
"#;

/// The plan of the shadow gateway: the read routes shadowed; the writes stay on legacy
/// (shadowing them would write twice).
const SHADOW_PLAN: &str = r#"
[[route]]
match = "GET /api/v1/users/{user_id}"
mode = "shadow"
rename = { created_at = "createdAt", next_page_token = "nextPageToken" }
[[route]]
match = "GET /api/v1/users"
mode = "shadow"
rename = { created_at = "createdAt", next_page_token = "nextPageToken" }
[[route]]
match = "GET /api/v1/users/{user_id}/orders"
mode = "shadow"
[[route]]
match = "POST /api/v1/users"
mode = "legacy"
[[route]]
match = "POST /api/v1/uploads"
mode = "legacy"
"#;

/// An ephemeral loopback port: bound, read and released (the child binds it right after).
fn free_port() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

/// Starts one of this executable's own servers; `args` hold its `--listen` address.
async fn spawn(name: &str, args: &[String], dir: &Path) -> anyhow::Result<Server> {
    let addr: SocketAddr = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .ok_or_else(|| anyhow::anyhow!("no --listen"))?
        .parse()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(args);
    start(name, command, addr, dir).await
}

/// Starts a peer gateway in front of `backend`, on a fresh port.
async fn spawn_peer(peer: &Peer, backend: SocketAddr, dir: &Path) -> anyhow::Result<Server> {
    let addr = free_port()?;
    let argv = peer.command(&backend.to_string(), &addr.to_string());
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    start(&peer.name, command, addr, dir).await
}

/// Runs `command` with its output to `dir/NAME.log` and waits until `addr` accepts connections.
async fn start(name: &str, mut command: Command, addr: SocketAddr, dir: &Path) -> anyhow::Result<Server> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = command
        // As deployed by default: info, so gateways write their access log (to the file).
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
    let server = Server { name: name.to_owned(), addr, child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("{name} did not start; see {}", dir.join(format!("{name}.log")).display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(server)
}

impl Children {
    /// Starts backend, gateway and legacy REST service over one database in `dir`.
    /// `db` is the database URL every server uses; `instances` backends share it.
    pub async fn start(dir: &Path, peers: &[Peer], db: &str, instances: u32) -> anyhow::Result<Self> {
        let db = db.to_owned();
        let s = |p: &Path| p.display().to_string();
        let backend_args = |addr: SocketAddr| -> Vec<String> {
            vec![
                "backend".into(),
                "--listen".into(),
                addr.to_string(),
                "--database".into(),
                db.clone(),
                "--upload-dir".into(),
                s(&dir.join("uploads")),
            ]
        };
        let backend = spawn("backend", &backend_args(free_port()?), dir).await?;
        let mut more_backends = Vec::new();
        for n in 2..=instances {
            more_backends.push(spawn(&format!("backend-{n}"), &backend_args(free_port()?), dir).await?);
        }
        // Every gateway is given every backend instance: a balanced set.
        let backends: Vec<String> = std::iter::once(&backend)
            .chain(&more_backends)
            .flat_map(|b| ["--backend".to_owned(), format!("http://{}", b.addr)])
            .collect();
        let gateway_args = |extra: &[&str]| -> anyhow::Result<Vec<String>> {
            let mut a = vec!["gateway".into(), "--listen".into(), free_port()?.to_string()];
            a.extend(backends.iter().cloned());
            a.extend(extra.iter().map(|e| (*e).to_owned()));
            Ok(a)
        };
        let gateway = spawn("gateway", &gateway_args(&[])?, dir).await?;
        let quiet = spawn("gateway-no-access-log", &gateway_args(&["--access-log", "off"])?, dir).await?;
        let legacy = spawn(
            "legacy-rest",
            &[
                "legacy-rest".into(),
                "--listen".into(),
                free_port()?.to_string(),
                "--database".into(),
                db.clone(),
                "--upload-dir".into(),
                s(&dir.join("legacy-uploads")),
            ],
            dir,
        )
        .await?;
        let passthrough_plan = dir.join("passthrough.toml");
        std::fs::write(&passthrough_plan, PASSTHROUGH_PLAN)?;
        let shadow_plan = dir.join("shadow.toml");
        std::fs::write(&shadow_plan, SHADOW_PLAN)?;
        let legacy_url = format!("http://{}", legacy.addr);
        let migration_gateway =
            |plan: &Path| gateway_args(&["--legacy", &legacy_url, "--migration", &plan.display().to_string()]);
        let passthrough = spawn("passthrough", &migration_gateway(&passthrough_plan)?, dir).await?;
        let shadow = spawn("shadow", &migration_gateway(&shadow_plan)?, dir).await?;
        let mut started = Vec::new();
        for p in peers {
            started.push(spawn_peer(p, backend.addr, dir).await?);
        }
        Ok(Children { backend, more_backends, gateway, quiet, legacy, passthrough, shadow, peers: started })
    }

    /// Every server, for per-process figures.
    pub fn all(&self) -> Vec<&Server> {
        let ours = [&self.backend, &self.gateway, &self.quiet, &self.legacy, &self.passthrough, &self.shadow];
        ours.into_iter().chain(&self.more_backends).chain(&self.peers).collect()
    }

    fn all_mut(&mut self) -> Vec<&mut Server> {
        let ours = [
            &mut self.backend,
            &mut self.gateway,
            &mut self.quiet,
            &mut self.legacy,
            &mut self.passthrough,
            &mut self.shadow,
        ];
        ours.into_iter().chain(&mut self.more_backends).chain(&mut self.peers).collect()
    }

    /// Stops the servers: SIGTERM, a moment to finish, then SIGKILL.
    pub async fn stop(mut self) {
        for s in self.all_mut() {
            if let Some(pid) = s.child.id() {
                // SAFETY: signalling our own child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
        for s in self.all_mut() {
            if tokio::time::timeout(Duration::from_secs(5), s.child.wait()).await.is_err() {
                let _ = s.child.kill().await;
            }
        }
    }
}
