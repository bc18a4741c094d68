//! Adaptive jitter buffer: puts received packets back in sequence order, holds them a
//! little so that jitter and bursts play out smoothly, says when a frame is missing
//! so the caller conceals it, and resizes itself to the measured jitter.
//!
//! Pure: time is the `now` argument, never read from the OS. Packets are indexed by a
//! ring of small heads (sequence number modulo its power-of-two size); what they carry
//! sits in a pool beside it whose freed places are reused last-in first-out: a stream
//! two or three frames deep keeps its payloads in the same few places instead of a
//! ring of 64 of them (for G.711 about 1 KiB of memory per caller touched, not 10).
//! Ring and pool are allocated by [`JitterBuffer::new`], so `push`/`pop` never
//! allocate.
//!
//! - Order and wrap-around: sequence numbers compare by their signed 16-bit distance
//!   (RFC 3550 §A.1), so 65535 → 0 is one step forward.
//! - Jitter: the interarrival jitter estimator of RFC 3550 §6.4.1/§A.8
//!   (J += (|D| − J)/16, in timestamp units). The target depth is one frame plus three
//!   times the jitter, clamped to `[min_depth, max_depth]`.
//! - Underrun (nothing left to play): the buffer goes back to buffering until it holds
//!   the target depth again — that is how it grows after a burst or a delay spike.
//! - Loss: a missing frame with later frames already buffered is declared lost.
//! - Too deep (the smallest depth over 500 ms above target + 2: standing latency,
//!   not a passing burst): one frame is dropped per pop until it is back to target,
//!   trading a tiny glitch for latency.

use std::time::Instant;

use crate::mixer::{MIX_SAMPLES, MixFrame};
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Tuning of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Packets the ring holds; rounded up to a power of two (at least 4).
    pub capacity: usize,
    /// Smallest target depth, frames.
    pub min_depth: usize,
    /// Largest target depth, frames (bounded by `capacity - 1`).
    pub max_depth: usize,
    /// Timestamp units per frame (160 for 20 ms at 8 kHz).
    pub frame_ts: u32,
    /// RTP clock rate, Hz.
    pub clock_rate: u32,
    /// Frames the target holds beyond three times the measured jitter.
    pub headroom: usize,
    /// Frames above target tolerated for a whole window before frames are dropped.
    pub shrink_margin: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            capacity: 64,
            min_depth: 2,
            max_depth: 25,
            frame_ts: FRAME_SAMPLES as u32,
            clock_rate: SAMPLE_RATE,
            headroom: 1,
            shrink_margin: SHRINK_MARGIN,
        }
    }
}

impl JitterConfig {
    /// For a stream that arrives as steadily as it is sent (a leg between two bridges
    /// on one network, each sending on its own 20 ms clock): no frame held beyond what
    /// the measured jitter needs, and a standing excess dropped at once, so the buffer
    /// adds at most the wait for the next tick.
    pub fn steady(self) -> Self {
        Self {
            min_depth: 1,
            headroom: 0,
            shrink_margin: 0,
            ..self
        }
    }
}

/// What to play this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<T> {
    /// The next packet, in order.
    Frame {
        /// Its sequence number.
        sequence: u16,
        /// Its timestamp.
        timestamp: u32,
        /// What was pushed.
        item: T,
    },
    /// The frame due now is missing (lost, or the buffer ran dry): conceal it.
    Conceal,
    /// Not playing yet (start, or refilling after an underrun): play silence.
    Buffering,
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored for play-out.
    Stored,
    /// Its turn has passed: dropped.
    Late,
    /// Already held: dropped.
    Duplicate,
    /// So far from the current stream (a restart, a new SSRC) that the buffer
    /// flushed and restarted from it.
    Reset,
}

/// Counters of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets stored.
    pub stored: u64,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Frames declared lost (concealed while later frames were buffered).
    pub lost: u64,
    /// Pops that found the buffer dry while playing.
    pub underruns: u64,
    /// Frames dropped to shrink the buffer or because the ring overflowed.
    pub discarded: u64,
    /// Restarts on a sequence jump.
    pub resets: u64,
}

/// Sequence jumps larger than this restart the buffer instead of skipping ahead.
const MAX_JUMP: i32 = 1000;
/// Depth above target tolerated before frames are dropped (by default).
const SHRINK_MARGIN: usize = 2;
/// Pops over which the smallest depth is watched before shrinking (500 ms): a burst
/// raises the depth for a moment, a standing excess raises its minimum.
const SHRINK_WINDOW: u32 = 25;

