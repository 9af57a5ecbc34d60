//! A worker thread spins briefly before it sleeps while the gateway has at most one request.
//!
//! At low load a request crosses the gateway with two sleeps: the worker sleeps while the
//! backend answers and again until the client's next request. On a virtual machine waking a
//! sleeping CPU is slow (tens of microseconds: the idle vCPU halts and is woken by an
//! interrupt through the hypervisor), and that, not the gateway's work, was most of the
//! latency it added at concurrency 1. Go's scheduler spins for a while before it sleeps, which
//! is where grpc-gateway got its lower latency there. Here a worker spins for `--idle-spin`
//! before it parks, but only while at most one request is in progress: with more, a worker
//! parks between bursts, and its spinning would take CPU from the backend it shares the
//! machine with. Events that arrive while it spins wait for the spin to end (tokio does not let
//! a parking hook look at its I/O driver), so the spin stays short.
//!
//! The spin yields the core (`sched_yield`) rather than spinning in place, as Go's does, so a
//! thread sharing the core is not held up by it. Still off unless asked for: on this project's
//! 2-core machine, shared by the gateway, the backend and the load generator, 50µs of it took
//! wrk's median at concurrency 1 from ~205µs to 155–180µs in most rounds and to ~225µs in
//! others, and doubled the gateway's CPU per request there. It pays where the gateway has a
//! core of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests in progress in this process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts a request as in progress while it lives.
pub struct Active(());

impl Active {
    pub fn new() -> Self {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Active(())
    }
}

impl Default for Active {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The runtime's park hook: spins for `spin` while at most one request is in progress.
pub fn before_park(spin: Duration) {
    if spin.is_zero() || ACTIVE.load(Ordering::Relaxed) > 1 {
        return;
    }
    let until = Instant::now() + spin;
    while Instant::now() < until {
        // Yielding rather than spinning in place: a thread that shares this core (the backend,
        // the client) runs at once instead of waiting for the spin to end.
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_only_while_one_request_at_most_is_in_progress() {
        let timed = |spin: Duration| {
            let t = Instant::now();
            before_park(spin);
            t.elapsed()
        };
        let short = Duration::from_millis(5);
        let one = Active::new();
        assert!(timed(short) >= short, "one request: spins");
        // A spin far longer than the test may take shows it did not happen.
        let long = Duration::from_secs(60);
        let more: Vec<Active> = (0..3).map(|_| Active::new()).collect();
        assert!(timed(long) < long, "a busy spell: parks at once");
        drop((one, more));
        assert!(timed(Duration::ZERO) < long, "spinning off");
    }
}
