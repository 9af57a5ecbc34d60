//! Switchyard's migration mode: the gateway in front of the legacy REST API from day one.
//!
//! A request no gRPC binding matches goes to the legacy API unchanged; a migration plan sets
//! each route to `legacy`, `shadow` (legacy answers, gRPC is compared in the background),
//! `canary` (a sticky share of clients on gRPC) or `grpc`. Compared pairs go to a diff log that
//! `switchyard migrate report` summarises; `switchyard import` writes starter protos from the
//! legacy API's OpenAPI document.
//!
//! # Layout
//! - [`plan`]: the plan file, checked with line numbers;
//! - [`passthrough`]: the reverse proxy to the legacy API;
//! - [`shadow`]: background comparisons, the diff log, the counters;
//! - [`compare`]: semantic JSON comparison (renames, ignored paths);
//! - [`report`]: the report of a diff log;
//! - [`import`]: starter `.proto` files from an OpenAPI document;
//! - this file: the flags, and [`Migration`], which plugs into the gateway through its
//!   dispatch seam (`gateway::dispatch`).

pub mod compare;
pub mod import;
pub mod passthrough;
pub mod plan;
pub mod report;
pub mod shadow;

use crate::passthrough::Legacy;
use crate::plan::{Mode, Plan, RoutePlan};
use crate::shadow::{Replay, Shadows, Tee};
use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::future::BoxFuture;
use gateway::dispatch::{Dispatcher, GrpcSide};
use gateway::routes::Route;
use http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_common::units::{parse_duration, parse_size};

/// Migration mode's flags, each with an environment variable.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// The legacy REST API (`http://host:port`): requests no gRPC binding matches are passed to
    /// it unchanged, and the plan's legacy, shadow and canary routes use it.
    #[arg(long, env = "SWITCHYARD_LEGACY")]
    pub legacy: Option<String>,
    /// The migration plan (TOML): each route's mode. Reloaded on SIGHUP.
    #[arg(long = "migration", env = "SWITCHYARD_MIGRATION")]
    pub plan: Option<PathBuf>,
    /// Append each shadow comparison to this file as a JSON line.
    #[arg(long, env = "SWITCHYARD_DIFF_LOG")]
    pub diff_log: Option<PathBuf>,
    /// How long to wait for the legacy API's response headers (a streaming answer, once
    /// started, is not cut); beyond: 504.
    #[arg(long, env = "SWITCHYARD_LEGACY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub legacy_timeout: Duration,
    /// Largest request body passed to the legacy API (by its declared length); unlimited by
    /// default.
    #[arg(long, env = "SWITCHYARD_LEGACY_MAX_BODY_SIZE", value_parser = parse_size)]
    pub legacy_max_body_size: Option<u64>,
}

impl Args {
    /// Whether migration mode is on at all.
    pub fn enabled(&self) -> bool {
        self.legacy.is_some() || self.plan.is_some() || self.diff_log.is_some()
    }
}

/// Why migration mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Legacy(#[from] passthrough::LegacyUrlError),
    #[error("the migration plan sends routes to the legacy API ({0}), but no --legacy URL is given")]
    NoLegacy(String),
    #[error("cannot open the diff log: {0}")]
    DiffLog(std::io::Error),
}

/// Migration mode, as the gateway's dispatcher.
pub struct Migration {
    legacy: Option<Legacy>,
    plan_file: Option<PathBuf>,
    plan: ArcSwap<Plan>,
    shadows: Shadows,
}

/// Unsafe methods are not shadowed unless a route says so: they would write twice.
fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Migration {
    /// Starts migration mode (the shadow worker included). Must run inside a tokio runtime.
    pub fn start(args: &Args, trusted: Vec<ipnet::IpNet>) -> Result<Self, MigrationError> {
        let legacy = args
            .legacy
            .as_deref()
            .map(|url| Legacy::new(url, args.legacy_timeout, args.legacy_max_body_size, trusted))
            .transpose()?;
        let plan = match &args.plan {
            Some(path) => Plan::load(path)?,
            None => Plan::default(),
        };
        check(&plan, legacy.is_some())?;
        let shadows = Shadows::start(args.diff_log.as_deref()).map_err(MigrationError::DiffLog)?;
        Ok(Migration { legacy, plan_file: args.plan.clone(), plan: ArcSwap::from_pointee(plan), shadows })
    }

    /// The legacy API answers (and, for a shadowed route, gRPC is compared in the background).
    fn to_legacy(
        &self,
        legacy: Legacy,
        req: Request<Body>,
        shadow: Option<(Arc<RoutePlan>, GrpcSide)>,
    ) -> BoxFuture<'static, Response> {
        let shadows = self.shadows.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            // The request id both sides see, and the client gets back.
            let request_id = parts.headers.get("x-request-id").cloned().unwrap_or_else(|| {
                HeaderValue::from_str(&uuid::Uuid::from_u128(fastrand::u128(..)).to_string())
                    .expect("a UUID is a header")
            });
            parts.headers.insert("x-request-id", request_id.clone());
            let Some((route, grpc)) = shadow else {
                let mut resp = legacy.forward(Request::from_parts(parts, body)).await;
                resp.headers_mut().entry("x-request-id").or_insert(request_id);
                return resp;
            };
            // The body is read before it goes on, to send it to gRPC as well.
            let body = match read_bounded(body, shadow::MAX_COMPARED).await {
                Ok(bytes) => bytes,
                Err(partial) => {
                    shadows.dropped(&route.label);
                    let mut resp = legacy.forward(Request::from_parts(parts, partial)).await;
                    resp.headers_mut().entry("x-request-id").or_insert(request_id);
                    return resp;
                }
            };
            let replay = Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                body: body.clone(),
                extensions: parts.extensions.clone(),
            };
            let started = Instant::now();
            let resp = legacy.forward(Request::from_parts(parts, Body::from(body))).await;
            let (mut head, body) = resp.into_parts();
            head.headers.entry("x-request-id").or_insert(request_id.clone());
            let (tee, copy) = Tee::new(body);
            let status = head.status;
            tokio::spawn(async move {
                match copy.await {
                    Ok(Some(legacy_body)) => {
                        let id = request_id.to_str().unwrap_or("").to_owned();
                        shadows.enqueue(route, id, replay, status, legacy_body, started.elapsed(), grpc)
                    }
                    _ => shadows.dropped(&route.label),
                }
            });
            Response::from_parts(head, Body::new(tee))
        })
    }
}

