//! `switchyard bench`: the same calls over native gRPC, the gateway (HTTP/1.1 and HTTP/2) and a
//! legacy REST service, side by side in one run, interleaved so machine drift hits every path
//! alike.
//!
//! Run with `cargo run --release -- bench` (add `--help` for the flags).
//!
//! # Layout
//! - [`args`]: the flags;
//! - [`children`]: backend, gateway and legacy REST as child processes of this executable;
//! - [`database`]: the schema a PostgreSQL run creates and drops;
//! - [`legacy`]: the legacy REST service (`switchyard legacy-rest`);
//! - [`scenario`]: the scenarios, the paths, and one request of each;
//! - [`stats`]: histograms and per-cell results;
//! - [`payload`]: bytes on the wire, JSON against protobuf;
//! - [`proc`]: CPU and memory of the server processes;
//! - [`idle`]: the gateway's memory per idle client connection;
//! - [`report`] and [`plot`]: the table, the summary, the JSON and the SVG.

pub mod args;
pub mod children;
pub mod database;
pub mod idle;
pub mod legacy;
pub mod payload;
pub mod plot;
pub mod proc;
pub mod report;
pub mod scenario;
pub mod stats;

pub use args::BenchArgs;

use crate::children::Children;
use crate::report::Report;
use crate::scenario::{Client, Fixture, PathKind, Rng, Scenario};
use crate::stats::{CellResult, Recorder, Round};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_proto::order::v1::order_service_client::OrderServiceClient;
use switchyard_proto::order::v1::{CreateOrderRequest, GetOrdersRequest, OrderItem};
use switchyard_proto::user::v1::user_service_client::UserServiceClient;
use switchyard_proto::user::v1::{CreateUserRequest, GetUserRequest, ListUsersRequest};
use tonic::transport::{Channel, Endpoint};

