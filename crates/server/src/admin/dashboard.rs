//! The live dashboard: a page at `/dashboard` (its script and style beside it) and the
//! stream it reads, `GET /api/v1/events`, server-sent events (WHATWG HTML §9.2) carrying
//! one JSON snapshot of the bridge per event: bridges with their numbers' load, trunks,
//! refusals by reason, conferences with their participants, and warnings.
//!
//! One ticker task per admin listener builds the snapshot once a second while at least
//! one page watches, and publishes it only when it differs from the last one; every
//! stream forwards what the ticker published. So the cost does not grow with the number
//! of pages, which is bounded anyway ([`MAX_STREAMS`]). "Recent" figures (refusals and
//! warnings over the last [`WINDOW`]) are counted from the ticker's own samples, so
//! they start when the first page opens; totals since start are always there.
//!
//! The page and its assets carry no data and are served without a credential; the
//! stream is an API route like the others. The page signs in once with a token
//! (`POST /api/v1/session`) and then reads the stream with its session cookie: no token
//! in a URL (access logs, proxies, browser history) nor in the page's storage.
//!
//! Admins and read-only tokens see the whole bridge. A tenant admin's stream carries
//! its tenant's view: its bridges and their numbers, its conferences, and the warnings
//! about them; nothing of the trunks, the unassigned numbers or the bridge-wide
//! refusal and media counters, which are everybody's traffic. The ticker builds each
//! tenant's view beside the whole one, so a stream only picks its own.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dialbridge_router::{NumberInfo, NumberKind, ReasonCounts, RejectReason, Snapshot};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::auth::Credential;
use super::plan::NumberView;
use super::{ApiError, ConferenceView, ParticipantQuality, Shared};
use crate::dial_out::DialOutView;
use crate::tokens::Principal;
use crate::trunk_health::TrunkHealthView;

/// Event streams open at once, over every page; one more is refused with 503.
pub const MAX_STREAMS: usize = 16;
/// How often the ticker looks at the bridge.
pub const TICK: Duration = Duration::from_secs(1);
/// What "recent" means for refusals and warnings.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How often a stream checks that its token or session is still good (revoked, signed
/// out or expired: the stream ends).
pub const RECHECK: Duration = Duration::from_secs(5);
/// A comment line this often keeps idle streams (and the proxies between) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Share of a capacity in use from which the dashboard warns.
const BUSY_PERCENT: u64 = 80;
/// RTP loss share (per mille) over the window from which the dashboard warns.
const LOSS_PER_MILLE: u64 = 10;
/// A participant's audio is flagged above this loss (percent, last RTCP interval)...
const PARTICIPANT_LOSS_PERCENT: f64 = 3.0;
/// ... or this interarrival jitter (ms) ...
const PARTICIPANT_JITTER_MS: f64 = 30.0;
/// ... or this round-trip time (ms).
const PARTICIPANT_RTT_MS: f64 = 300.0;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The page may load only its own script and style and talk only to its own origin:
/// even a rendering bug could not run injected script or send data elsewhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The streams of one admin listener: the latest snapshot, the ticker's state and the
/// bound on open streams. Cloning shares them. [`super::serve`] closes it when its
/// shutdown future resolves; whoever serves [`super::app`] otherwise must call
/// [`DashboardHub::close`] likewise, or a graceful shutdown waits for open pages.
#[derive(Debug, Clone)]
pub struct DashboardHub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    frames: watch::Sender<Frame>,
    /// Whether a ticker task runs; taken with `frames.receiver_count()` so a stream
    /// that subscribes as the ticker stops always finds one running.
    ticking: Mutex<bool>,
    slots: Arc<Semaphore>,
}

/// What the streams forward.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    /// Nothing built yet.
    Empty,
    /// A snapshot, serialised once for every stream.
    Snapshot(Arc<Views>),
    /// The listener is shutting down: streams end so the graceful shutdown can finish.
    Closed,
}

impl Default for DashboardHub {
    fn default() -> Self {
        DashboardHub {
            inner: Arc::new(HubInner {
                frames: watch::Sender::new(Frame::Empty),
                ticking: Mutex::new(false),
                slots: Arc::new(Semaphore::new(MAX_STREAMS)),
            }),
        }
    }
}

