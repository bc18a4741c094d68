//! Batch receive: a thread per shard waits on its sessions' RTP and RTCP sockets
//! (a session moves to its new shard's thread when it joins a room elsewhere, so one
//! shard's sessions are read, mixed and sent by its own two threads) with a
//! level-triggered epoll and drains each ready socket with `recvmmsg`.
//!
//! Why not a tokio task per session: each packet then costs a reactor event, a task
//! wake-up and two `recvfrom` calls (the second returns EAGAIN so tokio can clear
//! readiness). Here one `epoll_wait` hands out up to [`EVENTS`] ready sockets and
//! each is drained by one `recvmmsg` — when it returns fewer than [`BATCH`] datagrams
//! the queue is empty and no EAGAIN call is needed. Across participants the batching
//! is in `epoll_wait` — paced to at most one wake-up per [`RECEIVE_PACE`], so that
//! many sockets are ready at each; `recvmmsg` batches only what queued on one socket
//! (one packet per 20 ms normally, a burst after a stall).
//!
//! The sockets are plain non-blocking std sockets, never registered with tokio, so
//! the runtime's reactor sees none of this traffic. Buffers are the thread's own,
//! reused for every packet; a packet handed to the consumer is copied once into a
//! per-session `BytesMut` chunk (amortised, as before). Audio for a room is collected
//! per shard over one wake-up and appended to the shard's inbox under one lock.
//!
//! Sessions are found by the epoll token, an index into the thread's slab of
//! endpoints: no hashing per packet. A token left from a session closed meanwhile
//! may name a slot given to a new session; reading that session's own sockets is
//! then merely early.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

use super::shard::{Arrivals, Shard};
use super::{Endpoint, lock};

/// Datagrams read per `recvmmsg` call.
pub(super) const BATCH: usize = 16;
/// Ready sockets taken per `epoll_wait`.
pub(super) const EVENTS: usize = 512;
/// Largest datagram we accept; longer ones are cut by the kernel and then fail to
/// parse or authenticate.
pub(super) const MAX_DATAGRAM: usize = 1500;
/// The shortest time between two `epoll_wait` wake-ups. The mixer takes one frame
/// per session per 20 ms tick, so reading more often buys nothing; waking for every
/// packet (what a high-priority thread does under light load) costs a wake-up and an
/// `epoll_wait` per packet. The price: arrival times, hence the RFC 3550 jitter we
/// report, are up to this much coarser.
const RECEIVE_PACE: std::time::Duration = std::time::Duration::from_millis(2);
/// Room payloads a shard's inbox holds at most (about 2.6 s of 1,000 participants'
/// audio, some 30 MB): a clock that stops taking them costs bounded memory.
const MAX_INBOX: usize = 1 << 17;
/// Ready sockets handled between two reads of the clock.
const CLOCK_EVERY: usize = 32;
/// How often the thread looks at the shutdown flag when no packet arrives, ms.
const IDLE_WAKE_MS: u16 = 100;

/// A receive thread's registry: epoll token (slot << 1 | is_rtcp) → session.
#[derive(Debug)]
pub(super) struct Receiver {
    epoll: Epoll,
    endpoints: Mutex<Endpoints>,
    /// Where room audio goes: the shards' inboxes.
    shards: Arc<[Shard]>,
    shutdown: AtomicBool,
    /// `epoll_wait` calls that returned ready sockets.
    pub(super) wakeups: AtomicU64,
    /// `recvmmsg` calls.
    pub(super) syscalls: AtomicU64,
    /// Datagrams read.
    pub(super) datagrams: AtomicU64,
    /// Room payloads dropped because a shard's inbox was full (its clock stalled).
    pub(super) inbox_overflows: AtomicU64,
}

impl Receiver {
    /// Creates the epoll instance and starts the receive thread.
    pub(super) fn start(shards: Arc<[Shard]>, index: usize) -> std::io::Result<Arc<Self>> {
        let receiver = Arc::new(Self {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            endpoints: Mutex::new(Endpoints::default()),
            shards,
            shutdown: AtomicBool::new(false),
            wakeups: AtomicU64::new(0),
            syscalls: AtomicU64::new(0),
            datagrams: AtomicU64::new(0),
            inbox_overflows: AtomicU64::new(0),
        });
        let thread = receiver.clone();
        std::thread::Builder::new()
            .name(format!("media-rx-{index}"))
            .spawn(move || run(&thread))?;
        Ok(receiver)
    }

