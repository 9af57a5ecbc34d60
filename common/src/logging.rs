//! The log every server process writes: `RUST_LOG` filters it (default `info`), and it goes to
//! standard output.
//!
//! Info and debug lines (the access log above all: one line per request) are gathered in memory
//! and written out in batches: every 100 ms, whenever 64 KiB are waiting, before any warning or
//! error, and at [`flush`]. Writing each line as it comes cost the gateway a `write` system call
//! per request, ~20% of its CPU per request under load. Warnings and errors are written at once,
//! after what was waiting, so their order holds and nothing that explains a crash sits in memory.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tracing_subscriber::fmt::MakeWriter;

/// Bytes waiting to be written.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Beyond this, the writer that adds a line writes the batch out itself.
const BATCH: usize = 64 * 1024;

/// Installs the process-wide subscriber and starts the thread that writes batches out.
///
/// Colours only on a terminal: the escape codes cost CPU per line and make a log file harder to
/// grep.
pub fn init() {
    let ansi = std::io::stdout().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(ansi)
        .with_writer(Batched)
        .init();
    DIRECT.store(!ansi, Ordering::Relaxed);
    let _ = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            flush();
        }
    });
}

/// Set by [`init`] when lines are plain text: an info line may then be written straight into
/// the batch ([`info_line`]).
static DIRECT: AtomicBool = AtomicBool::new(false);

/// Writes one info line of `target` into the batch, laid out as the subscriber lays out events
/// (`2026-11-27T04:42:54.487530Z  INFO target: name=value …`), with the fields `fields` writes.
///
/// For the access log: one line per request, where the subscriber's generic path (a visitor
/// per field, a formatting call per piece) was a sixth of the gateway's CPU per request. False
/// when this process's logger is not [`init`]'s (a program embedding the gateway) or writes
/// colours: the caller then emits the event through `tracing` as usual. The caller checks that
/// the event is enabled and that no span is current (the subscriber would print its context).
pub fn info_line(target: &str, fields: impl FnOnce(&mut Fields)) -> bool {
    if !DIRECT.load(Ordering::Relaxed) {
        return false;
    }
    // Written straight into the batch, under its lock: a line of its own was an allocation
    // and a copy per request.
    let mut pending = pending();
    let mut line = Fields(&mut pending);
    timestamp(SystemTime::now(), line.0);
    line.0.extend_from_slice(b"  INFO ");
    line.0.extend_from_slice(target.as_bytes());
    line.0.push(b':');
    fields(&mut line);
    line.0.push(b'\n');
    spill_if_full(pending);
    true
}

/// The fields of an [`info_line`], each written as the subscriber writes it.
pub struct Fields<'b>(&'b mut Vec<u8>);

impl Fields<'_> {
    /// A string field: quoted and escaped (Rust's `Debug`).
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        // Folded without an early exit, which the compiler turns into a tighter loop: half the
        // instructions of `all` on a request id (callgrind).
        let plain = value.bytes().fold(true, |ok, b| ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\'));
        if plain {
            self.0.push(b'"');
            self.0.extend_from_slice(value.as_bytes());
            self.0.push(b'"');
        } else {
            let _ = write!(self.0, "{value:?}");
        }
        self
    }

    /// A text field written as it is, unquoted (what `%` gives for a plain word).
    pub fn plain(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    /// An integer field, as the subscriber prints it (without going through `fmt`).
    pub fn int(&mut self, name: &str, value: impl itoa::Integer) -> &mut Self {
        self.name(name);
        self.0.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A count of thousandths (`micros` for a field in milliseconds) as the subscriber prints
    /// `micros as f64 / 1000.0`: the shortest decimal, at least one digit after the point.
    /// Formatting the float itself was a third of an access-log line's cost.
    pub fn thousandths(&mut self, name: &str, micros: u64) -> &mut Self {
        self.name(name);
        let mut digits = itoa::Buffer::new();
        self.0.extend_from_slice(digits.format(micros / 1000).as_bytes());
        self.0.push(b'.');
        let frac = micros % 1000;
        let text = [b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
        let keep = text.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
        self.0.extend_from_slice(&text[..keep]);
        self
    }

    fn name(&mut self, name: &str) {
        self.0.push(b' ');
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'=');
    }
}

/// RFC 3339 in UTC with microseconds, as the subscriber's default timer prints it. The part up
/// to the second is kept per thread and reused while the second lasts: formatting the date
/// was a third of an access-log line's cost.
fn timestamp(now: SystemTime, out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        prefix = crate::rfc3339::date_time(secs as i64);
        SECOND.set((secs, prefix));
    }
    out.extend_from_slice(&prefix);
    let micros = since.subsec_micros();
    let mut frac = *b".000000Z";
    for (i, d) in frac[1..7].iter_mut().rev().enumerate() {
        *d = b'0' + (micros / 10u32.pow(i as u32) % 10) as u8;
    }
    out.extend_from_slice(&frac);
}

