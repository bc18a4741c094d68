//! Real Redis, PostgreSQL and Kamailio servers for the shared-backend and cluster tests,
//! from Debian's packages: each started by the test in its own scratch directory on loopback, on a free
//! port, and stopped by PID when dropped (nothing depends on a system service). A test
//! may stop and start one again on the same port, to see the bridge live through an
//! outage.

mod kamailio;
mod postgres;
mod redis;

pub use kamailio::Kamailio;
pub use postgres::{Postgres, PostgresDb};
pub use redis::Redis;

use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// Each listed test, a function of the calling module's `Backend` (an enum with
/// variants `Sqlite` and `Postgres`), once on each backend: in modules `sqlite` and
/// `postgres`, so a test's name says which it ran on.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $test() { super::$test(super::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $test() { super::$test(super::Backend::Postgres) } )*
        }
    };
}

/// How long a server may take to accept connections after it was started.
const START_WITHIN: Duration = Duration::from_secs(30);

/// Waits until something accepts TCP connections on `addr`; panics naming `what`
/// (with the server's exit status if it died) after [`START_WITHIN`].
fn wait_accepting(what: &str, addr: SocketAddr, child: &mut Child) {
    let end = Instant::now() + START_WITHIN;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before accepting connections: {status}");
        }
        assert!(
            Instant::now() < end,
            "{what} did not accept connections on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a server process: SIGTERM, then SIGKILL if it lingers, and reaps it.
fn stop(child: &mut Child) {
    stop_with(child, "-TERM");
}

/// Stops a server process with `signal` (`-TERM`, `-INT`), then SIGKILL if it lingers,
/// and reaps it.
fn stop_with(child: &mut Child, signal: &str) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args([signal, &pid])
        .status();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