    /// Starts receiving for a session.
    pub(super) fn register(&self, endpoint: Arc<Endpoint>) -> std::io::Result<()> {
        let mut endpoints = lock(&self.endpoints);
        let slot = endpoints.insert(endpoint.clone());
        let token = u64::from(slot) << 1;
        let added = self
            .epoll
            .add(
                &endpoint.bound.rtp,
                EpollEvent::new(EpollFlags::EPOLLIN, token),
            )
            .and_then(|()| {
                let rtcp = EpollEvent::new(EpollFlags::EPOLLIN, token | 1);
                self.epoll.add(&endpoint.bound.rtcp, rtcp).inspect_err(|_| {
                    let _ = self.epoll.delete(&endpoint.bound.rtp);
                })
            });
        if let Err(e) = added {
            endpoints.remove(endpoint.id);
            return Err(e.into());
        }
        Ok(())
    }

    /// Stops receiving for a session. When this returns the thread holds no handle
    /// to its sockets (it works under the registry lock), so they close with the
    /// session's last handle.
    pub(super) fn deregister(&self, id: u64) -> Option<Arc<Endpoint>> {
        let endpoint = lock(&self.endpoints).remove(id)?;
        let _ = self.epoll.delete(&endpoint.bound.rtp);
        let _ = self.epoll.delete(&endpoint.bound.rtcp);
        Some(endpoint)
    }

    /// Asks the thread to stop (within [`IDLE_WAKE_MS`]).
    pub(super) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }
}

/// The endpoints a receive thread reads, by slot; slots are reused.
#[derive(Debug, Default)]
struct Endpoints {
    slots: slab::Slab<Arc<Endpoint>>,
    /// Session id → slot, for deregistering.
    by_id: HashMap<u64, u32>,
}

