//! The media engine (feature `tokio`): the RTP port pool, one UDP socket pair per
//! participant, conference rooms, RTCP reports, SRTP, and a few threads that carry
//! every session: per shard ([`EngineOptions::shards`], one per core by default) a
//! clock thread that paces its sessions' 20 ms packets and mixes its rooms, and a
//! receive thread that reads sockets in batches.
//!
//! Why a clock per shard, not a timer per participant: a timer per participant means
//! thousands of wake-ups every 20 ms on a few cores, each switching to a different
//! task. Here each shard's clock wakes once per tick, takes its table's lock once and
//! walks its rooms and sessions (`shard.rs`), running each room's [`crate::pipeline`]
//! (total minus own, O(N) per room, at 16 kHz: see [`crate::pipeline::RoomMix`] for
//! how G.711 members avoid a resampler per participant) and sending each packet with
//! a non-blocking `sendto` as it is built (a full socket buffer drops the packet,
//! counted: late audio is worthless). A session lives in the shard of its room, so a
//! room's tick touches one shard only. Idle rooms cost nothing but a map entry.
//! Nothing is allocated per tick or per packet once the buffers have grown to the
//! session count. How late each tick starts is kept in a lock-free histogram
//! ([`EngineStats::tick_lateness`]).
//!
//! Why no `sendmmsg`: it batches datagrams of ONE socket, and each participant has
//! its own socket (its port is in the SDP) and gets one packet per tick, so a batch
//! would hold one message — the same syscall count as `sendto`. Receiving batches
//! across participants through a paced `epoll_wait` and `recvmmsg` (see `io.rs`).
//!
//! RTCP (RFC 3550 §6): every session sends an SR (or RR while held) with SDES CNAME
//! about every 5 s (randomised 0.5–1.5×, §6.3.5) to the remote RTP port + 1 (no
//! rtcp-mux: the SDP layer does not negotiate it), and reads SR/RR on its own
//! port + 1: [`RtpSession::quality`] has loss, jitter and round-trip time.
//!
//! SRTP (RFC 3711, keyed by SDES): [`MediaEngine::open_srtp`] protects every packet
//! sent and drops every received packet that does not authenticate.
//!
//! Symmetric RTP (RFC 4961): a session opened with [`MediaEngine::open`] sends to the
//! address the SDP gave and re-latches only to a source with the same IP (a NAT or SBC
//! that changed the port); packets from any other IP are dropped, so a stranger cannot
//! hijack or inject into the stream. [`MediaEngine::open_latching`] also follows media
//! that comes from elsewhere than the SDP says (a caller behind a NAT), under the
//! rules of [`crate::latch`]; both kinds count what they latched and refused
//! ([`EngineStats::rtp_latched`], [`EngineStats::rtp_latch_refused`]).
//! A re-INVITE moves the stream with [`RtpSession::set_remote`]; hold (RFC 3264
//! §8.4) pauses it with [`RtpSession::set_sending`], timestamps running on.
//!
//! IPv6: an engine made with [`MediaEngine::with_ipv6`] binds a session whose remote
//! is IPv6 on its IPv6 address (same even-port range, a pool of its own); the SDP
//! answer carries [`RtpSession::local_addr`].

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::latch::{Latch, PayloadTypes};
use crate::srtp::{SrtpContext, SrtpKeys};
use crate::{AudioCodec, Error, FRAME_MS, PortAllocator, Prompt, RtpSender};

mod endpoint;
mod io;
mod outbound;
mod packed;
mod room;
mod shard;
mod stats;

use endpoint::{Endpoint, Link};
use outbound::{Outbound, REPORT_INTERVAL, Scratch};
pub use room::{Activity, RoomId};
use shard::{MAX_SHARDS, Shard, Table};
pub use stats::{LatencyHistogram, LatencySummary};

/// Inbound packets queued per session before new ones are dropped (about 1.3 s).
pub const INBOUND_QUEUE: usize = 64;

/// How an engine is set up beyond its address and ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Also bind sessions whose remote is IPv6 on this address (same port range).
    pub address6: Option<Ipv6Addr>,
    /// Shards: clock threads (each mixing its own rooms) and receive threads. `0`:
    /// one per core the process may run on.
    pub shards: usize,
}

