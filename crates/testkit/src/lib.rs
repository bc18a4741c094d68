//! Test-only helpers shared by dialbridge's test suites: sipp and Linphone runners, the
//! bridge as a process, `sbc-sim answer` as the far end of dial-outs, a private network namespace, free-port helpers and audio
//! checks. Never a dependency of shipped code.

// Test-only code: a set-up that fails is a failed test, and a panic says so best.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod answerer;
pub mod audio;
pub mod baresip;
pub mod caller;
pub mod churn;
pub mod linphone;
pub mod netns;
pub mod options;
pub mod ports;
pub mod serve;
pub mod servers;
pub mod sipp;
pub mod tls;
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

/// A new, empty directory under the system's temporary directory, named after `what`,
/// unique within and across processes (a test run in its own PID namespace is PID 1).
pub fn scratch_dir(what: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "dialbridge-{what}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