/// The adaptive jitter buffer, generic over what is stored (an encoded payload such
/// as `bytes::Bytes`, or a decoded frame).
#[derive(Debug, Clone)]
pub struct JitterBuffer<T> {
    ring: Vec<Head>,
    /// What the heads carry, by place; `None` where free.
    pool: Vec<Option<T>>,
    /// Free places of `pool`, the most recently freed last (taken first).
    free: Vec<u16>,
    mask: usize,
    config: JitterConfig,
    stream: Option<Stream>,
    playing: bool,
    target: usize,
    /// Interarrival jitter, timestamp units.
    jitter: f64,
    /// (pops, smallest depth seen) in the current shrink window.
    window: (u32, usize),
    /// Frames still to drop to get back to target.
    excess: usize,
    stats: JitterStats,
}

/// A ring slot: the packet held for one sequence number modulo the ring's size.
#[derive(Debug, Clone, Copy)]
struct Head {
    sequence: u16,
    /// Its place in the pool, or [`EMPTY`].
    place: u16,
    timestamp: u32,
}

/// The place of an empty [`Head`].
const EMPTY: u16 = u16::MAX;

impl Head {
    const NONE: Head = Head {
        sequence: 0,
        place: EMPTY,
        timestamp: 0,
    };

    fn holds(&self, sequence: u16) -> bool {
        self.place != EMPTY && self.sequence == sequence
    }
}

/// A packet taken out of the buffer.
struct Entry<T> {
    sequence: u16,
    timestamp: u32,
    item: T,
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    /// The next sequence number to play.
    next: u16,
    /// The highest sequence number received.
    highest: u16,
    epoch: Instant,
    /// Arrival (timestamp units since `epoch`) and timestamp of the last packet.
    last_arrival: f64,
    last_timestamp: u32,
    /// A frame of this stream was played: the start can no longer move back.
    played: bool,
}

impl<T> JitterBuffer<T> {
    /// An empty buffer; allocates the ring now.
    pub fn new(config: JitterConfig) -> Self {
        let size = config.capacity.max(4).next_power_of_two();
        let max_depth = config.max_depth.clamp(1, size - 1);
        let min_depth = config.min_depth.clamp(1, max_depth);
        let config = JitterConfig {
            capacity: size,
            min_depth,
            max_depth,
            ..config
        };
        Self {
            ring: vec![Head::NONE; size],
            pool: Vec::with_capacity(size),
            free: Vec::with_capacity(size),
            mask: size - 1,
            config,
            stream: None,
            playing: false,
            target: min_depth,
            jitter: 0.0,
            window: (0, usize::MAX),
            excess: 0,
            stats: JitterStats::default(),
        }
    }

    /// Offers a received packet.
    pub fn push(&mut self, sequence: u16, timestamp: u32, item: T, now: Instant) -> Pushed {
        let Some(mut stream) = self.stream else {
            self.start(sequence, timestamp, now);
            self.store(sequence, timestamp, item);
            return Pushed::Stored;
        };
        let ahead = distance(stream.next, sequence);
        if ahead.abs() > MAX_JUMP {
            return self.reset(sequence, timestamp, item, now);
        }
        self.update_jitter(&mut stream, timestamp, now);
        self.stream = Some(stream);

        if ahead < 0 {
            // Before the play-out point. Before anything of this stream was played,
            // an early packet that arrived late simply moves the start back, if the
            // ring can hold the span.
            let span = distance(sequence, stream.highest);
            if !stream.played && (span as usize) < self.ring.len() {
                self.set_next(sequence);
            } else {
                self.stats.late += 1;
                return Pushed::Late;
            }
        } else if ahead as usize >= self.ring.len() {
            // A burst longer than the ring: drop the oldest frames to make room.
            let new_next = sequence.wrapping_sub(self.mask as u16);
            while distance(self.next(), new_next) > 0 {
                let next = self.next();
                if self.take(next).is_some() {
                    self.stats.discarded += 1;
                }
                self.set_next(next.wrapping_add(1));
            }
        }

        if self.slot(sequence).holds(sequence) {
            self.stats.duplicate += 1;
            return Pushed::Duplicate;
        }
        self.store(sequence, timestamp, item);
        Pushed::Stored
    }

