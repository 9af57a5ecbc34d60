//! A worker thread spins briefly before it sleeps while the gateway has at most one request.
//!
//! At low load a request crosses the gateway with two sleeps: the worker sleeps while the
//! backend answers and again until the client's next request. On a virtual machine waking a
//! sleeping CPU is slow (tens of microseconds: the idle vCPU halts and is woken by an
//! interrupt through the hypervisor), and that, not the gateway's work, was most of the
//! latency it added at concurrency 1. Go's scheduler spins, polling its network poller, before
//! it sleeps, which is where grpc-gateway got its lower latency there. Here a worker spins for
//! `--idle-spin` before it parks, but only while at most one request is in progress: with more,
//! a worker parks between bursts, and its spinning would take CPU from the backend it shares
//! the machine with.
//!
//! tokio does not let a parking hook look at its I/O driver, so the spin watches the gateway's
//! sockets through an epoll set of its own (every client, listener and backend socket is added
//! to it as it is made; closing a socket takes it out) and stops as soon as one has something
//! to read or a task was woken from another thread: the worker then parks and its driver hands
//! the event over at once, without a sleep. A socket with input nobody is reading yet (a body
//! held back by flow control) only makes the spin end early. The spin yields the core
//! (`sched_yield`) each turn, as Go's does, so a thread sharing the core is not held up by it.
//!
//! It pays most with one worker thread (the default up to three cores). With more, the worker
//! that sleeps in the I/O driver's poll is not the one spinning, and the kernel still has to wake
//! it: at concurrency 1 with `--threads 2` the median fell by ~20% instead of ~45%.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests in progress in this process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// A worker is spinning.
static SPINNER: AtomicBool = AtomicBool::new(false);

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

/// Makes the runtime's park hook for a spin of `spin` (none when zero).
/// Where the gateway's sockets cannot be watched (no epoll, or no descriptor left for the set)
/// there is no spin: one that cannot see events would run its full length every time.
pub fn park_hook(spin: Duration) -> impl Fn() + Send + Sync + 'static {
    let spin = if !spin.is_zero() && watched::start() { spin } else { Duration::ZERO };
    // The runtime is looked up inside the spin only: a worker parks often, and spins seldom.
    let woken = || tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().global_queue_depth() > 0);
    move || before_park(spin, || watched::readable() || woken())
}

/// Adds a socket to the set a spinning worker watches (nothing when no runtime spins).
pub fn watch<S: Socket>(socket: &S) {
    watched::add(socket);
}

/// Spins for `spin` while at most one request is in progress, until there is `work`. One
/// worker spins at a time (with `--threads` above one, the others park at once): one is
/// enough to catch the next event, and more would only burn cores.
fn before_park(spin: Duration, work: impl Fn() -> bool) {
    if spin.is_zero()
        || ACTIVE.load(Ordering::Relaxed) > 1
        || SPINNER.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err()
    {
        return;
    }
    let until = Instant::now() + spin;
    while !work() && Instant::now() < until {
        std::thread::yield_now();
    }
    SPINNER.store(false, Ordering::Release);
}

#[cfg(target_os = "linux")]
pub use std::os::fd::AsRawFd as Socket;

/// Anything, where sockets are not watched.
#[cfg(not(target_os = "linux"))]
pub trait Socket {}
#[cfg(not(target_os = "linux"))]
impl<T> Socket for T {}

#[cfg(target_os = "linux")]
mod watched {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::OnceLock;

    /// The epoll set of the gateway's sockets; made once, when a spinning runtime is built.
    static SET: OnceLock<OwnedFd> = OnceLock::new();

    /// Makes the set; false if it cannot be made.
    pub fn start() -> bool {
        if SET.get().is_some() {
            return true;
        }
        // SAFETY: epoll_create1 takes no pointers; a descriptor it returns is ours to own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "no epoll set for --idle-spin; not spinning");
            return false;
        }
        // SAFETY: `fd` was just opened and nothing else owns it. A set made by a racing caller
        // is dropped (closed) here.
        let _ = SET.set(unsafe { OwnedFd::from_raw_fd(fd) });
        true
    }

    pub fn add(socket: &impl AsRawFd) {
        let Some(set) = SET.get() else { return };
        // Level-triggered: "has input now" is what the spin asks, however often it asks.
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
        // SAFETY: both descriptors are open for the duration of the call and `event` outlives
        // it. A failure (a socket already gone) leaves the spin blind to that socket only.
        unsafe { libc::epoll_ctl(set.as_raw_fd(), libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut event) };
    }

    pub fn readable() -> bool {
        let Some(set) = SET.get() else { return false };
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for the one event asked for; a timeout of zero never blocks.
        unsafe { libc::epoll_wait(set.as_raw_fd(), &mut event, 1, 0) > 0 }
    }
}

#[cfg(not(target_os = "linux"))]
mod watched {
    pub fn start() -> bool {
        false
    }
    pub fn add<S>(_: &S) {}
    pub fn readable() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_only_while_one_request_at_most_is_in_progress_and_until_there_is_work() {
        let timed = |spin: Duration, work: fn() -> bool| {
            let t = Instant::now();
            before_park(spin, work);
            t.elapsed()
        };
        let short = Duration::from_millis(5);
        // A spin far longer than the test may take shows it did not happen, or ended early.
        let long = Duration::from_secs(60);
        let one = Active::new();
        assert!(timed(short, || false) >= short, "one request: spins");
        assert!(timed(long, || true) < long, "work arrived: stops");
        SPINNER.store(true, Ordering::Relaxed);
        assert!(timed(long, || false) < long, "another worker spins: parks at once");
        SPINNER.store(false, Ordering::Relaxed);
        let more: Vec<Active> = (0..3).map(|_| Active::new()).collect();
        assert!(timed(long, || false) < long, "a busy spell: parks at once");
        drop((one, more));
        assert!(timed(Duration::ZERO, || false) < long, "spinning off");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_watched_socket_with_input_is_seen() {
        use std::io::Write;
        assert!(watched::start());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        watch(&server);
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let seen = (0..10_000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            watched::readable()
        });
        assert!(seen, "input on a watched socket ends the spin");
    }
}