/// Owns the port pool, the shards (session and room tables, clock threads) and the
/// receive threads.
#[derive(Debug, Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    address: IpAddr,
    ports: Mutex<PortAllocator>,
    /// The IPv6 address and its pool (the same range: other sockets, same numbers).
    address6: Option<(IpAddr, Mutex<PortAllocator>)>,
    shards: Arc<[Shard]>,
    /// Where the next session outside a room starts (round robin over the shards).
    next_shard: AtomicUsize,
    next_id: AtomicU64,
    /// How late each tick started against its 20 ms schedule, every shard.
    lateness: LatencyHistogram,
    /// Packets lost inside the bridge, engine-wide.
    send_dropped: AtomicU64,
    ticks_skipped: AtomicU64,
    queue_overflows: AtomicU64,
    /// Latching, engine-wide: targets moved to where media came from, and packets
    /// refused for their source.
    latched: AtomicU64,
    latch_refused: AtomicU64,
    /// The nominal RTCP report interval, ms.
    report_interval_ms: AtomicU64,
    /// One per shard; a session is read by its shard's.
    receivers: Box<[Arc<io::Receiver>]>,
    /// The runtime the engine was created in (consumers of the inbound queues and
    /// prompt completions live there).
    _runtime: tokio::runtime::Handle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for receiver in &self.receivers {
            receiver.shut_down();
        }
    }
}

impl Inner {
    /// Runs `f` on session `id`'s table and slab index, wherever it lives now (a
    /// session moves between shards when it joins a room); `None` once it is closed.
    fn with_session<R>(
        &self,
        link: &Link,
        id: u64,
        f: impl FnOnce(&mut Table, u32) -> R,
    ) -> Option<R> {
        loop {
            let home = link.home.load(Ordering::Acquire);
            let shard = self.shards.get(shard::shard_of(home))?;
            let mut table = lock(&shard.table);
            let index = shard::index_of(home);
            if table.sessions.get(index, id).is_some() {
                return Some(f(&mut table, index));
            }
            // Moved while we waited for the lock (the move holds both tables): look
            // again; unmoved, it is gone.
            if link.home.load(Ordering::Acquire) == home {
                return None;
            }
        }
    }

    /// Runs `f` on session `id`'s outbound half, wherever it lives now.
    fn with_outbound<R>(
        &self,
        link: &Link,
        id: u64,
        f: impl FnOnce(&mut Outbound) -> R,
    ) -> Option<R> {
        self.with_session(link, id, |table, index| {
            table.sessions.get_mut(index, id).map(f)
        })
        .flatten()
    }

    /// Hands session `id`'s sockets to the receive thread of `shard`, where it now
    /// lives (a packet queued meanwhile waits in its socket for the new reader).
    fn move_reader(&self, link: &Link, id: u64, shard: usize) {
        let from = link.reader.swap(shard, Ordering::AcqRel);
        if from == shard {
            return;
        }
        let (Some(old), Some(new)) = (self.receivers.get(from), self.receivers.get(shard)) else {
            return;
        };
        let Some(endpoint) = old.deregister(id) else {
            return;
        };
        if let Err(e) = new.register(endpoint.clone()) {
            // The old reader keeps it: further from its shard, but heard.
            tracing::warn!(error = %e, session = id, "could not move a session's sockets to its shard's receive thread");
            link.reader.store(from, Ordering::Release);
            if let Err(e) = old.register(endpoint) {
                tracing::error!(error = %e, session = id, "a session's sockets are no longer read");
            }
        }
    }
}

impl MediaEngine {
    /// An engine binding RTP on `address`, on the even ports of `ports` (RTCP on
    /// port + 1), one shard per core; starts the clock and receive threads. Must be
    /// called inside a tokio runtime (the inbound queues and play futures are tokio's).
    pub fn new(address: IpAddr, ports: RangeInclusive<u16>) -> Result<Self, Error> {
        Self::with_options(address, ports, EngineOptions::default())
    }

    /// [`MediaEngine::new`], also binding on `address6` (when given) the sessions whose
    /// remote is IPv6, from the same port range.
    pub fn with_ipv6(
        address: IpAddr,
        address6: Option<Ipv6Addr>,
        ports: RangeInclusive<u16>,
    ) -> Result<Self, Error> {
        let options = EngineOptions {
            address6,
            ..EngineOptions::default()
        };
        Self::with_options(address, ports, options)
    }

