//! A PostgreSQL server of the test's own: a new cluster made by `initdb` in a scratch
//! directory, trust authentication on loopback, no fsync (a test's data need not survive
//! a power cut). PostgreSQL refuses to run as root, so under root it runs as the
//! `postgres` user that Debian's package creates.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A running `postgres`, stopped when dropped.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl Postgres {
    /// Makes a cluster and starts it on a free loopback port.
    pub fn start() -> Postgres {
        let port = crate::ports::free_udp_tcp_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let dir = crate::scratch_dir("postgres");
        let user = run_as();
        if let Some((uid, gid)) = user {
            chown(&dir, uid, gid);
        }
        let mut initdb = Command::new(binary("initdb"));
        initdb
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .arg("-D")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb, user);
        let out = initdb.output().expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut postgres = Postgres {
            dir,
            port,
            user,
            child: None,
        };
        postgres.resume();
        postgres
    }

    /// A connection string for the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (an outage); its data stays for [`Postgres::resume`]. A fast
    /// shutdown (SIGINT): the clients' sessions are ended, as in a crash or a failover,
    /// where SIGTERM's smart shutdown would wait for every client to leave.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::stop_with(&mut child, "-INT");
        }
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "postgres is already running");
        let mut command = Command::new(binary("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut command, self.user);
        let mut child = command.spawn().expect("postgres");
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
        super::wait_accepting("postgres", addr, &mut child);
        self.child = Some(child);
    }
}

/// A database of a test's own, on a server that the tests of one process running at the
/// same time share: many tests that each want an empty database cost one cluster (about
/// a second to make), not one each. The server stops when the last of them is dropped.
/// A test that stops its server (an outage) starts a [`Postgres`] of its own instead.
#[derive(Debug)]
pub struct PostgresDb {
    url: String,
    _server: Arc<Postgres>,
}

impl PostgresDb {
    /// Creates an empty database (on the shared server, started if none is running).
    pub fn create() -> PostgresDb {
        static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let server = {
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            shared.upgrade().unwrap_or_else(|| {
                let server = Arc::new(Postgres::start());
                *shared = Arc::downgrade(&server);
                server
            })
        };
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // The server accepts connections a moment before it takes logins: try again
        // until it does (bounded).
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(binary("createdb"))
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(server.port.to_string())
                .arg(&name)
                .output()
                .expect("createdb");
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < end,
                "createdb {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PostgresDb {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", server.port),
            _server: server,
        }
    }

    /// A connection string for the database as the `postgres` superuser.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server binary: on the PATH, else in Debian's versioned directory.
fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if let Some(path) = on_path {
        return path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian package postgresql; scripts/test.sh installs it)")
        .filter_map(|e| Some(e.ok()?.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server binary")
}

/// The `postgres` user's ids when running as root (PostgreSQL will not), else `None`.
fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (Debian package postgresql creates it)");
    let mut fields = line.split(':').skip(2);
    let uid = fields.next().and_then(|f| f.parse().ok()).expect("a uid");
    let gid = fields.next().and_then(|f| f.parse().ok()).expect("a gid");
    Some((uid, gid))
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
}

fn chown(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown the scratch directory");
}