/// A plan that sends routes to the legacy API needs one.
fn check(plan: &Plan, has_legacy: bool) -> Result<(), MigrationError> {
    if has_legacy {
        return Ok(());
    }
    match plan.routes.iter().find(|r| r.mode != Mode::Grpc) {
        Some(r) => Err(MigrationError::NoLegacy(r.label.clone())),
        None => Ok(()),
    }
}

/// Reads a body up to `limit` bytes; a longer one comes back whole (what was read, then the
/// rest) to be streamed on.
async fn read_bounded(body: Body, limit: usize) -> Result<Bytes, Body> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(buf.freeze()),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
                if buf.len() > limit {
                    let head = futures::stream::once(async move { Ok::<_, axum::Error>(buf.freeze()) });
                    let rest = body.into_data_stream();
                    return Err(Body::from_stream(futures::StreamExt::chain(head, rest)));
                }
            }
            Some(Err(e)) => {
                let failed = futures::stream::once(async move { Err::<Bytes, _>(e) });
                return Err(Body::from_stream(failed));
            }
        }
    }
}

impl Dispatcher for Migration {
    #[allow(clippy::result_large_err, reason = "the seam's signature: the request goes back by value")]
    fn dispatch(
        &self,
        req: Request<Body>,
        route: Option<&Route>,
        grpc: GrpcSide,
    ) -> Result<BoxFuture<'static, Response>, Request<Body>> {
        let Some(legacy) = self.legacy.clone() else { return Err(req) };
        let Some(route) = route else {
            // No gRPC binding: the legacy API answers.
            return Ok(self.to_legacy(legacy, req, None));
        };
        let plan = self.plan.load();
        let Some(entry) = plan.find(req.method(), req.uri().path(), Some(route.full_method())) else {
            return Err(req);
        };
        match entry.mode {
            Mode::Grpc => Err(req),
            Mode::Legacy => Ok(self.to_legacy(legacy, req, None)),
            Mode::Shadow if safe(req.method()) || entry.shadow_unsafe => {
                Ok(self.to_legacy(legacy, req, Some((Arc::new(entry.clone()), grpc))))
            }
            Mode::Shadow => Ok(self.to_legacy(legacy, req, None)),
            Mode::Canary(percent) => match plan.sticky.key(req.headers()) {
                // A stable hash of the client's key: the same client always lands on one side.
                Some(key) if bucket(key) < u64::from(percent) => Err(req),
                _ => Ok(self.to_legacy(legacy, req, None)),
            },
        }
    }

    fn status(&self) -> serde_json::Value {
        let plan = self.plan.load();
        let counts = self.shadows.stats.snapshot();
        let routes: Vec<serde_json::Value> = plan
            .routes
            .iter()
            .map(|r| {
                let c = counts.get(&r.label).cloned().unwrap_or_default();
                let mut v = serde_json::json!({"route": r.label, "mode": r.mode.name()});
                if let Mode::Canary(p) = r.mode {
                    v["percent"] = p.into();
                }
                v["compared"] = c.compared.into();
                v["equal"] = c.equal.into();
                v["differing"] = c.differing.into();
                v["dropped"] = c.dropped.into();
                v
            })
            .collect();
        serde_json::json!({
            "legacy": self.legacy.as_ref().map(|l| l.name().to_owned()),
            "plan": self.plan_file.as_ref().map(|p| p.display().to_string()),
            "routes": routes,
        })
    }

    fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.plan_file else { return Ok(()) };
        let plan = Plan::load(path).map_err(|e| e.to_string())?;
        check(&plan, self.legacy.is_some()).map_err(|e| e.to_string())?;
        self.plan.store(Arc::new(plan));
        tracing::info!(plan = %path.display(), "migration plan reloaded");
        Ok(())
    }
}

/// A client's bucket, 0..100, from its sticky key (FNV-1a: stable across processes and
/// releases, unlike the standard library's hasher).
fn bucket(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket(b"Bearer alice"), bucket(b"Bearer alice"));
        let mut seen = [0u32; 10];
        for i in 0..10_000 {
            seen[(bucket(format!("client-{i}").as_bytes()) / 10) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
    }
}
