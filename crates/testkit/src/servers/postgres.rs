//! A PostgreSQL server of the test's own: a new cluster made by `initdb` in a scratch
//! directory, trust authentication on loopback, no fsync (a test's data need not survive
//! a power cut). PostgreSQL refuses to run as root, so under root it runs as the
//! `postgres` user that Debian's package creates.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
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
    /// shutdown (SIGINT): SIGTERM's smart one would wait for every client to leave,
    /// and a store's connection never does.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::stop(&mut child, "INT");
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

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A database of a test's own, on a server that the tests of one process running at the
/// same time share (a cluster costs a second to make; a database, a few milliseconds).
/// The server starts with the first such database and stops when the last one alive is
/// dropped, so a test binary never leaves a server behind. A test that stops its server
/// (an outage) starts a [`Postgres`] of its own instead.
#[derive(Debug)]
pub struct PostgresDb {
    server: Arc<Postgres>,
    name: String,
}

/// The server the live [`PostgresDb`]s share, if any is alive.
static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());

impl PostgresDb {
    /// A new, empty database, once the server takes logins.
    pub fn new() -> PostgresDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = {
            let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
            match shared.upgrade() {
                Some(server) => server,
                None => {
                    let server = Arc::new(Postgres::start());
                    *shared = Arc::downgrade(&server);
                    server
                }
            }
        };
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        // `createdb` fails until the server has finished starting: retried, bounded.
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(binary("createdb"))
                .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
                .args(["-U", "postgres", &name])
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
            std::thread::sleep(Duration::from_millis(20));
        }
        PostgresDb { server, name }
    }

    /// A connection string for this database as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.server.port, self.name
        )
    }
}

impl Default for PostgresDb {
    fn default() -> Self {
        PostgresDb::new()
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