/// Where the paths point.
struct Targets {
    grpc: String,
    /// More backend instances native gRPC balances over.
    more_grpc: Vec<String>,
    gateway: String,
    /// The gateway without access log, when the bench started it.
    quiet: Option<String>,
    legacy: Option<String>,
    /// Migration-mode gateways in front of the legacy service: every route passed through, and
    /// the read routes shadowed.
    passthrough: Option<String>,
    shadow: Option<String>,
    /// Other gateways in front of the same backend, by name.
    peers: Vec<(&'static str, String)>,
}

fn authority(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// Runs the whole comparison, prints the table and writes the requested files.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let args = args.resolved();
    if args.backend_instances > 1 && !args.database.as_deref().is_some_and(backend::store::is_postgres) {
        anyhow::bail!("--backend-instances above 1 needs --database postgres://…: SQLite serves one process");
    }
    let dir = tempfile::tempdir()?;
    let mut schema_guard: Option<backend::store::PostgresSchema> = None;
    let (targets, children) = match (&args.grpc, &args.rest) {
        (Some(g), Some(r)) => (
            Targets {
                grpc: g.clone(),
                more_grpc: Vec::new(),
                gateway: r.clone(),
                quiet: None,
                legacy: args.legacy.clone(),
                passthrough: None,
                shadow: None,
                peers: Vec::new(),
            },
            None,
        ),
        _ => {
            eprintln!("starting backend, gateway and legacy REST service in {}", dir.path().display());
            if let Some(url) = &args.database {
                schema_guard = Some(database::create(url).await?);
            }
            let db = match &schema_guard {
                Some(schema) => schema.url.clone(),
                None => format!("sqlite://{}", dir.path().join("bench.db").display()),
            };
            let c = match Children::start(dir.path(), &args.peers, &db, args.backend_instances).await {
                Ok(c) => c,
                Err(e) => {
                    database::release(&mut schema_guard).await;
                    return Err(e);
                }
            };
            let t = Targets {
                grpc: format!("http://{}", c.backend.addr),
                more_grpc: c.more_backends.iter().map(|b| format!("http://{}", b.addr)).collect(),
                gateway: format!("http://{}", c.gateway.addr),
                quiet: Some(format!("http://{}", c.quiet.addr)),
                legacy: Some(format!("http://{}", c.legacy.addr)),
                passthrough: Some(format!("http://{}", c.passthrough.addr)),
                shadow: Some(format!("http://{}", c.shadow.addr)),
                // Leaked once per run: a path's name lives as long as the run's report.
                peers: c
                    .peers
                    .iter()
                    .map(|p| (&*Box::leak(p.name.clone().into_boxed_str()), format!("http://{}", p.addr)))
                    .collect(),
            };
            (t, Some(c))
        }
    };
    if let (Some(n), Some(c)) = (args.idle_connections, &children) {
        let pid = c.gateway.pid().ok_or_else(|| anyhow::anyhow!("no gateway process"))?;
        let cost = idle::measure(pid, &authority(&targets.gateway), n).await;
        if let Some(c) = children {
            c.stop().await;
        }
        database::release(&mut schema_guard).await;
        let cost = cost?;
        println!(
            "gateway memory per idle keep-alive connection: {:.1} KiB ({} connections, RSS {} -> {} KiB)",
            cost.kib_per_connection, cost.connections, cost.rss_before_kib, cost.rss_after_kib
        );
        return Ok(());
    }
    let outcome = tokio::select! {
        r = measure(&args, &targets, children.as_ref(), dir.path()) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(c) = children {
        c.stop().await;
    }
    database::release(&mut schema_guard).await;
    let report = outcome?;
    print!("{}", report.table());
    if let Some(file) = &args.json {
        std::fs::write(file, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("wrote {}", file.display());
    }
    if let Some(file) = &args.plot {
        plot::draw(&report, &args.concurrency, file)?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {cpu}; loopback, shared by the load generator and all servers")
}

async fn seed(channel: &Channel, args: &BenchArgs, run_id: &str) -> anyhow::Result<Fixture> {
    let users = UserServiceClient::new(channel.clone());
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..100u32)
        .map(|i| {
            let mut users = users.clone();
            async move {
                let req = CreateUserRequest {
                    name: format!("Seed {i}"),
                    email: format!("seed-{run_id}-{i}@example.com"),
                    age: 20 + (i % 50) as i32,
                };
                Ok(users.create_user(req).await?.into_inner().id)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let user_ids = ids.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let orders_user = user_ids[0].clone();
    let orders = OrderServiceClient::new(channel.clone());
    let made: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.orders)
        .map(|i| {
            let mut orders = orders.clone();
            let user_id = orders_user.clone();
            async move {
                let items = vec![
                    OrderItem {
                        product_id: format!("p{}", i % 17),
                        name: "Widget".into(),
                        quantity: 1 + (i % 5) as i32,
                        price: 9.99,
                    },
                    OrderItem { product_id: "p-gift".into(), name: "Gift wrap".into(), quantity: 1, price: 2.5 },
                ];
                orders.create_order(CreateOrderRequest { user_id, items }).await?;
                Ok(())
            }
        })
        .buffered(16)
        .collect()
        .await;
    made.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let mut data = vec![0u8; args.upload_mib as usize * 1024 * 1024];
    let mut rng = Rng::new(args.seed);
    for chunk in data.chunks_mut(8) {
        let v = (rng.below(usize::MAX) as u64).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    Ok(Fixture {
        user_ids,
        orders_user,
        upload: Bytes::from(data),
        run_id: run_id.to_owned(),
        counter: AtomicU64::new(0),
    })
}

async fn payloads(channel: &Channel, fx: &Fixture) -> anyhow::Result<Vec<payload::Sizes>> {
    let mut users = UserServiceClient::new(channel.clone());
    let get = GetUserRequest { user_id: fx.user_ids[1].clone() };
    let user = users.get_user(get.clone()).await?.into_inner();
    let page = users.list_users(ListUsersRequest { page_size: 50, page_token: String::new() }).await?.into_inner();
    let create = CreateUserRequest { name: "Bench User".into(), email: "bench-0@example.com".into(), age: 30 };
    let mut orders = OrderServiceClient::new(channel.clone());
    let mut stream =
        orders.get_orders(GetOrdersRequest { user_id: fx.orders_user.clone(), limit: 1 }).await?.into_inner();
    let mut out = vec![
        payload::path_only("GetUser request", &get),
        payload::sizes("GetUser response (User)", &user),
        payload::sizes("CreateUser request", &create),
        payload::sizes("ListUsers response (50)", &page),
    ];
    if let Some(order) = stream.message().await? {
        out.push(payload::sizes("GetOrders message (Order)", &order));
    }
    Ok(out)
}

/// Response header bytes of a real GetUser through the gateway, as HTTP/1.1 text.
async fn rest_response_header_bytes(gateway: &str, id: &str) -> Option<usize> {
    let tcp = tokio::net::TcpStream::connect(gateway).await.ok()?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.ok()?;
    tokio::spawn(conn);
    let req = http::Request::get(format!("/api/v1/users/{id}"))
        .header(http::header::HOST, gateway)
        .body(http_body_util::Full::new(Bytes::new()))
        .ok()?;
    let resp = tx.send_request(req).await.ok()?;
    let lines: usize = resp.headers().iter().map(|(k, v)| k.as_str().len() + 2 + v.len() + 2).sum();
    Some("HTTP/1.1 200 OK\r\n".len() + lines + 2)
}

/// When a slice stops: after a time, or after a number of requests.
#[derive(Clone)]
enum Until {
    Time(Duration),
    Count(u64),
}

/// Runs `clients` (one per worker) against one path until `until`, returning them with what
/// they recorded and the elapsed seconds.
async fn slice(
    clients: Vec<Client>,
    scenario: Scenario,
    until: Until,
    fx: &Arc<Fixture>,
    seed: u64,
) -> anyhow::Result<(Vec<Client>, Recorder, f64)> {
    let start = Instant::now();
    let (deadline, budget) = match until {
        Until::Time(d) => (Some(start + d), None),
        Until::Count(n) => (None, Some(Arc::new(AtomicI64::new(n as i64)))),
    };
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let fx = fx.clone();
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                let mut rng = Rng::new(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    if budget.as_ref().is_some_and(|b| b.fetch_sub(1, Ordering::Relaxed) <= 0) {
                        break;
                    }
                    let out = client.call(scenario, &fx, &mut rng).await;
                    rec.record(&out);
                }
                (client, rec)
            })
        })
        .collect();
    // In-flight requests finish, within a bound: a stuck server must not hang the bench.
    let joined = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .map_err(|_| anyhow::anyhow!("{} requests did not finish within 60 s", scenario.name()))?;
    let mut clients = Vec::new();
    let mut total = Recorder::default();
    for j in joined {
        let (c, r) = j?;
        total.merge(&r);
        clients.push(c);
    }
    Ok((clients, total, start.elapsed().as_secs_f64()))
}

async fn connect(path: PathKind, targets: &Targets, grpc: &Channel, n: usize) -> anyhow::Result<Vec<Client>> {
    Ok(match path {
        PathKind::Grpc => (0..n).map(|_| Client::Grpc(grpc.clone())).collect(),
        PathKind::GatewayH1
        | PathKind::GatewayH1NoAccessLog
        | PathKind::LegacyRest
        | PathKind::LegacyPassthrough
        | PathKind::LegacyShadowed
        | PathKind::Peer(_) => {
            let url = match path {
                PathKind::GatewayH1 => &targets.gateway,
                PathKind::GatewayH1NoAccessLog => targets.quiet.as_ref().expect("quiet gateway path"),
                PathKind::LegacyRest => targets.legacy.as_ref().expect("legacy path"),
                PathKind::LegacyPassthrough => targets.passthrough.as_ref().expect("passthrough path"),
                PathKind::Peer(name) => &targets.peers.iter().find(|(n, _)| *n == name).expect("peer path").1,
                _ => targets.shadow.as_ref().expect("shadow path"),
            };
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(scenario::http1(&authority(url)).await?);
            }
            v
        }
        PathKind::GatewayH2 => {
            let a = authority(&targets.gateway);
            let shared = scenario::http2(&a).await?;
            (0..n).map(|_| Client::h2(shared.clone(), &a)).collect()
        }
    })
}

/// Whether the server process `name` takes part in a request over `path`.
fn serves(path: PathKind, name: &str) -> bool {
    // Every backend instance counts: the gateways and native gRPC spread calls over them.
    let backend = report::is_backend(name);
    match path {
        PathKind::Grpc => backend,
        PathKind::GatewayH1 | PathKind::GatewayH2 => backend || name == "gateway",
        PathKind::GatewayH1NoAccessLog => backend || name == "gateway-no-access-log",
        PathKind::LegacyRest => name == "legacy-rest",
        PathKind::LegacyPassthrough => name == "legacy-rest" || name == "passthrough",
        // The shadow's background calls count: they are what shadowing costs the machine.
        PathKind::LegacyShadowed => name == "legacy-rest" || name == "shadow" || backend,
        PathKind::Peer(peer) => backend || name == peer,
    }
}

fn cpu_now(children: Option<&Children>) -> BTreeMap<String, f64> {
    children
        .map(|c| c.all().iter().filter_map(|s| Some((s.name.to_owned(), proc::cpu_seconds(s.pid()?)?))).collect())
        .unwrap_or_default()
}

/// Deletes the files uploads left in the temporary folders, so long runs stay within the disk.
fn clear_uploads(dir: &std::path::Path) {
    for sub in ["uploads", "legacy-uploads"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// What one path of a cell gathered over its rounds.
#[derive(Default)]
struct PathTotals {
    total: Recorder,
    seconds: f64,
    /// CPU seconds by server process.
    cpu: BTreeMap<String, f64>,
    rounds: Vec<Round>,
}

async fn measure(
    args: &BenchArgs,
    targets: &Targets,
    children: Option<&Children>,
    dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let endpoint = |url: &str| -> anyhow::Result<Endpoint> {
        Ok(Endpoint::from_shared(url.to_owned())?
            .tcp_nodelay(true)
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20))
    };
    let channel = if targets.more_grpc.is_empty() {
        endpoint(&targets.grpc)?.connect().await?
    } else {
        let all = std::iter::once(&targets.grpc)
            .chain(&targets.more_grpc)
            .map(|u| endpoint(u))
            .collect::<Result<Vec<_>, _>>()?;
        Channel::balance_list(all.into_iter())
    };
    let run_id = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros());
    eprintln!("seeding: 100 users, {} orders, a {} MiB file", args.orders, args.upload_mib);
    let fx = Arc::new(seed(&channel, args, &run_id).await?);
    let mut paths = vec![PathKind::Grpc, PathKind::GatewayH1, PathKind::GatewayH2];
    if targets.quiet.is_some() {
        paths.push(PathKind::GatewayH1NoAccessLog);
    }
    if targets.legacy.is_some() {
        paths.push(PathKind::LegacyRest);
    }
    if targets.passthrough.is_some() && targets.shadow.is_some() {
        paths.push(PathKind::LegacyPassthrough);
        paths.push(PathKind::LegacyShadowed);
    }
    // Peers are set up for GetUser only.
    let paths_of = |scenario: Scenario| -> Vec<PathKind> {
        let peers = targets.peers.iter().map(|(n, _)| PathKind::Peer(n)).filter(|_| scenario == Scenario::GetUser);
        paths.iter().copied().chain(peers).collect()
    };
    let slices: usize = args.scenarios.iter().map(|s| paths_of(*s).len()).sum::<usize>()
        * args.concurrency.len()
        * (args.rounds as usize + 1);
    let bar = ProgressBar::new(slices as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")?);
    let mut cells = Vec::new();
    for &scenario in &args.scenarios {
        let paths = paths_of(scenario);
        for &c in &args.concurrency {
            let mut pool = Vec::new();
            for &p in &paths {
                pool.push((p, connect(p, targets, &channel, c).await?));
            }
            // Warm-up: connections, caches and the allocator settle; nothing is recorded.
            for (p, clients) in pool.iter_mut() {
                bar.set_message(format!("{} c={c} {} warm-up", scenario.name(), p.name()));
                let until = Until::Time(Duration::from_secs_f64(args.warmup));
                let (back, _, _) = slice(std::mem::take(clients), scenario, until, &fx, args.seed).await?;
                *clients = back;
                bar.inc(1);
            }
            let mut recs: Vec<PathTotals> = paths.iter().map(|_| PathTotals::default()).collect();
            for round in 0..args.rounds {
                for (i, (p, clients)) in pool.iter_mut().enumerate() {
                    bar.set_message(format!("{} c={c} {} round {}", scenario.name(), p.name(), round + 1));
                    let until = match args.requests {
                        Some(n) => Until::Count(n.div_ceil(u64::from(args.rounds))),
                        None => Until::Time(Duration::from_secs_f64(args.duration / f64::from(args.rounds))),
                    };
                    let before = cpu_now(children);
                    let (back, rec, secs) =
                        slice(std::mem::take(clients), scenario, until, &fx, args.seed + u64::from(round)).await?;
                    let after = cpu_now(children);
                    *clients = back;
                    let PathTotals { total, seconds, cpu, rounds } = &mut recs[i];
                    rounds.push(Round::of(&rec, secs));
                    total.merge(&rec);
                    *seconds += secs;
                    // Only the processes this path goes through are charged.
                    for (k, v) in after.into_iter().filter(|(k, _)| serves(*p, k)) {
                        *cpu.entry(k.clone()).or_default() += v - before.get(&k).copied().unwrap_or(v);
                    }
                    // After every slice, outside its time and CPU: a whole cell of 4 MiB uploads
                    // at c=64 took a 2-core machine's disk from 14 GB free to 2.
                    if scenario == Scenario::Upload {
                        clear_uploads(dir);
                    }
                    bar.inc(1);
                }
            }
            for (p, t) in paths.iter().zip(recs) {
                cells.push(CellResult::new(scenario, c, *p, &t.total, t.seconds, &t.cpu, t.rounds));
            }
        }
    }
    bar.finish_and_clear();
    let payloads = payloads(&channel, &fx).await?;
    let headers = rest_response_header_bytes(&authority(&targets.gateway), &fx.user_ids[1])
        .await
        .map(|h| payload::header_sizes(&authority(&targets.gateway), &fx.user_ids[1], h));
    let peak_rss_bytes = children
        .map(|c| c.all().iter().filter_map(|s| Some((s.name.to_owned(), proc::peak_rss_bytes(s.pid()?)?))).collect())
        .unwrap_or_default();
    let settings = serde_json::json!({
        "scenarios": args.scenarios, "concurrency": args.concurrency, "duration_s": args.duration,
        "requests": args.requests, "warmup_s": args.warmup, "rounds": args.rounds, "orders": args.orders,
        "upload_mib": args.upload_mib, "seed": args.seed, "quick": args.quick,
        "targets": {"grpc": targets.grpc, "gateway": targets.gateway, "legacy": targets.legacy},
        "database": if args.database.as_deref().is_some_and(backend::store::is_postgres) { "postgres" } else { "sqlite" },
        "backend_instances": args.backend_instances,
        "peers": args.peers.iter().map(|p| serde_json::json!({"name": p.name, "command": p.argv})).collect::<Vec<_>>(),
    });
    let mut report = Report {
        machine: machine(),
        settings,
        cells,
        payloads,
        headers,
        peak_rss_bytes,
        gateways: Vec::new(),
        summary: Vec::new(),
    };
    report.compute_summary(&args.concurrency);
    Ok(report)
}
