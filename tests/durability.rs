//! A backend process killed with SIGKILL in the middle of a burst of creates and restarted on
//! the same database: every create a client saw acknowledged is there, and the first call after
//! the backend reports SERVING again succeeds.

mod common;

use common::{http, send};
use serde_json::json;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `switchyard backend` on `listen` with the database in `dir`; returns the process and
/// the address it listens on (read from its log, on standard output).
async fn backend(dir: &std::path::Path, listen: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["backend", "--listen", listen])
        .arg("--database")
        .arg(format!("sqlite://{}", dir.join("db.sqlite").display()))
        .arg("--upload-dir")
        .arg(dir.join("uploads"))
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the backend starts")
            .unwrap()
            .expect("the backend logs its address");
        if line.contains("backend listening")
            && let Some(rest) = line.split("addr=").nth(1)
        {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = backend(dir.path(), "127.0.0.1:0").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = gateway::Config::for_backend(format!("http://{addr}"));
    config.health_check_interval = Duration::from_millis(100);
    tokio::spawn(async move { gateway::run(listener, &config, std::future::pending()).await });

    // Eight clients create users as fast as they can; each remembers what was acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (acknowledged, stop, base) = (acknowledged.clone(), stop.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            let client = http();
            for i in 0.. {
                if stop.is_cancelled() {
                    break;
                }
                let user = json!({"name": format!("w{w} n{i}"), "email": format!("w{w}-{i}@example.com")});
                match client.post(format!("{base}/api/v1/users")).json(&user).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        acknowledged.lock().unwrap().push(body["id"].as_str().unwrap().to_owned());
                    }
                    // Refused while the backend is down: a clear error, never a success.
                    Ok(r) => assert!(r.status().is_server_error(), "{}", r.status()),
                    Err(_) => {}
                }
            }
        }));
    }
    // Kill in the middle of the burst.
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Back on the same database and address.
    let (_child, again) = backend(dir.path(), &addr.to_string()).await;
    assert_eq!(again, addr);
    let mut ready = false;
    for _ in 0..300 {
        if send(http().get(format!("{base}/readyz"))).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "the gateway sees the backend SERVING again");
    // The first call after that succeeds.
    let (status, body) = send(http().get(format!("{base}/api/v1/users/{}", acknowledged[0]))).await;
    assert_eq!(status, 200, "{body}");
    // Every acknowledged create is there.
    let client = http();
    for id in &acknowledged {
        let (status, body) = send(client.get(format!("{base}/api/v1/users/{id}"))).await;
        assert_eq!(status, 200, "acknowledged user {id} lost: {body}");
    }
}
