//! A bridge for tests: the demo deployment on free loopback ports, run on the test's own
//! runtime and stopped on demand. Used by this crate's integration tests and sbc-sim's.

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
    let mut config = Config::demo().expect("fixtures/demo.toml parses");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    config.sip.udp = any;
    config.sip.tcp = Some(any);
    config.sip.tls = Some(any);
    config.admin.listen = any;
    // Tests that stop a bridge with calls up need not wait the demo's 30 s.
    config.sip.drain_timeout = std::time::Duration::from_secs(1);
    // Each test bridge keeps its records to itself.
    config.admin.cdr_database = ":memory:".to_string();
    config
}

/// A running bridge.
#[derive(Debug)]
pub struct TestBridge {
    sip: SocketAddr,
    tls: Option<SocketAddr>,
    gauges: Arc<Gauges>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl TestBridge {
    /// Binds `config`'s listeners and starts the bridge. Panics (it is for tests) when it
    /// cannot start.
    #[allow(clippy::expect_used)]
    pub async fn start(config: Config) -> TestBridge {
        let listeners = crate::bind(&config)
            .await
            .expect("bridge binds its listeners");
        let sip = listeners.udp.local_addr().expect("bound UDP address");
        let tls = listeners
            .tls
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok());
        let gauges = Arc::new(Gauges::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::run_with_gauges(
            config,
            listeners,
            async move {
                let _ = stopped.await;
            },
            gauges.clone(),
        ));
        TestBridge {
            sip,
            tls,
            gauges,
            stop: Some(stop),
            task,
        }
    }

    /// SIP over UDP and TCP.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
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