    /// The frame to play now; call once per frame interval (every 20 ms).
    pub fn pop(&mut self, _now: Instant) -> Playout<T> {
        if self.stream.is_none() {
            return Playout::Buffering;
        }
        if !self.playing {
            if self.depth() < self.target {
                return Playout::Buffering;
            }
            self.playing = true;
        }
        self.track_excess();
        if self.excess > 0 && self.depth() > self.target {
            // Too deep for a whole window: drop one frame per pop back to target.
            let next = self.next();
            if self.take(next).is_some() {
                self.stats.discarded += 1;
            }
            self.set_next(next.wrapping_add(1));
            self.excess -= 1;
        }
        let next = self.next();
        if let Some(entry) = self.take(next) {
            self.set_next(next.wrapping_add(1));
            if let Some(s) = self.stream.as_mut() {
                s.played = true;
            }
            return Playout::Frame {
                sequence: entry.sequence,
                timestamp: entry.timestamp,
                item: entry.item,
            };
        }
        if self.depth() <= 1 {
            // Dry: nothing after `next` either. Refill to the target before playing
            // on; `next` stays, so a merely delayed packet is still played.
            self.playing = false;
            self.stats.underruns += 1;
            self.window = (0, usize::MAX);
            self.excess = 0;
        } else {
            // A hole with later frames present: lost.
            self.stats.lost += 1;
            self.set_next(next.wrapping_add(1));
        }
        Playout::Conceal
    }

    /// Frames from the play-out point to the newest packet, holes included.
    pub fn depth(&self) -> usize {
        match self.stream {
            Some(s) => usize::try_from(distance(s.next, s.highest) + 1).unwrap_or(0),
            None => 0,
        }
    }

    /// The depth the buffer currently aims for, frames.
    pub fn target_depth(&self) -> usize {
        self.target
    }

    /// The interarrival jitter estimate, milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.config.clock_rate.max(1))
    }

    /// True while frames are being played out (false while buffering).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn start(&mut self, sequence: u16, timestamp: u32, now: Instant) {
        self.stream = Some(Stream {
            next: sequence,
            highest: sequence,
            epoch: now,
            last_arrival: 0.0,
            last_timestamp: timestamp,
            played: false,
        });
        self.playing = false;
    }

    fn reset(&mut self, sequence: u16, timestamp: u32, item: T, now: Instant) -> Pushed {
        for head in &mut self.ring {
            *head = Head::NONE;
        }
        self.free.clear();
        for (place, item) in self.pool.iter_mut().enumerate().rev() {
            *item = None;
            self.free.push(u16::try_from(place).unwrap_or(EMPTY));
        }
        self.stats.resets += 1;
        self.jitter = 0.0;
        self.target = self.config.min_depth;
        self.window = (0, usize::MAX);
        self.excess = 0;
        self.start(sequence, timestamp, now);
        self.store(sequence, timestamp, item);
        Pushed::Reset
    }

    /// RFC 3550 §A.8, in f64 rather than the RFC's fixed point.
    fn update_jitter(&mut self, stream: &mut Stream, timestamp: u32, now: Instant) {
        let arrival = now.saturating_duration_since(stream.epoch).as_secs_f64()
            * f64::from(self.config.clock_rate);
        let d = (arrival - stream.last_arrival)
            - f64::from(timestamp.wrapping_sub(stream.last_timestamp) as i32);
        self.jitter += (d.abs() - self.jitter) / 16.0;
        stream.last_arrival = arrival;
        stream.last_timestamp = timestamp;
        let frames = (3.0 * self.jitter / f64::from(self.config.frame_ts.max(1))).ceil() as usize
            + self.config.headroom;
        self.target = frames.clamp(self.config.min_depth, self.config.max_depth);
    }

    fn track_excess(&mut self) {
        let depth = self.depth();
        let (pops, min) = &mut self.window;
        *pops += 1;
        *min = (*min).min(depth);
        if *pops >= SHRINK_WINDOW {
            if *min > self.target + self.config.shrink_margin {
                self.excess = *min - self.target;
            }
            self.window = (0, usize::MAX);
        }
    }

    fn store(&mut self, sequence: u16, timestamp: u32, item: T) {
        let index = usize::from(sequence) & self.mask;
        // A slot still holding an older packet (a ring's length behind) gives it up.
        if let Some(old) = self.ring.get(index).copied()
            && old.place != EMPTY
        {
            self.release(old.place);
        }
        let place = match self.free.pop() {
            Some(place) => {
                if let Some(free) = self.pool.get_mut(usize::from(place)) {
                    *free = Some(item);
                }
                place
            }
            // The pool grows to the deepest the stream has been, at most the ring's
            // size (it was allocated that large), so this never reallocates.
            None => {
                self.pool.push(Some(item));
                u16::try_from(self.pool.len() - 1).unwrap_or(EMPTY)
            }
        };
        if let Some(head) = self.ring.get_mut(index) {
            *head = Head {
                sequence,
                place,
                timestamp,
            };
            self.stats.stored += 1;
        }
        if let Some(s) = self.stream.as_mut()
            && distance(s.highest, sequence) > 0
        {
            s.highest = sequence;
        }
    }

    fn slot(&self, sequence: u16) -> Head {
        // The ring's length is mask + 1, so the masked index is in bounds.
        self.ring[usize::from(sequence) & self.mask]
    }

    fn take(&mut self, sequence: u16) -> Option<Entry<T>> {
        let head = self.ring.get_mut(usize::from(sequence) & self.mask)?;
        if !head.holds(sequence) {
            return None;
        }
        let Head {
            place, timestamp, ..
        } = std::mem::replace(head, Head::NONE);
        let item = self.pool.get_mut(usize::from(place))?.take()?;
        self.free.push(place);
        Some(Entry {
            sequence,
            timestamp,
            item,
        })
    }

    /// Frees a place whose packet is dropped.
    fn release(&mut self, place: u16) {
        if let Some(item) = self.pool.get_mut(usize::from(place))
            && item.take().is_some()
        {
            self.free.push(place);
        }
    }

    fn next(&self) -> u16 {
        self.stream.map_or(0, |s| s.next)
    }

    fn set_next(&mut self, sequence: u16) {
        if let Some(s) = self.stream.as_mut() {
            s.next = sequence;
            if distance(s.highest, sequence) > 0 {
                s.highest = sequence.wrapping_sub(1);
            }
        }
    }
}

