//! `landgate`: see `landgate --help` and the crate docs.
//!
//! The C entry point instead of Rust's `fn main`: std's runtime set-up
//! (SIGPIPE ignored, a stack-overflow handler on an alternate stack, a poll
//! of descriptors 0-2) is a dozen syscalls the launcher never needs: it
//! execs within a millisecond, and the command must inherit signal
//! dispositions and descriptors as the launcher received them.

// The test harness brings its own `main` (this file has no tests).
#![cfg_attr(not(test), no_main)]
#![deny(unsafe_code)]

#[global_allocator]
static ARENA: landgate_launcher::arena::Arena = landgate_launcher::arena::Arena;

#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    use std::io::Write as _;
    use std::os::unix::ffi::OsStringExt as _;
    let args = (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: the C runtime passes `argc` valid NUL-terminated strings.
        .map(|i| unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) })
        .map(|arg| std::ffi::OsString::from_vec(arg.to_bytes().to_vec()))
        .collect();
    let code = landgate_launcher::run(args);
    // Without std's runtime nothing flushes stdout at exit.
    let _ = std::io::stdout().flush();
    std::ffi::c_int::from(code)
}
