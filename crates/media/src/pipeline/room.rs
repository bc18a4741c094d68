//! One room's tick: each member's frame from its jitter buffer decoded into the
//! room's [`Mixer`] (through its DTMF squelch), the 16 kHz mix, the room prompt and the
//! recording, then for each member what it hears, in its codec, as an RTP packet —
//! [`RoomMix::tick`]. Pure: the members and where their packets go are the caller's
//! ([`Members`], [`Sink`]).
//!
//! Cost per member and tick, G.711 (the thousands): decode 160 bytes into the mixer's
//! narrowband input, where the mixer measures its level and upsamples it only if it
//! is one of the few talkers mixed. Non-talkers all hear the shared mix, decimated to
//! 8 kHz once per room and encoded once per G.711 codec, the bytes reused for every
//! one of them. Talkers' own mixes are decimated each with the member's converter.
//! G.722 and Opus members decode into the 16 kHz input and encode what they hear
//! with their own codec state (stateful encoders share nothing).
//!
//! Comfort noise (RFC 3389): a CN packet (PT 13) takes its place in the member's
//! jitter buffer like audio; when played it sets the member's noise generator, and
//! until the next audio packet the member is heard as that noise — not concealed,
//! not counted lost, not silent.
//!
//! In-band DTMF: a member without RFC 4733 telephone-events keys its digits into the
//! audio; its decoded frames pass through its [`crate::DtmfSquelch`] (one tick of
//! delay, key presses silenced) so the room never hears them — a G.711 member's as
//! they are (about 1,300 multiply-adds per tick), a G.722 or Opus member's decided on
//! the frame decimated to 8 kHz, the 16 kHz frame delayed alongside. Members with
//! telephone-events skip it.
//!
//! Assumes 20 ms packets (160 G.711 or G.722 bytes, one Opus frame), as our SDP
//! answer asks with `a=ptime:20`; a longer packet is cut to one frame.

use std::sync::Arc;
use std::time::Instant;

use crate::halfband::{Downsampler2, Upsampler2};
use crate::mixer::{DEFAULT_MAX_TALKERS, MIX_SILENCE, Mixer, MixerSlot, SILENCE, add_limited};
use crate::recording::RecordingTap;
use crate::{Playback, Prompt};

use super::member::{MemberMedia, PACKET_LEN, Popped, Scratch};
use super::shared::SharedCache;

/// The members of a room as their owner keeps them, keyed by the `u64` given to
/// [`RoomMix::join`]: an engine shard's session table (by slab index), or a
/// [`super::RoomPipeline`]'s own list.
pub trait Members {
    /// Where a member's packets go (the engine: its socket and remote address).
    type Route: ?Sized;

    /// Member `key`'s media state and the frame its jitter buffer gives for this tick.
    fn pop(&mut self, key: u64, now: Instant) -> Option<(&mut MemberMedia, Popped)>;

    /// Member `key`'s media state and route, told whether it talks this tick.
    fn heard(&mut self, key: u64, talking: bool) -> Option<(&mut MemberMedia, &Self::Route)>;
}

/// Takes each datagram a tick builds.
pub trait Sink<R: ?Sized> {
    /// One datagram: the first `len` bytes of `packet`, for `route`. Handed the
    /// whole buffer so that it can be kept by value (one copy, no zeroing).
    fn push(&mut self, route: &R, packet: &[u8; PACKET_LEN], len: usize);
}

/// A room's mixing state: the mixer, its members' keys and slots, the room prompt
/// and the recording.
#[derive(Debug)]
pub struct RoomMix {
    pub(crate) mixer: Mixer,
    /// (member key, its slot); capacity reserved at creation.
    pub(crate) members: Vec<(u64, MixerSlot)>,
    /// A prompt every member hears (join and leave beeps).
    playback: Option<Playback>,
    /// The room prompt's 8 → 16 kHz converter.
    prompt_up: Upsampler2,
    /// The shared mix's 16 → 8 kHz converter, for the G.711 members.
    shared_down: Downsampler2,
    /// The WAV the full mix goes to, while recording.
    pub(crate) recording: Option<RecordingTap>,
}

impl RoomMix {
    /// An empty room for up to `capacity` members (allocates every frame now).
    pub fn new(capacity: usize) -> Self {
        Self {
            mixer: Mixer::new(capacity, DEFAULT_MAX_TALKERS),
            members: Vec::with_capacity(capacity),
            playback: None,
            prompt_up: Upsampler2::default(),
            shared_down: Downsampler2::default(),
            recording: None,
        }
    }

    /// Adds member `key`; `None` when the room is full.
    pub fn join(&mut self, key: u64, muted: bool) -> Option<MixerSlot> {
        let slot = self.mixer.join()?;
        self.members.push((key, slot));
        self.mixer.set_muted(slot, muted);
        Some(slot)
    }

    /// Takes member `key` out of the member list and the mixer.
    pub fn leave(&mut self, key: u64, slot: MixerSlot) {
        self.mixer.leave(slot);
        self.members.retain(|&(k, _)| k != key);
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when no one else can join.
    pub fn is_full(&self) -> bool {
        !self.mixer.has_room()
    }

    /// Mutes or unmutes a member: a muted member still hears the room.
    pub fn set_muted(&mut self, slot: MixerSlot, muted: bool) {
        self.mixer.set_muted(slot, muted);
    }

    /// Plays `prompt` once to every member, over the conversation.
    pub fn play(&mut self, prompt: Arc<Prompt>) {
        self.playback = Some(Playback::new(prompt, false));
    }

    /// Empties the member list (the room closes), giving back each key and slot.
    pub fn drain_members(&mut self) -> std::vec::Drain<'_, (u64, MixerSlot)> {
        self.members.drain(..)
    }

    /// One tick of the room: every member's frame in, the mix, and every member's
    /// packet out to `out`.
    pub fn tick<M: Members + ?Sized, S: Sink<M::Route> + ?Sized>(
        &mut self,
        now: Instant,
        members: &mut M,
        scratch: &mut Scratch,
        out: &mut S,
    ) {
        for &(key, slot) in &self.members {
            if let Some((member, popped)) = members.pop(key, now) {
                member.feed(popped, &mut self.mixer, slot, now);
            }
        }
        self.mixer.mix();

        // The room prompt, once for everybody, at the mix rate.
        let mut room_prompt = None;
        if let Some(playback) = self.playback.as_mut() {
            let mut frame = SILENCE;
            playback.fill(&mut frame);
            let mut wide = MIX_SILENCE;
            self.prompt_up.process(&frame, &mut wide);
            room_prompt = Some(wide);
            if playback.finished() {
                self.playback = None;
                self.prompt_up.reset();
            }
        }

        // What every non-talker hears: all talkers and the room prompt.
        let mut shared = *self.mixer.shared();
        if let Some(extra) = room_prompt.as_ref() {
            add_limited(&mut shared, extra);
        }
        if let Some(tap) = self.recording.as_mut() {
            tap.push(&shared);
        }

        let mut cache = SharedCache::new(&shared, &mut self.shared_down);
        for &(key, slot) in &self.members {
            let Some(heard) = self.mixer.output(slot) else {
                continue;
            };
            let Some((member, route)) = members.heard(key, self.mixer.is_talking(slot)) else {
                continue;
            };
            if let Some(len) = member.send_heard(heard, room_prompt.as_ref(), &mut cache, scratch) {
                out.push(route, &scratch.packet, len);
            }
        }
        cache.finish();
    }
}