impl DashboardHub {
    /// Ends every stream and refuses new ones (the listener is shutting down).
    pub fn close(&self) {
        self.inner.frames.send_replace(Frame::Closed);
    }

    /// A receiver of the snapshots, starting the ticker if none runs.
    fn subscribe(&self, state: &Shared) -> watch::Receiver<Frame> {
        let mut ticking = self
            .inner
            .ticking
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let frames = self.inner.frames.subscribe();
        if !*ticking {
            *ticking = true;
            tokio::spawn(tick(state.clone()));
        }
        frames
    }

    /// Whether the ticker should stop (nobody watches, or closing), marking it stopped.
    fn ticker_done(&self) -> bool {
        let mut ticking = self
            .inner
            .ticking
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let done =
            self.inner.frames.receiver_count() == 0 || *self.inner.frames.borrow() == Frame::Closed;
        if done {
            *ticking = false;
        }
        done
    }
}

/// One snapshot as each kind of stream sees it.
#[derive(Debug, PartialEq)]
struct Views {
    /// The whole bridge.
    all: Arc<str>,
    /// Each tenant's own view, by tenant.
    tenants: BTreeMap<String, Arc<str>>,
    /// The view of a tenant with no bridge (yet).
    nothing: Arc<str>,
}

impl Views {
    fn for_scope(&self, tenant: Option<&str>) -> &Arc<str> {
        match tenant {
            None => &self.all,
            Some(t) => self.tenants.get(t).unwrap_or(&self.nothing),
        }
    }
}

/// The event stream's path (behind the bearer check, like the API).
pub(super) const EVENTS: &str = "/api/v1/events";

/// The page and its assets, served without a token.
pub(super) fn pages() -> axum::Router<Shared> {
    axum::Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/dashboard.js", get(script))
        .route("/dashboard/dashboard.css", get(style))
}

