//! The backend's own figures for Monitor: requests served per service, and the process's CPU
//! and memory read from the kernel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

/// Requests since start, in total and per gRPC service.
#[derive(Default)]
pub struct RequestCounts {
    total: AtomicU64,
    /// Fixed at start (every served service), so counting needs no lock.
    per_service: HashMap<String, AtomicU64>,
}

impl RequestCounts {
    /// Counters for these services (full names, e.g. `user.v1.UserService`).
    pub fn new<'a>(services: impl IntoIterator<Item = &'a str>) -> Self {
        RequestCounts {
            total: AtomicU64::new(0),
            per_service: services.into_iter().map(|s| (s.to_owned(), AtomicU64::new(0))).collect(),
        }
    }

    /// Counts one request to a gRPC path (`/package.Service/Method`).
    pub fn count(&self, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if let Some(c) = self.per_service.get(service) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Requests to one service so far; `None` for a service that is not served.
    pub fn service(&self, name: &str) -> Option<u64> {
        self.per_service.get(name).map(|c| c.load(Ordering::Relaxed))
    }
}

/// A tower layer that counts every request into [`RequestCounts`].
#[derive(Clone)]
pub struct CountLayer(pub Arc<RequestCounts>);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, counts: self.0.clone() }
    }
}

/// The service [`CountLayer`] wraps.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counts: Arc<RequestCounts>,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.counts.count(req.uri().path());
        self.inner.call(req)
    }
}

/// CPU time (user + system) the process has used so far, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Resident memory of a process (`self` or a pid) in bytes, from /proc; 0 where unavailable.
pub fn resident_bytes(pid: &str) -> u64 {
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return 0;
    };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// CPU usage between two calls, in percent of one core.
pub struct CpuMeter {
    last_cpu: f64,
    last_at: Instant,
}

impl Default for CpuMeter {
    fn default() -> Self {
        CpuMeter { last_cpu: cpu_seconds(), last_at: Instant::now() }
    }
}

impl CpuMeter {
    /// Percent of one core used since the previous sample (or since creation).
    pub fn sample(&mut self) -> f64 {
        let cpu = cpu_seconds();
        let now = Instant::now();
        let wall = now.duration_since(self.last_at).as_secs_f64();
        let pct = if wall > 0.0 { (cpu - self.last_cpu) / wall * 100.0 } else { 0.0 };
        self.last_cpu = cpu;
        self.last_at = now;
        pct.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_service() {
        let c = RequestCounts::new(["user.v1.UserService"]);
        c.count("/user.v1.UserService/GetUser");
        c.count("/user.v1.UserService/ListUsers");
        c.count("/other.Service/X");
        assert_eq!(c.total(), 3);
        assert_eq!(c.service("user.v1.UserService"), Some(2));
        assert_eq!(c.service("other.Service"), None);
    }

    #[test]
    fn process_figures_are_real() {
        assert!(resident_bytes("self") > 1_000_000);
        let mut m = CpuMeter::default();
        let until = Instant::now() + std::time::Duration::from_millis(50);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(m.sample() > 0.0);
    }
}
