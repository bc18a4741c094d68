//! The dialbridge server: binds the SIP listeners, loads the number plan, the prompts and
//! the organiser directory, and runs the signaling task that ties SIP to the router, the
//! media engine and the conferences. `server` is the only crate that translates SIP into
//! router and conference terms.

pub mod admin;
mod answers;
mod call_flow;
pub mod cdr;
mod cluster;
mod conferences;
pub mod config;
pub mod dial_out;
mod error;
pub mod logging;
mod meeting_view;
pub mod metrics;
pub mod plan_edits;
mod refusal;
mod services;
pub mod shared;
mod signaling;
pub mod testing;
pub mod tokens;
pub mod trunk_health;

pub use error::Error;
pub use services::{cdr_location, open_cdr_store};

use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use dialbridge_conference::ivr::ConferenceKey;
use dialbridge_conference::room::MemberId;
use dialbridge_sip::transport::{Listeners, TransportConfig, Transports, load_tls_acceptor};
use tokio::net::{TcpListener, UdpSocket};

use crate::admin::AdminState;
use crate::config::Config;
use crate::meeting_view::{ConferenceView, LiveError, RecordingView};
pub use crate::metrics::Gauges;
use crate::metrics::MetricsSources;
use crate::services::Services;
use crate::signaling::Signaling;

/// The number plan of `config`, validated (the server refuses to start on a bad one).
pub fn plan_from(config: &Config) -> Result<dialbridge_router::Plan, Error> {
    Ok(dialbridge_router::Plan::from_toml_str(
        &config.path,
        &config.text.0,
    )?)
}

/// Every listening socket of a bridge, bound before it runs.
#[derive(Debug)]
pub struct Bound {
    pub sip: Listeners,
    pub admin: TcpListener,
}

/// Binds the listeners of `config`: SIP (UDP, TCP, TLS) and the admin API. A UDP port of
/// 0 picks a free port, and TCP then takes the same one (SIP listens on one port for
/// both), so tests can run in parallel.
pub async fn bind(config: &Config) -> Result<Bound, Error> {
    let sip = bind_sip(config).await?;
    let admin = bind_tcp(config.admin.listen).await?;
    Ok(Bound { sip, admin })
}

async fn bind_sip(config: &Config) -> Result<Listeners, Error> {
    let sip = &config.sip;
    let mut listeners = Listeners {
        udp: Vec::with_capacity(sip.udp.len()),
        tcp: Vec::with_capacity(sip.tcp.len()),
        tls: Vec::with_capacity(sip.tls.len()),
    };
    let mut tcp_left: Vec<SocketAddr> = sip.tcp.clone();
    for &addr in &sip.udp {
        // A UDP address of port 0 with a TCP address of port 0 on the same host takes one
        // free port for both (SIP listens on one port for both), so tests run in parallel.
        let twin = tcp_left.iter().position(|t| addr.port() == 0 && *t == addr);
        match twin {
            Some(i) => {
                tcp_left.remove(i);
                let (udp, tcp) = bind_same_port(addr).await?;
                listeners.udp.push(udp);
                listeners.tcp.push(tcp);
            }
            None => listeners.udp.push(bind_udp(addr).await?),
        }
    }
    for addr in tcp_left {
        listeners.tcp.push(bind_tcp(addr).await?);
    }
    if !sip.tls.is_empty() {
        let acceptor = load_tls_acceptor(
            &sip.tls_certificate,
            &sip.tls_private_key,
            sip.tls_client_ca.as_deref(),
        )?;
        for &addr in &sip.tls {
            listeners
                .tls
                .push((bind_tcp(addr).await?, acceptor.clone()));
        }
    }
    Ok(listeners)
}

async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, Error> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

