//! Which live memory map an address is in: for a program's SIGBUS handler.
//!
//! When another process truncates a file the loader has mapped, touching a
//! page past the new end raises SIGBUS: the read is an ordinary memory
//! access, so there is no call that could return an error instead. The
//! library installs no handler (signal disposition is the program's
//! policy); it keeps a fixed table of its live maps that a handler may
//! consult with [`mapped_file_at`], which only reads atomics: no lock, no
//! allocation, async-signal-safe. The path is stored escaped, ready to
//! write(2).

use std::path::Path;

/// A map the SIGBUS lookup knows about, for as long as this value lives.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The table slot, or `None` when the table was full (the map then
    /// works as before, only without the lookup).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    slot: Option<usize>,
    /// The path, escaped, owned here and pointed to by the slot.
    _path: Box<[u8]>,
}

impl Watch {
    /// Registers the map at `start..start + len` of the file at `path`.
    pub(crate) fn new(start: *const u8, len: usize, path: &Path) -> Watch {
        let shown = crate::error::shown(path).into_bytes().into_boxed_slice();
        #[cfg(target_os = "linux")]
        let slot = imp::register(start as usize, len, &shown);
        #[cfg(not(target_os = "linux"))]
        let slot = {
            let _ = (start, len);
            None
        };
        Watch { slot, _path: shown }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(slot) = self.slot {
            imp::unregister(slot);
        }
    }
}

/// The path (escaped for a terminal, as bytes) of the file whose live
/// memory map holds `addr`, or `None` when no map of this library does.
/// Async-signal-safe (atomics only): meant for a SIGBUS handler, to say
/// which file was truncated while mapped.
///
/// ```
/// assert!(unsafe { modeltool_loader::mapped_file_at(0x10) }.is_none());
/// ```
///
/// # Safety
/// The returned bytes belong to the map's owner and are freed when the
/// [`Model`](crate::Model) that mapped the file drops it. The caller
/// promises that the map holding `addr` stays alive while it uses them:
/// true in a SIGBUS handler for a fault inside the map, since the faulting
/// thread is reading bytes borrowed from it.
#[expect(unsafe_code, reason = "the caller keeps the map alive")]
pub unsafe fn mapped_file_at(addr: usize) -> Option<&'static [u8]> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: passed on from the caller.
        unsafe { imp::lookup(addr) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = addr;
        None
    }
}

#[cfg(target_os = "linux")]
mod imp {
    #![expect(
        unsafe_code,
        reason = "a table a signal handler reads: raw parts of live messages"
    )]

    use std::ptr;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

    /// Live maps the lookup can name: enough for a checkpoint of a
    /// thousand shards, each mapped. A map that finds the table full works
    /// without the lookup.
    const SLOTS: usize = 1024;

    /// One live map. `start` is written last when a slot is filled and
    /// cleared first when it is emptied, so a lookup never matches a
    /// half-written slot.
    struct Slot {
        taken: AtomicBool,
        start: AtomicUsize,
        len: AtomicUsize,
        path: AtomicPtr<u8>,
        path_len: AtomicUsize,
    }

    #[expect(
        clippy::declare_interior_mutable_const,
        reason = "only used to initialize the table, each slot its own copy"
    )]
    const EMPTY: Slot = Slot {
        taken: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        path: AtomicPtr::new(ptr::null_mut()),
        path_len: AtomicUsize::new(0),
    };

    static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];

    pub(super) fn register(start: usize, len: usize, path: &[u8]) -> Option<usize> {
        if start == 0 || len == 0 {
            return None;
        }
        for (i, slot) in TABLE.iter().enumerate() {
            if slot
                .taken
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                slot.path.store(path.as_ptr().cast_mut(), Ordering::Relaxed);
                slot.path_len.store(path.len(), Ordering::Relaxed);
                slot.len.store(len, Ordering::Relaxed);
                // Publishes the fields above to a lookup that sees `start`.
                slot.start.store(start, Ordering::Release);
                return Some(i);
            }
        }
        None
    }

    pub(super) fn unregister(i: usize) {
        let slot = &TABLE[i];
        slot.start.store(0, Ordering::SeqCst);
        slot.len.store(0, Ordering::Relaxed);
        slot.path.store(ptr::null_mut(), Ordering::Relaxed);
        slot.path_len.store(0, Ordering::Relaxed);
        slot.taken.store(false, Ordering::Release);
    }

    /// # Safety
    /// As for [`super::mapped_file_at`].
    pub(super) unsafe fn lookup(addr: usize) -> Option<&'static [u8]> {
        for slot in &TABLE {
            let start = slot.start.load(Ordering::Acquire);
            if start == 0 || addr < start || addr - start >= slot.len.load(Ordering::Relaxed) {
                continue;
            }
            let path = slot.path.load(Ordering::Relaxed);
            let len = slot.path_len.load(Ordering::Relaxed);
            if path.is_null() {
                return None;
            }
            // SAFETY: `path..path + len` is the live path of this map,
            // owned by its `Watch`, which the caller promises outlives the
            // use of the bytes.
            return Some(unsafe { std::slice::from_raw_parts(path, len) });
        }
        None
    }
}
