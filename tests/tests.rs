//! modeltool's integration tests: the `modeltool` binary run as a user runs
//! it, each test in its own temporary folder.

mod util;

mod cli;
mod interop;
