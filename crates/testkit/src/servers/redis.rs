//! A Redis server of the test's own: no persistence, loopback only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running `redis-server`, stopped when dropped.
#[derive(Debug)]
pub struct Redis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server on a free loopback port.
    pub fn start() -> Redis {
        let port = crate::ports::free_udp_tcp_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut redis = Redis {
            dir: crate::scratch_dir("redis"),
            port,
            child: None,
        };
        redis.resume();
        redis
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The string at `key` (`GET`, through `redis-cli`); `None` when there is none or
    /// the server does not answer.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "--raw",
                "GET",
            ])
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (Debian package redis-tools, beside redis-server)");
        let value = String::from_utf8_lossy(&out.stdout)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        (out.status.success() && !value.is_empty()).then_some(value)
    }

    /// Stops the server (an outage): everything it held is gone, as after a crash of a
    /// server that keeps nothing on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::stop(&mut child);
        }
    }

    /// Starts the server again on the same port (after [`Redis::stop`]).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/test.sh installs it)");
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
        super::wait_accepting("redis-server", addr, &mut child);
        self.child = Some(child);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
