//! A bridge for tests: the demo deployment on free loopback ports, run on the test's own
//! runtime and stopped on demand. Used by this crate's integration tests and sbc-sim's.
//!
//! With `DIALBRIDGE_TEST_REDIS` (a `redis://` URL) and `DIALBRIDGE_TEST_POSTGRES` (a
//! `postgres://user@host:port` URL, no database) set, as `scripts/test.sh`'s second pass
//! sets them, every test bridge runs on the shared backends instead: a namespace of its
//! own in that Redis, a new database of its own on that PostgreSQL server. So the same
//! tests check the embedded default and the shared configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::{Error, Gauges};

/// The demo deployment with every listener on a free port of 127.0.0.1.
pub fn demo_config() -> Config {
    // The demo file is compiled in: failing to parse it is a bug in this repository.
    #[allow(clippy::expect_used)]
    let config = Config::demo().expect("fixtures/demo.toml parses");
    on_free_ports(config)
}

/// [`demo_config`] from the demo file's text as `edit` rewrites it: what the number plan
/// reads (a trunk's keys, say) is read from the text. Panics (it is for tests) when the
/// edited file does not load.
pub fn demo_config_edited(edit: impl FnOnce(&str) -> String) -> Config {
    let dir = crate::config::demo_dir();
    let text = edit(crate::config::DEMO_CONFIG);
    let config = Config::parse(&dir.join("demo.toml"), &dir, &text);
    #[allow(clippy::panic)]
    let config = config.unwrap_or_else(|e| panic!("the edited demo does not load: {e}"));
    on_free_ports(config)
}

fn on_free_ports(mut config: Config) -> Config {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    config.sip.udp = vec![any];
    config.sip.tcp = vec![any];
    config.sip.tls = vec![any];
    config.admin.listen = any;
    // Tests that stop a bridge with calls up need not wait the demo's 30 s.
    config.sip.drain_timeout = std::time::Duration::from_secs(1);
    // Each test bridge keeps its records and its money to itself.
    config.admin.cdr_database = ":memory:".to_string();
    // No OPTIONS to the demo's outbound targets: they would reach whatever another test
    // binds there, and keep transactions alive that a test counts. The tests of trunk
    // health turn probing back on.
    config.trunk_health.interval = std::time::Duration::ZERO;
    if let Some(money) = config.money.as_mut() {
        money.database = Some(":memory:".to_string());
    }
    on_shared_backends(config)
}

/// The shared backends of the environment, if it names them (see the module doc).
#[allow(clippy::expect_used, clippy::panic)]
fn on_shared_backends(mut config: Config) -> Config {
    let (Ok(redis), Ok(postgres)) = (
        std::env::var("DIALBRIDGE_TEST_REDIS"),
        std::env::var("DIALBRIDGE_TEST_POSTGRES"),
    ) else {
        return config;
    };
    let name = format!("t{:016x}", rand::random::<u64>());
    let base = postgres.trim_end_matches('/').to_string();
    // The client runs a runtime of its own: not on a thread that drives the test's.
    let created = std::thread::spawn({
        let (base, name) = (base.clone(), name.clone());
        move || -> Result<(), String> {
            let mut client =
                postgres::Client::connect(&format!("{base}/postgres"), postgres::NoTls)
                    .map_err(|e| e.to_string())?;
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .map_err(|e| e.to_string())
        }
    })
    .join();
    match created {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("a test database on {base}: {e}"),
        Err(_) => panic!("creating a test database panicked"),
    }
    config.shared.redis = Some(redis);
    config.shared.postgres = Some(format!("{base}/{name}"));
    config.shared.namespace = name;
    config.shared.node = "test".to_string();
    config
}

/// A running bridge.
#[derive(Debug)]
pub struct TestBridge {
    sip: SocketAddr,
    sip_v6: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    admin: SocketAddr,
    token: String,
    gauges: Arc<Gauges>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl TestBridge {
    /// Binds `config`'s listeners and starts the bridge. Panics (it is for tests) when it
    /// cannot start.
    #[allow(clippy::expect_used)]
    pub async fn start(config: Config) -> TestBridge {
        let bound = crate::bind(&config)
            .await
            .expect("bridge binds its listeners");
        let sip = bound
            .sip
            .udp
            .first()
            .and_then(|s| s.local_addr().ok())
            .expect("bound UDP address");
        let sip_v6 = bound
            .sip
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .find(SocketAddr::is_ipv6);
        let tls = bound.sip.tls.first().and_then(|(l, _)| l.local_addr().ok());
        let admin = bound.admin.local_addr().expect("bound admin address");
        let token = config.admin.token.clone();
        let shared = config.shared.redis.is_some();
        let gauges = Arc::new(Gauges::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::run_with_gauges(
            config,
            bound,
            async move {
                let _ = stopped.await;
            },
            gauges.clone(),
        ));
        let bridge = TestBridge {
            sip,
            sip_v6,
            tls,
            admin,
            token,
            gauges,
            stop: Some(stop),
            task,
        };
        if shared {
            bridge.wait_shared_ready().await;
        }
        bridge
    }

    /// Waits (bounded) until Redis takes the bridge's claims: a fresh Redis settles for
    /// two heartbeats first, and a test expects its first call admitted.
    #[allow(clippy::panic)]
    async fn wait_shared_ready(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        );
        for _ in 0..400 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(self.admin).await {
                let mut text = String::new();
                if stream.write_all(request.as_bytes()).await.is_ok()
                    && stream.read_to_string(&mut text).await.is_ok()
                    && text.contains("\ndialbridge_shared_capacity_ready 1\n")
                {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the test bridge's shared capacity never became ready");
    }

    /// SIP over UDP and TCP.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    /// SIP over UDP on IPv6, when the configuration listens there.
    pub fn sip_addr_v6(&self) -> Option<SocketAddr> {
        self.sip_v6
    }

    /// The admin API (HTTP).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The admin API's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// SIP over TLS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// Calls the bridge holds right now (each holds a router grant).
    pub fn calls_in_progress(&self) -> usize {
        self.gauges.calls.load(Ordering::Relaxed)
    }

    /// Calls admitted to a meeting's mix (not waiting in a lobby).
    pub fn participants(&self) -> usize {
        self.gauges.participants.load(Ordering::Relaxed)
    }

    /// Meetings in progress.
    pub fn meetings(&self) -> usize {
        self.gauges.meetings.load(Ordering::Relaxed)
    }

    /// Stops the bridge and waits for it to end; panics if it failed.
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("bridge failed: {e}"),
            Err(e) => panic!("bridge task failed: {e}"),
        }
    }
}