    /// An engine as [`MediaEngine::new`] with `options`: the IPv6 address, the number
    /// of shards.
    pub fn with_options(
        address: IpAddr,
        ports: RangeInclusive<u16>,
        options: EngineOptions,
    ) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let pool = || PortAllocator::new(*ports.start(), *ports.end()).map(Mutex::new);
        let address6 = match options.address6 {
            Some(a) => Some((IpAddr::V6(a), pool()?)),
            None => None,
        };
        let count = match options.shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .clamp(1, MAX_SHARDS);
        let shards: Arc<[Shard]> = (0..count).map(|_| Shard::default()).collect();
        let receivers = (0..count)
            .map(|index| io::Receiver::start(shards.clone(), index))
            .collect::<std::io::Result<Box<[_]>>>()?;
        let inner = Arc::new(Inner {
            address,
            ports: pool()?,
            address6,
            shards,
            next_shard: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            lateness: LatencyHistogram::default(),
            send_dropped: AtomicU64::new(0),
            ticks_skipped: AtomicU64::new(0),
            queue_overflows: AtomicU64::new(0),
            latched: AtomicU64::new(0),
            latch_refused: AtomicU64::new(0),
            report_interval_ms: AtomicU64::new(REPORT_INTERVAL.as_millis() as u64),
            receivers,
            _runtime: runtime,
        });
        let period = Duration::from_millis(u64::from(FRAME_MS));
        for index in 0..count {
            let weak = Arc::downgrade(&inner);
            // Staggered through the period: the shards take turns on the cores.
            let offset =
                period * u32::try_from(index).unwrap_or(0) / u32::try_from(count).unwrap_or(1);
            std::thread::Builder::new()
                .name(format!("media-clock-{index}"))
                .spawn(move || shard::run_clock(&weak, index, offset))?;
        }
        Ok(Self { inner })
    }

    /// Shards (clock threads) this engine runs.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// The media address sessions bind on (and the SDP `c=` line should carry).
    pub fn address(&self) -> IpAddr {
        self.inner.address
    }

    /// The IPv6 media address, if the engine has one.
    pub fn address6(&self) -> Option<IpAddr> {
        self.inner.address6.as_ref().map(|(a, _)| *a)
    }

    /// The address a session sending to `remote` binds on: the IPv6 one for an IPv6
    /// remote when there is one, else [`MediaEngine::address`].
    pub fn address_for(&self, remote: SocketAddr) -> IpAddr {
        self.pool_for(remote).0
    }

    /// Sets the nominal RTCP report interval (default 5 s, the RFC 3550 §6.2
    /// minimum; each report is randomised 0.5–1.5× around it). Shorter intervals are
    /// for tests and labs; it applies from each session's next report.
    pub fn set_report_interval(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.inner.report_interval_ms.store(ms, Ordering::Relaxed);
    }

    /// Each shard's load, in shard order.
    pub fn shard_stats(&self) -> Vec<ShardStats> {
        let inner = &self.inner;
        inner
            .shards
            .iter()
            .zip(inner.receivers.iter())
            .map(|(shard, receiver)| {
                let (sessions, rooms) = {
                    let table = lock(&shard.table);
                    (table.sessions.len(), table.rooms.len())
                };
                ShardStats {
                    sessions,
                    rooms,
                    received: receiver.datagrams.load(Ordering::Relaxed),
                    ticks: shard.ticks.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| lock(&shard.table).sessions.len())
            .sum()
    }

    /// Port pairs currently bound (IPv4 and IPv6).
    pub fn ports_in_use(&self) -> usize {
        let v6 = self
            .inner
            .address6
            .as_ref()
            .map_or(0, |(_, ports)| lock(ports).in_use());
        lock(&self.inner.ports).in_use() + v6
    }

    /// Gauges, clock timings and loss inside the bridge, for metrics. A tick close
    /// to 20 ms, or a p99 lateness of several ms, means the machine cannot keep up
    /// with the participants it carries.
    pub fn stats(&self) -> EngineStats {
        let inner = &self.inner;
        let shards = self.shard_stats();
        let sessions = shards.iter().map(|s| s.sessions).sum();
        let rooms = shards.iter().map(|s| s.rooms).sum();
        // `ticks`: the fewest any shard ran, so that every shard has run as many.
        let ticks = shards.iter().map(|s| s.ticks).min().unwrap_or(0);
        let (mut last_tick, mut max_tick) = (0, 0);
        for shard in inner.shards.iter() {
            last_tick = last_tick.max(shard.last_tick_ns.load(Ordering::Relaxed));
            max_tick = max_tick.max(shard.max_tick_ns.load(Ordering::Relaxed));
        }
        let received = |counter: fn(&io::Receiver) -> &AtomicU64| -> u64 {
            inner
                .receivers
                .iter()
                .map(|r| counter(r).load(Ordering::Relaxed))
                .sum()
        };
        EngineStats {
            sessions,
            rooms,
            ports_in_use: self.ports_in_use(),
            ticks,
            last_tick: Duration::from_nanos(last_tick),
            max_tick: Duration::from_nanos(max_tick),
            tick_lateness: inner.lateness.summary(),
            send_dropped: inner.send_dropped.load(Ordering::Relaxed),
            ticks_skipped: inner.ticks_skipped.load(Ordering::Relaxed),
            receive_queue_overflows: inner.queue_overflows.load(Ordering::Relaxed)
                + received(|r| &r.inbox_overflows),
            receive_wakeups: received(|r| &r.wakeups),
            receive_syscalls: received(|r| &r.syscalls),
            receive_datagrams: received(|r| &r.datagrams),
            rtp_latched: inner.latched.load(Ordering::Relaxed),
            rtp_latch_refused: inner.latch_refused.load(Ordering::Relaxed),
        }
    }

    /// Forgets the tick lateness samples and the longest tick, so that the next
    /// [`MediaEngine::stats`] covers only what follows (e.g. after a ramp-up).
    pub fn reset_clock_stats(&self) {
        self.inner.lateness.reset();
        for shard in self.inner.shards.iter() {
            shard.max_tick_ns.store(0, Ordering::Relaxed);
        }
    }

    /// Opens a session: binds the next free even port (and port + 1 for RTCP) and
    /// starts sending 20 ms `codec` packets to `remote` (from the SDP) at once —
    /// silence until [`RtpSession::play`] or [`RtpSession::join_room`]. `codec` is a
    /// G.711 [`crate::Codec`] or any [`AudioCodec`] (G.722, Opus with its negotiated
    /// payload type). Packets from `remote`'s IP are delivered by
    /// [`RtpSession::recv`]; `telephone_event_pt` is the negotiated RFC 4733 payload
    /// type, kept for the consumer.
    ///
    /// Synchronous: binding a UDP socket does not block, so signaling code can open
    /// media in the middle of handling an INVITE.
    pub fn open(
        &self,
        remote: SocketAddr,
        codec: impl Into<AudioCodec>,
        telephone_event_pt: Option<u8>,
    ) -> Result<RtpSession, Error> {
        self.open_with(remote, codec.into(), telephone_event_pt, None, None)
    }

    /// Opens an SRTP session (RFC 3711, SDES keys from `a=crypto`, RFC 4568): like
    /// [`MediaEngine::open`], but every RTP and RTCP packet sent is protected with
    /// `keys.local_key_salt` and every packet received must authenticate under
    /// `keys.remote_key_salt` (others are dropped and counted in
    /// [`SessionStats::receive_dropped`]).
    pub fn open_srtp(
        &self,
        remote: SocketAddr,
        codec: impl Into<AudioCodec>,
        telephone_event_pt: Option<u8>,
        keys: SrtpKeys,
    ) -> Result<RtpSession, Error> {
        self.open_with(remote, codec.into(), telephone_event_pt, Some(keys), None)
    }

    /// Opens a latching session (symmetric RTP, "comedia"; [`crate::latch`]): sends to
    /// `target` until it latches to where the caller's media really comes from — a
    /// source on `signalling_ip` (where the call's SIP came from) at any time; the first
    /// packet from elsewhere with a negotiated payload type, within the learning window;
    /// with `keys` (SRTP), any source whose packets authenticate. Other sources are
    /// refused and counted ([`SessionStats::latch_refused`]).
    ///
    /// When the SDP address is not the signalling peer's (a NAT suspected), `target`
    /// should be the signalling IP with the SDP port, never the SDP address: that is
    /// where a NATed caller's media comes back from.
    pub fn open_latching(
        &self,
        target: SocketAddr,
        codec: impl Into<AudioCodec>,
        telephone_event_pt: Option<u8>,
        keys: Option<SrtpKeys>,
        signalling_ip: IpAddr,
    ) -> Result<RtpSession, Error> {
        self.open_with(
            target,
            codec.into(),
            telephone_event_pt,
            keys,
            Some(signalling_ip),
        )
    }

    /// Binds a port pair for a call whose far end is not known yet: a call we place
    /// offers this port before the answer says where and with which codec to send
    /// ([`MediaEngine::open_reserved`]). `family` picks the address family (any address
    /// of it). Dropping the reservation gives the pair back.
    pub fn reserve(&self, family: SocketAddr) -> Result<MediaPort, Error> {
        let bound = self.bind_pair(family)?;
        let local = bound.rtp.local_addr()?;
        Ok(MediaPort {
            bound: Box::new(bound),
            local,
        })
    }

    /// Opens the session of a call we placed on the port its offer named, once the
    /// answer has settled where to send and the codec (as [`MediaEngine::open`]).
    pub fn open_reserved(
        &self,
        port: MediaPort,
        remote: SocketAddr,
        codec: impl Into<AudioCodec>,
        telephone_event_pt: Option<u8>,
    ) -> Result<RtpSession, Error> {
        self.open_on(
            Some(*port.bound),
            remote,
            codec.into(),
            telephone_event_pt,
            None,
            None,
        )
    }

    fn open_with(
        &self,
        remote: SocketAddr,
        codec: AudioCodec,
        telephone_event_pt: Option<u8>,
        keys: Option<SrtpKeys>,
        signalling_ip: Option<IpAddr>,
    ) -> Result<RtpSession, Error> {
        self.open_on(None, remote, codec, telephone_event_pt, keys, signalling_ip)
    }

    fn open_on(
        &self,
        bound: Option<Bound>,
        remote: SocketAddr,
        codec: AudioCodec,
        telephone_event_pt: Option<u8>,
        keys: Option<SrtpKeys>,
        signalling_ip: Option<IpAddr>,
    ) -> Result<RtpSession, Error> {
        let latch = match signalling_ip {
            Some(ip) => Latch::symmetric(
                remote,
                ip,
                PayloadTypes::new(codec.payload_type(), telephone_event_pt),
                keys.is_some(),
                std::time::Instant::now(),
            ),
            None => Latch::fixed(remote),
        };
        // IPv4-mapped remotes are sent to as IPv4 (the latch reads them so).
        let remote = latch.target();
        let bound = Arc::new(match bound {
            Some(bound) => bound,
            None => self.bind_pair(remote)?,
        });
        let local = bound.rtp.local_addr()?;
        let sender = RtpSender::new(codec.payload_type())?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (srtp_out, srtp_in, srtcp_out, srtcp_in) = match &keys {
            Some(k) => {
                let out = SrtpContext::new(k.suite, &k.local_key_salt);
                let inb = SrtpContext::new(k.suite, &k.remote_key_salt);
                (Some(out.clone()), Some(inb.clone()), Some(out), Some(inb))
            }
            None => (None, None, None, None),
        };
        let link = Arc::new(Link::new(latch, codec, sender.ssrc(), srtcp_in, srtcp_out));
        let outbound = Outbound::new(
            id,
            bound.clone(),
            remote,
            codec,
            telephone_event_pt.is_some(),
            sender,
            link.clone(),
            srtp_out,
        )?;
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let endpoint = Arc::new(Endpoint::new(
            id,
            bound.clone(),
            Arc::downgrade(&self.inner),
            link.clone(),
            tx,
            srtp_in,
        ));
        // Outside a room a session may live anywhere: round robin.
        let count = self.inner.shards.len().max(1);
        let shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % count;
        if let Some(home) = self.inner.shards.get(shard) {
            let index = lock(&home.table).sessions.insert(outbound);
            link.home
                .store(shard::home(shard, index), Ordering::Release);
        }
        link.reader.store(shard, Ordering::Release);
        let registered = match self.inner.receivers.get(shard) {
            Some(receiver) => receiver.register(endpoint),
            None => Ok(()),
        };
        if let Err(e) = registered {
            self.inner
                .with_session(&link, id, |table, index| table.sessions.remove(index, id));
            return Err(e.into());
        }
        Ok(RtpSession {
            id,
            inner: self.inner.clone(),
            bound,
            local,
            codec,
            telephone_event_pt,
            inbound: Some(rx),
            link,
        })
    }

    /// The address and pool a session sending to `remote` binds from: IPv6 remotes
    /// get the IPv6 address if there is one (`true`: the IPv6 pool).
    fn pool_for(&self, remote: SocketAddr) -> (IpAddr, &Mutex<PortAllocator>, bool) {
        match &self.inner.address6 {
            Some((address6, ports6)) if remote.is_ipv6() && !self.inner.address.is_ipv6() => {
                (*address6, ports6, true)
            }
            _ => (self.inner.address, &self.inner.ports, false),
        }
    }

    /// Binds RTP and RTCP on the next free pair for `remote`'s family, skipping ports
    /// another process holds.
    fn bind_pair(&self, remote: SocketAddr) -> Result<Bound, Error> {
        let (address, ports, v6) = self.pool_for(remote);
        let (capacity, (low, high)) = {
            let ports = lock(ports);
            (ports.capacity(), ports.bounds())
        };
        for _ in 0..capacity {
            let Some(port) = lock(ports).allocate() else {
                break;
            };
            let lease = PortLease {
                inner: Arc::downgrade(&self.inner),
                port,
                v6,
            };
            // On failure `lease` drops here and gives the port back; the round-robin
            // cursor has moved on, so the next iteration tries the next port.
            match bind_udp(address, port) {
                Ok(rtp) => match bind_udp(address, port + 1) {
                    Ok(rtcp) => return Ok(Bound::new(rtp, rtcp, lease)),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) => return Err(e.into()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::NoFreePort { low, high })
    }
}

/// A port pair bound for a call whose far end is not known yet
/// ([`MediaEngine::reserve`]).
#[derive(Debug)]
pub struct MediaPort {
    /// Boxed: a bound pair keeps its counters on cache lines of their own.
    bound: Box<Bound>,
    local: SocketAddr,
}

impl MediaPort {
    /// The RTP address to offer.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// One participant's RTP stream. Dropping it (or [`RtpSession::close`]) stops
/// sending, stops receiving, leaves its room and frees the port pair.
#[derive(Debug)]
pub struct RtpSession {
    id: u64,
    inner: Arc<Inner>,
    bound: Arc<Bound>,
    local: SocketAddr,
    codec: AudioCodec,
    telephone_event_pt: Option<u8>,
    inbound: Option<mpsc::Receiver<InboundRtp>>,
    /// State shared with the clock and the receive thread.
    link: Arc<Link>,
}

/// A received RTP packet, with the header fields a consumer needs (the conference
/// decodes RFC 4733 telephone-events and, for in-band DTMF, audio from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRtp {
    /// PT.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload, padding removed (decrypted, for SRTP).
    pub payload: Bytes,
    /// Where it came from.
    pub source: SocketAddr,
    /// When it was read from the socket.
    pub received_at: Instant,
}

/// One shard's load: what it carries and what its receive thread read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Sessions living in the shard (its rooms' members, and those it was given
    /// outside a room).
    pub sessions: usize,
    /// Rooms it mixes.
    pub rooms: usize,
    /// Datagrams its receive thread read, since the start.
    pub received: u64,
    /// Ticks its clock ran.
    pub ticks: u64,
}

/// Engine-wide gauges, clock timings and loss inside the bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sessions open.
    pub sessions: usize,
    /// Rooms open.
    pub rooms: usize,
    /// RTP port pairs bound.
    pub ports_in_use: usize,
    /// Clock ticks run by the slowest shard (the shards keep one schedule, so any
    /// shard has run this many or one more).
    pub ticks: u64,
    /// How long the last tick took (mixing, encoding, sending for everyone), the
    /// longest of the shards' last ticks.
    pub last_tick: Duration,
    /// The longest tick so far.
    pub max_tick: Duration,
    /// How late ticks started against their 20 ms schedule (p50, p99, max).
    pub tick_lateness: LatencySummary,
    /// Packets the clock could not send (socket buffer full, send error), all sessions.
    pub send_dropped: u64,
    /// Ticks given up: the clock fell more than 10 ticks behind (starved of CPU) and
    /// restarted its schedule; each is one 20 ms packet not sent to every session.
    pub ticks_skipped: u64,
    /// Packets received but dropped because a consumer's inbound queue (or a stalled
    /// shard's inbox) was full.
    pub receive_queue_overflows: u64,
    /// Receive thread: `epoll_wait` calls that found ready sockets.
    pub receive_wakeups: u64,
    /// Receive thread: `recvmmsg` calls.
    pub receive_syscalls: u64,
    /// Receive thread: datagrams read (RTP and RTCP, before any check).
    pub receive_datagrams: u64,
    /// Times a session moved its media target to where packets came from, all
    /// sessions ([`SessionStats::latched`]).
    pub rtp_latched: u64,
    /// RTP packets refused for their source, all sessions
    /// ([`SessionStats::latch_refused`]).
    pub rtp_latch_refused: u64,
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// RTP packets sent.
    pub sent: u64,
    /// Packets not sent because the socket buffer was full or the send failed.
    pub send_dropped: u64,
    /// RTP packets received from the remote and queued.
    pub received: u64,
    /// Packets dropped: malformed, from a foreign IP, not authenticated (SRTP), or the
    /// inbound queue was full.
    pub receive_dropped: u64,
    /// Times the session moved its target to where packets came from (a latch, or a
    /// new port on the SDP address's IP).
    pub latched: u64,
    /// RTP packets refused for their source: a stranger, not allowed to latch (also
    /// in `receive_dropped`).
    pub latch_refused: u64,
    /// RTCP compound packets sent.
    pub rtcp_sent: u64,
    /// RTCP compound packets received and understood.
    pub rtcp_received: u64,
}

/// Reception quality of one session (RFC 3550 §6.4), for metrics and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quality {
    /// Fraction of the far end's packets lost in the last report interval, 0..=1.
    pub loss_fraction: f64,
    /// Far-end packets lost since the start (expected − received; RFC 3550 A.3).
    pub lost: i64,
    /// Interarrival jitter of the far end's stream, ms (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Round-trip time from the far end's last report about us (LSR/DLSR), ms.
    pub rtt_ms: Option<f64>,
    /// Audio waiting in the jitter buffer, ms (in a room).
    pub jitter_buffer_depth_ms: u32,
    /// What the far end reported about our stream: fraction lost, 0..=1.
    pub remote_loss_fraction: Option<f64>,
    /// What the far end reported about our stream: jitter, ms.
    pub remote_jitter_ms: Option<f64>,
}

