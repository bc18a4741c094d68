//! One shard of the engine: a clock thread and the table it ticks (its sessions in a
//! slab, its rooms), and the inbox through which the receive threads hand it audio.
//!
//! Why shards: one clock thread mixes at most one core's worth of rooms. Rooms are
//! spread over as many shards as the machine has cores ([`super::EngineOptions`]); a
//! session lives in the shard of the room it is in (it moves when it joins a room
//! elsewhere), so a tick never reaches into another shard's table.
//!
//! Why an inbox: the receive thread used to push each packet into the member's jitter
//! buffer under a lock of its own, and the clock took that lock again for every member
//! every tick — two lock round trips per packet, on lines both cores write. Now the
//! receive thread collects a wake-up's packets per shard and appends them to the
//! shard's inbox under one lock; the clock swaps the inbox out once per tick and fills
//! the jitter buffers it owns. Nothing per packet is locked by the clock, and nothing
//! is allocated once the vectors have grown to a tick's packets.
//!
//! The clock builds the tick's datagrams under the table's lock and sends them after
//! releasing it ([`Outbox`]): calls on the session API never wait for the kernel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::FRAME_MS;
use crate::pipeline::{MAX_PAYLOAD, MemberMedia, Members, PACKET_LEN, Popped, RoomMix, Sink};

use super::outbound::{Outbound, Route, Scratch};
use super::packed::Packed;
use super::{Bound, Inner, lock};

/// Room ids carry their shard in the low [`SHARD_BITS`] bits.
pub(super) const SHARD_BITS: u32 = 6;
/// The most shards an engine runs (more cores than this share them).
pub(super) const MAX_SHARDS: usize = 1 << SHARD_BITS;
/// The clock catches up (sends the missed ticks back to back, timestamps unbroken)
/// when at most this many ticks (1 s) late, e.g. after the machine stalled; further
/// behind — sustained overload — it skips them (and counts them): a longer burst
/// would only overflow the far ends' jitter buffers and keep the clock behind.
const MAX_CATCH_UP_TICKS: u32 = 50;

/// Where a session lives: its shard (high 32 bits) and its slab index (low 32).
pub(super) fn home(shard: usize, index: u32) -> u64 {
    ((shard as u64) << 32) | u64::from(index)
}

/// The shard of a [`home`].
pub(super) fn shard_of(home: u64) -> usize {
    (home >> 32) as usize
}

/// The slab index of a [`home`].
pub(super) fn index_of(home: u64) -> u32 {
    home as u32
}

/// One shard's clock counters; its table is in [`Shard::table`].
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) table: Mutex<Table>,
    /// Received audio for this shard's sessions, appended by the receive threads.
    pub(super) inbox: Mutex<Arrivals>,
    pub(super) ticks: AtomicU64,
    pub(super) last_tick_ns: AtomicU64,
    pub(super) max_tick_ns: AtomicU64,
}

/// Received audio or comfort-noise payloads on their way to the jitter buffers.
pub(super) type Arrivals = Packed<Arrival>;

/// What one payload of [`Arrivals`] is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival {
    session: u64,
    index: u32,
    sequence: u16,
    timestamp: u32,
    comfort_noise: bool,
    at: Instant,
}

impl Packed<Arrival> {
    /// Adds one payload of session `session` living at `home` (cut to
    /// [`MAX_PAYLOAD`] bytes, as the jitter buffer would).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_payload(
        &mut self,
        session: u64,
        home: u64,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
        comfort_noise: bool,
        at: Instant,
    ) {
        let head = Arrival {
            session,
            index: index_of(home),
            sequence,
            timestamp,
            comfort_noise,
            at,
        };
        self.push(head, payload.get(..MAX_PAYLOAD).unwrap_or(payload));
    }
}

/// A shard's sessions, indexed by slot (reused after a session leaves). A slot is
/// only ever read together with the session id it was given to, so a stale index
/// (a packet queued before the session left) finds nothing.
#[derive(Debug, Default)]
pub(super) struct Slab {
    entries: slab::Slab<Outbound>,
}

impl Slab {
    /// Stores `outbound`; returns its index.
    pub(super) fn insert(&mut self, outbound: Outbound) -> u32 {
        u32::try_from(self.entries.insert(outbound)).unwrap_or(u32::MAX)
    }

    /// Session `id` at `index`, if it is there.
    pub(super) fn get(&self, index: u32, id: u64) -> Option<&Outbound> {
        self.entries.get(index as usize).filter(|o| o.id == id)
    }

