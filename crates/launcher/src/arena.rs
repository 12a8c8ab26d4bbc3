//! The launcher binary's allocator: a bump arena in `.bss`, never freed.
//!
//! The launcher allocates a few hundred small blocks (the policy, the plan,
//! argv) and then execs, which frees everything at once. musl's allocator
//! (the binary is static musl) spends more instructions on them than the
//! rest of the launcher; a bump pointer spends a handful. Blocks that do not
//! fit fall back to the system allocator, so nothing has a size limit.
//! Only `main.rs` installs it: the library's tests keep the system's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Enough for any realistic policy; untouched pages cost nothing.
const SIZE: usize = 256 * 1024;

#[repr(C, align(4096))]
struct Memory(UnsafeCell<[u8; SIZE]>);

// SAFETY: blocks are handed out once each (the offset only grows, by
// compare-and-swap); nothing else touches the memory.
#[allow(unsafe_code)]
unsafe impl Sync for Memory {}

static MEMORY: Memory = Memory(UnsafeCell::new([0; SIZE]));
/// Offset of the first free byte.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// See the module documentation.
pub struct Arena;

impl Arena {
    fn base() -> usize {
        MEMORY.0.get() as usize
    }

    fn owns(ptr: *mut u8) -> bool {
        (Self::base()..Self::base() + SIZE).contains(&(ptr as usize))
    }

    /// A block of `layout` from the arena, or `None` when it is full.
    fn bump(layout: Layout) -> Option<*mut u8> {
        let base = Self::base();
        let mut next = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (base + next).checked_next_multiple_of(layout.align())? - base;
            let end = start.checked_add(layout.size())?;
            if end > SIZE {
                return None;
            }
            match NEXT.compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some((base + start) as *mut u8),
                Err(now) => next = now,
            }
        }
    }
}

// SAFETY: `alloc` returns blocks of the requested size and alignment that
// no other block overlaps (arena) or the system allocator's; `dealloc` and
// `realloc` hand the system's blocks back to it and never reuse the arena's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Self::bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: the caller's layout has a non-zero size.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::owns(ptr) {
            // SAFETY: a block the system allocator returned, with its layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::owns(ptr) {
            // The last block grows (or shrinks) in place.
            let start = ptr as usize - Self::base();
            let end = start + layout.size();
            if let Some(new_end) = start.checked_add(new_size)
                && new_end <= SIZE
                && NEXT
                    .compare_exchange(end, new_end, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return ptr;
            }
            if new_size <= layout.size() {
                return ptr;
            }
        } else {
            // SAFETY: a block the system allocator returned, with its layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: alignment unchanged and `new_size` non-zero (the
        // caller's contract); the old block stays valid for the copy.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_disjoint_and_grow_in_place_at_the_end() {
        let arena = Arena;
        // SAFETY (test): layouts are valid and non-zero; blocks are used
        // within their sizes.
        #[allow(unsafe_code)]
        unsafe {
            let a = arena.alloc(Layout::from_size_align(3, 1).unwrap());
            let b = arena.alloc(Layout::from_size_align(16, 16).unwrap());
            assert!(Arena::owns(a) && Arena::owns(b));
            assert_eq!(b as usize % 16, 0);
            assert!(b as usize >= a as usize + 3);
            b.write_bytes(7, 16);
            let grown = arena.realloc(b, Layout::from_size_align(16, 16).unwrap(), 64);
            assert_eq!(*grown.add(15), 7);
            let huge = Layout::from_size_align(SIZE + 1, 8).unwrap();
            let big = arena.alloc(huge);
            assert!(!big.is_null() && !Arena::owns(big));
            arena.dealloc(big, huge);
        }
    }
}