async fn bind_same_port(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let mut last = None;
    for _ in 0..50 {
        let udp = bind_udp(addr).await?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Bind {
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the bridge on already-bound listeners until `shutdown` resolves.
pub async fn run(
    config: Config,
    bound: Bound,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    run_with_gauges(config, bound, shutdown, Arc::default()).await
}

/// [`run`], sharing the live gauges with the caller (tests, metrics).
pub async fn run_with_gauges(
    config: Config,
    bound: Bound,
    shutdown: impl Future<Output = ()>,
    gauges: Arc<Gauges>,
) -> Result<(), Error> {
    let services = Services::start(&config, gauges.clone())?;
    // Meetings span nodes wherever capacity is shared: same Redis, same instance.
    if let (Some(redis), Some(capacity)) = (&config.shared.redis, &services.shared_capacity) {
        cluster::start(redis, &config.shared, capacity.instance(), services.clone()).await?;
    }
    let (inbound_tx, inbound) = tokio::sync::mpsc::channel(8192);
    let transports = Transports::start(bound.sip, TransportConfig::default(), inbound_tx)?;
    let mut metrics = MetricsSources::new(services.router.clone(), gauges.clone()).with_media(
        services.media.clone(),
        services.conferences.quality.clone(),
        services.conferences.dtmf_failures.clone(),
    );
    metrics.transports = Some(transports.clone());
    let setup_latency = Arc::new(metrics::setup_latency_histogram());
    metrics.setup_latency = Some(setup_latency.clone());
    let auth_counters = Arc::new(metrics::AuthCounters::default());
    metrics.auth = Some(auth_counters.clone());
    metrics.dial_outs = Some(services.dial_outs.clone());
    metrics.shared = services.shared_capacity.clone();
    metrics.money = Some(metrics::MoneySource {
        refusals: services.money_refusals.clone(),
        ledger: services.ledger.clone(),
    });
    let observers = signaling::Observers {
        sip: metrics.sip.clone(),
        setup_latency,
        auth: auth_counters,
    };
    let config = Arc::new(config);
    let signaling = Signaling::new(
        config.clone(),
        services.clone(),
        signaling::Wire::Sockets(transports),
        gauges.clone(),
        observers,
    );
    // The trunks' health: the signaling task probes and publishes, these read.
    metrics.trunk_health = Some(signaling.trunk_health());
    let mut admin_state = AdminState::new(
        &config,
        services.router.clone(),
        services.directory.clone(),
        services.cdrs.clone(),
        Arc::new(LiveConferences(services.clone())),
        metrics,
    )?
    .with_ledger(services.ledger.clone());
    admin_state.trunk_health = signaling.trunk_health();
    // What administrators changed through the API, over the file's plan.
    let edits = admin_state.edits.clone();
    // Off the runtime's threads: the store may be PostgreSQL's blocking client.
    let reapplied = {
        let (edits, router) = (edits.clone(), services.router.clone());
        tokio::task::spawn_blocking(move || edits.reapply(&router)).await
    };
    reapplied
        .map_err(|_| Error::Config("re-applying the admin edits panicked".to_string()))?
        .map_err(|e| {
            Error::Config(format!(
                "{}: {} (the admin edits are kept there): {e}",
                config.path.display(),
                services::cdr_location(&config)
            ))
        })?;
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(admin::serve(bound.admin, admin_state, async move {
        let _ = admin_stopped.await;
    }));
    tracing::info!(
        udp = ?config.sip.udp,
        tcp = ?config.sip.tcp,
        tls = ?config.sip.tls,
        "dialbridge listening"
    );
    // Nodes sharing the store re-apply each other's edits while they run.
    let refresh = services
        .cdrs
        .is_shared()
        .then(|| tokio::spawn(refresh_edits(services.router.clone(), edits.clone())));
    let reload = tokio::spawn(reload_on_sighup(
        config.path.clone(),
        services.router.clone(),
        edits,
    ));
    signaling.run(inbound, shutdown).await;
    // The calls' leases in Redis go back now rather than when their lease runs out.
    if let Some(shared) = &services.shared_capacity {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), shared.flush()).await;
    }
    log_what_is_left(&services, &gauges).await;
    reload.abort();
    if let Some(refresh) = refresh {
        refresh.abort();
    }
    let _ = admin_stop.send(());
    let _ = admin.await;
    Ok(())
}

/// Says on the way out what the bridge still held once its calls were dropped: all
/// zero, or a leak to chase. The calls' media tasks stop asynchronously, so their
/// sessions are given a moment to close.
async fn log_what_is_left(services: &Services, gauges: &Gauges) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while services.media.session_count() > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let reserved: u32 = services
        .router
        .snapshot()
        .numbers
        .iter()
        .map(|n| n.in_progress)
        .sum();
    tracing::info!(
        calls = gauges.calls.load(std::sync::atomic::Ordering::Relaxed),
        reserved,
        media_sessions = services.media.session_count(),
        rtp_ports = services.media.ports_in_use(),
        "bridge stopped"
    );
}