/// Writes out what is waiting. Call before the process exits.
pub fn flush() {
    let batch = std::mem::take(&mut *pending());
    write_out(&batch);
}

fn pending() -> MutexGuard<'static, Vec<u8>> {
    // A panic while holding the lock leaves only log bytes behind: keep using them.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes the batch out once it holds [`BATCH`] bytes, after letting go of the lock.
fn spill_if_full(mut pending: MutexGuard<'static, Vec<u8>>) {
    if pending.len() >= BATCH {
        let batch = std::mem::take(&mut *pending);
        drop(pending);
        write_out(&batch);
    }
}

fn write_out(bytes: &[u8]) {
    if !bytes.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
}

/// The subscriber's writer: batches below warnings, writes warnings and errors through.
struct Batched;

/// One line being formatted; the subscriber hands it over in one `write` call.
enum Line {
    Batch,
    Now,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut p = pending();
        match self {
            Line::Batch => {
                p.extend_from_slice(buf);
                spill_if_full(p);
            }
            Line::Now => {
                // Under the lock, so that no batched line overtakes this one.
                p.extend_from_slice(buf);
                write_out(&p);
                p.clear();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::Now
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        if *meta.level() <= tracing::Level::WARN { Line::Now } else { Line::Batch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// What the subscriber writes, collected for comparison.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_direct_line_is_laid_out_as_the_subscriber_lays_out_the_event() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let method = http_method();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "switchyard::access", method = %method, route = "GET /a/{id}", status = 200u16,
                code = -1i32, latency_ms = 0.5f64, request_id = "a \"b\" ✓", bytes_in = 0u64);
        });
        let theirs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let mut text = Vec::new();
        let mut line = Fields(&mut text);
        line.plain("method", method)
            .str("route", "GET /a/{id}")
            .int("status", 200u16)
            .int("code", -1i32)
            .thousandths("latency_ms", 500)
            .str("request_id", "a \"b\" ✓")
            .int("bytes_in", 0u64);
        let ours = format!("  INFO switchyard::access:{}\n", String::from_utf8(text).unwrap());
        // The same after the timestamp, which is 27 characters in both.
        assert_eq!(&theirs[27..], ours, "{theirs}");
    }

    #[test]
    fn thousandths_print_as_the_float_would() {
        for micros in [0u64, 1, 10, 100, 999, 1000, 1001, 1010, 1500, 123_456, 2_000_000, 987_654_321] {
            let mut text = Vec::new();
            Fields(&mut text).thousandths("t", micros);
            assert_eq!(String::from_utf8(text).unwrap(), format!(" t={:?}", micros as f64 / 1000.0), "{micros}");
        }
    }

    fn http_method() -> &'static str {
        "GET"
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_795_754_574, 487_530), "2026-11-27T04:42:54.487530Z");
        assert_eq!(at(1_795_754_574, 10), "2026-11-27T04:42:54.000010Z", "the same second, from the cache");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }
}