/// Signed distance from `a` to `b` in sequence space (RFC 3550 §A.1).
fn distance(a: u16, b: u16) -> i32 {
    i32::from(b.wrapping_sub(a) as i16)
}

/// Packet-loss concealment on decoded frames: repeat the last good frame, fading it
/// 6 dB per lost frame, then silence after four (a repeated vowel beyond 80 ms sounds
/// worse than a gap). Works on frames of up to [`crate::MIX_SAMPLES`] samples (20 ms
/// at 8 or 16 kHz); a longer frame is concealed with silence past that.
#[derive(Debug, Clone)]
pub struct Concealer {
    last: MixFrame,
    losses: u32,
}

impl Default for Concealer {
    fn default() -> Self {
        Self {
            last: [0; MIX_SAMPLES],
            losses: 0,
        }
    }
}

impl Concealer {
    /// Remembers a good frame.
    pub fn good(&mut self, frame: &[i16]) {
        let n = frame.len().min(MIX_SAMPLES);
        self.last[..n].copy_from_slice(&frame[..n]);
        self.losses = 0;
    }

    /// Writes a concealment frame for one more lost frame.
    pub fn conceal(&mut self, out: &mut [i16]) {
        self.losses = self.losses.saturating_add(1);
        let shift = self.losses.min(16);
        if self.losses > 4 {
            out.fill(0);
            return;
        }
        for (o, &s) in out.iter_mut().zip(&self.last) {
            *o = s >> shift;
        }
        if let Some(rest) = out.get_mut(MIX_SAMPLES..) {
            rest.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TICK: Duration = Duration::from_millis(20);

    fn buffer() -> JitterBuffer<u16> {
        JitterBuffer::new(JitterConfig::default())
    }

    /// Pops until a frame comes out, up to `limit` pops; returns the sequence numbers
    /// played and the number of concealments.
    fn drain(jb: &mut JitterBuffer<u16>, now: Instant, pops: usize) -> (Vec<u16>, usize) {
        let mut played = Vec::new();
        let mut concealed = 0;
        for _ in 0..pops {
            match jb.pop(now) {
                Playout::Frame { sequence, item, .. } => {
                    assert_eq!(sequence, item);
                    played.push(sequence);
                }
                Playout::Conceal => concealed += 1,
                Playout::Buffering => {}
            }
        }
        (played, concealed)
    }

    #[test]
    fn a_steady_stream_reuses_a_few_places_of_the_pool() {
        // Two frames deep, a thousand packets: the payloads live in three places,
        // not in the ring's 64.
        let mut jb = buffer();
        let t0 = Instant::now();
        for i in 0..1000u16 {
            let now = t0 + TICK * u32::from(i);
            assert_eq!(jb.push(i, u32::from(i) * 160, i, now), Pushed::Stored);
            if i >= 1 {
                let _ = jb.pop(now);
            }
        }
        assert!(jb.pool.len() <= 3, "pool grew to {}", jb.pool.len());
        // A burst as long as the ring uses it whole, and every packet is played or
        // dropped to shrink back to target, in order.
        let mut jb = buffer();
        for i in 0..64u16 {
            jb.push(i, u32::from(i) * 160, i, t0);
        }
        assert_eq!(jb.pool.len(), 64);
        let (played, _) = drain(&mut jb, t0, 64);
        assert!(played.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(played.len() as u64 + jb.stats().discarded, 64);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn a_steady_stream_plays_from_one_frame_and_stays_there() {
        // Packets 3 ms after each tick, give or take 2 ms: two bridges' clocks.
        let mut jb = JitterBuffer::new(JitterConfig::default().steady());
        let mut default = buffer();
        let t0 = Instant::now();
        let (mut first, mut first_default) = (None, None);
        for i in 0..200u16 {
            let tick = t0 + TICK * u32::from(i);
            let wobble = Duration::from_millis(if i % 2 == 0 { 1 } else { 5 });
            let arrival = tick + wobble;
            let _ = jb.push(i, 160 * u32::from(i), i, arrival);
            let _ = default.push(i, 160 * u32::from(i), i, arrival);
            let next_tick = tick + TICK;
            if let Playout::Frame { sequence, .. } = jb.pop(next_tick) {
                first.get_or_insert((i, sequence));
            }
            if let Playout::Frame { sequence, .. } = default.pop(next_tick) {
                first_default.get_or_insert((i, sequence));
            }
        }
        assert_eq!(
            first,
            Some((0, 0)),
            "plays the frame at the first tick after it"
        );
        assert_eq!(
            first_default,
            Some((1, 0)),
            "the default holds a frame more"
        );
        assert_eq!(jb.target_depth(), 1, "2 ms of jitter needs no extra frame");
        assert_eq!(jb.stats().underruns, 0);
    }

    #[test]
    fn in_order_stream_plays_after_min_depth() {
        let mut jb = buffer();
        let t0 = Instant::now();
        let mut played = Vec::new();
        for i in 0..50u16 {
            let now = t0 + TICK * u32::from(i);
            assert_eq!(
                jb.push(100 + i, 160 * u32::from(i), 100 + i, now),
                Pushed::Stored
            );
            match jb.pop(now) {
                Playout::Frame { sequence, .. } => played.push(sequence),
                Playout::Conceal => panic!("concealment on a perfect stream"),
                Playout::Buffering => assert!(i < 2),
            }
        }
        assert_eq!(played, (100..149).collect::<Vec<_>>());
        assert_eq!(jb.target_depth(), 2);
        assert_eq!(jb.depth(), 1);
        assert!(jb.jitter_ms() < 0.01);
    }

    #[test]
    fn reorders() {
        let mut jb = buffer();
        let now = Instant::now();
        for seq in [1u16, 3, 2, 5, 4, 6] {
            jb.push(seq, u32::from(seq) * 160, seq, now);
        }
        assert_eq!(jb.depth(), 6);
        let (played, concealed) = drain(&mut jb, now, 6);
        assert_eq!(played, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(concealed, 0);
    }

    #[test]
    fn early_packet_arriving_late_moves_the_start_back() {
        let mut jb = buffer();
        let now = Instant::now();
        jb.push(11, 11 * 160, 11, now);
        jb.push(10, 10 * 160, 10, now);
        let (played, _) = drain(&mut jb, now, 2);
        assert_eq!(played, vec![10, 11]);
    }

    #[test]
    fn loss_is_concealed_and_counted() {
        let mut jb = buffer();
        let now = Instant::now();
        for seq in [1u16, 2, 4, 5] {
            jb.push(seq, u32::from(seq) * 160, seq, now);
        }
        assert_eq!(
            jb.pop(now),
            Playout::Frame {
                sequence: 1,
                timestamp: 160,
                item: 1
            }
        );
        assert!(matches!(jb.pop(now), Playout::Frame { sequence: 2, .. }));
        assert_eq!(jb.pop(now), Playout::Conceal);
        assert!(matches!(jb.pop(now), Playout::Frame { sequence: 4, .. }));
        assert!(matches!(jb.pop(now), Playout::Frame { sequence: 5, .. }));
        assert_eq!(jb.stats().lost, 1);
        // Seq 3 turning up now is late.
        assert_eq!(jb.push(3, 480, 3, now), Pushed::Late);
        assert_eq!(jb.push(5, 800, 5, now), Pushed::Late);
        assert_eq!(jb.stats().late, 2);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut jb = buffer();
        let now = Instant::now();
        jb.push(7, 0, 7, now);
        jb.push(8, 160, 8, now);
        assert_eq!(jb.push(8, 160, 8, now), Pushed::Duplicate);
        assert_eq!(jb.stats().duplicate, 1);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut jb = buffer();
        let t0 = Instant::now();
        let seqs: Vec<u16> = (0..8).map(|i| 65_532u16.wrapping_add(i)).collect();
        // Delivered slightly shuffled across the wrap.
        for (k, &i) in [0usize, 1, 2, 4, 3, 5, 7, 6].iter().enumerate() {
            let seq = seqs[i];
            let ts = (u32::MAX - 400).wrapping_add(160 * i as u32);
            jb.push(seq, ts, seq, t0 + TICK * k as u32);
        }
        let (played, concealed) = drain(&mut jb, t0, 8);
        assert_eq!(played, seqs);
        assert_eq!(concealed, 0);
    }

    #[test]
    fn absorbs_bursts_by_growing() {
        // Packets arrive in bursts of 5 every 100 ms; play-out pops every 20 ms.
        let mut jb = buffer();
        let t0 = Instant::now();
        let mut seq = 0u16;
        let mut after_warmup = (0usize, 0usize); // (frames, concealments)
        for tick in 0..400u32 {
            let now = t0 + TICK * tick;
            if tick % 5 == 0 {
                for _ in 0..5 {
                    jb.push(seq, u32::from(seq) * 160, seq, now);
                    seq = seq.wrapping_add(1);
                }
            }
            let out = jb.pop(now);
            if tick >= 100 {
                match out {
                    Playout::Frame { .. } => after_warmup.0 += 1,
                    _ => after_warmup.1 += 1,
                }
            }
        }
        assert!(jb.target_depth() >= 5, "target {}", jb.target_depth());
        assert!(jb.jitter_ms() > 20.0, "jitter {} ms", jb.jitter_ms());
        assert_eq!(after_warmup, (300, 0), "glitches after warm-up");
        assert!(jb.depth() <= jb.target_depth() + SHRINK_MARGIN + 5);
    }

    #[test]
    fn underrun_rebuffers_without_dropping_the_delayed_packets() {
        let mut jb = buffer();
        let t0 = Instant::now();
        for i in 0..4u16 {
            jb.push(i, u32::from(i) * 160, i, t0);
        }
        let (played, _) = drain(&mut jb, t0, 4);
        assert_eq!(played, vec![0, 1, 2, 3]);
        // 4 is delayed: the buffer runs dry and conceals, but does not skip 4.
        assert_eq!(jb.pop(t0), Playout::Conceal);
        assert!(!jb.is_playing());
        assert_eq!(jb.stats().underruns, 1);
        // A stale duplicate arriving while refilling does not rewind the play-out.
        assert_eq!(jb.push(2, 320, 2, t0), Pushed::Late);
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(jb.push(4, 640, 4, t1), Pushed::Stored);
        // The delay spike raised the target: it refills deeper before playing.
        assert!(jb.target_depth() > 2);
        assert_eq!(jb.pop(t1), Playout::Buffering);
        for i in 5..12u16 {
            jb.push(i, u32::from(i) * 160, i, t1);
        }
        let (played, concealed) = drain(&mut jb, t1, 8);
        assert_eq!(played, (4..12).collect::<Vec<_>>());
        assert_eq!(concealed, 0);
    }

    #[test]
    fn standing_excess_shrinks_back_to_target() {
        let mut jb = buffer();
        let t0 = Instant::now();
        // A 15-frame burst at the start, then a perfect 20 ms stream: the depth would
        // stay 15 frames (300 ms of needless delay) without shrinking.
        for i in 0..15u16 {
            jb.push(i, u32::from(i) * 160, i, t0);
        }
        let mut played = Vec::new();
        for tick in 0..100u16 {
            let now = t0 + TICK * u32::from(tick);
            let seq = 15 + tick;
            jb.push(seq, u32::from(seq) * 160, seq, now);
            if let Playout::Frame { sequence, .. } = jb.pop(now) {
                played.push(sequence);
            }
        }
        assert!(jb.stats().discarded > 0);
        assert!(
            jb.depth() <= jb.target_depth() + SHRINK_MARGIN,
            "depth {}",
            jb.depth()
        );
        assert!(played.windows(2).all(|w| w[1] > w[0]));
        // No shrinking in the first window: a burst is not a standing excess.
        assert_eq!(played[..24], (0..24).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn jump_resets_and_overflow_drops_oldest() {
        let mut jb = buffer();
        let now = Instant::now();
        jb.push(10, 0, 10, now);
        assert_eq!(jb.push(30_000, 999, 30_000, now), Pushed::Reset);
        assert_eq!(jb.depth(), 1);
        jb.push(30_001, 1159, 30_001, now);
        let (played, _) = drain(&mut jb, now, 2);
        assert_eq!(played, vec![30_000, 30_001]);

        // A burst wider than the 64-slot ring keeps the newest 64.
        let mut jb = buffer();
        for i in 0..100u16 {
            jb.push(i, u32::from(i) * 160, i, now);
        }
        assert_eq!(jb.depth(), 64);
        assert_eq!(jb.stats().discarded, 36);
        assert!(matches!(jb.pop(now), Playout::Frame { sequence: 36, .. }));
    }

    #[test]
    fn concealer_fades_then_silences() {
        let mut c = Concealer::default();
        c.good(&[1000; FRAME_SAMPLES]);
        let mut out = [0i16; FRAME_SAMPLES];
        c.conceal(&mut out);
        assert_eq!(out[0], 500);
        c.conceal(&mut out);
        assert_eq!(out[0], 250);
        c.conceal(&mut out);
        c.conceal(&mut out);
        assert_eq!(out[0], 62);
        c.conceal(&mut out);
        assert_eq!(out, [0; FRAME_SAMPLES]);
        c.good(&[-400; FRAME_SAMPLES]);
        c.conceal(&mut out);
        assert_eq!(out[0], -200);
    }

    proptest::proptest! {
        /// Whatever sequence numbers the network sends, in whatever order: no panic,
        /// the ring never holds more than its size, and play-out only moves forward
        /// (except across a reset).
        #[test]
        fn arbitrary_arrivals_play_forward(ops in proptest::collection::vec((proptest::prelude::any::<u16>(), 0u16..40, proptest::prelude::any::<bool>()), 1..300)) {
            let mut jb = JitterBuffer::new(JitterConfig::default());
            let t0 = Instant::now();
            let mut last: Option<u16> = None;
            let mut resets = 0;
            let base = ops[0].0;
            for (i, &(jump, near, pop)) in ops.iter().enumerate() {
                let now = t0 + TICK * i as u32;
                // Mostly near the stream, sometimes anywhere.
                let seq = if jump % 16 == 0 { jump } else { base.wrapping_add(i as u16).wrapping_add(near).wrapping_sub(20) };
                jb.push(seq, u32::from(seq) * 160, seq, now);
                proptest::prop_assert!(jb.depth() <= 64);
                if jb.stats().resets != resets {
                    resets = jb.stats().resets;
                    last = None;
                }
                if pop && let Playout::Frame { sequence, item, .. } = jb.pop(now) {
                    proptest::prop_assert_eq!(sequence, item);
                    if let Some(prev) = last {
                        proptest::prop_assert!(distance(prev, sequence) > 0, "{} after {}", sequence, prev);
                    }
                    last = Some(sequence);
                }
            }
        }
    }
}
