//! A private network namespace for one test, so that a peer that guesses its own
//! address — Linphone writes the address of its default route in its SDP and From —
//! guesses one that exists only inside the test, and nothing the test starts can send a
//! packet beyond it.
//!
//! [`run_isolated`] runs the calling test again, as a new process of the same test
//! binary, under `unshare --user --map-root-user --net --pid --fork --kill-child`. Inside,
//! `lo` is up with 127.0.0.0/8 and ::1 as usual, and carries a stand-in for a LAN
//! address, [`LAN_V4`] and [`LAN_V6`], with the default routes through it (packets to
//! the rest of the world loop back on `lo` and are dropped). Ports are the namespace's
//! own, so the bridge can listen on the demo's 127.0.0.1:5060 next to a running demo.
//! The test's processes (bridge, softphone) live in the namespace's PID namespace: when
//! the test process ends, however it ends, the kernel kills them all.
//!
//! ```text
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn a_softphone_with_its_defaults_gets_in() {
//!     if !netns::inside() {
//!         return netns::run_isolated("a_softphone_with_its_defaults_gets_in").await;
//!     }
//!     // ... the test, in its own network ...
//! }
//! ```

use std::process::Stdio;
use std::time::Duration;

/// Set in the environment of the test process that runs inside the namespace.
pub const INSIDE: &str = "DIALBRIDGE_TEST_NETNS";
/// The namespace's stand-in for a LAN address (TEST-NET-1), on its `lo`.
pub const LAN_V4: &str = "192.0.2.2";
/// The namespace's stand-in for a LAN IPv6 address (documentation prefix), on its `lo`.
pub const LAN_V6: &str = "2001:db8::2";
/// The longest one isolated test may run, set-up included.
pub const LIMIT: Duration = Duration::from_secs(180);

/// Whether this process is the test's run inside its namespace.
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// The shell that prepares the namespace's network, then runs the test binary.
fn setup_script() -> String {
    format!(
        "set -e; ip link set lo up; \
         ip addr add {LAN_V4}/32 dev lo; ip -6 addr add {LAN_V6}/128 dev lo nodad; \
         ip route add default dev lo src {LAN_V4}; ip -6 route add default dev lo src {LAN_V6}; \
         exec \"$@\""
    )
}

/// Runs test `name` of the current test binary again inside a private network (and
/// PID) namespace, and fails unless it passes there. Its output (what the test printed,
/// and its panic) is in the failure message. Needs `unshare` (util-linux) and `ip`
/// (iproute2), and user namespaces (root, or unprivileged user namespaces enabled).
pub async fn run_isolated(name: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = tokio::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            &setup_script(),
            "sh",
        ])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run unshare ({e}): this test runs in a private network namespace and \
                 needs util-linux's unshare and iproute2's ip"
            )
        });
    let out = match tokio::time::timeout(LIMIT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("waiting for the isolated run of {name}: {e}"),
        // Dropping the child killed unshare, and with it the whole namespace.
        Err(_) => panic!("{name} did not finish within {LIMIT:?} in its namespace; killed"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ran = stdout.contains(&format!("test {name} ..."));
    assert!(
        out.status.success() && ran,
        "{name}, run in a private network namespace, failed ({}){}:\n{stdout}\n{stderr}",
        out.status,
        if ran {
            ""
        } else {
            " before the test started: are user namespaces allowed here \
             (unshare --user --map-root-user --net true)?"
        },
    );
}
