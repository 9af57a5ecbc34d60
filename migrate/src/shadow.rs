//! Shadow comparison: the legacy API answers the client; the same request then goes to gRPC in
//! the background and the two answers are compared. The shadow never slows or changes the
//! client's answer: comparisons wait in a bounded queue, and one that finds the queue full is
//! dropped and counted.

use crate::compare::{Difference, compare};
use crate::plan::RoutePlan;
use bytes::{Bytes, BytesMut};
use gateway::dispatch::GrpcSide;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Answers larger than this are not compared (the client still gets them whole).
pub const MAX_COMPARED: usize = 4 << 20;
/// Comparisons waiting at once; more are dropped.
pub const QUEUE: usize = 256;

/// Counters of one route.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub compared: u64,
    pub equal: u64,
    pub differing: u64,
    pub dropped: u64,
}

/// The counters of every shadowed route, by route label.
#[derive(Default)]
pub struct Stats(Mutex<BTreeMap<String, Counts>>);

impl Stats {
    fn with(&self, route: &str, f: impl FnOnce(&mut Counts)) {
        f(self.0.lock().expect("stats lock").entry(route.to_owned()).or_default());
    }

    /// A snapshot, by route label.
    pub fn snapshot(&self) -> BTreeMap<String, Counts> {
        self.0.lock().expect("stats lock").clone()
    }
}

/// The request as the legacy API got it, to send to gRPC as well.
pub struct Replay {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub extensions: http::Extensions,
}

/// One comparison to make.
struct Job {
    route: Arc<RoutePlan>,
    request_id: String,
    replay: Replay,
    legacy_status: StatusCode,
    legacy_body: Bytes,
    legacy_latency: Duration,
    grpc: GrpcSide,
}

/// One line of the diff log.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub route: String,
    pub request_id: String,
    pub equal: bool,
    pub legacy: Side,
    pub grpc: Side,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<DiffRecord>,
}

/// One side of a compared pair.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    pub status: u16,
    pub latency_ms: f64,
}

/// A differing path, as logged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DiffRecord {
    pub path: String,
    pub legacy: Value,
    pub grpc: Value,
}

impl From<Difference> for DiffRecord {
    fn from(d: Difference) -> Self {
        DiffRecord { path: d.path, legacy: d.legacy, grpc: d.grpc }
    }
}

/// The shadow worker's handle: where comparisons are queued, and their counters.
#[derive(Clone)]
pub struct Shadows {
    tx: mpsc::Sender<Job>,
    pub stats: Arc<Stats>,
}

impl Shadows {
    /// Starts the worker; compared pairs are appended to `diff_log` when given.
    pub fn start(diff_log: Option<&Path>) -> std::io::Result<Self> {
        let log = match diff_log {
            Some(path) => Some(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
            None => None,
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        tokio::spawn(work(rx, log, stats.clone()));
        Ok(Shadows { tx, stats })
    }

    /// Counts a comparison that could not be made (queue full, answer too large, client gone).
    pub fn dropped(&self, route: &str) {
        self.stats.with(route, |c| c.dropped += 1);
    }

    /// Queues a comparison; a full queue drops it.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &self,
        route: Arc<RoutePlan>,
        request_id: String,
        replay: Replay,
        legacy_status: StatusCode,
        legacy_body: Bytes,
        legacy_latency: Duration,
        grpc: GrpcSide,
    ) {
        let label = route.label.clone();
        let job = Job { route, request_id, replay, legacy_status, legacy_body, legacy_latency, grpc };
        if self.tx.try_send(job).is_err() {
            self.dropped(&label);
        }
    }
}

/// Compares queued pairs one after another (one at a time keeps the shadow's load on the
/// backend modest).
async fn work(mut rx: mpsc::Receiver<Job>, mut log: Option<std::fs::File>, stats: Arc<Stats>) {
    while let Some(job) = rx.recv().await {
        let Job { route, request_id, replay, legacy_status, legacy_body, legacy_latency, grpc } = job;
        let mut req = Request::new(axum::body::Body::from(replay.body));
        *req.method_mut() = replay.method;
        *req.uri_mut() = replay.uri;
        *req.headers_mut() = replay.headers;
        *req.extensions_mut() = replay.extensions;
        let started = Instant::now();
        // A request in progress like the client's, for the gateway's idle spin (`gateway::idle`).
        let _active = gateway::idle::Active::new();
        let resp = grpc.call(req).await;
        let grpc_status = resp.status();
        let grpc_body = match resp.into_body().collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                stats.with(&route.label, |c| c.dropped += 1);
                continue;
            }
        };
        let grpc_latency = started.elapsed();
        let mut differences = Vec::new();
        if legacy_status.as_u16() / 100 != grpc_status.as_u16() / 100 {
            differences.push(DiffRecord {
                path: "status".into(),
                legacy: Value::from(legacy_status.as_u16()),
                grpc: Value::from(grpc_status.as_u16()),
            });
        }
        // Bodies are compared when both are JSON; otherwise byte for byte.
        let as_json = |b: &Bytes| serde_json::from_slice::<Value>(b).ok();
        match (as_json(&legacy_body), as_json(&grpc_body)) {
            (Some(l), Some(g)) => {
                differences.extend(compare(&l, &g, &route.rename, &route.ignore).into_iter().map(DiffRecord::from))
            }
            _ if legacy_body == grpc_body => {}
            _ => differences.push(DiffRecord {
                path: "$".into(),
                legacy: Value::String(String::from_utf8_lossy(&legacy_body).into_owned()),
                grpc: Value::String(String::from_utf8_lossy(&grpc_body).into_owned()),
            }),
        }
        let equal = differences.is_empty();
        stats.with(&route.label, |c| {
            c.compared += 1;
            if equal {
                c.equal += 1;
            } else {
                c.differing += 1;
            }
        });
        let record = Record {
            route: route.label.clone(),
            request_id,
            equal,
            legacy: Side { status: legacy_status.as_u16(), latency_ms: ms(legacy_latency) },
            grpc: Side { status: grpc_status.as_u16(), latency_ms: ms(grpc_latency) },
            differences,
        };
        if let Some(file) = log.as_mut() {
            let mut line = serde_json::to_vec(&record).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = file.write_all(&line) {
                tracing::error!(error = %e, "cannot write the diff log");
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A response body that hands a copy of itself (up to [`MAX_COMPARED`] bytes) to `done` when
/// it has been sent whole, so the shadow can compare what the client got.
pub struct Tee {
    inner: axum::body::Body,
    copy: BytesMut,
    overflow: bool,
    done: Option<oneshot::Sender<Option<Bytes>>>,
}

impl Tee {
    pub fn new(inner: axum::body::Body) -> (Self, oneshot::Receiver<Option<Bytes>>) {
        let (tx, rx) = oneshot::channel();
        (Tee { inner, copy: BytesMut::new(), overflow: false, done: Some(tx) }, rx)
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // An empty body may never be polled: it was still sent whole.
        if let Some(tx) = self.done.take() {
            let whole = http_body::Body::is_end_stream(&self.inner) && !self.overflow;
            let _ = tx.send(whole.then(|| std::mem::take(&mut self.copy).freeze()));
        }
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.copy.len() + data.len() > MAX_COMPARED {
                        this.overflow = true;
                    } else if !this.overflow {
                        this.copy.extend_from_slice(data);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(tx) = this.done.take() {
                    let _ = tx.send((!this.overflow).then(|| std::mem::take(&mut this.copy).freeze()));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(tx) = this.done.take() {
                    let _ = tx.send(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