    /// Session `id` at `index`, if it is there.
    pub(super) fn get_mut(&mut self, index: u32, id: u64) -> Option<&mut Outbound> {
        self.entries.get_mut(index as usize).filter(|o| o.id == id)
    }

    /// Takes session `id` out of `index`.
    pub(super) fn remove(&mut self, index: u32, id: u64) -> Option<Outbound> {
        self.get(index, id)?;
        self.entries.try_remove(index as usize)
    }

    /// Sessions stored.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Outbound> {
        self.entries.iter_mut().map(|(_, o)| o)
    }

    /// The session a room lists as member `key` (its slab index).
    pub(super) fn at(&mut self, key: u64) -> Option<&mut Outbound> {
        self.entries.get_mut(usize::try_from(key).ok()?)
    }
}

/// The clock reaches a room's members by slab index: no hashing, no lock.
impl Members for Slab {
    type Route = Route;

    fn pop(&mut self, key: u64, now: Instant) -> Option<(&mut MemberMedia, Popped)> {
        let o = self.at(key)?;
        let popped = o.jitter.pop(now);
        let depth = o.jitter.depth();
        o.show_depth(depth);
        Some((&mut o.media, popped))
    }

    fn heard(&mut self, key: u64, talking: bool) -> Option<(&mut MemberMedia, &Route)> {
        let o = self.at(key)?;
        o.show_talking(talking);
        Some((&mut o.media, &o.route))
    }
}

/// A shard's sessions and rooms, under the lock its clock takes once per tick.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) sessions: Slab,
    pub(super) rooms: HashMap<u64, RoomMix>,
}

impl Table {
    /// One 20 ms tick: the received audio into the jitter buffers, every room mixed and
    /// sent to its members, every session outside a room sends its prompt or
    /// silence; then RTCP reports that are due. Returns the datagrams not sent.
    fn tick(
        &mut self,
        arrivals: &mut Arrivals,
        scratch: &mut Scratch,
        outbox: &mut Outbox,
        now: Instant,
        report: Duration,
    ) {
        let Table { sessions, rooms } = self;
        arrivals.drain_each(|a, payload| {
            if let Some(o) = sessions.get_mut(a.index, a.session)
                && o.room.is_some()
            {
                o.jitter
                    .push(a.sequence, a.timestamp, payload, a.comfort_noise, a.at);
            }
        });
        for room in rooms.values_mut() {
            room.tick(now, sessions, &mut scratch.pipeline, outbox);
        }
        for outbound in sessions.values_mut() {
            if outbound.room.is_none() {
                outbound.tick(scratch, outbox);
            }
            outbound.notify_finished();
            outbound.report_if_due(scratch, now, report);
        }
    }

    /// Ticks skipped under overload: every stream's timestamp moves on.
    fn skip(&mut self, ticks: u32) {
        for outbound in self.sessions.values_mut() {
            outbound.skip(ticks);
        }
    }

    /// Takes the session at slab `index` out of a room's member list and mixer.
    pub(super) fn remove_member(&mut self, room: u64, index: u32, slot: crate::MixerSlot) {
        if let Some(state) = self.rooms.get_mut(&room) {
            state.leave(u64::from(index), slot);
        }
    }
}

/// A tick's datagrams, sent once the table's lock is released. Calls on the session
/// API (play, mute, join...) wait for the lock, so the tick holds it only while it
/// mixes and builds, never while the kernel sends.
pub(super) type Outbox = Packed<Outgoing>;

/// Where one datagram of the [`Outbox`] goes. The `Arc` keeps the socket (and so its
/// descriptor) open until sent, even if the session closes meanwhile; `Bound` is
/// aligned to its own cache lines, so the count lives apart from what the receive
/// thread reads.
#[derive(Debug)]
pub(super) struct Outgoing {
    bound: Arc<Bound>,
    to: SocketAddr,
}

impl Sink<Route> for Outbox {
    fn push(&mut self, route: &Route, packet: &[u8; PACKET_LEN], len: usize) {
        if let Some(datagram) = packet.get(..len) {
            let head = Outgoing {
                bound: route.bound.clone(),
                to: route.remote(),
            };
            Packed::push(self, head, datagram);
        }
    }
}

/// Sends and empties `outbox`; returns the datagrams the kernel refused (a full socket
/// buffer: late audio is worthless, so it is dropped, not retried).
fn send(outbox: &mut Outbox) -> u64 {
    let mut dropped = 0;
    outbox.drain_each(|out, datagram| {
        let sent = out.bound.rtp.send_to(datagram, out.to).is_ok();
        out.bound.count_sent(sent);
        if !sent {
            dropped += 1;
        }
    });
    dropped
}