/// How a [`RtpSession::play`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayEnd {
    /// The prompt was played out to its end.
    Finished,
    /// Another play, a stop or the session's end cut it short.
    Interrupted,
}

/// Resolves when a played prompt ends. May be dropped if nobody cares; may be polled
/// again after it resolved (it keeps answering the same).
#[derive(Debug)]
pub struct PlayDone {
    rx: oneshot::Receiver<PlayEnd>,
    ended: Option<PlayEnd>,
}

impl Future for PlayDone {
    type Output = PlayEnd;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PlayEnd> {
        if let Some(end) = self.ended {
            return Poll::Ready(end);
        }
        let end =
            std::task::ready!(Pin::new(&mut self.rx).poll(cx)).unwrap_or(PlayEnd::Interrupted);
        self.ended = Some(end);
        Poll::Ready(end)
    }
}

impl RtpSession {
    /// The local RTP port (for the SDP answer's `m=audio` line).
    pub fn local_port(&self) -> u16 {
        self.local.port()
    }

    /// The local RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The codec this session sends and receives.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The negotiated RFC 4733 payload type, if any.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.telephone_event_pt
    }

    /// The SSRC of the stream we send.
    pub fn ssrc(&self) -> u32 {
        self.link.local_ssrc
    }

    /// True when the session was opened with [`MediaEngine::open_srtp`].
    pub fn is_srtp(&self) -> bool {
        self.link.is_srtp()
    }

    /// True when the session was opened with [`MediaEngine::open_latching`].
    pub fn is_latching(&self) -> bool {
        lock(&self.link.latch).is_symmetric()
    }

    /// Where packets are currently sent (the SDP address, or the re-latched one).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.inner
            .with_outbound(&self.link, self.id, |o| o.route.remote())
    }

    /// Plays `prompt` from its start, replacing whatever this session played; loops
    /// when `repeat`. In a room the prompt is mixed over the room's audio, for this
    /// participant only. The returned future says when (and how) it ended.
    pub fn play(&self, prompt: Arc<Prompt>, repeat: bool) -> PlayDone {
        let (done, rx) = oneshot::channel();
        self.inner
            .with_outbound(&self.link, self.id, |o| o.play(prompt, repeat, done));
        PlayDone { rx, ended: None }
    }

    /// Points the stream at a new address (a re-INVITE's SDP): packets go there from
    /// the next tick, and packets from its IP are accepted. A latching session given
    /// the address it was opened with (or last given) keeps what it latched to — hold
    /// and resume repeat the address — so give it the target computed the same way as
    /// for [`MediaEngine::open_latching`]; a new address starts latching afresh.
    pub fn set_remote(&self, remote: SocketAddr) {
        // The latch is held while the table changes, as the receive thread does when
        // it latches: the last of the two to decide is the one that stays.
        let mut latch = lock(&self.link.latch);
        if !latch.handle_remote(std::time::Instant::now(), remote) {
            return;
        }
        let symmetric = latch.is_symmetric();
        self.inner.with_outbound(&self.link, self.id, |o| {
            o.route.set_remote(latch.target());
            if symmetric {
                // What RTCP latched to belonged to the old address.
                o.remote_rtcp = None;
            }
        });
    }

    /// Sends RTCP to `rtcp` (the SDP's `a=rtcp`, RFC 3605) instead of the RTP
    /// address with port + 1. A later [`RtpSession::set_remote`] keeps it; call this
    /// again after a re-INVITE that changed it.
    pub fn set_remote_rtcp(&self, rtcp: SocketAddr) {
        self.inner
            .with_outbound(&self.link, self.id, |o| o.remote_rtcp = Some(rtcp));
    }

    /// Pauses (`false`) or resumes sending, for hold: RFC 3264 §8.4 `sendonly` or
    /// `inactive` from the far end means it does not want our media. Timestamps keep
    /// running while paused and the first packet after carries the marker.
    pub fn set_sending(&self, sending: bool) {
        self.inner
            .with_outbound(&self.link, self.id, |o| o.media.set_sending(sending));
    }

    /// Whether audio packets (the codec's payload type) are queued for
    /// [`RtpSession::recv`] (default `true`). Other payload types — RFC 4733
    /// telephone-events, comfort noise — always are. A conference participant whose
    /// DTMF comes as telephone-events needs no audio in its queue: turning it off
    /// saves waking the consumer task 50 times a second (the room's mixer still gets
    /// the audio).
    pub fn set_deliver_audio(&self, deliver: bool) {
        self.link.deliver_audio.store(deliver, Ordering::Relaxed);
    }

    /// Sets what hears this session's received audio while it is in a room, decoded,
    /// on the clock ([`crate::InBandListener`]: a call's in-band DTMF detector); while
    /// one is set, audio in a room is not queued for [`RtpSession::recv`] (outside a
    /// room it still is, as [`RtpSession::set_deliver_audio`] says). `None` removes it.
    pub fn set_in_band_listener(&self, listener: Option<Box<dyn crate::InBandListener>>) {
        let listening = listener.is_some();
        self.inner
            .with_outbound(&self.link, self.id, |o| o.media.set_listener(listener));
        self.link.listening.store(listening, Ordering::Relaxed);
    }

    /// Tunes this session's jitter buffer, from the next room it joins, for a stream
    /// that arrives as steadily as it leaves (a leg between two bridges on one network):
    /// it holds no frame beyond what the measured jitter needs
    /// ([`crate::JitterConfig::steady`]).
    pub fn set_steady_stream(&self, steady: bool) {
        self.link.steady.store(steady, Ordering::Relaxed);
    }

    /// Stops playing: silence (or the room) from the next tick.
    pub fn stop(&self) {
        self.inner
            .with_outbound(&self.link, self.id, Outbound::interrupt);
    }

    /// True while a prompt is playing.
    pub fn is_playing(&self) -> bool {
        self.inner
            .with_outbound(&self.link, self.id, |o| o.is_playing())
            .unwrap_or(false)
    }

    /// The next received packet; `None` once the session is closed or the receiver
    /// was taken with [`RtpSession::take_inbound`].
    pub async fn recv(&mut self) -> Option<InboundRtp> {
        self.inbound.as_mut()?.recv().await
    }

    /// A received packet if one is queued.
    pub fn try_recv(&mut self) -> Option<InboundRtp> {
        self.inbound.as_mut()?.try_recv().ok()
    }

    /// Moves the inbound queue out, e.g. into the conference's task.
    pub fn take_inbound(&mut self) -> Option<mpsc::Receiver<InboundRtp>> {
        self.inbound.take()
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.bound.stats()
    }

    /// Reception quality: loss and jitter of what we receive, round-trip time and
    /// what the far end says of our stream (from its RTCP reports, every ~5 s).
    pub fn quality(&self) -> Quality {
        self.link.quality()
    }

    /// Stops sending and receiving; when it returns the port pair is free again.
    pub async fn close(mut self) {
        self.detach();
        // A tick being sent right now may still hold the socket (at most one tick's
        // send phase); the port is released with the last handle.
        while Arc::strong_count(&self.bound) > 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn detach(&mut self) {
        let reader = self.link.reader.load(Ordering::Acquire);
        if let Some(receiver) = self.inner.receivers.get(reader) {
            receiver.deregister(self.id);
        }
        let id = self.id;
        self.inner.with_session(&self.link, id, |table, index| {
            if let Some(mut o) = table.sessions.remove(index, id) {
                o.interrupt();
                // RFC 3550 §6.6: tell the far end the stream ends. Rare (once per
                // call), so the scratch buffers are made here.
                o.send_report(&mut Scratch::default(), std::time::Instant::now(), true);
                if let Some((room, slot)) = o.room {
                    table.remove_member(room, index, slot);
                }
            }
        });
    }
}

