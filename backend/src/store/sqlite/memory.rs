//! SQLite's process-wide memory settings, made once before the first connection.
//!
//! Profiling the backend under GetOrders at concurrency 16 (a stream of rows) put about a third
//! of its CPU in SQLite's memory handling, for two reasons:
//! - SQLite as libsqlite3-sys bundles it keeps global memory statistics (its default
//!   `SQLITE_DEFAULT_MEMSTATUS=1`) and updates them under one process-wide mutex on every
//!   allocation and free. The pool's connection threads copy each value of each row they hand
//!   over (`sqlite3_value_dup`) and the runtime's threads free the copies, so every thread
//!   queued on that mutex (futex waits and wake-ups, a fifth of the CPU). Nothing here reads
//!   the statistics (they serve `sqlite3_memory_used` and the soft heap limit): they are off.
//! - Its allocator is the C library's malloc, whose arenas serve poorly blocks allocated on one
//!   thread and freed on another (another seventh). It is mimalloc instead, the allocator the
//!   rest of the process uses, which frees such blocks without a lock.

use libmimalloc_sys as mi;
use libsqlite3_sys as ffi;
use std::os::raw::{c_int, c_void};
use std::sync::Once;

static CONFIGURED: Once = Once::new();

/// Applies the settings, once per process; call before opening a connection.
///
/// SQLite takes configuration only before it initializes (its first connection). Every store
/// opens through here first, so that holds unless something else in the process opened SQLite
/// earlier; then SQLite refuses with `SQLITE_MISUSE`, keeps its defaults, and the refusal is
/// logged: slower, never wrong.
pub(super) fn configure() {
    CONFIGURED.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: `sqlite3_config` must not run concurrently with other SQLite calls or after
        // initialization; `Once` serializes our only call site, which runs before any of our
        // connections, and SQLite checks the second condition itself (SQLITE_MISUSE). SQLite
        // copies the methods, so they may live on this stack.
        let codes = unsafe {
            [
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int),
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const ffi::sqlite3_mem_methods),
            ]
        };
        if let Some(code) = codes.into_iter().find(|c| *c != ffi::SQLITE_OK) {
            tracing::warn!(
                code,
                "SQLite was initialized before its memory settings could be made; it keeps its defaults"
            );
        }
    });
}

/// SQLite asks for sizes as `int` and never for a negative one; mimalloc's blocks are aligned to
/// 8 bytes at least, as SQLite requires.
fn bytes(n: c_int) -> usize {
    usize::try_from(n).unwrap_or(0)
}

unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
    // SAFETY: mimalloc takes any size.
    unsafe { mi::mi_malloc(bytes(n)) }
}

unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: SQLite frees only blocks `malloc` or `realloc` gave it.
    unsafe { mi::mi_free(p) }
}

unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // SAFETY: as `free`; SQLite never passes a null block or a zero size here.
    unsafe { mi::mi_realloc(p, bytes(n)) }
}

unsafe extern "C" fn size(p: *mut c_void) -> c_int {
    // SAFETY: as `free`. SQLite's blocks are below 2 GiB (its SQLITE_MAX_ALLOCATION_SIZE).
    c_int::try_from(unsafe { mi::mi_usable_size(p) }).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn roundup(n: c_int) -> c_int {
    // mimalloc would hand out this much for `n`; SQLite uses the answer to size its buffers.
    // SAFETY: a pure function of the size.
    c_int::try_from(unsafe { mi::mi_good_size(bytes(n)) }).unwrap_or(n)
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// After `configure`, SQLite keeps no statistics and allocates from mimalloc: the counter
    /// that would follow every allocation stays at zero while memory is in use, and the block's
    /// size is the one mimalloc reports.
    #[test]
    fn sqlite_allocates_from_mimalloc_without_statistics() {
        configure();
        // SAFETY: plain calls into SQLite, which is thread-safe (SQLITE_THREADSAFE=1), on a
        // block it allocated.
        unsafe {
            assert_eq!(ffi::sqlite3_initialize(), ffi::SQLITE_OK);
            let block = ffi::sqlite3_malloc(1000);
            assert!(!block.is_null());
            assert_eq!(ffi::sqlite3_memory_used(), 0);
            assert_eq!(ffi::sqlite3_msize(block), mi::mi_usable_size(block) as u64);
            let block = ffi::sqlite3_realloc(block, 5000);
            assert!(ffi::sqlite3_msize(block) >= 5000);
            ffi::sqlite3_free(block);
        }
    }
}
