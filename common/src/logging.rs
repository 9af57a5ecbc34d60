//! The log every server process writes: `RUST_LOG` filters it (default `info`), and it goes to
//! standard output.
//!
//! Info and debug lines (the access log above all: one line per request) are gathered in memory
//! and written out in batches: every 100 ms, whenever 64 KiB are waiting, before any warning or
//! error, and at [`flush`]. Writing each line as it comes cost the gateway a `write` system call
//! per request, ~20% of its CPU per request under load. Warnings and errors are written at once,
//! after what was waiting, so their order holds and nothing that explains a crash sits in memory.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(Batched)
        .init();
    let _ = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            flush();
        }
    });
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
                if p.len() >= BATCH {
                    let batch = std::mem::take(&mut *p);
                    drop(p);
                    write_out(&batch);
                }
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
