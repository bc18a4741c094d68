//! Kamailio in front of bridge nodes, from Debian's package and the repository's own
//! configuration (deploy/kamailio/run.sh and kamailio.cfg): started by the test in its
//! own scratch directory on free loopback ports, its nodes OPTIONS-probed every second,
//! stopped by PID when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running Kamailio, stopped when dropped.
#[derive(Debug)]
pub struct Kamailio {
    dir: PathBuf,
    sip: SocketAddr,
    tls: SocketAddr,
    child: Option<Child>,
}

impl Kamailio {
    /// Starts Kamailio on free ports of 127.0.0.1 (SIP over UDP and TCP, and TLS with
    /// fixtures/tls/), spreading calls over `nodes` (their UDP SIP addresses).
    pub fn start(nodes: &[SocketAddr]) -> Kamailio {
        Kamailio::start_with(nodes, None)
    }

    /// [`Kamailio::start`] asking TLS callers for a client certificate, verified against
    /// the CA bundle `client_ca` (never required), whose names it passes to the nodes.
    pub fn start_with(nodes: &[SocketAddr], client_ca: Option<&Path>) -> Kamailio {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let [sip, tls] = [(); 2].map(|()| crate::ports::free_udp_tcp_port(ip));
        let dir = crate::scratch_dir("kamailio");
        let log = std::fs::File::create(dir.join("kamailio.log")).expect("kamailio's log file");
        let err = log.try_clone().expect("kamailio's log file");
        let script = crate::fixtures().join("../deploy/kamailio/run.sh");
        let mut child = Command::new(&script)
            .arg(&dir)
            .arg(ip.to_string())
            .arg(sip.to_string())
            .arg(tls.to_string())
            .args(nodes.iter().map(|n| format!("sip:{n}")))
            .env("PING_S", "1")
            .env("TLS_CA", client_ca.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (Debian packages kamailio and kamailio-tls-modules; \
                     scripts/test.sh installs them): {e}",
                    script.display()
                )
            });
        super::wait_accepting("kamailio", SocketAddr::new(ip, sip), &mut child);
        Kamailio {
            dir,
            sip: SocketAddr::new(ip, sip),
            tls: SocketAddr::new(ip, tls),
            child: Some(child),
        }
    }

    /// Where callers send SIP over UDP and TCP.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    /// Where callers send SIP over TLS.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls
    }

    /// What Kamailio has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::stop(&mut child);
        }
        if std::thread::panicking() {
            eprintln!("kamailio's files are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
