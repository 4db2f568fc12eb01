//! Turning the SIGBUS of a truncated memory map into one error line.
//!
//! modeltool maps model files (it opts in with `OpenOptions::mmap`). When
//! another process truncates a mapped file, touching a page past the new
//! end raises SIGBUS: an ordinary memory access, so no call could return
//! an error instead. [`install`] sets a handler that asks the loader
//! ([`modeltool_loader::mapped_file_at`]) whether the faulting address is
//! in one of its live maps and, when it is, writes `error: <file>: file was
//! truncated while modeltool was reading it` and exits with status 2 (what
//! modeltool uses for unreadable input). Any other SIGBUS gets the default
//! action (the process dies of it, as if nothing were installed), every
//! time: the handler stays installed for the next one of ours.
//!
//! The handler may run at any instruction, so it only reads atomics (the
//! loader's lookup), calls `write(2)`, `sigaction(2)`, `raise(3)` and
//! `_exit(2)` (async-signal-safe), takes no lock and allocates nothing.
//! Exiting from it skips destructors: temporary files being written at that
//! moment stay behind (as after `kill -9`), under their temporary names,
//! never under the name of an output.
//!
//! The only module of the binary allowed `unsafe`.
#![allow(
    unsafe_code,
    reason = "a signal handler: sigaction, siginfo_t, write(2), _exit(2)"
)]

/// Opts the process in to memory-mapped model files (`--no-mmap` still
/// reads without): modeltool reads files it does not write, and says so.
pub fn allow_mmap() {
    // SAFETY: modeltool maps model files read-only and assumes, as the
    // loader's `allow_mmap` asks, that no other process truncates or
    // rewrites them while it reads them. If one is truncated anyway, the
    // SIGBUS of the lost pages is turned into one error line and exit 2 by
    // the handler `install` sets (on Linux; elsewhere the process dies of
    // the signal); a rewrite in place is caught by the stored checksums
    // where they are checked. The file's length and modification time are
    // compared with those at open before every hand-out of mapped bytes.
    unsafe { modeltool_loader::allow_mmap() };
}