/// `GET /dashboard`: the page. It holds no data; without a session it asks to sign in.
pub(super) async fn page() -> Response {
    let mut response = asset("text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    // Nothing secret is in the URL any more; still, never pass the dashboard's on.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /dashboard/dashboard.js`.
pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/dashboard.css`.
pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Live state for the dashboard: a server-sent event stream of JSON `snapshot` events.
///
/// Bridges, numbers, refusals and conferences, sent when something changed, at most once
/// a second, the current state first.
#[utoipa::path(get, path = "/api/v1/events",
    responses((status = 200, description = "The event stream",
        content_type = "text/event-stream", body = String)))]
pub(super) async fn events(
    State(state): State<Shared>,
    Extension(who): Extension<Principal>,
    Extension(credential): Extension<Credential>,
) -> Result<Response, ApiError> {
    let tenant = match who {
        Principal::TenantAdmin { tenant } => Some(tenant),
        _ => None,
    };
    let hub = &state.dashboard;
    if *hub.inner.frames.borrow() == Frame::Closed {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bridge is shutting down",
        ));
    }
    let permit = hub.inner.slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} dashboards are open already; close one"),
        )
    })?;
    let frames = hub.subscribe(&state);
    // Two events of slack: a slow page gets the latest snapshot late, never a backlog.
    let (tx, rx) = mpsc::channel(2);
    let stream = Stream {
        tenant,
        credential,
        state: state.clone(),
    };
    tokio::spawn(forward(frames, tx, permit, stream));
    let mut response = Sse::new(Events(rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The body of one stream.
struct Events(mpsc::Receiver<Event>);

impl futures_core::Stream for Events {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

/// Who one stream is for.
struct Stream {
    /// Its tenant's view, or (`None`) the whole one.
    tenant: Option<String>,
    /// What let it in; when that is revoked, signed out or expired, the stream ends.
    credential: Credential,
    state: Shared,
}

/// Copies published snapshots (the view of the stream's tenant, or the whole one) to one
/// stream until the page goes away, the listener closes or the stream's credential is
/// no longer good; the permit is held as long.
async fn forward(
    mut frames: watch::Receiver<Frame>,
    tx: mpsc::Sender<Event>,
    _permit: OwnedSemaphorePermit,
    stream: Stream,
) {
    let tenant = stream.tenant;
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    let mut last: Option<Arc<str>> = None;
    loop {
        let frame = frames.borrow_and_update().clone();
        match frame {
            Frame::Closed => return,
            Frame::Empty => {}
            Frame::Snapshot(views) => {
                let json = views.for_scope(tenant.as_deref());
                // Unchanged when only another tenant's view changed: nothing to send.
                if last.as_ref() != Some(json) {
                    last = Some(json.clone());
                    let event = Event::default().event("snapshot").data(&**json);
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }
        loop {
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { return } else { break },
                () = tx.closed() => return,
                _ = recheck.tick() => {
                    if !stream.credential.still_good(&stream.state).await {
                        return;
                    }
                }
            }
        }
    }
}

/// The ticker: builds a snapshot every [`TICK`] and publishes it when it changed; stops
/// when no stream is left.
async fn tick(state: Shared) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut history = History::default();
    let mut last: Option<(Value, BTreeMap<String, Value>)> = None;
    loop {
        interval.tick().await;
        if state.dashboard.ticker_done() {
            return;
        }
        let now = Instant::now();
        let inputs = Inputs::read(&state).await;
        let recent = history.recent(now, inputs.counters);
        let all = view(&inputs, &recent, None);
        let tenants: BTreeMap<String, Value> = inputs
            .bridges
            .iter()
            .filter_map(|(_, tenant, _)| tenant.clone())
            .map(|t| {
                let v = view(&inputs, &recent, Some(&t));
                (t, v)
            })
            .collect();
        let views = (all, tenants);
        if last.as_ref() != Some(&views) {
            let text = |v: &Value| -> Arc<str> { v.to_string().into() };
            let published = Arc::new(Views {
                all: text(&views.0),
                tenants: views.1.iter().map(|(t, v)| (t.clone(), text(v))).collect(),
                nothing: text(&view(&Inputs::default(), &Counters::default(), Some(""))),
            });
            state.dashboard.inner.frames.send_if_modified(|frame| {
                // Never overwrite Closed: the streams must see it.
                if *frame == Frame::Closed {
                    return false;
                }
                *frame = Frame::Snapshot(published);
                true
            });
            last = Some(views);
        }
    }
}

/// Everything one snapshot is built from, read from the bridge at one moment.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub router: Option<Snapshot>,
    /// Every number of the plan.
    pub numbers: Vec<NumberInfo>,
    /// `(bridge, tenant, enabled)` as the router has them now.
    pub bridges: Vec<(String, Option<String>, Option<bool>)>,
    pub conferences: Vec<ConferenceView>,
    /// Dial-outs in progress and lately finished.
    pub dial_outs: Vec<DialOutView>,
    pub counters: Counters,
    /// Whether RTP counters are wired (else there is no media quality to judge).
    pub media_counters: bool,
    /// The trunks' outbound targets and their health, as last probed.
    pub trunk_health: Vec<TrunkHealthView>,
}

impl Inputs {
    async fn read(state: &Shared) -> Inputs {
        let router = state.router.snapshot();
        let numbers = state
            .router
            .numbers()
            .iter()
            .filter_map(|n| state.router.number(*n))
            .collect();
        let bridges = router
            .bridges
            .iter()
            .map(|b| {
                let info = state.router.bridge(&b.name);
                (
                    b.name.to_string(),
                    info.as_ref().map(|i| i.tenant.to_string()),
                    info.map(|i| i.enabled),
                )
            })
            .collect();
        let conferences = state.live.list_conferences().await;
        let dial_outs = state.live.dial_outs(None);
        let metrics = &state.metrics;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut counters = Counters {
            refused: router.rejected,
            sip_overloaded: load(&metrics.sip.overloaded),
            sip_malformed: load(&metrics.sip.malformed),
            ..Counters::default()
        };
        if let Some(t) = &metrics.transports {
            let s = t.stats();
            counters.transport_dropped = load(&s.datagrams_dropped) + load(&s.oversized_refused);
            counters.transport_refused = load(&s.connections_refused);
            counters.send_failures = load(&s.send_failures);
        }
        if let Some(rtp) = &metrics.rtp {
            counters.rtp_received = rtp.packets_received.get();
            counters.rtp_lost = rtp.packets_lost.get();
            counters.rtp_dropped = rtp.send_dropped.get() + rtp.receive_dropped.get();
        }
        Inputs {
            router: Some(router),
            numbers,
            bridges,
            conferences,
            dial_outs,
            counters,
            media_counters: metrics.rtp.is_some(),
            trunk_health: state.trunk_health.current().to_vec(),
        }
    }
}

/// The bridge's counters (totals since start) that recent figures are taken from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub refused: ReasonCounts,
    pub rtp_received: u64,
    pub rtp_lost: u64,
    pub rtp_dropped: u64,
    pub transport_dropped: u64,
    pub transport_refused: u64,
    pub send_failures: u64,
    pub sip_overloaded: u64,
    pub sip_malformed: u64,
}

impl Counters {
    /// `self - earlier`, counter by counter (a counter never goes back; saturate if so).
    fn since(&self, earlier: &Counters) -> Counters {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let mut refused = ReasonCounts::default();
        for (slot, (now, then)) in refused
            .0
            .iter_mut()
            .zip(self.refused.0.iter().zip(earlier.refused.0.iter()))
        {
            *slot = d(*now, *then);
        }
        Counters {
            refused,
            rtp_received: d(self.rtp_received, earlier.rtp_received),
            rtp_lost: d(self.rtp_lost, earlier.rtp_lost),
            rtp_dropped: d(self.rtp_dropped, earlier.rtp_dropped),
            transport_dropped: d(self.transport_dropped, earlier.transport_dropped),
            transport_refused: d(self.transport_refused, earlier.transport_refused),
            send_failures: d(self.send_failures, earlier.send_failures),
            sip_overloaded: d(self.sip_overloaded, earlier.sip_overloaded),
            sip_malformed: d(self.sip_malformed, earlier.sip_malformed),
        }
    }
}

/// Counters sampled over the last [`WINDOW`], one sample per tick (so at most
/// `WINDOW / TICK + 1` of them).
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<(Instant, Counters)>,
}

impl History {
    /// Records `now`'s counters and returns what they grew by within the window.
    pub fn recent(&mut self, now: Instant, counters: Counters) -> Counters {
        while let Some((at, _)) = self.samples.front() {
            if now.saturating_duration_since(*at) > WINDOW {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let recent = match self.samples.front() {
            Some((_, oldest)) => counters.since(oldest),
            // The first sample: growth since start is unknown, not "everything".
            None => Counters::default(),
        };
        self.samples.push_back((now, counters));
        recent
    }
}

/// The snapshot the page renders, from `inputs` at `now`: the whole bridge's (the ticker
/// takes the recent figures once for every view; the tests take one view).
#[cfg(test)]
pub fn snapshot(inputs: &Inputs, history: &mut History, now: Instant) -> Value {
    let recent = history.recent(now, inputs.counters);
    view(inputs, &recent, None)
}

/// The snapshot of the whole bridge (`tenant` is `None`), or of one tenant's part of it:
/// its bridges, their numbers and its conferences, and no bridge-wide figure.
pub fn view(inputs: &Inputs, recent: &Counters, tenant: Option<&str>) -> Value {
    let mine = |t: Option<&str>| tenant.is_none() || t == tenant;
    let mut warnings = Vec::new();
    let empty = Snapshot {
        admitted: 0,
        rejected: ReasonCounts::default(),
        trunks: Vec::new(),
        bridges: Vec::new(),
        numbers: Vec::new(),
    };
    let router = inputs.router.as_ref().unwrap_or(&empty);

    let mut bridges = Vec::new();
    let mut admitted = 0;
    for b in router.bridges.iter().filter(|b| b.capacity.is_some()) {
        let (owner, enabled) = inputs
            .bridges
            .iter()
            .find(|(name, _, _)| **name == *b.name)
            .map_or((None, None), |(_, t, e)| (t.clone(), *e));
        if !mine(owner.as_deref()) {
            continue;
        }
        admitted += b.admitted;
        let numbers: Vec<Value> = inputs
            .numbers
            .iter()
            .filter(|n| n.bridge.as_deref() == Some(&*b.name))
            .map(|n| number(n, &mut warnings))
            .collect();
        busy(&mut warnings, "bridge", &b.name, b.in_progress, b.capacity);
        if enabled == Some(false) {
            warnings.push(warning("warn", format!("bridge {} is disabled", b.name)));
        }
        bridges.push(json!({
            "name": &*b.name,
            "tenant": owner,
            "enabled": enabled,
            "capacity": b.capacity,
            "in_progress": b.in_progress,
            "admitted": b.admitted,
            "refused": reasons(&b.rejected),
            "numbers": numbers,
        }));
    }
    let unassigned: Vec<Value> = inputs
        .numbers
        .iter()
        .filter(|n| n.bridge.is_none() && tenant.is_none())
        .map(|n| number(n, &mut warnings))
        .collect();
    let trunks: Vec<Value> = router
        .trunks
        .iter()
        .filter(|t| t.capacity.is_some() && tenant.is_none())
        .map(|t| {
            busy(&mut warnings, "trunk", &t.name, t.in_progress, t.capacity);
            let health = inputs.trunk_health.iter().find(|h| h.name == t.name);
            if let Some(h) = health.filter(|h| !h.state.is_up()) {
                let text = format!(
                    "trunk {} is down ({} at {}): dial-outs skip it",
                    t.name,
                    h.last_finding
                        .map_or_else(|| "no answer".to_owned(), |f| f.label()),
                    h.target
                );
                warnings.push(warning("alert", text));
            }
            json!({
                "name": &*t.name,
                "capacity": t.capacity,
                "in_progress": t.in_progress,
                "outbound": health.map(|h| h.target.to_string()),
                "health": health.map(|h| h.state.as_str()),
            })
        })
        .collect();

    let refusals: Vec<Value> = RejectReason::ALL
        .iter()
        .filter(|r| inputs.counters.refused.get(**r) > 0 && tenant.is_none())
        .map(|r| {
            json!({
                "reason": r.as_str(),
                "last_minute": recent.refused.get(*r),
                "total": inputs.counters.refused.get(*r),
            })
        })
        .collect();
    for reason in [
        RejectReason::NumberBusy,
        RejectReason::BridgeOverloaded,
        RejectReason::TrunkOverloaded,
    ] {
        let n = recent.refused.get(reason);
        if n > 0 && tenant.is_none() {
            warnings.push(warning(
                "alert",
                format!("{n} calls refused in the last minute: {}", reason.as_str()),
            ));
        }
    }
    if tenant.is_none() {
        quality(&mut warnings, recent, inputs.media_counters);
    }
    let conferences: Vec<Value> = inputs
        .conferences
        .iter()
        .filter(|c| mine(Some(&c.tenant)))
        .map(|c| conference(c, &mut warnings))
        .collect();

    // The newest first, a screenful.
    let dial_outs: Vec<&DialOutView> = inputs
        .dial_outs
        .iter()
        .rev()
        .filter(|d| mine(Some(&d.tenant)))
        .take(20)
        .collect();

    let mut notes = Vec::new();
    if !inputs.media_counters {
        notes.push(
            "No media quality figures: RTP loss counters are not wired to the admin API yet."
                .to_owned(),
        );
    }
    json!({
        "bridges": bridges,
        "unassigned": unassigned,
        "trunks": trunks,
        "admitted": if tenant.is_none() { router.admitted } else { admitted },
        "refusals": refusals,
        "conferences": conferences,
        "dial_outs": dial_outs,
        "warnings": warnings,
        "notes": notes,
    })
}

/// A conference as the API lists it, each participant whose audio is poor carrying a
/// `quality_warning` (its badge on the page) and adding a line to the warnings.
fn conference(c: &ConferenceView, warnings: &mut Vec<Value>) -> Value {
    let mut value = serde_json::to_value(c).unwrap_or(Value::Null);
    let rows = value
        .get_mut("participants")
        .and_then(Value::as_array_mut)
        .map(|rows| rows.iter_mut());
    for (p, row) in c.participants.iter().zip(rows.into_iter().flatten()) {
        let Some(text) = p.quality.as_ref().and_then(participant_warning) else {
            continue;
        };
        warnings.push(warning(
            "warn",
            format!(
                "poor audio from {} in conference {}: {text}",
                p.calling, c.conference_id
            ),
        ));
        if let Some(row) = row.as_object_mut() {
            row.insert("quality_warning".into(), Value::String(text));
        }
    }
    value
}

/// What is wrong with a participant's audio ("loss 5.0%, jitter 41.2 ms"), if anything.
pub fn participant_warning(q: &ParticipantQuality) -> Option<String> {
    let mut faults = Vec::new();
    if q.loss_percent > PARTICIPANT_LOSS_PERCENT {
        faults.push(format!("loss {:.1}%", q.loss_percent));
    }
    if q.jitter_ms > PARTICIPANT_JITTER_MS {
        faults.push(format!("jitter {:.1} ms", q.jitter_ms));
    }
    if let Some(rtt) = q.rtt_ms.filter(|rtt| *rtt > PARTICIPANT_RTT_MS) {
        faults.push(format!("RTT {rtt:.0} ms"));
    }
    (!faults.is_empty()).then(|| faults.join(", "))
}

fn number(n: &NumberInfo, warnings: &mut Vec<Value>) -> Value {
    let label = match n.kind {
        NumberKind::User => format!("user number {}", n.number),
        NumberKind::Service => format!("number {}", n.number),
    };
    busy(warnings, "", &label, n.in_progress, Some(n.capacity));
    serde_json::to_value(NumberView::from(n.clone())).unwrap_or(Value::Null)
}

/// A warning when `in_progress` reaches [`BUSY_PERCENT`] of `capacity` (an alert when
/// full).
fn busy(
    warnings: &mut Vec<Value>,
    kind: &str,
    name: &str,
    in_progress: u32,
    capacity: Option<u32>,
) {
    let Some(capacity) = capacity.filter(|c| *c > 0) else {
        return;
    };
    let what = if kind.is_empty() {
        name.to_owned()
    } else {
        format!("{kind} {name}")
    };
    if in_progress >= capacity {
        warnings.push(warning(
            "alert",
            format!("{what} is full: {in_progress} of {capacity} calls"),
        ));
    } else if u64::from(in_progress) * 100 >= u64::from(capacity) * BUSY_PERCENT {
        warnings.push(warning(
            "warn",
            format!("{what} is nearly full: {in_progress} of {capacity} calls"),
        ));
    }
}

/// Warnings from the media and transport counters' growth over the window.
fn quality(warnings: &mut Vec<Value>, recent: &Counters, media: bool) {
    if media {
        let expected = recent.rtp_received + recent.rtp_lost;
        if expected > 0 && recent.rtp_lost * 1000 >= expected * LOSS_PER_MILLE {
            let percent = recent.rtp_lost as f64 * 100.0 / expected as f64;
            warnings.push(warning(
                "warn",
                format!("RTP loss {percent:.1}% in the last minute"),
            ));
        }
    }
    for (n, what) in [
        (recent.rtp_dropped, "RTP packets dropped by the bridge"),
        (recent.transport_dropped, "SIP datagrams dropped"),
        (recent.transport_refused, "SIP connections refused"),
        (recent.send_failures, "SIP messages that could not be sent"),
        (recent.sip_overloaded, "SIP requests refused for overload"),
        (recent.sip_malformed, "malformed SIP messages"),
    ] {
        if n > 0 {
            warnings.push(warning("warn", format!("{n} {what} in the last minute")));
        }
    }
}

fn reasons(counts: &ReasonCounts) -> BTreeMap<&'static str, u64> {
    counts.iter().map(|(r, n)| (r.as_str(), n)).collect()
}

fn warning(level: &str, text: String) -> Value {
    json!({ "level": level, "text": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(busy: u64, lost: u64, received: u64) -> Counters {
        let mut refused = ReasonCounts::default();
        refused.0[RejectReason::NumberBusy.index()] = busy;
        Counters {
            refused,
            rtp_lost: lost,
            rtp_received: received,
            ..Counters::default()
        }
    }

    #[test]
    fn recent_is_the_growth_within_the_window() {
        let t0 = Instant::now();
        let mut h = History::default();
        assert_eq!(h.recent(t0, counters(5, 0, 0)), Counters::default());
        let r = h.recent(t0 + Duration::from_secs(30), counters(7, 0, 0));
        assert_eq!(r.refused.get(RejectReason::NumberBusy), 2);
        // 61 s after the first sample, the first one has left the window.
        let r = h.recent(t0 + Duration::from_secs(61), counters(8, 0, 0));
        assert_eq!(r.refused.get(RejectReason::NumberBusy), 1);
        let r = h.recent(t0 + Duration::from_secs(200), counters(8, 0, 0));
        assert_eq!(r.refused.get(RejectReason::NumberBusy), 0);
        assert!(h.samples.len() <= 2);
    }

    #[test]
    fn the_window_holds_at_most_a_minute_of_ticks() {
        let t0 = Instant::now();
        let mut h = History::default();
        for s in 0..600 {
            h.recent(t0 + Duration::from_secs(s), Counters::default());
        }
        assert_eq!(h.samples.len(), 61);
    }

    #[test]
    fn warnings_for_full_numbers_recent_refusals_and_loss() {
        let t0 = Instant::now();
        let mut h = History::default();
        let mut inputs = Inputs {
            media_counters: true,
            counters: counters(0, 0, 0),
            ..Inputs::default()
        };
        let first = snapshot(&inputs, &mut h, t0);
        assert_eq!(first["warnings"], json!([]));
        assert_eq!(first["refusals"], json!([]));

        inputs.counters = counters(3, 20, 980);
        let s = snapshot(&inputs, &mut h, t0 + TICK);
        let texts: Vec<&str> = s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["text"].as_str().unwrap())
            .collect();
        assert!(
            texts.contains(&"3 calls refused in the last minute: number_busy"),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"RTP loss 2.0% in the last minute"),
            "{texts:?}"
        );
        assert_eq!(
            s["refusals"],
            json!([{ "reason": "number_busy", "last_minute": 3, "total": 3 }])
        );
        let mut w = Vec::new();
        busy(&mut w, "", "user number +14255550123", 2, Some(2));
        busy(&mut w, "bridge", "b", 8, Some(10));
        busy(&mut w, "bridge", "c", 7, Some(10));
        assert_eq!(
            w,
            vec![
                warning(
                    "alert",
                    "user number +14255550123 is full: 2 of 2 calls".into()
                ),
                warning("warn", "bridge b is nearly full: 8 of 10 calls".into()),
            ]
        );
    }

    #[test]
    fn a_participant_with_poor_audio_gets_a_badge_and_a_warning() {
        use crate::admin::ParticipantView;
        use dialbridge_conference::ivr::Role;
        let quality = |loss_percent, jitter_ms, rtt_ms| ParticipantQuality {
            loss_percent,
            packets_lost: 12,
            jitter_ms,
            rtt_ms,
        };
        let person = |id, calling: &str, quality| ParticipantView {
            id,
            role: Role::Participant,
            calling: calling.into(),
            dialled: "+33170000100".into(),
            joined: crate::cdr::Timestamp::now(),
            muted: false,
            talking: false,
            in_lobby: false,
            quality,
        };
        let inputs = Inputs {
            media_counters: true,
            conferences: vec![ConferenceView {
                tenant: "contoso".into(),
                conference_id: "123456789".into(),
                organiser: None,
                locked: false,
                recording: false,
                participants: vec![
                    person(1, "+33611111111", Some(quality(0.4, 3.0, Some(40.0)))),
                    person(2, "+33622222222", Some(quality(5.0, 41.2, Some(350.0)))),
                    person(3, "+33633333333", None),
                    person(4, "+33644444444", Some(quality(3.0, 30.0, Some(300.0)))),
                ],
            }],
            ..Inputs::default()
        };
        let s = snapshot(&inputs, &mut History::default(), Instant::now());
        let rows = s["conferences"][0]["participants"].as_array().unwrap();
        let badges: Vec<&Value> = rows.iter().map(|p| &p["quality_warning"]).collect();
        // At the thresholds exactly (row 4) there is nothing to flag yet.
        assert_eq!(
            badges,
            [
                &Value::Null,
                &json!("loss 5.0%, jitter 41.2 ms, RTT 350 ms"),
                &Value::Null,
                &Value::Null
            ]
        );
        assert_eq!(rows[1]["quality"]["loss_percent"], json!(5.0));
        assert_eq!(rows[0]["quality"]["rtt_ms"], json!(40.0));
        assert_eq!(rows[2]["quality"], Value::Null);
        assert_eq!(
            s["warnings"],
            json!([warning(
                "warn",
                "poor audio from +33622222222 in conference 123456789: \
                 loss 5.0%, jitter 41.2 ms, RTT 350 ms"
                    .into()
            )])
        );
        assert_eq!(
            participant_warning(&quality(0.0, 31.0, None)).as_deref(),
            Some("jitter 31.0 ms")
        );
    }

    #[test]
    fn a_tenants_view_holds_its_bridges_and_meetings_and_no_bridge_wide_figure() {
        let config = crate::config::Config::demo().unwrap();
        let router = dialbridge_router::Router::new(crate::plan_from(&config).unwrap());
        let meeting = |tenant: &str, id: &str| ConferenceView {
            tenant: tenant.into(),
            conference_id: id.into(),
            organiser: None,
            locked: false,
            recording: false,
            participants: Vec::new(),
        };
        let inputs = Inputs {
            router: Some(router.snapshot()),
            numbers: router
                .numbers()
                .iter()
                .filter_map(|n| router.number(*n))
                .collect(),
            bridges: router
                .bridges()
                .iter()
                .map(|b| {
                    (
                        b.name.to_string(),
                        Some(b.tenant.to_string()),
                        Some(b.enabled),
                    )
                })
                .collect(),
            conferences: vec![
                meeting("contoso", "123456789"),
                meeting("fabrikam", "555000111"),
            ],
            dial_outs: Vec::new(),
            counters: counters(4, 50, 50),
            media_counters: true,
            trunk_health: vec![TrunkHealthView {
                trunk: router.trunk_by_name("telco-a").unwrap(),
                name: "telco-a".into(),
                target: "127.0.0.20:5080".parse().unwrap(),
                state: crate::trunk_health::HealthState::Down,
                consecutive_failures: 1,
                last_finding: Some(crate::trunk_health::Finding::Answered(503)),
                last_finding_at: None,
                last_change_at: None,
                options_sent: 1,
                options_failed: 1,
            }],
        };
        let recent = counters(4, 50, 50);
        let whole = view(&inputs, &recent, None);
        let all = whole.to_string();
        assert!(
            all.contains("fabrikam-bridge") && all.contains("telco-b"),
            "{all}"
        );
        let telco_a = &whole["trunks"][1];
        assert_eq!(
            (&telco_a["name"], &telco_a["health"], &telco_a["outbound"]),
            (&json!("telco-a"), &json!("down"), &json!("127.0.0.20:5080"))
        );
        assert_eq!(whole["trunks"][0]["health"], Value::Null, "not watched");
        assert!(
            all.contains("trunk telco-a is down (503 at 127.0.0.20:5080): dial-outs skip it"),
            "{all}"
        );
        assert!(all.contains("RTP loss"), "{all}");
        let contoso = view(&inputs, &recent, Some("contoso"));
        let text = contoso.to_string();
        for other in [
            "fabrikam",
            "+493070000100",
            "555000111",
            "+14255550999",
            "telco-",
            "RTP loss",
        ] {
            assert!(!text.contains(other), "{other}: {text}");
        }
        assert_eq!(contoso["bridges"][0]["name"], "contoso-bridge");
        assert_eq!(contoso["conferences"][0]["conference_id"], "123456789");
        assert_eq!(contoso["refusals"], json!([]));
        assert_eq!(
            view(&inputs, &recent, Some("northwind"))["bridges"],
            json!([])
        );
    }

    #[test]
    fn without_media_counters_no_loss_is_judged_and_a_note_says_so() {
        let mut h = History::default();
        let inputs = Inputs::default();
        let s = snapshot(&inputs, &mut h, Instant::now());
        let notes = s["notes"].to_string();
        assert!(notes.contains("RTP loss counters are not wired"), "{notes}");
    }
}
