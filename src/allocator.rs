//! The process's allocator: mimalloc, asked the way it answers fastest.
//!
//! The `mimalloc` crate hands every allocation to `mi_malloc_aligned`, since Rust passes an
//! alignment with each. mimalloc v3 serves that from its fast path only when a small free block
//! happens to sit at the alignment asked for; otherwise it takes a generic path that
//! over-allocates unless the block size is a power of two. Under callgrind about ten of the
//! gateway's allocations per GetUser took that path (see mimalloc's own issue #314: "it would
//! indeed be much better to use malloc directly"). Plain `mi_malloc` returns blocks aligned to
//! 16 bytes (8 for 8-byte blocks): its size classes are 16-byte multiples above 8 and its pages
//! start aligned. So a layout aligned to at most 16 and to no more than its size goes to the
//! plain calls, as Rust's `System` allocator does with malloc; every other layout keeps the
//! aligned ones.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use libmimalloc_sys as mi;

/// The alignment every plain mimalloc block of at least this size has.
const MIN_ALIGN: usize = 16;

/// mimalloc, with plain calls where they give the alignment asked for.
pub struct Allocator;

/// Whether a block of `size` from the plain calls is aligned to `align`.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// A block for `layout` from `plain_call` where that gives the alignment (see [`plain`]), else
/// from `aligned_call`.
///
/// # Safety
/// `plain_call` and `aligned_call` are a pair of mimalloc's allocation calls (malloc or zalloc).
#[inline]
unsafe fn allocate(
    layout: Layout,
    plain_call: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned_call: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: the caller passes mimalloc's calls, which take any size and a power-of-two
    // alignment (a `Layout`'s).
    unsafe {
        if plain(layout.align(), layout.size()) {
            plain_call(layout.size()).cast()
        } else {
            aligned_call(layout.size(), layout.align()).cast()
        }
    }
}

// SAFETY: every block comes from mimalloc with at least the layout's size and alignment (the
// plain calls only where `plain` holds, see above), and every block is returned to mimalloc.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation calls take any size and a power-of-two alignment.
        unsafe { allocate(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { allocate(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc; mi_free takes aligned blocks
        // (interior pointers of its own) too.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; either call keeps the contents up to the
        // smaller size and frees the old block when it moves.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_has_the_alignment_and_contents_asked_for() {
        let a = Allocator;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in (1..=300).chain([1000, 1024, 1025, 1200, 4000, 5000, 70_000, 300_000]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; every block is checked, then freed with its layout.
                unsafe {
                    let blocks: Vec<*mut u8> = (0..8).map(|_| a.alloc(layout)).collect();
                    for &p in &blocks {
                        assert!(
                            !p.is_null() && (p as usize).is_multiple_of(align),
                            "alloc {size} bytes at {align}: {p:?}"
                        );
                        p.write_bytes(0xAB, size);
                    }
                    for &p in &blocks {
                        let grown = a.realloc(p, layout, size * 3);
                        assert!((grown as usize).is_multiple_of(align), "realloc to {} at {align}", size * 3);
                        assert!((0..size).all(|i| *grown.add(i) == 0xAB), "contents kept");
                        let shrunk =
                            a.realloc(grown, Layout::from_size_align(size * 3, align).unwrap(), size.div_ceil(2));
                        assert!((shrunk as usize).is_multiple_of(align));
                        a.dealloc(shrunk, Layout::from_size_align(size.div_ceil(2), align).unwrap());
                    }
                    let z = a.alloc_zeroed(layout);
                    assert!((z as usize).is_multiple_of(align) && (0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