/// Installs the handler (Linux; elsewhere a mapped file truncated while
/// read kills the process with SIGBUS, with no message).
pub fn install() -> std::io::Result<()> {
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
    use std::ffi::c_void;
    use std::ptr;

    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set by the first thread that reports a truncation.
    static REPORTING: AtomicBool = AtomicBool::new(false);
    const BEFORE: &[u8] = b"error: ";
    const AFTER: &[u8] = b": file was truncated while modeltool was reading it\n";

    pub(super) fn install() -> std::io::Result<()> {
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
        // SAFETY: one sigaction(2) call with a valid action; the handler
        // does only async-signal-safe things (see `on_sigbus`).
        if unsafe { libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn write_all(bytes: &[u8]) {
        // SAFETY: a valid buffer; write(2) is async-signal-safe. A failed
        // or short write changes nothing: the process exits next.
        unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
    }

    /// The handler. Async-signal-safe: atomics, write(2), pause(2),
    /// sigaction(2), raise(3), _exit(2) only.
    extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t;
        // `si_addr` is meaningful for faults (si_code > 0), checked next.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        // si_code <= 0: sent by kill(2) and the like, not a memory fault.
        if code > 0 {
            // SAFETY: the fault is inside the map that holds `addr` (bytes
            // borrowed from it are being read), so the map and the path
            // its owner keeps are alive while we write it and exit.
            if let Some(path) = unsafe { modeltool_loader::mapped_file_at(addr) } {
                // Threads reading the same lost pages fault together: one
                // reports, the others wait for its _exit (one line, not
                // two interleaved).
                if REPORTING.swap(true, Ordering::SeqCst) {
                    loop {
                        // SAFETY: pause(2) is async-signal-safe; the
                        // reporting thread's _exit ends this thread too.
                        unsafe { libc::pause() };
                    }
                }
                write_all(BEFORE);
                write_all(path);
                write_all(AFTER);
                // SAFETY: _exit(2) is async-signal-safe and ends the process
                // at once, running no destructor or atexit handler.
                unsafe { libc::_exit(2) };
            }
        }
        // Not one of our maps: the default action. A fault re-executes the
        // faulting access on return and so raises SIGBUS again, now with
        // the default action; a sent signal is raised again by hand. The
        // default action ends the process, so ours is never left replaced
        // by it in a process that goes on.
        // SAFETY: all-zero is a valid sigaction: SIG_DFL, no flags.
        let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        // SAFETY: sigaction(2) and raise(3) are async-signal-safe; `default`
        // is a valid action.
        unsafe {
            libc::sigaction(signal, &default, ptr::null_mut());
            if code <= 0 {
                libc::raise(signal);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    const CHILD: &str = "MODELTOOL_SIGBUS_CHILD";

    /// Runs `test` of this binary in a child with `CHILD` set.
    fn child(test: &str) -> std::process::Output {
        Command::new(std::env::current_exe().expect("the test binary"))
            .args([test, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD, "1")
            .output()
            .expect("the child runs")
    }

    /// A SIGBUS sent to the process used to be handed back to Rust's own
    /// handler, which reset SIGBUS and let the process go on with no
    /// handler of ours. Now it gets the default action: the process dies
    /// of it, saying nothing.
    #[test]
    fn a_sent_sigbus_gets_the_default_action() {
        if std::env::var_os(CHILD).is_some() {
            super::install().expect("installed");
            // SAFETY: raise(3) sends SIGBUS to this thread: the test.
            unsafe { libc::raise(libc::SIGBUS) };
            eprintln!("lived through a SIGBUS");
            std::process::exit(3);
        }
        let out = child("sigbus::tests::a_sent_sigbus_gets_the_default_action");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{stderr}");
        assert!(!stderr.contains("error:"), "{stderr}");
    }

    /// Threads that touch the lost pages of one truncated model together
    /// print one error line, not one each, interleaved.
    #[test]
    fn threads_faulting_together_report_one_line() {
        use modeltool_format::{Dtype, ModelMetadata, TensorMeta, write_safetensors};
        use modeltool_loader::{Model, OpenOptions};
        if std::env::var_os(CHILD).is_some() {
            super::install().expect("installed");
            let dir = tempfile::tempdir().expect("a folder");
            let path = dir.path().join("m.safetensors");
            let data = vec![1u8; 16 << 20];
            let meta = TensorMeta {
                name: "w".into(),
                dtype: Dtype::U8,
                shape: vec![data.len()],
            };
            let file = std::fs::File::create(&path).expect("created");
            write_safetensors(
                file,
                &[(meta, &data[..])],
                &ModelMetadata::default().to_safetensors(),
            )
            .expect("written");
            // SAFETY: this test truncates the file on purpose; the SIGBUS
            // that follows is what it checks.
            unsafe { modeltool_loader::allow_mmap() };
            let options = OpenOptions {
                mmap: true,
                ..OpenOptions::default()
            };
            let model = Model::open(&path, options).expect("opened");
            let bytes = model.bytes(&model.entries()[0]).expect("mapped");
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
                .expect("truncated");
            let threads = 8;
            let go = std::sync::Barrier::new(threads);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (go, bytes) = (&go, &bytes);
                    s.spawn(move || {
                        go.wait();
                        // Every thread touches its own lost pages.
                        let sum: u64 = (0..64)
                            .map(|p| (t * 64 + p) * 4096)
                            .map(|i| u64::from(std::hint::black_box(bytes[i])))
                            .sum();
                        eprintln!("read {sum} from a truncated map and lived");
                    });
                }
            });
            std::process::exit(3);
        }
        for _ in 0..5 {
            let out = child("sigbus::tests::threads_faulting_together_report_one_line");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{stderr}");
            let lines: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.starts_with("running "))
                .collect();
            assert_eq!(lines.len(), 1, "{stderr}");
            assert!(
                lines[0].starts_with("error: ")
                    && lines[0].ends_with(
                        "m.safetensors: file was truncated while modeltool was reading it"
                    ),
                "{stderr}"
            );
        }
    }

    /// A fault in a map the loader does not know is not reported as ours.
    #[test]
    fn a_fault_outside_our_maps_gets_the_default_action() {
        if std::env::var_os(CHILD).is_some() {
            super::install().expect("installed");
            let dir = tempfile::tempdir().expect("a folder");
            let path = dir.path().join("f");
            std::fs::write(&path, vec![1u8; 1 << 16]).expect("written");
            let file = std::fs::File::open(&path).expect("opened");
            let len = 1usize << 16;
            // SAFETY: a read-only shared map of the whole file, which is then
            // truncated on purpose: the SIGBUS that follows ends this child.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0,
                )
            };
            assert_ne!(map, libc::MAP_FAILED);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
                .expect("truncated");
            // SAFETY: reads the mapped page (volatile, so it happens): the
            // fault is the test.
            let byte = unsafe { std::ptr::read_volatile(map.cast::<u8>().add(100)) };
            let sum = u64::from(byte);
            eprintln!("read {sum} from a truncated map and lived");
            std::process::exit(3);
        }
        let out = child("sigbus::tests::a_fault_outside_our_maps_gets_the_default_action");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{stderr}");
        assert!(!stderr.contains("error:"), "{stderr}");
    }
}
