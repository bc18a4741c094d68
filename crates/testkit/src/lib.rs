//! Test-only helpers shared by dialbridge's test suites: a sipp runner, free-port
//! helpers and audio checks. Never a dependency of shipped code.

// Test-only code: a set-up that fails is a failed test, and a panic says so best.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audio;
pub mod caller;
pub mod ports;
pub mod sipp;
pub mod uac;

/// An IP address written in a test.
pub fn ip(text: &str) -> std::net::IpAddr {
    text.parse().expect("an IP address")
}

/// Waits until `done` holds, polling every 50 ms; panics naming `what` after `within`.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool, within: std::time::Duration) {
    let end = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The repository's `fixtures/` directory.
pub fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}