impl Endpoints {
    fn insert(&mut self, endpoint: Arc<Endpoint>) -> u32 {
        let id = endpoint.id;
        let slot = u32::try_from(self.slots.insert(endpoint)).unwrap_or(u32::MAX);
        self.by_id.insert(id, slot);
        slot
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Endpoint>> {
        let slot = self.by_id.remove(&id)?;
        self.slots.try_remove(slot as usize)
    }

    fn get(&self, token: u64) -> Option<&Arc<Endpoint>> {
        self.slots.get(usize::try_from(token >> 1).ok()?)
    }
}

/// The thread's reusable buffers.
struct Batch {
    buffers: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    headers: MultiHeaders<SockaddrStorage>,
    /// (length, source) of each datagram of the last call.
    received: [(usize, Option<SocketAddr>); BATCH],
}

impl Batch {
    fn new() -> Self {
        Batch {
            buffers: Box::new([[0; MAX_DATAGRAM]; BATCH]),
            headers: MultiHeaders::preallocate(BATCH, None),
            received: [(0, None); BATCH],
        }
    }
}

fn run(receiver: &Receiver) {
    let mut events = [EpollEvent::empty(); EVENTS];
    // One batch per address family. nix's `recvmmsg` does not reset each header's
    // `msg_namelen`, which the kernel shrinks to the last source's size: a batch that
    // had read IPv4 sources (16 bytes) would cut IPv6 ones (28) short, and the session
    // would take a garbled address for its peer. A socket only ever sees sources of its
    // own family, so a batch per family always has room for the whole address.
    let mut batches = [Batch::new(), Batch::new()];
    // Room audio read in one wake-up, per shard, appended to the inboxes at its end.
    let mut rooms: Vec<Arrivals> = receiver
        .shards
        .iter()
        .map(|_| Arrivals::default())
        .collect();
    while !receiver.shutdown.load(Ordering::Relaxed) {
        let ready = match receiver
            .epoll
            .wait(&mut events, EpollTimeout::from(IDLE_WAKE_MS))
        {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed; no more inbound media");
                return;
            }
        };
        if ready == 0 {
            continue;
        }
        let woke = std::time::Instant::now();
        receiver.wakeups.fetch_add(1, Ordering::Relaxed);
        let (mut calls, mut datagrams) = (0, 0);
        let endpoints = lock(&receiver.endpoints);
        // Arrival time, read again every `CLOCK_EVERY` sockets: the datagrams of one
        // wake-up were queued within the pace, and a clock read per socket was a
        // tenth of this thread's own time.
        let mut now = woke;
        for (n, event) in events.iter().take(ready).enumerate() {
            if n % CLOCK_EVERY == CLOCK_EVERY - 1 {
                now = std::time::Instant::now();
            }
            let token = event.data();
            // A token of a session closed since the event was queued finds nothing.
            let Some(endpoint) = endpoints.get(token) else {
                continue;
            };
            let rtcp = token & 1 == 1;
            let socket = if rtcp {
                &endpoint.bound.rtcp
            } else {
                &endpoint.bound.rtp
            };
            let batch = &mut batches[usize::from(endpoint.bound.is_ipv6())];
            calls += drain(socket.as_raw_fd(), batch, |datagram, source| {
                datagrams += 1;
                if rtcp {
                    endpoint.handle_rtcp(datagram, source);
                } else {
                    endpoint.handle_rtp(datagram, source, now, &mut rooms);
                }
            });
        }
        drop(endpoints);
        for (shard, arrived) in receiver.shards.iter().zip(&mut rooms) {
            if arrived.is_empty() {
                continue;
            }
            let mut inbox = lock(&shard.inbox);
            if inbox.len() < MAX_INBOX {
                inbox.append(arrived);
            } else {
                // The clock has not taken its inbox for seconds: what it would get
                // now is too late to play anyway, and memory stays bounded.
                drop(inbox);
                let lost = u64::try_from(arrived.len()).unwrap_or(u64::MAX);
                receiver.inbox_overflows.fetch_add(lost, Ordering::Relaxed);
                arrived.clear();
            }
        }
        receiver.syscalls.fetch_add(calls, Ordering::Relaxed);
        receiver.datagrams.fetch_add(datagrams, Ordering::Relaxed);
        // Let packets gather before the next wait, so one wake-up serves many sockets.
        if ready < EVENTS
            && let Some(rest) = RECEIVE_PACE.checked_sub(woke.elapsed())
        {
            std::thread::sleep(rest);
        }
    }
}

/// Reads everything queued on one socket, `BATCH` datagrams per `recvmmsg`;
/// returns the number of `recvmmsg` calls.
fn drain(
    fd: std::os::fd::RawFd,
    batch: &mut Batch,
    mut handle: impl FnMut(&mut [u8], SocketAddr),
) -> u64 {
    let mut calls = 0;
    loop {
        calls += 1;
        let got = {
            let mut slices = batch
                .buffers
                .each_mut()
                .map(|buffer| [IoSliceMut::new(buffer)]);
            match recvmmsg(
                fd,
                &mut batch.headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(results) => {
                    let mut n = 0;
                    for (slot, message) in batch.received.iter_mut().zip(results) {
                        *slot = (message.bytes, message.address.and_then(to_socket_addr));
                        n += 1;
                    }
                    n
                }
                Err(Errno::EAGAIN) => return calls,
                // ICMP errors for earlier sends surface here; the socket still works.
                Err(
                    Errno::EINTR | Errno::ECONNREFUSED | Errno::EHOSTUNREACH | Errno::ENETUNREACH,
                ) => {
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "recvmmsg failed");
                    return calls;
                }
            }
        };
        for (buffer, &(len, source)) in batch.buffers.iter_mut().zip(&batch.received).take(got) {
            if let (Some(datagram), Some(source)) = (buffer.get_mut(..len), source) {
                handle(datagram, source);
            }
        }
        if got < BATCH {
            return calls;
        }
    }
}

fn to_socket_addr(address: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = address.as_sockaddr_in6() {
        return Some(SocketAddr::V6(SocketAddrV6::from(*v6)));
    }
    None
}
