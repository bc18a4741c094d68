//! Test-only helpers shared by dialbridge's test suites: a sipp runner, free-port
//! helpers and audio checks. Never a dependency of shipped code.

// Test-only code: a set-up that fails is a failed test, and a panic says so best.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audio;
pub mod ports;
pub mod sipp;
pub mod uac;

/// The repository's `fixtures/` directory.
pub fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}