/// Shard `shard`'s clock: every 20 ms (offset by `offset`, so that shards take turns
/// on the cores), its rooms mixed and one packet for each of its sessions.
///
/// A few missed ticks (the thread was not scheduled, or a tick overran) are run at
/// once, back to back, and the far ends' jitter buffers absorb the burst; beyond
/// [`MAX_CATCH_UP_TICKS`] they are skipped, RTP timestamps jumping ahead.
pub(super) fn run_clock(inner: &Weak<Inner>, shard: usize, offset: Duration) {
    let period = Duration::from_millis(u64::from(FRAME_MS));
    let mut scratch = Scratch::default();
    let mut arrivals = Arrivals::default();
    let mut outbox = Outbox::default();
    let mut scheduled = Instant::now() + offset;
    loop {
        let now = Instant::now();
        if let Some(wait) = scheduled.checked_duration_since(now) {
            std::thread::sleep(wait);
        }
        let Some(inner) = inner.upgrade() else { return };
        let Some(me) = inner.shards.get(shard) else {
            return;
        };
        let started = Instant::now();
        inner
            .lateness
            .record(started.saturating_duration_since(scheduled));
        let report = Duration::from_millis(inner.report_interval_ms.load(Ordering::Relaxed));
        // The vectors trade places: the inbox keeps the capacity the clock had.
        std::mem::swap(&mut *lock(&me.inbox), &mut arrivals);
        {
            let mut table = lock(&me.table);
            table.tick(&mut arrivals, &mut scratch, &mut outbox, started, report);
            // Counted under the lock: whoever changes a session after reading the
            // count knows every later tick sees the change.
            me.ticks.fetch_add(1, Ordering::Relaxed);
        }
        let dropped = send(&mut outbox);
        if dropped > 0 {
            inner.send_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        me.last_tick_ns.store(took, Ordering::Relaxed);
        me.max_tick_ns.fetch_max(took, Ordering::Relaxed);
        scheduled += period;
        let behind = started.saturating_duration_since(scheduled);
        if behind > period * MAX_CATCH_UP_TICKS {
            // Overload: bursting more would only overflow the far ends' buffers.
            // Skip the missed ticks; timestamps jump so the far ends see a gap.
            let skipped = u32::try_from(behind.as_nanos() / period.as_nanos()).unwrap_or(u32::MAX);
            lock(&me.table).skip(skipped);
            inner
                .ticks_skipped
                .fetch_add(u64::from(skipped), Ordering::Relaxed);
            scheduled = started + period;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(arrivals: &Arrivals) -> Vec<(u64, u16, Vec<u8>)> {
        arrivals
            .iter()
            .map(|(a, bytes)| (a.session, a.sequence, bytes.to_vec()))
            .collect()
    }

    #[test]
    fn appended_arrivals_keep_their_own_bytes() {
        let now = Instant::now();
        let mut inbox = Arrivals::default();
        inbox.push_payload(1, home(0, 3), 10, 1600, &[1; 160], false, now);
        let mut batch = Arrivals::default();
        batch.push_payload(2, home(0, 4), 20, 3200, &[2; 80], false, now);
        batch.push_payload(1, home(0, 3), 11, 1760, &[3; 1], true, now);
        inbox.append(&mut batch);
        assert!(batch.is_empty() && batch.iter().next().is_none());
        assert_eq!(
            payloads(&inbox),
            vec![
                (1, 10, vec![1; 160]),
                (2, 20, vec![2; 80]),
                (1, 11, vec![3; 1]),
            ]
        );
        let heads: Vec<Arrival> = inbox.iter().map(|(a, _)| *a).collect();
        assert!(heads[2].comfort_noise);
        assert_eq!(heads[1].index, 4);
    }

    #[test]
    fn a_payload_longer_than_the_largest_kept_is_cut() {
        let mut arrivals = Arrivals::default();
        arrivals.push_payload(
            1,
            home(1, 0),
            0,
            0,
            &[7; MAX_PAYLOAD + 50],
            false,
            Instant::now(),
        );
        assert_eq!(payloads(&arrivals)[0].2.len(), MAX_PAYLOAD);
    }

    #[test]
    fn a_home_names_its_shard_and_slot() {
        let h = home(5, 123_456);
        assert_eq!((shard_of(h), index_of(h)), (5, 123_456));
    }
}