/// Every [`plan_edits::REFRESH_EVERY`], applies the plan edits again if another node
/// changed them in the store they share (on the blocking pool: the store is PostgreSQL's
/// blocking client). A store that cannot answer is tried again at the next tick.
async fn refresh_edits(router: dialbridge_router::Router, edits: plan_edits::DurableEdits) {
    let mut ticks = tokio::time::interval(plan_edits::REFRESH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (router, edits) = (router.clone(), edits.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || edits.refresh(&router)).await {
            tracing::warn!(error = %e, "other nodes' admin edits not looked for");
        }
    }
}

/// SIGHUP re-reads the configuration file and swaps in its number plan: calls in progress
/// keep their reservations, new calls see the new plan at once. A file that does not
/// validate changes nothing (the error is logged with its file and line).
async fn reload_on_sighup(
    path: std::path::PathBuf,
    router: dialbridge_router::Router,
    edits: plan_edits::DurableEdits,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match Config::load(&path).and_then(|c| plan_from(&c)) {
                Ok(plan) => {
                    router.replace_plan(plan);
                    tracing::info!(path = %path.display(), "configuration reloaded");
                    // The admin edits go back on top; conflicts are logged and listed.
                    let (router, edits) = (router.clone(), edits.clone());
                    let reapplied =
                        tokio::task::spawn_blocking(move || edits.reapply(&router)).await;
                    if let Ok(Err(e)) = reapplied {
                        tracing::error!(error = %e, "admin edits not re-applied: the file's plan runs");
                    }
                }
                Err(e) => tracing::error!(error = %e, "configuration not reloaded"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, router, edits);
        std::future::pending::<()>().await;
    }
}

/// The admin API's view of the meetings ([`admin::LiveCalls`]). It lives in the wiring,
/// which knows both sides, so the meeting runtime never imports the admin API.
struct LiveConferences(Arc<Services>);

impl admin::LiveCalls for LiveConferences {
    fn list_conferences(&self) -> admin::LiveFuture<'_, Vec<ConferenceView>> {
        Box::pin(self.0.conferences.describe())
    }

    fn mute(
        &self,
        participant: MemberId,
        muted: bool,
    ) -> admin::LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(self.0.conferences.mute(participant, muted))
    }

    fn kick(&self, participant: MemberId) -> admin::LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(self.0.conferences.kick(participant))
    }

    fn lock(
        &self,
        conference: ConferenceKey,
        locked: bool,
    ) -> admin::LiveFuture<'_, Result<(), LiveError>> {
        Box::pin(self.0.conferences.lock(conference, locked))
    }

    fn record(
        &self,
        conference: ConferenceKey,
        on: bool,
    ) -> admin::LiveFuture<'_, Result<RecordingView, LiveError>> {
        Box::pin(self.0.conferences.record(conference, on))
    }

    fn dial_out(
        &self,
        conference: ConferenceKey,
        number: String,
    ) -> admin::LiveFuture<'_, Result<dial_out::DialOutId, dial_out::DialOutRefusal>> {
        Box::pin(self.0.conferences.dial_out(conference, number))
    }

    fn dial_outs(&self, conference: Option<(&str, &str)>) -> Vec<dial_out::DialOutView> {
        self.0.dial_outs.list(conference)
    }
}
