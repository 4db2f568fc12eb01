//! Turning the SIGBUS of a truncated memory map into one error line.
//!
//! When another process truncates a file the loader has mapped, touching a
//! page past the new end raises SIGBUS: the read is an ordinary memory
//! access, so there is no call that could return an error instead. By
//! default the process dies of the signal, with no word about which file.
//! [`report_truncation_on_sigbus`] installs a handler that looks the
//! faulting address up in a fixed table of the loader's live maps and, when
//! it is inside one, writes `error: <file>: file was truncated while modeltool
//! was reading it` to stderr and exits with status 2 (what modeltool uses for
//! unreadable input). Any other SIGBUS goes to the handler that was there
//! before (Rust's own, or the default action), as if nothing were installed.
//!
//! The handler may run at any instruction, so it only reads atomics, calls
//! `write(2)` and `_exit(2)` (async-signal-safe), and takes no lock and
//! allocates nothing: messages are formatted when a file is mapped.
//!
//! Exiting from the handler skips destructors: temporary files being
//! written at that moment stay behind (as after `kill -9`), under their
//! temporary names, never under the name of an output.

use std::path::Path;

/// A map the SIGBUS handler knows about, for as long as this value lives.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The table slot, or `None` when the table was full (the map then
    /// works as before, only without the clear message on truncation).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    slot: Option<usize>,
    /// The message, owned here and pointed to by the slot.
    _message: Box<[u8]>,
}

impl Watch {
    /// Registers the map at `start..start + len` of the file at `path`.
    pub(crate) fn new(start: *const u8, len: usize, path: &Path) -> Watch {
        let message = format!(
            "error: {}: file was truncated while modeltool was reading it\n",
            path.display()
        )
        .into_bytes()
        .into_boxed_slice();
        #[cfg(target_os = "linux")]
        let slot = imp::register(start as usize, len, &message);
        #[cfg(not(target_os = "linux"))]
        let slot = {
            let _ = (start, len);
            None
        };
        Watch {
            slot,
            _message: message,
        }
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

/// Makes a SIGBUS raised by reading a memory-mapped model file that another
/// process truncated print one line, `error: <file>: file was truncated
/// while modeltool was reading it`, and exit with status 2, instead of
/// killing the process with no message. A SIGBUS anywhere else is passed on
/// to the handler installed before. Call it once, early (the `modeltool`
/// command does, first thing); later calls do nothing.
///
/// Meant for programs: a library that calls it would take SIGBUS away from
/// the program using it. Linux only; elsewhere it returns an `Unsupported`
/// error and maps stay as they were.
pub fn report_truncation_on_sigbus() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    return imp::install();
    #[cfg(not(target_os = "linux"))]
    return Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "reporting truncation on SIGBUS needs Linux",
    ));
}

#[cfg(target_os = "linux")]
mod imp {
    #![expect(
        unsafe_code,
        reason = "a signal handler: sigaction, and reading siginfo_t, write(2) and _exit(2) inside it"
    )]

    use std::ffi::c_void;
    use std::ptr;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};

    /// Live maps the handler can name: enough for a checkpoint of a
    /// thousand shards, each mapped. A map that finds the table full works
    /// without the message.
    const SLOTS: usize = 1024;

    /// One live map. `start` is written last when a slot is filled and
    /// cleared first when it is emptied, so the handler never matches a
    /// half-written slot.
    struct Slot {
        taken: AtomicBool,
        start: AtomicUsize,
        len: AtomicUsize,
        message: AtomicPtr<u8>,
        message_len: AtomicUsize,
    }

    #[expect(
        clippy::declare_interior_mutable_const,
        reason = "only used to initialize the table, each slot its own copy"
    )]
    const EMPTY: Slot = Slot {
        taken: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        message: AtomicPtr::new(ptr::null_mut()),
        message_len: AtomicUsize::new(0),
    };

    static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];

    /// The SIGBUS action before ours, to pass other SIGBUS on to.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    /// Serializes installation; never touched by the handler.
    static INSTALL: Mutex<bool> = Mutex::new(false);

    pub(super) fn register(start: usize, len: usize, message: &[u8]) -> Option<usize> {
        if start == 0 || len == 0 {
            return None;
        }
        for (i, slot) in TABLE.iter().enumerate() {
            if slot
                .taken
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                slot.message
                    .store(message.as_ptr().cast_mut(), Ordering::Relaxed);
                slot.message_len.store(message.len(), Ordering::Relaxed);
                slot.len.store(len, Ordering::Relaxed);
                // Publishes the fields above to a handler that sees `start`.
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
        slot.message.store(ptr::null_mut(), Ordering::Relaxed);
        slot.message_len.store(0, Ordering::Relaxed);
        slot.taken.store(false, Ordering::Release);
    }

    pub(super) fn install() -> std::io::Result<()> {
        let mut installed = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        if *installed {
            return Ok(());
        }
        // SAFETY: `sigaction` is a plain C struct for which all-zero bytes
        // are a valid value (no handler, no flags, empty mask); every field
        // that matters is set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigbus
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void)
            as libc::sighandler_t;
        // SA_ONSTACK: run on the alternate stack where a thread has one.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa_mask` is a valid, writable sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as for `action`: all-zero is a valid sigaction.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: one sigaction(2) call with a valid action and a valid,
        // writable place for the one it replaces. The handler it installs
        // does only async-signal-safe things (see `on_sigbus`).
        if unsafe { libc::sigaction(libc::SIGBUS, &action, &mut previous) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // A SIGBUS between the two lines finds no previous action and falls
        // back to the default one, which is what it would have been at
        // program start anyway.
        let _ = PREVIOUS.set(previous);
        *installed = true;
        Ok(())
    }

    /// The handler. Async-signal-safe: atomics, write(2), _exit(2),
    /// sigaction(2), raise(3) only.
    extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t;
        // `si_addr` is meaningful for faults (si_code > 0), checked next.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        // si_code <= 0: sent by kill(2) and the like, not a memory fault.
        if code > 0 {
            for slot in &TABLE {
                let start = slot.start.load(Ordering::Acquire);
                if start == 0 || addr < start || addr - start >= slot.len.load(Ordering::Relaxed) {
                    continue;
                }
                // The fault is inside this map, which is therefore alive
                // (bytes borrowed from it are being read), so its message,
                // owned by the same `Mapped`, is alive too.
                let message = slot.message.load(Ordering::Relaxed);
                let len = slot.message_len.load(Ordering::Relaxed);
                if !message.is_null() {
                    // SAFETY: `message..message + len` is the live message
                    // (above); write(2) is async-signal-safe. A failed write
                    // changes nothing: we exit either way.
                    unsafe { libc::write(libc::STDERR_FILENO, message.cast(), len) };
                }
                // SAFETY: _exit(2) is async-signal-safe and ends the process
                // at once, running no destructor or atexit handler.
                unsafe { libc::_exit(2) };
            }
        }
        // Not one of our maps: restore the previous action and let it deal
        // with the signal. A fault re-executes the faulting access on return
        // and so raises SIGBUS again; a sent signal is raised again by hand.
        let default = {
            // SAFETY: all-zero is a valid sigaction: SIG_DFL, no flags.
            let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
            a.sa_sigaction = libc::SIG_DFL;
            a
        };
        let previous = PREVIOUS.get().unwrap_or(&default);
        // SAFETY: sigaction(2) and raise(3) are async-signal-safe; `previous`
        // is a valid action (the one the kernel gave us, or SIG_DFL).
        unsafe {
            libc::sigaction(signal, previous, ptr::null_mut());
            if code <= 0 {
                libc::raise(signal);
            }
        }
    }
}