impl Drop for RtpSession {
    fn drop(&mut self) {
        self.detach();
    }
}

/// A bound RTP/RTCP pair; the port goes back to the pool when the last handle drops.
#[derive(Debug)]
#[repr(C)]
struct Bound {
    // The receive thread's line: the sockets and its counters together (one cache
    // miss per packet, not two).
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    /// Bound on the IPv6 address (from the IPv6 pool).
    v6: bool,
    /// Written by the receive thread, per packet.
    rx: ReceiveCounters,
    /// Written by the clock, per packet: on a cache line of its own, so that the two
    /// threads' counting does not bounce one line between cores.
    tx: SendCounters,
    // Last field: dropped after the sockets are closed.
    _lease: PortLease,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct SendCounters {
    sent: AtomicU64,
    send_dropped: AtomicU64,
    rtcp_sent: AtomicU64,
}

#[derive(Debug, Default)]
struct ReceiveCounters {
    received: AtomicU64,
    receive_dropped: AtomicU64,
    rtcp_received: AtomicU64,
    latched: AtomicU64,
    latch_refused: AtomicU64,
}

impl Bound {
    fn new(rtp: std::net::UdpSocket, rtcp: std::net::UdpSocket, lease: PortLease) -> Self {
        Self {
            rtp,
            rtcp,
            v6: lease.v6,
            tx: SendCounters::default(),
            rx: ReceiveCounters::default(),
            _lease: lease,
        }
    }

    /// Whether the sockets are bound on the IPv6 address.
    fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// Counts one RTP datagram sent (`true`) or refused by the kernel.
    fn count_sent(&self, sent: bool) {
        let counter = if sent {
            &self.tx.sent
        } else {
            &self.tx.send_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> SessionStats {
        let (tx, rx) = (&self.tx, &self.rx);
        SessionStats {
            sent: tx.sent.load(Ordering::Relaxed),
            send_dropped: tx.send_dropped.load(Ordering::Relaxed),
            received: rx.received.load(Ordering::Relaxed),
            receive_dropped: rx.receive_dropped.load(Ordering::Relaxed),
            rtcp_sent: tx.rtcp_sent.load(Ordering::Relaxed),
            rtcp_received: rx.rtcp_received.load(Ordering::Relaxed),
            latched: rx.latched.load(Ordering::Relaxed),
            latch_refused: rx.latch_refused.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct PortLease {
    inner: Weak<Inner>,
    port: u16,
    /// From the IPv6 pool.
    v6: bool,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            match (&inner.address6, self.v6) {
                (Some((_, ports6)), true) => lock(ports6).release(self.port),
                _ => lock(&inner.ports).release(self.port),
            }
        }
    }
}

/// Binds a non-blocking UDP socket (read by the receive thread, written by the clock).
fn bind_udp(address: IpAddr, port: u16) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind((address, port))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Locks a mutex, recovering from poisoning: the tables stay consistent because
/// nothing inside the locks can panic half-way.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
